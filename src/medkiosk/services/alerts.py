"""Alerts: the built-in rules, their evaluation against the fleet, and what staff do with alerts.

``evaluate()`` runs every few seconds (api/app.py's background loop): it reads the fleet's
current state, asks ``domain.alerts`` which alerts start, fire and resolve, stores that, plans
notifications (grouping, silences, inhibition, business hours) and delivers them. On PostgreSQL
only one service copy evaluates at a time (a try-lock); the others skip the round. While a
major-event period is on (services.major_events), the rules are tightened (``tighten``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from sqlalchemy import select, text

from medkiosk.domain import alerts as domain
from medkiosk.domain.alerts import (
    Alert,
    AlertState,
    BusinessHours,
    ChangeKind,
    FleetDevice,
    InhibitRule,
    Matcher,
    Rule,
    Series,
    Severity,
    Silence,
    WeeklyWindow,
)
from medkiosk.domain.releases import MajorEventPeriod
from medkiosk.domain.tickets import RESOLVE_RUNS_IN, ClockLevel
from medkiosk.logging import get_logger
from medkiosk.services import audit
from medkiosk.services.clock import Clock, as_utc
from medkiosk.services.monitoring import DeviceView, MonitoringService
from medkiosk.services.notify import Channel, ChannelKind, DeliveryFailed, Notifier
from medkiosk.services.tickets import readings as ticket_readings
from medkiosk.store.models import Event
from medkiosk.store.models_operations import (
    AlertGroup,
    AlertRecord,
    NotificationRecord,
    NotifyChannel,
    SilenceRecord,
    TelemetryHour,
    UpstreamHealth,
)
from medkiosk.store.models_tickets import Ticket
from medkiosk.store.uow import UnitOfWork

log = get_logger(__name__)

# "mkalerts": one evaluator at a time across service copies (PostgreSQL).
EVALUATION_LOCK_KEY = 0x6D6B616C65727473
PAYMENT_EVENTS = ("payment_anomaly", "payment_stuck")
TICKET_CLOCK_STATES = [state.value for state in RESOLVE_RUNS_IN]  # a ticket whose clocks can be running
PRINTERS = ("receipt_printer", "a4_printer")
CARD_READERS = ("insurance_card_reader", "id_card_reader")
LOCATION = ("campus", "building", "floor")


def builtin_rules(offline_for: timedelta = timedelta(seconds=30)) -> dict[str, Rule]:
    rules = [
        Rule("device_offline", Severity.CRITICAL, "{device}（{building} {floor} {area}）离线：{value}",
             for_=offline_for, keep_firing_for=timedelta(seconds=30)),
        Rule("location_network_down", Severity.CRITICAL, "{campus} {building} {floor} 全部终端失联，疑似网络中断",
             for_=offline_for),
        Rule("paper_low", Severity.WARNING, "{device}（{building} {floor}）{peripheral} 纸将尽，请及时更换",
             business_hours_only=True, group_by=("rule", "campus", "building")),
        Rule("paper_out", Severity.CRITICAL, "{device}（{building} {floor}）{peripheral} 缺纸，无法打印"),
        Rule("card_reader_fault", Severity.CRITICAL, "{device}（{building} {floor}）{peripheral} 故障：{value}",
             for_=timedelta(seconds=30)),
        Rule("printer_fault", Severity.CRITICAL, "{device}（{building} {floor}）{peripheral} 故障：{value}",
             for_=timedelta(seconds=30)),
        Rule("error_rate_spike", Severity.WARNING, "{device}（{building} {floor}）本小时交易失败率异常：{value}",
             keep_firing_for=timedelta(minutes=10), business_hours_only=True),
        Rule("payment_anomaly", Severity.CRITICAL, "{device} 缴费异常（订单 {order}）：{value}",
             group_by=("rule", "device")),
        Rule("upstream_down", Severity.CRITICAL, "上游系统 {upstream} 不可用：{value}", for_=timedelta(seconds=30),
             group_by=("rule", "upstream")),
        # A ticket's time-to-own or time-to-resolve clock (DESIGN 10): warn at 75 %, breached at 100 %.
        Rule("ticket_sla_warning", Severity.WARNING, "工单 #{ticket}（{device}）{clock}时限将到：{value}",
             group_by=("rule",)),
        Rule("ticket_sla_breached", Severity.CRITICAL, "工单 #{ticket}（{device}）{clock}已超时：{value}",
             group_by=("rule",)),
    ]
    return {rule.name: rule for rule in rules}


def _m(*texts: str) -> tuple[Matcher, ...]:
    return tuple(Matcher.parse(t) for t in texts)


BUILTIN_INHIBITIONS = (
    # A floor whose every kiosk went quiet is one network problem, not ten kiosk problems.
    InhibitRule(_m("rule=location_network_down"),
                _m("rule=~device_offline|paper_low|paper_out|card_reader_fault|printer_fault|error_rate_spike"),
                LOCATION),
    # An offline kiosk's last reported peripherals are stale: its offline alert says it all.
    InhibitRule(_m("rule=device_offline"), _m("rule=~paper_low|paper_out|card_reader_fault|printer_fault"),
                ("device",)),
    # A printer out of paper also reports itself faulty; the paper alert says what to do.
    InhibitRule(_m("rule=paper_out"), _m("rule=~printer_fault|paper_low"), ("device", "peripheral")),
    # When an upstream is down, every kiosk's failures are explained.
    InhibitRule(_m("rule=upstream_down"), _m("rule=error_rate_spike"), ()),
)

PERIPHERAL_NAMES = {"insurance_card_reader": "医保卡读卡器", "id_card_reader": "身份证读卡器", "qr_scanner": "扫码器",
                    "receipt_printer": "凭条打印机", "a4_printer": "A4打印机", "bank_pos": "银行POS"}
UPSTREAM_NAMES = {"his": "HIS", "insurance": "医保平台", "payment": "支付渠道", "einvoice": "电子票据平台"}


@dataclass
class AlertConfig:
    offline_for: timedelta = timedelta(seconds=30)
    business_hours: tuple[WeeklyWindow, ...] = (WeeklyWindow.parse("1-5 07:00-18:00"),
                                                WeeklyWindow.parse("6-7 08:00-12:00"))
    tz: tzinfo = timezone(timedelta(hours=8))
    route: domain.Route = field(default_factory=domain.Route)
    spike_every: timedelta = timedelta(seconds=60)


class AlertNotFound(LookupError):
    pass


DEFAULT_SPIKE_FACTOR = 3.0


@dataclass(frozen=True)
class Tightened:
    """The rules, route and error-rate factor in force (tighter during a major event)."""

    rules: dict[str, Rule]
    route: domain.Route
    spike_factor: float = DEFAULT_SPIKE_FACTOR
    period: str = ""


def tighten(rules: Mapping[str, Rule], route: domain.Route, thresholds: Mapping[str, Any] | None,
            name: str = "") -> Tightened:
    """Major-event mode (重大保障) applied to the rules, pure. ``thresholds`` (services.major_events):

    - ``offline_for_seconds``: the offline and network-down rules fire sooner (never later than usual);
    - ``error_rate_factor``: an error-rate spike needs only this many times the usual rate;
    - ``paper_low_warns``: business-hours-only rules (paper low, error spikes) notify at any hour —
      major events fall on holidays and weekends;
    - ``escalate_after_minutes``: escalation — warnings are raised to critical (so they reach the
      channels kept for critical alerts) and a still-firing group is notified again after this long
      instead of every 4 hours.
    """
    if thresholds is None:
        return Tightened(dict(rules), route)
    out: dict[str, Rule] = {}
    offline = thresholds.get("offline_for_seconds")
    escalate = thresholds.get("escalate_after_minutes")
    for key, rule in rules.items():
        if offline and key in ("device_offline", "location_network_down"):
            rule = replace(rule, for_=min(rule.for_, timedelta(seconds=float(offline))))
        if thresholds.get("paper_low_warns", True) and rule.business_hours_only:
            rule = replace(rule, business_hours_only=False)
        if escalate and rule.severity is Severity.WARNING:
            rule = replace(rule, severity=Severity.CRITICAL)
        out[key] = rule
    if escalate:
        every = timedelta(minutes=float(escalate))
        route = replace(route, repeat_interval=min(route.repeat_interval, every),
                        group_interval=min(route.group_interval, every))
    factor = float(thresholds.get("error_rate_factor") or DEFAULT_SPIKE_FACTOR)
    return Tightened(out, route, min(factor, DEFAULT_SPIKE_FACTOR), name)


def _to_domain(row: AlertRecord) -> Alert:
    return Alert(row.fingerprint, row.rule, Severity(row.severity), dict(row.labels or {}), row.summary,
                 AlertState(row.state), as_utc(row.active_since), as_utc(row.last_true_at),
                 as_utc(row.fired_at) if row.fired_at else None, as_utc(row.resolved_at) if row.resolved_at else None,
                 AlertState(row.notified_state) if row.notified_state else None)


def _copy(alert: Alert, row: AlertRecord) -> None:
    row.state, row.summary, row.last_true_at = alert.state.value, alert.summary, alert.last_true_at
    row.fired_at, row.resolved_at = alert.fired_at, alert.resolved_at
    row.notified_state = alert.notified_state.value if alert.notified_state else None
    row.open_key = alert.fingerprint if alert.open else None


def silence_of(row: SilenceRecord) -> Silence:
    window = None
    if row.window:
        window = WeeklyWindow(frozenset(row.window["weekdays"]), datetime.strptime(row.window["start"], "%H:%M").time(),
                              datetime.strptime(row.window["end"], "%H:%M").time())
    return Silence(row.id, tuple(Matcher.parse(m) for m in row.matchers), as_utc(row.starts_at), as_utc(row.ends_at),
                   window)


class AlertService:
    def __init__(self, uow_factory, clock: Clock, monitoring: MonitoringService, *,
                 config: AlertConfig | None = None, notifier: Notifier | None = None,
                 upstream_names: Iterable[str] = (),
                 major_event: Callable[[], MajorEventPeriod | None] | None = None) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._monitoring = monitoring
        self.config = config or AlertConfig()
        self.rules = builtin_rules(self.config.offline_for)
        self.inhibitions = BUILTIN_INHIBITIONS
        self.business_hours = BusinessHours(self.config.business_hours, self.config.tz)
        self._notifier = notifier or Notifier()
        self._upstream_names = tuple(upstream_names)
        self._spikes: tuple[datetime, float, list[Series]] | None = None
        self._major_event = major_event
        self.on_notify: Callable[[Channel, domain.Notification], None] | None = None

    def close(self) -> None:
        self._notifier.close()

    def in_force(self) -> Tightened:
        """The rules as they apply now: the built-in ones, tightened while a major event is on."""
        period = self._major_event() if self._major_event else None
        if period is None:
            return Tightened(self.rules, self.config.route)
        return tighten(self.rules, self.config.route, period.thresholds, period.name)

    # -- conditions ------------------------------------------------------------------------------------
    def collect(self, fleet: list[DeviceView], now: datetime, *,
                spike_factor: float = DEFAULT_SPIKE_FACTOR) -> dict[str, list[Series]]:
        """Each built-in rule's active series from the fleet, upstream probes and payment events."""
        series: dict[str, list[Series]] = {name: [] for name in self.rules}
        period, grace = self._monitoring.heartbeat_period, self._monitoring.grace
        watched = [d for d in fleet if d.enabled and d.last_seen_at is not None]
        overdue = {d.id for d in watched if domain.heartbeat_overdue(d.last_seen_at, now, period=period, grace=grace)}
        for device in watched:
            labels = device.labels()
            if device.id in overdue:
                quiet = int((now - device.last_seen_at).total_seconds())
                series["device_offline"].append(Series(labels, f"{quiet} 秒无心跳", since=device.last_seen_at))
                continue
            for name, peripheral in device.peripherals.items():
                state, paper = peripheral.get("state"), peripheral.get("paper")
                plabels = {**labels, "peripheral": PERIPHERAL_NAMES.get(name, name)}
                detail = str(peripheral.get("detail", ""))[:80]
                if name in PRINTERS:
                    if paper == "out":
                        series["paper_out"].append(Series(plabels, detail))
                    elif paper == "low":
                        series["paper_low"].append(Series(plabels, detail))
                    # Paper out makes a printer report a fault; the paper alert already says what to do.
                    if (state == "fault" and paper != "out") or (state == "offline" and peripheral.get("driver") != "none"):
                        series["printer_fault"].append(Series(plabels, detail or state))
                elif name in CARD_READERS:
                    if state == "fault" or (state == "offline" and peripheral.get("driver") != "none"):
                        series["card_reader_fault"].append(Series(plabels, detail or state))
        floors = domain.locations_down(
            [FleetDevice(d.id, d.location, d.id in overdue, d.last_seen_at) for d in watched])
        for (campus, building, floor), since in floors.items():
            series["location_network_down"].append(
                Series({"campus": campus, "building": building, "floor": floor}, since=since))
        series["error_rate_spike"] = self._error_spikes(watched, now, spike_factor)
        return series

    def _error_spikes(self, fleet: list[DeviceView], now: datetime,
                      factor: float = DEFAULT_SPIKE_FACTOR) -> list[Series]:
        """Costly (two weeks of hours), so computed once a minute; between, the last answer stands."""
        if self._spikes and now - self._spikes[0] < self.config.spike_every and self._spikes[1] == factor:
            return self._spikes[2]
        this_hour = now.replace(minute=0, second=0, microsecond=0)
        with self._uow() as uow:
            rows = uow.session.execute(select(TelemetryHour.device_id, TelemetryHour.bucket,
                                              TelemetryHour.transactions, TelemetryHour.failures)
                                       .where(TelemetryHour.bucket >= this_hour - timedelta(days=14))).all()
        current: dict[str, tuple[int, int]] = {}
        usual: dict[str, list[float]] = {}
        for row in rows:
            bucket = as_utc(row.bucket)
            if bucket == this_hour:
                current[row.device_id] = (row.transactions, row.failures)
            elif bucket.hour == this_hour.hour and row.transactions > 0:
                usual.setdefault(row.device_id, []).append(row.failures / row.transactions)
        found = []
        for device in fleet:
            tx, fail = current.get(device.id, (0, 0))
            if domain.error_rate_spike(tx, fail, usual.get(device.id, []), factor=factor):
                found.append(Series(device.labels(), f"{fail}/{tx} 笔失败"))
        self._spikes = (now, factor, found)
        return found

    def _payment_series(self, uow: UnitOfWork, now: datetime) -> list[Series]:
        events = uow.session.scalars(select(Event).where(
            Event.kind.in_(PAYMENT_EVENTS), Event.handled_at.is_(None),
            Event.created_at >= now - timedelta(days=7)).order_by(Event.id).limit(200))
        return [Series({"device": e.device_id or "", "event": str(e.id), "kind": e.kind,
                        "order": str((e.details or {}).get("order_no", ""))}, e.message[:120],
                       since=as_utc(e.created_at)) for e in events]

    def _upstream_series(self, uow: UnitOfWork) -> list[Series]:
        return [Series({"upstream": UPSTREAM_NAMES.get(row.name, row.name)}, row.error or "无应答",
                       since=as_utc(row.since))
                for row in uow.session.scalars(select(UpstreamHealth).where(UpstreamHealth.up.is_(False)))]

    def _ticket_series(self, uow: UnitOfWork, now: datetime) -> tuple[list[Series], list[Series]]:
        """Running ticket clocks at 75 % of their target or more: (warning, breached). A clock is in one
        list only, so its warning resolves as its breach fires."""
        warning: list[Series] = []
        breached: list[Series] = []
        for row in uow.session.scalars(select(Ticket).where(Ticket.state.in_(TICKET_CLOCK_STATES))):
            for clock_name, reading in zip(("响应", "解决"), ticket_readings(row, now)):
                if not reading.running or reading.level is ClockLevel.OK:
                    continue
                labels = {"ticket": str(row.id), "clock": clock_name, "device": row.device_id or "无设备"}
                value = f"目标 {int(reading.target.total_seconds() // 60)} 分钟"
                (breached if reading.level is ClockLevel.BREACHED else warning).append(Series(labels, value))
        return warning, breached

    # -- evaluation --------------------------------------------------------------------------------------
    def _lock(self, uow: UnitOfWork) -> bool:
        if uow.session.get_bind().dialect.name != "postgresql":
            return True
        return bool(uow.session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                        {"key": EVALUATION_LOCK_KEY}).scalar())

    def evaluate(self) -> list[domain.Notification]:
        """One round: update alerts, plan notifications, deliver them. Returns what was sent."""
        now = self._clock.now()
        with self._uow() as uow:
            # The lock first: of several service processes one evaluates a round, and the others
            # do not read the whole fleet only to throw it away.
            if not self._lock(uow):
                return []
            fleet = self._monitoring.fleet()
            force = self.in_force()
            rules = force.rules
            active = self.collect(fleet, now, spike_factor=force.spike_factor)
            active["payment_anomaly"] = self._payment_series(uow, now)
            active["upstream_down"] = self._upstream_series(uow)
            active["ticket_sla_warning"], active["ticket_sla_breached"] = self._ticket_series(uow, now)
            rows = {row.fingerprint: row for row in uow.session.scalars(
                select(AlertRecord).where(AlertRecord.open_key.is_not(None)))}
            by_rule: dict[str, dict[str, Alert]] = {name: {} for name in rules}
            alerts: dict[str, Alert] = {}
            for fp, row in rows.items():
                alert = alerts[fp] = _to_domain(row)
                by_rule.setdefault(row.rule, {})[fp] = alert
            for name, rule in rules.items():
                for change in domain.evaluate(rule, by_rule[name], active.get(name, []), now):
                    alert = change.alert
                    if change.kind is ChangeKind.STARTED:
                        row = AlertRecord(fingerprint=alert.fingerprint, rule=alert.rule,
                                          severity=alert.severity.value, labels=alert.labels,
                                          active_since=alert.active_since, notes=[])
                        uow.session.add(row)
                        rows[alert.fingerprint] = row
                        alerts[alert.fingerprint] = alert
                        if alert.state is AlertState.FIRING:
                            log.warning("alert.firing", rule=alert.rule, labels=alert.labels)
                    elif change.kind is ChangeKind.FIRED:
                        log.warning("alert.firing", rule=alert.rule, labels=alert.labels)
                    elif change.kind is ChangeKind.RESOLVED:
                        log.info("alert.resolved", rule=alert.rule, labels=alert.labels)
                    elif change.kind is ChangeKind.DROPPED:  # never fired: nothing to keep
                        uow.session.delete(rows.pop(alert.fingerprint))
                        continue
                    _copy(alert, rows[alert.fingerprint])
            # Rows of rules no longer defined stay as they are.
            uow.session.flush()
            waiting = [_to_domain(row) for row in uow.session.scalars(select(AlertRecord).where(
                AlertRecord.open_key.is_(None), AlertRecord.notified_state == AlertState.FIRING.value))]
            candidates = [a for a in alerts.values() if a.state is AlertState.FIRING] + waiting
            groups = {g.key: domain.GroupState(g.key, as_utc(g.first_seen_at),
                                               as_utc(g.last_notified_at) if g.last_notified_at else None,
                                               frozenset(g.sent or []))
                      for g in uow.session.scalars(select(AlertGroup))}
            before = set(groups)
            silences = [silence_of(s) for s in uow.session.scalars(select(SilenceRecord).where(
                SilenceRecord.ends_at > now, SilenceRecord.starts_at <= now))]
            notes, _muted = domain.plan_notifications(
                candidates, rules, groups, silences=silences, inhibit_rules=self.inhibitions,
                business_hours=self.business_hours, route=force.route, now=now)
            for alert in candidates:
                row = rows.get(alert.fingerprint)
                if row is None or row.open_key is None:
                    row = uow.session.scalars(select(AlertRecord).where(
                        AlertRecord.fingerprint == alert.fingerprint, AlertRecord.open_key.is_(None))
                        .order_by(AlertRecord.id.desc()).limit(1)).first()
                if row is not None:
                    row.notified_state = alert.notified_state.value if alert.notified_state else None
            for key in before - set(groups):
                uow.session.delete(uow.session.get(AlertGroup, key))
            for key, state in groups.items():
                row = uow.session.get(AlertGroup, key)
                if row is None:
                    row = AlertGroup(key=key, first_seen_at=state.first_seen_at)
                    uow.session.add(row)
                row.last_notified_at, row.sent = state.last_notified_at, sorted(state.sent)
            channels = [Channel(c.id, c.name, ChannelKind(c.kind), c.target, c.secret, c.min_severity)
                        for c in uow.session.scalars(select(NotifyChannel).where(NotifyChannel.enabled.is_(True)))]
            uow.commit()
        if notes:
            self._deliver(notes, channels)
        return notes

    def _deliver(self, notes: list[domain.Notification], channels: list[Channel]) -> None:
        records = []
        for note in notes:
            worst = max((a.severity.rank for a in (*note.firing, *note.resolved)), default=0)
            for channel in channels:
                if worst < Severity(channel.min_severity).rank:
                    continue
                error = ""
                try:
                    self._notifier.send(channel, note)
                    if self.on_notify:
                        self.on_notify(channel, note)
                except DeliveryFailed as exc:
                    error = str(exc)
                    log.warning("alert.delivery_failed", channel=channel.name, kind=channel.kind.value, error=error)
                records.append(NotificationRecord(channel_id=channel.id, group_key=note.group_key[:200],
                                                  at=self._clock.now(), ok=not error, firing=len(note.firing),
                                                  resolved=len(note.resolved), error=error[:300]))
        if records:
            with self._uow() as uow:
                uow.session.add_all(records)
                uow.commit()

    # -- reading ------------------------------------------------------------------------------------------
    def alerts(self, *, open_only: bool = True, limit: int = 200) -> list[AlertRecord]:
        query = select(AlertRecord).order_by(AlertRecord.id.desc()).limit(limit)
        if open_only:
            query = query.where(AlertRecord.open_key.is_not(None))
        with self._uow() as uow:
            rows = list(uow.session.scalars(query))
            for row in rows:
                uow.session.expunge(row)
            return rows

    def muted(self) -> dict[str, str]:
        """Why each firing alert is muted right now (for the alert page)."""
        now = self._clock.now()
        with self._uow() as uow:
            firing = [_to_domain(r) for r in uow.session.scalars(
                select(AlertRecord).where(AlertRecord.state == AlertState.FIRING.value))]
            silences = [silence_of(s) for s in uow.session.scalars(select(SilenceRecord).where(
                SilenceRecord.ends_at > now, SilenceRecord.starts_at <= now))]
        out = {}
        rules = self.in_force().rules
        for alert in firing:
            reason = domain.mute_reason(alert, rule=rules.get(alert.rule), firing=firing, silences=silences,
                                        inhibit_rules=self.inhibitions, business_hours=self.business_hours, now=now)
            if reason:
                out[alert.fingerprint] = reason.value
        return out

    # -- what staff do ----------------------------------------------------------------------------------------
    def _note(self, alert_id: int, actor: str, action: str, text_: str, change: Callable[[AlertRecord], None],
              *, client: str = "") -> AlertRecord:
        now = self._clock.now()
        with self._uow() as uow:
            row = uow.session.get(AlertRecord, alert_id)
            if row is None:
                raise AlertNotFound(alert_id)
            change(row)
            row.notes = [*(row.notes or []), {"at": now.isoformat(), "by": actor, "action": action, "text": text_}]
            audit.append(uow, self._clock, actor, f"alert.{action}", f"alert:{alert_id}",
                         {"rule": row.rule, "text": text_, "client": client})
            uow.commit()
            uow.session.expunge(row)
            return row

    def acknowledge(self, alert_id: int, actor: str, comment: str, *, client: str = "") -> AlertRecord:
        comment = comment.strip()[:500]
        if not comment:
            raise ValueError("确认告警需要填写说明")
        now = self._clock.now()

        def change(row: AlertRecord) -> None:
            row.acknowledged_by, row.acknowledged_at = actor, now

        return self._note(alert_id, actor, "acknowledged", comment, change, client=client)

    def assign(self, alert_id: int, actor: str, assignee: str, *, client: str = "") -> AlertRecord:
        assignee = assignee.strip()[:60]
        if not assignee:
            raise ValueError("请选择负责人")

        def change(row: AlertRecord) -> None:
            row.assignee = assignee

        return self._note(alert_id, actor, "assigned", assignee, change, client=client)

    def silences(self, *, include_expired: bool = False) -> list[SilenceRecord]:
        now = self._clock.now()
        query = select(SilenceRecord).order_by(SilenceRecord.id.desc()).limit(200)
        if not include_expired:
            query = query.where(SilenceRecord.ends_at > now)
        with self._uow() as uow:
            rows = list(uow.session.scalars(query))
            for row in rows:
                uow.session.expunge(row)
            return rows

    def add_silence(self, actor: str, matchers: list[str], *, ends_at: datetime, starts_at: datetime | None = None,
                    window: str = "", comment: str = "", client: str = "") -> SilenceRecord:
        parsed = [Matcher.parse(m) for m in matchers if m.strip()]
        if not parsed:
            raise ValueError("至少填写一个匹配条件，例如 building=门诊楼")
        now = self._clock.now()
        # Stored in UTC: SQLite compares datetimes as text.
        starts_at = (starts_at or now).astimezone(timezone.utc)
        ends_at = ends_at.astimezone(timezone.utc)
        if ends_at <= starts_at:
            raise ValueError("结束时间必须晚于开始时间")
        weekly = None
        if window.strip():
            w = WeeklyWindow.parse(window.strip())
            weekly = {"weekdays": sorted(w.weekdays), "start": w.start.strftime("%H:%M"), "end": w.end.strftime("%H:%M")}
        with self._uow() as uow:
            row = SilenceRecord(matchers=[str(m) for m in parsed], starts_at=starts_at, ends_at=ends_at, window=weekly,
                                comment=comment.strip()[:500], created_by=actor, created_at=now)
            uow.session.add(row)
            uow.session.flush()
            audit.append(uow, self._clock, actor, "silence.created", f"silence:{row.id}",
                         {"matchers": row.matchers, "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(),
                          "window": weekly, "comment": row.comment, "client": client})
            uow.commit()
            uow.session.expunge(row)
            return row

    def expire_silence(self, silence_id: int, actor: str, *, client: str = "") -> None:
        now = self._clock.now()
        with self._uow() as uow:
            row = uow.session.get(SilenceRecord, silence_id)
            if row is None:
                raise LookupError(silence_id)
            if as_utc(row.ends_at) > now:
                row.ends_at, row.expired_by = now, actor
                audit.append(uow, self._clock, actor, "silence.expired", f"silence:{silence_id}", {"client": client})
            uow.commit()

    def channels(self) -> list[NotifyChannel]:
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(NotifyChannel).order_by(NotifyChannel.id)))
            for row in rows:
                uow.session.expunge(row)
            return rows

    def add_channel(self, actor: str, name: str, kind: str, target: str, *, secret: str = "",
                    min_severity: str = "warning", client: str = "") -> NotifyChannel:
        kind_ = ChannelKind(kind)
        target = target.strip()
        if kind_ is ChannelKind.EMAIL:
            if not target.startswith(("mailto://", "mailtos://")):
                raise ValueError("邮件地址请写成 mailto://… 或 mailtos://… 形式")
        elif not target.startswith(("http://", "https://")):
            raise ValueError("Webhook 地址必须以 http:// 或 https:// 开头")
        Severity(min_severity)
        with self._uow() as uow:
            row = NotifyChannel(name=name.strip()[:60] or kind_.value, kind=kind_.value, target=target, secret=secret,
                                min_severity=min_severity, enabled=True, created_by=actor,
                                created_at=self._clock.now())
            uow.session.add(row)
            uow.session.flush()
            # The target may carry a robot key: the audit trail names the channel, not its URL.
            audit.append(uow, self._clock, actor, "channel.created", f"channel:{row.id}",
                         {"name": row.name, "kind": row.kind, "min_severity": min_severity, "client": client})
            uow.commit()
            uow.session.expunge(row)
            return row

    def notifications(self, limit: int = 50) -> list[NotificationRecord]:
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(NotificationRecord).order_by(NotificationRecord.id.desc())
                                            .limit(limit)))
            for row in rows:
                uow.session.expunge(row)
            return rows

    def summary(self) -> dict[str, Any]:
        rows = self.alerts()
        return {"firing": sum(1 for r in rows if r.state == "firing"),
                "pending": sum(1 for r in rows if r.state == "pending")}
