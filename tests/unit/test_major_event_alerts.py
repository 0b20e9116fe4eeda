"""Major-event mode tightens the built-in alert rules (pure: no store, no clock)."""

from __future__ import annotations

from datetime import timedelta

from medkiosk.domain.alerts import Route, Severity
from medkiosk.domain.releases import DEFAULT_MAJOR_EVENT_THRESHOLDS
from medkiosk.services.alerts import DEFAULT_SPIKE_FACTOR, builtin_rules, tighten


def test_outside_a_major_event_the_rules_are_as_built():
    rules = builtin_rules()
    force = tighten(rules, Route(), None)
    assert force.rules == rules and force.route == Route() and force.spike_factor == DEFAULT_SPIKE_FACTOR


def test_a_major_event_fires_sooner_notifies_at_any_hour_and_escalates():
    rules = builtin_rules(offline_for=timedelta(seconds=60))
    force = tighten(rules, Route(), {**DEFAULT_MAJOR_EVENT_THRESHOLDS, "offline_for_seconds": 15}, "国庆保障")
    assert force.rules["device_offline"].for_ == timedelta(seconds=15)
    assert force.rules["location_network_down"].for_ == timedelta(seconds=15)
    assert not any(rule.business_hours_only for rule in force.rules.values())
    assert force.rules["paper_low"].severity is Severity.CRITICAL
    assert force.route.repeat_interval == timedelta(minutes=5) and force.spike_factor == 1.5


def test_a_major_event_never_loosens_a_rule():
    rules = builtin_rules(offline_for=timedelta(seconds=30))
    force = tighten(rules, Route(), {"offline_for_seconds": 300, "error_rate_factor": 10, "paper_low_warns": False})
    assert force.rules["device_offline"].for_ == timedelta(seconds=30)
    assert force.rules["paper_low"].business_hours_only and force.spike_factor == DEFAULT_SPIKE_FACTOR
