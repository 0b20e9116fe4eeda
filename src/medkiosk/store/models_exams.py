"""Tables for exam appointments and document reprints."""

from __future__ import annotations

from medkiosk.store.models import Base  # noqa: F401
