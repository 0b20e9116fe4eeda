"""Alert semantics with a hand-moved clock: for, keep_firing_for, silences, inhibition, hours, groups."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from medkiosk.domain.alerts import (Alert, AlertState, BusinessHours, ChangeKind, FleetDevice, InhibitRule, Matcher, MuteReason, Route, Rule, Series, Severity, Silence,
                                    WeeklyWindow, error_rate_spike, evaluate, fingerprint, heartbeat_overdue,
                                    locations_down, plan_notifications)

CST = timezone(timedelta(hours=8))
# A Wednesday, 10:00 in the hospital.
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=CST)
OFFLINE = Rule("device_offline", Severity.CRITICAL, "{device} 离线", for_=timedelta(seconds=30),
               keep_firing_for=timedelta(seconds=60))
PAPER_LOW = Rule("paper_low", Severity.WARNING, "{device} 纸将尽", business_hours_only=True)
NETWORK = Rule("location_network_down", Severity.CRITICAL, "{floor} 网络中断")
RULES = {r.name: r for r in (OFFLINE, PAPER_LOW, NETWORK)}
K1 = {"device": "K001", "campus": "本部", "building": "门诊楼", "floor": "1F"}
K2 = {"device": "K002", "campus": "本部", "building": "门诊楼", "floor": "1F"}
HOURS = BusinessHours((WeeklyWindow.parse("1-5 07:30-17:30"), WeeklyWindow.parse("6-7 08:00-12:00")), CST)


class Rig:
    """One rule's open alerts, evaluated as the clock moves."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.open: dict[str, Alert] = {}
        self.now = T0

    def at(self, seconds: float, *series: Series) -> list[ChangeKind]:
        self.now = T0 + timedelta(seconds=seconds)
        changes = evaluate(self.rule, self.open, series, self.now)
        for change in changes:
            if change.alert.open:
                self.open[change.alert.fingerprint] = change.alert
            else:
                self.open.pop(change.alert.fingerprint, None)
        return [c.kind for c in changes if c.kind is not ChangeKind.UPDATED]

    def state(self, labels=K1) -> AlertState | None:
        alert = self.open.get(fingerprint(self.rule.name, labels))
        return alert.state if alert else None


def test_a_condition_must_hold_for_the_rules_for_before_it_fires():
    rig = Rig(OFFLINE)
    assert rig.at(0, Series(K1)) == [ChangeKind.STARTED]
    assert rig.state() is AlertState.PENDING
    assert rig.at(29, Series(K1)) == []
    assert rig.at(30, Series(K1)) == [ChangeKind.FIRED]
    assert rig.state() is AlertState.FIRING


def test_a_pending_alert_whose_condition_stops_is_dropped_silently():
    rig = Rig(OFFLINE)
    rig.at(0, Series(K1))
    assert rig.at(10) == [ChangeKind.DROPPED]
    assert rig.state() is None


def test_a_known_start_counts_for_from_then():
    rig = Rig(OFFLINE)
    # The last heartbeat was 25 s ago: five more seconds and the kiosk is offline for 30 s.
    assert rig.at(0, Series(K1, since=T0 - timedelta(seconds=25))) == [ChangeKind.STARTED]
    assert rig.at(5, Series(K1, since=T0 - timedelta(seconds=25))) == [ChangeKind.FIRED]
    late = Rig(OFFLINE)
    assert late.at(0, Series(K1, since=T0 - timedelta(seconds=40))) == [ChangeKind.STARTED]
    assert late.state() is AlertState.FIRING


def test_keep_firing_for_damps_a_flapping_condition():
    rig = Rig(OFFLINE)
    rig.at(0, Series(K1))
    rig.at(30, Series(K1))
    assert rig.at(40) == []  # one good heartbeat is not a recovery
    assert rig.state() is AlertState.FIRING
    assert rig.at(50, Series(K1)) == []  # it flapped back: still the same alert
    assert rig.at(109) == []
    assert rig.at(110) == [ChangeKind.RESOLVED]
    assert rig.state() is None


def test_the_same_label_set_twice_is_one_alert():
    rig = Rig(OFFLINE)
    assert rig.at(0, Series(K1), Series(dict(K1))) == [ChangeKind.STARTED]
    assert len(rig.open) == 1


def firing(rule: Rule, labels, *, at=T0) -> Alert:
    return Alert(fingerprint(rule.name, labels), rule.name, rule.severity, dict(labels), "", AlertState.FIRING,
                 active_since=at, last_true_at=at, fired_at=at)


def plan(alerts, groups=None, **kwargs):
    groups = {} if groups is None else groups
    kwargs.setdefault("now", T0)
    notes, muted = plan_notifications(alerts, RULES, groups, **kwargs)
    return notes, muted, groups


def test_alerts_of_one_rule_on_one_floor_are_one_notification():
    notes, muted, _ = plan([firing(OFFLINE, K1), firing(OFFLINE, K2)])
    assert len(notes) == 1 and len(notes[0].firing) == 2 and not muted


def test_an_unchanged_group_is_not_notified_again_until_the_repeat_interval():
    route = Route(group_wait=timedelta(0), group_interval=timedelta(minutes=1), repeat_interval=timedelta(hours=4))
    alerts = [firing(OFFLINE, K1)]
    notes, _, groups = plan(alerts, route=route)
    assert len(notes) == 1
    assert plan(alerts, groups, route=route, now=T0 + timedelta(minutes=5))[0] == []
    assert len(plan(alerts, groups, route=route, now=T0 + timedelta(hours=4))[0]) == 1


def test_a_new_alert_in_a_notified_group_waits_for_the_group_interval():
    route = Route(group_interval=timedelta(minutes=1))
    one = firing(OFFLINE, K1)
    _, _, groups = plan([one], route=route)
    two = firing(OFFLINE, K2)
    assert plan([one, two], groups, route=route, now=T0 + timedelta(seconds=30))[0] == []
    notes = plan([one, two], groups, route=route, now=T0 + timedelta(seconds=60))[0]
    assert len(notes) == 1 and len(notes[0].firing) == 2


def test_group_wait_holds_the_first_notification():
    route = Route(group_wait=timedelta(seconds=10))
    alerts = [firing(OFFLINE, K1)]
    notes, _, groups = plan(alerts, route=route)
    assert notes == []
    assert len(plan(alerts, groups, route=route, now=T0 + timedelta(seconds=10))[0]) == 1


def test_a_resolved_alert_is_notified_once_then_the_group_is_forgotten():
    alert = firing(OFFLINE, K1)
    _, _, groups = plan([alert])
    assert alert.notified_state is AlertState.FIRING
    alert.state, alert.resolved_at = AlertState.RESOLVED, T0 + timedelta(minutes=2)
    notes, _, groups = plan([alert], groups, now=T0 + timedelta(minutes=2))
    assert len(notes) == 1 and notes[0].resolved == (alert,) and notes[0].firing == ()
    assert alert.notified_state is AlertState.RESOLVED and groups == {}


def test_a_silence_mutes_matching_alerts_only_while_it_lasts():
    silence = Silence(1, (Matcher.parse("device=K001"),), T0 - timedelta(minutes=1), T0 + timedelta(hours=1))
    notes, muted, _ = plan([firing(OFFLINE, K1), firing(OFFLINE, K2)], silences=[silence])
    assert [a.labels["device"] for a in notes[0].firing] == ["K002"]
    assert muted == {fingerprint(OFFLINE.name, K1): MuteReason.SILENCED}
    later, muted_later, _ = plan([firing(OFFLINE, K1)], silences=[silence], now=T0 + timedelta(hours=1))
    assert len(later) == 1 and not muted_later


def test_a_maintenance_window_mutes_only_inside_its_hours():
    window = WeeklyWindow.parse("daily 02:00-04:00")
    silence = Silence(2, (Matcher.parse("building=门诊楼"),), T0 - timedelta(days=1), T0 + timedelta(days=30), window)
    night = datetime(2026, 11, 26, 3, 0, tzinfo=CST)
    assert plan([firing(OFFLINE, K1)], silences=[silence], now=night)[1]
    assert not plan([firing(OFFLINE, K1)], silences=[silence], now=T0)[1]


def test_a_floors_network_down_inhibits_its_kiosks_but_not_other_floors():
    inhibit = InhibitRule(source=(Matcher.parse("rule=location_network_down"),),
                          target=(Matcher.parse("rule=~device_offline|paper_low"),), equal=("campus", "building", "floor"))
    floor = {"campus": "本部", "building": "门诊楼", "floor": "1F"}
    other = {**K2, "floor": "2F"}
    notes, muted, _ = plan([firing(NETWORK, floor), firing(OFFLINE, K1), firing(OFFLINE, other)],
                           inhibit_rules=[inhibit])
    assert muted == {fingerprint(OFFLINE.name, K1): MuteReason.INHIBITED}
    notified = sorted(a.rule + a.labels.get("floor", "") for n in notes for a in n.firing)
    assert notified == ["device_offline2F", "location_network_down1F"]


def test_business_hours_rules_wait_for_the_morning():
    night = datetime(2026, 11, 25, 22, 0, tzinfo=CST)
    alert = firing(PAPER_LOW, K1, at=night)
    notes, muted, groups = plan([alert], business_hours=HOURS, now=night)
    assert notes == [] and muted == {alert.fingerprint: MuteReason.OUT_OF_HOURS}
    morning = datetime(2026, 11, 26, 7, 30, tzinfo=CST)
    assert len(plan([alert], groups, business_hours=HOURS, now=morning)[0]) == 1
    # Offline is not a business-hours rule: it notifies at night.
    assert len(plan([firing(OFFLINE, K1, at=night)], business_hours=HOURS, now=night)[0]) == 1


def test_weekly_windows_read_iso_weekdays_and_cross_midnight():
    assert HOURS.contains(datetime(2026, 11, 28, 9, 0, tzinfo=CST))  # Saturday morning
    assert not HOURS.contains(datetime(2026, 11, 28, 13, 0, tzinfo=CST))
    overnight = WeeklyWindow.parse("5 22:00-06:00")  # Friday night into Saturday
    assert overnight.contains(datetime(2026, 11, 28, 5, 0, tzinfo=CST), CST)
    assert not overnight.contains(datetime(2026, 11, 29, 5, 0, tzinfo=CST), CST)
    with pytest.raises(ValueError):
        WeeklyWindow.parse("weekdays 9-5")
    assert WeeklyWindow.parse("daily 02:00-04:00").start == time(2, 0)


def test_matchers_speak_prometheus():
    labels = {"device": "K012", "building": "门诊楼"}
    assert Matcher.parse("device=~K0.*").matches(labels)
    assert not Matcher.parse("device=~K0").matches(labels)  # anchored
    assert Matcher.parse("building!=住院楼").matches(labels)
    assert Matcher.parse("floor!~.+").matches(labels)  # an absent label is empty
    with pytest.raises(ValueError):
        Matcher.parse("device")


def test_the_heartbeat_dead_mans_switch_allows_one_period_and_the_grace():
    last = T0
    assert not heartbeat_overdue(last, T0 + timedelta(seconds=15), period=timedelta(seconds=5),
                                 grace=timedelta(seconds=10))
    assert heartbeat_overdue(last, T0 + timedelta(seconds=15.1), period=timedelta(seconds=5),
                             grace=timedelta(seconds=10))


def test_an_error_rate_spike_is_measured_against_the_usual_level_for_that_hour():
    assert error_rate_spike(100, 20, [0.02, 0.03, 0.01])
    assert not error_rate_spike(100, 20, [0.15, 0.2, 0.18])  # this hour is always rough
    assert not error_rate_spike(5, 5, [0.0])  # too few transactions to judge
    assert error_rate_spike(40, 10, [])  # no history: against a default of 2 %


def test_a_floor_is_down_only_when_all_its_devices_are():
    quiet = T0 - timedelta(minutes=1)
    fleet = [FleetDevice("K001", ("本部", "门诊楼", "1F"), True, quiet),
             FleetDevice("K002", ("本部", "门诊楼", "1F"), True, quiet - timedelta(seconds=5)),
             FleetDevice("K003", ("本部", "门诊楼", "2F"), True, quiet),
             FleetDevice("K004", ("本部", "门诊楼", "2F"), False, T0)]
    assert locations_down(fleet) == {("本部", "门诊楼", "1F"): quiet}
