"""Exam appointments (检查预约): the patient's paid exam orders, time windows, booking, moving, cancelling.

The kiosk service keeps the capacity (hospital configuration: resources, weekly windows, rules)
and tells the HIS each appointment. A place is taken under row locks (``SELECT … FOR UPDATE``
on PostgreSQL) on the patient and on the slots, with a conditional update that never lets a
window's count pass its capacity, whatever the database. Nothing here mentions insurance: exam
booking and cancelling never show the cross-region (异地医保) notice (tender #2).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from medkiosk.adapters.errors import UpstreamError, UpstreamRefused
from medkiosk.adapters.his.port import CheckInKind, ExamAppointment, ExamOrder, HisPort, OrderStatus
from medkiosk.agent.documents import Receipt
from medkiosk.domain.exams import (
    BookingRefused,
    BookingState,
    ExamConfig,
    ExamResource,
    ExamRules,
    HeldBooking,
    Refusal,
    SlotKey,
    Window,
    WindowTemplate,
    check_booking,
    check_change,
    check_move,
    earliest,
    emptiest_first,
    offer,
)
from medkiosk.domain.queues import check_in_closed
from medkiosk.logging import get_logger
from medkiosk.services.clock import Clock
from medkiosk.services.devices import AuthenticatedDevice
from medkiosk.services.queues import NewEntry, QueueService
from medkiosk.services.sessions import SessionService
from medkiosk.store.models import Patient
from medkiosk.store.models_exams import ExamBooking, ExamBookingEvent, ExamSlot

log = get_logger(__name__)

TO_EXAM_DESK = "请到检查科室登记台办理，或按“呼叫工作人员”"
EXAM_LABELS = {"ct": "CT", "mri": "核磁共振", "ultrasound": "超声", "ecg": "心电图"}
WEEKDAYS = "一二三四五六日"

REFUSALS = {
    Refusal.NOT_OFFERED: ("该时段不提供这项检查，请重新选择时段。", "请返回选择其他时段"),
    Refusal.TOO_SOON: ("该时段即将开始或已过，不能再预约。", "请选择更晚的时段"),
    Refusal.TOO_FAR: ("该日期超出可预约范围。", "请选择较近的日期"),
    Refusal.FULL: ("该时段已约满，请选择其他时段。", "请返回选择其他时段"),
    Refusal.OVERLAP: ("该时段与您已预约的{other}检查时间重叠。", "请选择其他时段"),
    Refusal.SAME_DAY: ("按医院规定，该检查不能与您已预约的{other}检查安排在同一天。", "请选择其他日期"),
    Refusal.CHANGE_CLOSED: ("距检查开始已不足{hours}小时，本机不能再取消或改约。", TO_EXAM_DESK),
    Refusal.TOO_MANY_CHANGES: ("该预约已改约{moves}次，不能再改约。", TO_EXAM_DESK),
    Refusal.SAME_WINDOW: ("您选择的就是当前预约的时段。", "请选择其他时段，或按“返回”"),
}
REFUSAL_LABELS = {Refusal.FULL: "已约满", Refusal.OVERLAP: "与其他预约冲突", Refusal.SAME_DAY: "同日不可安排"}


# ---- hospital configuration ---------------------------------------------------------------------

def _windows(*spec: tuple[str, str, int]) -> tuple[WindowTemplate, ...]:
    return tuple(WindowTemplate(dt.time.fromisoformat(a), dt.time.fromisoformat(b), c) for a, b, c in spec)


WEEKDAYS_ONLY = frozenset(range(5))
DEMO_EXAM_CONFIG = ExamConfig(
    resources=(
        ExamResource("CT-01", frozenset({"ct"}), "医技楼1层 放射科 CT检查室",
                     _windows(("08:00", "09:00", 6), ("09:00", "10:00", 6), ("10:00", "11:00", 6),
                              ("11:00", "12:00", 4), ("14:00", "15:00", 6), ("15:00", "16:00", 6),
                              ("16:00", "17:00", 4))),
        ExamResource("CT-02", frozenset({"ct"}), "医技楼1层 放射科 CT检查室",
                     _windows(("08:00", "09:00", 5), ("09:00", "10:00", 5), ("10:00", "11:00", 5),
                              ("14:00", "15:00", 5), ("15:00", "16:00", 5)), WEEKDAYS_ONLY),
        ExamResource("MR-01", frozenset({"mri"}), "医技楼1层 放射科 磁共振检查室",
                     _windows(("08:00", "10:00", 4), ("10:00", "12:00", 4), ("14:00", "16:00", 4),
                              ("16:00", "18:00", 3)), frozenset(range(6))),
        ExamResource("US-01", frozenset({"ultrasound"}), "医技楼2层 超声医学科",
                     _windows(("08:00", "09:00", 8), ("09:00", "10:00", 8), ("10:00", "11:00", 8),
                              ("14:00", "15:00", 6), ("15:00", "16:00", 6))),
        ExamResource("US-02", frozenset({"ultrasound"}), "医技楼2层 超声医学科",
                     _windows(("08:00", "09:00", 6), ("09:00", "10:00", 6), ("10:00", "11:00", 6)), WEEKDAYS_ONLY),
        ExamResource("ECG-01", frozenset({"ecg"}), "医技楼2层东侧 心电图室",
                     _windows(("08:00", "10:00", 10), ("10:00", "12:00", 10), ("14:00", "17:00", 12))),
    ),
    rules=ExamRules(horizon_days=14, lead_minutes=30, change_deadline_minutes=120, max_moves=2,
                    # Contrast agents: the demo hospital does not give CT and MRI on one day.
                    not_same_day=frozenset({frozenset({"ct", "mri"})})),
    preparations={
        "ct": "检查前取下项链、发卡、带金属的衣物等金属物品。",
        "mri": "检查前取下所有金属物品；体内有心脏起搏器或金属植入物者请提前告知医生。",
        "ultrasound": "腹部超声需空腹8小时以上；泌尿系、妇科超声需憋尿。",
        "ecg": "检查前静息5分钟，穿宽松上衣。",
    },
    check_in={
        "ct": "请于预约时段开始前15分钟到医技楼1层放射科登记台，或在自助机“报到”后候检。",
        "mri": "请于预约时段开始前30分钟到医技楼1层放射科登记台，或在自助机“报到”后候检。",
        "ultrasound": "请于预约时段开始前15分钟到医技楼2层超声医学科，在自助机“报到”后候检。",
        "ecg": "请于预约时段内到医技楼2层东侧心电图室，在自助机“报到”后候检。",
    },
)


def load_exam_config(path: Path | str | None) -> ExamConfig:
    """The hospital's exam configuration from a JSON file (docs/exams-and-documents.md); the demo's without one."""
    if path is None:
        return DEMO_EXAM_CONFIG
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    rules = data.get("rules", {})
    return ExamConfig(
        resources=tuple(ExamResource(
            code=r["code"], exam_types=frozenset(r["exam_types"]), place=r["place"],
            windows=_windows(*[(w["start"], w["end"], int(w["capacity"])) for w in r["windows"]]),
            weekdays=frozenset(r.get("weekdays", range(7)))) for r in data["resources"]),
        rules=ExamRules(horizon_days=rules.get("horizon_days", 14), lead_minutes=rules.get("lead_minutes", 30),
                        change_deadline_minutes=rules.get("change_deadline_minutes", 120),
                        max_moves=rules.get("max_moves", 2),
                        not_same_day=frozenset(frozenset(p) for p in rules.get("not_same_day", []))),
        preparations=data.get("preparations", {}), check_in=data.get("check_in", {}))


# ---- errors and labels -------------------------------------------------------------------------

class ExamRefused(Exception):
    """What the patient is told when a booking step cannot go ahead; nothing has changed."""

    def __init__(self, message: str, next_step: str = TO_EXAM_DESK, *, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.next_step = next_step
        self.status = status


def window_label(start: dt.time, end: dt.time) -> str:
    return f"{start:%H:%M}–{end:%H:%M}"


def date_label(day: dt.date, today: dt.date | None = None) -> str:
    label = f"{day.month}月{day.day}日 星期{WEEKDAYS[day.weekday()]}"
    if today is not None and day == today:
        return f"今天 {label}"
    if today is not None and day == today + dt.timedelta(days=1):
        return f"明天 {label}"
    return label


def _from_refusal(exc: BookingRefused, rules: ExamRules, *, moves: int = 0) -> ExamRefused:
    message, next_step = REFUSALS[exc.refusal]
    other = EXAM_LABELS.get(exc.conflict_with or "", exc.conflict_with or "")
    return ExamRefused(message.format(other=other, hours=rules.change_deadline_minutes // 60 or 1, moves=moves),
                       next_step)


# ---- the service -------------------------------------------------------------------------------

class ExamService:
    def __init__(self, uow_factory, clock: Clock, sessions: SessionService, his: HisPort, config: ExamConfig,
                 *, tz: ZoneInfo, hospital_name: str) -> None:
        self._uow = uow_factory
        self.clock = clock
        self._sessions = sessions
        self._his = his
        self.config = config
        self._tz = tz
        self._hospital_name = hospital_name

    # -- what the patient sees -------------------------------------------------------------------
    def orders(self, device: AuthenticatedDevice) -> dict[str, Any]:
        """The patient's paid exam orders that need an appointment, with any booking each has."""
        payer = self._sessions.payer(device)
        his_orders = [o for o in self._his_orders(payer.his_patient_id) if o.needs_booking]
        with self._uow() as uow:
            bookings = {b.order_no: b for b in uow.session.scalars(select(ExamBooking).where(
                ExamBooking.patient_id == payer.patient_row_id))}
        self._sync_pending([b for b in bookings.values() if not b.his_synced], device.id)
        now = self._now()
        listed = [self._order_json(o, bookings.get(o.order_no), now) for o in his_orders]
        order = {"bookable": 0, "booked": 1, "elsewhere": 2}
        listed.sort(key=lambda o: order[o["state"]])
        return {"orders": listed}

    def slots(self, device: AuthenticatedDevice, order_no: str) -> dict[str, Any]:
        """The windows for an order (to book, or to move its booking to), earliest first."""
        payer = self._sessions.payer(device)
        order = self._order(payer.his_patient_id, order_no)
        now = self._now()
        with self._uow() as uow:
            held, own = self._held(uow, payer.patient_row_id, order_no)
            days = offer(self.config, order.exam_type.value, now, self._booked_counts(uow, order.exam_type.value, now),
                         held, ignore_order=order_no)
        first = earliest(days)
        return {
            "order": self._order_summary(order),
            "moving": own is not None,
            "current": self._booking_window(own, now) if own else None,
            "earliest": self._window_json(first, now) if first else None,
            "days": [{"date": d.day.isoformat(), "label": date_label(d.day, now.date()), "remaining": d.remaining,
                      "bookable": d.bookable, "windows": [self._window_json(w, now) for w in d.windows]}
                     for d in days],
        }

    # -- changes ---------------------------------------------------------------------------------
    def book(self, device: AuthenticatedDevice, order_no: str, day: dt.date, start: dt.time) -> dict[str, Any]:
        """Take a place in the window for the order, then tell the HIS."""
        payer = self._sessions.payer(device)
        order = self._order(payer.his_patient_id, order_no)
        if order.booked and order.appointment is None:
            raise ExamRefused("该检查已在其他渠道预约。", TO_EXAM_DESK)
        exam_type = order.exam_type.value
        now = self._now()
        with self._uow() as uow:
            self._lock_patient(uow, payer.patient_row_id)
            booking = uow.session.scalar(select(ExamBooking).where(ExamBooking.order_no == order_no)
                                         .with_for_update())
            if booking is not None and booking.state == BookingState.BOOKED.value:
                if (booking.day, booking.start) == (day, start):
                    return self._booking_json(booking, now)  # a repeated tap: the same booking
                raise ExamRefused("该检查已经预约，如需更改时间请选择“改约”。", "请返回查看您的预约")
            held, _ = self._held(uow, payer.patient_row_id, order_no)
            window = self._window(exam_type, day, start)
            try:
                candidates = check_booking(self.config, exam_type, window, now, held)
            except BookingRefused as exc:
                raise _from_refusal(exc, self.config.rules) from exc
            resource = self._take_place(uow, window, candidates)
            details = self._details(order, resource)
            if booking is None:
                booking = ExamBooking(id=str(uuid.uuid4()), order_no=order_no, patient_id=payer.patient_row_id,
                                      his_patient_id=payer.his_patient_id, exam_type=exam_type, moves=0,
                                      created_at=self.clock.now())
                uow.session.add(booking)
            else:
                BookingState.check(BookingState(booking.state), BookingState.BOOKED)
            self._place(booking, window, resource, details, device.id)
            booking.cancelled_at = None
            uow.session.flush()
            self._event(uow, booking, "booked", device.id, {"window": self._window_text(window)})
            uow.commit()
        log.info("exam.booked", order_no=order_no, exam_type=exam_type, day=day.isoformat(),
                 start=start.isoformat(), device_id=device.id)
        self._tell_his_booked(booking, device.id, undo=lambda: self._release(booking.id, device.id, "his_refused"))
        return self._booking_json(self._load(booking.id), now)

    def move(self, device: AuthenticatedDevice, order_no: str, day: dt.date, start: dt.time) -> dict[str, Any]:
        """Move a booking to another window (改约), within the change deadline and the moves allowed."""
        payer = self._sessions.payer(device)
        order = self._order(payer.his_patient_id, order_no)
        exam_type = order.exam_type.value
        now = self._now()
        with self._uow() as uow:
            self._lock_patient(uow, payer.patient_row_id)
            booking = self._own_booking(uow, payer.patient_row_id, order_no, lock=True)
            held, _ = self._held(uow, payer.patient_row_id, order_no)
            current = Window(booking.day, booking.start, booking.end)
            target = self._window(exam_type, day, start)
            try:
                candidates = check_move(self.config, exam_type, HeldBooking(order_no, exam_type, current), target,
                                        now, held, moves=booking.moves)
            except BookingRefused as exc:
                raise _from_refusal(exc, self.config.rules, moves=booking.moves) from exc
            old_key = (booking.resource_code, booking.day, booking.start)
            resource = self._take_place(uow, target, candidates, also_lock=[old_key])
            self._give_back(uow, old_key)
            self._place(booking, target, resource, self._details(order, resource), device.id)
            booking.moves += 1
            self._event(uow, booking, "moved", device.id, {"from": self._window_text(current),
                                                           "to": self._window_text(target)})
            uow.commit()
        log.info("exam.moved", order_no=order_no, day=day.isoformat(), start=start.isoformat(), device_id=device.id)
        self._tell_his_booked(booking, device.id, undo=None)
        return self._booking_json(self._load(booking.id), now)

    def cancel(self, device: AuthenticatedDevice, order_no: str) -> dict[str, Any]:
        """Cancel a booking (取消预约) within the change deadline; the place goes back at once."""
        payer = self._sessions.payer(device)
        now = self._now()
        with self._uow() as uow:
            self._lock_patient(uow, payer.patient_row_id)
            booking = self._own_booking(uow, payer.patient_row_id, order_no, lock=True)
            try:
                check_change(self.config.rules, Window(booking.day, booking.start, booking.end), now)
            except BookingRefused as exc:
                raise _from_refusal(exc, self.config.rules) from exc
            booking_id = booking.id
        self._release(booking_id, device.id, "cancelled")
        booking = self._load(booking_id)
        log.info("exam.cancelled", order_no=order_no, device_id=device.id)
        self._tell_his_cancelled(booking, device.id)
        return {"order_no": order_no, "state": booking.state, "message": "已取消预约，检查费用不受影响。",
                "exam_name": booking.details.get("exam_name", "")}

    # -- paper -----------------------------------------------------------------------------------
    def slip(self, device: AuthenticatedDevice, order_no: str, *, reprint: bool = False) -> Receipt:
        """The appointment slip (检查预约单) for the 80 mm printer; a reprint is marked 补打 and counted."""
        payer = self._sessions.payer(device)
        session = self._sessions.current(device)
        with self._uow() as uow:
            booking = self._own_booking(uow, payer.patient_row_id, order_no, lock=reprint)
            count = 0
            if reprint:
                count = int(booking.details.get("slip_reprints", 0)) + 1
                booking.details = {**booking.details, "slip_reprints": count}
                uow.commit()
        if reprint:
            log.info("exam.slip_reprint", order_no=order_no, device_id=device.id, count=count)
        return appointment_slip(booking, hospital_name=self._hospital_name,
                                masked_name=session.patient.get("masked_name", ""),
                                printed_at=self._now(), reprint_no=count, rules=self.config.rules)

    # -- check-in (报到) on the exam's day ----------------------------------------------------------
    def due_today(self, device: AuthenticatedDevice, queues: QueueService) -> list[dict[str, Any]]:
        """The patient's exam appointments of today (our own bookings; no HIS call), each with whether
        it can check in: ``open``, ``checked_in`` (with the entry), ``done`` or ``closed``."""
        payer = self._sessions.payer(device)
        now = self._now()
        with self._uow() as uow:
            bookings = list(uow.session.scalars(select(ExamBooking).where(
                ExamBooking.patient_id == payer.patient_row_id, ExamBooking.state == BookingState.BOOKED.value,
                ExamBooking.day == now.date()).order_by(ExamBooking.start, ExamBooking.order_no)))
        joined = queues.entries_for(CheckInKind.EXAM.value, [b.order_no for b in bookings])
        items = []
        for booking in bookings:
            entry = joined.get(booking.order_no)
            d = booking.details or {}
            status, note = "open", ""
            if entry and entry["state"] in ("waiting", "called"):
                status, note = "checked_in", "已报到"
            elif entry and entry["state"] == "done":
                status, note = "done", "该检查已完成"
            elif check_in_closed(_half_day(booking.start), now.time(), queues.rules(d.get("department_code", ""))):
                status, note = "closed", _exam_closed_message(booking.start, queues.rules(d.get("department_code", "")))
            items.append({
                "order_no": booking.order_no, "exam_label": d.get("exam_label", ""), "exam_name": d.get("exam_name", ""),
                "department_name": d.get("department_name", ""), "place": d.get("place", ""),
                "window": window_label(booking.start, booking.end), "status": status, "note": note,
                "entry": entry if status == "checked_in" else None})
        return items

    def check_in(self, device: AuthenticatedDevice, order_no: str, checkin) -> dict[str, Any]:
        """Check in for today's exam appointment: join the exam department's queue, ordered by the
        booked window, and tell the HIS (``CheckInService.join_and_tell``, kind ``exam``)."""
        payer = self._sessions.payer(device)
        view = self._sessions.current(device)
        now = self._now()
        with self._uow() as uow:
            booking = self._own_booking(uow, payer.patient_row_id, order_no, lock=False)
        if booking.day != now.date():
            raise ExamRefused(f"您的这项检查预约在{date_label(booking.day, now.date())}，请在检查当天报到。",
                              "请在预约当天到自助机报到")
        if not booking.his_synced:  # the HIS accepts a check-in only for an exam it knows is booked
            self._tell_his_booked(booking, device.id, undo=None)
        order = self._order(payer.his_patient_id, order_no)  # the performing department, from the HIS
        queues: QueueService = checkin.queues
        rules = queues.rules(order.department_code)
        existing = queues.entry(CheckInKind.EXAM.value, order_no)
        if existing and existing["state"] == "done":
            raise ExamRefused("该检查已完成，无需再次报到。", "如有疑问，请到检查科室登记台咨询")
        if check_in_closed(_half_day(booking.start), now.time(), rules) and not (
                existing and existing["state"] in ("waiting", "called")):
            raise ExamRefused(_exam_closed_message(booking.start, rules), TO_EXAM_DESK)
        new = NewEntry(
            source=CheckInKind.EXAM.value, reference=order_no, department_code=order.department_code,
            department_name=order.department_name, location=booking.details.get("place") or order.location,
            queue_date=booking.day, half_day=_half_day(booking.start), patient_row_id=payer.patient_row_id,
            his_patient_id=payer.his_patient_id, masked_name=view.patient.get("masked_name", ""),
            slot_start=dt.datetime.combine(booking.day, booking.start, tzinfo=self._tz),
            slot_end=dt.datetime.combine(booking.day, booking.end, tzinfo=self._tz),
            age=view.patient.get("age"), device_id=device.id)
        result = checkin.join_and_tell(new, kind=CheckInKind.EXAM)
        log.info("exam.checked_in", order_no=order_no, department=order.department_code, device_id=device.id)
        return {**result, "exam_name": booking.details.get("exam_name", "")}

    # -- internals -------------------------------------------------------------------------------
    def _now(self) -> dt.datetime:
        return self.clock.now().astimezone(self._tz)

    def _his_orders(self, his_patient_id: str) -> list[ExamOrder]:
        try:
            return self._his.exam_orders(his_patient_id)
        except UpstreamError as exc:
            raise ExamRefused("暂时无法查询您的检查申请，请稍后再试。", "如急需预约，请到检查科室登记台办理",
                              status=503) from exc

    def _order(self, his_patient_id: str, order_no: str) -> ExamOrder:
        order = next((o for o in self._his_orders(his_patient_id) if o.order_no == order_no), None)
        if order is None or order.status is not OrderStatus.PAID:
            raise ExamRefused("没有找到这项已缴费的检查申请。", "请先缴费，或返回重新选择", status=404)
        if not order.needs_booking:
            raise ExamRefused("这项检查无需预约，请直接到检查科室报到。", f"检查地点：{order.location}")
        return order

    def _window(self, exam_type: str, day: dt.date, start: dt.time) -> Window:
        for resource in self.config.resources_for(exam_type):
            for template in resource.opens(day):
                if template.start == start:
                    return Window(day, template.start, template.end)
        raise ExamRefused(*REFUSALS[Refusal.NOT_OFFERED])

    @staticmethod
    def _lock_patient(uow, patient_row_id: int) -> None:
        # One patient's bookings are decided one at a time: the conflict rules read them all.
        uow.session.execute(select(Patient.id).where(Patient.id == patient_row_id).with_for_update())

    @staticmethod
    def _held(uow, patient_row_id: int, order_no: str) -> tuple[list[HeldBooking], ExamBooking | None]:
        rows = list(uow.session.scalars(select(ExamBooking).where(
            ExamBooking.patient_id == patient_row_id, ExamBooking.state == BookingState.BOOKED.value)))
        held = [HeldBooking(b.order_no, b.exam_type, Window(b.day, b.start, b.end)) for b in rows]
        return held, next((b for b in rows if b.order_no == order_no), None)

    def _booked_counts(self, uow, exam_type: str, now: dt.datetime) -> dict[SlotKey, int]:
        codes = [r.code for r in self.config.resources_for(exam_type)]
        last = now.date() + dt.timedelta(days=self.config.rules.horizon_days)
        rows = uow.session.execute(select(ExamSlot.resource_code, ExamSlot.day, ExamSlot.start, ExamSlot.booked).where(
            ExamSlot.resource_code.in_(codes), ExamSlot.day >= now.date(), ExamSlot.day <= last))
        return {(code, day, start): booked for code, day, start, booked in rows}

    def _take_place(self, uow, window: Window, candidates: list[tuple[str, int]],
                    also_lock: list[SlotKey] = ()) -> str:
        """A place in ``window`` on the emptiest resource with room; refused when all are full."""
        keys = [(code, window.day, window.start) for code, _ in candidates] + list(also_lock)
        slots = self._lock_slots(uow, keys)
        booked = {key: slot.booked for key, slot in slots.items()}
        now = self.clock.now()
        for code, capacity in emptiest_first(candidates, booked, window):
            slot = slots[(code, window.day, window.start)]
            # Conditional: never past the capacity, even where row locks are not enforced (SQLite).
            taken = uow.session.execute(update(ExamSlot).where(ExamSlot.id == slot.id, ExamSlot.booked < capacity)
                                        .values(booked=ExamSlot.booked + 1, capacity=capacity, updated_at=now)
                                        .execution_options(synchronize_session=False))
            if taken.rowcount == 1:
                return code
        raise ExamRefused(*REFUSALS[Refusal.FULL])

    def _lock_slots(self, uow, keys: list[SlotKey]) -> dict[SlotKey, ExamSlot]:
        """The slot rows for ``keys`` (created empty where missing), locked in id order (no deadlocks)."""
        now = self.clock.now()
        dialect = uow.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        for code, day, start in sorted(set(keys)):
            uow.session.execute(insert(ExamSlot).values(resource_code=code, day=day, start=start, capacity=0,
                                                        booked=0, updated_at=now)
                                .on_conflict_do_nothing(index_elements=["resource_code", "day", "start"]))
        rows = uow.session.scalars(select(ExamSlot).where(
            tuple_(ExamSlot.resource_code, ExamSlot.day, ExamSlot.start).in_(sorted(set(keys))))
            .order_by(ExamSlot.id).with_for_update().execution_options(populate_existing=True))
        return {(slot.resource_code, slot.day, slot.start): slot for slot in rows}

    @staticmethod
    def _give_back(uow, key: SlotKey) -> None:
        code, day, start = key
        uow.session.execute(update(ExamSlot).where(ExamSlot.resource_code == code, ExamSlot.day == day,
                                                   ExamSlot.start == start, ExamSlot.booked > 0)
                            .values(booked=ExamSlot.booked - 1).execution_options(synchronize_session=False))

    def _release(self, booking_id: str, device_id: str, action: str) -> None:
        """Give the place back and mark the booking cancelled (the patient's, or the HIS's refusal)."""
        with self._uow() as uow:
            booking = uow.session.get(ExamBooking, booking_id, with_for_update=True)
            if booking.state != BookingState.BOOKED.value:
                return
            self._lock_slots(uow, [(booking.resource_code, booking.day, booking.start)])
            self._give_back(uow, (booking.resource_code, booking.day, booking.start))
            booking.state = BookingState.CANCELLED.value
            booking.cancelled_at = booking.updated_at = self.clock.now()
            booking.his_synced = False
            self._event(uow, booking, action, device_id, {"window": self._window_text(
                Window(booking.day, booking.start, booking.end))})
            uow.commit()

    def _place(self, booking: ExamBooking, window: Window, resource: str, details: dict, device_id: str) -> None:
        booking.state = BookingState.BOOKED.value
        booking.resource_code, booking.day, booking.start, booking.end = resource, window.day, window.start, window.end
        booking.details = {**(booking.details or {}), **details}
        booking.device_id = device_id
        booking.his_synced = False
        booking.updated_at = self.clock.now()

    def _details(self, order: ExamOrder, resource_code: str) -> dict[str, Any]:
        resource = self.config.resource(resource_code)
        exam_type = order.exam_type.value
        return {"exam_name": order.exam_name, "exam_label": EXAM_LABELS.get(exam_type, exam_type),
                "body_part": order.body_part, "department_name": order.department_name,
                "department_code": order.department_code,
                "place": resource.place if resource else order.location,
                "preparation": order.preparation or self.config.preparations.get(exam_type, ""),
                "check_in": self.config.check_in.get(exam_type, "请按预约时段提前到检查科室报到。")}

    def _event(self, uow, booking: ExamBooking, action: str, device_id: str, details: dict) -> None:
        uow.session.add(ExamBookingEvent(booking_id=booking.id, action=action, device_id=device_id,
                                         details=details, at=self.clock.now()))

    def _own_booking(self, uow, patient_row_id: int, order_no: str, *, lock: bool) -> ExamBooking:
        query = select(ExamBooking).where(ExamBooking.order_no == order_no, ExamBooking.patient_id == patient_row_id,
                                          ExamBooking.state == BookingState.BOOKED.value)
        booking = uow.session.scalar(query.with_for_update() if lock else query)
        if booking is None:
            raise ExamRefused("没有找到这项检查的预约。", "请返回查看您的检查预约", status=404)
        return booking

    def _load(self, booking_id: str) -> ExamBooking:
        with self._uow() as uow:
            return uow.session.get(ExamBooking, booking_id)

    # -- the HIS ---------------------------------------------------------------------------------
    def _appointment(self, booking: ExamBooking) -> ExamAppointment:
        return ExamAppointment(booking_ref=booking.id, date=booking.day, start=booking.start, end=booking.end,
                               place=booking.details.get("place", ""))

    def _tell_his_booked(self, booking: ExamBooking, device_id: str, *, undo) -> None:
        try:
            self._his.book_exam(booking.order_no, self._appointment(booking))
        except UpstreamRefused as exc:
            log.warning("exam.his_refused", order_no=booking.order_no, code=exc.code)
            if undo is not None:
                undo()
                raise ExamRefused(f"医院系统未能登记该预约：{exc.message}", TO_EXAM_DESK) from exc
            return  # a move the HIS refused keeps our booking; the next listing tries again
        except UpstreamError as exc:
            # The HIS may or may not have it: our booking stands and the next listing tells it again.
            log.warning("exam.his_unknown", order_no=booking.order_no, error=type(exc).__name__)
            return
        self._mark_synced(booking.id)

    def _tell_his_cancelled(self, booking: ExamBooking, device_id: str) -> None:
        try:
            self._his.cancel_exam_booking(booking.order_no, booking.id)
        except UpstreamError as exc:
            log.warning("exam.his_cancel_failed", order_no=booking.order_no, error=type(exc).__name__)
            return
        self._mark_synced(booking.id)

    def _sync_pending(self, bookings: list[ExamBooking], device_id: str) -> None:
        for booking in bookings:
            if booking.state == BookingState.BOOKED.value:
                self._tell_his_booked(booking, device_id, undo=None)
            else:
                self._tell_his_cancelled(booking, device_id)

    def _mark_synced(self, booking_id: str) -> None:
        with self._uow() as uow:
            uow.session.execute(update(ExamBooking).where(ExamBooking.id == booking_id).values(his_synced=True)
                                .execution_options(synchronize_session=False))
            uow.commit()

    # -- JSON for the page (no resource codes) ---------------------------------------------------------
    @staticmethod
    def _window_text(window: Window) -> str:
        return f"{window.day.isoformat()} {window_label(window.start, window.end)}"

    @staticmethod
    def _window_json(w, now: dt.datetime) -> dict[str, Any]:
        return {"date": w.window.day.isoformat(), "date_label": date_label(w.window.day, now.date()),
                "start": w.window.start.strftime("%H:%M"), "end": w.window.end.strftime("%H:%M"),
                "label": window_label(w.window.start, w.window.end), "remaining": w.remaining,
                "bookable": w.bookable, "reason": REFUSAL_LABELS.get(w.refusal, "") if w.refusal else ""}

    def _order_summary(self, order: ExamOrder) -> dict[str, Any]:
        exam_type = order.exam_type.value
        return {"order_no": order.order_no, "exam_type": exam_type, "exam_label": EXAM_LABELS.get(exam_type, exam_type),
                "exam_name": order.exam_name, "body_part": order.body_part, "department_name": order.department_name,
                "location": order.location, "ordered_on": order.ordered_on.isoformat(),
                "preparation": order.preparation or self.config.preparations.get(exam_type, "")}

    def _order_json(self, order: ExamOrder, booking: ExamBooking | None, now: dt.datetime) -> dict[str, Any]:
        data = self._order_summary(order)
        if booking is not None and booking.state == BookingState.BOOKED.value:
            data.update(state="booked", booking=self._booking_window(booking, now))
        elif order.booked:
            data.update(state="elsewhere", booking=None)
        else:
            data.update(state="bookable", booking=None)
        return data

    def _booking_window(self, booking: ExamBooking, now: dt.datetime) -> dict[str, Any]:
        window = Window(booking.day, booking.start, booking.end)
        rules = self.config.rules
        deadline = window.starts_at(now.tzinfo) - dt.timedelta(minutes=rules.change_deadline_minutes)
        return {"date": booking.day.isoformat(), "date_label": date_label(booking.day, now.date()),
                "start": booking.start.strftime("%H:%M"), "end": booking.end.strftime("%H:%M"),
                "label": window_label(booking.start, booking.end), "place": booking.details.get("place", ""),
                "can_change": now <= deadline, "moves_left": max(rules.max_moves - booking.moves, 0),
                "change_until": f"{deadline:%m月%d日 %H:%M}"}

    def _booking_json(self, booking: ExamBooking, now: dt.datetime) -> dict[str, Any]:
        return {"order_no": booking.order_no, "state": booking.state, "exam_name": booking.details.get("exam_name"),
                "exam_label": booking.details.get("exam_label"), "preparation": booking.details.get("preparation"),
                "check_in": booking.details.get("check_in"), "booking": self._booking_window(booking, now)}


def _half_day(start: dt.time) -> str:
    return "am" if start < dt.time(12) else "pm"


def _exam_closed_message(start: dt.time, rules) -> str:
    half_day = _half_day(start)
    closes = rules.am_closes if half_day == "am" else rules.pm_closes
    return f"{'上午' if half_day == 'am' else '下午'}检查的报到时间已过（{closes:%H:%M} 截止），不能自助报到。"


def _wrap(text: str, width: int = 21) -> list[str]:
    """Slip lines of at most ``width`` CJK characters (the printer's 48 columns, CJK counted double)."""
    return [text[i:i + width] for i in range(0, len(text), width)] or [""]


def appointment_slip(booking: ExamBooking, *, hospital_name: str, masked_name: str, printed_at: dt.datetime,
                     reprint_no: int = 0, rules: ExamRules) -> Receipt:
    """The appointment slip: exam, date and window, place, preparation, how to check in."""
    d = booking.details
    title = "检查预约单" + ("（补打）" if reprint_no else "")
    lines: list[dict[str, Any]] = [
        {"type": "text", "text": hospital_name, "bold": True, "double": True, "align": "center"},
        {"type": "text", "text": title, "bold": True, "align": "center"},
        {"type": "rule"},
        {"type": "text", "text": f"患者：{masked_name}"},
        {"type": "text", "text": f"检查项目：{d.get('exam_name', '')}"},
        {"type": "text", "text": f"检查日期：{date_label(booking.day)}", "bold": True},
        {"type": "text", "text": f"预约时段：{window_label(booking.start, booking.end)}", "bold": True, "double": True},
        {"type": "text", "text": f"检查地点：{d.get('place', '')}", "bold": True},
        {"type": "text", "text": f"申请单号：{booking.order_no}"},
        {"type": "rule"},
        {"type": "text", "text": "检查前准备：", "bold": True},
        *[{"type": "text", "text": part} for part in _wrap(d.get("preparation") or "无特殊准备")],
        {"type": "text", "text": "报到方式：", "bold": True},
        *[{"type": "text", "text": part} for part in _wrap(d.get("check_in", ""))],
        # The QR code is for the department's desk; a kiosk identifies by card only.
        {"type": "text", "text": "在检查科室登记台报到可出示本单二维码；"},
        {"type": "text", "text": "在自助机报到请刷医保卡、身份证或就诊卡。"},
        {"type": "rule"},
        *[{"type": "text", "text": part} for part in _wrap(
            f"如需取消或改约，请在检查开始{rules.change_deadline_minutes // 60 or 1}小时前在自助机“检查预约”中办理。")],
        {"type": "qr", "payload": f"EXAM:{booking.order_no}"},
        {"type": "text", "text": f"打印时间：{printed_at:%Y-%m-%d %H:%M}"},
        {"type": "feed", "lines": 2},
    ]
    job = f"exam-{booking.id[:8]}-{booking.moves}" + (f"-re{reprint_no}" if reprint_no else "")
    return Receipt(job_id=job, title=title, lines=lines)


class ExamSettings(BaseSettings):
    """``MEDKIOSK_EXAM_CONFIG_FILE``: the hospital's resources, windows and rules (JSON); the demo's without."""

    model_config = SettingsConfigDict(env_prefix="MEDKIOSK_EXAM_", env_file=None, extra="ignore")

    config_file: Path | None = None


_lock = threading.Lock()


def exams_of(container) -> ExamService:
    """The container's exam service, built once on first use from its settings, store, clock and HIS."""
    service = getattr(container, "_exams", None)
    if service is None:
        with _lock:
            service = getattr(container, "_exams", None)
            if service is None:
                service = ExamService(container.uow, container.clock, container.sessions, container.his,
                                      load_exam_config(ExamSettings().config_file), tz=container.settings.tz,
                                      hospital_name=container.settings.hospital_name)
                container._exams = service
    return service
