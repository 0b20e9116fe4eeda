"""The payment-channel port: the aggregated merchant API (WeChat Pay, Alipay, UnionPay) as the kiosk sees it.

Models are parsed at the edge from the payment-channel contract (docs/simulators/payment.md):
``Decimal`` money, enums for every state the payment engine decides on. The kiosk's order number
(``out_trade_no``) and refund number (``out_refund_no``) are the idempotency keys: sending the same
command again returns the first answer, never a second charge or a second refund.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, BinaryIO, Protocol

from pydantic import BaseModel, ConfigDict

from medkiosk.domain.money import Money

if TYPE_CHECKING:
    from medkiosk.adapters.payment.statement import Statement


class PaymentChannel(StrEnum):
    """Which wallet the patient paid with; the merchant API is the same for all three."""

    WECHAT = "wechat"
    """WeChat Pay (微信支付)."""
    ALIPAY = "alipay"
    """Alipay (支付宝)."""
    UNIONPAY = "unionpay"
    """UnionPay QuickPass (云闪付)."""


class TradeState(StrEnum):
    """The channel's state of one order (``out_trade_no``)."""

    NOTPAY = "NOTPAY"
    """Created, not paid (yet): the QR code is still waiting for the patient."""
    USERPAYING = "USERPAYING"
    """The patient must confirm on the phone (password, balance choice); keep querying."""
    SUCCESS = "SUCCESS"
    """Paid: the channel holds the patient's money."""
    CLOSED = "CLOSED"
    """Closed unpaid (by us, or the QR code expired): nothing was charged and nothing can be."""
    REFUND = "REFUND"
    """Paid, and at least part of it has been refunded (see ``refunded_amount``)."""
    PAYERROR = "PAYERROR"
    """The payment failed (balance too low, code expired …): nothing was charged."""


class ChargeState(StrEnum):
    """The answer to charging a scanned payment code."""

    SUCCESS = "SUCCESS"
    """Charged."""
    USERPAYING = "USERPAYING"
    """Waiting for the patient to confirm on the phone: query until SUCCESS, PAYERROR or our timeout."""
    PAYERROR = "PAYERROR"
    """Not charged; ``message`` says why (fit to show the patient)."""


class RefundState(StrEnum):
    """The channel's state of one refund (``out_refund_no``)."""

    PROCESSING = "PROCESSING"
    """Accepted; the money is on its way back to the patient. Query again later."""
    SUCCESS = "SUCCESS"
    """The money is back in the patient's account."""
    ABNORMAL = "ABNORMAL"
    """Accepted but could not be delivered (a closed card or account): a cashier must handle it."""


PAID_STATES = frozenset({TradeState.SUCCESS, TradeState.REFUND})
"""Trade states in which the channel took the patient's money."""


class PaymentModel(BaseModel):
    # A tolerant reader: fields we do not use may come and go on the channel's side.
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class QrOrder(PaymentModel):
    """A QR order (Native pay): the kiosk renders ``code_url`` as a QR code until ``expires_at``."""

    out_trade_no: str
    code_url: str
    expires_at: dt.datetime


class ChargeResult(PaymentModel):
    """The answer to charging a payment code the kiosk scanned from the patient's phone."""

    out_trade_no: str
    state: ChargeState
    transaction_id: str | None = None
    """The channel's own number for the payment, once charged."""
    message: str = ""
    """What happened, in Chinese, fit to show (``余额不足``, ``需要用户输入支付密码`` …)."""


class TradeStatus(PaymentModel):
    """What the channel knows about one order."""

    out_trade_no: str
    state: TradeState
    amount: Money
    """The amount we asked for."""
    paid_amount: Money | None = None
    """What the channel actually took (None until paid). It must equal ``amount``; if not, halt."""
    refunded_amount: Money = Decimal("0.00")
    transaction_id: str | None = None
    paid_at: dt.datetime | None = None
    channel: PaymentChannel | None = None
    """The wallet used; None until the patient paid (a QR code accepts all three)."""
    message: str = ""

    @property
    def paid(self) -> bool:
        return self.state in PAID_STATES


class RefundStatus(PaymentModel):
    """What the channel knows about one refund."""

    out_refund_no: str
    out_trade_no: str
    state: RefundState
    refund_id: str
    """The channel's own number for the refund."""
    refund_amount: Money
    total_amount: Money
    """The paid amount of the trade the refund belongs to."""
    created_at: dt.datetime | None = None
    succeeded_at: dt.datetime | None = None


class PaymentChannelPort(Protocol):
    """The aggregated payment channel as the payment engine sees it.

    Every method raises :class:`~medkiosk.adapters.errors.UpstreamRefused` when the channel
    refuses (its ``message`` is Chinese and fit to show; nothing happened) and
    :class:`~medkiosk.adapters.errors.UpstreamUnknown` when no usable answer came back — the
    charge, close or refund may or may not have happened, so the engine queries before it
    decides anything.
    """

    def create_qr_order(self, out_trade_no: str, amount: Money, description: str,
                        expire_seconds: int) -> QrOrder:
        """Create (or, with the same amount, fetch again) the QR order; refused for a different amount."""
        ...

    def charge_payment_code(self, out_trade_no: str, auth_code: str, amount: Money,
                            description: str) -> ChargeResult:
        """Charge a scanned payment code; a replay answers the order's state without charging again."""
        ...

    def query(self, out_trade_no: str) -> TradeStatus | None:
        """The order's state, or None when the channel never saw the order."""
        ...

    def close_order(self, out_trade_no: str) -> None:
        """Close an unpaid order so it can no longer be paid; refused when paid (refund instead)."""
        ...

    def refund(self, out_trade_no: str, out_refund_no: str, refund_amount: Money, total_amount: Money,
               reason: str) -> RefundStatus:
        """Refund (part of) a paid order; ``out_refund_no`` is the key, so a retry never refunds twice."""
        ...

    def query_refund(self, out_refund_no: str) -> RefundStatus | None:
        """The refund's state, or None when the channel never saw it."""
        ...

    def statement(self, date: dt.date) -> str:
        """The channel's statement (trade bill) of ``date`` as text, in the channel's own format."""
        ...

    def download_statement(self, date: dt.date, into: BinaryIO) -> int:
        """The same statement, streamed into a binary file (UTF-8, maybe with a BOM); returns its size.

        For a day too big to hold as one string: read it back line by line with ``iter_statement``.
        """
        ...

    def parse_statement(self, text: str) -> Statement:
        """Read a statement this channel wrote (no I/O): trades, refunds and the summary, exact."""
        ...
