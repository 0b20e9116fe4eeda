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
    DoctorLevel,
    ExamType,
    Gender,
    HalfDay,
    ItemKind,
    OrderStatus,
    PaymentChannel,
    PaymentStatus,
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
Text = Annotated[str, Field(min_length=1, max_length=200)]


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


Key = Annotated[str, Field(min_length=1, max_length=64)]


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
}


def describe_validation_error(exc: ValidationError) -> str:
    """A one-line reading of a validation error: ``field.path: what is wrong; …``."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "item"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
