"""Queue ordering rules (domain/queues.py): slots, lateness, priority, re-joining, closing, states."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medkiosk.domain.queues import (
    TRANSITIONS,
    EntryState,
    IllegalTransition,
    PriorityFlag,
    QueueEntry,
    QueueRules,
    RejoinKind,
    check_in_closed,
    check_transition,
    is_late,
    may_rejoin_after_missed,
    next_for,
    position,
    rejoined,
    waiting_order,
)

TZ = dt.timezone(dt.timedelta(hours=8))
DAY = dt.datetime(2026, 11, 26, tzinfo=TZ)
RULES = QueueRules()


def at(hhmm: str) -> dt.datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return DAY.replace(hour=hours, minute=minutes)


def entry(id: int, checked_in: str, window: str | None = None, **kwargs) -> QueueEntry:
    start = end = None
    if window:
        begin, finish = window.split("-")
        start, end = at(begin), at(finish)
    return QueueEntry(id=id, state=kwargs.pop("state", EntryState.WAITING), checked_in_at=at(checked_in),
                      slot_start=start, slot_end=end, **kwargs)


def ids(entries) -> list[int]:
    return [e.id for e in entries]


def test_patients_are_called_by_appointment_slot_then_by_check_in_time():
    line = [entry(1, "07:50", "08:30-09:00"), entry(2, "07:40", "08:00-08:30"), entry(3, "07:30", "08:30-09:00")]
    assert ids(waiting_order(line, RULES)) == [2, 3, 1]


def test_a_late_patient_waits_behind_the_on_time_patients_of_the_next_slot():
    late = entry(1, "08:40", "08:00-08:30")        # arrived in the 08:30 slot: placed in the 09:00 slot, last
    on_time_0900 = entry(2, "08:50", "09:00-09:30")
    on_time_0830 = entry(3, "08:20", "08:30-09:00")
    next_slot_0930 = entry(4, "08:10", "09:30-10:00")
    assert is_late(late, RULES) and not is_late(on_time_0900, RULES)
    assert ids(waiting_order([late, on_time_0900, on_time_0830, next_slot_0930], RULES)) == [3, 2, 1, 4]


def test_the_grace_period_keeps_a_slightly_late_patient_on_time():
    slightly_late = entry(1, "08:35", "08:00-08:30")
    assert is_late(slightly_late, RULES)
    assert not is_late(slightly_late, QueueRules(late_grace_minutes=10))


def test_priority_patients_go_first_only_for_the_flags_the_hospital_honours():
    aged = entry(1, "08:20", "09:00-09:30", age=82)
    veteran = entry(2, "08:25", "09:30-10:00", flags=frozenset({PriorityFlag.VETERAN}))
    ordinary = entry(3, "07:50", "08:00-08:30", age=45)
    assert ids(waiting_order([ordinary, veteran, aged], RULES)) == [1, 2, 3]
    only_aged = QueueRules(priority_flags=frozenset({PriorityFlag.AGED}))
    assert ids(waiting_order([ordinary, veteran, aged], only_aged)) == [1, 3, 2]
    strict = QueueRules(priority_flags=frozenset())
    assert ids(waiting_order([ordinary, veteran, aged], strict)) == [3, 1, 2]


def test_a_patient_back_with_results_rejoins_behind_two_waiting_patients():
    line = [entry(i, f"08:0{i}", "08:00-08:30") for i in range(1, 6)]
    seen = entry(9, "07:30", "08:00-08:30", state=EntryState.DONE)
    back = rejoined(seen, [*line, seen], RULES, RejoinKind.RETURNING, at("09:10"))
    assert back.state is EntryState.WAITING
    assert ids(waiting_order([*line, back], RULES)) == [1, 2, 9, 3, 4, 5]
    # A priority patient arriving later still goes first; the returner keeps its place among the rest.
    aged = entry(7, "09:15", "09:00-09:30", age=85)
    assert ids(waiting_order([*line, back, aged], RULES)) == [7, 1, 2, 9, 3, 4, 5]


def test_a_returning_patient_with_nobody_waiting_is_next():
    seen = entry(9, "07:30", "08:00-08:30", state=EntryState.DONE)
    back = rejoined(seen, [seen], RULES, RejoinKind.RETURNING, at("09:10"))
    assert next_for([back, entry(1, "09:20", "08:00-08:30")], RULES).id == 9


def test_a_missed_patient_rejoins_behind_three_and_is_sent_to_the_desk_after_too_many_misses():
    line = [entry(i, f"08:0{i}", "08:00-08:30") for i in range(1, 6)]
    missed = entry(9, "07:30", "08:00-08:30", state=EntryState.MISSED, missed_count=1)
    back = rejoined(missed, [*line, missed], RULES, RejoinKind.MISSED, at("08:40"))
    assert position([*line, back], RULES, 9) == 4
    assert may_rejoin_after_missed(missed, RULES)
    assert not may_rejoin_after_missed(entry(8, "08:00", state=EntryState.MISSED, missed_count=3), RULES)


def test_an_experts_patients_wait_for_that_expert():
    expert_patient = entry(1, "07:30", "08:00-08:30", doctor_code="D010101")
    anyone = entry(2, "07:40", "08:00-08:30")
    assert next_for([expert_patient, anyone], RULES, "D010102").id == 2
    assert next_for([expert_patient, anyone], RULES, "D010101").id == 1


def test_morning_registrations_cannot_check_in_after_the_morning_session_closes():
    assert not check_in_closed("am", dt.time(11, 59), RULES)
    assert check_in_closed("am", dt.time(12, 0), RULES)
    assert not check_in_closed("pm", dt.time(12, 0), RULES)
    assert check_in_closed("pm", dt.time(17, 30), RULES)
    assert not check_in_closed("am", dt.time(12, 30), QueueRules(am_closes=dt.time(13, 0)))


def test_states_move_only_along_the_allowed_transitions():
    assert check_transition(EntryState.WAITING, EntryState.CALLED) is EntryState.CALLED
    assert check_transition(EntryState.CALLED, EntryState.CALLED) is EntryState.CALLED  # a recall
    with pytest.raises(IllegalTransition):
        check_transition(EntryState.DONE, EntryState.CALLED)
    with pytest.raises(IllegalTransition):
        check_transition(EntryState.CANCELLED, EntryState.WAITING)
    assert all(state.__doc__ for state in EntryState)


def test_rules_round_trip_through_json_and_refuse_nonsense():
    rules = QueueRules(priority_flags=frozenset({PriorityFlag.DISABLED}), am_closes=dt.time(11, 30), result_seconds=6)
    assert QueueRules.from_json(rules.to_json()) == rules
    with pytest.raises(ValueError):
        QueueRules(result_seconds=30)
    with pytest.raises(ValueError):
        QueueRules.from_json({"speed": "fast"})


# --- properties ---------------------------------------------------------------------------------------------
minutes = st.integers(min_value=7 * 60, max_value=17 * 60)


@st.composite
def entries(draw):
    count = draw(st.integers(min_value=0, max_value=25))
    made = []
    for i in range(1, count + 1):
        checked_in = DAY + dt.timedelta(minutes=draw(minutes), seconds=draw(st.integers(0, 59)))
        window = draw(st.one_of(st.none(), st.integers(min_value=16, max_value=34)))
        start = DAY + dt.timedelta(minutes=30 * window) if window is not None else None
        made.append(QueueEntry(
            id=i, state=draw(st.sampled_from([EntryState.WAITING] * 4 + list(EntryState))),
            checked_in_at=checked_in, slot_start=start,
            slot_end=start + dt.timedelta(minutes=30) if start else None,
            age=draw(st.integers(min_value=1, max_value=99)),
            flags=frozenset(draw(st.sets(st.sampled_from(list(PriorityFlag)), max_size=1)))))
    return made


@settings(max_examples=200, deadline=None)
@given(entries())
def test_the_order_holds_every_waiting_patient_exactly_once_and_nobody_else(line):
    ordered = waiting_order(line, RULES)
    assert sorted(ids(ordered)) == sorted(e.id for e in line if e.state is EntryState.WAITING)


@settings(max_examples=200, deadline=None)
@given(entries())
def test_no_ordinary_patient_is_ahead_of_a_priority_patient(line):
    ordered = waiting_order(line, RULES)
    priority = [i for i, e in enumerate(ordered) if e.age >= 80 or e.flags]
    ordinary = [i for i, e in enumerate(ordered) if not (e.age >= 80 or e.flags)]
    assert not priority or not ordinary or max(priority) < min(ordinary)


@settings(max_examples=200, deadline=None)
@given(entries())
def test_on_time_patients_without_priority_keep_slot_then_check_in_order(line):
    strict = QueueRules(priority_flags=frozenset())
    ordered = [e for e in waiting_order(line, strict) if e.slot_start and not is_late(e, strict)]
    assert [(e.slot_start, e.checked_in_at) for e in ordered] == sorted((e.slot_start, e.checked_in_at)
                                                                        for e in ordered)


@settings(max_examples=200, deadline=None)
@given(entries(), st.integers(min_value=0, max_value=6), st.sampled_from(list(RejoinKind)))
def test_a_rejoining_patient_lands_behind_as_many_as_the_rule_says(line, after, kind):
    rules = QueueRules(returning_after=after, missed_after=after)
    leaver = QueueEntry(id=999, state=EntryState.DONE if kind is RejoinKind.RETURNING else EntryState.MISSED,
                        checked_in_at=DAY)
    waiting_before = len(waiting_order(line, rules))
    back = rejoined(leaver, [*line, leaver], rules, kind, DAY + dt.timedelta(hours=18))
    assert position([*line, back], rules, 999) == min(after, waiting_before) + 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(EntryState)), min_size=1, max_size=12))
def test_any_sequence_of_moves_either_follows_the_table_or_is_refused(moves):
    state = EntryState.WAITING
    for target in moves:
        if target in TRANSITIONS[state]:
            state = check_transition(state, target)
        else:
            with pytest.raises(IllegalTransition):
                check_transition(state, target)
