"""Ticket states and clocks: transitions checked in one place, clocks that pause while waiting."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from medkiosk.domain.tickets import (TRANSITIONS, ClockLevel, TicketState, Transition, TransitionRefused,
                                     check_resolution, check_transition, crossed, own_clock, resolve_clock)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def advance(self, **kwargs) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


def test_every_state_has_its_transitions_and_closed_is_final():
    assert set(TRANSITIONS) == set(TicketState)
    assert TRANSITIONS[TicketState.CLOSED] == frozenset()


@pytest.mark.parametrize("current, target", [
    (TicketState.NEW, TicketState.RESOLVED),
    (TicketState.NEW, TicketState.IN_PROGRESS),
    (TicketState.WAITING, TicketState.RESOLVED),
    (TicketState.IN_PROGRESS, TicketState.VERIFIED),
    (TicketState.RESOLVED, TicketState.CLOSED),
    (TicketState.CLOSED, TicketState.IN_PROGRESS),
])
def test_a_transition_the_state_does_not_allow_is_refused_in_plain_words(current, target):
    with pytest.raises(TransitionRefused, match="不能改为"):
        check_transition(current, target)


def test_the_whole_path_from_new_to_closed_is_allowed():
    path = [TicketState.NEW, TicketState.ASSIGNED, TicketState.IN_PROGRESS, TicketState.WAITING,
            TicketState.IN_PROGRESS, TicketState.RESOLVED, TicketState.VERIFIED, TicketState.CLOSED]
    for current, target in zip(path, path[1:]):
        check_transition(current, target)


def test_a_ticket_is_resolved_only_with_its_cause_and_action():
    with pytest.raises(TransitionRefused, match="处理记录"):
        check_resolution("打印机卡纸", " ")
    check_resolution("打印机卡纸", "清理纸道并更换纸卷")


def test_time_to_own_warns_at_75_percent_and_breaches_at_100_then_stops_when_assigned():
    clock = FakeClock()
    history = [Transition(T0, TicketState.NEW)]
    target = timedelta(minutes=20)
    assert own_clock(history, clock.advance(minutes=14), target).level is ClockLevel.OK
    assert own_clock(history, clock.advance(minutes=1), target).level is ClockLevel.WARNING  # 15 of 20
    assert own_clock(history, clock.advance(minutes=5), target).level is ClockLevel.BREACHED  # 20 of 20
    history.append(Transition(clock.now, TicketState.ASSIGNED))
    reading = own_clock(history, clock.advance(hours=5), target)
    assert not reading.running and reading.elapsed == timedelta(minutes=20)


def test_time_to_resolve_pauses_while_waiting_and_resumes_after():
    clock = FakeClock()
    target = timedelta(hours=4)
    history = [Transition(T0, TicketState.NEW), Transition(clock.advance(minutes=10), TicketState.ASSIGNED),
               Transition(clock.advance(minutes=20), TicketState.IN_PROGRESS),
               Transition(clock.advance(hours=1), TicketState.WAITING)]  # 1 h 30 min so far
    waiting = resolve_clock(history, clock.advance(hours=30), target)  # a vendor's part takes 30 h
    assert waiting.paused and not waiting.running
    assert waiting.elapsed == timedelta(hours=1, minutes=30) and waiting.level is ClockLevel.OK
    history.append(Transition(clock.now, TicketState.IN_PROGRESS))
    assert resolve_clock(history, clock.advance(hours=1, minutes=30), target).level is ClockLevel.WARNING  # 3 of 4
    assert resolve_clock(history, clock.advance(hours=1), target).level is ClockLevel.BREACHED  # 4 of 4


def test_a_resolution_that_fails_verification_runs_the_resolve_clock_again():
    clock = FakeClock()
    target = timedelta(hours=4)
    history = [Transition(T0, TicketState.NEW), Transition(clock.advance(minutes=5), TicketState.ASSIGNED),
               Transition(clock.now, TicketState.IN_PROGRESS), Transition(clock.advance(hours=1), TicketState.RESOLVED)]
    stopped = resolve_clock(history, clock.advance(hours=10), target)
    assert not stopped.running and stopped.elapsed == timedelta(hours=1, minutes=5)
    history.append(Transition(clock.now, TicketState.IN_PROGRESS))
    reopened = resolve_clock(history, clock.advance(hours=2), target)
    assert reopened.running and reopened.elapsed == timedelta(hours=3, minutes=5)


def test_a_level_is_announced_once_when_it_is_reached():
    assert crossed(ClockLevel.OK, ClockLevel.WARNING) is ClockLevel.WARNING
    assert crossed(ClockLevel.WARNING, ClockLevel.WARNING) is None
    assert crossed(ClockLevel.OK, ClockLevel.BREACHED) is ClockLevel.BREACHED
