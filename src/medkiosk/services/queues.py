"""Waiting queues: joining, calling, recalling, missed and done, boards, and each department's rules.

Every change to a department's queue of a day first locks its head row (an UPDATE, then
``SELECT … FOR UPDATE``): on PostgreSQL concurrent kiosks and doctors queue up on that row lock, and
on SQLite the UPDATE takes the database's write lock before anything is read. Inside the lock the
queue is read whole and the domain (``domain.queues``) decides. Only masked names are stored here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from medkiosk.domain.queues import (
    EntryState,
    IllegalTransition,
    PriorityFlag,
    QueueEntry,
    QueueRules,
    Rejoin,
    RejoinKind,
    check_transition,
    may_rejoin_after_missed,
    rejoined,
    waiting_order,
)
from medkiosk.logging import get_logger
from medkiosk.services import audit
from medkiosk.services.clock import Clock, as_utc
from medkiosk.store.models_queues import QueueCall, QueueDepartment, QueueEntryRow, QueueHead
from medkiosk.store.uow import UnitOfWork

log = get_logger(__name__)

TO_DESK = "请到分诊台或人工窗口咨询"
HALF_DAY_LABELS = {"am": "上午", "pm": "下午"}
BOARD_WAITING = 12
BOARD_CALLS = 6


class QueueRefused(Exception):
    """A queue action refused; ``message`` and ``next_step`` are Chinese and fit to show."""

    def __init__(self, message: str, next_step: str = TO_DESK, *, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.next_step = next_step
        self.status = status


@dataclass(frozen=True)
class NewEntry:
    """A patient joining a queue (from a registration or, for the exams flow, an exam appointment)."""

    source: str
    """``registration`` or ``exam``; with ``reference`` it names the entry (one per registration)."""
    reference: str
    department_code: str
    department_name: str
    queue_date: dt.date
    half_day: str
    patient_row_id: int
    his_patient_id: str
    masked_name: str
    queue_no: str | None = None
    """The number patients hear; None: the next of the queue's own numbers."""
    location: str = ""
    slot_start: dt.datetime | None = None
    slot_end: dt.datetime | None = None
    doctor_code: str | None = None
    doctor_name: str = ""
    flags: frozenset[PriorityFlag] = frozenset()
    age: int | None = None
    device_id: str | None = None


@dataclass
class Joined:
    """What joining gave: the entry as the patient sees it, and how it got there."""

    entry: dict[str, Any]
    rules: QueueRules
    entry_id: int
    his_state: str
    rejoined: str | None = None
    """``returning`` / ``missed`` when the patient came back into the queue; None for a first check-in."""
    already: bool = False
    """The patient was already waiting (a second tap, another kiosk): nothing changed."""
    notes: list[str] = field(default_factory=list)


def room_label(room: str) -> str:
    room = room.strip()
    return room if room.endswith(("室", "诊区", "窗口")) else f"{room} 诊室"


def call_text(queue_no: str, masked_name: str, room: str) -> str:
    """The voice call: 请 3 号 张*明 到 2 诊室就诊."""
    return f"请 {queue_no} 号 {masked_name} 到 {room_label(room)}就诊"


def _domain(row: QueueEntryRow) -> QueueEntry:
    rejoin = None
    if row.rejoin_kind:
        rejoin = Rejoin(RejoinKind(row.rejoin_kind), as_utc(row.rejoin_at), row.rejoin_behind)
    return QueueEntry(
        id=row.id, state=EntryState(row.state), checked_in_at=as_utc(row.checked_in_at),
        slot_start=as_utc(row.slot_start) if row.slot_start else None,
        slot_end=as_utc(row.slot_end) if row.slot_end else None,
        flags=frozenset(PriorityFlag(f) for f in row.flags or [] if f in PriorityFlag._value2member_map_),
        age=row.age, doctor_code=row.doctor_code, rejoin=rejoin, missed_count=row.missed_count)


class QueueService:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Clock, *, tz: dt.tzinfo) -> None:
        self._uow = uow_factory
        self._clock = clock
        self.tz = tz

    # -- rules ------------------------------------------------------------------------------------
    def rules(self, department_code: str) -> QueueRules:
        with self._uow() as uow:
            return self._rules_in(uow, department_code)

    @staticmethod
    def _rules_in(uow: UnitOfWork, department_code: str) -> QueueRules:
        """The rules, read in the caller's transaction (a second connection per request could
        exhaust the pool under load)."""
        row = uow.session.get(QueueDepartment, department_code)
        return QueueRules.from_json(row.rules) if row else QueueRules()

    def set_rules(self, department_code: str, rules: QueueRules | dict[str, Any], *, name: str | None = None,
                  zone: str | None = None, actor: str = "") -> dict[str, Any]:
        """Set a department's rules (a dict may name only the rules that change); they apply at once.
        A change by a person (``actor``) goes to the audit trail with each changed value, before and after."""
        with self._uow() as uow:
            row = uow.session.get(QueueDepartment, department_code, with_for_update=True)
            if row is None:
                row = QueueDepartment(department_code=department_code, rules={}, name="", zone="")
                uow.session.add(row)
            before = {**QueueRules.from_json(row.rules).to_json(), "name": row.name or "", "zone": row.zone or ""}
            if isinstance(rules, dict):
                rules = QueueRules.from_json({**(row.rules or {}), **rules})
            row.rules = rules.to_json()
            if name is not None:
                row.name = name
            if zone is not None:
                row.zone = zone
            row.updated_at, row.updated_by = self._clock.now(), actor
            after = {**row.rules, "name": row.name or "", "zone": row.zone or ""}
            changed = {key: {"from": before[key], "to": after[key]} for key in after if before.get(key) != after[key]}
            if actor and changed:
                audit.append(uow, self._clock, actor, "queue.rules_changed", f"queue_department:{department_code}",
                             {"changed": changed})
            uow.commit()
            log.info("queue.rules_set", department=department_code, actor=actor)
            return self._department_json(row)

    def departments(self) -> list[dict[str, Any]]:
        with self._uow() as uow:
            rows = uow.session.scalars(select(QueueDepartment).order_by(QueueDepartment.department_code))
            return [self._department_json(row) for row in rows]

    @staticmethod
    def _department_json(row: QueueDepartment) -> dict[str, Any]:
        return {"department_code": row.department_code, "name": row.name, "zone": row.zone,
                "rules": QueueRules.from_json(row.rules).to_json()}

    def zone_departments(self, zone: str) -> list[str]:
        with self._uow() as uow:
            return list(uow.session.scalars(select(QueueDepartment.department_code)
                                            .where(QueueDepartment.zone == zone)))

    # -- the lock ----------------------------------------------------------------------------------
    def _lock(self, uow: UnitOfWork, department_code: str, queue_date: dt.date) -> QueueHead:
        """Lock the department's queue of the day (creating its head the first time)."""
        session = uow.session
        now = self._clock.now()
        where = (QueueHead.department_code == department_code, QueueHead.queue_date == queue_date)
        bumped = session.execute(update(QueueHead).where(*where)
                                 .values(version=QueueHead.version + 1, updated_at=now)).rowcount
        if not bumped:
            try:
                with session.begin_nested():
                    session.add(QueueHead(department_code=department_code, queue_date=queue_date, next_no=1,
                                          version=1, updated_at=now))
            except IntegrityError:  # another kiosk created it a moment ago: bump theirs
                session.execute(update(QueueHead).where(*where)
                                .values(version=QueueHead.version + 1, updated_at=now))
        return session.scalars(select(QueueHead).where(*where).with_for_update()
                               .execution_options(populate_existing=True)).one()

    def _queue(self, uow: UnitOfWork, department_code: str, queue_date: dt.date) -> list[QueueEntryRow]:
        return list(uow.session.scalars(select(QueueEntryRow).where(
            QueueEntryRow.department_code == department_code, QueueEntryRow.queue_date == queue_date,
            QueueEntryRow.state != EntryState.CANCELLED.value)))

    def _locked_entry(self, uow: UnitOfWork, entry_id: int) -> tuple[QueueEntryRow, list[QueueEntryRow]]:
        row = uow.session.get(QueueEntryRow, entry_id)
        if row is None:
            raise QueueRefused("没有这个候诊记录", "请刷新页面", status=404)
        self._lock(uow, row.department_code, row.queue_date)
        uow.session.refresh(row)
        return row, self._queue(uow, row.department_code, row.queue_date)

    # -- joining ------------------------------------------------------------------------------------
    def join(self, new: NewEntry, *, at: dt.datetime | None = None) -> Joined:
        """Place a patient in the queue; a second check-in of the same registration answers as it is,
        or brings the patient back (returning with results, or after a missed call) by the rules."""
        now = at or self._clock.now()
        rules = self.rules(new.department_code)
        with self._uow() as uow:
            head = self._lock(uow, new.department_code, new.queue_date)
            row = uow.session.scalar(select(QueueEntryRow).where(QueueEntryRow.source == new.source,
                                                                 QueueEntryRow.reference == new.reference))
            queue = self._queue(uow, new.department_code, new.queue_date)
            kind = None
            if row is None:
                queue_no = new.queue_no or f"{head.next_no}"
                if not new.queue_no:
                    head.next_no += 1
                row = QueueEntryRow(
                    department_code=new.department_code, department_name=new.department_name,
                    location=new.location, queue_date=new.queue_date, source=new.source, reference=new.reference,
                    patient_id=new.patient_row_id, his_patient_id=new.his_patient_id, masked_name=new.masked_name,
                    queue_no=queue_no, half_day=new.half_day, slot_start=new.slot_start, slot_end=new.slot_end,
                    doctor_code=new.doctor_code, doctor_name=new.doctor_name, state=EntryState.WAITING.value,
                    flags=sorted(f.value for f in new.flags), age=new.age, checked_in_at=now, missed_count=0,
                    call_count=0, device_id=new.device_id, his_state="pending", his_attempts=0, updated_at=now)
                uow.session.add(row)
                uow.session.flush()
                queue.append(row)
            else:
                state = EntryState(row.state)
                if state is EntryState.CANCELLED:
                    raise QueueRefused("该号已取消候诊，不能再次报到")
                if state in (EntryState.WAITING, EntryState.CALLED):
                    view = self._entry_json(row, queue, rules)
                    return Joined(view, rules, row.id, row.his_state, already=True)
                kind = RejoinKind.RETURNING if state is EntryState.DONE else RejoinKind.MISSED
                if kind is RejoinKind.MISSED and not may_rejoin_after_missed(_domain(row), rules):
                    raise QueueRefused(f"您已过号 {row.missed_count} 次，不能在自助机重新报到", TO_DESK)
                self._rejoin(row, queue, rules, kind, now)
            uow.commit()
            view = self._entry_json(row, queue, rules)
            log.info("queue.joined", department=row.department_code, entry_id=row.id, queue_no=row.queue_no,
                     rejoined=kind.value if kind else None)
            return Joined(view, rules, row.id, row.his_state, rejoined=kind.value if kind else None)

    def _rejoin(self, row: QueueEntryRow, queue: list[QueueEntryRow], rules: QueueRules, kind: RejoinKind,
                now: dt.datetime) -> None:
        back = rejoined(_domain(row), [_domain(r) for r in queue], rules, kind, now)
        row.state = back.state.value
        row.rejoin_kind, row.rejoin_at, row.rejoin_behind = kind.value, now, back.rejoin.behind
        row.room = None
        row.updated_at = now

    def cancel(self, entry_id: int, *, reason: str) -> None:
        """Take an entry out for good (the HIS refused the check-in, the registration was cancelled)."""
        with self._uow() as uow:
            row, _queue = self._locked_entry(uow, entry_id)
            if row.state != EntryState.CANCELLED.value:
                row.state = EntryState.CANCELLED.value
                row.updated_at = self._clock.now()
            uow.commit()
            log.info("queue.cancelled", entry_id=entry_id, reason=reason)

    def set_his_state(self, entry_id: int, state: str) -> None:
        with self._uow() as uow:
            row = uow.session.get(QueueEntryRow, entry_id, with_for_update=True)
            if row is not None:
                row.his_state = state
                row.his_attempts += 1
                uow.commit()

    def entries_to_tell_his(self, *, older_than: dt.timedelta, limit: int = 50) -> list[QueueEntryRow]:
        before = self._clock.now() - older_than
        with self._uow() as uow:
            return list(uow.session.scalars(select(QueueEntryRow).where(
                QueueEntryRow.his_state == "pending", QueueEntryRow.updated_at < before,
                QueueEntryRow.state != EntryState.CANCELLED.value, QueueEntryRow.his_attempts < 50,
            ).order_by(QueueEntryRow.id).limit(limit)))

    def entry(self, source: str, reference: str) -> dict[str, Any] | None:
        """An entry as the patient sees it (number, position, people ahead), or None."""
        with self._uow() as uow:
            row = uow.session.scalar(select(QueueEntryRow).where(QueueEntryRow.source == source,
                                                                 QueueEntryRow.reference == reference))
            if row is None:
                return None
            rules = self._rules_in(uow, row.department_code)
            return self._entry_json(row, self._queue(uow, row.department_code, row.queue_date), rules)

    def entries_for(self, source: str, references: Iterable[str]) -> dict[str, dict[str, Any]]:
        references = list(references)
        if not references:
            return {}
        found = {}
        with self._uow() as uow:
            rows = uow.session.scalars(select(QueueEntryRow).where(QueueEntryRow.source == source,
                                                                   QueueEntryRow.reference.in_(references)))
            for row in rows:
                queue = self._queue(uow, row.department_code, row.queue_date)
                found[row.reference] = self._entry_json(row, queue, self._rules_in(uow, row.department_code))
        return found

    def _entry_json(self, row: QueueEntryRow, queue: list[QueueEntryRow], rules: QueueRules) -> dict[str, Any]:
        order = waiting_order([_domain(r) for r in queue], rules)
        place = next((i for i, e in enumerate(order, start=1) if e.id == row.id), None)
        return {"entry_id": row.id, "queue_no": row.queue_no, "state": row.state,
                "department_code": row.department_code, "department_name": row.department_name,
                "location": row.location, "doctor_name": row.doctor_name,
                "half_day_label": HALF_DAY_LABELS.get(row.half_day, ""),
                "position": place, "ahead": place - 1 if place else None,
                "room": row.room, "rejoined": row.rejoin_kind}

    # -- calling ------------------------------------------------------------------------------------
    def call_next(self, department_code: str, queue_date: dt.date, *, room: str, doctor_code: str | None = None,
                  actor: str = "") -> dict[str, Any] | None:
        """Call the next waiting patient this doctor sees to ``room``; None when nobody is waiting."""
        rules = self.rules(department_code)
        now = self._clock.now()
        with self._uow() as uow:
            self._lock(uow, department_code, queue_date)
            queue = self._queue(uow, department_code, queue_date)
            by_id = {r.id: r for r in queue}
            order = waiting_order([_domain(r) for r in queue], rules)
            chosen = next((e for e in order if e.doctor_code in (None, doctor_code) or doctor_code is None), None)
            if chosen is None:
                uow.commit()
                return None
            row = by_id[chosen.id]
            call = self._call(uow, row, room=room, kind="call", actor=actor, now=now)
            uow.commit()
            return call

    def recall(self, entry_id: int, *, room: str | None = None, actor: str = "") -> dict[str, Any]:
        with self._uow() as uow:
            row, _queue = self._locked_entry(uow, entry_id)
            call = self._call(uow, row, room=room or row.room or "", kind="recall", actor=actor,
                              now=self._clock.now())
            uow.commit()
            return call

    def _call(self, uow: UnitOfWork, row: QueueEntryRow, *, room: str, kind: str, actor: str,
              now: dt.datetime) -> dict[str, Any]:
        if not room.strip():
            raise QueueRefused("请先填写诊室", "在页面上方填写诊室后再叫号", status=422)
        self._move(row, EntryState.CALLED)
        row.room, row.called_at, row.called_by, row.updated_at = room.strip(), now, actor, now
        row.call_count += 1
        text = call_text(row.queue_no, row.masked_name, room)
        call = QueueCall(department_code=row.department_code, queue_date=row.queue_date, entry_id=row.id,
                         queue_no=row.queue_no, masked_name=row.masked_name, room=row.room, kind=kind, text=text,
                         called_by=actor, at=now)
        uow.session.add(call)
        uow.session.flush()
        log.info("queue.called", department=row.department_code, entry_id=row.id, queue_no=row.queue_no,
                 kind=kind, actor=actor)
        return {"call_id": call.id, "entry_id": row.id, "queue_no": row.queue_no, "masked_name": row.masked_name,
                "room": row.room, "kind": kind, "text": text}

    def mark_missed(self, entry_id: int, *, actor: str = "") -> dict[str, Any]:
        """过号: the called patient did not come. Re-queued at once or at their next check-in, by the rules."""
        now = self._clock.now()
        with self._uow() as uow:
            row, queue = self._locked_entry(uow, entry_id)
            self._move(row, EntryState.MISSED)
            row.missed_count += 1
            row.updated_at = now
            rules = self._rules_in(uow, row.department_code)
            if rules.missed_auto_requeue and may_rejoin_after_missed(_domain(row), rules):
                self._rejoin(row, queue, rules, RejoinKind.MISSED, now)
            uow.commit()
            log.info("queue.missed", entry_id=entry_id, actor=actor, missed_count=row.missed_count)
            return self._entry_json(row, queue, rules)

    def mark_done(self, entry_id: int, *, actor: str = "") -> dict[str, Any]:
        now = self._clock.now()
        with self._uow() as uow:
            row, queue = self._locked_entry(uow, entry_id)
            self._move(row, EntryState.DONE)
            row.done_at = row.updated_at = now
            uow.commit()
            log.info("queue.done", entry_id=entry_id, actor=actor)
            return self._entry_json(row, queue, self._rules_in(uow, row.department_code))

    def requeue(self, entry_id: int, *, actor: str = "") -> dict[str, Any]:
        """The desk puts a missed (or seen, returning) patient back in line by the rules."""
        now = self._clock.now()
        with self._uow() as uow:
            row, queue = self._locked_entry(uow, entry_id)
            rules = self._rules_in(uow, row.department_code)
            state = EntryState(row.state)
            if state is EntryState.CALLED:
                self._move(row, EntryState.WAITING)  # called by mistake: back to where they were
            else:
                kind = RejoinKind.RETURNING if state is EntryState.DONE else RejoinKind.MISSED
                try:
                    check_transition(state, EntryState.WAITING)
                except IllegalTransition as exc:
                    raise QueueRefused("该患者当前不能重新排队", "请刷新页面") from exc
                self._rejoin(row, queue, rules, kind, now)
            row.updated_at = now
            uow.commit()
            log.info("queue.requeued", entry_id=entry_id, actor=actor)
            return self._entry_json(row, queue, rules)

    @staticmethod
    def _move(row: QueueEntryRow, target: EntryState) -> None:
        try:
            row.state = check_transition(EntryState(row.state), target).value
        except IllegalTransition as exc:
            labels = {"waiting": "候诊中", "called": "已叫号", "missed": "已过号", "done": "已就诊", "cancelled": "已取消"}
            raise QueueRefused(f"该患者{labels[row.state]}，不能这样操作", "请刷新页面后重试") from exc

    # -- what doctors and boards see -----------------------------------------------------------------------
    def doctor_view(self, department_code: str, queue_date: dt.date, *, doctor_code: str | None = None,
                    room: str | None = None) -> dict[str, Any]:
        rules = self.rules(department_code)
        with self._uow() as uow:
            queue = self._queue(uow, department_code, queue_date)
        order = waiting_order([_domain(r) for r in queue], rules)
        by_id = {r.id: r for r in queue}
        mine = [by_id[e.id] for e in order if e.doctor_code in (None, doctor_code) or doctor_code is None]

        def brief(row: QueueEntryRow) -> dict[str, Any]:
            return {"entry_id": row.id, "queue_no": row.queue_no, "masked_name": row.masked_name,
                    "state": row.state, "room": row.room, "missed_count": row.missed_count,
                    "rejoined": row.rejoin_kind, "priority": bool(row.flags) or (row.age or 0) >= rules.priority_age,
                    "late": bool(row.slot_end and as_utc(row.checked_in_at) > as_utc(row.slot_end))}

        called = sorted((r for r in queue if r.state == EntryState.CALLED.value and (room is None or r.room == room)),
                        key=lambda r: as_utc(r.called_at), reverse=True)
        missed = [r for r in queue if r.state == EntryState.MISSED.value]
        return {"department_code": department_code, "queue_date": queue_date.isoformat(),
                "waiting": [brief(r) for r in mine], "called": [brief(r) for r in called],
                "missed": [brief(r) for r in missed],
                "done_count": sum(r.state == EntryState.DONE.value for r in queue)}

    def board_signature(self, department_codes: list[str], queue_date: dt.date) -> str:
        """Changes whenever anything on the board could have changed (a cheap look for the SSE loop)."""
        with self._uow() as uow:
            versions = uow.session.execute(select(QueueHead.department_code, QueueHead.version).where(
                QueueHead.department_code.in_(department_codes), QueueHead.queue_date == queue_date)).all()
            last_call = uow.session.scalar(select(func.max(QueueCall.id)).where(
                QueueCall.department_code.in_(department_codes), QueueCall.queue_date == queue_date))
        return ",".join(f"{code}:{version}" for code, version in sorted(versions)) + f"|{last_call or 0}"

    def board(self, department_codes: list[str], queue_date: dt.date) -> dict[str, Any]:
        """What a waiting-room board shows: per department the calls and the next patients, masked."""
        departments = []
        with self._uow() as uow:
            names = dict(uow.session.execute(select(QueueDepartment.department_code, QueueDepartment.name).where(
                QueueDepartment.department_code.in_(department_codes))).all())
            calls = list(uow.session.scalars(select(QueueCall).where(
                QueueCall.department_code.in_(department_codes), QueueCall.queue_date == queue_date)
                .order_by(QueueCall.id.desc()).limit(BOARD_CALLS)))
            queues = {code: self._queue(uow, code, queue_date) for code in department_codes}
        for code in department_codes:
            queue = queues[code]
            rules = self._rules_in(uow, code)
            order = waiting_order([_domain(r) for r in queue], rules)
            by_id = {r.id: r for r in queue}
            waiting = [by_id[e.id] for e in order]
            called = sorted((r for r in queue if r.state == EntryState.CALLED.value),
                            key=lambda r: as_utc(r.called_at), reverse=True)
            name = names.get(code) or next((r.department_name for r in queue if r.department_name), code)
            departments.append({
                "department_code": code, "name": name,
                "calling": [{"queue_no": r.queue_no, "masked_name": r.masked_name, "room": room_label(r.room or "")}
                            for r in called],
                "waiting": [{"queue_no": r.queue_no, "masked_name": r.masked_name} for r in waiting[:BOARD_WAITING]],
                "waiting_count": len(waiting),
                "missed": [{"queue_no": r.queue_no, "masked_name": r.masked_name}
                           for r in queue if r.state == EntryState.MISSED.value],
            })
        return {"departments": departments, "queue_date": queue_date.isoformat(),
                "calls": [{"id": c.id, "department_code": c.department_code, "queue_no": c.queue_no,
                           "masked_name": c.masked_name, "room": room_label(c.room), "kind": c.kind, "text": c.text,
                           "at": as_utc(c.at).isoformat()} for c in calls]}

    def today(self) -> dt.date:
        return self._clock.now().astimezone(self.tz).date()
