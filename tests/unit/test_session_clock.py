from datetime import datetime, timedelta, timezone

import pytest

from medkiosk.domain.session import SessionClock, SessionEnd

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
CLOCK = SessionClock(idle=timedelta(seconds=120), warn=timedelta(seconds=30), max_age=timedelta(minutes=30))


def test_a_session_lives_until_it_has_been_idle_for_the_idle_time():
    assert CLOCK.ended_by(T0, T0, T0 + timedelta(seconds=119)) is None
    assert CLOCK.ended_by(T0, T0, T0 + timedelta(seconds=120)) is SessionEnd.IDLE


def test_activity_restarts_the_idle_clock():
    touched = T0 + timedelta(seconds=100)
    assert CLOCK.ended_by(T0, touched, T0 + timedelta(seconds=200)) is None
    assert CLOCK.seconds_left(T0, touched, T0 + timedelta(seconds=200)) == 20


def test_the_warning_shows_in_the_last_thirty_seconds_only():
    assert not CLOCK.should_warn(T0, T0, T0 + timedelta(seconds=89))
    assert CLOCK.should_warn(T0, T0, T0 + timedelta(seconds=90))
    assert not CLOCK.should_warn(T0, T0, T0 + timedelta(seconds=120))


def test_no_amount_of_activity_outlives_the_hard_limit():
    late = T0 + timedelta(minutes=30)
    assert CLOCK.ended_by(T0, late - timedelta(seconds=1), late) is SessionEnd.MAX_AGE


def test_a_warning_after_the_end_is_refused():
    with pytest.raises(ValueError):
        SessionClock(idle=timedelta(seconds=20), warn=timedelta(seconds=20), max_age=timedelta(minutes=5))
