"""Alert rules with Prometheus/Alertmanager semantics — pure: no clock, no store, no network.

Prometheus part (``evaluate``): a rule's condition is true for a set of label sets (``Series``) at
each evaluation. A new label set starts an alert in ``pending``; it fires once the condition has
held ``for`` long; when the condition stops it stays firing for ``keep_firing_for`` (damping
flaps) and then resolves. A pending alert whose condition stops is dropped without a word.

Alertmanager part (``plan_notifications``): firing alerts are de-duplicated by fingerprint (rule
+ labels), muted when a silence or maintenance window matches, when an inhibiting alert fires
with equal labels (a floor's network down mutes that floor's kiosks), or outside business hours
for rules that only matter then; the rest are grouped by the rule's ``group_by`` labels and a
group is notified after ``group_wait``, again after ``group_interval`` when it changed, and
every ``repeat_interval`` while it still fires. Resolved alerts are notified once.

Heartbeats are a dead-man's switch: a device is overdue once ``period + grace`` has passed
since its last heartbeat (``heartbeat_overdue``); its offline alert counts ``for`` from that
last heartbeat, so it fires ``for`` after the device went quiet, not ``for`` after we noticed.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from enum import StrEnum

Labels = Mapping[str, str]


class Severity(StrEnum):
    CRITICAL = "critical"
    """Patients are affected now: a kiosk down, a payment anomaly, an upstream down."""
    WARNING = "warning"
    """Someone should act soon: paper low, an error rate above the usual."""
    INFO = "info"
    """Worth knowing; never paged."""

    @property
    def rank(self) -> int:
        return {"critical": 3, "warning": 2, "info": 1}[self.value]


class AlertState(StrEnum):
    PENDING = "pending"
    """The condition holds, but not yet for the rule's ``for``."""
    FIRING = "firing"
    """The condition held long enough (or stopped less than ``keep_firing_for`` ago)."""
    RESOLVED = "resolved"
    """The condition stopped; kept for the record."""


class MuteReason(StrEnum):
    SILENCED = "silenced"
    """A silence or maintenance window matches."""
    INHIBITED = "inhibited"
    """A firing alert that explains this one (same location, wider cause) exists."""
    OUT_OF_HOURS = "out_of_hours"
    """The rule only notifies in business hours."""


# --- matchers -----------------------------------------------------------------------------------------
_MATCHER_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Matcher:
    """``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex`` (regex anchored, as in Prometheus)."""

    name: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        found = _MATCHER_RE.match(text)
        if not found:
            raise ValueError(f"not a matcher: {text!r} (write name=value, name!=value, name=~regex)")
        name, op, value = found.groups()
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regular expression in {text!r}: {exc}") from exc
        return cls(name, op, value)

    def matches(self, labels: Labels) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def matches_all(matchers: Iterable[Matcher], labels: Labels) -> bool:
    return all(m.matches(labels) for m in matchers)


# --- time -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeeklyWindow:
    """Hours on some weekdays in local time (0 = Monday). ``end`` before ``start`` crosses midnight."""

    weekdays: frozenset[int]
    start: time
    end: time

    def contains(self, at: datetime, tz: tzinfo) -> bool:
        local = at.astimezone(tz)
        clock = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            return local.weekday() in self.weekdays and self.start <= clock < self.end
        if clock >= self.start:
            return local.weekday() in self.weekdays
        return (local.weekday() - 1) % 7 in self.weekdays and clock < self.end

    @classmethod
    def parse(cls, text: str) -> "WeeklyWindow":
        """``"1-5 07:30-17:30"`` (ISO weekdays, 1 = Monday) or ``"daily 02:00-04:00"``."""
        try:
            days, hours = text.split()
            start_text, end_text = hours.split("-")
            if days == "daily":
                weekdays = frozenset(range(7))
            else:
                chosen: set[int] = set()
                for part in days.split(","):
                    low, _, high = part.partition("-")
                    chosen.update(range(int(low) - 1, int(high or low)))
                weekdays = frozenset(chosen)
            start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
        except ValueError as exc:
            raise ValueError(f"not a weekly window: {text!r} (write '1-5 07:30-17:30' or 'daily 02:00-04:00')") from exc
        if not weekdays or not weekdays <= set(range(7)):
            raise ValueError(f"weekdays out of 1-7 in {text!r}")
        return cls(weekdays, start, end)


@dataclass(frozen=True)
class BusinessHours:
    """When the hospital works (outpatient hours): some rules only notify then."""

    windows: tuple[WeeklyWindow, ...]
    tz: tzinfo

    def contains(self, at: datetime) -> bool:
        return any(w.contains(at, self.tz) for w in self.windows)


@dataclass(frozen=True)
class Silence:
    """Mutes matching alerts from ``starts_at`` to ``ends_at``; with a ``window`` only inside it
    (a maintenance window: e.g. every night 02:00–04:00 until the end of the month)."""

    id: int
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    window: WeeklyWindow | None = None

    def active(self, now: datetime, tz: tzinfo) -> bool:
        if not (self.starts_at <= now < self.ends_at):
            return False
        return self.window is None or self.window.contains(now, tz)

    def mutes(self, labels: Labels, now: datetime, tz: tzinfo) -> bool:
        return self.active(now, tz) and matches_all(self.matchers, labels)


@dataclass(frozen=True)
class InhibitRule:
    """A firing alert matching ``source`` mutes alerts matching ``target`` whose ``equal`` labels are
    the same (Alertmanager's inhibit_rules). An alert never inhibits itself."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


# --- rules and alerts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    name: str
    severity: Severity
    summary: str
    """Chinese text for staff, formatted with the labels (``{device}``) and ``{value}``."""
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    business_hours_only: bool = False
    group_by: tuple[str, ...] = ("rule", "campus", "building", "floor")


@dataclass(frozen=True)
class Series:
    """One label set for which a rule's condition holds now. ``since`` says when it became true,
    when the caller knows better than 'now' (a heartbeat's silence started at the last beat)."""

    labels: Mapping[str, str]
    value: str = ""
    since: datetime | None = None


def fingerprint(rule: str, labels: Labels) -> str:
    text = "\x1f".join([rule, *(f"{k}\x1e{labels[k]}" for k in sorted(labels))])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Alert:
    fingerprint: str
    rule: str
    severity: Severity
    labels: dict[str, str]
    summary: str
    state: AlertState
    active_since: datetime
    last_true_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    notified_state: AlertState | None = None

    @property
    def open(self) -> bool:
        return self.state is not AlertState.RESOLVED

    def all_labels(self) -> dict[str, str]:
        return {**self.labels, "rule": self.rule, "severity": self.severity.value}


class ChangeKind(StrEnum):
    STARTED = "started"
    """A new alert, pending (or firing at once when ``for`` is zero or already passed)."""
    FIRED = "fired"
    """Pending → firing."""
    RESOLVED = "resolved"
    """Firing → resolved."""
    DROPPED = "dropped"
    """Pending, the condition stopped: forgotten."""
    UPDATED = "updated"
    """Still open; ``last_true_at`` or the summary moved."""


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    alert: Alert


def _summary(rule: Rule, series: Series) -> str:
    try:
        return rule.summary.format_map({**series.labels, "value": series.value})
    except (KeyError, ValueError, IndexError):
        return rule.summary


def evaluate(rule: Rule, open_alerts: Mapping[str, Alert], active: Iterable[Series], now: datetime) -> list[Change]:
    """One evaluation of ``rule`` at ``now``. ``open_alerts`` are this rule's pending and firing
    alerts by fingerprint (they are changed in place); returns what changed, new alerts included."""
    changes: list[Change] = []
    seen: set[str] = set()
    for series in active:
        fp = fingerprint(rule.name, series.labels)
        if fp in seen:  # the same label set twice in one evaluation is one alert
            continue
        seen.add(fp)
        alert = open_alerts.get(fp)
        summary = _summary(rule, series)
        if alert is None:
            since = min(series.since or now, now)
            alert = Alert(fp, rule.name, rule.severity, dict(series.labels), summary, AlertState.PENDING,
                          active_since=since, last_true_at=now)
            if now - since >= rule.for_:
                alert.state, alert.fired_at = AlertState.FIRING, now
            changes.append(Change(ChangeKind.STARTED, alert))
            continue
        alert.last_true_at = now
        alert.summary = summary
        if alert.state is AlertState.PENDING and now - alert.active_since >= rule.for_:
            alert.state, alert.fired_at = AlertState.FIRING, now
            changes.append(Change(ChangeKind.FIRED, alert))
        else:
            changes.append(Change(ChangeKind.UPDATED, alert))
    for fp, alert in open_alerts.items():
        if fp in seen or not alert.open:
            continue
        if alert.state is AlertState.PENDING:
            alert.state, alert.resolved_at = AlertState.RESOLVED, now
            changes.append(Change(ChangeKind.DROPPED, alert))
        elif now - alert.last_true_at >= rule.keep_firing_for:
            alert.state, alert.resolved_at = AlertState.RESOLVED, now
            changes.append(Change(ChangeKind.RESOLVED, alert))
    return changes


# --- notification routing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    group_wait: timedelta = timedelta(seconds=0)
    group_interval: timedelta = timedelta(minutes=1)
    repeat_interval: timedelta = timedelta(hours=4)


@dataclass
class GroupState:
    key: str
    first_seen_at: datetime
    last_notified_at: datetime | None = None
    sent: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Notification:
    group_key: str
    group_labels: dict[str, str]
    firing: tuple[Alert, ...]
    resolved: tuple[Alert, ...]


def mute_reason(alert: Alert, *, rule: Rule | None, firing: Sequence[Alert], silences: Sequence[Silence],
                inhibit_rules: Sequence[InhibitRule], business_hours: BusinessHours | None,
                now: datetime) -> MuteReason | None:
    labels = alert.all_labels()
    tz = business_hours.tz if business_hours else now.tzinfo
    if any(s.mutes(labels, now, tz) for s in silences):
        return MuteReason.SILENCED
    for inhibit in inhibit_rules:
        if not matches_all(inhibit.target, labels):
            continue
        for source in firing:
            if source.fingerprint == alert.fingerprint:
                continue
            source_labels = source.all_labels()
            if matches_all(inhibit.source, source_labels) and all(
                    source_labels.get(name, "") == labels.get(name, "") for name in inhibit.equal):
                return MuteReason.INHIBITED
    if rule is not None and rule.business_hours_only and business_hours is not None and \
            not business_hours.contains(now):
        return MuteReason.OUT_OF_HOURS
    return None


def group_key(rule: Rule | None, alert: Alert) -> tuple[str, dict[str, str]]:
    names = rule.group_by if rule else ("rule",)
    labels = alert.all_labels()
    chosen = {name: labels.get(name, "") for name in names}
    return "{" + ",".join(f'{k}="{v}"' for k, v in chosen.items()) + "}", chosen


def plan_notifications(alerts: Iterable[Alert], rules: Mapping[str, Rule], groups: dict[str, GroupState], *,
                       silences: Sequence[Silence] = (), inhibit_rules: Sequence[InhibitRule] = (),
                       business_hours: BusinessHours | None = None, route: Route = Route(),
                       now: datetime) -> tuple[list[Notification], dict[str, MuteReason]]:
    """Decide which groups to notify now. ``alerts``: firing alerts and resolved ones not yet
    notified as resolved. ``groups`` is updated in place (groups with nothing left are removed).
    Returns the notifications and why each muted alert (by fingerprint) is muted."""
    alerts = list(alerts)
    firing_all = [a for a in alerts if a.state is AlertState.FIRING]
    muted: dict[str, MuteReason] = {}
    by_group: dict[str, tuple[dict[str, str], list[Alert], list[Alert]]] = {}
    for alert in alerts:
        rule = rules.get(alert.rule)
        key, labels = group_key(rule, alert)
        entry = by_group.setdefault(key, (labels, [], []))
        if alert.state is AlertState.FIRING:
            reason = mute_reason(alert, rule=rule, firing=firing_all, silences=silences,
                                 inhibit_rules=inhibit_rules, business_hours=business_hours, now=now)
            if reason is not None:
                muted[alert.fingerprint] = reason
                continue
            entry[1].append(alert)
        elif alert.state is AlertState.RESOLVED and alert.notified_state is AlertState.FIRING:
            entry[2].append(alert)
    notifications: list[Notification] = []
    for key in set(by_group) | set(groups):
        labels, firing, resolved = by_group.get(key, ({}, [], []))
        state = groups.get(key)
        current = frozenset(a.fingerprint for a in firing)
        if state is None:
            if not firing:
                continue
            state = groups[key] = GroupState(key, first_seen_at=now)
        if state.last_notified_at is None:
            due = bool(firing) and now - state.first_seen_at >= route.group_wait
        elif current != state.sent or resolved:
            due = now - state.last_notified_at >= route.group_interval
        else:
            due = bool(firing) and now - state.last_notified_at >= route.repeat_interval
        if due:
            notifications.append(Notification(key, labels, tuple(firing), tuple(resolved)))
            state.last_notified_at, state.sent = now, current
            for alert in firing:
                alert.notified_state = AlertState.FIRING
            for alert in resolved:
                alert.notified_state = AlertState.RESOLVED
        if not firing and not state.sent and (due or not resolved):
            del groups[key]  # nothing firing and nothing left to tell
    return notifications, muted


# --- conditions the built-in rules use ------------------------------------------------------------------
def heartbeat_overdue(last_seen: datetime, now: datetime, *, period: timedelta, grace: timedelta) -> bool:
    """The dead-man's switch: no heartbeat for one period plus the grace."""
    return now - last_seen > period + grace


def error_rate_spike(transactions: int, failures: int, usual_rates: Sequence[float], *,
                     min_transactions: int = 20, factor: float = 3.0, margin: float = 0.05,
                     default_rate: float = 0.02) -> bool:
    """Failures this hour well above the usual for this hour of the day (the median of the same
    hour on earlier days): at least ``factor`` times it and ``margin`` above it, over enough
    transactions that a couple of failures are not a spike."""
    if transactions < min_transactions or transactions <= 0:
        return False
    usual = statistics.median(usual_rates) if usual_rates else default_rate
    rate = failures / transactions
    return rate >= usual * factor and rate >= usual + margin


@dataclass(frozen=True)
class FleetDevice:
    """What the location rule needs of one device."""

    device_id: str
    location: tuple[str, str, str]
    overdue: bool
    last_seen: datetime | None = None


def locations_down(devices: Iterable[FleetDevice], *, min_devices: int = 2) -> dict[tuple[str, str, str], datetime | None]:
    """Floors where every device is overdue (at least ``min_devices`` of them): the floor's network,
    not the kiosks, is the likely cause. Returns each such floor with when its last device went quiet."""
    floors: dict[tuple[str, str, str], list[FleetDevice]] = {}
    for device in devices:
        if any(device.location):
            floors.setdefault(device.location, []).append(device)
    down: dict[tuple[str, str, str], datetime | None] = {}
    for location, members in floors.items():
        if len(members) >= min_devices and all(d.overdue for d in members):
            seen = [d.last_seen for d in members if d.last_seen is not None]
            down[location] = max(seen) if seen else None
    return down


@dataclass(frozen=True)
class RuleSet:
    rules: dict[str, Rule] = field(default_factory=dict)
    inhibit_rules: tuple[InhibitRule, ...] = ()
