"""The HIS simulator's data and its business rules, in memory; the control surface loads and adds to it.

Every change is validated whole before it is applied: a batch with one bad item changes nothing.
Thread-safe, because the control routes run in a thread pool and the HIS routes on the loop.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from medkiosk.domain.identity import birth_date_from_id, gender_from_id, is_valid_id_number
from medkiosk.simulators.his.data import (
    DEFAULT_SEED,
    DRUG_USAGE,
    EXAM_LABELS,
    build_demo_hospital,
    registration_fee_items,
    registration_window,
)
from medkiosk.simulators.his.records import (
    RECORD_TYPES,
    AdmissionRecord,
    CheckInKind,
    CheckInRecord,
    DepartmentRecord,
    DoctorRecord,
    ExamAppointmentRecord,
    ExamOrderRecord,
    HalfDay,
    OrderRecord,
    OrderStatus,
    PaidItemRecord,
    PatientRecord,
    PaymentChannel,
    PaymentRecord,
    PaymentStatus,
    Record,
    RegistrationRecord,
    RegistrationStatus,
    ReportRecord,
    ReportStatus,
    ScheduleRecord,
    describe_validation_error,
    half_day_end,
    half_day_start,
    is_valid_phone,
    payment_problem,
)
from medkiosk.simulators.jsonapi import Conflict, Invalid, NotFound

COLLECTIONS = tuple(RECORD_TYPES)
Data = dict[str, list[Record]]
_PATIENT_NUMBER = re.compile(r"^P(\d+)$")
_SLOT_KEYS = {"date", "doctor_code", "half_day"}
# Magic input (docs/simulators/his.md): orders of a visit whose number ends so are voided by the doctor.
REFUSED_VISIT_SUFFIX = "-REFUSE"
REFUSED_VISIT_MESSAGE = "该处方已被医生作废，请到门诊收费窗口咨询"
# Magic input: a registration (or exam order) whose number ends so is refused at check-in.
REFUSED_CHECK_IN_MESSAGE = "该科室暂停报到，请到分诊台办理"
# What makes two postings with one idempotency key the same request (with the set of order_nos).
# ``paid_at`` is left out: a retry stamped later is still the same payment (the first time is kept).
_POSTING_FIELDS = ("patient_id", "visit_no", "total", "fund", "account", "cash", "insurance_settlement_id",
                   "channel", "trade_no")
DEFAULT_HOLD_MINUTES = 15.0
# Registrations that hold their number (序号): the others (released, cancelled) gave it back.
HOLDING_STATUSES = frozenset({RegistrationStatus.REGISTERED, RegistrationStatus.UNPAID, RegistrationStatus.BOOKED,
                              RegistrationStatus.PENDING_PAYMENT})
# The kiosk's keys stay in the HIS; replies leave them out.
_REGISTRATION_PRIVATE = {"idempotency_key", "pick_up_idempotency_key", "release_idempotency_key",
                         "cancel_idempotency_key", "swap_idempotency_key", "swap_release_idempotency_key",
                         "app_refund_idempotency_key", "given_up_swap_orders"}
# Magic input: a registration whose number ends with REFUSED_VISIT_SUFFIX cannot be cancelled at a kiosk.
REFUSED_CANCEL_MESSAGE = "该号不支持自助退号，请到挂号窗口办理"
RELEASED_POSTING_MESSAGE = "该挂号已超时或已取消，号源已释放，本次缴费不能入账，款项将原路退回"
SWAP_RELEASED_MESSAGE = "本次换号已超时或已撤销，原挂号保持不变，本次缴费不能入账，款项将原路退回"


class HisState:
    """The simulated hospital. ``today`` fixes the demo calendar (default: the real date at reset)."""

    def __init__(self, *, seed: int = DEFAULT_SEED, today: dt.date | None = None) -> None:
        self.seed = seed
        self._fixed_today = today
        self._lock = threading.RLock()
        self._data: Data = {name: [] for name in COLLECTIONS}
        self._offset = 0.0
        self.hold_minutes = DEFAULT_HOLD_MINUTES
        self.reset()

    # -- the clock and settings -------------------------------------------------------------------
    def now(self) -> dt.datetime:
        """The simulator's time: real local time, moved forward by :meth:`advance`, on the pinned day if any."""
        moment = _now() + dt.timedelta(seconds=self._offset)
        if self._fixed_today is not None:
            moment += self._fixed_today - dt.date.today()
        return moment

    @property
    def today(self) -> dt.date:
        return self.now().date()

    @property
    def clock_offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (holds lapse, half-days start and end by it)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds

    def settings(self) -> dict[str, Any]:
        return {"hold_minutes": self.hold_minutes}

    def configure(self, *, hold_minutes: float | None = None) -> dict[str, Any]:
        with self._lock:
            if hold_minutes is not None:
                self.hold_minutes = hold_minutes
            return self.settings()

    def _local_now(self) -> dt.datetime:
        """The simulator's time without an offset, to compare with a half-day's hours."""
        return self.now().replace(tzinfo=None)

    # -- SimulatorState -------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the demo hospital, the real clock and the default settings."""
        with self._lock:
            self._offset = 0.0
            self.hold_minutes = DEFAULT_HOLD_MINUTES
        data = build_demo_hospital(today=self.today, seed=self.seed)
        candidate = {name: _validated(name, data.get(name, [])) for name in COLLECTIONS}
        _check_integrity(candidate)
        with self._lock:
            self._data = candidate

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {name: [r.model_dump(mode="json") for r in records] for name, records in self._data.items()}

    def load(self, data: dict[str, Any]) -> None:
        """Replace the collections named in ``data``; the others stay. The result must hang together."""
        unknown = sorted(set(data) - set(COLLECTIONS))
        if unknown:
            raise KeyError(f"unknown collections {unknown}; known: {list(COLLECTIONS)}")
        for name, items in data.items():
            if not isinstance(items, list):
                raise TypeError(f"{name} must be a list of records")
        with self._lock:
            candidate = dict(self._data)
            for name, items in data.items():
                prepared = self._with_defaults(name, items, existing=[])
                candidate[name] = _validated(name, prepared)
            _check_integrity(candidate)
            self._data = candidate

    def add(self, collection: str, items: list[dict[str, Any]]) -> int:
        """Append validated records; patients and slots without ids get the next free ones."""
        if collection not in COLLECTIONS:
            raise KeyError(f"unknown collection {collection!r}; known: {list(COLLECTIONS)}")
        with self._lock:
            prepared = self._with_defaults(collection, items, existing=self._data[collection])
            records = _validated(collection, prepared)
            candidate = dict(self._data)
            candidate[collection] = [*self._data[collection], *records]
            _check_integrity(candidate)
            self._data = candidate
            return len(records)

    def _with_defaults(self, collection: str, items: list[Any], *, existing: list[Record]) -> list[Any]:
        prepared = []
        next_number = _next_patient_number(existing)
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise TypeError(f"item {index}: a record is a JSON object, not {type(item).__name__}")
            item = dict(item)
            if collection == "patients" and "patient_id" not in item:
                item["patient_id"] = f"P{next_number:06d}"
                item.setdefault("visit_card_no", f"V1{next_number:07d}")
                next_number += 1
            if collection == "schedules" and "schedule_id" not in item and _SLOT_KEYS <= set(item):
                day = str(item["date"]).replace("-", "")
                item["schedule_id"] = f"S{day}{item['doctor_code']}{str(item['half_day']).upper()}"
            prepared.append(item)
        return prepared

    # -- the HIS operations -----------------------------------------------------------------------
    def find_patient(self, **criteria: str | None) -> PatientRecord:
        given = {key: value.strip() for key, value in criteria.items() if value and value.strip()}
        if len(given) != 1:
            raise Invalid("请提供且只提供一个查询条件：身份证号、就诊卡号、医保卡号或患者ID")
        (key, value), = given.items()
        if key == "id_number":
            value = value.upper()
        with self._lock:
            for patient in self._data["patients"]:
                if getattr(patient, key) == value:
                    return patient
        raise NotFound("未找到患者档案")

    def create_patient(self, *, name: str, id_number: str, phone: str, gender: str | None = None,
                       birth_date: dt.date | None = None, insurance_card_no: str | None = None) -> PatientRecord:
        name, id_number, phone = name.strip(), id_number.strip().upper(), phone.strip()
        insurance_card_no = (insurance_card_no or "").strip() or None
        if not name:
            raise Invalid("姓名不能为空")
        if not is_valid_id_number(id_number):
            raise Invalid("身份证号码无效，请核对后重试")
        if gender is not None and gender != gender_from_id(id_number):
            raise Invalid("性别与身份证号码不符")
        if birth_date is not None and birth_date != birth_date_from_id(id_number):
            raise Invalid("出生日期与身份证号码不符")
        if not is_valid_phone(phone):
            raise Invalid("手机号码无效，请输入11位手机号码")
        with self._lock:
            patients = self._data["patients"]
            if any(p.id_number == id_number for p in patients):
                raise Conflict("该身份证号码已建档，请直接刷身份证就诊")
            if insurance_card_no and any(p.insurance_card_no == insurance_card_no for p in patients):
                raise Conflict("该医保卡已关联其他患者档案")
            number = _next_patient_number(patients)
            try:
                patient = PatientRecord(patient_id=f"P{number:06d}", name=name, id_number=id_number, phone=phone,
                                        visit_card_no=f"V1{number:07d}", insurance_card_no=insurance_card_no)
            except ValidationError as exc:
                raise Invalid(f"建档信息有误：{describe_validation_error(exc)}") from None
            self._data = {**self._data, "patients": [*patients, patient]}
            return patient

    def current_admission(self, patient_id: str) -> AdmissionRecord | None:
        with self._lock:
            self._patient(patient_id)
            return next((a for a in self._data["admissions"]
                         if a.patient_id == patient_id and a.discharged_on is None), None)

    def department_tree(self) -> list[dict[str, Any]]:
        with self._lock:
            departments = list(self._data["departments"])
        tree = []
        for group in (d for d in departments if d.parent_code is None):
            children = [d.model_dump(mode="json") for d in departments if d.parent_code == group.code]
            tree.append({**group.model_dump(mode="json"), "children": children})
        return tree

    def doctors(self, department_code: str | None = None) -> list[dict[str, Any]]:
        """Doctors of a department, or of every department of a group when given a group's code."""
        with self._lock:
            wanted = self._department_and_children(department_code)
            return [d.model_dump(mode="json") for d in self._data["doctors"]
                    if wanted is None or d.department_code in wanted]

    def schedules(self, on: dt.date | None = None, department_code: str | None = None,
                  doctor_code: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            self._expire_holds()
            wanted = self._department_and_children(department_code)
            departments = {d.code: d for d in self._data["departments"]}
            doctors = {d.code: d for d in self._data["doctors"]}
            slots = [s for s in self._data["schedules"]
                     if (on is None or s.date == on)
                     and (wanted is None or s.department_code in wanted)
                     and (doctor_code is None or s.doctor_code == doctor_code)]
        slots.sort(key=lambda s: (s.date, s.half_day != HalfDay.AM, s.department_code, s.doctor_code))
        return [{
            **s.model_dump(mode="json"),
            "department_name": departments[s.department_code].name,
            "doctor_name": doctors[s.doctor_code].name,
            "doctor_title": doctors[s.doctor_code].title.value,
        } for s in slots]

    def visits(self, patient_id: str, status: OrderStatus | None = None) -> list[dict[str, Any]]:
        """The patient's orders grouped by visit, newest visit first."""
        with self._lock:
            self._expire_holds()
            self._patient(patient_id)
            departments = {d.code: d for d in self._data["departments"]}
            doctors = {d.code: d for d in self._data["doctors"]}
            orders = [o for o in self._data["orders"]
                      if o.patient_id == patient_id and (status is None or o.status == status)]
        visits: dict[str, dict[str, Any]] = {}
        for order in orders:
            visit = visits.setdefault(order.visit_no, {
                "visit_no": order.visit_no,
                "visit_date": order.visit_date.isoformat(),
                "department_code": order.department_code,
                "department_name": departments[order.department_code].name,
                "doctor_code": order.doctor_code,
                "doctor_name": doctors[order.doctor_code].name,
                "items": [],
                "total_amount": 0,
                "special_disease_code": None,
                "special_disease_name": None,
            })
            if order.special_disease_code:
                visit["special_disease_code"] = order.special_disease_code
                visit["special_disease_name"] = order.special_disease_name
            for item in order.items:
                visit["items"].append({"order_no": order.order_no, "status": order.status.value,
                                       **item.model_dump(mode="json")})
                visit["total_amount"] += item.amount
        result = sorted(visits.values(), key=lambda v: (v["visit_date"], v["visit_no"]), reverse=True)
        for visit in result:
            visit["total_amount"] = f"{visit['total_amount']:.2f}"
        return result

    def exam_orders(self, patient_id: str, status: OrderStatus | None = None) -> list[dict[str, Any]]:
        with self._lock:
            self._patient(patient_id)
            departments = {d.code: d for d in self._data["departments"]}
            orders = [o for o in self._data["exam_orders"]
                      if o.patient_id == patient_id and (status is None or o.status == status)]
        orders.sort(key=lambda o: (o.ordered_on, o.order_no), reverse=True)
        return [{
            **o.model_dump(mode="json", exclude={"patient_id"}),
            "department_name": departments[o.department_code].name,
            "location": departments[o.department_code].location,
        } for o in orders]

    # -- exam appointments, documents, reports -----------------------------------------------------
    def book_exam(self, order_no: str, appointment: dict[str, Any]) -> dict[str, Any]:
        """Record the kiosk's appointment for a paid exam order; the same ``booking_ref`` may move it."""
        with self._lock:
            order = self._exam_order(order_no)
            try:
                record = ExamAppointmentRecord.model_validate(appointment)
            except ValidationError as exc:
                raise Invalid(f"请求参数有误：{describe_validation_error(exc)}") from None
            if order.status is not OrderStatus.PAID:
                raise Conflict("该检查尚未缴费，请先缴费再预约", code="ORDER_UNPAID")
            if not order.needs_booking:
                raise Conflict("该检查无需预约，请直接到检查科室报到", code="NO_BOOKING_NEEDED")
            if order.booked and (order.appointment is None or order.appointment.booking_ref != record.booking_ref):
                raise Conflict("该检查已在其他渠道预约，如需改约请到检查科室登记台办理", code="ALREADY_BOOKED")
            self._replace_exam_order(order.model_copy(update={"booked": True, "appointment": record}))
            return self._exam_order_json(self._exam_order(order_no))

    def cancel_exam_booking(self, order_no: str, booking_ref: str) -> dict[str, Any]:
        """Forget the kiosk's appointment (idempotent: an order without it answers as it is)."""
        with self._lock:
            order = self._exam_order(order_no)
            if order.appointment is not None and order.appointment.booking_ref != booking_ref:
                raise Conflict("该预约不是由本次预约办理，请到检查科室登记台办理", code="NOT_YOUR_BOOKING")
            if order.appointment is None and order.booked:
                raise Conflict("该检查已在其他渠道预约，请到检查科室登记台取消", code="ALREADY_BOOKED")
            self._replace_exam_order(order.model_copy(update={"booked": False, "appointment": None}))
            return self._exam_order_json(self._exam_order(order_no))

    def documents(self, patient_id: str) -> list[dict[str, Any]]:
        """What can be reprinted: exam requisitions and prescriptions (orders with drugs), newest first."""
        with self._lock:
            self._patient(patient_id)
            exams = [o for o in self._data["exam_orders"] if o.patient_id == patient_id]
            orders = [o for o in self._data["orders"] if o.patient_id == patient_id
                      and any(i.kind.value == "drug" for i in o.items)]
        found = [self._document_summary(o) for o in exams] + [self._document_summary(o) for o in orders]
        return sorted(found, key=lambda d: (d["issued_on"], d["doc_no"]), reverse=True)

    def document(self, doc_no: str) -> dict[str, Any]:
        """A requisition or prescription in full, as the HIS keeps it, for a copy to be printed."""
        with self._lock:
            exam = next((o for o in self._data["exam_orders"] if o.order_no == doc_no), None)
            order = None if exam else next((o for o in self._data["orders"] if o.order_no == doc_no
                                            and any(i.kind.value == "drug" for i in o.items)), None)
            if exam is None and order is None:
                raise NotFound("未找到该单据")
            source = exam or order
            if exam is not None and exam.paper_only:
                raise Conflict("该申请单为手写单据，HIS 中没有电子底档，无法补打", code="NOT_ELECTRONIC")
            patient = self._patient(source.patient_id)
            summary = self._document_summary(source)
            departments = {d.code: d for d in self._data["departments"]}
            doctors = {d.code: d for d in self._data["doctors"]}
        body: dict[str, Any] = {**summary, "patient": {
            "patient_id": patient.patient_id, "name": patient.name, "gender": patient.gender.value,
            "birth_date": patient.birth_date.isoformat(), "id_number": patient.id_number,
            "visit_card_no": patient.visit_card_no}}
        if exam is not None:
            performing = departments[exam.department_code]
            body.update({"exam_type": exam.exam_type.value, "exam_name": exam.exam_name, "body_part": exam.body_part,
                         "diagnosis": exam.diagnosis, "preparation": exam.preparation,
                         "performing_department": performing.name, "location": performing.location,
                         "amount": f"{exam.amount:.2f}", "status": exam.status.value, "visit_no": exam.visit_no})
        else:
            body.update({"diagnosis": "", "visit_no": order.visit_no, "status": order.status.value,
                         "items": [{"name": i.name, "unit": i.unit, "quantity": i.quantity,
                                    "unit_price": f"{i.unit_price:.2f}", "amount": f"{i.amount:.2f}",
                                    "usage": DRUG_USAGE.get(i.item_code, "遵医嘱"),
                                    "kind": i.kind.value} for i in order.items if i.kind.value == "drug"],
                         "amount": f"{sum(i.amount for i in order.items if i.kind.value == 'drug'):.2f}"})
            body["department_name"] = departments[order.department_code].name
            body["doctor_name"] = doctors[order.doctor_code].name
        return body

    def reports(self, patient_id: str) -> list[dict[str, Any]]:
        with self._lock:
            self._patient(patient_id)
            found = [r for r in self._data["reports"] if r.patient_id == patient_id]
        found.sort(key=lambda r: (r.ready_at or r.expected_at or dt.datetime.min.replace(tzinfo=dt.timezone.utc),
                                  r.report_no), reverse=True)
        return [self._report_json(r, summary=True) for r in found]

    def report(self, report_no: str) -> dict[str, Any]:
        with self._lock:
            return self._report_json(self._report(report_no), summary=False)

    def report_printed(self, report_no: str) -> dict[str, Any]:
        """Count a print of a ready report (a kiosk's, or the window's)."""
        with self._lock:
            report = self._report(report_no)
            if report.status is not ReportStatus.READY:
                raise Conflict("报告尚未出具，不能打印", code="NOT_READY")
            updated = report.model_copy(update={"print_count": report.print_count + 1})
            self._data = {**self._data, "reports": [updated if r.report_no == report_no else r
                                                    for r in self._data["reports"]]}
            return {"report_no": report_no, "print_count": updated.print_count}

    def _report(self, report_no: str) -> ReportRecord:
        for report in self._data["reports"]:
            if report.report_no == report_no:
                return report
        raise NotFound("未找到该报告")

    def _report_json(self, report: ReportRecord, *, summary: bool) -> dict[str, Any]:
        data = report.model_dump(mode="json", exclude={"items", "findings", "impression"} if summary else set())
        if not summary:
            patient = self._patient(report.patient_id)
            data["patient"] = {"patient_id": patient.patient_id, "name": patient.name, "gender": patient.gender.value,
                               "birth_date": patient.birth_date.isoformat()}
        return data

    def _exam_order(self, order_no: str) -> ExamOrderRecord:
        for order in self._data["exam_orders"]:
            if order.order_no == order_no:
                return order
        raise NotFound("未找到该检查申请")

    def _replace_exam_order(self, updated: ExamOrderRecord) -> None:
        self._data = {**self._data, "exam_orders": [updated if o.order_no == updated.order_no else o
                                                    for o in self._data["exam_orders"]]}

    def _exam_order_json(self, order: ExamOrderRecord) -> dict[str, Any]:
        department = next(d for d in self._data["departments"] if d.code == order.department_code)
        return {**order.model_dump(mode="json", exclude={"patient_id"}), "department_name": department.name,
                "location": department.location}

    def _document_summary(self, source: ExamOrderRecord | OrderRecord) -> dict[str, Any]:
        departments = {d.code: d for d in self._data["departments"]}
        doctors = {d.code: d for d in self._data["doctors"]}
        if isinstance(source, ExamOrderRecord):
            ordering = departments.get(source.ordering_department_code or "")
            doctor = doctors.get(source.doctor_code or "")
            return {"doc_no": source.order_no, "kind": "requisition", "exam_type": source.exam_type.value,
                    "title": f"{EXAM_LABELS[source.exam_type.value]}检查申请单", "subject": source.exam_name,
                    "issued_on": source.ordered_on.isoformat(),
                    "department_name": ordering.name if ordering else departments[source.department_code].name,
                    "doctor_name": doctor.name if doctor else "", "available": not source.paper_only,
                    "unavailable_reason": "该申请单为手写单据，HIS 中没有电子底档" if source.paper_only else ""}
        drugs = [i.name for i in source.items if i.kind.value == "drug"]
        return {"doc_no": source.order_no, "kind": "prescription", "exam_type": None, "title": "处方笺",
                "subject": "、".join(drugs[:2]) + ("等" if len(drugs) > 2 else ""),
                "issued_on": source.visit_date.isoformat(),
                "department_name": departments[source.department_code].name,
                "doctor_name": doctors[source.doctor_code].name, "available": True, "unavailable_reason": ""}

    # -- registrations and check-in ---------------------------------------------------------------------
    def registrations(self, patient_id: str, on: dt.date | None = None) -> list[dict[str, Any]]:
        """The patient's registrations of ``on`` (default: today), morning first, with check-in times;
        released holds left out."""
        on = on or self.today
        with self._lock:
            self._expire_holds()
            self._patient(patient_id)
            # A released hold never became a registration: nothing to show for check-in.
            found = [r for r in self._data["registrations"] if r.patient_id == patient_id and r.date == on
                     and r.status is not RegistrationStatus.RELEASED]
            checked = {c.reference: c for c in self._data["check_ins"] if c.kind is CheckInKind.REGISTRATION}
            departments = {d.code: d for d in self._data["departments"]}
            doctors = {d.code: d for d in self._data["doctors"]}
        found.sort(key=lambda r: (r.half_day != HalfDay.AM, r.window_start or dt.time(), r.registration_no))
        unknown = DepartmentRecord(code="x", name="—", location="—")
        return [{
            **r.model_dump(mode="json", exclude={"fee", "source", *_REGISTRATION_PRIVATE}),
            "department_name": departments.get(r.department_code, unknown).name,
            "location": departments.get(r.department_code, unknown).location,
            "doctor_name": doctors[r.doctor_code].name if r.doctor_code in doctors else "",
            "checked_in_at": checked[r.registration_no].checked_in_at.isoformat()
            if r.registration_no in checked else None,
        } for r in found]

    def check_in(self, *, idempotency_key: str, kind: CheckInKind, reference: str, patient_id: str,
                 department_code: str, queue_no: str, checked_in_at: dt.datetime,
                 device_id: str | None = None) -> tuple[CheckInRecord, bool]:
        """Record a check-in; ``(check_in, replayed)``. One check-in per registration or exam order."""
        with self._lock:
            self._expire_holds()
            earlier = next((c for c in self._data["check_ins"]
                            if c.idempotency_key == idempotency_key
                            or (c.kind == kind and c.reference == reference)), None)
            if earlier is not None:
                if earlier.patient_id != patient_id or earlier.reference != reference or earlier.kind != kind:
                    raise Conflict("该幂等键已用于另一次报到，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
                return earlier, True
            self._patient(patient_id)
            if kind is CheckInKind.REGISTRATION:
                self._check_registration(reference, patient_id)
            else:
                order = next((e for e in self._data["exam_orders"] if e.order_no == reference), None)
                if order is None or order.patient_id != patient_id:
                    raise NotFound("未找到该检查预约")
                if not order.booked:
                    raise Invalid("该检查尚未预约，请先预约", code="NOT_BOOKED")
            if reference.endswith(REFUSED_VISIT_SUFFIX):
                raise Invalid(REFUSED_CHECK_IN_MESSAGE, code="CHECK_IN_REFUSED")
            record = CheckInRecord(idempotency_key=idempotency_key, kind=kind, reference=reference,
                                   patient_id=patient_id, department_code=department_code, queue_no=queue_no,
                                   checked_in_at=checked_in_at, device_id=device_id)
            self._data = {**self._data, "check_ins": [*self._data["check_ins"], record]}
            return record, False

    def _check_registration(self, registration_no: str, patient_id: str) -> RegistrationRecord:
        registration = next((r for r in self._data["registrations"] if r.registration_no == registration_no), None)
        if registration is None or registration.patient_id != patient_id:
            raise NotFound("未找到该挂号记录")
        if registration.status is RegistrationStatus.CANCELLED:
            raise Conflict("该号已退号，不能报到", code="REGISTRATION_CANCELLED")
        if registration.status is RegistrationStatus.RELEASED:
            raise Conflict("该号未缴费已释放，不能报到", code="REGISTRATION_RELEASED")
        if registration.status in (RegistrationStatus.UNPAID, RegistrationStatus.BOOKED,
                                   RegistrationStatus.PENDING_PAYMENT):
            raise Invalid("该预约尚未取号缴费，请先取号", code="REGISTRATION_UNPAID")
        if registration.date != self.today:
            raise Invalid(f"该号是{registration.date:%m月%d日}的号，只能在就诊当天报到", code="NOT_TODAY")
        return registration

    # -- holding, confirming, releasing and cancelling registrations ------------------------------------
    def registration(self, registration_no: str) -> RegistrationRecord:
        with self._lock:
            self._expire_holds()
            return self._registration(registration_no)

    def registration_json(self, registration: RegistrationRecord) -> dict[str, Any]:
        """A registration as the contract answers it: its record without our keys, with names and check-in."""
        with self._lock:
            department = next((d for d in self._data["departments"] if d.code == registration.department_code), None)
            doctor = next((d for d in self._data["doctors"] if d.code == registration.doctor_code), None)
            check_in = next((c for c in self._data["check_ins"] if c.kind is CheckInKind.REGISTRATION
                             and c.reference == registration.registration_no), None)
        return {**registration.model_dump(mode="json", exclude=_REGISTRATION_PRIVATE),
                "department_name": department.name if department else "—",
                "location": department.location if department else "—",
                "doctor_name": doctor.name if doctor else "",
                "checked_in_at": check_in.checked_in_at.isoformat() if check_in else None}

    def hold_registration(self, *, idempotency_key: str, patient_id: str, schedule_id: str,
                          source: str = "kiosk") -> tuple[RegistrationRecord, bool]:
        """Hold the schedule's next free number until ``hold_until`` with an unpaid fee order on a new
        visit; ``(registration, replayed)``. The schedule's ``remaining`` drops in the same change."""
        with self._lock:
            self._expire_holds()
            earlier = next((r for r in self._data["registrations"] if r.idempotency_key == idempotency_key), None)
            if earlier is not None:
                if (earlier.patient_id, earlier.schedule_id, earlier.source) != (patient_id, schedule_id, source):
                    raise Conflict("该幂等键已用于另一次挂号，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
                return earlier, True
            self._patient(patient_id)
            schedule = next((s for s in self._data["schedules"] if s.schedule_id == schedule_id), None)
            if schedule is None:
                raise NotFound("未找到该号源，请刷新排班")
            if self._local_now() >= half_day_end(schedule.date, schedule.half_day):
                raise Conflict("该时段门诊已结束，请选择其他日期或时段", code="half_day_over")
            if any(r.patient_id == patient_id and r.status in HOLDING_STATUSES
                   and (r.doctor_code, r.date, r.half_day) == (schedule.doctor_code, schedule.date, schedule.half_day)
                   for r in self._data["registrations"]):
                raise Conflict("您已挂过该医生同一时段的号，请勿重复挂号", code="duplicate")
            queue_no = self._next_queue_no(schedule)
            if queue_no is None:
                raise Conflict("该时段号源已满，请选择其他医生或时段", code="slot_full")
            window = registration_window(schedule.half_day.value, queue_no) if schedule.windowed else (None, None)
            registration_no = self._next_registration_no()
            order = self._fee_order(patient_id, schedule.date, schedule.department_code, schedule.doctor_code,
                                    schedule.fee)
            registration = RegistrationRecord(
                registration_no=registration_no, patient_id=patient_id, date=schedule.date,
                half_day=schedule.half_day, department_code=schedule.department_code,
                doctor_code=schedule.doctor_code, level=schedule.level, queue_no=queue_no, window_start=window[0],
                window_end=window[1], fee=schedule.fee, status=RegistrationStatus.PENDING_PAYMENT, source=source,
                schedule_id=schedule.schedule_id, visit_no=order.visit_no, fee_order_no=order.order_no,
                hold_until=self._hold_until(), idempotency_key=idempotency_key)
            self._data = {**self._data, "orders": [*self._data["orders"], order],
                          "registrations": [*self._data["registrations"], registration],
                          "schedules": self._with_remaining(schedule.schedule_id, -1)}
            return registration, False

    def release_registration(self, registration_no: str, *, idempotency_key: str) -> tuple[RegistrationRecord, bool]:
        """Give a held number back (its fee order voided); ``(registration, replayed)``.

        A hold already released (by a kiosk or by lapsing) answers as it is, whatever the key; a
        picked-up appointment goes back to ``booked`` and keeps its number.
        """
        with self._lock:
            self._expire_holds()
            other = next((r for r in self._data["registrations"]
                          if r.release_idempotency_key == idempotency_key), None)
            if other is not None and other.registration_no != registration_no:
                raise Conflict("该幂等键已用于另一次释放，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
            registration = self._registration(registration_no)
            if other is not None or registration.status in (RegistrationStatus.RELEASED, RegistrationStatus.BOOKED):
                return registration, True
            if registration.status is RegistrationStatus.REGISTERED:
                raise Conflict("该号已缴费挂号成功，不能释放；如需退号请办理退号", code="already_registered")
            if registration.status is not RegistrationStatus.PENDING_PAYMENT:
                raise Conflict("该号不是待缴费的号源，不能释放", code="not_held")
            return self._release(registration, idempotency_key), False

    def cancel_registration(self, registration_no: str, *, idempotency_key: str,
                            reason: str) -> tuple[RegistrationRecord, bool]:
        """Cancel (退号) a paid registration before its half-day starts; ``(registration, replayed)``.

        The number goes back to the schedule. Its payment stays posted: the caller cancels it (the
        registration's ``receipt_no``) and refunds. A cancelled one answers as it is, whatever the key.
        """
        with self._lock:
            self._expire_holds()
            other = next((r for r in self._data["registrations"]
                          if r.cancel_idempotency_key == idempotency_key), None)
            if other is not None and (other.registration_no != registration_no or other.cancel_reason != reason):
                raise Conflict("该幂等键已用于另一次退号，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
            registration = self._registration(registration_no)
            if registration.status is RegistrationStatus.CANCELLED:
                return registration, True
            if registration.status is not RegistrationStatus.REGISTERED:
                raise Conflict("该号尚未缴费挂号，不能退号", code="not_registered")
            if registration.swapping:
                raise Conflict("该号正在办理换号，请完成或撤销换号后再退号", code="swap_in_progress")
            if any(c.kind is CheckInKind.REGISTRATION and c.reference == registration_no
                   for c in self._data["check_ins"]):
                raise Conflict("该号已报到，不能退号，请到挂号窗口办理", code="checked_in")
            if self._local_now() >= half_day_start(registration.date, registration.half_day):
                raise Conflict("该号的就诊时段已开始，不能退号，请到挂号窗口办理", code="half_day_started")
            if registration_no.endswith(REFUSED_VISIT_SUFFIX):
                raise Conflict(REFUSED_CANCEL_MESSAGE, code="cancel_refused")
            cancelled = registration.model_copy(update={
                "status": RegistrationStatus.CANCELLED, "cancelled_at": self.now(), "cancel_reason": reason,
                "cancel_idempotency_key": idempotency_key})
            self._data = {**self._data, "registrations": self._with_registration(cancelled),
                          "schedules": self._with_remaining(registration.schedule_id, +1)}
            return cancelled, False

    def appointments(self, patient_id: str) -> list[RegistrationRecord]:
        """The patient's appointments to pick up (``booked``), of today and later, earliest first."""
        with self._lock:
            self._expire_holds()
            self._patient(patient_id)
            found = [r for r in self._data["registrations"] if r.patient_id == patient_id
                     and r.status is RegistrationStatus.BOOKED and r.date >= self.today]
        return sorted(found, key=lambda r: (r.date, r.half_day != HalfDay.AM, r.queue_no, r.registration_no))

    def pick_up_appointment(self, registration_no: str, *, idempotency_key: str) -> tuple[RegistrationRecord, bool]:
        """Pick up (取号) an appointment; ``(registration, replayed)``. Paid in the app: registered at
        once. Unpaid: its fee order is created and it waits, ``pending_payment``, like a hold."""
        with self._lock:
            self._expire_holds()
            other = next((r for r in self._data["registrations"]
                          if r.pick_up_idempotency_key == idempotency_key), None)
            if other is not None and other.registration_no != registration_no:
                raise Conflict("该幂等键已用于另一次取号，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
            registration = self._registration(registration_no)
            if other is not None:
                return registration, True
            if registration.status is RegistrationStatus.PENDING_PAYMENT:
                raise Conflict("该预约正在取号缴费中，请完成缴费或稍后再试", code="pick_up_in_progress")
            if registration.status is RegistrationStatus.REGISTERED:
                raise Conflict("该预约已取号，请勿重复取号", code="already_picked_up")
            if registration.status is not RegistrationStatus.BOOKED:
                raise Conflict("该挂号不是待取号的预约", code="not_booked")
            if self._local_now() >= half_day_end(registration.date, registration.half_day):
                raise Conflict("该预约的就诊时段已结束，不能取号", code="half_day_over")
            if registration.paid_in_app:
                picked = registration.model_copy(update={"status": RegistrationStatus.REGISTERED,
                                                         "pick_up_idempotency_key": idempotency_key})
                self._data = {**self._data, "registrations": self._with_registration(picked)}
                return picked, False
            order = self._fee_order(registration.patient_id, registration.date, registration.department_code,
                                    registration.doctor_code, registration.fee)
            picked = registration.model_copy(update={
                "status": RegistrationStatus.PENDING_PAYMENT, "visit_no": order.visit_no,
                "fee_order_no": order.order_no, "hold_until": self._hold_until(),
                "pick_up_idempotency_key": idempotency_key})
            self._data = {**self._data, "orders": [*self._data["orders"], order],
                          "registrations": self._with_registration(picked)}
            return picked, False

    # -- swapping a registration paid in the app for an insurance one (换号) -----------------------------
    def swappable(self, patient_id: str) -> list[RegistrationRecord]:
        """The patient's registrations paid in the app as self-pay, not swapped, not checked in, whose
        half-day has not ended (a swap in progress included), earliest first."""
        with self._lock:
            self._expire_holds()
            self._patient(patient_id)
            now, today = self._local_now(), self.today
            found = [r for r in self._data["registrations"] if r.patient_id == patient_id
                     and r.status is RegistrationStatus.REGISTERED and r.paid_in_app and r.swapped_at is None
                     and r.date >= today and now < half_day_end(r.date, r.half_day)
                     and not self._checked_in(r.registration_no)]
        return sorted(found, key=lambda r: (r.date, r.half_day != HalfDay.AM, r.queue_no, r.registration_no))

    def start_swap(self, registration_no: str, *, idempotency_key: str) -> tuple[RegistrationRecord, bool]:
        """Start a swap: the registration keeps its number; its fee, as an unpaid order on a new visit,
        waits until ``swap_hold_until`` for a posting; ``(registration, replayed)``.

        The same key answers the registration as it is now (swapping, swapped, or given up)."""
        with self._lock:
            self._expire_holds()
            other = next((r for r in self._data["registrations"] if r.swap_idempotency_key == idempotency_key), None)
            if other is not None and other.registration_no != registration_no:
                raise Conflict("该幂等键已用于另一次换号，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
            registration = self._registration(registration_no)
            if other is not None:
                return registration, True
            if (registration.status is not RegistrationStatus.REGISTERED or not registration.paid_in_app
                    or registration.swapped_at is not None):
                raise Conflict("该号不是在医院APP自费缴费的有效挂号，或已换过号，不能换号", code="not_swappable")
            if self._checked_in(registration_no):
                raise Conflict("该号已报到，不能换号，请到挂号窗口办理", code="checked_in")
            if self._local_now() >= half_day_end(registration.date, registration.half_day):
                raise Conflict("该号的就诊时段已结束，不能换号", code="half_day_over")
            if registration.swapping:
                raise Conflict("该号正在办理换号，请完成缴费或稍后再试", code="swap_in_progress")
            order = self._fee_order(registration.patient_id, registration.date, registration.department_code,
                                    registration.doctor_code, registration.fee)
            swapping = registration.model_copy(update={
                "swap_visit_no": order.visit_no, "swap_fee_order_no": order.order_no,
                "swap_hold_until": self._hold_until(), "swap_idempotency_key": idempotency_key})
            self._data = {**self._data, "orders": [*self._data["orders"], order],
                          "registrations": self._with_registration(swapping)}
            return swapping, False

    def release_swap(self, registration_no: str, *, idempotency_key: str) -> tuple[RegistrationRecord, bool]:
        """Give up a swap not posted yet: its fee order voided, the registration as it was;
        ``(registration, replayed)``. Without a swap waiting it answers as it is, whatever the key."""
        with self._lock:
            self._expire_holds()
            other = next((r for r in self._data["registrations"]
                          if r.swap_release_idempotency_key == idempotency_key), None)
            if other is not None and other.registration_no != registration_no:
                raise Conflict("该幂等键已用于另一次撤销换号，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
            registration = self._registration(registration_no)
            if other is not None:
                return registration, True
            if registration.swapping:
                return self._give_up_swap(registration, idempotency_key), False
            if registration.swapped_at is not None:
                raise Conflict("该号已换为医保挂号，不能撤销换号；如需退号请办理退号", code="already_swapped")
            return registration, True

    def app_refunded(self, registration_no: str, *, idempotency_key: str,
                     refund_no: str) -> tuple[RegistrationRecord, bool]:
        """Record that the app payment of a swapped registration was refunded; ``(registration, replayed)``."""
        with self._lock:
            other = next((r for r in self._data["registrations"]
                          if r.app_refund_idempotency_key == idempotency_key), None)
            if other is not None and other.registration_no != registration_no:
                raise Conflict("该幂等键已用于另一笔APP退款登记，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
            registration = self._registration(registration_no)
            if registration.app_refund_no is not None:
                if registration.app_refund_no != refund_no:
                    raise Conflict("该号的APP退款已登记为另一笔退款", code="app_refund_recorded")
                return registration, True
            if not registration.app_refund_due:
                raise Conflict("该号没有待退的APP缴费", code="no_app_refund_due")
            refunded = registration.model_copy(update={"app_refund_due": False, "app_refund_no": refund_no,
                                                       "app_refund_idempotency_key": idempotency_key})
            self._data = {**self._data, "registrations": self._with_registration(refunded)}
            return refunded, False

    def _swapped(self, registration: RegistrationRecord, receipt_no: str) -> RegistrationRecord:
        """The registration paid by the swap's posting: its fee order is now the swap's (a cancel cancels
        that posting), and the app payment is owed back."""
        return registration.model_copy(update={
            "receipt_no": receipt_no, "visit_no": registration.swap_visit_no,
            "fee_order_no": registration.swap_fee_order_no, "swap_hold_until": None, "swapped_at": self.now(),
            "app_refund_due": True})

    def _give_up_swap(self, registration: RegistrationRecord, idempotency_key: str | None) -> RegistrationRecord:
        """Void a waiting swap's fee order; the registration reads as before it. Caller holds the lock."""
        assert registration.swap_fee_order_no is not None
        voided = self._with_order_status({registration.swap_fee_order_no}, OrderStatus.VOIDED)
        given_up = registration.model_copy(update={
            "swap_visit_no": None, "swap_fee_order_no": None, "swap_hold_until": None,
            "swap_release_idempotency_key": idempotency_key or registration.swap_release_idempotency_key,
            "given_up_swap_orders": [*registration.given_up_swap_orders, registration.swap_fee_order_no]})
        self._data = {**self._data, **voided, "registrations": self._with_registration(given_up)}
        return given_up

    def _checked_in(self, registration_no: str) -> bool:
        return any(c.kind is CheckInKind.REGISTRATION and c.reference == registration_no
                   for c in self._data["check_ins"])

    def _registration(self, registration_no: str) -> RegistrationRecord:
        for registration in self._data["registrations"]:
            if registration.registration_no == registration_no:
                return registration
        raise NotFound("未找到该挂号记录")

    def _hold_until(self) -> dt.datetime:
        return self.now() + dt.timedelta(minutes=self.hold_minutes)

    def _expire_holds(self) -> None:
        """Release every hold past its ``hold_until``: lazily, whenever registrations, schedules or
        orders are read or written. Caller holds the lock."""
        now = self.now()
        for registration in [r for r in self._data["registrations"]
                             if r.status is RegistrationStatus.PENDING_PAYMENT and _aware(r.hold_until) <= now]:
            self._release(registration, None)
        for registration in [r for r in self._data["registrations"]
                             if r.swapping and _aware(r.swap_hold_until) <= now]:
            self._give_up_swap(registration, None)

    def _release(self, registration: RegistrationRecord, idempotency_key: str | None) -> RegistrationRecord:
        """Void the hold's fee order; a kiosk hold gives its number back, a picked-up appointment is
        ``booked`` again (it keeps its number). Caller holds the lock."""
        voided = self._with_order_status({registration.fee_order_no} if registration.fee_order_no else set(),
                                         OrderStatus.VOIDED)
        if registration.source in ("app", "phone"):
            released = registration.model_copy(update={
                "status": RegistrationStatus.BOOKED, "visit_no": None, "fee_order_no": None, "hold_until": None,
                "pick_up_idempotency_key": None, "release_idempotency_key": idempotency_key})
            self._data = {**self._data, **voided, "registrations": self._with_registration(released)}
            return released
        released = registration.model_copy(update={"status": RegistrationStatus.RELEASED,
                                                   "release_idempotency_key": idempotency_key})
        self._data = {**self._data, **voided, "registrations": self._with_registration(released),
                      "schedules": self._with_remaining(registration.schedule_id, +1)}
        return released

    def _with_registration(self, updated: RegistrationRecord) -> list[Record]:
        return [updated if r.registration_no == updated.registration_no else r for r in self._data["registrations"]]

    def _with_remaining(self, schedule_id: str | None, change: int) -> list[Record]:
        """The schedules with ``remaining`` moved by ``change`` on one of them (kept within 0…total)."""
        return [s.model_copy(update={"remaining": min(s.total, max(0, s.remaining + change))})
                if s.schedule_id == schedule_id else s for s in self._data["schedules"]]

    def _next_queue_no(self, schedule: ScheduleRecord) -> int | None:
        """The schedule's next free number, or None when none is left.

        Numbers given out that the HIS holds no record of (``total - remaining`` minus the records
        holding one) are taken to be the lowest free ones; the next is the first after them, so a
        number given back (released, cancelled) is given out again.
        """
        if schedule.remaining <= 0:
            return None
        holding = {r.queue_no for r in self._data["registrations"] if r.status in HOLDING_STATUSES
                   and (r.doctor_code, r.date, r.half_day) == (schedule.doctor_code, schedule.date, schedule.half_day)}
        given_elsewhere = max(0, schedule.total - schedule.remaining - len(holding))
        free = (number for number in range(1, schedule.total + 1) if number not in holding)
        return next(itertools.islice(free, given_elsewhere, None), None)

    def _next_registration_no(self) -> str:
        taken = {r.registration_no for r in self._data["registrations"]}
        number = len(taken) + 1
        while (registration_no := f"GH{self.today:%Y%m%d}{number:04d}") in taken:
            number += 1
        return registration_no

    def _fee_order(self, patient_id: str, on: dt.date, department_code: str, doctor_code: str,
                   fee: Decimal) -> OrderRecord:
        """A registration fee's unpaid order on a new visit of ``on``; its items add up to ``fee``."""
        visits = {o.visit_no for o in self._data["orders"]} | {e.visit_no for e in self._data["exam_orders"]}
        order_nos = {o.order_no for o in self._data["orders"]} | {e.order_no for e in self._data["exam_orders"]}
        visit_no = next(v for n in itertools.count(len(visits) + 1) if (v := f"MZ{on:%Y%m%d}{n:04d}") not in visits)
        order_no = next(o for n in itertools.count(len(order_nos) + 1)
                        if (o := f"CF{on:%Y%m%d}{n:05d}") not in order_nos)
        return OrderRecord(order_no=order_no, patient_id=patient_id, visit_no=visit_no, visit_date=on,
                           department_code=department_code, doctor_code=doctor_code, status=OrderStatus.UNPAID,
                           items=registration_fee_items(fee))  # type: ignore[arg-type]

    # -- payments ------------------------------------------------------------------------------------
    def post_payment(self, *, idempotency_key: str, patient_id: str, visit_no: str, order_nos: list[str],
                     total: Decimal, fund: Decimal, account: Decimal, cash: Decimal,
                     insurance_settlement_id: str | None, channel: PaymentChannel, trade_no: str | None,
                     paid_at: dt.datetime) -> tuple[PaymentRecord, bool]:
        """Post a payment and mark its orders paid; ``(payment, replayed)``. Checked whole, then applied."""
        posting = {"patient_id": patient_id, "visit_no": visit_no, "total": total, "fund": fund, "account": account,
                   "cash": cash, "insurance_settlement_id": insurance_settlement_id, "channel": channel,
                   "trade_no": trade_no, "paid_at": paid_at}
        with self._lock:
            earlier = next((p for p in self._data["payments"] if p.idempotency_key == idempotency_key), None)
            if earlier is not None:
                same = sorted(earlier.order_nos) == sorted(order_nos) and all(
                    getattr(earlier, name) == posting[name] for name in _POSTING_FIELDS)
                if not same:
                    raise Conflict("该幂等键已用于另一笔内容不同的缴费，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
                return earlier, True
            self._expire_holds()
            problem = payment_problem(order_nos=order_nos, total=total, fund=fund, account=account, cash=cash,
                                      channel=channel, trade_no=trade_no,
                                      insurance_settlement_id=insurance_settlement_id)
            if problem:
                raise Invalid(problem)
            orders = {o.order_no: o for o in self._data["orders"]}
            unknown = [n for n in order_nos if n not in orders]
            if unknown:
                raise Invalid(f"未找到处方单 {'、'.join(unknown)}，请刷新待缴费项目", code="ORDER_NOT_FOUND")
            chosen = [orders[n] for n in order_nos]
            foreign = [o.order_no for o in chosen if o.patient_id != patient_id or o.visit_no != visit_no]
            if foreign:
                raise Invalid(f"处方单 {'、'.join(foreign)} 不属于该患者的本次就诊", code="ORDER_MISMATCH")
            if any(o.visit_no.endswith(REFUSED_VISIT_SUFFIX) for o in chosen):
                raise Invalid(REFUSED_VISIT_MESSAGE, code="ORDER_REFUSED")
            paid = [o.order_no for o in chosen if o.status is OrderStatus.PAID]
            if paid:
                raise Conflict(f"处方单 {'、'.join(paid)} 已缴费，请勿重复缴费", code="ORDER_PAID")
            voided = {o.order_no for o in chosen if o.status is OrderStatus.VOIDED}
            if voided & {n for r in self._data["registrations"] for n in r.given_up_swap_orders}:
                raise Conflict(SWAP_RELEASED_MESSAGE, code="SWAP_RELEASED")
            if voided:
                raise Conflict(RELEASED_POSTING_MESSAGE, code="REGISTRATION_RELEASED")
            items = [PaidItemRecord(order_no=o.order_no, **i.model_dump()) for o in chosen for i in o.items]
            due = sum((i.amount for i in items), Decimal("0.00"))  # type: ignore[misc]
            if total != due:
                raise Invalid(f"缴费金额与应收金额不符：应收{due:.2f}元，提交{total:.2f}元，请到窗口核对",
                              code="AMOUNT_MISMATCH")
            now = _now()
            payment = PaymentRecord(receipt_no=self._next_receipt_no(now), idempotency_key=idempotency_key,
                                    order_nos=order_nos, posted_at=now, items=items, **posting)
            # Paying a held number's fee confirms the registration, and paying a swap's fee completes
            # the swap (the app payment is then owed back), in the same change.
            registrations = [r.model_copy(update={"status": RegistrationStatus.REGISTERED,
                                                  "receipt_no": payment.receipt_no})
                             if r.status is RegistrationStatus.PENDING_PAYMENT and r.fee_order_no in order_nos
                             else self._swapped(r, payment.receipt_no)
                             if r.swapping and r.swap_fee_order_no in order_nos else r
                             for r in self._data["registrations"]]
            self._data = {**self._data, "payments": [*self._data["payments"], payment],
                          **self._with_order_status(set(order_nos), OrderStatus.PAID), "registrations": registrations}
            return payment, False

    def cancel_payment(self, receipt_no: str, *, idempotency_key: str, reason: str) -> tuple[PaymentRecord, bool]:
        """Cancel a posted payment, its orders unpaid again; ``(payment, replayed)``.

        Cancelling a payment that is already cancelled answers with it as it is, whatever the key.
        """
        with self._lock:
            payment = self.payment(receipt_no)
            other = next((p for p in self._data["payments"] if p.cancel_idempotency_key == idempotency_key), None)
            if other is not None and (other.receipt_no != receipt_no or other.cancel_reason != reason):
                raise Conflict("该幂等键已用于另一笔内容不同的撤销，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
            if payment.status is PaymentStatus.CANCELLED:
                return payment, True
            booked = [e.order_no for e in self._data["exam_orders"] if e.order_no in payment.order_nos and e.booked]
            if booked:
                raise Conflict("该缴费包含已预约的检查，请先取消检查预约再退费", code="EXAM_BOOKED")
            fees = {r.fee_order_no: r for r in self._data["registrations"] if r.fee_order_no in payment.order_nos}
            if any(r.status is RegistrationStatus.REGISTERED for r in fees.values()):
                raise Conflict("该缴费为挂号费，挂号仍有效，请先退号再撤销缴费", code="REGISTRATION_ACTIVE")
            cancelled = payment.model_copy(update={"status": PaymentStatus.CANCELLED, "cancelled_at": _now(),
                                                   "cancel_reason": reason,
                                                   "cancel_idempotency_key": idempotency_key})
            payments = [cancelled if p.receipt_no == receipt_no else p for p in self._data["payments"]]
            # A cancelled registration's fee is not owed again: its order is voided, not unpaid.
            self._data = {**self._data, "payments": payments,
                          **self._with_order_status(set(payment.order_nos) - set(fees), OrderStatus.UNPAID)}
            self._data.update(self._with_order_status(set(fees), OrderStatus.VOIDED))
            return cancelled, False

    def payments(self, patient_id: str | None = None, since: dt.datetime | None = None,
                 until: dt.datetime | None = None) -> list[PaymentRecord]:
        """Payments posted in ``[since, until)``, newest first; cancelled ones included, with their status."""
        with self._lock:
            found = [p for p in self._data["payments"]
                     if (patient_id is None or p.patient_id == patient_id)
                     and (since is None or p.posted_at >= since) and (until is None or p.posted_at < until)]
        return sorted(found, key=lambda p: (p.posted_at, p.receipt_no), reverse=True)

    def payment(self, receipt_no: str) -> PaymentRecord:
        with self._lock:
            for payment in self._data["payments"]:
                if payment.receipt_no == receipt_no:
                    return payment
        raise NotFound("未找到该缴费记录")

    def _next_receipt_no(self, now: dt.datetime) -> str:
        taken = {p.receipt_no for p in self._data["payments"]}
        number = len(taken) + 1
        while (receipt_no := f"SF{now:%Y%m%d}{number:05d}") in taken:
            number += 1
        return receipt_no

    def _with_order_status(self, order_nos: set[str], status: OrderStatus) -> Data:
        """The orders (and the exam orders they charge for) with ``status``: the collections to swap in."""
        return {
            "orders": [o.model_copy(update={"status": status}) if o.order_no in order_nos else o
                       for o in self._data["orders"]],
            "exam_orders": [e.model_copy(update={"status": status}) if e.order_no in order_nos else e
                            for e in self._data["exam_orders"]],
        }

    def _patient(self, patient_id: str) -> PatientRecord:
        for patient in self._data["patients"]:
            if patient.patient_id == patient_id:
                return patient
        raise NotFound("未找到患者档案")

    def _department_and_children(self, code: str | None) -> set[str] | None:
        if code is None:
            return None
        return {code} | {d.code for d in self._data["departments"] if d.parent_code == code}


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone().replace(microsecond=0)


def _aware(moment: dt.datetime | None) -> dt.datetime:
    """A stored time with its offset; one loaded without an offset is the simulator's local time."""
    assert moment is not None
    return moment if moment.tzinfo else moment.astimezone()


def _next_patient_number(patients: Iterable[Record]) -> int:
    numbers = [int(m.group(1)) for p in patients if (m := _PATIENT_NUMBER.match(getattr(p, "patient_id", "")))]
    return max(numbers, default=0) + 1


def _validated(collection: str, items: list[Any]) -> list[Record]:
    model = RECORD_TYPES[collection]
    records = []
    for index, item in enumerate(items):
        try:
            records.append(model.model_validate(item))
        except ValidationError as exc:
            raise ValueError(f"item {index}: {describe_validation_error(exc)}") from None
    return records


def _unique(records: list[Record], key: Callable[[Any], Any], what: str) -> None:
    seen: set[Any] = set()
    for record in records:
        value = key(record)
        if value is None:
            continue
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


def _check_integrity(data: Data) -> None:
    """Unique keys and references that resolve; raises ValueError naming the first problem."""
    patients: list[PatientRecord] = data["patients"]  # type: ignore[assignment]
    departments: list[DepartmentRecord] = data["departments"]  # type: ignore[assignment]
    doctors: list[DoctorRecord] = data["doctors"]  # type: ignore[assignment]
    schedules: list[ScheduleRecord] = data["schedules"]  # type: ignore[assignment]
    orders: list[OrderRecord] = data["orders"]  # type: ignore[assignment]
    exam_orders: list[ExamOrderRecord] = data["exam_orders"]  # type: ignore[assignment]
    admissions: list[AdmissionRecord] = data["admissions"]  # type: ignore[assignment]
    payments: list[PaymentRecord] = data["payments"]  # type: ignore[assignment]
    reports: list[ReportRecord] = data["reports"]  # type: ignore[assignment]

    _unique(patients, lambda p: p.patient_id, "patient_id")
    _unique(patients, lambda p: p.id_number, "id_number")
    _unique(patients, lambda p: p.visit_card_no, "visit_card_no")
    _unique(patients, lambda p: p.insurance_card_no, "insurance_card_no")
    _unique(departments, lambda d: d.code, "department code")
    _unique(doctors, lambda d: d.code, "doctor code")
    _unique(schedules, lambda s: s.schedule_id, "schedule_id")
    _unique(schedules, lambda s: (s.doctor_code, s.date.isoformat(), s.half_day.value), "doctor/date/half_day slot")
    _unique(orders, lambda o: o.order_no, "order_no")
    _unique(exam_orders, lambda o: o.order_no, "exam order_no")
    _unique(admissions, lambda a: a.admission_no, "admission_no")
    _unique(admissions, lambda a: a.patient_id if a.discharged_on is None else None, "current admission of patient")
    registrations: list[RegistrationRecord] = data["registrations"]  # type: ignore[assignment]
    check_ins: list[CheckInRecord] = data["check_ins"]  # type: ignore[assignment]
    _unique(registrations, lambda r: r.registration_no, "registration_no")
    _unique(registrations, lambda r: (r.doctor_code, r.date.isoformat(), r.half_day.value, r.queue_no)
            if r.status in HOLDING_STATUSES else None, "doctor/date/half_day queue_no")
    _unique(registrations, lambda r: r.idempotency_key, "registration idempotency_key")
    _unique(registrations, lambda r: r.swap_idempotency_key, "registration swap_idempotency_key")
    _unique(registrations, lambda r: r.app_refund_idempotency_key, "registration app_refund_idempotency_key")
    _unique(check_ins, lambda c: c.idempotency_key, "check-in idempotency_key")
    _unique(check_ins, lambda c: (c.kind.value, c.reference), "check-in of one reference")
    _unique(payments, lambda p: p.receipt_no, "receipt_no")
    _unique(payments, lambda p: p.idempotency_key, "payment idempotency_key")
    _unique(payments, lambda p: p.cancel_idempotency_key, "payment cancel_idempotency_key")
    _unique(reports, lambda r: r.report_no, "report_no")

    patient_ids = {p.patient_id for p in patients}
    groups = {d.code for d in departments if d.parent_code is None}
    department_codes = {d.code for d in departments}
    doctor_codes = {d.code for d in doctors}

    def refer(value: str, known: set[str], what: str, owner: str) -> None:
        if value not in known:
            raise ValueError(f"{owner} names {what} {value!r}, which does not exist")

    for d in departments:
        if d.parent_code is not None:
            refer(d.parent_code, groups, "top-level department", f"department {d.code}")
    for d in doctors:
        refer(d.department_code, department_codes - groups, "clinical department", f"doctor {d.code}")
    for s in schedules:
        refer(s.department_code, department_codes, "department", f"schedule {s.schedule_id}")
        refer(s.doctor_code, doctor_codes, "doctor", f"schedule {s.schedule_id}")
    visits: dict[str, tuple[str, dt.date, str, str]] = {}
    for o in orders:
        refer(o.patient_id, patient_ids, "patient", f"order {o.order_no}")
        refer(o.department_code, department_codes, "department", f"order {o.order_no}")
        refer(o.doctor_code, doctor_codes, "doctor", f"order {o.order_no}")
        shape = (o.patient_id, o.visit_date, o.department_code, o.doctor_code)
        if visits.setdefault(o.visit_no, shape) != shape:
            raise ValueError(f"order {o.order_no}: visit {o.visit_no} already has another patient, date, "
                             "department or doctor")
    for e in exam_orders:
        refer(e.patient_id, patient_ids, "patient", f"exam order {e.order_no}")
        refer(e.department_code, department_codes, "department", f"exam order {e.order_no}")
        if e.ordering_department_code is not None:
            refer(e.ordering_department_code, department_codes, "department", f"exam order {e.order_no}")
        if e.doctor_code is not None:
            refer(e.doctor_code, doctor_codes, "doctor", f"exam order {e.order_no}")
    for r in reports:
        refer(r.patient_id, patient_ids, "patient", f"report {r.report_no}")
    for a in admissions:
        refer(a.patient_id, patient_ids, "patient", f"admission {a.admission_no}")
    # Registrations name their patient; a department or doctor renamed by a later load keeps them
    # (HIS keeps history), so those two are not checked.
    for r in registrations:
        refer(r.patient_id, patient_ids, "patient", f"registration {r.registration_no}")
    for c in check_ins:
        refer(c.patient_id, patient_ids, "patient", f"check-in {c.idempotency_key}")
    by_order_no = {o.order_no: o for o in orders}
    posted_orders: set[str] = set()
    for p in payments:
        for order_no in p.order_nos:
            refer(order_no, set(by_order_no), "order", f"payment {p.receipt_no}")
            order = by_order_no[order_no]
            if (order.patient_id, order.visit_no) != (p.patient_id, p.visit_no):
                raise ValueError(f"payment {p.receipt_no}: order {order_no} is of another patient or visit")
            if p.status is PaymentStatus.POSTED:
                if order.status is not OrderStatus.PAID:
                    raise ValueError(f"payment {p.receipt_no} is posted but its order {order_no} is not paid")
                if order_no in posted_orders:
                    raise ValueError(f"order {order_no} is in two posted payments")
                posted_orders.add(order_no)
