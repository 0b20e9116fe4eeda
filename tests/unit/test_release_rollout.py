"""Rollouts in phases: the plan, the checked transitions, the gate and what a rollback touches."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from medkiosk.domain.releases import (AgentReleaseStatus, DeviceObservation, FleetDevice, GateOutcome, GateThresholds,
                                      IllegalTransition, PhaseKind, PhaseState, RolloutState, building_of,
                                      check_phase_transition, check_rollout_transition, devices_to_send_back,
                                      judge_phase, phase_after_rollback, plan_phases)

START = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
V = "1.5.0"
RULES = GateThresholds(soak_seconds=600, install_deadline_seconds=300, heartbeat_within_seconds=30,
                       min_success_rate=0.9, min_transactions=10)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def healthy(device_id: str, now: datetime, **changes) -> DeviceObservation:
    values = dict(device_id=device_id, last_heartbeat_at=now - timedelta(seconds=3), running_version=V,
                  release_status=AgentReleaseStatus.HEALTHY)
    values.update(changes)
    return DeviceObservation(**values)


# --- the plan -----------------------------------------------------------------------------------------
def fleet() -> list[FleetDevice]:
    out = [FleetDevice(f"OUT-{n:02d}", "本部 / 门诊楼") for n in range(1, 9)]
    out += [FleetDevice(f"WARD-{n:02d}", "本部 / 住院楼") for n in range(1, 5)]
    out.append(FleetDevice("OUT-TEST", "本部 / 门诊楼", preview=True))
    out.append(FleetDevice("EAST-01", "东院 / 综合楼"))
    return out


def test_the_pilot_phase_takes_one_kiosk_per_building_preferring_the_test_kiosk():
    phases = plan_phases(fleet(), share_percent=25)
    assert [p.kind for p in phases] == [PhaseKind.PILOT, PhaseKind.SHARE, PhaseKind.REST]
    assert phases[0].device_ids == ("EAST-01", "OUT-TEST", "WARD-01")


def test_the_share_phase_takes_its_percentage_of_the_rest_and_the_last_phase_takes_everyone_left():
    phases = plan_phases(fleet(), share_percent=25)
    rest = 14 - 3
    assert len(phases[1].device_ids) == 3  # ceil(11 × 25 %)
    assert len(phases[1].device_ids) + len(phases[2].device_ids) == rest
    every = [d for p in phases for d in p.device_ids]
    assert sorted(every) == sorted(d.device_id for d in fleet()) and len(set(every)) == len(every)


def test_a_small_fleet_gets_a_pilot_and_then_the_rest():
    phases = plan_phases([FleetDevice("K1", "A"), FleetDevice("K2", "A")], share_percent=25)
    assert [(p.kind, p.device_ids) for p in phases] == [(PhaseKind.PILOT, ("K1",)), (PhaseKind.REST, ("K2",))]
    assert [p.kind for p in plan_phases([FleetDevice("K1", "A")])] == [PhaseKind.PILOT]


def test_the_building_is_the_campus_and_building_of_the_location():
    assert building_of("本部 / 门诊楼 / 2F / 内科候诊区") == "本部 / 门诊楼"
    assert building_of("门诊楼 1F") == "门诊楼 1F"
    assert building_of("") == ""


# --- transitions --------------------------------------------------------------------------------------
def test_a_rolled_back_rollout_cannot_complete_or_roll_back_again():
    assert check_rollout_transition(RolloutState.ROLLING_OUT, RolloutState.COMPLETED) is RolloutState.COMPLETED
    assert check_rollout_transition("completed", RolloutState.ROLLED_BACK) is RolloutState.ROLLED_BACK
    for target in (RolloutState.COMPLETED, RolloutState.ROLLED_BACK):
        with pytest.raises(IllegalTransition):
            check_rollout_transition(RolloutState.ROLLED_BACK, target)


def test_a_phase_starts_before_it_can_pass_and_a_failed_phase_stays_failed():
    with pytest.raises(IllegalTransition):
        check_phase_transition(PhaseState.PENDING, PhaseState.PASSED)
    assert check_phase_transition(PhaseState.ACTIVE, PhaseState.FAILED) is PhaseState.FAILED
    assert phase_after_rollback(PhaseState.FAILED) is PhaseState.FAILED
    assert phase_after_rollback(PhaseState.PASSED) is PhaseState.ROLLED_BACK
    assert phase_after_rollback(PhaseState.PENDING) is PhaseState.CANCELLED


def test_every_state_has_a_docstring():
    from medkiosk.domain import releases

    source = open(releases.__file__, encoding="utf-8").read()
    for enum in (RolloutState, PhaseState, PhaseKind, GateOutcome, AgentReleaseStatus):
        for member in enum:
            assert f'{member.name} = "{member.value}"\n    """' in source, member


def test_a_rollback_sends_back_the_kiosks_of_every_phase_that_had_started():
    phases = [(PhaseState.PASSED, ["K1", "K2"]), (PhaseState.FAILED, ["K3"]), (PhaseState.PENDING, ["K4"])]
    assert devices_to_send_back(phases) == ["K1", "K2", "K3"]


# --- the gate -----------------------------------------------------------------------------------------
def test_the_gate_waits_while_kiosks_install():
    now = at(60)
    verdict = judge_phase(V, START, now, [healthy("K1", now), healthy("K2", now, release_status=None,
                                                                        running_version="1.4.0")], RULES)
    assert verdict.outcome is GateOutcome.WAIT and "K2" in verdict.reasons[0]


def test_the_gate_waits_for_the_soak_time_and_then_passes():
    assert judge_phase(V, START, at(300), [healthy("K1", at(300))], RULES).outcome is GateOutcome.WAIT
    verdict = judge_phase(V, START, at(601), [healthy("K1", at(601))], RULES)
    assert verdict.outcome is GateOutcome.PASS and verdict.healthy == ("K1",)


def test_a_kiosk_that_refused_the_artifact_fails_the_gate_at_once():
    now = at(20)
    verdict = judge_phase(V, START, now, [healthy("K1", now, release_status=AgentReleaseStatus.REFUSED,
                                                   release_detail="tampered", running_version="1.4.0")], RULES)
    assert verdict.outcome is GateOutcome.FAIL and "拒绝安装" in verdict.reasons[0] and "tampered" in verdict.reasons[0]


def test_a_kiosk_that_switched_back_by_itself_fails_the_gate():
    now = at(200)
    verdict = judge_phase(V, START, now, [healthy("K1", now, release_status=AgentReleaseStatus.ROLLED_BACK,
                                                   running_version="1.4.0")], RULES)
    assert verdict.outcome is GateOutcome.FAIL and "自行回退" in verdict.reasons[0]


def test_a_silent_kiosk_fails_the_gate():
    now = at(120)
    verdict = judge_phase(V, START, now, [healthy("K1", now, last_heartbeat_at=at(60))], RULES)
    assert verdict.outcome is GateOutcome.FAIL and "没有心跳" in verdict.reasons[0]


def test_a_kiosk_not_upgraded_by_the_install_deadline_fails_the_gate():
    now = at(301)
    verdict = judge_phase(V, START, now, [healthy("K1", now, release_status=AgentReleaseStatus.SWITCHED)], RULES)
    assert verdict.outcome is GateOutcome.FAIL and "未在 300 秒内完成升级" in verdict.reasons[0]


def test_a_low_transaction_success_rate_fails_the_gate():
    now = at(400)
    observations = [healthy("K1", now, transactions=12, failures=2), healthy("K2", now, transactions=8)]
    verdict = judge_phase(V, START, now, observations, RULES)
    assert verdict.outcome is GateOutcome.WAIT  # 18 of 20 = 90 %: meets the bar
    observations[1] = healthy("K2", now, transactions=8, failures=1)
    verdict = judge_phase(V, START, now, observations, RULES)
    assert verdict.outcome is GateOutcome.FAIL and "交易成功率 85.0%" in verdict.reasons[0]
    assert (verdict.transactions, verdict.failures) == (20, 3)


def test_too_few_transactions_are_not_judged():
    now = at(601)
    verdict = judge_phase(V, START, now, [healthy("K1", now, transactions=3, failures=3)], RULES)
    assert verdict.outcome is GateOutcome.PASS


def test_a_peripheral_fault_that_was_there_before_the_phase_does_not_count_but_a_new_one_does():
    now = at(601)
    printer_out = healthy("K1", now, faulty_peripherals=frozenset({"receipt_printer"}))
    assert judge_phase(V, START, now, [printer_out], RULES, {"K1": ["receipt_printer"]}).outcome is GateOutcome.PASS
    verdict = judge_phase(V, START, now, [printer_out], RULES, {"K1": []})
    assert verdict.outcome is GateOutcome.FAIL and "receipt_printer" in verdict.reasons[0]


def test_thresholds_round_trip_and_refuse_nonsense():
    assert GateThresholds.from_json(RULES.to_json()) == RULES
    assert GateThresholds.from_json({"soak_seconds": 5, "unknown": 1}).soak_seconds == 5
    with pytest.raises(ValueError):
        GateThresholds(min_success_rate=1.5)
