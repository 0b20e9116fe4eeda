"""Major-event mode (重大保障): staff set a period with tighter thresholds; others read it.

``active_major_event(container)`` (or ``MajorEventService.active()``) is what the alert rules
read: ``None`` outside any period, else the period with its ``thresholds`` dict. What each
threshold means for an alert rule is the alerts' business. Releases read it too: new rollouts
are refused during a period whose thresholds say ``freeze_releases`` (a change freeze), unless
forced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from medkiosk.domain.releases import DEFAULT_MAJOR_EVENT_THRESHOLDS, MajorEventPeriod
from medkiosk.logging import get_logger
from medkiosk.services import audit
from medkiosk.services.clock import Clock, as_utc
from medkiosk.store.models_releases import MajorEvent
from medkiosk.store.uow import UnitOfWork

if TYPE_CHECKING:
    from medkiosk.bootstrap import Container

log = get_logger(__name__)


class MajorEventError(ValueError):
    """A period refused; the message is Chinese and shown as is."""


def _period(row: MajorEvent) -> MajorEventPeriod:
    return MajorEventPeriod(row.id, row.name, as_utc(row.starts_at), as_utc(row.ends_at), dict(row.thresholds or {}),
                            row.note)


class MajorEventService:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow_factory
        self._clock = clock

    @classmethod
    def from_container(cls, container: "Container") -> "MajorEventService":
        return cls(container.uow, container.clock)

    def create(self, *, name: str, starts_at: datetime, ends_at: datetime, actor: str,
               thresholds: Mapping[str, Any] | None = None, note: str = "") -> MajorEventPeriod:
        name = name.strip()
        if not name or len(name) > 100:
            raise MajorEventError("请填写保障名称（100 字以内）")
        if ends_at <= starts_at:
            raise MajorEventError("结束时间必须晚于开始时间")
        values = {**DEFAULT_MAJOR_EVENT_THRESHOLDS, **dict(thresholds or {})}
        # Stored in UTC: SQLite compares the stored text, so every row must share one offset.
        starts_at, ends_at = as_utc(starts_at).astimezone(timezone.utc), as_utc(ends_at).astimezone(timezone.utc)
        with self._uow() as uow:
            row = MajorEvent(name=name, starts_at=starts_at, ends_at=ends_at, thresholds=values, note=note.strip(),
                             created_by=actor, created_at=self._clock.now())
            uow.session.add(row)
            uow.session.flush()
            audit.append(uow, self._clock, actor, "major_event.created", f"major_event:{row.id}",
                         {"name": name, "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat()})
            uow.commit()
            period = _period(row)
        log.info("major_event.created", id=period.id, name=name, starts_at=starts_at.isoformat(),
                 ends_at=ends_at.isoformat(), actor=actor)
        return period

    def cancel(self, event_id: int, *, actor: str) -> None:
        with self._uow() as uow:
            row = uow.session.get(MajorEvent, event_id)
            if row is None or row.cancelled_at is not None:
                raise MajorEventError(f"没有进行中的第 {event_id} 号保障")
            row.cancelled_at = self._clock.now()
            audit.append(uow, self._clock, actor, "major_event.cancelled", f"major_event:{event_id}", {"name": row.name})
            uow.commit()

    def active(self, now: datetime | None = None) -> MajorEventPeriod | None:
        """The period in force now (the one ending last when periods overlap), or ``None``."""
        now = as_utc(now or self._clock.now()).astimezone(timezone.utc)
        with self._uow() as uow:
            row = uow.session.scalars(
                select(MajorEvent).where(MajorEvent.cancelled_at.is_(None), MajorEvent.starts_at <= now,
                                         MajorEvent.ends_at > now)
                .order_by(MajorEvent.ends_at.desc()).limit(1)).first()
            return _period(row) if row else None

    def periods(self, *, limit: int = 50) -> list[tuple[MajorEventPeriod, bool]]:
        """Newest first, each with whether it was cancelled."""
        with self._uow() as uow:
            rows = uow.session.scalars(select(MajorEvent).order_by(MajorEvent.starts_at.desc()).limit(limit))
            return [(_period(row), row.cancelled_at is not None) for row in rows]

    def release_freeze_reason(self, now: datetime) -> str | None:
        period = self.active(now)
        if period is None or not period.thresholds.get("freeze_releases", False):
            return None
        return f"重大保障“{period.name}”"


def active_major_event(container: "Container") -> MajorEventPeriod | None:
    """For the alert rules: the major-event period in force now, with its thresholds, or ``None``."""
    return MajorEventService.from_container(container).active()
