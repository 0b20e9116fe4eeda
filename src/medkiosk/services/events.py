"""Events staff should see: calls for help, refused identifications, refused device requests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from medkiosk.services.clock import Clock
from medkiosk.store.models import Event
from medkiosk.store.uow import UnitOfWork


def record_event(uow: UnitOfWork, clock: Clock, kind: str, message: str, *, severity: str = "info",
                 device_id: str | None = None, details: dict[str, Any] | None = None) -> Event:
    """Add an event to the caller's transaction. ``details`` must already be free of personal data."""
    event = Event(kind=kind, severity=severity, device_id=device_id, message=message, details=details or {},
                  created_at=clock.now())
    uow.session.add(event)
    return event


def recent_events(uow: UnitOfWork, *, kinds: list[str] | None = None, limit: int = 100) -> list[Event]:
    query = select(Event).order_by(Event.id.desc()).limit(limit)
    if kinds:
        query = query.where(Event.kind.in_(kinds))
    return list(uow.session.scalars(query))
