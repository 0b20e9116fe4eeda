"""The money state machine of a kiosk payment, its amount checks and its idempotency keys.

Pure rules: no I/O. The payment engine (services/payments.py) writes every state to the store
before and after each external call, so a crash at any point leaves an order whose state says
exactly what may have happened upstream and what the recovery worker must do next.

Order of events for a bill (DESIGN 5): the split is computed first (pre-settlement for the
insured), the patient pays the cash part, the insurance settlement is committed, HIS is told,
the e-invoice is issued. Whatever fails after money moved is unwound: reversal or cancellation
of the settlement, and a refund of the cash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from enum import StrEnum

from medkiosk.domain.money import CENT


class PaymentState(StrEnum):
    CREATED = "created"
    """The bill is chosen; nothing has been sent anywhere."""
    PRESETTLED = "presettled"
    """The split is known (pre-settled by insurance, or all cash for self-pay); no money moved."""
    AWAITING_PAYMENT = "awaiting_payment"
    """A channel order for the cash part exists; the patient is paying (QR, payment code or card)."""
    PAID = "paid"
    """The channel confirmed the cash part (or there was none to pay)."""
    SETTLING = "settling"
    """2207 was sent with a persisted msgid; its outcome is not recorded yet."""
    SETTLED = "settled"
    """The insurance settlement is committed (setl_id known)."""
    POSTING = "posting"
    """The payment is being posted to HIS with the order's idempotency key."""
    COMPLETED = "completed"
    """HIS posted the payment: the patient's bill is paid. (The invoice may still be pending.)"""
    UNWINDING = "unwinding"
    """Money moved but the bill cannot be completed: the settlement is being reversed or cancelled."""
    REFUNDING = "refunding"
    """The cash part is being refunded through the channel."""
    REFUNDED = "refunded"
    """Everything that was paid has been given back; nothing is owed either way."""
    CLOSED = "closed"
    """Not paid in time (or abandoned): the channel order is closed, nothing was charged."""
    FAILED = "failed"
    """Refused before any money moved (e.g. insurance refused the pre-settlement)."""

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({PaymentState.COMPLETED, PaymentState.REFUNDED, PaymentState.CLOSED,
                             PaymentState.FAILED})

S = PaymentState
ALLOWED: dict[PaymentState, frozenset[PaymentState]] = {
    S.CREATED: frozenset({S.PRESETTLED, S.FAILED}),
    S.PRESETTLED: frozenset({S.AWAITING_PAYMENT, S.PAID, S.CLOSED, S.FAILED}),
    S.AWAITING_PAYMENT: frozenset({S.PAID, S.CLOSED, S.REFUNDING}),
    S.PAID: frozenset({S.SETTLING, S.POSTING, S.REFUNDING}),
    S.SETTLING: frozenset({S.SETTLED, S.UNWINDING, S.REFUNDING}),
    S.SETTLED: frozenset({S.POSTING, S.UNWINDING}),
    S.POSTING: frozenset({S.COMPLETED, S.UNWINDING, S.REFUNDING}),
    S.UNWINDING: frozenset({S.REFUNDING, S.REFUNDED, S.SETTLING}),
    S.REFUNDING: frozenset({S.REFUNDED}),
    S.COMPLETED: frozenset(),
    S.REFUNDED: frozenset(),
    S.CLOSED: frozenset(),
    S.FAILED: frozenset(),
}


# A completed payment moves again only when the patient asks for it back (退费: a registration
# cancelled, 退号): the HIS posting is cancelled first, then the settlement and the cash go back
# by the same path as any unwinding. Never by itself: ALLOWED keeps every terminal state final.
RETURNS: dict[PaymentState, frozenset[PaymentState]] = {
    S.COMPLETED: frozenset({S.UNWINDING, S.REFUNDING}),
}


class IllegalTransition(Exception):
    def __init__(self, current: PaymentState, target: PaymentState) -> None:
        super().__init__(f"a payment cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


def check_transition(current: PaymentState, target: PaymentState, *, giving_back: bool = False) -> PaymentState:
    """Return ``target`` if the machine allows ``current → target``; raise otherwise.

    ``giving_back``: the patient asked for a completed payment back (``RETURNS``), nothing else.
    """
    if target in ALLOWED[current] or (giving_back and target in RETURNS.get(current, frozenset())):
        return target
    raise IllegalTransition(current, target)


class PaymentMode(StrEnum):
    INSURANCE = "insurance"
    """Settled with the insurance platform; the patient pays the cash part."""
    SELF_PAY = "self_pay"
    """Paid in full by the patient (no insurance, or items insurance does not cover)."""


class PayMethod(StrEnum):
    QR = "qr"
    """The kiosk shows a QR code; the patient scans it with WeChat/Alipay/UnionPay."""
    PAYMENT_CODE = "payment_code"
    """The patient shows their phone's payment code to the kiosk's scanner."""
    BANK_CARD = "bank_card"
    """The bank POS on the kiosk."""
    NONE = "none"
    """Nothing to pay in cash: insurance and the personal account covered the bill."""


@dataclass(frozen=True)
class Split:
    """How a bill divides: insurance fund, personal account and cash. Always sums to the total."""

    total: Decimal
    fund: Decimal
    account: Decimal
    cash: Decimal

    def __post_init__(self) -> None:
        for name in ("total", "fund", "account", "cash"):
            value = getattr(self, name)
            if value != value.quantize(CENT):
                raise ValueError(f"{name} has more than two decimal places: {value}")
            if value < 0:
                raise ValueError(f"{name} cannot be negative: {value}")
        if self.fund + self.account + self.cash != self.total:
            raise AmountMismatch("split", self.total, self.fund + self.account + self.cash)

    @classmethod
    def self_pay(cls, total: Decimal) -> "Split":
        zero = Decimal("0.00")
        return cls(total, zero, zero, total)


class AmountMismatch(Exception):
    """Two amounts that must agree do not (tender #9): the order halts and is unwound."""

    def __init__(self, check: str, expected: Decimal, actual: Decimal) -> None:
        super().__init__(f"{check}: expected {expected}, got {actual}")
        self.check = check
        self.expected = expected
        self.actual = actual


CHECK_LABELS = {
    "detail_total": "医院账单金额与上传医保的明细金额不一致",
    "settlement_total": "医保结算金额与医院账单金额不一致",
    "split": "医保结算各部分之和与总金额不一致",
    "cash_paid": "实际支付金额与应付金额不一致",
    "settlement_cash": "医保结算的现金部分与预结算不一致",
}


def check_equal(check: str, expected: Decimal, actual: Decimal) -> None:
    if expected != actual:
        raise AmountMismatch(check, expected, actual)


def refundable(paid: Decimal, refunded: Decimal, amount: Decimal) -> Decimal:
    """How much of ``amount`` may still be refunded: never more than was paid."""
    if amount < 0:
        raise ValueError("a refund cannot be negative")
    return min(amount, max(paid - refunded, Decimal("0.00")))


def pos_give_back_kind(sold_at: datetime, now: datetime, tz: tzinfo) -> str:
    """How the kiosk's bank POS gives a card sale back: ``void`` (撤销) while the sale is in the
    terminal's open batch, which the bank settles at the end of the hospital's day; ``refund``
    (退货) after that. Both times are aware; the day is the hospital's, not UTC's."""
    return "void" if sold_at.astimezone(tz).date() == now.astimezone(tz).date() else "refund"


# -- idempotency keys: derived from the order and the step, so a retry can never charge twice ----
def out_trade_no(order_no: str, attempt: int = 1) -> str:
    return f"{order_no}P{attempt}"


def out_refund_no(order_no: str, n: int = 1) -> str:
    return f"{order_no}R{n}"


def step_key(order_no: str, step: str) -> str:
    return f"{order_no}:{step}"
