"""Registration rules (domain/registration.py): no I/O, the hospital's clock, plain refusals."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from medkiosk.domain.payment import AmountMismatch, PaymentState
from medkiosk.domain.queues import HalfDay
from medkiosk.domain.registration import (
    OK,
    HalfDayHours,
    Reason,
    Refusal,
    RegistrationRules,
    RegistrationState,
    after_payment,
    fee_lines,
    fee_split,
)
from medkiosk.settings import Settings

TZ = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC
RULES = RegistrationRules()
THURSDAY = dt.date(2026, 11, 26)
FRIDAY = dt.date(2026, 11, 27)


def at(day: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), tzinfo=TZ)


def refused(decision, reason: Reason) -> Refusal:
    assert isinstance(decision, Refusal), decision
    assert decision.reason is reason
    assert decision.message and decision.next_step
    return decision


moments = st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 12, 31),
                       timezones=st.sampled_from([TZ, UTC, ZoneInfo("America/New_York")]))
days = st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2030, 12, 31))
half_days = st.sampled_from(list(HalfDay))


# -- the hospital's clock -------------------------------------------------------------------------
def test_a_utc_server_at_half_past_eleven_at_night_is_already_in_the_hospitals_next_morning():
    now = dt.datetime(2026, 11, 26, 23, 30, tzinfo=UTC)        # 07:30 on 27 November in Shanghai
    assert RULES.today(now) == FRIDAY
    assert RULES.bookable_dates(now)[0] == FRIDAY
    assert RULES.can_pick_up(now, FRIDAY, HalfDay.AM) is OK
    assert RULES.can_reprint(0, FRIDAY, RULES.today(now)) is OK
    refused(RULES.can_register(now, THURSDAY, HalfDay.PM), Reason.DAY_PASSED)


def test_just_before_midnight_in_shanghai_is_still_the_hospitals_same_day_whatever_utc_says():
    now = dt.datetime(2026, 11, 26, 15, 59, tzinfo=UTC)        # 23:59 on 26 November in Shanghai
    assert RULES.today(now) == THURSDAY
    refused(RULES.can_pick_up(now, FRIDAY, HalfDay.AM), Reason.PICK_UP_TOO_EARLY)


def test_a_naive_datetime_is_a_programming_error():
    naive = dt.datetime(2026, 11, 26, 9, 0)
    for call in (lambda: RULES.bookable_dates(naive), lambda: RULES.can_register(naive, FRIDAY, "am"),
                 lambda: RULES.can_pick_up(naive, FRIDAY, "am"),
                 lambda: RULES.can_cancel(naive, FRIDAY, "am", checked_in=False, seen=True)):
        with pytest.raises(TypeError, match="naive"):
            call()


def test_a_datetime_where_a_date_belongs_is_a_programming_error():
    with pytest.raises(TypeError):
        RULES.can_reprint(0, THURSDAY, at(THURSDAY, "09:00"))


# -- which dates can be registered ----------------------------------------------------------------
def test_registration_is_open_for_today_and_the_next_seven_days():
    dates = RULES.bookable_dates(at(THURSDAY, "09:00"))
    assert dates[0] == THURSDAY and dates[-1] == dt.date(2026, 12, 3) and len(dates) == 8


@given(now=moments, horizon=st.integers(0, 90))
def test_bookable_dates_start_on_the_hospitals_today_and_run_on_for_the_horizon(now, horizon):
    rules = RegistrationRules(horizon_days=horizon)
    dates = rules.bookable_dates(now)
    assert dates[0] == now.astimezone(TZ).date()
    assert len(dates) == horizon + 1
    assert all(b - a == dt.timedelta(days=1) for a, b in itertools.pairwise(dates))


@given(now=moments, day=days, half_day=half_days)
def test_no_date_outside_the_bookable_dates_can_be_registered(now, day, half_day):
    if day not in RULES.bookable_dates(now):
        assert isinstance(RULES.can_register(now, day, half_day), Refusal)


def test_this_afternoon_can_be_registered_in_the_morning():
    assert RULES.can_register(at(THURSDAY, "10:00"), THURSDAY, HalfDay.PM) is OK


def test_this_morning_can_be_registered_until_the_morning_ends():
    assert RULES.can_register(at(THURSDAY, "11:59"), THURSDAY, HalfDay.AM) is OK
    refusal = refused(RULES.can_register(at(THURSDAY, "12:00"), THURSDAY, HalfDay.AM), Reason.HALF_DAY_CLOSED)
    assert "上午" in refusal.message and "12:00" in refusal.message
    assert "下午" in refusal.next_step


def test_a_hospital_can_stop_same_day_registration_before_the_half_day_ends():
    rules = RegistrationRules(registration_closes_minutes_before_end=30)
    assert rules.can_register(at(THURSDAY, "16:59"), THURSDAY, HalfDay.PM) is OK
    refusal = refused(rules.can_register(at(THURSDAY, "17:00"), THURSDAY, HalfDay.PM), Reason.HALF_DAY_CLOSED)
    assert "下午" in refusal.message and "17:00" in refusal.message


def test_a_day_that_has_passed_is_refused_with_its_date():
    refusal = refused(RULES.can_register(at(THURSDAY, "09:00"), dt.date(2026, 11, 25), "am"), Reason.DAY_PASSED)
    assert "11月25日" in refusal.message


def test_a_day_beyond_the_horizon_says_which_days_are_open_and_when_it_opens():
    refusal = refused(RULES.can_register(at(THURSDAY, "09:00"), dt.date(2026, 12, 10), "pm"), Reason.TOO_FAR_AHEAD)
    assert "11月26日 至 12月3日" in refusal.message and "12月10日" in refusal.message
    assert "12月3日 起" in refusal.next_step


def test_the_last_day_of_the_horizon_can_be_registered():
    assert RULES.can_register(at(THURSDAY, "09:00"), dt.date(2026, 12, 3), "pm") is OK


# -- picking up an appointment (tender #15) --------------------------------------------------------
def test_an_appointment_is_picked_up_from_an_hour_before_its_half_day_until_it_ends():
    assert RULES.pick_up_window(FRIDAY, HalfDay.AM) == (at(FRIDAY, "07:00"), at(FRIDAY, "12:00"))
    assert RULES.pick_up_window(FRIDAY, HalfDay.PM) == (at(FRIDAY, "12:30"), at(FRIDAY, "17:30"))


def test_too_early_a_pick_up_says_from_when_until_when():
    refusal = refused(RULES.can_pick_up(at(THURSDAY, "15:00"), FRIDAY, HalfDay.AM), Reason.PICK_UP_TOO_EARLY)
    assert refusal.message == "这个预约要在 11月27日 07:00 至 11月27日 12:00 之间取号，现在还不能取。"
    assert "11月27日 07:00" in refusal.next_step


def test_a_pick_up_after_the_window_says_it_has_passed_and_what_to_do():
    refusal = refused(RULES.can_pick_up(at(FRIDAY, "12:00"), FRIDAY, HalfDay.AM), Reason.PICK_UP_PASSED)
    assert "11月27日 07:00 至 11月27日 12:00" in refusal.message and "已经过了" in refusal.message
    assert "人工窗口" in refusal.next_step


def test_a_hospital_that_allows_it_opens_the_pick_up_days_earlier():
    rules = RegistrationRules(pick_up_days_before=2, pick_up_minutes_before=30)
    opens, closes = rules.pick_up_window(FRIDAY, HalfDay.PM)
    assert (opens, closes) == (at(dt.date(2026, 11, 25), "13:00"), at(FRIDAY, "17:30"))
    refusal = refused(rules.can_pick_up(at(dt.date(2026, 11, 25), "12:59"), FRIDAY, "pm"), Reason.PICK_UP_TOO_EARLY)
    assert "11月25日 13:00 至 11月27日 17:30" in refusal.message


@given(now=moments, day=days, half_day=half_days, minutes=st.integers(0, 720), days_before=st.integers(0, 30))
def test_a_pick_up_is_allowed_exactly_inside_its_window(now, day, half_day, minutes, days_before):
    rules = RegistrationRules(pick_up_minutes_before=minutes, pick_up_days_before=days_before)
    opens, closes = rules.pick_up_window(day, half_day)
    assert opens < closes
    decision = rules.can_pick_up(now, day, half_day)
    assert (decision is OK) == (opens <= now < closes)
    if decision is not OK:
        assert f"{opens.month}月{opens.day}日 {opens:%H:%M}" in decision.message
        assert f"{closes.month}月{closes.day}日 {closes:%H:%M}" in decision.message


# -- cancelling (退号) -----------------------------------------------------------------------------
def test_a_registration_can_be_cancelled_until_its_half_day_starts():
    assert RULES.can_cancel(at(FRIDAY, "07:59"), FRIDAY, "am", checked_in=False, seen=False) is OK
    refusal = refused(RULES.can_cancel(at(FRIDAY, "08:00"), FRIDAY, "am", checked_in=False, seen=False),
                      Reason.CANCEL_CLOSED)
    assert "11月27日 08:00" in refusal.message and "人工窗口" in refusal.next_step


def test_a_hospital_can_close_cancelling_earlier():
    rules = RegistrationRules(cancel_minutes_before_start=120)
    refusal = refused(rules.can_cancel(at(FRIDAY, "11:30"), FRIDAY, "pm", checked_in=False, seen=False),
                      Reason.CANCEL_CLOSED)
    assert "11月27日 11:30" in refusal.message


def test_a_checked_in_registration_is_cancelled_at_the_window_not_the_kiosk():
    refusal = refused(RULES.can_cancel(at(THURSDAY, "09:00"), FRIDAY, "am", checked_in=True, seen=False),
                      Reason.CHECKED_IN)
    assert "报到" in refusal.message and "人工窗口" in refusal.next_step


def test_a_registration_the_doctor_has_seen_cannot_be_cancelled():
    refused(RULES.can_cancel(at(FRIDAY, "07:00"), FRIDAY, "am", checked_in=True, seen=True), Reason.SEEN)


# -- reprinting today's slip (tender #16) ----------------------------------------------------------
def test_todays_slip_can_be_reprinted_twice():
    assert RULES.can_reprint(0, THURSDAY, THURSDAY) is OK
    assert RULES.can_reprint(1, THURSDAY, THURSDAY) is OK
    refusal = refused(RULES.can_reprint(2, THURSDAY, THURSDAY), Reason.REPRINT_LIMIT)
    assert "2 次" in refusal.message


def test_only_todays_slip_can_be_reprinted_and_the_refusal_names_both_days():
    refusal = refused(RULES.can_reprint(0, FRIDAY, THURSDAY), Reason.REPRINT_NOT_TODAY)
    assert "11月27日" in refusal.message and "11月26日" in refusal.message


def test_a_hospital_can_turn_reprinting_off():
    refused(RegistrationRules(reprint_limit=0).can_reprint(0, THURSDAY, THURSDAY), Reason.REPRINT_OFF)


def test_a_negative_reprint_count_is_a_programming_error():
    with pytest.raises(ValueError):
        RULES.can_reprint(-1, THURSDAY, THURSDAY)


# -- the fee --------------------------------------------------------------------------------------
def test_an_insured_patient_sees_the_fee_what_insurance_pays_and_what_they_pay():
    split = fee_split("25.00", fund="15.00", account="4.50")
    assert split.cash == Decimal("5.50")
    assert [(line.label, line.text) for line in fee_lines(split)] == [
        ("挂号费", "25.00 元"), ("医保统筹支付", "15.00 元"), ("个人账户支付", "4.50 元"), ("您需支付", "5.50 元")]


def test_a_self_pay_patient_sees_only_the_fee_and_what_they_pay():
    assert [line.label for line in fee_lines(fee_split(12))] == ["挂号费", "您需支付"]


def test_parts_that_do_not_add_up_to_the_fee_are_refused():
    with pytest.raises(AmountMismatch):
        fee_split("25.00", fund="15.00", account="4.50", cash="5.00")
    with pytest.raises(AmountMismatch):
        fee_split("25.00", fund="20.00", account="6.00")


def test_a_float_a_third_decimal_or_a_negative_part_is_refused():
    with pytest.raises(ValueError):
        fee_split(25.0)
    with pytest.raises(ValueError):
        fee_split("25.005")
    with pytest.raises(ValueError):
        fee_split("25.00", fund="-1.00")


fen = st.integers(0, 100_000).map(lambda n: Decimal(n) / 100)


@given(fee=fen, data=st.data())
def test_the_fee_split_always_adds_up_to_the_fee(fee, data):
    fund = data.draw(st.integers(0, int(fee * 100)).map(lambda n: Decimal(n) / 100))
    account = data.draw(st.integers(0, int((fee - fund) * 100)).map(lambda n: Decimal(n) / 100))
    split = fee_split(str(fee), fund=fund, account=account)
    assert split.fund + split.account + split.cash == split.total == fee
    assert split.cash >= 0
    assert all(line.amount == line.amount.quantize(Decimal("0.01")) for line in fee_lines(split))


# -- the rules themselves, and from settings --------------------------------------------------------
def test_half_day_hours_that_end_before_they_start_are_refused():
    with pytest.raises(ValueError, match="ends before it starts"):
        HalfDayHours.parse("12:00-08:00")
    with pytest.raises(ValueError):
        HalfDayHours.parse("morning")


def test_a_morning_that_runs_into_the_afternoon_is_refused():
    with pytest.raises(ValueError, match="morning"):
        RegistrationRules(morning=HalfDayHours.parse("08:00-14:00"))


def test_registration_cannot_close_before_the_half_day_opens():
    with pytest.raises(ValueError, match="registration_closes_minutes_before_end"):
        RegistrationRules(registration_closes_minutes_before_end=240)


def test_the_default_settings_give_the_default_rules():
    assert Settings().registration_rules() == RULES


def test_settings_build_the_hospitals_own_rules(monkeypatch):
    monkeypatch.setenv("MEDKIOSK_REGISTRATION_AFTERNOON_HOURS", "14:00-17:00")
    monkeypatch.setenv("MEDKIOSK_REGISTRATION_PICK_UP_DAYS_BEFORE", "1")
    monkeypatch.setenv("MEDKIOSK_REGISTRATION_REPRINT_LIMIT", "3")
    rules = Settings().registration_rules()
    assert rules.afternoon == HalfDayHours(dt.time(14, 0), dt.time(17, 0))
    assert rules.pick_up_window(FRIDAY, "pm")[0] == at(THURSDAY, "13:00")
    assert rules.reprint_limit == 3 and rules.tz == TZ


@pytest.mark.parametrize("variable, value", [
    ("MEDKIOSK_REGISTRATION_MORNING_HOURS", "12:00-08:00"),
    ("MEDKIOSK_REGISTRATION_MORNING_HOURS", "08:00-14:00"),
    ("MEDKIOSK_REGISTRATION_AFTERNOON_HOURS", "half past one"),
    ("MEDKIOSK_REGISTRATION_HORIZON_DAYS", "-1"),
    ("MEDKIOSK_REGISTRATION_PICK_UP_MINUTES_BEFORE", "100000"),
    ("MEDKIOSK_REGISTRATION_CLOSES_MINUTES_BEFORE_END", "300"),
    ("MEDKIOSK_REGISTRATION_REPRINT_LIMIT", "many"),
])
def test_nonsense_registration_settings_stop_the_service_at_start(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match="REGISTRATION|registration"):
        Settings()


# -- where a held number or a swap stands once its payment has moved ----------------------------------
@pytest.mark.parametrize(("kind", "payment", "expected"), [
    ("same_day", PaymentState.COMPLETED, RegistrationState.REGISTERED),
    ("pick_up", PaymentState.COMPLETED, RegistrationState.REGISTERED),
    ("swap", PaymentState.COMPLETED, RegistrationState.REFUNDING_APP),  # the app payment is refunded next
    ("swap", PaymentState.CLOSED, RegistrationState.RELEASED),  # given up: the registration as it was
    ("swap", PaymentState.REFUNDED, RegistrationState.RELEASED),  # the posting refused: refunded, as it was
    ("advance", PaymentState.FAILED, RegistrationState.RELEASED),
])
def test_a_payment_that_ended_decides_the_registration(kind, payment, expected):
    assert after_payment(kind, payment) is expected


@given(st.sampled_from(["same_day", "advance", "pick_up", "swap"]),
       st.sampled_from([s for s in PaymentState if not s.terminal]))
def test_a_number_whose_payment_is_still_under_way_stays_held(kind, payment):
    assert after_payment(kind, payment) is RegistrationState.HELD


def test_a_swap_never_ends_registered_before_the_app_payment_is_back():
    assert all(after_payment("swap", p) is not RegistrationState.REGISTERED for p in PaymentState)
