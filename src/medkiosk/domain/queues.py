"""Waiting queues (候诊队列): the states of a queue entry, a department's rules, and who is next.

Pure: no I/O and no clock of its own; the service passes the moment in. The order of a queue is
a function of its entries and the department's rules, computed afresh each time, so a rule the
hospital changes applies at once to everybody still waiting.

The order, from the front:

1. patients re-joining at the front (a return with results when nobody was waiting);
2. priority patients (aged 80+, disabled, veterans — the flags the hospital turns on), in the
   order below among themselves;
3. everybody else by their **placement**: the appointment's time slot, on-time patients of a slot
   before the late ones placed in it, then check-in time. An on-time patient (checked in before
   their window ended, plus any grace) is placed in their own slot; a late one is placed behind
   the on-time patients of the slot after the one in which they arrived; a patient without a
   window is placed in the slot in which they arrived.

A patient re-joining (back with test results — 复诊回诊 — or re-queued after a missed call, 过号)
is placed right behind the patient who was N-th in line when they re-joined (N by the rules), and
keeps that place relative to everyone who was in line then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class EntryState(StrEnum):
    """Where one patient's place in a waiting queue stands."""

    WAITING = "waiting"
    """Checked in and waiting to be called."""
    CALLED = "called"
    """Called to a consulting room; the patient is on their way (a recall keeps this state)."""
    MISSED = "missed"
    """Called but did not come (过号); re-joins by the department's rule."""
    DONE = "done"
    """Seen by the doctor; may come back with test results (复诊回诊) and re-join."""
    CANCELLED = "cancelled"
    """Taken out of the queue for good (registration cancelled, HIS refused the check-in)."""


TRANSITIONS: Mapping[EntryState, frozenset[EntryState]] = {
    EntryState.WAITING: frozenset({EntryState.CALLED, EntryState.CANCELLED}),
    EntryState.CALLED: frozenset({EntryState.CALLED, EntryState.DONE, EntryState.MISSED, EntryState.WAITING,
                                  EntryState.CANCELLED}),
    EntryState.MISSED: frozenset({EntryState.WAITING, EntryState.CANCELLED}),
    EntryState.DONE: frozenset({EntryState.WAITING}),
    EntryState.CANCELLED: frozenset(),
}
"""Allowed moves. CALLED → CALLED is a recall; CALLED → WAITING puts a patient back where they were
(the doctor called the wrong number); MISSED/DONE → WAITING is a re-join."""


class IllegalTransition(ValueError):
    """A move the queue does not allow (e.g. calling a patient who is already done)."""

    def __init__(self, current: EntryState, target: EntryState) -> None:
        super().__init__(f"a queue entry cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


def check_transition(current: EntryState, target: EntryState) -> EntryState:
    """``target`` when the move is allowed; raises IllegalTransition otherwise."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)
    return target


class PriorityFlag(StrEnum):
    """Reasons a patient is seen first, when the hospital turns them on for a department."""

    AGED = "aged"
    """At or above the rules' priority age (80 by default)."""
    DISABLED = "disabled"
    """Disabled (残疾人), as HIS or the triage desk records it."""
    VETERAN = "veteran"
    """Veteran or military (军人、退役军人优先)."""


class RejoinKind(StrEnum):
    """Why a patient comes back into a queue they had left."""

    RETURNING = "returning"
    """Back with test results for the same registration (复诊回诊): re-joins with priority."""
    MISSED = "missed"
    """Checked in again after a missed call (过号)."""


class HalfDay(StrEnum):
    AM = "am"
    """The morning session."""
    PM = "pm"
    """The afternoon session."""


@dataclass(frozen=True)
class QueueRules:
    """A department's queue rules; the hospital sets them per department (defaults below)."""

    slot_minutes: int = 30
    """The length of the appointment slots placement is counted in."""
    late_grace_minutes: int = 0
    """How long after their window ends a patient still counts as on time."""
    priority_flags: frozenset[PriorityFlag] = frozenset(PriorityFlag)
    """The priority reasons this department honours (none: strict order)."""
    priority_age: int = 80
    returning_after: int = 2
    """A patient back with results waits behind this many (0: at the front)."""
    missed_after: int = 3
    """A patient re-queued after a missed call waits behind this many."""
    missed_auto_requeue: bool = False
    """Re-queue a missed patient at once (True) or when they check in again (False)."""
    max_missed: int = 2
    """After this many missed calls the patient cannot re-join at a kiosk; the triage desk decides."""
    am_closes: dt.time = dt.time(12, 0)
    """Morning registrations cannot check in from this time on."""
    pm_closes: dt.time = dt.time(17, 30)
    """Afternoon registrations cannot check in from this time on."""
    result_seconds: int = 8
    """How long the kiosk shows the queue number after check-in before it clears and goes home."""

    def __post_init__(self) -> None:
        problems = []
        if not 5 <= self.slot_minutes <= 240:
            problems.append("slot_minutes must be 5–240")
        if not 0 <= self.late_grace_minutes <= 240:
            problems.append("late_grace_minutes must be 0–240")
        if not 0 <= self.priority_age <= 130:
            problems.append("priority_age must be 0–130")
        for name in ("returning_after", "missed_after", "max_missed"):
            if not 0 <= getattr(self, name) <= 100:
                problems.append(f"{name} must be 0–100")
        if not 3 <= self.result_seconds <= 10:
            problems.append("result_seconds must be 3–10")
        if problems:
            raise ValueError("; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        return {"slot_minutes": self.slot_minutes, "late_grace_minutes": self.late_grace_minutes,
                "priority_flags": sorted(flag.value for flag in self.priority_flags),
                "priority_age": self.priority_age, "returning_after": self.returning_after,
                "missed_after": self.missed_after, "missed_auto_requeue": self.missed_auto_requeue,
                "max_missed": self.max_missed, "am_closes": self.am_closes.strftime("%H:%M"),
                "pm_closes": self.pm_closes.strftime("%H:%M"), "result_seconds": self.result_seconds}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> QueueRules:
        """Rules from stored or submitted JSON; missing fields keep their defaults, unknown ones are refused."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown rules {unknown}")
        if "priority_flags" in data:
            data["priority_flags"] = frozenset(PriorityFlag(flag) for flag in data["priority_flags"])
        for name in ("am_closes", "pm_closes"):
            if isinstance(data.get(name), str):
                data[name] = dt.time.fromisoformat(data[name])
        return cls(**data)


@dataclass(frozen=True)
class Rejoin:
    kind: RejoinKind
    at: dt.datetime
    behind: int | None
    """The entry this one waits right behind; None: at the very front."""


@dataclass(frozen=True)
class QueueEntry:
    """One patient's place in one department's queue for one day (what ordering needs of it)."""

    id: int
    state: EntryState
    checked_in_at: dt.datetime
    slot_start: dt.datetime | None = None
    slot_end: dt.datetime | None = None
    flags: frozenset[PriorityFlag] = frozenset()
    age: int | None = None
    doctor_code: str | None = None
    """Set when only this doctor sees the patient (an expert registration); None: any doctor."""
    rejoin: Rejoin | None = None
    missed_count: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """Whatever the caller wants carried along (display number, masked name …); ignored here."""


def is_priority(entry: QueueEntry, rules: QueueRules) -> bool:
    reasons = set(entry.flags)
    if entry.age is not None and entry.age >= rules.priority_age:
        reasons.add(PriorityFlag.AGED)
    return bool(reasons & rules.priority_flags)


def slot_containing(moment: dt.datetime, rules: QueueRules) -> dt.datetime:
    """The start of the slot (on the rules' grid from midnight) that ``moment`` falls in."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = int((moment - midnight).total_seconds() // 60)
    return midnight + dt.timedelta(minutes=minutes - minutes % rules.slot_minutes)


def is_late(entry: QueueEntry, rules: QueueRules) -> bool:
    return entry.slot_end is not None and \
        entry.checked_in_at > entry.slot_end + dt.timedelta(minutes=rules.late_grace_minutes)


def placement(entry: QueueEntry, rules: QueueRules) -> tuple[dt.datetime, bool]:
    """(the slot the entry is placed in, whether it is placed there as late)."""
    if is_late(entry, rules):
        return slot_containing(entry.checked_in_at, rules) + dt.timedelta(minutes=rules.slot_minutes), True
    if entry.slot_start is not None:
        return entry.slot_start, False
    return slot_containing(entry.checked_in_at, rules), False


def _base_key(entry: QueueEntry, rules: QueueRules) -> tuple:
    slot, late = placement(entry, rules)
    return (0 if is_priority(entry, rules) else 1, slot.timestamp(), int(late), entry.checked_in_at.timestamp(),
            entry.id, 0)


def sort_key(entry: QueueEntry, by_id: Mapping[int, QueueEntry], rules: QueueRules, _depth: int = 0) -> tuple:
    """The entry's place: smaller is earlier. Re-joined entries extend the key of the one they follow."""
    if entry.rejoin is None:
        return _base_key(entry, rules)
    mine = (1, entry.rejoin.at.timestamp(), entry.id)
    anchor = by_id.get(entry.rejoin.behind) if entry.rejoin.behind is not None else None
    if anchor is None or _depth > 1000:
        return (-1, *mine[1:])
    return (*sort_key(anchor, by_id, rules, _depth + 1), *mine)


def waiting_order(entries: Iterable[QueueEntry], rules: QueueRules) -> list[QueueEntry]:
    """The waiting entries, first to be called first."""
    entries = list(entries)
    by_id = {e.id: e for e in entries}
    waiting = [e for e in entries if e.state is EntryState.WAITING]
    return sorted(waiting, key=lambda e: sort_key(e, by_id, rules))


def serves(entry: QueueEntry, doctor_code: str | None) -> bool:
    """Whether a doctor may call this entry (an expert's patients wait for that expert)."""
    return entry.doctor_code is None or doctor_code is None or entry.doctor_code == doctor_code


def next_for(entries: Iterable[QueueEntry], rules: QueueRules, doctor_code: str | None = None) -> QueueEntry | None:
    """The patient a doctor calls next, or None when nobody they see is waiting."""
    return next((e for e in waiting_order(entries, rules) if serves(e, doctor_code)), None)


def position(entries: Iterable[QueueEntry], rules: QueueRules, entry_id: int) -> int | None:
    """1 for the next to be called; None when the entry is not waiting."""
    for index, entry in enumerate(waiting_order(entries, rules), start=1):
        if entry.id == entry_id:
            return index
    return None


def rejoined(entry: QueueEntry, entries: Iterable[QueueEntry], rules: QueueRules, kind: RejoinKind,
             at: dt.datetime) -> QueueEntry:
    """The entry back in line: WAITING, right behind the N-th waiting patient (N by ``kind``'s rule)."""
    check_transition(entry.state, EntryState.WAITING)
    behind_count = rules.returning_after if kind is RejoinKind.RETURNING else rules.missed_after
    line = [e for e in waiting_order(entries, rules) if e.id != entry.id]
    anchor = line[min(behind_count, len(line)) - 1].id if behind_count and line else None
    return replace(entry, state=EntryState.WAITING, rejoin=Rejoin(kind, at, anchor))


def may_rejoin_after_missed(entry: QueueEntry, rules: QueueRules) -> bool:
    """A patient who missed their call too often is sent to the triage desk instead."""
    return entry.missed_count <= rules.max_missed


def check_in_closed(half_day: HalfDay | str, time_of_day: dt.time, rules: QueueRules) -> bool:
    """Whether a registration of ``half_day`` can no longer check in at ``time_of_day``."""
    closes = rules.am_closes if HalfDay(half_day) is HalfDay.AM else rules.pm_closes
    return time_of_day >= closes
