"""Tables for the operations platform: tickets, inspections and consumables."""

from __future__ import annotations

from medkiosk.store.models import Base  # noqa: F401
