"""Exam appointment rules: which time windows a patient may book, cancel or move to. Pure, no I/O.

The hospital configures its exam resources (a CT scanner, an ultrasound room …), the weekly time
windows each one opens with its capacity, and its rules (how far ahead, how late a change, which
exams may not fall on the same day). The patient never sees a resource: the kiosk offers time
windows, each with the spare capacity summed over every resource that can do the exam, earliest
first (tender #8). The service turns a chosen window into a resource with room in it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Refusal(StrEnum):
    """Why a booking, a cancellation or a move is refused (the service words it for the patient)."""

    NOT_OFFERED = "not_offered"
    """No resource for this exam opens that window on that day."""
    TOO_SOON = "too_soon"
    """The window starts too soon (or has passed) to be booked now."""
    TOO_FAR = "too_far"
    """The window is beyond how far ahead the hospital lets patients book."""
    FULL = "full"
    """Every resource's capacity in the window is taken."""
    OVERLAP = "overlap"
    """The patient has another exam booked in an overlapping window."""
    SAME_DAY = "same_day"
    """The patient has an exam booked that day which the hospital does not allow with this one."""
    CHANGE_CLOSED = "change_closed"
    """Too close to the booked window (or past it) to cancel or move it at a kiosk."""
    TOO_MANY_CHANGES = "too_many_changes"
    """The booking has already been moved as often as the rules allow."""
    SAME_WINDOW = "same_window"
    """A move to the window the booking already has."""


class BookingState(StrEnum):
    BOOKED = "booked"
    """The order holds a place in a window (booked or moved there)."""
    CANCELLED = "cancelled"
    """The place was given back; the order may be booked again."""

    @staticmethod
    def check(current: "BookingState", target: "BookingState") -> None:
        """Book ↔ cancel only: a booked order is moved without leaving ``booked``."""
        if current is target:
            raise ValueError(f"an exam booking is already {current.value}")


@dataclass(frozen=True)
class WindowTemplate:
    """A weekly window of one resource: ``start``–``end`` with room for ``capacity`` patients."""

    start: dt.time
    end: dt.time
    capacity: int

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"window {self.start}–{self.end} ends before it starts")
        if self.capacity < 0:
            raise ValueError("capacity cannot be negative")


@dataclass(frozen=True)
class ExamResource:
    """Something that performs exams (a scanner, a room). ``code`` is internal and never shown."""

    code: str
    exam_types: frozenset[str]
    place: str
    """Where the patient goes (on the slip): building, floor, department, room."""
    windows: tuple[WindowTemplate, ...]
    weekdays: frozenset[int] = frozenset(range(7))
    """Days it works, Monday 0 … Sunday 6."""

    def opens(self, day: dt.date) -> tuple[WindowTemplate, ...]:
        return self.windows if day.weekday() in self.weekdays else ()


@dataclass(frozen=True)
class ExamRules:
    horizon_days: int = 14
    """The last bookable day is today + horizon_days."""
    lead_minutes: int = 30
    """A window must start at least this long after now to be booked."""
    change_deadline_minutes: int = 120
    """A booking can be cancelled or moved until this long before its window starts."""
    max_moves: int = 2
    """How often one booking may be moved to another window."""
    not_same_day: frozenset[frozenset[str]] = frozenset()
    """Pairs of exam types the hospital does not do on one day for one patient."""


@dataclass(frozen=True)
class ExamConfig:
    resources: tuple[ExamResource, ...]
    rules: ExamRules = ExamRules()
    preparations: Mapping[str, str] = field(default_factory=dict)
    """What the patient must do beforehand, by exam type, when the HIS order says nothing."""
    check_in: Mapping[str, str] = field(default_factory=dict)
    """How to check in on the day, by exam type."""

    def resources_for(self, exam_type: str) -> list[ExamResource]:
        return [r for r in self.resources if exam_type in r.exam_types]

    def resource(self, code: str) -> ExamResource | None:
        return next((r for r in self.resources if r.code == code), None)


@dataclass(frozen=True, order=True)
class Window:
    """A concrete window on a day (what the patient chooses)."""

    day: dt.date
    start: dt.time
    end: dt.time

    def starts_at(self, tz: dt.tzinfo | None) -> dt.datetime:
        return dt.datetime.combine(self.day, self.start, tzinfo=tz)

    def overlaps(self, other: "Window") -> bool:
        return self.day == other.day and self.start < other.end and other.start < self.end


SlotKey = tuple[str, dt.date, dt.time]
"""(resource code, day, window start): the unit of capacity."""


@dataclass(frozen=True)
class HeldBooking:
    """One of the patient's live bookings, as the conflict rules need it."""

    order_no: str
    exam_type: str
    window: Window


@dataclass(frozen=True)
class WindowOffer:
    window: Window
    remaining: int
    """Spare places summed over every resource that can do the exam."""
    refusal: Refusal | None = None
    """Why this patient cannot take it (full, too soon, a conflict); None when bookable."""
    conflict_with: str | None = None
    """The exam type of the booking it conflicts with, for the message."""

    @property
    def bookable(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class DayOffer:
    day: dt.date
    windows: tuple[WindowOffer, ...]

    @property
    def remaining(self) -> int:
        return sum(w.remaining for w in self.windows if w.bookable)

    @property
    def bookable(self) -> bool:
        return any(w.bookable for w in self.windows)


class BookingRefused(Exception):
    def __init__(self, refusal: Refusal, conflict_with: str | None = None) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal
        self.conflict_with = conflict_with


def bookable_days(rules: ExamRules, now: dt.datetime) -> list[dt.date]:
    return [now.date() + dt.timedelta(days=n) for n in range(rules.horizon_days + 1)]


def windows_on(config: ExamConfig, exam_type: str, day: dt.date) -> dict[Window, list[tuple[ExamResource, int]]]:
    """Every window any resource for ``exam_type`` opens on ``day``, with (resource, capacity) each."""
    found: dict[Window, list[tuple[ExamResource, int]]] = {}
    for resource in config.resources_for(exam_type):
        for template in resource.opens(day):
            found.setdefault(Window(day, template.start, template.end), []).append((resource, template.capacity))
    return dict(sorted(found.items()))


def conflict(rules: ExamRules, exam_type: str, window: Window, held: Iterable[HeldBooking],
             *, ignore_order: str | None = None) -> tuple[Refusal, str] | None:
    """The first of the patient's bookings that ``window`` clashes with: an overlap, or a same-day pair."""
    for booking in held:
        if booking.order_no == ignore_order:
            continue
        if booking.window.overlaps(window):
            return Refusal.OVERLAP, booking.exam_type
        if booking.window.day == window.day and frozenset({exam_type, booking.exam_type}) in rules.not_same_day:
            return Refusal.SAME_DAY, booking.exam_type
    return None


def timing_refusal(rules: ExamRules, window: Window, now: dt.datetime) -> Refusal | None:
    if window.starts_at(now.tzinfo) < now + dt.timedelta(minutes=rules.lead_minutes):
        return Refusal.TOO_SOON
    if window.day > now.date() + dt.timedelta(days=rules.horizon_days):
        return Refusal.TOO_FAR
    return None


def offer(config: ExamConfig, exam_type: str, now: dt.datetime, booked: Mapping[SlotKey, int],
          held: Iterable[HeldBooking] = (), *, ignore_order: str | None = None) -> list[DayOffer]:
    """The days and windows for ``exam_type`` from now to the horizon, in time order.

    ``now`` is in the hospital's time zone; ``booked`` counts places taken per slot; ``held`` are
    the patient's live bookings (``ignore_order``: the booking being moved). Windows that have
    passed or start within the lead time are left out; full or conflicting ones are kept with
    their refusal so the page can show them greyed.
    """
    held = list(held)
    days = []
    for day in bookable_days(config.rules, now):
        offers = []
        for window, resources in windows_on(config, exam_type, day).items():
            if timing_refusal(config.rules, window, now) is not None:
                continue
            remaining = sum(max(capacity - booked.get((r.code, day, window.start), 0), 0) for r, capacity in resources)
            refusal, other = None, None
            if remaining <= 0:
                refusal = Refusal.FULL
            elif clash := conflict(config.rules, exam_type, window, held, ignore_order=ignore_order):
                refusal, other = clash
            offers.append(WindowOffer(window, remaining, refusal, other))
        if offers:
            days.append(DayOffer(day, tuple(offers)))
    return days


def earliest(days: Iterable[DayOffer]) -> WindowOffer | None:
    """The first window the patient can take (the slot page shows it first)."""
    return next((w for d in days for w in d.windows if w.bookable), None)


def check_booking(config: ExamConfig, exam_type: str, window: Window, now: dt.datetime,
                  held: Iterable[HeldBooking], *, ignore_order: str | None = None) -> list[tuple[str, int]]:
    """Refuse (``BookingRefused``) a window the patient may not take; else the resources that open it.

    Capacity is not checked here: the service takes a place with a locked, conditional update and
    tries the returned ``(resource code, capacity)`` pairs in order, emptiest first.
    """
    resources = windows_on(config, exam_type, window.day).get(window)
    if not resources:
        raise BookingRefused(Refusal.NOT_OFFERED)
    if (timing := timing_refusal(config.rules, window, now)) is not None:
        raise BookingRefused(timing)
    if clash := conflict(config.rules, exam_type, window, held, ignore_order=ignore_order):
        raise BookingRefused(*clash)
    return [(r.code, capacity) for r, capacity in resources]


def emptiest_first(candidates: list[tuple[str, int]], booked: Mapping[SlotKey, int], window: Window
                   ) -> list[tuple[str, int]]:
    """Spread patients over the resources: the one with the most spare places first (stable)."""
    return sorted(candidates, key=lambda c: -(c[1] - booked.get((c[0], window.day, window.start), 0)))


def check_change(rules: ExamRules, window: Window, now: dt.datetime, *, moves: int = 0,
                 moving: bool = False) -> None:
    """Refuse cancelling or moving a booking too close to (or after) its window, or moved too often."""
    if now > window.starts_at(now.tzinfo) - dt.timedelta(minutes=rules.change_deadline_minutes):
        raise BookingRefused(Refusal.CHANGE_CLOSED)
    if moving and moves >= rules.max_moves:
        raise BookingRefused(Refusal.TOO_MANY_CHANGES)


def check_move(config: ExamConfig, exam_type: str, booking: HeldBooking, target: Window, now: dt.datetime,
               held: Iterable[HeldBooking], *, moves: int) -> list[tuple[str, int]]:
    """All the rules of a move: the old window still changeable, the new one bookable."""
    check_change(config.rules, booking.window, now, moves=moves, moving=True)
    if target == booking.window:
        raise BookingRefused(Refusal.SAME_WINDOW)
    return check_booking(config, exam_type, target, now, held, ignore_order=booking.order_no)
