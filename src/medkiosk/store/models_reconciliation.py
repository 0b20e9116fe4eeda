"""Tables for daily reconciliation of payments against the channel, HIS and insurance."""

from __future__ import annotations

from medkiosk.store.models import Base  # noqa: F401
