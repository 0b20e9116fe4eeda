"""Tickets (工单): states, the transitions allowed between them, and the two service clocks — pure.

A ticket is a fault from report to verified fix. Its clocks follow the usual service-desk shape:
**time to own** runs from creation until someone owns the ticket (assigned); **time to resolve**
runs from creation until it is resolved. Both pause while the ticket waits on someone outside the
engineers' hands (a vendor's part, the HIS team) and resume when work resumes; a resolution that
fails verification reopens the ticket and the resolve clock runs again. A clock warns at 75 % of
its target and is breached at 100 %. Everything here reads a ticket's transition history and a
``now`` handed in: no wall clock, no store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

WARN_AT = 0.75
BREACH_AT = 1.0


class TicketState(StrEnum):
    NEW = "new"
    """Reported (by an alert, an inspection or a person); nobody owns it yet."""
    ASSIGNED = "assigned"
    """An engineer owns it; the time-to-own clock has stopped."""
    IN_PROGRESS = "in_progress"
    """The engineer is working on it."""
    WAITING = "waiting"
    """Blocked on someone else (a vendor's part, the HIS team); both clocks pause."""
    RESOLVED = "resolved"
    """The engineer says it is fixed and has written the handling record; awaiting the IT centre."""
    VERIFIED = "verified"
    """The IT centre checked the fix on the device."""
    CLOSED = "closed"
    """Done and filed; nothing changes any more."""


class TicketSource(StrEnum):
    ALERT = "alert"
    """Raised from an alert on the alert page."""
    INSPECTION = "inspection"
    """A problem signed off in an inspection round."""
    MANUAL = "manual"
    """Opened by hand (a patient's complaint, a call from a ward)."""


class Priority(StrEnum):
    P1 = "p1"
    """Patients are affected now (a kiosk down, a payment anomaly)."""
    P2 = "p2"
    """Degraded (paper low, a peripheral failing now and then), or found in an inspection."""
    P3 = "p3"
    """Can wait for the next working day."""


@dataclass(frozen=True)
class Targets:
    """How long owning and resolving may take."""

    own: timedelta
    resolve: timedelta


DEFAULT_TARGETS: dict[Priority, Targets] = {
    Priority.P1: Targets(own=timedelta(minutes=15), resolve=timedelta(hours=4)),
    Priority.P2: Targets(own=timedelta(minutes=30), resolve=timedelta(hours=8)),
    Priority.P3: Targets(own=timedelta(hours=4), resolve=timedelta(days=3)),
}

TRANSITIONS: dict[TicketState, frozenset[TicketState]] = {
    # A false report may be closed straight away (the reason goes in the note).
    TicketState.NEW: frozenset({TicketState.ASSIGNED, TicketState.CLOSED}),
    TicketState.ASSIGNED: frozenset({TicketState.IN_PROGRESS, TicketState.WAITING}),
    TicketState.IN_PROGRESS: frozenset({TicketState.WAITING, TicketState.RESOLVED}),
    TicketState.WAITING: frozenset({TicketState.IN_PROGRESS}),
    # Verification failed: back to work, and the resolve clock runs again.
    TicketState.RESOLVED: frozenset({TicketState.VERIFIED, TicketState.IN_PROGRESS}),
    TicketState.VERIFIED: frozenset({TicketState.CLOSED}),
    TicketState.CLOSED: frozenset(),
}

STATE_NAMES = {TicketState.NEW: "新建", TicketState.ASSIGNED: "已指派", TicketState.IN_PROGRESS: "处理中",
               TicketState.WAITING: "等待中", TicketState.RESOLVED: "已解决", TicketState.VERIFIED: "已验证",
               TicketState.CLOSED: "已关闭"}


class TransitionRefused(ValueError):
    """A state change the ticket's state does not allow; the message is Chinese and shown as is."""


def check_transition(current: TicketState, target: TicketState) -> None:
    if target not in TRANSITIONS[current]:
        allowed = "、".join(STATE_NAMES[s] for s in TRANSITIONS[current]) or "无"
        raise TransitionRefused(f"工单当前为“{STATE_NAMES[current]}”，不能改为“{STATE_NAMES[target]}”"
                                f"（可改为：{allowed}）")


def check_resolution(cause: str, action: str) -> None:
    """A ticket is resolved only with its handling record: what caused the fault and what was done."""
    if not cause.strip() or not action.strip():
        raise TransitionRefused("解决工单前请填写处理记录：故障原因和处理措施")


def priority_for_severity(severity: str) -> Priority:
    return {"critical": Priority.P1, "warning": Priority.P2}.get(severity, Priority.P3)


# --- clocks ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Transition:
    at: datetime
    state: TicketState


class ClockLevel(StrEnum):
    OK = "ok"
    """Under 75 % of the target."""
    WARNING = "warning"
    """75 % of the target or more."""
    BREACHED = "breached"
    """The target has passed."""


@dataclass(frozen=True)
class ClockReading:
    elapsed: timedelta
    target: timedelta
    running: bool
    """False once stopped (owned / resolved) or while paused (waiting)."""
    paused: bool
    level: ClockLevel

    @property
    def fraction(self) -> float:
        return self.elapsed / self.target if self.target > timedelta(0) else 1.0

    @property
    def remaining(self) -> timedelta:
        return self.target - self.elapsed


OWN_RUNS_IN = frozenset({TicketState.NEW})
RESOLVE_RUNS_IN = frozenset({TicketState.NEW, TicketState.ASSIGNED, TicketState.IN_PROGRESS})


def level_of(elapsed: timedelta, target: timedelta) -> ClockLevel:
    if target <= timedelta(0) or elapsed >= target * BREACH_AT:
        return ClockLevel.BREACHED
    if elapsed >= target * WARN_AT:
        return ClockLevel.WARNING
    return ClockLevel.OK


def clock(history: Sequence[Transition], now: datetime, target: timedelta, runs_in: Iterable[TicketState]) -> ClockReading:
    """A clock that counts the time the ticket spent in ``runs_in`` states (history: the ticket's
    states in order, the first being its creation)."""
    runs_in = frozenset(runs_in)
    elapsed = timedelta(0)
    for here, after in zip(history, [*history[1:], None]):
        if here.state in runs_in:
            end = after.at if after is not None else now
            elapsed += max(end - here.at, timedelta(0))
    current = history[-1].state if history else TicketState.NEW
    running = current in runs_in
    return ClockReading(elapsed, target, running, current is TicketState.WAITING, level_of(elapsed, target))


def own_clock(history: Sequence[Transition], now: datetime, target: timedelta) -> ClockReading:
    """Time to own: runs while nobody owns the ticket; stops once it is assigned."""
    return clock(history, now, target, OWN_RUNS_IN)


def resolve_clock(history: Sequence[Transition], now: datetime, target: timedelta) -> ClockReading:
    """Time to resolve: runs until resolved, paused while waiting, running again when reopened."""
    return clock(history, now, target, RESOLVE_RUNS_IN)


def crossed(before: ClockLevel, after: ClockLevel) -> ClockLevel | None:
    """The level a clock has just reached, when it moved up (to warn or breach once)."""
    order = [ClockLevel.OK, ClockLevel.WARNING, ClockLevel.BREACHED]
    return after if order.index(after) > order.index(before) else None
