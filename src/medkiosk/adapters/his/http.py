"""The HIS port over the HIS gateway contract: JSON over HTTP under ``/his/v1`` (httpx, sync).

Errors become the adapters' two kinds: a 4xx with the contract's ``{"code", "message"}`` is a
refusal (404 is "not found"), anything else without a usable answer is an unknown outcome.
Nothing personal is logged: only operations, statuses, codes and timings.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from urllib.parse import quote

import httpx

from medkiosk.adapters.errors import UpstreamNotFound
from medkiosk.adapters.his.port import (
    Admission,
    CheckInNotice,
    CheckInReceipt,
    Department,
    Doctor,
    DocumentSummary,
    ExamAppointment,
    ExamOrder,
    HisDocument,
    HisHealth,
    HisPatient,
    NewPatient,
    PaymentPosting,
    PostedPayment,
    Report,
    ReportSummary,
    Registration,
    ScheduleSlot,
    UnpaidVisit,
)
from medkiosk.adapters.jsonhttp import JsonHttpClient

SYSTEM = "his"
API_PREFIX = "/his/v1"

log = logging.getLogger(__name__)


class HisHttpAdapter:
    """:class:`~medkiosk.adapters.his.port.HisPort` over HTTP.

    ``base_url`` is the gateway's root (``http://his-gateway:8201``); the adapter adds ``/his/v1``.
    ``timeout`` is seconds (or an ``httpx.Timeout``) for each call; ``transport`` lets tests put an
    ``httpx.MockTransport`` in place of the network.
    """

    def __init__(self, base_url: str, *, timeout: float | httpx.Timeout = 5.0,
                 transport: httpx.BaseTransport | None = None, headers: Mapping[str, str] | None = None) -> None:
        self._wire = JsonHttpClient(SYSTEM, base_url.rstrip("/") + API_PREFIX, name="HIS",
                                    not_found="HIS 中没有该记录", log=log, timeout=timeout,
                                    transport=transport, headers=headers)

    def close(self) -> None:
        self._wire.close()

    def __enter__(self) -> HisHttpAdapter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the port -----------------------------------------------------------------------------
    def health(self) -> HisHealth:
        return self._wire.parse("health", HisHealth, self._wire.call("health", "GET", "/health"))

    def find_patient(self, *, id_number: str | None = None, visit_card_no: str | None = None,
                     insurance_card_no: str | None = None, patient_id: str | None = None) -> HisPatient | None:
        criteria = {"id_number": id_number, "visit_card_no": visit_card_no,
                    "insurance_card_no": insurance_card_no, "patient_id": patient_id}
        given = {key: value for key, value in criteria.items() if value}
        if len(given) != 1:
            raise ValueError(f"find_patient takes exactly one criterion, got {sorted(given) or 'none'}")
        try:
            body = self._wire.call("patients.find", "GET", "/patients", params=given)
        except UpstreamNotFound:
            return None
        return self._wire.parse("patients.find", HisPatient, body)

    def create_patient(self, patient: NewPatient) -> HisPatient:
        body = self._wire.call("patients.create", "POST", "/patients",
                               payload=patient.model_dump(mode="json", exclude_none=True))
        return self._wire.parse("patients.create", HisPatient, body)

    def current_admission(self, patient_id: str) -> Admission | None:
        body = self._wire.call("admission.get", "GET", f"/patients/{quote(patient_id, safe='')}/admission")
        return self._wire.parse("admission.get", Admission | None, body, field="admission")

    def list_departments(self) -> list[Department]:
        body = self._wire.call("departments.list", "GET", "/departments")
        return self._wire.parse("departments.list", list[Department], body, field="departments")

    def list_doctors(self, department_code: str | None = None) -> list[Doctor]:
        params = {"department_code": department_code} if department_code else None
        body = self._wire.call("doctors.list", "GET", "/doctors", params=params)
        return self._wire.parse("doctors.list", list[Doctor], body, field="doctors")

    def list_schedules(self, date: dt.date, department_code: str | None = None,
                       doctor_code: str | None = None) -> list[ScheduleSlot]:
        params = {"date": date.isoformat()}
        if department_code:
            params["department_code"] = department_code
        if doctor_code:
            params["doctor_code"] = doctor_code
        body = self._wire.call("schedules.list", "GET", "/schedules", params=params)
        return self._wire.parse("schedules.list", list[ScheduleSlot], body, field="schedules")

    def unpaid_orders(self, patient_id: str) -> list[UnpaidVisit]:
        body = self._wire.call("orders.list", "GET", f"/patients/{quote(patient_id, safe='')}/orders",
                               params={"status": "unpaid"})
        return self._wire.parse("orders.list", list[UnpaidVisit], body, field="visits")

    def exam_orders(self, patient_id: str) -> list[ExamOrder]:
        body = self._wire.call("exam_orders.list", "GET", f"/patients/{quote(patient_id, safe='')}/exam-orders",
                               params={"status": "paid"})
        return self._wire.parse("exam_orders.list", list[ExamOrder], body, field="exam_orders")

    def registrations_today(self, patient_id: str) -> list[Registration]:
        body = self._wire.call("registrations.list", "GET",
                               f"/patients/{quote(patient_id, safe='')}/registrations")
        return self._wire.parse("registrations.list", list[Registration], body, field="registrations")

    def check_in(self, notice: CheckInNotice) -> CheckInReceipt:
        body = self._wire.call("check_ins.post", "POST", "/check-ins", payload=notice.model_dump(mode="json"))
        return self._wire.parse("check_ins.post", CheckInReceipt, body)

    def hold_registration(self, *, idempotency_key: str, patient_id: str, schedule_id: str,
                          source: str = "kiosk") -> Registration:
        body = self._wire.call("registrations.hold", "POST", "/registrations",
                               payload={"idempotency_key": idempotency_key, "patient_id": patient_id,
                                        "schedule_id": schedule_id, "source": source})
        return self._wire.parse("registrations.hold", Registration, body)

    def registration(self, registration_no: str) -> Registration | None:
        try:
            body = self._wire.call("registrations.get", "GET", f"/registrations/{quote(registration_no, safe='')}")
        except UpstreamNotFound:
            return None
        return self._wire.parse("registrations.get", Registration, body)

    def release_registration(self, registration_no: str, *, idempotency_key: str) -> Registration:
        body = self._wire.call("registrations.release", "POST",
                               f"/registrations/{quote(registration_no, safe='')}/release",
                               payload={"idempotency_key": idempotency_key})
        return self._wire.parse("registrations.release", Registration, body)

    def cancel_registration(self, registration_no: str, *, idempotency_key: str, reason: str) -> Registration:
        body = self._wire.call("registrations.cancel", "POST",
                               f"/registrations/{quote(registration_no, safe='')}/cancel",
                               payload={"idempotency_key": idempotency_key, "reason": reason})
        return self._wire.parse("registrations.cancel", Registration, body)

    def appointments(self, patient_id: str) -> list[Registration]:
        body = self._wire.call("appointments.list", "GET", f"/patients/{quote(patient_id, safe='')}/appointments")
        return self._wire.parse("appointments.list", list[Registration], body, field="appointments")

    def pick_up_appointment(self, registration_no: str, *, idempotency_key: str) -> Registration:
        body = self._wire.call("appointments.pick_up", "POST",
                               f"/appointments/{quote(registration_no, safe='')}/pick-up",
                               payload={"idempotency_key": idempotency_key})
        return self._wire.parse("appointments.pick_up", Registration, body)

    def swappable(self, patient_id: str) -> list[Registration]:
        body = self._wire.call("registrations.swappable", "GET", f"/patients/{quote(patient_id, safe='')}/swappable")
        return self._wire.parse("registrations.swappable", list[Registration], body, field="registrations")

    def start_swap(self, registration_no: str, *, idempotency_key: str) -> Registration:
        body = self._wire.call("registrations.swap", "POST", f"/registrations/{quote(registration_no, safe='')}/swap",
                               payload={"idempotency_key": idempotency_key})
        return self._wire.parse("registrations.swap", Registration, body)

    def release_swap(self, registration_no: str, *, idempotency_key: str) -> Registration:
        body = self._wire.call("registrations.swap_release", "POST",
                               f"/registrations/{quote(registration_no, safe='')}/swap/release",
                               payload={"idempotency_key": idempotency_key})
        return self._wire.parse("registrations.swap_release", Registration, body)

    def app_refunded(self, registration_no: str, *, idempotency_key: str, refund_no: str) -> Registration:
        body = self._wire.call("registrations.app_refund", "POST",
                               f"/registrations/{quote(registration_no, safe='')}/app-refund",
                               payload={"idempotency_key": idempotency_key, "refund_no": refund_no})
        return self._wire.parse("registrations.app_refund", Registration, body)

    def book_exam(self, order_no: str, appointment: ExamAppointment) -> ExamOrder:
        body = self._wire.call("exam_orders.book", "POST", f"/exam-orders/{quote(order_no, safe='')}/appointment",
                               payload=appointment.model_dump(mode="json"))
        return self._wire.parse("exam_orders.book", ExamOrder, body)

    def cancel_exam_booking(self, order_no: str, booking_ref: str) -> ExamOrder:
        body = self._wire.call("exam_orders.cancel", "POST",
                               f"/exam-orders/{quote(order_no, safe='')}/appointment/cancel",
                               payload={"booking_ref": booking_ref})
        return self._wire.parse("exam_orders.cancel", ExamOrder, body)

    def documents(self, patient_id: str) -> list[DocumentSummary]:
        body = self._wire.call("documents.list", "GET", f"/patients/{quote(patient_id, safe='')}/documents")
        return self._wire.parse("documents.list", list[DocumentSummary], body, field="documents")

    def document(self, doc_no: str) -> HisDocument:
        body = self._wire.call("documents.get", "GET", f"/documents/{quote(doc_no, safe='')}")
        return self._wire.parse("documents.get", HisDocument, body)

    def reports(self, patient_id: str) -> list[ReportSummary]:
        body = self._wire.call("reports.list", "GET", f"/patients/{quote(patient_id, safe='')}/reports")
        return self._wire.parse("reports.list", list[ReportSummary], body, field="reports")

    def report(self, report_no: str) -> Report:
        body = self._wire.call("reports.get", "GET", f"/reports/{quote(report_no, safe='')}")
        return self._wire.parse("reports.get", Report, body)

    def report_printed(self, report_no: str) -> int:
        body = self._wire.call("reports.printed", "POST", f"/reports/{quote(report_no, safe='')}/printed", payload={})
        return self._wire.parse("reports.printed", int, body, field="print_count")

    def post_payment(self, posting: PaymentPosting) -> PostedPayment:
        body = self._wire.call("payments.post", "POST", "/payments", payload=posting.model_dump(mode="json"))
        return self._wire.parse("payments.post", PostedPayment, body)

    def cancel_payment(self, receipt_no: str, idempotency_key: str, reason: str) -> PostedPayment:
        body = self._wire.call("payments.cancel", "POST", f"/payments/{quote(receipt_no, safe='')}/cancel",
                               payload={"idempotency_key": idempotency_key, "reason": reason})
        return self._wire.parse("payments.cancel", PostedPayment, body)

    def list_payments(self, patient_id: str | None = None, since: dt.datetime | dt.date | None = None,
                      until: dt.datetime | dt.date | None = None) -> list[PostedPayment]:
        params = {name: value.isoformat() if isinstance(value, dt.date) else value
                  for name, value in (("patient_id", patient_id), ("since", since), ("until", until)) if value}
        body = self._wire.call("payments.list", "GET", "/payments", params=params or None)
        return self._wire.parse("payments.list", list[PostedPayment], body, field="payments")

    def get_payment(self, receipt_no: str) -> PostedPayment | None:
        try:
            body = self._wire.call("payments.get", "GET", f"/payments/{quote(receipt_no, safe='')}")
        except UpstreamNotFound:
            return None
        return self._wire.parse("payments.get", PostedPayment, body)
