"""Tables for check-in and waiting queues."""

from __future__ import annotations

from medkiosk.store.models import Base  # noqa: F401
