"""Registration (挂号) rules: what can be registered, picked up, cancelled or reprinted, and when. Pure, no I/O.

Every decision is taken on the hospital's day and clock (Asia/Shanghai by default), whatever the
server's own zone: at 23:30 UTC it is already 07:30 the next morning in the hospital, and the
morning's appointments are being picked up. The service passes ``now`` in (an aware datetime; a
naive one is a programming error and raises), the rules answer ``OK`` or a ``Refusal`` that carries
a message a 75-year-old patient can read and the next thing to do — never a code to look up.

The patient-facing words live in ``MESSAGES`` (this module's message catalog), keyed by reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from medkiosk.domain.money import format_amount, not_negative, parse_amount
from medkiosk.domain.payment import AmountMismatch, PaymentState, Split
from medkiosk.domain.queues import HalfDay

HOSPITAL_TIME = ZoneInfo("Asia/Shanghai")


class RegistrationState(StrEnum):
    """Where a registration made or picked up at a kiosk stands, in the kiosk's own record."""

    HOLDING = "holding"
    """The HIS is being asked for the number; no answer yet."""
    HELD = "held"
    """The HIS holds the number (锁号) and its fee is being paid; it lapses unpaid at its hold time."""
    REGISTERED = "registered"
    """The fee is paid and posted: the patient has the number and the slip."""
    RELEASED = "released"
    """The payment was abandoned, refused or expired: the number went back on sale, nothing was kept."""
    REFUSED = "refused"
    """The HIS refused the hold (the number was gone): nothing was held, nothing paid."""
    REFUNDING_APP = "refunding_app"
    """Swapped to insurance (换号) and registered; the app's payment is being refunded, retried until it is."""
    CANCELLING = "cancelling"
    """Cancelled (退号) in the HIS, its number back on sale; the fee is owed back and not yet on its way."""
    CANCELLED = "cancelled"
    """Cancelled, and the fee's payment is being (or has been) given back by the payment engine."""


def after_payment(kind: str, payment: PaymentState) -> RegistrationState:
    """Where a held number (or a swap) stands once its fee's payment is in ``payment``.

    Completed: registered — or, for a swap (``kind`` "swap"), registered by insurance with the app's
    payment still to refund. Ended any other way (closed, failed, refunded): the number is released
    — for a swap, the registration stays as it was, paid in the app. Still under way: still held.
    """
    if payment is PaymentState.COMPLETED:
        return RegistrationState.REFUNDING_APP if kind == "swap" else RegistrationState.REGISTERED
    if payment.terminal:
        return RegistrationState.RELEASED
    return RegistrationState.HELD


class Reason(StrEnum):
    """Why the kiosk refuses a registration step (each has its own words in ``MESSAGES``)."""

    DAY_PASSED = "day_passed"
    """The date asked for is before the hospital's today."""
    TOO_FAR_AHEAD = "too_far_ahead"
    """The date is beyond the advance-registration horizon; it opens later."""
    HALF_DAY_CLOSED = "half_day_closed"
    """Today's half-day is over (or past the hospital's same-day registration cut-off)."""
    PICK_UP_TOO_EARLY = "pick_up_too_early"
    """The appointment's pick-up window has not opened yet."""
    PICK_UP_PASSED = "pick_up_passed"
    """The appointment's pick-up window has closed."""
    SEEN = "seen"
    """The doctor has already seen the patient on this registration: it cannot be cancelled."""
    CHECKED_IN = "checked_in"
    """The patient has checked in (已报到): cancelling is for the staffed window, not the kiosk."""
    CANCEL_CLOSED = "cancel_closed"
    """Past the cancellation cut-off before the half-day starts."""
    REPRINT_OFF = "reprint_off"
    """The hospital does not let kiosks reprint registration slips (limit 0)."""
    REPRINT_NOT_TODAY = "reprint_not_today"
    """Only today's registration slips can be reprinted (tender #16)."""
    REPRINT_LIMIT = "reprint_limit"
    """The slip has been reprinted as often as the hospital allows."""


TO_WINDOW = "请到人工窗口办理，或按“呼叫工作人员”。"

MESSAGES: Mapping[Reason, tuple[str, str]] = {
    Reason.DAY_PASSED: ("{date} 已经过去了，不能再挂这一天的号。", "请选择今天或以后的日期。"),
    Reason.TOO_FAR_AHEAD: ("现在只能挂 {first} 至 {last} 的号，{date} 的号还没有开放。",
                           "{opens} 起可以挂 {date} 的号，请到时再来。"),
    Reason.HALF_DAY_CLOSED: ("今天{half_day}的挂号在 {closes} 已经截止，不能再挂。", "{alternative}"),
    Reason.PICK_UP_TOO_EARLY: ("这个预约要在 {opens} 至 {closes} 之间取号，现在还不能取。",
                               "请在 {opens} 以后再来取号。"),
    Reason.PICK_UP_PASSED: ("这个预约的取号时间是 {opens} 至 {closes}，现在已经过了，不能再取号。",
                            "请到人工窗口咨询，或重新挂号。"),
    Reason.SEEN: ("医生已经为您看过这个号了，不能退号。", "如有疑问，请到人工窗口咨询。"),
    Reason.CHECKED_IN: ("这个号已经报到，不能在自助机上退号。", TO_WINDOW),
    Reason.CANCEL_CLOSED: ("这个号的退号时间截至 {cutoff}，现在已经过了，不能在自助机上退号。", TO_WINDOW),
    Reason.REPRINT_OFF: ("本院自助机不提供补打挂号条。", TO_WINDOW),
    Reason.REPRINT_NOT_TODAY: ("只能补打当天的挂号条。这个号是 {date} 的，今天是 {today}。",
                               "如需这个号的凭证，" + TO_WINDOW),
    Reason.REPRINT_LIMIT: ("这个号的挂号条已经补打了 {times} 次，最多只能补打 {limit} 次。", TO_WINDOW),
}
"""Reason → (message, next step), formatted with the real dates and times of the case."""

HALF_DAY_NAMES = {HalfDay.AM: "上午", HalfDay.PM: "下午"}

FEE_LABELS = {"total": "挂号费", "fund": "医保统筹支付", "account": "个人账户支付", "cash": "您需支付"}


@dataclass(frozen=True)
class Ok:
    """The patient may go ahead."""

    allowed: ClassVar[bool] = True


OK = Ok()


@dataclass(frozen=True)
class Refusal:
    """The patient may not go ahead: what to tell them and what they can do instead."""

    reason: Reason
    message: str
    next_step: str
    allowed: ClassVar[bool] = False

    @classmethod
    def of(cls, reason: Reason, **facts: Any) -> Refusal:
        message, next_step = MESSAGES[reason]
        return cls(reason, message.format(**facts), next_step.format(**facts))


Decision = Ok | Refusal


def day_text(day: dt.date) -> str:
    """A date as the patient reads it: 11月27日."""
    return f"{day.month}月{day.day}日"


def moment_text(at: dt.datetime) -> str:
    """A moment as the patient reads it: 11月27日 07:00 (already in the hospital's zone)."""
    return f"{day_text(at.date())} {at:%H:%M}"


def _aware(at: dt.datetime, name: str = "now") -> dt.datetime:
    if not isinstance(at, dt.datetime):
        raise TypeError(f"{name} must be a datetime, not {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise TypeError(f"{name} is a naive datetime; registration rules need an aware one")
    return at


def _plain_date(day: dt.date, name: str) -> dt.date:
    # A datetime is a date too, and never equals one: comparing it to today would quietly fail.
    if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
        raise TypeError(f"{name} must be a date, not {type(day).__name__}")
    return day


@dataclass(frozen=True)
class HalfDayHours:
    """When a half-day's clinics run, ``start``–``end`` in the hospital's clock."""

    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("half-day hours are wall-clock times in the hospital's zone, without tzinfo")
        if self.end <= self.start:
            raise ValueError(f"a half-day {self.start:%H:%M}–{self.end:%H:%M} ends before it starts")

    @classmethod
    def parse(cls, text: str) -> HalfDayHours:
        """``"08:00-12:00"`` (the settings' form)."""
        try:
            start, end = (dt.time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError:
            raise ValueError(f"{text!r} is not hours such as 08:00-12:00") from None
        return cls(start, end)

    @property
    def minutes(self) -> int:
        return (self.end.hour * 60 + self.end.minute) - (self.start.hour * 60 + self.start.minute)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class RegistrationRules:
    """The hospital's registration rules. Defaults are the tender's usual hospital."""

    tz: dt.tzinfo = HOSPITAL_TIME
    """The hospital's clock: its day decides 'today'."""
    morning: HalfDayHours = HalfDayHours(dt.time(8, 0), dt.time(12, 0))
    afternoon: HalfDayHours = HalfDayHours(dt.time(13, 30), dt.time(17, 30))
    horizon_days: int = 7
    """Registration is open for today and the next ``horizon_days`` days."""
    pick_up_minutes_before: int = 60
    """An appointment can be picked up from this long before its half-day starts …"""
    pick_up_days_before: int = 0
    """… on the appointment's day, or this many days earlier for hospitals that allow it."""
    registration_closes_minutes_before_end: int = 0
    """Today's half-day can be registered until this long before it ends (0: until it ends)."""
    cancel_minutes_before_start: int = 0
    """A registration can be cancelled (退号) at a kiosk until this long before its half-day starts."""
    reprint_limit: int = 2
    """How often one day's registration slip can be reprinted; 0 turns reprinting off."""

    def __post_init__(self) -> None:
        problems = []
        if self.morning.end > self.afternoon.start:
            problems.append(f"the morning ({self.morning}) must end before the afternoon ({self.afternoon}) starts")
        if not 0 <= self.horizon_days <= 90:
            problems.append("horizon_days must be 0–90")
        if not 0 <= self.pick_up_minutes_before <= 720:
            problems.append("pick_up_minutes_before must be 0–720")
        if not 0 <= self.pick_up_days_before <= 30:
            problems.append("pick_up_days_before must be 0–30")
        shortest = min(self.morning.minutes, self.afternoon.minutes)
        if not 0 <= self.registration_closes_minutes_before_end < shortest:
            problems.append(f"registration_closes_minutes_before_end must be 0–{shortest - 1} "
                            "(less than the shorter half-day, or registration would close before it opens)")
        if not 0 <= self.cancel_minutes_before_start <= 1440:
            problems.append("cancel_minutes_before_start must be 0–1440")
        if not 0 <= self.reprint_limit <= 10:
            problems.append("reprint_limit must be 0–10")
        if problems:
            raise ValueError("; ".join(problems))

    # -- the hospital's clock ---------------------------------------------------------------------
    def local(self, at: dt.datetime) -> dt.datetime:
        return _aware(at).astimezone(self.tz)

    def today(self, now: dt.datetime) -> dt.date:
        """The hospital's date at ``now`` (not the server's, not UTC's)."""
        return self.local(now).date()

    def hours(self, half_day: HalfDay | str) -> HalfDayHours:
        return self.morning if HalfDay(half_day) is HalfDay.AM else self.afternoon

    def half_day_bounds(self, day: dt.date, half_day: HalfDay | str) -> tuple[dt.datetime, dt.datetime]:
        """When the half-day starts and ends, aware, in the hospital's zone."""
        hours = self.hours(half_day)
        day = _plain_date(day, "day")
        return (dt.datetime.combine(day, hours.start, tzinfo=self.tz),
                dt.datetime.combine(day, hours.end, tzinfo=self.tz))

    # -- registering ------------------------------------------------------------------------------
    def bookable_dates(self, now: dt.datetime) -> list[dt.date]:
        """Today and the next ``horizon_days`` days, in order (a day's closed half-days are refused
        one by one by ``can_register``)."""
        today = self.today(now)
        return [today + dt.timedelta(days=n) for n in range(self.horizon_days + 1)]

    def registration_closes(self, day: dt.date, half_day: HalfDay | str) -> dt.datetime:
        _, end = self.half_day_bounds(day, half_day)
        return end - dt.timedelta(minutes=self.registration_closes_minutes_before_end)

    def can_register(self, now: dt.datetime, day: dt.date, half_day: HalfDay | str) -> Decision:
        """Whether (day, half-day) can be registered at ``now``: not a past day, not beyond the
        horizon, and for today not after the half-day's registration has closed."""
        half_day = HalfDay(half_day)
        day = _plain_date(day, "day")
        local_now = self.local(now)
        today = local_now.date()
        if day < today:
            return Refusal.of(Reason.DAY_PASSED, date=day_text(day))
        last = today + dt.timedelta(days=self.horizon_days)
        if day > last:
            opens = day - dt.timedelta(days=self.horizon_days)
            return Refusal.of(Reason.TOO_FAR_AHEAD, first=day_text(today), last=day_text(last),
                              date=day_text(day), opens=day_text(opens))
        closes = self.registration_closes(day, half_day)
        if local_now >= closes:
            alternative = ("可以改挂今天下午或以后日期的号；今天上午急需看病，请到人工窗口咨询。"
                           if half_day is HalfDay.AM else
                           "可以改挂以后日期的号；今天急需看病，请到人工窗口或急诊咨询。")
            return Refusal.of(Reason.HALF_DAY_CLOSED, half_day=HALF_DAY_NAMES[half_day],
                              closes=f"{closes:%H:%M}", alternative=alternative)
        return OK

    # -- picking up an appointment (预约取号, tender #15) ------------------------------------------
    def pick_up_window(self, appointment_date: dt.date, half_day: HalfDay | str) -> tuple[dt.datetime, dt.datetime]:
        """``[from, until)``: from ``pick_up_minutes_before`` the half-day's start (``pick_up_days_before``
        days earlier) until the half-day ends, aware, in the hospital's zone."""
        start, end = self.half_day_bounds(appointment_date, half_day)
        opens = start - dt.timedelta(days=self.pick_up_days_before, minutes=self.pick_up_minutes_before)
        return opens, end

    def can_pick_up(self, now: dt.datetime, appointment_date: dt.date, half_day: HalfDay | str) -> Decision:
        """Inside the pick-up window, or a refusal that names the window's dates and times."""
        opens, closes = self.pick_up_window(appointment_date, half_day)
        local_now = self.local(now)
        if opens <= local_now < closes:
            return OK
        reason = Reason.PICK_UP_TOO_EARLY if local_now < opens else Reason.PICK_UP_PASSED
        return Refusal.of(reason, opens=moment_text(opens), closes=moment_text(closes))

    # -- cancelling (退号) ------------------------------------------------------------------------
    def cancel_cutoff(self, day: dt.date, half_day: HalfDay | str) -> dt.datetime:
        start, _ = self.half_day_bounds(day, half_day)
        return start - dt.timedelta(minutes=self.cancel_minutes_before_start)

    def can_cancel(self, now: dt.datetime, day: dt.date, half_day: HalfDay | str, *,
                   checked_in: bool, seen: bool) -> Decision:
        """Not once the doctor has seen the patient, not once checked in, not after the cut-off.
        When several hold, the patient hears the one that no window can undo first (seen by the doctor)."""
        local_now = self.local(now)
        if seen:
            return Refusal.of(Reason.SEEN)
        if checked_in:
            return Refusal.of(Reason.CHECKED_IN)
        cutoff = self.cancel_cutoff(day, half_day)
        if local_now >= cutoff:
            return Refusal.of(Reason.CANCEL_CLOSED, cutoff=moment_text(cutoff))
        return OK

    # -- reprinting today's slip (补打挂号条, tender #16) ------------------------------------------
    def can_reprint(self, times_already_reprinted: int, registration_date: dt.date, today: dt.date) -> Decision:
        """Only a registration for the hospital's today (``today(now)``), up to ``reprint_limit`` times."""
        registration_date = _plain_date(registration_date, "registration_date")
        today = _plain_date(today, "today")
        if times_already_reprinted < 0:
            raise ValueError("times_already_reprinted cannot be negative")
        if self.reprint_limit == 0:
            return Refusal.of(Reason.REPRINT_OFF)
        if registration_date != today:
            return Refusal.of(Reason.REPRINT_NOT_TODAY, date=day_text(registration_date), today=day_text(today))
        if times_already_reprinted >= self.reprint_limit:
            return Refusal.of(Reason.REPRINT_LIMIT, times=times_already_reprinted, limit=self.reprint_limit)
        return OK


# -- the registration fee as the patient sees it ---------------------------------------------------
@dataclass(frozen=True)
class FeeLine:
    """One line of the fee box on the confirmation page: what, and how much in yuan."""

    label: str
    amount: Decimal

    @property
    def text(self) -> str:
        return f"{format_amount(self.amount)} 元"


def fee_split(fee: Any, *, fund: Any = "0.00", account: Any = "0.00", cash: Any = None) -> Split:
    """The registration fee divided into fund, personal account and cash, exact to the fen.

    Amounts are strings, ints or Decimals (a float is refused: it has already lost its fen). A cash
    part left out is what the fund and the account do not cover. Parts that do not add up to the fee
    raise ``AmountMismatch`` (tender #9: the flow halts); a negative part raises ``ValueError``.
    """
    total = not_negative(parse_amount(fee))
    fund_part = not_negative(parse_amount(fund))
    account_part = not_negative(parse_amount(account))
    if cash is None:
        if fund_part + account_part > total:
            raise AmountMismatch("split", total, fund_part + account_part)
        cash_part = total - fund_part - account_part
    else:
        cash_part = not_negative(parse_amount(cash))
    return Split(total, fund_part, account_part, cash_part)


def fee_lines(split: Split) -> list[FeeLine]:
    """The fee, the parts insurance pays (when it pays any) and what the patient pays, in that order."""
    lines = [FeeLine(FEE_LABELS["total"], split.total)]
    lines += [FeeLine(FEE_LABELS[part], getattr(split, part)) for part in ("fund", "account") if getattr(split, part)]
    lines.append(FeeLine(FEE_LABELS["cash"], split.cash))
    return lines
