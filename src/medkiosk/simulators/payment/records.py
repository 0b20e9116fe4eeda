"""The payment simulator's stored records: orders and refunds, as loaded through ``/__sim__/``.

Records are frozen; the state replaces a record on every transition. Times are China Standard
Time (a naive time loaded through the control surface is read as CST). The states are the port's
own enums, so the contract is defined once.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from medkiosk.adapters.payment.port import PAID_STATES, PaymentChannel, RefundState, TradeState
from medkiosk.domain.money import Money, NonNegativeMoney

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")
OUT_NO_PATTERN = r"^[0-9A-Za-z_\-|*]{6,32}$"
"""Merchant order and refund numbers: 6–32 letters, digits or ``_-|*`` (as WeChat Pay requires)."""
_OUT_NO = re.compile(OUT_NO_PATTERN)


def in_china_time(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=CHINA_TZ)
    return value.astimezone(CHINA_TZ)


def positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("an amount to pay or refund must be greater than 0")
    return value


Moment = Annotated[dt.datetime, AfterValidator(in_china_time)]
PositiveMoney = Annotated[Money, AfterValidator(positive)]


class OrderKind(StrEnum):
    QR = "qr"
    """A QR order (Native pay): the kiosk shows a code, the patient scans it with the phone."""
    CODE = "code"
    """A payment-code charge (Micropay): the kiosk scans the code shown on the patient's phone."""
    APP = "app"
    """A payment in the hospital's own app (JSAPI), e.g. a registration paid ahead; the kiosk may refund it."""

    @property
    def trade_type(self) -> str:
        """The name the statement gives the kind of trade."""
        return {OrderKind.QR: "NATIVE", OrderKind.CODE: "MICROPAY", OrderKind.APP: "JSAPI"}[self]


class Pending(StrEnum):
    """How a USERPAYING payment-code charge ends (chosen by the magic payment code)."""

    CONFIRM = "confirm"
    """The patient confirms: SUCCESS on the second query."""
    DECLINE = "decline"
    """The balance is too low: PAYERROR on the second query."""
    NEVER = "never"
    """The patient never confirms: USERPAYING until the order is closed."""


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class OrderRecord(Record):
    out_trade_no: str = Field(pattern=OUT_NO_PATTERN)
    kind: OrderKind = OrderKind.QR
    amount: PositiveMoney
    description: str = Field(default="", max_length=127)
    state: TradeState = TradeState.NOTPAY
    created_at: Moment
    expires_at: Moment | None = None
    """When an unpaid QR order closes by itself."""
    code_url: str | None = None
    notify_url: str | None = None
    auth_code: str | None = None
    """The scanned payment code, masked (it is a bearer credential for a minute)."""
    pending: Pending | None = None
    queries: int = Field(default=0, ge=0)
    channel: PaymentChannel | None = None
    paid_amount: NonNegativeMoney | None = None
    transaction_id: str | None = None
    paid_at: Moment | None = None
    closed_at: Moment | None = None
    message: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> OrderRecord:
        paid = (self.channel, self.paid_amount, self.transaction_id, self.paid_at)
        if self.state in PAID_STATES and any(value is None for value in paid):
            raise ValueError(f"a {self.state} order needs channel, paid_amount, transaction_id and paid_at")
        if self.state not in PAID_STATES and any(value is not None for value in paid[1:]):
            raise ValueError(f"a {self.state} order has no paid_amount, transaction_id or paid_at")
        if self.kind is OrderKind.QR and (self.expires_at is None or not self.code_url):
            raise ValueError("a QR order needs expires_at and code_url")
        return self


class RefundRecord(Record):
    out_refund_no: str = Field(pattern=OUT_NO_PATTERN)
    out_trade_no: str = Field(pattern=OUT_NO_PATTERN)
    refund_id: str = Field(min_length=1)
    refund_amount: PositiveMoney
    total_amount: PositiveMoney
    reason: str = Field(default="", max_length=80)
    state: RefundState = RefundState.PROCESSING
    created_at: Moment
    succeeded_at: Moment | None = None
    queries: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _success_has_a_time(self) -> RefundRecord:
        if (self.state is RefundState.SUCCESS) != (self.succeeded_at is not None):
            raise ValueError("succeeded_at is set exactly when the refund state is SUCCESS")
        return self


def is_out_no(value: str) -> bool:
    return bool(_OUT_NO.match(value))


def mask_code(code: str) -> str:
    """A payment code as the journal keeps it: 130012******1234."""
    return code[:6] + "*" * max(len(code) - 10, 0) + code[-4:] if len(code) > 10 else "*" * len(code)
