"""Tables for operations platform: signed releases, rollouts and shipped logs."""

from __future__ import annotations

from medkiosk.store.models import Base  # noqa: F401
