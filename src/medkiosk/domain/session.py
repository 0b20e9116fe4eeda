"""The kiosk session's clock: idle expiry with a warning, and a hard maximum however active."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class SessionEnd(StrEnum):
    LOGOUT = "logout"
    """The patient pressed 退出 or finished."""
    IDLE = "idle"
    """Nobody touched the screen for the idle time."""
    MAX_AGE = "max_age"
    """The session reached its hard limit."""
    REPLACED = "replaced"
    """A new patient identified at the same kiosk."""
    DEVICE = "device"
    """The kiosk's agent reported the session over (e.g. the page went home)."""


@dataclass(frozen=True)
class SessionClock:
    idle: timedelta
    warn: timedelta
    max_age: timedelta

    def __post_init__(self) -> None:
        if self.warn >= self.idle:
            raise ValueError("the warning must come before the idle limit")

    def expires_at(self, started_at: datetime, last_activity_at: datetime) -> datetime:
        return min(last_activity_at + self.idle, started_at + self.max_age)

    def ended_by(self, started_at: datetime, last_activity_at: datetime, now: datetime) -> SessionEnd | None:
        """Why the session is over at ``now``, or None while it lives."""
        if now >= started_at + self.max_age:
            return SessionEnd.MAX_AGE
        if now >= last_activity_at + self.idle:
            return SessionEnd.IDLE
        return None

    def seconds_left(self, started_at: datetime, last_activity_at: datetime, now: datetime) -> int:
        return max(0, int((self.expires_at(started_at, last_activity_at) - now).total_seconds()))

    def should_warn(self, started_at: datetime, last_activity_at: datetime, now: datetime) -> bool:
        left = self.expires_at(started_at, last_activity_at) - now
        return timedelta(0) < left <= self.warn
