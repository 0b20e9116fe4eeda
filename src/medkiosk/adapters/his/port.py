"""The HIS port: what the kiosk asks of the hospital information system, and the answers' shapes.

Models are parsed at the edge from the HIS gateway contract (docs/simulators/his.md): readable
names, ``Decimal`` money, enums where the kiosk decides on a value. Personal data is left out of
``repr`` so a model printed into a log does not leak a patient.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from medkiosk.domain.money import CENT, Money, NonNegativeMoney  # noqa: F401  (CENT re-exported for callers)

class Gender(StrEnum):
    MALE = "M"
    """Male."""
    FEMALE = "F"
    """Female."""


class HalfDay(StrEnum):
    AM = "am"
    """Morning clinic."""
    PM = "pm"
    """Afternoon clinic."""


class DoctorLevel(StrEnum):
    ORDINARY = "ordinary"
    """An ordinary clinic (普通号)."""
    EXPERT = "expert"
    """An expert clinic (专家号)."""


class ItemKind(StrEnum):
    DRUG = "drug"
    """A medicine."""
    LAB = "lab"
    """A laboratory test."""
    EXAM = "exam"
    """An imaging or function exam."""
    TREATMENT = "treatment"
    """A procedure or nursing service."""
    MATERIAL = "material"
    """A consumable medical material."""
    NON_MEDICAL = "non_medical"
    """Not care (record copies, image discs): always paid by the patient."""


class ExamType(StrEnum):
    CT = "ct"
    """Computed tomography."""
    MRI = "mri"
    """Magnetic resonance imaging (核磁)."""
    ULTRASOUND = "ultrasound"
    """Ultrasound (超声)."""
    ECG = "ecg"
    """Electrocardiogram (心电图)."""


class OrderStatus(StrEnum):
    UNPAID = "unpaid"
    """Waiting to be paid."""
    PAID = "paid"
    """Paid."""
    VOIDED = "voided"
    """Withdrawn before it was paid (the fee of a released registration hold): nothing to pay."""


class PaymentChannel(StrEnum):
    """How the patient's cash part reached the hospital (or that none was due)."""

    INSURANCE = "insurance"
    """Insurance paid everything (统筹 and 个人账户); no cash part."""
    WECHAT = "wechat"
    """WeChat Pay through the aggregated payment channel."""
    ALIPAY = "alipay"
    """Alipay through the aggregated payment channel."""
    UNIONPAY = "unionpay"
    """UnionPay QR (云闪付) through the aggregated payment channel."""
    BANK_CARD = "bank_card"
    """A bank card on the kiosk's POS (银行MIS)."""
    NONE = "none"
    """Nothing to collect (a zero total)."""


CASH_CHANNELS = frozenset({PaymentChannel.WECHAT, PaymentChannel.ALIPAY, PaymentChannel.UNIONPAY,
                           PaymentChannel.BANK_CARD})
"""The channels that carry a cash part; each payment through one names the channel's ``trade_no``."""


class PaymentStatus(StrEnum):
    POSTED = "posted"
    """Posted: the HIS counts its orders as paid."""
    CANCELLED = "cancelled"
    """Cancelled (for a refund or an unwinding): its orders are unpaid again."""


class RegistrationStatus(StrEnum):
    """Where a registration (挂号) stands in the HIS."""

    REGISTERED = "registered"
    """Paid and valid: the patient may be seen, and checks in (报到) on its day."""
    UNPAID = "unpaid"
    """Booked ahead at the window (an appointment, 预约), not paid yet: nothing to check in."""
    BOOKED = "booked"
    """An appointment made in the app or by phone, to pick up (预约取号); may be paid in the app already."""
    PENDING_PAYMENT = "pending_payment"
    """A number held (or an appointment picked up) until ``hold_until``: its fee order waits to be paid."""
    RELEASED = "released"
    """A hold given up or expired before its fee was paid: the number went back to the schedule."""
    CANCELLED = "cancelled"
    """Cancelled (退号): nothing to check in."""


class CheckInKind(StrEnum):
    """What a patient checks in (报到) for."""

    REGISTRATION = "registration"
    """An outpatient registration: the department's waiting queue (候诊队列)."""
    EXAM = "exam"
    """An exam appointment: the exam room's waiting queue."""


class HisModel(BaseModel):
    # A tolerant reader: fields the kiosk does not use may come and go on the HIS side.
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class HisHealth(HisModel):
    status: str
    hospital_code: str | None = None
    hospital_name: str | None = None
    version: str | None = None


class HisPatient(HisModel):
    patient_id: str
    name: str = Field(repr=False)
    id_number: str = Field(repr=False)
    gender: Gender
    birth_date: dt.date
    phone: str | None = Field(default=None, repr=False)
    visit_card_no: str | None = Field(default=None, repr=False)
    insurance_card_no: str | None = Field(default=None, repr=False)
    admission: Admission | None = Field(
        default=None, description="current admission as of this reply (find only; a new patient has none)")


class NewPatient(HisModel):
    """A first-visit patient to file (建档). The HIS checks the ID number and phone and may refuse."""

    name: str = Field(min_length=1, repr=False)
    id_number: str = Field(min_length=1, repr=False)
    phone: str = Field(min_length=1, repr=False)
    gender: Gender | None = None
    birth_date: dt.date | None = None
    insurance_card_no: str | None = Field(default=None, repr=False)


class Admission(HisModel):
    admission_no: str
    ward: str
    bed: str
    department: str
    admitted_on: dt.date


class Department(HisModel):
    code: str
    name: str
    location: str = ""
    intro: str = ""
    parent_code: str | None = None
    children: list[Department] = Field(default_factory=list)
    """The clinical departments of a top-level group; empty for a clinical department."""


class Doctor(HisModel):
    code: str
    name: str
    title: str
    """主任医师, 副主任医师, 主治医师 or 住院医师 (kept as the HIS spells it)."""
    department_code: str
    level: DoctorLevel
    intro: str = ""


class ScheduleSlot(HisModel):
    schedule_id: str
    date: dt.date
    half_day: HalfDay
    department_code: str
    department_name: str
    doctor_code: str
    doctor_name: str
    doctor_title: str = ""
    level: DoctorLevel
    fee: Money
    total: int = Field(ge=0)
    remaining: int = Field(ge=0)


class OrderItem(HisModel):
    order_no: str
    item_code: str
    name: str
    kind: ItemKind
    insurance_code: str | None = None
    """The national insurance catalogue code (医保编码); None when insurance does not cover it."""
    self_pay_only: bool
    unit: str = ""
    unit_price: Money
    quantity: int = Field(ge=1)
    amount: Money


class UnpaidVisit(HisModel):
    """One visit's unpaid items, as the kiosk shows them for payment."""

    visit_no: str
    visit_date: dt.date
    department_code: str
    department_name: str
    doctor_code: str
    doctor_name: str
    items: list[OrderItem]
    total_amount: Money
    special_disease_code: str | None = None
    """The 门诊慢特病 the doctor treated at this visit (insurance disease code): settled as med_type 14."""
    special_disease_name: str | None = None


class ExamAppointment(HisModel):
    """An exam's booked time as the HIS is told it (the kiosk service keeps the capacity)."""

    booking_ref: str = Field(min_length=1, max_length=64)
    """Ours: the kiosk booking's id, so only the booking that set it can move or cancel it."""
    date: dt.date
    start: dt.time
    end: dt.time
    place: str


class ExamOrder(HisModel):
    order_no: str
    visit_no: str
    exam_type: ExamType
    exam_name: str
    body_part: str
    department_code: str
    """The department that performs the exam."""
    department_name: str
    location: str = ""
    preparation: str = ""
    """What the patient must do beforehand (fasting 空腹, a full bladder 憋尿 …); may be empty."""
    status: OrderStatus
    booked: bool
    ordered_on: dt.date
    amount: Money
    needs_booking: bool = True
    """False for exams done on arrival, without an appointment."""
    diagnosis: str = ""
    appointment: ExamAppointment | None = None
    """The kiosk's appointment as the HIS holds it; None with ``booked`` means booked elsewhere."""


class DocumentKind(StrEnum):
    REQUISITION = "requisition"
    """An exam requisition (检查申请单): CT, MRI, ultrasound, ECG."""
    PRESCRIPTION = "prescription"
    """A prescription (处方), reprinted as its copy (处方底方)."""


class DocumentSummary(HisModel):
    """A document the HIS can (or cannot) give a copy of, as listed for the patient."""

    doc_no: str
    kind: DocumentKind
    exam_type: ExamType | None = None
    title: str
    subject: str = ""
    """What it is about: the exam's name, or the first drugs."""
    issued_on: dt.date
    department_name: str = ""
    doctor_name: str = ""
    available: bool = True
    unavailable_reason: str = ""


class DocumentPatient(HisModel):
    patient_id: str
    name: str = Field(repr=False)
    gender: Gender
    birth_date: dt.date
    id_number: str | None = Field(default=None, repr=False)
    visit_card_no: str | None = Field(default=None, repr=False)


class DocumentLine(HisModel):
    name: str
    unit: str = ""
    quantity: int = Field(ge=1)
    unit_price: Money
    amount: Money
    usage: str = ""


class HisDocument(DocumentSummary):
    """A requisition or prescription in full, for its copy to be printed."""

    patient: DocumentPatient
    visit_no: str = ""
    diagnosis: str = ""
    status: OrderStatus | None = None
    amount: Money | None = None
    exam_name: str = ""
    body_part: str = ""
    preparation: str = ""
    performing_department: str = ""
    location: str = ""
    items: list[DocumentLine] = Field(default_factory=list)


class ReportKind(StrEnum):
    LAB = "lab"
    """检验报告: results with reference ranges."""
    EXAM = "exam"
    """检查报告: findings and impression."""


class ReportStatus(StrEnum):
    PENDING = "pending"
    """Not signed off yet: nothing to print."""
    READY = "ready"
    """Signed off: printable."""


class ReportSummary(HisModel):
    report_no: str
    kind: ReportKind
    title: str
    department: str = ""
    requested_by: str = ""
    status: ReportStatus
    ready_at: dt.datetime | None = None
    expected_at: dt.datetime | None = None
    print_count: int = Field(default=0, ge=0)
    """Prints anywhere (kiosks and windows) the HIS knows of."""


class LabResult(HisModel):
    name: str
    code: str = ""
    result: str
    unit: str = ""
    reference: str = ""
    flag: str = ""


class Report(ReportSummary):
    patient: DocumentPatient
    specimen: str = ""
    collected_at: dt.datetime | None = None
    reported_by: str = ""
    reviewed_by: str = ""
    items: list[LabResult] = Field(default_factory=list)
    findings: str = ""
    impression: str = ""


class PaymentPosting(HisModel):
    """A payment to post to the HIS: which orders of a visit, and how their total was split and paid.

    ``idempotency_key`` is ours and derived from the order and the step: the HIS answers a repeat
    with the first receipt, and refuses the same key with a different body.
    """

    idempotency_key: str = Field(min_length=1, max_length=64)
    patient_id: str
    visit_no: str
    order_nos: list[str] = Field(min_length=1)
    total: NonNegativeMoney
    fund: NonNegativeMoney
    """Paid by the pooled insurance fund (统筹)."""
    account: NonNegativeMoney
    """Paid from the patient's personal insurance account (个人账户)."""
    cash: NonNegativeMoney
    """Paid by the patient through ``channel``."""
    insurance_settlement_id: str | None = None
    """The insurance platform's ``setl_id``; required when ``fund`` or ``account`` is above zero."""
    channel: PaymentChannel
    trade_no: str | None = None
    """The channel's transaction number; required when ``cash`` is above zero."""
    paid_at: dt.datetime
    """When the patient paid; a retry may carry a later time (the HIS keeps the first)."""


class PostedPayment(HisModel):
    """A payment as the HIS keeps it: its receipt, what it paid, and whether it still stands."""

    receipt_no: str
    posted_at: dt.datetime
    status: PaymentStatus
    idempotency_key: str
    patient_id: str
    visit_no: str
    order_nos: list[str]
    total: Money
    fund: Money
    account: Money
    cash: Money
    insurance_settlement_id: str | None = None
    channel: PaymentChannel
    trade_no: str | None = None
    paid_at: dt.datetime
    items: list[OrderItem]
    """The items paid, as they were when posted."""
    cancelled_at: dt.datetime | None = None
    cancel_reason: str | None = None


class Registration(HisModel):
    """One registration (挂号) of a patient: for check-in, and as a hold, a pick-up or a cancellation answers it."""

    registration_no: str
    patient_id: str
    date: dt.date
    half_day: HalfDay
    department_code: str
    department_name: str
    location: str = ""
    doctor_code: str
    doctor_name: str = ""
    level: DoctorLevel
    queue_no: int = Field(ge=1)
    """The registration's number (序号) in its doctor's half-day; the queue number patients hear."""
    window_start: dt.time | None = None
    """The appointment's time window (分时段), when the HIS gives one."""
    window_end: dt.time | None = None
    status: RegistrationStatus
    checked_in_at: dt.datetime | None = None
    """When the patient checked in (报到), as the HIS was told; None until then."""
    fee: Money | None = None
    """What the registration costs (挂号费 + 诊查费); today's list for check-in leaves it out."""
    source: str = ""
    """Where it was made: kiosk, window, app or phone (empty when the HIS does not say)."""
    schedule_id: str | None = None
    visit_no: str | None = None
    """The visit whose unpaid fee order pays it (a hold, a picked-up appointment): pay it like any bill."""
    fee_order_no: str | None = None
    hold_until: dt.datetime | None = None
    """While ``pending_payment``: after this the HIS releases the number and refuses a late posting."""
    receipt_no: str | None = None
    """The posting that paid its fee at a kiosk: cancel it (``cancel_payment``) to refund after a cancel."""
    app_trade_no: str | None = None
    """An appointment paid in the hospital app: the app's trade number."""
    app_paid_amount: Money | None = None
    swap_visit_no: str | None = None
    """A swap to insurance (换号) started: the new visit whose unpaid fee order pays the registration
    again (settle and pay it like any bill); after the posting, ``visit_no`` and ``receipt_no`` are the swap's."""
    swap_fee_order_no: str | None = None
    swap_hold_until: dt.datetime | None = None
    """While the swap waits for its posting: after this it lapses, the registration as it was."""
    swapped_at: dt.datetime | None = None
    """When the swap's posting paid the registration; the app payment is then to be refunded."""
    app_refund_due: bool = False
    """Swapped, and the HIS has not been told (``app_refunded``) that the app payment went back."""
    app_refund_no: str | None = None
    cancel_reason: str | None = None
    cancelled_at: dt.datetime | None = None

    @property
    def paid_in_app(self) -> bool:
        return self.app_trade_no is not None

    @property
    def swapping(self) -> bool:
        """A swap is started and waits for its posting."""
        return self.swap_fee_order_no is not None and self.swapped_at is None


class CheckInNotice(HisModel):
    """Tell the HIS a patient checked in and joined a waiting queue. ``idempotency_key`` is ours."""

    idempotency_key: str = Field(min_length=1, max_length=64)
    kind: CheckInKind
    reference: str
    """The registration number, or the exam appointment's number."""
    patient_id: str
    department_code: str
    queue_no: str
    checked_in_at: dt.datetime
    device_id: str | None = None


class CheckInReceipt(HisModel):
    """The HIS's record of a check-in (a repeat answers with the first one)."""

    kind: CheckInKind
    reference: str
    patient_id: str
    department_code: str
    queue_no: str
    checked_in_at: dt.datetime


class HisPort(Protocol):
    """The hospital information system as the kiosk sees it.

    Every method raises :class:`~medkiosk.adapters.errors.UpstreamRefused` when the HIS refuses
    (its message is fit to show), :class:`~medkiosk.adapters.errors.UpstreamNotFound` when a named
    patient does not exist, and :class:`~medkiosk.adapters.errors.UpstreamUnknown` when no usable
    answer came back (the operation may or may not have happened).
    """

    def health(self) -> HisHealth: ...

    def find_patient(self, *, id_number: str | None = None, visit_card_no: str | None = None,
                     insurance_card_no: str | None = None, patient_id: str | None = None) -> HisPatient | None:
        """The patient matching exactly one criterion, or None when the HIS has no record."""
        ...

    def create_patient(self, patient: NewPatient) -> HisPatient:
        """File a first-visit patient; refused when the ID number is already filed or invalid."""
        ...

    def current_admission(self, patient_id: str) -> Admission | None:
        """The patient's current hospital stay, or None when not admitted."""
        ...

    def list_departments(self) -> list[Department]:
        """Top-level groups, each with its clinical departments in ``children``."""
        ...

    def list_doctors(self, department_code: str | None = None) -> list[Doctor]: ...

    def list_schedules(self, date: dt.date, department_code: str | None = None,
                       doctor_code: str | None = None) -> list[ScheduleSlot]: ...

    def unpaid_orders(self, patient_id: str) -> list[UnpaidVisit]:
        """The patient's unpaid items grouped by visit, newest visit first."""
        ...

    def exam_orders(self, patient_id: str) -> list[ExamOrder]:
        """The patient's paid exam orders (booked or not), newest first."""
        ...

    def registrations_today(self, patient_id: str) -> list[Registration]:
        """The patient's registrations of the HIS's today (any status), morning first."""
        ...

    def check_in(self, notice: CheckInNotice) -> CheckInReceipt:
        """Record a check-in (报到) in the HIS. Refused when the registration (or exam appointment) is
        unknown, cancelled, unpaid or not today; repeating it with the same key is harmless."""
        ...

    def hold_registration(self, *, idempotency_key: str, patient_id: str, schedule_id: str,
                          source: str = "kiosk") -> Registration:
        """Hold the schedule's next number (``pending_payment`` until ``hold_until``) with an unpaid fee
        order on a new visit (``visit_no``). Paying that visit and posting it (``post_payment``)
        confirms the registration. Refused with code ``slot_full``, ``duplicate`` or ``half_day_over``;
        ``UpstreamNotFound`` for an unknown schedule. The same key answers with the same registration."""
        ...

    def registration(self, registration_no: str) -> Registration | None:
        """One registration as it stands now (a lapsed hold reads ``released``), or None when unknown."""
        ...

    def release_registration(self, registration_no: str, *, idempotency_key: str) -> Registration:
        """Give an unpaid hold's number back (``released``; a picked-up appointment is ``booked`` again).
        Refused (``already_registered``) once its fee is posted; repeating it is harmless."""
        ...

    def cancel_registration(self, registration_no: str, *, idempotency_key: str, reason: str) -> Registration:
        """Cancel (退号) a paid registration before its half-day starts; the answer's ``receipt_no`` is
        the posting to cancel for the refund (None when it was paid in the app or at a window).
        Refused: ``not_registered``, ``checked_in``, ``half_day_started``, ``cancel_refused``."""
        ...

    def appointments(self, patient_id: str) -> list[Registration]:
        """The patient's appointments to pick up (``booked``, from the app or by phone), today and later,
        earliest first."""
        ...

    def pick_up_appointment(self, registration_no: str, *, idempotency_key: str) -> Registration:
        """Pick up (取号) an appointment: paid in the app, it is ``registered`` at once; otherwise it is
        ``pending_payment`` with a fee order on ``visit_no``, confirmed by posting like a hold."""
        ...

    def swappable(self, patient_id: str) -> list[Registration]:
        """The patient's registrations paid in the hospital app as self-pay that may be swapped for
        insurance (换号): registered, not swapped, not checked in, half-day not over; earliest first."""
        ...

    def start_swap(self, registration_no: str, *, idempotency_key: str) -> Registration:
        """Start a swap: the registration keeps its doctor, half-day and number; its fee waits as an
        unpaid order on a new visit (``swap_visit_no``) until ``swap_hold_until``. Posting that visit
        completes the swap (``swapped_at``, ``receipt_no``, ``app_refund_due``). Refused:
        ``not_swappable``, ``checked_in``, ``half_day_over``, ``swap_in_progress``. The same key
        answers the registration as it is now."""
        ...

    def release_swap(self, registration_no: str, *, idempotency_key: str) -> Registration:
        """Give up a swap not posted yet: its fee order is voided (a late posting is refused with
        ``SWAP_RELEASED``), the registration as it was. Refused (``already_swapped``) once posted;
        without a swap waiting it answers the registration as it is."""
        ...

    def app_refunded(self, registration_no: str, *, idempotency_key: str, refund_no: str) -> Registration:
        """Tell the HIS the app payment of a swapped registration was refunded (``app_refund_due``
        false, ``app_refund_no`` kept). Refused: ``no_app_refund_due``, ``app_refund_recorded``
        (another refund number recorded); the same refund again is harmless."""
        ...

    def book_exam(self, order_no: str, appointment: ExamAppointment) -> ExamOrder:
        """Tell the HIS an exam order's appointment (or its new time, same ``booking_ref``).

        Refused when the order is unpaid, needs no booking, or was booked through another channel.
        """
        ...

    def cancel_exam_booking(self, order_no: str, booking_ref: str) -> ExamOrder:
        """Tell the HIS the appointment is cancelled; repeating it is harmless."""
        ...

    def documents(self, patient_id: str) -> list[DocumentSummary]:
        """Requisitions and prescriptions the patient may reprint (with those the HIS cannot supply)."""
        ...

    def document(self, doc_no: str) -> HisDocument:
        """One document in full; refused when the HIS holds no electronic copy."""
        ...

    def reports(self, patient_id: str) -> list[ReportSummary]:
        """The patient's lab and exam reports, ready or pending, newest first."""
        ...

    def report(self, report_no: str) -> Report: ...

    def report_printed(self, report_no: str) -> int:
        """Count a print of a ready report in the HIS; returns its print count there."""
        ...

    def post_payment(self, posting: PaymentPosting) -> PostedPayment:
        """Mark the posting's orders paid and return the HIS receipt.

        Refused (``UpstreamRefused``) when an order is unknown, already paid, of another patient or
        visit, voided by the doctor, or when the amounts disagree with the orders. An
        ``UpstreamUnknown`` may have posted: retry with the same ``idempotency_key``, which is safe.
        """
        ...

    def cancel_payment(self, receipt_no: str, idempotency_key: str, reason: str) -> PostedPayment:
        """Cancel a posted payment (its orders become unpaid again); repeating it is harmless."""
        ...

    def list_payments(self, patient_id: str | None = None, since: dt.datetime | dt.date | None = None,
                      until: dt.datetime | dt.date | None = None) -> list[PostedPayment]:
        """Payments posted in ``[since, until)`` (a date means its midnight), newest first."""
        ...

    def get_payment(self, receipt_no: str) -> PostedPayment | None:
        """One payment by its receipt number, or None when the HIS has no such receipt."""
        ...


HisPatient.model_rebuild()
