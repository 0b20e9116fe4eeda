"""Wiring of the operations platform's services (ledger, monitoring, alerts, tickets, inspections,
consumables) onto a container.

Kept beside, not inside, bootstrap's Container so the operations area grows without touching the
shared wiring: ``operations_of(container)`` builds them once per container.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from medkiosk.domain.alerts import WeeklyWindow
from medkiosk.services.alerts import AlertConfig, AlertService
from medkiosk.services.consumables import ConsumableService
from medkiosk.services.inspections import InspectionService
from medkiosk.services.ledger import LedgerService
from medkiosk.services.major_events import active_major_event
from medkiosk.services.monitoring import MonitoringService
from medkiosk.services.tickets import TicketService

if TYPE_CHECKING:
    from medkiosk.bootstrap import Container

_lock = threading.Lock()


@dataclass
class Operations:
    ledger: LedgerService
    monitoring: MonitoringService
    alerts: AlertService
    upstreams: dict[str, str]
    tickets: TicketService
    consumables: ConsumableService
    inspections: InspectionService

    def probe(self) -> None:
        self.monitoring.probe_upstreams(self.upstreams)

    def housekeeping(self) -> None:
        self.monitoring.purge_history()

    def close(self) -> None:
        self.alerts.close()


def build_operations(container: "Container") -> Operations:
    settings = container.settings
    monitoring = MonitoringService(container.uow, container.clock, max_skew=settings.signature_max_skew_seconds,
                                   grace=timedelta(seconds=settings.ops_heartbeat_grace_seconds), timezone=settings.tz)
    windows = tuple(WeeklyWindow.parse(part.strip()) for part in settings.ops_business_hours.split(";") if part.strip())
    config = AlertConfig(offline_for=timedelta(seconds=settings.ops_offline_for_seconds), business_hours=windows,
                         tz=settings.tz)
    upstreams = {"his": settings.his_url, "insurance": settings.insurance_url, "payment": settings.payment_url,
                 "einvoice": settings.einvoice_url}
    alerts = AlertService(container.uow, container.clock, monitoring, config=config, upstream_names=upstreams,
                          major_event=lambda: active_major_event(container))
    tickets = TicketService(container.uow, container.clock)
    consumables = ConsumableService(container.uow, container.clock, settings.tz)
    inspections = InspectionService(container.uow, container.clock, settings.tz, monitoring, consumables, tickets)
    return Operations(LedgerService(container.uow, container.clock, container.devices), monitoring, alerts, upstreams,
                      tickets, consumables, inspections)


def operations_of(container: "Container") -> Operations:
    ops = getattr(container, "_operations", None)
    if ops is None:
        with _lock:
            ops = getattr(container, "_operations", None)
            if ops is None:
                ops = build_operations(container)
                container._operations = ops  # type: ignore[attr-defined]
    return ops
