"""Engines and sessions: SQLite by default (one machine), PostgreSQL in production."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


POSTGRES_DRIVER = "psycopg2"
"""The DB-API driver for ``postgresql://`` URLs. psycopg2 rather than psycopg 3: its C code spends
≈ 25 % less CPU a transaction on the engine's short statements (benchmarks/README.md), and the kiosk
service makes ≈ 25 of them for every payment."""


EXECUTEMANY_MODE = "values_plus_batch"
"""A statement run for many rows that SQLAlchemy cannot fold into one multi-row INSERT — an upsert
(``ON CONFLICT``), an UPDATE, a DELETE — goes to the server a hundred at a time (psycopg2's
``execute_batch``), not one round trip a row: heartbeat ingestion upserts four tables a batch."""


def normalise_url(url: str) -> str:
    """Use :data:`POSTGRES_DRIVER` for ``postgresql://`` URLs, whatever driver name the operator wrote."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != POSTGRES_DRIVER:
        parsed = parsed.set(drivername=f"postgresql+{POSTGRES_DRIVER}")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # 20 connections, all kept: a transaction holds one for a millisecond or two and never across an
    # upstream call, so a request thread that finds them all busy waits a moment for one. With 20
    # overflow connections besides, every burst above 20 opened and closed connections: a new
    # PostgreSQL backend for almost every payment flow under load.
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 0)
    kwargs.setdefault("executemany_mode", EXECUTEMANY_MODE)
    ping_idle = kwargs.pop("ping_after_idle_seconds", PING_AFTER_IDLE_SECONDS)
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_idle)
    return engine


def make_relaxed_engine(engine: Engine, *, pool_size: int = 10) -> Engine:
    """A twin of ``engine`` whose commits do not wait for the WAL flush (PostgreSQL's
    ``synchronous_commit = off`` for its whole connections), for ``UnitOfWork.core(flush_wait=False)``.

    A setting of the connection rather than ``SET LOCAL`` in each transaction: that was one more
    round trip on every lease, nonce and session touch — several on each kiosk request. SQLite
    has no such setting, so there the twin is ``engine`` itself.
    """
    if engine.dialect.name != "postgresql":
        return engine
    relaxed = create_engine(engine.url, connect_args={"options": "-c synchronous_commit=off"},
                            pool_size=pool_size, max_overflow=0, executemany_mode=EXECUTEMANY_MODE)
    _ping_when_idle(relaxed, PING_AFTER_IDLE_SECONDS)
    return relaxed


PING_AFTER_IDLE_SECONDS = 5.0
"""A pooled connection unused for this long is pinged before it is handed out."""


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Pre-ping only connections that sat idle in the pool, not one used a moment ago.

    A ping on every checkout (``pool_pre_ping``) is one more round trip for each of the many short
    transactions of a request. A connection that worked a moment ago is taken as alive; if the
    server went away meanwhile, the statement fails, SQLAlchemy sees a disconnect and invalidates
    the whole pool, so every later checkout gets a fresh connection. The ping still guards the case
    it exists for: connections left idle across a restart or failover with no traffic to notice it.
    """

    @event.listens_for(engine, "checkin")
    def _used(_dbapi_connection, record):
        if record is not None:
            record.info["medkiosk_used_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, record, _proxy):
        used_at = record.info.get("medkiosk_used_at")
        if used_at is None or time.monotonic() - used_at < idle_seconds:
            return  # fresh from connect(), or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
            dbapi_connection.rollback()
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
