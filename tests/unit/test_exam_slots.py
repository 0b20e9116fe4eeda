"""Slot rules of exam appointments (domain/exams.py): no I/O, a fixed hospital and a fixed 'now'."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from medkiosk.domain.exams import (
    BookingRefused,
    ExamConfig,
    ExamResource,
    ExamRules,
    HeldBooking,
    Refusal,
    Window,
    WindowTemplate,
    check_booking,
    check_change,
    check_move,
    earliest,
    emptiest_first,
    offer,
)

TZ = ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2026, 11, 23)
NOW = dt.datetime.combine(MONDAY, dt.time(9, 40), tzinfo=TZ)


def t(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def windows(*spec: tuple[str, str, int]) -> tuple[WindowTemplate, ...]:
    return tuple(WindowTemplate(t(a), t(b), c) for a, b, c in spec)


CONFIG = ExamConfig(
    resources=(
        ExamResource("CT-A", frozenset({"ct"}), "放射科", windows(("08:00", "09:00", 2), ("10:00", "11:00", 2),
                                                                  ("14:00", "15:00", 1))),
        ExamResource("CT-B", frozenset({"ct"}), "放射科", windows(("10:00", "11:00", 3)), frozenset(range(5))),
        ExamResource("MR-A", frozenset({"mri"}), "放射科", windows(("08:00", "10:00", 2), ("14:00", "16:00", 2))),
        ExamResource("US-A", frozenset({"ultrasound"}), "超声科", windows(("10:30", "11:30", 4))),
    ),
    rules=ExamRules(horizon_days=2, lead_minutes=30, change_deadline_minutes=120, max_moves=1,
                    not_same_day=frozenset({frozenset({"ct", "mri"})})),
)


def held(order_no: str, exam_type: str, day: dt.date, start: str, end: str) -> HeldBooking:
    return HeldBooking(order_no, exam_type, Window(day, t(start), t(end)))


def test_windows_come_earliest_first_and_those_too_soon_are_left_out():
    days = offer(CONFIG, "ct", NOW, booked={})
    flat = [(d.day, w.window.start) for d in days for w in d.windows]
    assert flat == sorted(flat)
    # 09:40 now with 30 minutes' lead: today's 08:00 is gone, 10:00 (20 minutes away) too.
    assert flat[0] == (MONDAY, t("14:00"))
    assert [d.day for d in days] == [MONDAY, MONDAY + dt.timedelta(days=1), MONDAY + dt.timedelta(days=2)]


def test_a_window_offers_the_places_left_summed_over_every_resource():
    tuesday = MONDAY + dt.timedelta(days=1)
    days = offer(CONFIG, "ct", NOW, booked={("CT-A", tuesday, t("10:00")): 2, ("CT-B", tuesday, t("10:00")): 1})
    window = next(w for d in days if d.day == tuesday for w in d.windows if w.window.start == t("10:00"))
    assert window.remaining == 2 and window.bookable


def test_a_full_window_is_shown_but_not_bookable_and_earliest_skips_it():
    booked = {("CT-A", MONDAY, t("14:00")): 1}
    days = offer(CONFIG, "ct", NOW, booked)
    first = days[0].windows[0]
    assert (first.window.start, first.remaining, first.refusal) == (t("14:00"), 0, Refusal.FULL)
    assert earliest(days).window == Window(MONDAY + dt.timedelta(days=1), t("08:00"), t("09:00"))


def test_a_resource_closed_on_the_weekend_offers_nothing_then():
    saturday = MONDAY + dt.timedelta(days=5)
    now = dt.datetime.combine(saturday, dt.time(7), tzinfo=TZ)
    ten = next(w for w in offer(CONFIG, "ct", now, {})[0].windows if w.window.start == t("10:00"))
    assert ten.remaining == 2  # CT-B works Monday to Friday only


def test_an_overlapping_window_of_the_same_patient_is_refused():
    tuesday = MONDAY + dt.timedelta(days=1)
    mine = [held("US1", "ultrasound", tuesday, "10:30", "11:30")]
    with pytest.raises(BookingRefused) as refused:
        check_booking(CONFIG, "ct", Window(tuesday, t("10:00"), t("11:00")), NOW, mine)
    assert refused.value.refusal is Refusal.OVERLAP and refused.value.conflict_with == "ultrasound"
    # Back to back is not an overlap.
    assert check_booking(CONFIG, "ct", Window(tuesday, t("08:00"), t("09:00")), NOW,
                         [held("US1", "ultrasound", tuesday, "09:00", "10:00")])


def test_exams_the_hospital_marks_as_not_on_the_same_day_are_refused_on_that_day_only():
    tuesday = MONDAY + dt.timedelta(days=1)
    mine = [held("MR1", "mri", tuesday, "14:00", "16:00")]
    with pytest.raises(BookingRefused) as refused:
        check_booking(CONFIG, "ct", Window(tuesday, t("08:00"), t("09:00")), NOW, mine)
    assert refused.value.refusal is Refusal.SAME_DAY
    wednesday = tuesday + dt.timedelta(days=1)
    assert check_booking(CONFIG, "ct", Window(wednesday, t("08:00"), t("09:00")), NOW, mine)
    marked = offer(CONFIG, "ct", NOW, {}, mine)
    by_start = {w.window.start: w.refusal for d in marked if d.day == tuesday for w in d.windows}
    assert by_start == {t("08:00"): Refusal.SAME_DAY, t("10:00"): Refusal.SAME_DAY, t("14:00"): Refusal.OVERLAP}


def test_a_window_no_resource_opens_or_beyond_the_horizon_is_refused():
    with pytest.raises(BookingRefused) as refused:
        check_booking(CONFIG, "ct", Window(MONDAY + dt.timedelta(days=1), t("12:00"), t("13:00")), NOW, [])
    assert refused.value.refusal is Refusal.NOT_OFFERED
    with pytest.raises(BookingRefused) as refused:
        check_booking(CONFIG, "ct", Window(MONDAY + dt.timedelta(days=3), t("08:00"), t("09:00")), NOW, [])
    assert refused.value.refusal is Refusal.TOO_FAR
    with pytest.raises(BookingRefused) as refused:
        check_booking(CONFIG, "ct", Window(MONDAY, t("10:00"), t("11:00")), NOW, [])
    assert refused.value.refusal is Refusal.TOO_SOON


def test_capacity_goes_to_the_emptiest_resource_first():
    tuesday = MONDAY + dt.timedelta(days=1)
    window = Window(tuesday, t("10:00"), t("11:00"))
    candidates = check_booking(CONFIG, "ct", window, NOW, [])
    assert emptiest_first(candidates, {}, window)[0] == ("CT-B", 3)
    assert emptiest_first(candidates, {("CT-B", tuesday, t("10:00")): 2}, window)[0] == ("CT-A", 2)


def test_cancelling_or_moving_closes_two_hours_before_the_window():
    tuesday = MONDAY + dt.timedelta(days=1)
    window = Window(tuesday, t("10:00"), t("11:00"))
    check_change(CONFIG.rules, window, dt.datetime.combine(tuesday, t("08:00"), tzinfo=TZ))  # exactly 2 h: allowed
    with pytest.raises(BookingRefused) as refused:
        check_change(CONFIG.rules, window, dt.datetime.combine(tuesday, t("08:01"), tzinfo=TZ))
    assert refused.value.refusal is Refusal.CHANGE_CLOSED


def test_a_booking_moves_as_often_as_the_rules_allow_and_never_to_its_own_window():
    tuesday = MONDAY + dt.timedelta(days=1)
    mine = held("CT1", "ct", tuesday, "08:00", "09:00")
    target = Window(tuesday, t("14:00"), t("15:00"))
    # Its own window does not conflict with the move.
    assert check_move(CONFIG, "ct", mine, target, NOW, [mine], moves=0) == [("CT-A", 1)]
    with pytest.raises(BookingRefused) as refused:
        check_move(CONFIG, "ct", mine, target, NOW, [mine], moves=1)
    assert refused.value.refusal is Refusal.TOO_MANY_CHANGES
    with pytest.raises(BookingRefused) as refused:
        check_move(CONFIG, "ct", mine, mine.window, NOW, [mine], moves=0)
    assert refused.value.refusal is Refusal.SAME_WINDOW
