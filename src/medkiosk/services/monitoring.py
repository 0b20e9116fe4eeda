"""Monitoring: heartbeats with telemetry in (signed, batched), current state and history out.

Heartbeats arrive from every kiosk every few seconds, so ingestion is built for volume: requests
are queued to one writer thread that takes whatever has accumulated (group commit), verifies
every signature, records all nonces in one statement (a replay is refused just as before), and
writes the current state and the per-minute and per-hour history with upserts — one commit per
batch instead of one per heartbeat.

History is downsampled at write time: minute buckets (kept ``MINUTES_KEPT``) for the last hours'
charts, hour buckets (kept ``HOURS_KEPT``) for transactions per hour and for the usual error
level of each hour of the day. Counters from agents (transactions, failures) are cumulative, as
in Prometheus; the service stores their increase and treats a smaller value as a restart.
"""

from __future__ import annotations

import queue
import threading
import time as _time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medkiosk.logging import get_logger
from medkiosk.security import signing
from medkiosk.services.clock import Clock, as_utc
from medkiosk.services.devices import DeviceAuthError
from medkiosk.services.events import record_event
from medkiosk.store.models import Device, DeviceNonce, DeviceState
from medkiosk.store.models_operations import (DeviceTelemetry, LedgerRecord, TelemetryHour, TelemetryMinute,
                                              UpstreamHealth)
from medkiosk.store.uow import UnitOfWork

log = get_logger(__name__)

MINUTES_KEPT = timedelta(hours=48)
HOURS_KEPT = timedelta(days=90)
MAX_BATCH = 500


@dataclass(frozen=True)
class SignedBeat:
    """A heartbeat request as it came: what was signed, and its parsed body (None when invalid)."""

    headers: Mapping[str, str]
    method: str
    path: str
    body: bytes
    beat: dict[str, Any] | None
    client: str = ""


@dataclass
class DeviceView:
    """One device on the dashboard: ledger place, last heartbeat, telemetry, today's counts."""

    id: str
    name: str
    terminal_type: str
    enabled: bool
    campus: str
    building: str
    floor: str
    area: str
    last_seen_at: datetime | None
    online: bool
    software_version: str = ""
    screen: str = ""
    peripherals: dict[str, dict[str, Any]] = field(default_factory=dict)
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None
    transactions_today: int = 0
    failures_today: int = 0

    @property
    def location(self) -> tuple[str, str, str]:
        return self.campus, self.building, self.floor

    @property
    def success_rate(self) -> float | None:
        if not self.transactions_today:
            return None
        return 1 - self.failures_today / self.transactions_today

    @property
    def faults(self) -> list[str]:
        return [name for name, p in self.peripherals.items() if p.get("state") == "fault"
                or p.get("paper") in ("low", "out")]

    def labels(self) -> dict[str, str]:
        return {"device": self.id, "campus": self.campus, "building": self.building, "floor": self.floor,
                "area": self.area, "terminal_type": self.terminal_type}


def split_location(text: str) -> tuple[str, str, str, str]:
    """``"本部 / 门诊楼 / 2F / 内科候诊区"`` (as ``medkiosk device enroll --location`` takes it)."""
    parts = [p.strip() for p in (text or "").split("/")]
    parts += [""] * (4 - len(parts))
    return parts[0], parts[1], parts[2], " / ".join(p for p in parts[3:] if p)


def _upsert(session: Session, model):
    """The dialect's INSERT … ON CONFLICT on the model's table, executed with many parameter sets
    (one statement compiled once, not a VALUES list compiled per batch)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model.__table__)


def _upsert_rows(connection, statement, rows: list[dict[str, Any]]) -> None:
    """Run an upsert for many rows as multi-row INSERTs (SQLAlchemy's "insertmanyvalues").

    SQLAlchemy folds an executemany INSERT … ON CONFLICT into multi-row statements only when it
    has a RETURNING clause; without one, psycopg2 sends a statement a row (execute_batch: a page of
    100 rows a round trip, each row formatted apart). The RETURNING of the key is only that switch:
    its rows are not read. A batch holds each key once, so no statement touches a row twice.
    """
    table = statement.table
    connection.execute(statement.returning(*table.primary_key.columns), rows)


def _greatest(session: Session, a, b):
    """The larger of two nullable numbers, in the dialect's words."""
    name = "greatest" if session.get_bind().dialect.name == "postgresql" else "max"
    return getattr(func, name)(func.coalesce(a, b), func.coalesce(b, a))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and 0 <= value <= 100 else None


class MonitoringService:
    def __init__(self, uow_factory, clock: Clock, *, max_skew: int = signing.DEFAULT_MAX_SKEW_SECONDS,
                 heartbeat_period: timedelta = timedelta(seconds=5), grace: timedelta = timedelta(seconds=10),
                 timezone=None) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._max_skew = max_skew
        self.heartbeat_period = heartbeat_period
        self.grace = grace
        self.timezone = timezone
        self._keys: dict[str, Any] = {}
        self._queue: queue.SimpleQueue[tuple[SignedBeat, Future]] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()

    # -- group commit -----------------------------------------------------------------------------
    def submit(self, beat: SignedBeat) -> Future:
        """Queue a heartbeat for the writer thread; the future gives its receive time or raises
        :class:`DeviceAuthError`."""
        self._ensure_writer()
        future: Future = Future()
        self._queue.put((beat, future))
        return future

    def _ensure_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            return
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="heartbeat-writer", daemon=True)
                self._writer.start()

    def _write_loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                results = self.ingest([beat for beat, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request must get an answer
                log.exception("heartbeat.batch_failed", size=len(batch))
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results):
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    # -- ingestion ----------------------------------------------------------------------------------
    def _public_key(self, text: str):
        key = self._keys.get(text)
        if key is None:
            if len(self._keys) > 10_000:
                self._keys.clear()
            key = self._keys[text] = signing.public_key_from_text(text)
        return key

    def ingest(self, beats: list[SignedBeat]) -> list[datetime | DeviceAuthError]:
        """Verify and store a batch of heartbeats in one transaction; one result per beat."""
        now = self._clock.now()
        results: list[datetime | DeviceAuthError | None] = [None] * len(beats)
        signed: list[signing.SignedRequest | None] = [None] * len(beats)
        for i, beat in enumerate(beats):
            try:
                signed[i] = signing.read_signed_headers(beat.headers)
            except signing.SignatureError as exc:
                results[i] = DeviceAuthError(exc.reason, exc.detail)
        with self._uow() as uow:
            session = uow.session
            ids = {s.device_id for s in signed if s is not None}
            devices = {row.id: row for row in session.execute(
                select(Device.id, Device.public_key, Device.enabled).where(Device.id.in_(ids)))} if ids else {}
            batch_nonces: set[tuple[str, str]] = set()
            candidates: list[int] = []
            for i, (beat, sig) in enumerate(zip(beats, signed)):
                if sig is None:
                    continue
                device = devices.get(sig.device_id)
                try:
                    if device is None:
                        raise DeviceAuthError("unknown", f"no enrolled device {sig.device_id!r}")
                    if not device.enabled:
                        raise DeviceAuthError("disabled", f"device {device.id} is disabled")
                    try:
                        signing.verify(self._public_key(device.public_key), sig, beat.headers[signing.HEADER_SIGNATURE],
                                       beat.method, beat.path, beat.body, now=now.timestamp(),
                                       max_skew=self._max_skew)
                    except signing.SignatureError as exc:
                        raise DeviceAuthError(exc.reason, exc.detail) from exc
                    if (sig.device_id, sig.nonce) in batch_nonces:
                        raise DeviceAuthError("replayed", "nonce already used")
                except DeviceAuthError as exc:
                    results[i] = exc
                    continue
                batch_nonces.add((sig.device_id, sig.nonce))
                candidates.append(i)
            accepted: list[int] = []
            if candidates:
                rows = [{"device_id": signed[i].device_id, "nonce": signed[i].nonce, "seen_at": now}
                        for i in candidates]
                table = DeviceNonce.__table__
                statement = _upsert(session, DeviceNonce).on_conflict_do_nothing(
                    index_elements=["device_id", "nonce"]).returning(table.c.device_id, table.c.nonce)
                fresh = {(r.device_id, r.nonce) for r in session.connection().execute(statement, rows)}
                for i in candidates:
                    if (signed[i].device_id, signed[i].nonce) in fresh:
                        accepted.append(i)
                    else:
                        results[i] = DeviceAuthError("replayed", "nonce already used")
            stored = [(signed[i].device_id, beats[i].beat) for i in accepted if beats[i].beat is not None]
            if stored:
                self._store(session, stored, now)
            for i in accepted:
                results[i] = now
            for i, result in enumerate(results):
                if isinstance(result, DeviceAuthError):
                    self._refused(uow, beats[i], result)
            uow.commit()
        return results  # type: ignore[return-value]

    def _refused(self, uow: UnitOfWork, beat: SignedBeat, exc: DeviceAuthError) -> None:
        device_id = (beat.headers.get(signing.HEADER_DEVICE) or "")[:32]
        log.warning("device.auth_refused", reason=exc.reason, detail=exc.detail, device_id=device_id,
                    path=beat.path, client=beat.client)
        record_event(uow, self._clock, "device_auth_refused", f"设备请求被拒绝：{exc.reason}", severity="warning",
                     device_id=device_id or None, details={"reason": exc.reason, "path": beat.path,
                                                           "client": beat.client})

    def _store(self, session: Session, beats: list[tuple[str, dict[str, Any]]], now: datetime) -> None:
        latest: dict[str, dict[str, Any]] = {}
        counts: dict[str, int] = {}
        faults: dict[str, int] = {}
        for device_id, beat in beats:
            latest[device_id] = beat
            counts[device_id] = counts.get(device_id, 0) + 1
            if any(p.get("state") == "fault" for p in (beat.get("peripherals") or {}).values()):
                faults[device_id] = faults.get(device_id, 0) + 1
        ids = sorted(latest)  # one order everywhere: no lock-order deadlocks between batches
        states = [{"device_id": d, "last_seen_at": now, "software_version": latest[d].get("software_version", ""),
                   "uptime_seconds": latest[d].get("uptime_seconds", 0), "screen": latest[d].get("screen", ""),
                   "peripherals": latest[d].get("peripherals") or {}} for d in ids]
        connection = session.connection()
        insert = _upsert(session, DeviceState)
        _upsert_rows(connection, insert.on_conflict_do_update(index_elements=["device_id"], set_={
            name: getattr(insert.excluded, name)
            for name in ("last_seen_at", "software_version", "uptime_seconds", "screen", "peripherals")}), states)

        previous = {row.device_id: row for row in session.execute(
            select(DeviceTelemetry.device_id, DeviceTelemetry.transactions_total, DeviceTelemetry.failures_total)
            .where(DeviceTelemetry.device_id.in_(ids)))}
        telemetry_rows, buckets = [], []
        for d in ids:
            t = latest[d].get("telemetry") or {}
            tx, fail = int(t.get("transactions") or 0), int(t.get("failures") or 0)
            before = previous.get(d)
            # Counters only grow; a smaller one means the agent restarted and counts from zero.
            tx_delta = tx - before.transactions_total if before and tx >= before.transactions_total else tx
            fail_delta = fail - before.failures_total if before and fail >= before.failures_total else fail
            cpu, memory, disk = (_number(t.get("cpu_percent")), _number(t.get("memory_percent")),
                                 _number(t.get("disk_percent")))
            telemetry_rows.append({"device_id": d, "reported_at": now, "cpu_percent": cpu, "memory_percent": memory,
                                   "disk_percent": disk, "transactions_total": tx, "failures_total": fail})
            buckets.append({"device_id": d, "beats": counts[d], "cpu_max": cpu, "memory_max": memory,
                            "disk_max": disk, "transactions": max(tx_delta, 0), "failures": max(fail_delta, 0),
                            "peripheral_faults": faults.get(d, 0)})
        insert = _upsert(session, DeviceTelemetry)
        _upsert_rows(connection, insert.on_conflict_do_update(index_elements=["device_id"], set_={
            name: getattr(insert.excluded, name) for name in
            ("reported_at", "cpu_percent", "memory_percent", "disk_percent", "transactions_total", "failures_total")}),
            telemetry_rows)
        minute = now.replace(second=0, microsecond=0)
        hour = minute.replace(minute=0)
        for model, bucket in ((TelemetryMinute, minute), (TelemetryHour, hour)):
            insert = _upsert(session, model)
            table = model.__table__.c
            _upsert_rows(connection, insert.on_conflict_do_update(index_elements=["device_id", "bucket"], set_={
                "beats": table.beats + insert.excluded.beats,
                "transactions": table.transactions + insert.excluded.transactions,
                "failures": table.failures + insert.excluded.failures,
                "peripheral_faults": table.peripheral_faults + insert.excluded.peripheral_faults,
                "cpu_max": _greatest(session, table.cpu_max, insert.excluded.cpu_max),
                "memory_max": _greatest(session, table.memory_max, insert.excluded.memory_max),
                "disk_max": _greatest(session, table.disk_max, insert.excluded.disk_max)}),
                [{**b, "bucket": bucket} for b in buckets])

    # -- reading --------------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self._clock.now()

    def online(self, last_seen: datetime | None, now: datetime) -> bool:
        return last_seen is not None and now - as_utc(last_seen) <= self.heartbeat_period + self.grace

    def fleet(self) -> list[DeviceView]:
        """Every enrolled device with its ledger place, last heartbeat, telemetry and today's counts."""
        now = self._clock.now()
        local_midnight = now.astimezone(self.timezone).replace(hour=0, minute=0, second=0, microsecond=0) \
            if self.timezone else now.replace(hour=0, minute=0, second=0, microsecond=0)
        local_midnight = local_midnight.astimezone(timezone.utc)  # SQLite compares stored UTC text
        with self._uow() as uow:
            # Plain columns, not ORM objects: this runs every evaluation round for the whole fleet.
            rows = uow.session.execute(
                select(Device.id, Device.name, Device.terminal_type, Device.enabled, Device.location,
                       DeviceState.last_seen_at, DeviceState.software_version, DeviceState.screen,
                       DeviceState.peripherals, DeviceState.device_id.label("has_state"),
                       LedgerRecord.campus, LedgerRecord.building, LedgerRecord.floor, LedgerRecord.area,
                       LedgerRecord.name.label("ledger_name"), LedgerRecord.device_id.label("has_ledger"),
                       DeviceTelemetry.cpu_percent, DeviceTelemetry.memory_percent, DeviceTelemetry.disk_percent)
                .select_from(Device)
                .outerjoin(DeviceState, DeviceState.device_id == Device.id)
                .outerjoin(LedgerRecord, LedgerRecord.device_id == Device.id)
                .outerjoin(DeviceTelemetry, DeviceTelemetry.device_id == Device.id)
                .order_by(Device.id)).all()
            today = {row.device_id: (int(row.tx or 0), int(row.fail or 0)) for row in uow.session.execute(
                select(TelemetryHour.device_id, func.sum(TelemetryHour.transactions).label("tx"),
                       func.sum(TelemetryHour.failures).label("fail"))
                .where(TelemetryHour.bucket >= local_midnight).group_by(TelemetryHour.device_id))}
        views = []
        for row in rows:
            if row.has_ledger is not None:
                campus, building, floor, area = row.campus, row.building, row.floor, row.area
            else:
                campus, building, floor, area = split_location(row.location)
            has_state = row.has_state is not None
            last_seen = as_utc(row.last_seen_at) if has_state and row.last_seen_at else None
            tx, fail = today.get(row.id, (0, 0))
            views.append(DeviceView(
                row.id, row.ledger_name or row.name, row.terminal_type, row.enabled, campus, building, floor, area,
                last_seen, self.online(last_seen, now),
                (row.software_version or "") if has_state else "", (row.screen or "") if has_state else "",
                dict(row.peripherals or {}) if has_state else {},
                row.cpu_percent, row.memory_percent, row.disk_percent, tx, fail))
        return views

    def hourly(self, hours: int = 12, device_id: str | None = None) -> dict[str, dict[datetime, tuple[int, int]]]:
        """Transactions and failures per hour per device over the last ``hours`` hours."""
        since = self._clock.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
        query = select(TelemetryHour.device_id, TelemetryHour.bucket, TelemetryHour.transactions,
                       TelemetryHour.failures).where(TelemetryHour.bucket >= since)
        if device_id:
            query = query.where(TelemetryHour.device_id == device_id)
        out: dict[str, dict[datetime, tuple[int, int]]] = {}
        with self._uow() as uow:
            for row in uow.session.execute(query):
                out.setdefault(row.device_id, {})[as_utc(row.bucket)] = (row.transactions, row.failures)
        return out

    def minutes(self, device_id: str, minutes: int = 120) -> list[TelemetryMinute]:
        since = self._clock.now() - timedelta(minutes=minutes)
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(TelemetryMinute).where(
                TelemetryMinute.device_id == device_id, TelemetryMinute.bucket >= since).order_by(TelemetryMinute.bucket)))
            for row in rows:
                uow.session.expunge(row)
            return rows

    def usual_error_rates(self, device_id: str, hour_of_day: int, days: int = 14) -> list[float]:
        """The failure rate of this device in the same hour (UTC bucket) on earlier days."""
        now = self._clock.now()
        since = now - timedelta(days=days)
        this_hour = now.replace(minute=0, second=0, microsecond=0)
        with self._uow() as uow:
            rows = uow.session.execute(select(TelemetryHour.bucket, TelemetryHour.transactions, TelemetryHour.failures)
                                       .where(TelemetryHour.device_id == device_id, TelemetryHour.bucket >= since,
                                              TelemetryHour.bucket < this_hour)).all()
        return [r.failures / r.transactions for r in rows
                if as_utc(r.bucket).hour == hour_of_day and r.transactions > 0]

    def upstreams(self) -> list[UpstreamHealth]:
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(UpstreamHealth).order_by(UpstreamHealth.name)))
            for row in rows:
                uow.session.expunge(row)
            return rows

    # -- upstream probes ----------------------------------------------------------------------------------
    def probe_upstreams(self, targets: Mapping[str, str], *, timeout: float = 3.0,
                        client: httpx.Client | None = None) -> None:
        """A black-box probe of each upstream: any HTTP answer below 500 in time is up."""
        results = []
        own = client is None
        client = client or httpx.Client(timeout=timeout)
        try:
            for name, url in targets.items():
                started = _time.monotonic()
                try:
                    response = client.get(url)
                    up, error = response.status_code < 500, ("" if response.status_code < 500
                                                             else f"HTTP {response.status_code}")
                except httpx.HTTPError as exc:
                    up, error = False, type(exc).__name__
                results.append((name, up, error, int((_time.monotonic() - started) * 1000)))
        finally:
            if own:
                client.close()
        self.record_probes(results)

    def record_probes(self, results: list[tuple[str, bool, str, int]]) -> None:
        try:
            self._record_probes(results)
        except IntegrityError:
            # Another worker process added an upstream's first row at the same moment: it is there now.
            self._record_probes(results)

    def _record_probes(self, results: list[tuple[str, bool, str, int]]) -> None:
        now = self._clock.now()
        with self._uow() as uow:
            for name, up, error, latency in results:
                row = uow.session.get(UpstreamHealth, name)
                if row is None:
                    row = UpstreamHealth(name=name, up=up, since=now, checks=0, failures=0, checked_at=now)
                    uow.session.add(row)
                if row.up != up:
                    row.since = now
                    log.warning("upstream.changed", upstream=name, up=up, error=error)
                row.up, row.error, row.latency_ms, row.checked_at = up, error[:200], latency, now
                row.checks = (row.checks or 0) + 1
                row.failures = (row.failures or 0) + (0 if up else 1)
            uow.commit()

    # -- retention ----------------------------------------------------------------------------------------
    def purge_history(self) -> int:
        now = self._clock.now()
        with self._uow() as uow:
            removed = uow.session.execute(delete(TelemetryMinute).where(TelemetryMinute.bucket < now - MINUTES_KEPT))
            removed_hours = uow.session.execute(delete(TelemetryHour).where(TelemetryHour.bucket < now - HOURS_KEPT))
            uow.commit()
        return (removed.rowcount or 0) + (removed_hours.rowcount or 0)
