"""Check-in (报到) at a kiosk: today's registrations, joining the department's queue, telling the HIS.

The queue entry is written first and the HIS told after (with the entry's own idempotency key),
so a patient is never left out of the queue because the HIS was slow; a HIS that did not answer
is told again later (``tell_his_again``), and a HIS refusal takes the entry out and says why.
Cross-region patients check in exactly like anyone else: nothing here looks at insurance.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from medkiosk.adapters.errors import UpstreamError, UpstreamRefused
from medkiosk.adapters.his.port import CheckInKind, CheckInNotice, HisPort, Registration, RegistrationStatus
from medkiosk.domain.queues import QueueRules, check_in_closed
from medkiosk.logging import get_logger
from medkiosk.services.clock import Clock
from medkiosk.services.devices import AuthenticatedDevice
from medkiosk.services.queues import TO_DESK, Joined, NewEntry, QueueRefused, QueueService
from medkiosk.services.sessions import SessionService

log = get_logger(__name__)

TO_WINDOW = "请到人工窗口办理"
HIS_RETRY_AFTER = dt.timedelta(seconds=20)
SOURCE_REGISTRATION = CheckInKind.REGISTRATION.value
SOURCE_EXAM = CheckInKind.EXAM.value
# An appointment not picked up, or a number whose fee is still being paid: nothing to check in yet.
NOT_PAID_YET = frozenset({RegistrationStatus.UNPAID, RegistrationStatus.BOOKED, RegistrationStatus.PENDING_PAYMENT})
GONE = frozenset({RegistrationStatus.CANCELLED, RegistrationStatus.RELEASED})


class CheckInRefused(QueueRefused):
    """A check-in the kiosk cannot do; the message says why and the next step where to go."""


class CheckInService:
    def __init__(self, clock: Clock, his: HisPort, sessions: SessionService, queues: QueueService) -> None:
        self._clock = clock
        self._his = his
        self._sessions = sessions
        self.queues = queues

    # -- what the patient can check in for --------------------------------------------------------
    def today(self, device: AuthenticatedDevice) -> dict[str, Any]:
        """The patient's registrations of today, each with whether (and how) it can check in."""
        payer = self._sessions.payer(device)
        registrations = self._registrations(payer.his_patient_id)
        joined = self.queues.entries_for(SOURCE_REGISTRATION, [r.registration_no for r in registrations])
        items = [self._item(r, joined.get(r.registration_no)) for r in registrations]
        return {"registrations": items, "result_seconds": QueueRules().result_seconds}

    def _item(self, registration: Registration, entry: dict[str, Any] | None) -> dict[str, Any]:
        rules = self.queues.rules(registration.department_code)
        status, note = "open", ""
        if registration.status in GONE:
            status, note = "cancelled", "该号已退号" if registration.status is RegistrationStatus.CANCELLED else "该号未缴费，已释放"
        elif registration.status in NOT_PAID_YET:
            status, note = "unpaid", "预约尚未取号，请先取号"
        elif entry and entry["state"] in ("waiting", "called"):
            status, note = "checked_in", "已报到"
        elif check_in_closed(registration.half_day.value, self._local_now().time(), rules):
            status, note = "closed", self._closed_message(registration, rules)
        elif entry and entry["state"] == "done":
            status, note = "open", "回诊报到（带检查结果复诊）"
        return {
            "registration_no": registration.registration_no, "department_name": registration.department_name,
            "location": registration.location, "doctor_name": registration.doctor_name,
            "half_day": registration.half_day.value,
            "half_day_label": {"am": "上午", "pm": "下午"}[registration.half_day.value],
            "window": _window(registration), "queue_no": registration.queue_no, "status": status, "note": note,
            "entry": entry if status == "checked_in" else None,
        }

    # -- checking in ------------------------------------------------------------------------------------
    def check_in(self, device: AuthenticatedDevice, registration_no: str) -> dict[str, Any]:
        """Check the identified patient in for one of today's registrations (a repeat answers the same)."""
        payer = self._sessions.payer(device)
        view = self._sessions.current(device)
        registration = next((r for r in self._registrations(payer.his_patient_id)
                             if r.registration_no == registration_no), None)
        if registration is None:
            raise CheckInRefused("未找到您今天的这个挂号", "请核对挂号条，或到人工窗口办理", status=404)
        if registration.status in GONE:
            raise CheckInRefused("该号已退号，不能报到" if registration.status is RegistrationStatus.CANCELLED
                                 else "该号未缴费，已释放，不能报到", TO_WINDOW)
        if registration.status in NOT_PAID_YET:
            raise CheckInRefused("该预约尚未取号缴费，不能报到", "请先在本机“预约取号”，再来报到")
        rules = self.queues.rules(registration.department_code)
        queue_date = self.queues.today()
        existing = self.queues.entry(SOURCE_REGISTRATION, registration_no)
        if check_in_closed(registration.half_day.value, self._local_now().time(), rules) and not (
                existing and existing["state"] in ("waiting", "called")):
            raise CheckInRefused(self._closed_message(registration, rules), TO_DESK)
        new = NewEntry(
            source=SOURCE_REGISTRATION, reference=registration_no, department_code=registration.department_code,
            department_name=registration.department_name, location=registration.location, queue_date=queue_date,
            half_day=registration.half_day.value, patient_row_id=payer.patient_row_id,
            his_patient_id=payer.his_patient_id, masked_name=view.patient.get("masked_name", ""),
            queue_no=str(registration.queue_no), slot_start=self._at(queue_date, registration.window_start),
            slot_end=self._at(queue_date, registration.window_end),
            doctor_code=registration.doctor_code if registration.level.value == "expert" else None,
            doctor_name=registration.doctor_name, age=view.patient.get("age"), device_id=device.id)
        return self.join_and_tell(new, kind=CheckInKind.REGISTRATION)

    def join_and_tell(self, new: NewEntry, *, kind: CheckInKind) -> dict[str, Any]:
        """Join the queue, then tell the HIS. The exams flow calls this for an exam appointment
        (``NewEntry(source="exam", reference=<appointment>, department_code=<exam room's>, ...)``)."""
        joined = self.queues.join(new)
        if joined.his_state != "told":
            self._tell_his(joined.entry_id, new, kind, joined)
        entry = self.queues.entry(new.source, new.reference) or joined.entry
        log.info("checkin.done", department=new.department_code, entry_id=joined.entry_id,
                 queue_no=entry["queue_no"], already=joined.already, rejoined=joined.rejoined)
        return {"entry": entry, "already": joined.already, "rejoined": joined.rejoined,
                "result_seconds": joined.rules.result_seconds}

    def _tell_his(self, entry_id: int, new: NewEntry, kind: CheckInKind, joined: Joined) -> None:
        notice = CheckInNotice(
            idempotency_key=f"CI{entry_id:010d}", kind=kind, reference=new.reference, patient_id=new.his_patient_id,
            department_code=new.department_code, queue_no=joined.entry["queue_no"],
            checked_in_at=self._clock.now().replace(microsecond=0), device_id=new.device_id)
        try:
            self._his.check_in(notice)
        except UpstreamRefused as exc:
            self.queues.cancel(entry_id, reason=f"his_refused:{exc.code}")
            log.warning("checkin.his_refused", entry_id=entry_id, code=exc.code)
            raise CheckInRefused(exc.message or "医院系统未接受报到", TO_DESK) from exc
        except UpstreamError as exc:
            # In the queue already; the HIS is told again in the background with the same key.
            self.queues.set_his_state(entry_id, "pending")
            log.warning("checkin.his_unknown", entry_id=entry_id, error=type(exc).__name__)
            return
        self.queues.set_his_state(entry_id, "told")

    def tell_his_again(self, *, older_than: dt.timedelta = HIS_RETRY_AFTER) -> int:
        """Tell the HIS of check-ins it has not confirmed yet; the number confirmed now."""
        told = 0
        for row in self.queues.entries_to_tell_his(older_than=older_than):
            notice = CheckInNotice(
                idempotency_key=f"CI{row.id:010d}", kind=CheckInKind(row.source), reference=row.reference,
                patient_id=row.his_patient_id, department_code=row.department_code, queue_no=row.queue_no,
                checked_in_at=row.checked_in_at.replace(microsecond=0), device_id=row.device_id)
            try:
                self._his.check_in(notice)
            except UpstreamRefused as exc:
                self.queues.cancel(row.id, reason=f"his_refused:{exc.code}")
                continue
            except UpstreamError:
                self.queues.set_his_state(row.id, "pending")
                continue
            self.queues.set_his_state(row.id, "told")
            told += 1
        return told

    # -- helpers ------------------------------------------------------------------------------------------
    def _registrations(self, his_patient_id: str) -> list[Registration]:
        try:
            return self._his.registrations_today(his_patient_id)
        except UpstreamRefused as exc:
            raise CheckInRefused(exc.message or "医院系统暂时无法查询挂号", TO_WINDOW) from exc
        except UpstreamError as exc:
            raise CheckInRefused("医院系统暂时无法查询您的挂号，请稍后再试", TO_WINDOW, status=503) from exc

    def _local_now(self) -> dt.datetime:
        return self._clock.now().astimezone(self.queues.tz)

    def _at(self, day: dt.date, time: dt.time | None) -> dt.datetime | None:
        return dt.datetime.combine(day, time, tzinfo=self.queues.tz) if time else None

    @staticmethod
    def _closed_message(registration: Registration, rules: QueueRules) -> str:
        closes = rules.am_closes if registration.half_day.value == "am" else rules.pm_closes
        label = "上午" if registration.half_day.value == "am" else "下午"
        return f"{label}号的报到时间已过（{closes:%H:%M} 截止），不能自助报到"


def _window(registration: Registration) -> str:
    if registration.window_start is None or registration.window_end is None:
        return ""
    return f"{registration.window_start:%H:%M}–{registration.window_end:%H:%M}"
