"""The HIS simulator's stored records: one Pydantic model a collection, strict about what it accepts.

These are the shapes a hospital loads through ``/__sim__/`` (and the demo data is built as), not
the wire replies: the replies join records (a slot names its doctor, a visit its department).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from medkiosk.adapters.his.port import (
    CASH_CHANNELS,
    CheckInKind,
    DoctorLevel,
    ExamType,
    Gender,
    HalfDay,
    ItemKind,
    OrderStatus,
    PaymentChannel,
    PaymentStatus,
    RegistrationStatus,
)
from medkiosk.domain.identity import birth_date_from_id, gender_from_id, is_valid_id_number
from medkiosk.domain.money import CENT, NonNegativeMoney as Money

_PHONE_RE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")


def is_valid_phone(value: str) -> bool:
    """A mainland mobile number (11 digits) or a landline with its area code."""
    return bool(_PHONE_RE.match(value.strip()))


class DoctorTitle(StrEnum):
    CHIEF = "主任医师"
    """Chief physician."""
    ASSOCIATE_CHIEF = "副主任医师"
    """Associate chief physician."""
    ATTENDING = "主治医师"
    """Attending physician."""
    RESIDENT = "住院医师"
    """Resident physician."""


Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")]

# When each half-day's clinic runs, in the hospital's local time: a registration cannot be
# cancelled once its half-day has started, and no number is held once it has ended.
HALF_DAY_HOURS: dict[HalfDay, tuple[dt.time, dt.time]] = {
    HalfDay.AM: (dt.time(8, 0), dt.time(12, 0)),
    HalfDay.PM: (dt.time(14, 0), dt.time(17, 30)),
}


def half_day_start(date: dt.date, half_day: HalfDay) -> dt.datetime:
    """When the half-day's clinic starts (naive: the simulator's local time)."""
    return dt.datetime.combine(date, HALF_DAY_HOURS[half_day][0])


def half_day_end(date: dt.date, half_day: HalfDay) -> dt.datetime:
    """When the half-day's clinic ends (naive: the simulator's local time)."""
    return dt.datetime.combine(date, HALF_DAY_HOURS[half_day][1])
Text = Annotated[str, Field(min_length=1, max_length=200)]
Key = Annotated[str, Field(min_length=1, max_length=64)]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class PatientRecord(Record):
    patient_id: Code
    name: Annotated[str, Field(min_length=1, max_length=50)]
    id_number: str
    gender: Gender | None = None
    birth_date: dt.date | None = None
    phone: str
    visit_card_no: Code
    insurance_card_no: Code | None = None

    @field_validator("id_number")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        value = value.upper()
        if not is_valid_id_number(value):
            raise ValueError("not a valid resident ID number (check digit or birth date)")
        return value

    @field_validator("phone")
    @classmethod
    def _valid_phone(cls, value: str) -> str:
        if not is_valid_phone(value):
            raise ValueError("not a mobile number (11 digits from 13–19) nor a landline with area code")
        return value

    @model_validator(mode="after")
    def _agrees_with_id(self) -> "PatientRecord":
        gender, birth = Gender(gender_from_id(self.id_number)), birth_date_from_id(self.id_number)
        if self.gender is not None and self.gender != gender:
            raise ValueError("gender does not match the ID number")
        if self.birth_date is not None and self.birth_date != birth:
            raise ValueError("birth_date does not match the ID number")
        object.__setattr__(self, "gender", gender)
        object.__setattr__(self, "birth_date", birth)
        return self


class DepartmentRecord(Record):
    code: Code
    name: Text
    parent_code: Code | None = None
    """None for a top-level group (内科, 外科 …); a group's code for a clinical department."""
    location: Text
    intro: str = ""


class DoctorRecord(Record):
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=50)]
    title: DoctorTitle
    department_code: Code
    level: DoctorLevel
    intro: str = ""


class ScheduleRecord(Record):
    schedule_id: Code
    date: dt.date
    half_day: HalfDay
    department_code: Code
    doctor_code: Code
    level: DoctorLevel
    fee: Money
    total: int = Field(ge=0, le=10_000)
    remaining: int = Field(ge=0, le=10_000)
    windowed: bool = True
    """Its numbers carry a time window (分时段): three numbers a 30-minute window from the half-day's start."""

    @model_validator(mode="after")
    def _remaining_within_total(self) -> "ScheduleRecord":
        if self.remaining > self.total:
            raise ValueError("remaining cannot exceed total")
        return self


class OrderItemRecord(Record):
    item_code: Code
    name: Text
    kind: ItemKind
    insurance_code: Code | None = None
    """The national insurance catalogue code (医保编码); None when insurance does not cover it."""
    self_pay_only: bool = False
    unit: Annotated[str, Field(min_length=1, max_length=10)]
    unit_price: Money
    quantity: int = Field(ge=1, le=100_000)
    amount: Money | None = None
    """unit_price × quantity; computed when left out, checked when given."""

    @model_validator(mode="after")
    def _consistent(self) -> "OrderItemRecord":
        if self.insurance_code is None and not self.self_pay_only:
            raise ValueError(f"item {self.item_code}: without an insurance_code it must be self_pay_only")
        if self.kind is ItemKind.NON_MEDICAL and not self.self_pay_only:
            raise ValueError(f"item {self.item_code}: a non_medical item is always self_pay_only")
        expected = (self.unit_price * self.quantity).quantize(CENT)
        if self.amount is not None and self.amount != expected:
            raise ValueError(f"item {self.item_code}: amount {self.amount} is not unit_price × quantity = {expected}")
        object.__setattr__(self, "amount", expected)
        return self


class OrderRecord(Record):
    """One order (a prescription, a lab or exam requisition …) of a visit, with its items."""

    order_no: Code
    patient_id: Code
    visit_no: Code
    visit_date: dt.date
    department_code: Code
    doctor_code: Code
    status: OrderStatus = OrderStatus.UNPAID
    items: list[OrderItemRecord] = Field(min_length=1)
    special_disease_code: Code | None = None
    """The 门诊慢特病 the doctor treated at this visit (its insurance disease code), if any."""
    special_disease_name: Text | None = None


class ExamAppointmentRecord(Record):
    """The time a kiosk booked for an exam order (the kiosk keeps the capacity; the HIS is told)."""

    booking_ref: Annotated[str, Field(min_length=1, max_length=64)]
    date: dt.date
    start: dt.time
    end: dt.time
    place: Text


class ExamOrderRecord(Record):
    order_no: Code
    patient_id: Code
    visit_no: Code
    exam_type: ExamType
    exam_name: Text
    body_part: Text
    department_code: Code
    """The department that performs the exam (放射科, 超声医学科, 心电图室)."""
    preparation: str = ""
    status: OrderStatus = OrderStatus.PAID
    booked: bool = False
    ordered_on: dt.date
    amount: Money
    needs_booking: bool = True
    """False for exams done on arrival without an appointment."""
    ordering_department_code: Code | None = None
    """The clinic that ordered it (for the requisition); None when unknown."""
    doctor_code: Code | None = None
    diagnosis: str = ""
    """The clinical diagnosis written on the requisition."""
    paper_only: bool = False
    """A handwritten requisition: the HIS holds no electronic copy to reprint."""
    appointment: ExamAppointmentRecord | None = None

    @model_validator(mode="after")
    def _appointment_means_booked(self) -> "ExamOrderRecord":
        if self.appointment is not None and not self.booked:
            raise ValueError("an exam order with an appointment must be booked")
        return self


class ReportKind(StrEnum):
    LAB = "lab"
    """A laboratory report (检验报告): results with reference ranges."""
    EXAM = "exam"
    """An imaging or function report (检查报告): findings and impression."""


class ReportStatus(StrEnum):
    PENDING = "pending"
    """Not signed off yet: nothing to print."""
    READY = "ready"
    """Signed off: may be printed."""


class LabResultRecord(Record):
    name: Text
    code: Annotated[str, Field(max_length=20)] = ""
    result: Annotated[str, Field(min_length=1, max_length=40)]
    unit: Annotated[str, Field(max_length=20)] = ""
    reference: Annotated[str, Field(max_length=40)] = ""
    flag: Annotated[str, Field(pattern=r"^(H|L|)$")] = ""
    """H above the reference range, L below, empty within."""


class ReportRecord(Record):
    report_no: Code
    patient_id: Code
    kind: ReportKind
    title: Text
    order_no: Code | None = None
    department: Text
    """The department that reports (检验科, 放射科 …), as printed on the report."""
    requested_by: Annotated[str, Field(max_length=60)] = ""
    """The ordering clinic, as written on the report."""
    specimen: Annotated[str, Field(max_length=40)] = ""
    collected_at: dt.datetime | None = None
    status: ReportStatus = ReportStatus.READY
    ready_at: dt.datetime | None = None
    expected_at: dt.datetime | None = None
    """For a pending report: when it should be ready."""
    reported_by: Annotated[str, Field(max_length=50)] = ""
    reviewed_by: Annotated[str, Field(max_length=50)] = ""
    items: list[LabResultRecord] = Field(default_factory=list)
    findings: Annotated[str, Field(max_length=2000)] = ""
    impression: Annotated[str, Field(max_length=1000)] = ""
    print_count: int = Field(default=0, ge=0)
    """How often the report has been printed anywhere (kiosk or window)."""

    @model_validator(mode="after")
    def _ready_has_content(self) -> "ReportRecord":
        if self.status is ReportStatus.READY and self.ready_at is None:
            raise ValueError("a ready report has ready_at")
        if self.status is ReportStatus.READY and not (self.items or self.findings or self.impression):
            raise ValueError("a ready report has items (lab) or findings/impression (exam)")
        return self


class RegistrationRecord(Record):
    """A registration (挂号) for a doctor's half-day, with its number (序号) and time window."""

    registration_no: Code
    patient_id: Code
    date: dt.date
    half_day: HalfDay
    department_code: Code
    doctor_code: Code
    level: DoctorLevel
    queue_no: int = Field(ge=1, le=10_000)
    window_start: dt.time | None = None
    window_end: dt.time | None = None
    fee: Money
    status: RegistrationStatus = RegistrationStatus.REGISTERED
    source: Annotated[str, Field(pattern=r"^(kiosk|window|app|phone)$")] = "window"
    schedule_id: Code | None = None
    """The schedule whose number it took; None for registrations loaded without one."""
    visit_no: Code | None = None
    """The visit its fee order belongs to (a hold or a picked-up appointment); None otherwise."""
    fee_order_no: Code | None = None
    """The order charging its fee (挂号费 + 诊查费), created by a hold or a pick-up."""
    hold_until: dt.datetime | None = None
    """While ``pending_payment``: when the hold lapses and the number goes back."""
    receipt_no: Code | None = None
    """The payment (收费记录) that paid its fee at a kiosk; None when paid elsewhere (window, app)."""
    app_trade_no: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """An appointment paid in the hospital app: the app's trade number (for a refund there)."""
    app_paid_amount: Money | None = None
    """An appointment paid in the hospital app: what the app charged."""
    swap_visit_no: Code | None = None
    """A swap to insurance (换号) started or done: the new visit whose fee order pays the registration again."""
    swap_fee_order_no: Code | None = None
    swap_hold_until: dt.datetime | None = None
    """While a swap waits for its posting: after this it lapses and the registration is as it was."""
    swapped_at: dt.datetime | None = None
    """When the swap's posting paid the registration (``receipt_no``); the app payment is then owed back."""
    app_refund_due: bool = False
    """Swapped, and the kiosk has not yet told the HIS that the app payment was refunded."""
    app_refund_no: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """The refund of the app payment, as the kiosk reported it."""
    idempotency_key: Key | None = None
    """The kiosk's key of the hold that created it."""
    pick_up_idempotency_key: Key | None = None
    release_idempotency_key: Key | None = None
    cancel_idempotency_key: Key | None = None
    swap_idempotency_key: Key | None = None
    """The key of the latest swap started (kept after it is released, so a late retry does not start another)."""
    swap_release_idempotency_key: Key | None = None
    app_refund_idempotency_key: Key | None = None
    given_up_swap_orders: list[Code] = Field(default_factory=list)
    """Fee orders of swaps released or lapsed: a late posting of one is refused as such."""
    cancel_reason: Annotated[str, Field(max_length=200)] | None = None
    cancelled_at: dt.datetime | None = None

    @property
    def paid_in_app(self) -> bool:
        return self.app_trade_no is not None

    @property
    def swapping(self) -> bool:
        """A swap is started and waits for its posting."""
        return self.swap_fee_order_no is not None and self.swapped_at is None

    @model_validator(mode="after")
    def _window_in_order(self) -> "RegistrationRecord":
        if (self.window_start is None) != (self.window_end is None):
            raise ValueError("window_start and window_end come together")
        if self.window_start is not None and self.window_end <= self.window_start:  # type: ignore[operator]
            raise ValueError("window_end must be after window_start")
        if (self.app_trade_no is None) != (self.app_paid_amount is None):
            raise ValueError("app_trade_no and app_paid_amount come together")
        if self.status is RegistrationStatus.PENDING_PAYMENT and (
                self.hold_until is None or self.visit_no is None or self.fee_order_no is None):
            raise ValueError("a pending_payment registration has hold_until, visit_no and fee_order_no")
        if self.status is RegistrationStatus.BOOKED and self.source not in ("app", "phone"):
            raise ValueError("a booked appointment comes from the app or by phone")
        if (self.swap_visit_no is None) != (self.swap_fee_order_no is None):
            raise ValueError("swap_visit_no and swap_fee_order_no come together")
        if self.swap_fee_order_no is not None and self.app_trade_no is None:
            raise ValueError("only a registration paid in the app is swapped")
        if self.swapping and self.swap_hold_until is None:
            raise ValueError("a swap waiting for its posting has swap_hold_until")
        if self.swapped_at is not None and (self.swap_fee_order_no is None or self.receipt_no is None):
            raise ValueError("a swapped registration has its swap_fee_order_no and the receipt_no that paid it")
        if self.app_refund_due and self.swapped_at is None:
            raise ValueError("app_refund_due is for a swapped registration")
        if self.app_refund_due and self.app_refund_no is not None:
            raise ValueError("app_refund_no is recorded once the app refund is no longer due")
        return self


class CheckInRecord(Record):
    """A check-in (报到) the HIS was told of: a registration or an exam appointment joined a queue."""

    idempotency_key: Annotated[str, Field(min_length=1, max_length=64)]
    kind: CheckInKind
    reference: Code
    patient_id: Code
    department_code: Code
    queue_no: Annotated[str, Field(min_length=1, max_length=20)]
    checked_in_at: dt.datetime
    device_id: Annotated[str, Field(max_length=32)] | None = None


class AdmissionRecord(Record):
    admission_no: Code
    patient_id: Code
    ward: Text
    bed: Text
    department: Text
    admitted_on: dt.date
    discharged_on: dt.date | None = None
    """None while the patient is still in hospital."""


class PaidItemRecord(OrderItemRecord):
    """An item of a posted payment, kept as it was when paid (with the order it belongs to)."""

    order_no: Code


class PaymentRecord(Record):
    """A payment posted to the HIS (收费记录): its receipt, its orders and how the total was paid."""

    receipt_no: Code
    idempotency_key: Key
    patient_id: Code
    visit_no: Code
    order_nos: list[Code] = Field(min_length=1, max_length=100)
    total: Money
    fund: Money
    account: Money
    cash: Money
    insurance_settlement_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    channel: PaymentChannel
    trade_no: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    paid_at: dt.datetime
    posted_at: dt.datetime
    status: PaymentStatus = PaymentStatus.POSTED
    items: list[PaidItemRecord] = Field(min_length=1)
    cancelled_at: dt.datetime | None = None
    cancel_reason: Annotated[str, Field(max_length=200)] | None = None
    cancel_idempotency_key: Key | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "PaymentRecord":
        problem = payment_problem(order_nos=self.order_nos, total=self.total, fund=self.fund, account=self.account,
                                  cash=self.cash, channel=self.channel, trade_no=self.trade_no,
                                  insurance_settlement_id=self.insurance_settlement_id)
        if problem:
            raise ValueError(problem)
        if sum(i.amount for i in self.items) != self.total:  # type: ignore[misc]
            raise ValueError("the items do not add up to total")
        if {i.order_no for i in self.items} != set(self.order_nos):
            raise ValueError("the items must belong to exactly the payment's order_nos")
        if (self.status is PaymentStatus.CANCELLED) != (self.cancelled_at is not None):
            raise ValueError("cancelled_at is set exactly when status is cancelled")
        return self


def payment_problem(*, order_nos: list[str], total: Decimal, fund: Decimal, account: Decimal, cash: Decimal,
                    channel: PaymentChannel, trade_no: str | None, insurance_settlement_id: str | None) -> str | None:
    """What is wrong with a payment's own figures (in Chinese, fit for the refusal), or None."""
    if len(set(order_nos)) != len(order_nos):
        return "处方单号重复"
    if fund + account + cash != total:
        return f"统筹{fund}元、个人账户{account}元与现金{cash}元之和不等于总额{total}元"
    if cash > 0 and channel not in CASH_CHANNELS:
        return f"现金部分{cash}元须注明支付渠道（wechat、alipay、unionpay 或 bank_card）"
    if cash > 0 and not trade_no:
        return "现金部分须提供支付渠道的交易号（trade_no）"
    if cash == 0 and channel in CASH_CHANNELS:
        return "现金部分为零时支付渠道应为 insurance 或 none"
    if (fund + account > 0 or channel is PaymentChannel.INSURANCE) and not insurance_settlement_id:
        return "医保支付须提供医保结算号（insurance_settlement_id）"
    if channel is PaymentChannel.NONE and total != 0:
        return "支付渠道为 none 时总额须为零"
    return None


RECORD_TYPES: dict[str, type[Record]] = {
    "patients": PatientRecord,
    "departments": DepartmentRecord,
    "doctors": DoctorRecord,
    "schedules": ScheduleRecord,
    "orders": OrderRecord,
    "exam_orders": ExamOrderRecord,
    "admissions": AdmissionRecord,
    "payments": PaymentRecord,
    "registrations": RegistrationRecord,
    "check_ins": CheckInRecord,
    "reports": ReportRecord,
}


def describe_validation_error(exc: ValidationError) -> str:
    """A one-line reading of a validation error: ``field.path: what is wrong; …``."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "item"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
