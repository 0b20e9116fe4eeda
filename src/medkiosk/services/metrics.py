"""What ``/metrics`` reads from the database when it is scraped: payment flows, kiosks, alerts.

Read rather than counted in the process because the store already knows them exactly, whichever
service copy or worker did the work and across restarts: a payment order in a terminal state got
there by exactly one transition and never leaves it, so the number of orders in each terminal state
is the number of flows that ended that way — a counter. Every service copy reports the same fleet
figures; take ``max`` across copies in Grafana, not ``sum``.

Labels are outcomes, rules, severities, states and device ids (K001: a machine, not a person).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select

from medkiosk import __version__
from medkiosk.domain.payment import TERMINAL_STATES
from medkiosk.services.monitoring import MonitoringService
from medkiosk.store.models import Device, DeviceState, PaymentOrder
from medkiosk.store.models_operations import AlertRecord
from medkiosk.store.uow import UnitOfWork

OPEN_ALERT_STATES = ("pending", "firing")


class FleetCollector:
    """A prometheus-client collector over the store; ``rules`` maps each built-in rule to its
    severity, so a rule with nothing firing still shows as 0."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork], monitoring: MonitoringService,
                 rules: dict[str, str]) -> None:
        self._uow = uow_factory
        self._monitoring = monitoring
        self._rules = rules

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily("medkiosk_build_info", "The service's version", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        with self._uow() as uow:
            yield from self._payments(uow)
            yield from self._kiosks(uow)
            yield from self._alerts(uow)

    def _payments(self, uow: UnitOfWork) -> Iterator[Metric]:
        counts = dict(uow.session.execute(select(PaymentOrder.state, func.count()).group_by(PaymentOrder.state)).all())
        flows = CounterMetricFamily("medkiosk_payment_flows",
                                    "Payment flows that ended, by outcome (completed, refunded, closed, failed)",
                                    labels=["outcome"])
        for state in sorted(TERMINAL_STATES):
            flows.add_metric([state.value], counts.get(state.value, 0))
        yield flows
        in_flight = GaugeMetricFamily("medkiosk_payment_flows_in_progress",
                                      "Payment orders not yet in a terminal state, by state", labels=["state"])
        for state, count in sorted(counts.items()):
            if state not in {s.value for s in TERMINAL_STATES}:
                in_flight.add_metric([state], count)
        yield in_flight

    def _kiosks(self, uow: UnitOfWork) -> Iterator[Metric]:
        now = self._monitoring.now()
        rows = uow.session.execute(select(Device.id, Device.enabled, DeviceState.last_seen_at)
                                   .outerjoin(DeviceState, DeviceState.device_id == Device.id)
                                   .order_by(Device.id)).all()
        totals = {"online": 0, "offline": 0, "disabled": 0}
        up = GaugeMetricFamily("medkiosk_kiosk_online",
                               "1 while the kiosk's heartbeats arrive (dead-man's switch: period + grace), else 0",
                               labels=["device"])
        for device_id, enabled, last_seen in rows:
            if not enabled:
                totals["disabled"] += 1
                continue
            online = self._monitoring.online(last_seen, now)
            totals["online" if online else "offline"] += 1
            up.add_metric([device_id], 1 if online else 0)
        kiosks = GaugeMetricFamily("medkiosk_kiosks", "Enrolled kiosks and ward terminals by state",
                                   labels=["state"])
        for state, count in totals.items():
            kiosks.add_metric([state], count)
        yield kiosks
        yield up

    def _alerts(self, uow: UnitOfWork) -> Iterator[Metric]:
        counts = {(rule, severity, state): count for rule, severity, state, count in uow.session.execute(
            select(AlertRecord.rule, AlertRecord.severity, AlertRecord.state, func.count())
            .where(AlertRecord.state.in_(OPEN_ALERT_STATES))
            .group_by(AlertRecord.rule, AlertRecord.severity, AlertRecord.state))}
        for rule, severity in self._rules.items():
            counts.setdefault((rule, severity, "firing"), 0)
        alerts = GaugeMetricFamily("medkiosk_alerts", "Open alerts by rule, severity and state (pending, firing)",
                                   labels=["rule", "severity", "state"])
        for (rule, severity, state), count in sorted(counts.items()):
            alerts.add_metric([rule, severity, state], count)
        yield alerts
