"""Tables for operations platform: device ledger, telemetry, alerts."""

from __future__ import annotations

from medkiosk.store.models import Base  # noqa: F401
