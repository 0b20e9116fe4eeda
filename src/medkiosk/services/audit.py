"""Tamper-evident audit trail: each entry's hash covers the previous entry's hash and its own content.

``hash = SHA-256(canonical JSON of [prev_hash, at, actor, action, target, details])`` where ``at``
is the UTC ISO-8601 time with microseconds and the JSON has sorted keys and no spaces. The first
entry's ``prev_hash`` is 64 zeros. Changing, inserting or deleting a row in the middle breaks the
chain at that row or the next; cutting rows off the end is only visible against a head hash
recorded elsewhere (``head``), which is why the operations side should copy it out daily.

Appends are serialised so that the chain never forks (two entries naming the same predecessor):

- PostgreSQL: ``pg_advisory_xact_lock`` on one fixed key, taken before reading the head and held
  until the caller's transaction ends. ``SELECT … FOR UPDATE`` on the last row would not do: on an
  empty table there is no row to lock, and two first entries would both name the genesis hash.
  This relies on READ COMMITTED (PostgreSQL's default): the head is read after the lock is granted,
  so it sees the entry the previous holder committed.
- SQLite: a write statement that matches no row, executed first, takes the database's single
  write lock (waiting up to busy_timeout) before the head is read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, text

from medkiosk.services.clock import Clock, as_utc
from medkiosk.store.models import AuditEntry
from medkiosk.store.uow import UnitOfWork

GENESIS_HASH = "0" * 64
# Any fixed 64-bit number works; this one spells "mkaudit" so it is recognisable in pg_locks.
ADVISORY_LOCK_KEY = 0x6D6B6175646974

_ACTOR_MAX, _ACTION_MAX, _TARGET_MAX = 80, 80, 120


@dataclass(frozen=True)
class ChainHead:
    id: int
    hash: str


@dataclass(frozen=True)
class AuditRecord:
    """An entry as read, detached from the session that read it."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


def canonical_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """The details exactly as they will read back from the JSON column (dates, Decimals → text)."""
    return json.loads(json.dumps(details or {}, default=str, ensure_ascii=False, allow_nan=False))


def _at_text(at: datetime) -> str:
    return as_utc(at).astimezone(timezone.utc).isoformat(timespec="microseconds")


def entry_hash(prev_hash: str, at: datetime, actor: str, action: str, target: str, details: dict[str, Any]) -> str:
    payload = json.dumps([prev_hash, _at_text(at), actor, action, target, details],
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _lock_chain(uow: UnitOfWork) -> None:
    session = uow.session
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    elif dialect == "sqlite":
        session.execute(text("UPDATE audit_log SET id = id WHERE id < 0"))
    else:  # pragma: no cover - the product supports SQLite and PostgreSQL only
        raise RuntimeError(f"no audit chain lock for {dialect}")


def append(uow: UnitOfWork, clock: Clock, actor: str, action: str, target: str = "",
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Add an entry to the caller's transaction (which the caller commits, soon: the chain stays
    locked until then). ``details`` must hold no password and no patient data."""
    _lock_chain(uow)
    prev_hash = uow.session.scalars(
        select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first() or GENESIS_HASH
    at = clock.now().astimezone(timezone.utc)
    actor, action, target = actor[:_ACTOR_MAX], action[:_ACTION_MAX], (target or "")[:_TARGET_MAX]
    details = canonical_details(details)
    entry = AuditEntry(at=at, actor=actor, action=action, target=target, details=details, prev_hash=prev_hash,
                       hash=entry_hash(prev_hash, at, actor, action, target, details))
    uow.session.add(entry)
    uow.session.flush()
    return entry


def verify_chain(uow: UnitOfWork) -> tuple[bool, int | None]:
    """Walk the trail in order; ``(True, None)`` when intact, else ``(False, id of the first bad entry)``."""
    expected_prev = GENESIS_HASH
    rows = uow.session.execute(
        select(AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action, AuditEntry.target,
               AuditEntry.details, AuditEntry.prev_hash, AuditEntry.hash)
        .order_by(AuditEntry.id).execution_options(yield_per=1000))
    for row in rows:
        recomputed = entry_hash(row.prev_hash, row.at, row.actor, row.action, row.target, row.details or {})
        if row.prev_hash != expected_prev or row.hash != recomputed:
            return False, row.id
        expected_prev = row.hash
    return True, None


def head(uow: UnitOfWork) -> ChainHead | None:
    """The newest entry's id and hash: copy it somewhere else to make truncation detectable."""
    row = uow.session.execute(select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first()
    return ChainHead(row.id, row.hash) if row else None


def recent(uow: UnitOfWork, *, limit: int = 100, before_id: int | None = None) -> list[AuditRecord]:
    """Entries newest first, ``limit`` at a time, older than ``before_id`` when paging back."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return [AuditRecord(e.id, as_utc(e.at), e.actor, e.action, e.target, dict(e.details or {}), e.prev_hash, e.hash)
            for e in uow.session.scalars(query)]
