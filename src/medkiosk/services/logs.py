"""Device logs: batches shipped by the agents, stored once, searched by staff, purged after retention.

Agents mask personal data before a line leaves the kiosk (the same structlog processor the
service uses); every line is masked again on arrival, so a misbehaving agent cannot put a name
or an ID number in front of staff. A batch carries an id: a batch retried after a lost answer is
stored once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from medkiosk.logging import get_logger, mask_personal_data
from medkiosk.services.clock import Clock, as_utc
from medkiosk.store.models_releases import DeviceLogBatch, DeviceLogLine
from medkiosk.store.uow import UnitOfWork

if TYPE_CHECKING:
    from medkiosk.bootstrap import Container

log = get_logger(__name__)

LEVELS = ("debug", "info", "warning", "error", "critical")
_LEVEL_ALIASES = {"warn": "warning", "exception": "error", "fatal": "critical"}
MAX_LINES_PER_BATCH = 1000
MAX_TEXT = 8000
CLOCK_AHEAD = timedelta(minutes=5)
# Fields the line itself carries; everything else is kept in ``fields``.
_META = ("timestamp", "level", "event", "session_id", "logger")


def normalise_level(level: str | None) -> str:
    value = (level or "info").lower()
    value = _LEVEL_ALIASES.get(value, value)
    return value if value in LEVELS else "info"


def levels_at_least(level: str) -> list[str]:
    return list(LEVELS[LEVELS.index(normalise_level(level)):])


def _parse_time(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return fallback
        return as_utc(parsed).astimezone(timezone.utc)
    return fallback


@dataclass(frozen=True)
class LogLineView:
    id: int
    device_id: str
    at: datetime
    level: str
    event: str
    session_id: str | None
    fields: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "device_id": self.device_id, "at": self.at.isoformat(), "level": self.level,
                "event": self.event, "session_id": self.session_id, "fields": self.fields}


@dataclass(frozen=True)
class LogQuery:
    device_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    level: str | None = None
    """The lowest level shown: ``warning`` shows warnings, errors and critical lines."""
    session_id: str | None = None
    text: str | None = None
    before_id: int | None = None
    limit: int = 200


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class LogService:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow_factory
        self._clock = clock

    @classmethod
    def from_container(cls, container: "Container") -> "LogService":
        return cls(container.uow, container.clock)

    def ingest(self, device_id: str, batch_id: str, lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Store one batch; a batch id seen before is acknowledged without storing it again."""
        now = self._clock.now()
        lines = list(lines)[:MAX_LINES_PER_BATCH]
        with self._uow() as uow:
            uow.session.add(DeviceLogBatch(device_id=device_id, batch_id=batch_id, lines=len(lines), received_at=now))
            try:
                uow.session.flush()
            except IntegrityError:
                return {"accepted": 0, "duplicate": True}
            for raw in lines:
                uow.session.add(self._line(device_id, raw, now))
            try:
                uow.commit()
            except IntegrityError:  # a concurrent copy of the same batch won
                return {"accepted": 0, "duplicate": True}
        return {"accepted": len(lines), "duplicate": False}

    @staticmethod
    def _line(device_id: str, raw: dict[str, Any], now: datetime) -> DeviceLogLine:
        masked = mask_personal_data(None, "", dict(raw))
        level = normalise_level(str(masked.get("level", "info")))
        event = str(masked.get("event", ""))[:120]
        session_id = masked.get("session_id")
        session_id = str(session_id)[:64] if session_id else None
        fields = {k: v for k, v in masked.items() if k not in _META}
        text = json.dumps(masked, ensure_ascii=False, default=str, sort_keys=True)[:MAX_TEXT]
        if len(json.dumps(fields, ensure_ascii=False, default=str)) > MAX_TEXT:
            fields = {"truncated": True}
        at = min(_parse_time(masked.get("timestamp"), now), now + CLOCK_AHEAD)  # a kiosk clock far ahead
        return DeviceLogLine(device_id=device_id, at=at, level=level, event=event, session_id=session_id,
                             text=text, fields=json.loads(json.dumps(fields, default=str)), received_at=now)

    def search(self, query: LogQuery) -> list[LogLineView]:
        """Newest first; ``before_id`` pages back."""
        statement = select(DeviceLogLine).order_by(DeviceLogLine.at.desc(), DeviceLogLine.id.desc())
        if query.device_id:
            statement = statement.where(DeviceLogLine.device_id == query.device_id)
        # Compared in UTC: SQLite compares the stored text, so every value must share one offset.
        if query.since:
            statement = statement.where(DeviceLogLine.at >= as_utc(query.since).astimezone(timezone.utc))
        if query.until:
            statement = statement.where(DeviceLogLine.at < as_utc(query.until).astimezone(timezone.utc))
        if query.level:
            statement = statement.where(DeviceLogLine.level.in_(levels_at_least(query.level)))
        if query.session_id:
            statement = statement.where(DeviceLogLine.session_id == query.session_id)
        if query.text:
            statement = statement.where(DeviceLogLine.text.ilike(_like_pattern(query.text), escape="\\"))
        if query.before_id:
            statement = statement.where(DeviceLogLine.id < query.before_id)
        statement = statement.limit(max(1, min(query.limit, 1000)))
        with self._uow() as uow:
            return [LogLineView(r.id, r.device_id, as_utc(r.at), r.level, r.event, r.session_id, dict(r.fields or {}))
                    for r in uow.session.scalars(statement)]

    def purge(self, retention: timedelta) -> int:
        """Delete lines (and batch records) older than ``retention``; returns the lines deleted."""
        cutoff = self._clock.now() - retention
        with self._uow() as uow:
            deleted = uow.session.execute(delete(DeviceLogLine).where(DeviceLogLine.at < cutoff)).rowcount
            uow.session.execute(delete(DeviceLogBatch).where(DeviceLogBatch.received_at < cutoff))
            uow.commit()
        if deleted:
            log.info("logs.purged", lines=deleted, older_than=cutoff.isoformat())
        return deleted or 0
