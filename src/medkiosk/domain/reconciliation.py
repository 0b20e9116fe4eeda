"""Daily reconciliation (对账): our payment journal against the channel's statement, HIS, insurance
and the kiosks' bank POS settlement batches.

Pure rules, no I/O. The use case (services/reconciliation.py) loads a narrow index of our side,
streams the channel's statement through :class:`ChannelMatcher` and hands HIS postings, the
insurance platform's 3202 differences and the POS batch lines to the functions below; each
disagreement becomes a :class:`Discrepancy` that says, in Chinese for the finance office, what is
wrong and how to fix it.

Amounts inside the matchers are whole fen (``int``): a million comparisons of ints cost a fraction
of the same with ``Decimal``, and fen are exact. Every :class:`Discrepancy` speaks yuan (``Decimal``).

What "one day" means on each side (DESIGN 5, docs/reconciliation.md):

- the channel's statement lists trades by the day the patient paid and refunds by the day the
  channel accepted them (China time);
- our orders are paid within the pay window after they are created, so an order created in the
  last minutes of the day may be paid after midnight and belong to tomorrow's statement. Orders
  are therefore indexed with a :class:`Certainty`: created before the day (``LOOKBACK``: matched if
  they appear, never missed), inside it (``CERTAIN``), or in its last pay window (``LATE``: missing
  from the statement only after the channel confirms it was not paid after midnight).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import NamedTuple, Protocol

from medkiosk.domain.money import CENT
from medkiosk.domain.payment import PaymentState

ZERO = Decimal("0.00")


class Source(StrEnum):
    """Which outside system the journal is compared with."""

    CHANNEL = "channel"
    """The payment channel's daily statement (微信/支付宝/云闪付 聚合支付对账单)."""
    HIS = "his"
    """The HIS's payment postings (缴费登记)."""
    INSURANCE = "insurance"
    """The insurance platform's totals (3201) and details (3202)."""
    BANK_POS = "bank_pos"
    """The kiosks' bank POS settlement batches (银行MIS 批结算), for card payments."""


class DiscrepancyKind(StrEnum):
    """How the two sides disagree."""

    CHANNEL_ONLY = "channel_only"
    """The channel took money for a trade our journal does not record as paid: refund it."""
    HIS_ONLY = "his_only"
    """HIS holds a kiosk posting our journal does not have as a completed payment."""
    PLATFORM_ONLY = "platform_only"
    """The insurance platform holds a valid settlement our journal does not have."""
    OURS_ONLY = "ours_only"
    """Our journal records money or a posting the other side does not have: investigate."""
    AMOUNT_MISMATCH = "amount_mismatch"
    """Both sides have it, with different amounts."""
    REFUND_MISMATCH = "refund_mismatch"
    """A refund differs: another amount, or a refund only the channel knows."""
    STATE_MISMATCH = "state_mismatch"
    """Both sides know it but disagree on where it stands (we refunded, the channel did not …)."""
    TOTALS_MISMATCH = "totals_mismatch"
    """Day or batch totals disagree (3201; a POS batch's totals against its own lines) and the details
    do not say why."""
    POS_ONLY = "pos_only"
    """A kiosk's bank POS took money for a sale our journal does not record as paid: refund it."""
    BATCH_MISSING = "batch_missing"
    """A kiosk's POS settlement batch for the day never reached the service: card payments unchecked."""


class Severity(StrEnum):
    WARNING = "warning"
    """Money is not at risk yet (an order still in progress, a posting to repeat)."""
    CRITICAL = "critical"
    """Money sits on one side only: a patient or the hospital is short until someone acts."""


KIND_LABELS = {
    DiscrepancyKind.CHANNEL_ONLY: "渠道单边账",
    DiscrepancyKind.HIS_ONLY: "HIS单边账",
    DiscrepancyKind.PLATFORM_ONLY: "医保平台单边账",
    DiscrepancyKind.OURS_ONLY: "本系统单边账",
    DiscrepancyKind.AMOUNT_MISMATCH: "金额不一致",
    DiscrepancyKind.REFUND_MISMATCH: "退款不一致",
    DiscrepancyKind.STATE_MISMATCH: "状态不一致",
    DiscrepancyKind.TOTALS_MISMATCH: "总账不一致",
    DiscrepancyKind.POS_ONLY: "POS单边账",
    DiscrepancyKind.BATCH_MISSING: "批结算未上送",
}
SOURCE_LABELS = {Source.CHANNEL: "支付渠道", Source.HIS: "HIS", Source.INSURANCE: "医保平台",
                 Source.BANK_POS: "银行POS"}
STATE_NAMES = {
    PaymentState.CREATED: "正在计算费用", PaymentState.PRESETTLED: "待支付", PaymentState.AWAITING_PAYMENT: "等待支付",
    PaymentState.PAID: "已支付待结算", PaymentState.SETTLING: "医保结算中", PaymentState.SETTLED: "医保已结算",
    PaymentState.POSTING: "HIS登记中", PaymentState.COMPLETED: "缴费成功", PaymentState.UNWINDING: "撤销结算中",
    PaymentState.REFUNDING: "退款中", PaymentState.REFUNDED: "已退款", PaymentState.CLOSED: "已关闭（未扣款）",
    PaymentState.FAILED: "未能缴费（未扣款）",
}
IN_PROGRESS = frozenset(s.value for s in PaymentState if not s.terminal)


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One one-sided entry or mismatch, with what to do about it."""

    source: Source
    kind: DiscrepancyKind
    severity: Severity
    reference: str
    """What to look it up by on the other side: out_trade_no, out_refund_no, HIS posting key, setl_id, date."""
    message: str
    """What is wrong, in Chinese."""
    fix: str
    """What the finance office should do, in Chinese."""
    order_no: str | None = None
    ours: Decimal | None = None
    """Our amount (yuan), when there is one."""
    theirs: Decimal | None = None
    """The other side's amount (yuan), when there is one."""
    details: dict[str, str] = field(default_factory=dict)
    """Free of personal data: numbers, states, amounts as strings."""


def yuan(fen: int | None) -> Decimal | None:
    return None if fen is None else (Decimal(fen) / 100).quantize(CENT)


def fen(amount: Decimal) -> int:
    """Whole fen of an amount with at most two places (what the statement and the store hold)."""
    return int(amount * 100)


def state_name(state: str) -> str:
    try:
        return STATE_NAMES[PaymentState(state)]
    except ValueError:
        return state


# ================================================================================================
# the channel's statement
# ================================================================================================
class Certainty(IntEnum):
    """Whether an order of ours missing from the day's statement is a discrepancy (see the module doc)."""

    LOOKBACK = 0
    """Created before the day: it may appear (paid after midnight), it is never missed."""
    CERTAIN = 1
    """Created well inside the day: paid, it must be on the statement."""
    LATE = 2
    """Created in the day's last pay window: missing only if the channel says it was not paid later."""


class OurTrade(NamedTuple):
    """An order as the index of our side holds it, keyed by ``out_trade_no``."""

    state: str
    paid: int
    """Fen the channel took, as our journal recorded it (0: we never saw the payment)."""
    certainty: Certainty


class OurRefund(NamedTuple):
    """A refund our journal sent (or means to send), keyed by ``out_refund_no``."""

    out_trade_no: str
    order_no: str
    state: str
    """The order's state: refunded when we saw the channel finish it, refunding while it is on its way."""
    amount: int
    """Fen we asked the channel to refund."""
    certainty: Certainty


class StatementTrade(Protocol):
    """A trade line of the channel's statement (the adapter's ``Trade``)."""

    out_trade_no: str
    transaction_id: str
    amount: Decimal


class StatementRefund(Protocol):
    """A refund line of the channel's statement (the adapter's ``Refund``)."""

    out_trade_no: str
    out_refund_no: str
    refund_amount: Decimal
    refund_state: str


def classify_trade(out_trade_no: str, ours: OurTrade | None, trade_amount: Decimal) -> Discrepancy | None:
    """A trade on the statement against our order with that ``out_trade_no`` (None: we have none)."""
    theirs = trade_amount
    if ours is None:
        return Discrepancy(
            Source.CHANNEL, DiscrepancyKind.CHANNEL_ONLY, Severity.CRITICAL, out_trade_no,
            f"支付渠道收款 {theirs} 元，本系统没有这笔订单。",
            "在支付渠道商户平台按商户订单号核实后，原路全额退款给患者；并查明来源（测试交易、其他系统共用商户号等）。",
            theirs=theirs)
    paid = yuan(ours.paid)
    if ours.paid == 0:
        if ours.state in IN_PROGRESS:
            return Discrepancy(
                Source.CHANNEL, DiscrepancyKind.STATE_MISMATCH, Severity.WARNING, out_trade_no,
                f"支付渠道已收款 {theirs} 元，本系统订单仍为“{state_name(ours.state)}”，尚未记录收款。",
                "恢复任务会向渠道查询并继续办理（完成缴费或退款）；次日对账仍存在时，请信息中心检查该订单。",
                ours=ZERO, theirs=theirs, details={"state": ours.state})
        return Discrepancy(
            Source.CHANNEL, DiscrepancyKind.CHANNEL_ONLY, Severity.CRITICAL, out_trade_no,
            f"支付渠道收款 {theirs} 元，本系统订单为“{state_name(ours.state)}”，未记录收款。",
            "患者已付款但缴费未完成：在支付渠道按商户订单号原路全额退款，并告知患者重新缴费；核实HIS未登记该笔缴费。",
            ours=ZERO, theirs=theirs, details={"state": ours.state})
    if ours.paid != fen(theirs):
        return Discrepancy(
            Source.CHANNEL, DiscrepancyKind.AMOUNT_MISMATCH, Severity.CRITICAL, out_trade_no,
            f"金额不一致：本系统记录实收 {paid} 元，支付渠道为 {theirs} 元。",
            "以支付渠道实收为准核对：渠道多收的差额原路退还患者；渠道少收的，核实本系统记录后联系信息中心更正，不得向患者重复收款。",
            ours=paid, theirs=theirs, details={"state": ours.state})
    return None


def classify_refund(out_refund_no: str, ours: OurRefund | None, refund_amount: Decimal,
                    refund_state: str) -> Discrepancy | None:
    """A refund on the statement against our refund with that ``out_refund_no`` (None: we have none)."""
    theirs = refund_amount
    if ours is None:
        return Discrepancy(
            Source.CHANNEL, DiscrepancyKind.REFUND_MISMATCH, Severity.CRITICAL, out_refund_no,
            f"支付渠道有一笔退款 {theirs} 元，本系统没有这笔退款。",
            "核实是否为在商户平台人工发起的退款；如是，在HIS撤销对应缴费并登记退费原因；如不是，立即联系支付渠道冻结排查。",
            theirs=theirs, details={"refund_state": refund_state})
    asked = yuan(ours.amount)
    if ours.amount != fen(theirs):
        return Discrepancy(
            Source.CHANNEL, DiscrepancyKind.REFUND_MISMATCH, Severity.CRITICAL, out_refund_no,
            f"退款金额不一致：本系统申请退款 {asked} 元，支付渠道为 {theirs} 元。",
            "按支付渠道的退款记录核对：少退的差额补退给患者（新退款单号），多退的联系患者并上报财务科。",
            order_no=ours.order_no, ours=asked, theirs=theirs,
            details={"state": ours.state, "refund_state": refund_state})
    if refund_state == "ABNORMAL":
        return Discrepancy(
            Source.CHANNEL, DiscrepancyKind.STATE_MISMATCH, Severity.CRITICAL, out_refund_no,
            f"退款 {theirs} 元在支付渠道异常（如银行卡已注销），钱没有退到患者账户。",
            "联系患者，改为人工退款（现金或转账）并留存凭证；在支付渠道商户平台处理该异常退款。",
            order_no=ours.order_no, ours=asked, theirs=theirs,
            details={"state": ours.state, "refund_state": refund_state})
    if refund_state == "SUCCESS" and ours.state != PaymentState.REFUNDED.value:
        return Discrepancy(
            Source.CHANNEL, DiscrepancyKind.STATE_MISMATCH, Severity.WARNING, out_refund_no,
            f"支付渠道退款 {theirs} 元已成功，本系统订单仍为“{state_name(ours.state)}”。",
            "恢复任务会向渠道查询退款并更新订单；次日对账仍存在时，请信息中心检查该订单。",
            order_no=ours.order_no, ours=asked, theirs=theirs,
            details={"state": ours.state, "refund_state": refund_state})
    return None


def missing_trade(out_trade_no: str, ours: OurTrade, *, note: str = "") -> Discrepancy:
    """Our order says the channel took money; the day's statement has no such trade."""
    return Discrepancy(
        Source.CHANNEL, DiscrepancyKind.OURS_ONLY, Severity.CRITICAL, out_trade_no,
        f"本系统记录已收款 {yuan(ours.paid)} 元（订单“{state_name(ours.state)}”），支付渠道对账单没有这笔交易。" + note,
        "在支付渠道商户平台按商户订单号查询：确已收款的，向渠道申请补对账单；确未收款的，不得退款，"
        "请信息中心核查本系统记录，并核实HIS是否已登记该笔缴费。",
        ours=yuan(ours.paid), details={"state": ours.state})


def missing_refund(out_refund_no: str, ours: OurRefund, *, note: str = "") -> Discrepancy:
    """Our journal refunded (or is refunding); the day's statement has no such refund."""
    done = ours.state == PaymentState.REFUNDED.value
    return Discrepancy(
        Source.CHANNEL, DiscrepancyKind.STATE_MISMATCH, Severity.CRITICAL if done else Severity.WARNING,
        out_refund_no,
        (f"本系统记录已退款 {yuan(ours.amount)} 元，支付渠道对账单没有这笔退款，渠道仍显示该订单已收款。" if done else
         f"本系统正在退款 {yuan(ours.amount)} 元（订单“{state_name(ours.state)}”），支付渠道当天没有受理这笔退款。") + note,
        "在支付渠道商户平台按商户退款单号查询：渠道未退款的，用同一退款单号重新发起退款（不会重复退款）；"
        "已退款的，向渠道申请补对账单。",
        order_no=ours.order_no, ours=yuan(ours.amount), details={"state": ours.state, "out_trade_no": ours.out_trade_no})


@dataclass(frozen=True, slots=True)
class StatementTotals:
    trades: int = 0
    trade_amount: Decimal = ZERO
    refunds: int = 0
    refund_amount: Decimal = ZERO


class ChannelMatcher:
    """Streams a statement against the index of our side, one line at a time, keeping no line.

    ``trades`` and ``refunds`` are consumed: a matched entry is removed, so what remains at the end
    is what the statement lacks and memory falls as the statement is read. Lines whose number is
    not in the index are kept in ``unknown_trades`` / ``unknown_refunds`` for the caller to look
    up (an order created before the lookback, or none at all) and classify.
    """

    def __init__(self, trades: dict[str, OurTrade], refunds: dict[str, OurRefund]) -> None:
        self._trades = trades
        self._refunds = refunds
        self.discrepancies: list[Discrepancy] = []
        self.unknown_trades: list[tuple[str, Decimal]] = []
        self.unknown_refunds: list[tuple[str, str, Decimal, str]] = []
        """(out_refund_no, out_trade_no, refund_amount, refund_state)"""
        self.matched_trades = 0
        self.matched_refunds = 0

    def trade(self, line: StatementTrade) -> None:
        ours = self._trades.pop(line.out_trade_no, None)
        if ours is None:
            self.unknown_trades.append((line.out_trade_no, line.amount))
            return
        self.matched_trades += 1
        if ours.paid and ours.paid == int(line.amount * 100):
            return
        found = classify_trade(line.out_trade_no, ours, line.amount)
        if found is not None:
            self.discrepancies.append(found)

    def refund(self, line: StatementRefund) -> None:
        state = str(line.refund_state)
        ours = self._refunds.pop(line.out_refund_no, None)
        if ours is None:
            self.unknown_refunds.append((line.out_refund_no, line.out_trade_no, line.refund_amount, state))
            return
        self.matched_refunds += 1
        found = classify_refund(line.out_refund_no, ours, line.refund_amount, state)
        if found is not None:
            self.discrepancies.append(found)

    def missing(self) -> tuple[list[Discrepancy], list[str], list[str]]:
        """After the statement: (discrepancies for certain entries, late out_trade_nos, late out_refund_nos).

        A late entry is one the channel may have booked after midnight; the caller asks the channel
        about each before calling :func:`missing_trade` / :func:`missing_refund`.
        """
        found: list[Discrepancy] = []
        late_trades: list[str] = []
        late_refunds: list[str] = []
        for out_trade_no, ours in self._trades.items():
            if ours.paid and ours.certainty is not Certainty.LOOKBACK:
                if ours.certainty is Certainty.LATE:
                    late_trades.append(out_trade_no)
                else:
                    found.append(missing_trade(out_trade_no, ours))
        for out_refund_no, refund in self._refunds.items():
            if refund.certainty is Certainty.LATE:
                late_refunds.append(out_refund_no)
            elif refund.certainty is Certainty.CERTAIN:
                found.append(missing_refund(out_refund_no, refund))
        return found, late_trades, late_refunds

    def ours_trade(self, out_trade_no: str) -> OurTrade | None:
        return self._trades.get(out_trade_no)

    def ours_refund(self, out_refund_no: str) -> OurRefund | None:
        return self._refunds.get(out_refund_no)


# ================================================================================================
# HIS postings
# ================================================================================================
class OurPosting(NamedTuple):
    """What our journal says HIS should hold for one order (amounts in fen)."""

    order_no: str
    state: str
    total: int
    fund: int
    account: int
    cash: int
    certainty: Certainty


class HisPosting(Protocol):
    """A posting as the HIS lists it (the adapter's ``PostedPayment``)."""

    receipt_no: str
    idempotency_key: str
    status: str
    total: Decimal
    fund: Decimal
    account: Decimal
    cash: Decimal


_POSTING_FIELDS = (("total", "总金额"), ("fund", "统筹"), ("account", "个人账户"), ("cash", "现金"))


def classify_posting(posting: HisPosting, ours: OurPosting | None) -> Discrepancy | None:
    """A kiosk posting the HIS holds against the order it names (None: no such order of ours)."""
    key, receipt = posting.idempotency_key, posting.receipt_no
    posted = str(posting.status) == "posted"
    details = {"receipt_no": receipt, "his_status": str(posting.status)}
    if ours is None:
        if not posted:
            return None
        return Discrepancy(
            Source.HIS, DiscrepancyKind.HIS_ONLY, Severity.CRITICAL, key,
            f"HIS有一笔自助机缴费登记（收据号 {receipt}，{posting.total} 元），本系统没有对应订单。",
            "核实该收据的收款来源：无人收款的，在HIS撤销该缴费登记；有收款的，联系信息中心补查订单。",
            theirs=posting.total, details=details)
    details["state"] = ours.state
    completed = ours.state == PaymentState.COMPLETED.value
    if posted and not completed:
        if ours.state in IN_PROGRESS:
            return Discrepancy(
                Source.HIS, DiscrepancyKind.STATE_MISMATCH, Severity.WARNING, key,
                f"HIS已登记缴费（收据号 {receipt}），本系统订单仍为“{state_name(ours.state)}”。",
                "恢复任务会用同一幂等键继续办理，HIS不会重复登记；次日对账仍存在时，请信息中心检查该订单。",
                order_no=ours.order_no, ours=yuan(ours.total), theirs=posting.total, details=details)
        return Discrepancy(
            Source.HIS, DiscrepancyKind.STATE_MISMATCH, Severity.CRITICAL, key,
            f"HIS记为已缴费（收据号 {receipt}），本系统订单为“{state_name(ours.state)}”，患者的钱已退回或未收。",
            "在HIS撤销该缴费登记（患者的处方恢复为待缴费），并核实是否已发放药品或已做检查。",
            order_no=ours.order_no, ours=yuan(ours.total), theirs=posting.total, details=details)
    if not posted:
        if completed:
            return Discrepancy(
                Source.HIS, DiscrepancyKind.STATE_MISMATCH, Severity.CRITICAL, key,
                f"HIS已撤销该缴费（收据号 {receipt}），本系统订单仍为“缴费成功”，患者的钱没有退回。",
                "核实HIS撤销原因：已在窗口退费的，补记退款记录；未退费的，原路退款给患者或在HIS恢复该缴费。",
                order_no=ours.order_no, ours=yuan(ours.total), theirs=posting.total, details=details)
        return None
    differing = [(label, yuan(getattr(ours, name)), getattr(posting, name)) for name, label in _POSTING_FIELDS
                 if getattr(ours, name) != fen(getattr(posting, name))]
    if differing:
        shown = "；".join(f"{label}：本系统 {a} 元，HIS {b} 元" for label, a, b in differing)
        return Discrepancy(
            Source.HIS, DiscrepancyKind.AMOUNT_MISMATCH, Severity.CRITICAL, key,
            f"HIS登记金额与本系统不一致（收据号 {receipt}）：{shown}。",
            "以医保结算和支付渠道实收为准，在HIS更正该笔缴费的金额分项；涉及患者多付的差额予以退还。",
            order_no=ours.order_no, ours=yuan(ours.total), theirs=posting.total,
            details={**details, **{label: f"{a}/{b}" for label, a, b in differing}})
    return None


def missing_posting(key: str, ours: OurPosting) -> Discrepancy:
    """A completed order of ours the HIS has no posting for."""
    return Discrepancy(
        Source.HIS, DiscrepancyKind.OURS_ONLY, Severity.CRITICAL, key,
        f"本系统订单缴费成功（{yuan(ours.total)} 元），HIS没有对应的缴费登记，患者的处方仍显示未缴费。",
        "在HIS按该订单补登记缴费（或由信息中心用同一幂等键重新提交，HIS不会重复登记）；核实患者是否已在窗口重复缴费。",
        order_no=ours.order_no, ours=yuan(ours.total), details={"state": ours.state})


def match_postings(postings: Iterable[HisPosting],
                   ours: dict[str, OurPosting]) -> tuple[list[Discrepancy], list[HisPosting]]:
    """Postings against the index of our side (consumed); returns (discrepancies, unknown postings).

    Unknown postings name no indexed order: the caller looks them up and uses :func:`classify_posting`.
    What remains in ``ours`` afterwards has no posting; see :func:`missing_postings`.
    """
    found: list[Discrepancy] = []
    unknown: list[HisPosting] = []
    for posting in postings:
        entry = ours.pop(posting.idempotency_key, None)
        if entry is None:
            unknown.append(posting)
            continue
        discrepancy = classify_posting(posting, entry)
        if discrepancy is not None:
            found.append(discrepancy)
    return found, unknown


def missing_postings(ours: Mapping[str, OurPosting]) -> list[Discrepancy]:
    return [missing_posting(key, entry) for key, entry in ours.items()
            if entry.state == PaymentState.COMPLETED.value and entry.certainty is not Certainty.LOOKBACK]


# ================================================================================================
# insurance: 3201 totals, 3202 details
# ================================================================================================
@dataclass(frozen=True, slots=True)
class SettlementTotals:
    """Our valid settlements of the day, as 3201 sends them."""

    total: Decimal = ZERO
    fund: Decimal = ZERO
    account: Decimal = ZERO
    count: int = 0

    def add(self, total: Decimal, fund: Decimal, account: Decimal) -> "SettlementTotals":
        return SettlementTotals(self.total + total, self.fund + fund, self.account + account, self.count + 1)


class PlatformTotals(Protocol):
    consistent: bool
    description: str
    total: Decimal | None
    fund: Decimal | None
    account: Decimal | None
    count: int | None


class AmountDifference(Protocol):
    field: str
    hospital: Decimal | None
    platform: Decimal | None


class PlatformDifference(Protocol):
    """One difference 3202 lists (the adapter's ``ReconciliationDifference``)."""

    setl_id: str
    kind: str
    platform_state: str
    note: str
    amounts: tuple[AmountDifference, ...]


_SETTLEMENT_FIELDS = {"medfee_sumamt": "医疗费总额", "fund_pay_sumamt": "统筹", "acct_pay": "个人账户",
                      "psn_cash_pay": "现金"}
_PLATFORM_STATES = {"cancelled": "已撤销", "reversed": "已冲正", "unknown": "无此结算", "valid": "有效"}


def classify_settlement(difference: PlatformDifference, order_no: str | None) -> Discrepancy:
    """One settlement 3202 says differs, with the order it belongs to on our side (if any)."""
    setl_id, kind = difference.setl_id, str(difference.kind)
    platform_state = str(difference.platform_state)
    details = {"platform_state": platform_state, "note": difference.note}
    amounts = {a.field: a for a in difference.amounts}
    total = amounts.get("medfee_sumamt")
    if kind == "hospital_only":
        shown = _PLATFORM_STATES.get(platform_state, platform_state)
        if platform_state in ("cancelled", "reversed"):
            fix = ("平台已撤销该结算，统筹和个人账户已退回医保：本系统和HIS仍记为已缴费，须按自费金额向患者补收"
                   "或在HIS撤销该缴费并退还现金部分；请信息中心查明撤销来源。")
        elif platform_state == "valid":
            fix = "平台该结算有效但不在当日对账范围（跨日或清算机构不同）：按结算日期重新对账，无需退款。"
        else:
            fix = "平台没有该结算：核实本系统记录的结算号；如确未结算，统筹和个人账户部分须由患者补缴或重新结算。"
        return Discrepancy(
            Source.INSURANCE, DiscrepancyKind.OURS_ONLY, Severity.CRITICAL, setl_id,
            f"本系统记录医保结算有效，医保平台为“{shown}”。", fix, order_no=order_no,
            ours=total.hospital if total else None, details=details)
    if kind == "platform_only":
        return Discrepancy(
            Source.INSURANCE, DiscrepancyKind.PLATFORM_ONLY, Severity.CRITICAL, setl_id,
            "医保平台有一笔有效结算，本系统没有（或已撤销）对应订单。",
            "核实该结算对应的就诊：缴费未完成的，向医保平台撤销该结算（2208）；已在窗口缴费的，补记并通知信息中心。",
            order_no=order_no, theirs=total.platform if total else None, details=details)
    differing = [a for a in difference.amounts if a.hospital != a.platform]
    shown = "；".join(f"{_SETTLEMENT_FIELDS.get(a.field, a.field)}：本系统 {a.hospital} 元，平台 {a.platform} 元"
                     for a in differing)
    return Discrepancy(
        Source.INSURANCE, DiscrepancyKind.AMOUNT_MISMATCH, Severity.CRITICAL, setl_id,
        f"医保结算金额不一致：{shown}。",
        "以医保平台结算单为准核对：现金部分差额向患者退还或补收，并在HIS更正该笔缴费的分项金额。",
        order_no=order_no, ours=total.hospital if total else None, theirs=total.platform if total else None,
        details={**details, **{a.field: f"{a.hospital}/{a.platform}" for a in differing}})


def totals_mismatch(day: dt.date, ours: SettlementTotals, platform: PlatformTotals) -> Discrepancy:
    """3201 disagrees and 3202 found nothing settlement by settlement."""
    return Discrepancy(
        Source.INSURANCE, DiscrepancyKind.TOTALS_MISMATCH, Severity.WARNING, day.isoformat(),
        f"医保对总账不一致：{platform.description or '平台未说明'}（本系统 {ours.count} 笔、{ours.total} 元）。",
        "对明细账未发现差异：请在医保平台核对当日结算清单（含其他终端、窗口的结算是否误记到本机构编码下）。",
        ours=ours.total, theirs=platform.total,
        details={"count": str(ours.count), "platform_count": str(platform.count)})


# ================================================================================================
# the kiosks' bank POS settlement batches
# ================================================================================================
POS_KIND_NAMES = {"sale": "消费", "void": "撤销", "refund": "退货"}


class PosLine(NamedTuple):
    """A line of a kiosk's settled POS batch (amount in fen)."""

    key: str
    """The order key the POS made it under: a sale's out_trade_no, a void's or refund's out_refund_no."""
    kind: str
    """sale, void or refund."""
    amount: int
    reference: str
    """The bank's reference number (参考号)."""
    device_id: str
    terminal_id: str
    batch_no: str


class OurCardTrade(NamedTuple):
    """A bank-card transaction in our journal, keyed like the POS line it should match (amount in fen)."""

    order_no: str
    device_id: str
    kind: str
    """sale, or the give-back asked of the POS: void or refund."""
    state: str
    """The order's state."""
    done: bool
    """The kiosk reported the POS approved it (the journal step succeeded)."""
    amount: int
    """A sale: what our journal records as paid (0: no payment recorded); a give-back: what was asked."""


@dataclass(frozen=True, slots=True)
class BatchFigures:
    """A settled batch's totals as the terminal printed them, with its lines (fen)."""

    device_id: str
    terminal_id: str
    batch_no: str
    sale_count: int
    sale_amount: int
    void_count: int
    void_amount: int
    refund_count: int
    refund_amount: int
    net_amount: int
    lines: tuple[PosLine, ...]


def _pos_details(line: PosLine, ours: OurCardTrade | None = None) -> dict[str, str]:
    details = {"device_id": line.device_id, "terminal_id": line.terminal_id, "batch_no": line.batch_no,
               "pos_reference": line.reference, "pos_kind": line.kind}
    if ours is not None:
        details["state"] = ours.state
        if ours.kind != line.kind:
            details["asked_kind"] = ours.kind
    return details


def _is_give_back(kind: str) -> bool:
    return kind in ("void", "refund")


def classify_pos_line(line: PosLine, ours: OurCardTrade | None) -> Discrepancy | None:
    """One line of a POS batch against our journal's transaction under the same key (None: we have none)."""
    theirs = yuan(line.amount)
    kind_name = POS_KIND_NAMES.get(line.kind, line.kind)
    if ours is not None and _is_give_back(ours.kind) != _is_give_back(line.kind):
        ours = None  # the key names another kind of transaction of ours: not this one
    if line.kind == "sale":
        if ours is None:
            return Discrepancy(
                Source.BANK_POS, DiscrepancyKind.POS_ONLY, Severity.CRITICAL, line.key,
                f"自助机 {line.device_id} 的银行POS收款 {theirs} 元（参考号 {line.reference}），本系统没有这笔订单。",
                "在该机POS或收单银行商户平台按参考号核实后，对患者做退货（原路退回银行卡）；并查明来源（测试交易、人工刷卡等）。",
                theirs=theirs, details=_pos_details(line))
        if ours.amount == 0:
            if ours.state in IN_PROGRESS:
                return Discrepancy(
                    Source.BANK_POS, DiscrepancyKind.STATE_MISMATCH, Severity.WARNING, line.key,
                    f"银行POS已收款 {theirs} 元，本系统订单仍为“{state_name(ours.state)}”，尚未收到自助机的交易结果。",
                    "自助机会重发交易结果并继续办理（完成缴费或退款）；次日对账仍存在时，请信息中心检查该机的设备代理。",
                    order_no=ours.order_no, ours=ZERO, theirs=theirs, details=_pos_details(line, ours))
            return Discrepancy(
                Source.BANK_POS, DiscrepancyKind.POS_ONLY, Severity.CRITICAL, line.key,
                f"银行POS收款 {theirs} 元，本系统订单为“{state_name(ours.state)}”，未记录收款。",
                "患者已刷卡但缴费未完成：在该机POS按参考号做退货（原路退回银行卡），并告知患者重新缴费；核实HIS未登记该笔缴费。",
                order_no=ours.order_no, ours=ZERO, theirs=theirs, details=_pos_details(line, ours))
        if ours.amount != line.amount:
            return Discrepancy(
                Source.BANK_POS, DiscrepancyKind.AMOUNT_MISMATCH, Severity.CRITICAL, line.key,
                f"金额不一致：本系统记录银行卡实收 {yuan(ours.amount)} 元，银行POS为 {theirs} 元。",
                "以POS结算为准核对：POS多收的差额在POS做部分退货退还患者；POS少收的，核实本系统记录后联系信息中心更正，"
                "不得向患者重复收款。",
                order_no=ours.order_no, ours=yuan(ours.amount), theirs=theirs, details=_pos_details(line, ours))
        return None
    if ours is None:
        return Discrepancy(
            Source.BANK_POS, DiscrepancyKind.REFUND_MISMATCH, Severity.CRITICAL, line.key,
            f"自助机 {line.device_id} 的银行POS有一笔{kind_name} {theirs} 元（参考号 {line.reference}），本系统没有这笔退款。",
            "核实是否为在POS上人工做的撤销或退货；如是，在HIS撤销对应缴费并登记退费原因；如不是，立即联系收单银行排查。",
            theirs=theirs, details=_pos_details(line))
    if ours.amount != line.amount:
        return Discrepancy(
            Source.BANK_POS, DiscrepancyKind.REFUND_MISMATCH, Severity.CRITICAL, line.key,
            f"退款金额不一致：本系统要求退还 {yuan(ours.amount)} 元，银行POS{kind_name} {theirs} 元。",
            "按POS的结算记录核对：少退的差额在POS补做退货退给患者，多退的联系患者并上报财务科。",
            order_no=ours.order_no, ours=yuan(ours.amount), theirs=theirs, details=_pos_details(line, ours))
    if not ours.done:
        return Discrepancy(
            Source.BANK_POS, DiscrepancyKind.STATE_MISMATCH, Severity.WARNING, line.key,
            f"银行POS已{kind_name} {theirs} 元，本系统订单仍为“{state_name(ours.state)}”，尚未收到自助机的结果。",
            "自助机会重发结果并更新订单；次日对账仍存在时，请信息中心检查该机的设备代理。",
            order_no=ours.order_no, ours=yuan(ours.amount), theirs=theirs, details=_pos_details(line, ours))
    return None


def missing_pos_line(key: str, ours: OurCardTrade) -> Discrepancy:
    """A card transaction our journal says the POS made; the kiosk's batch for the day does not list it."""
    details = {"device_id": ours.device_id, "state": ours.state, "kind": ours.kind}
    if ours.kind == "sale":
        return Discrepancy(
            Source.BANK_POS, DiscrepancyKind.OURS_ONLY, Severity.CRITICAL, key,
            f"本系统记录银行卡已收款 {yuan(ours.amount)} 元（订单“{state_name(ours.state)}”），"
            f"自助机 {ours.device_id} 的POS批结算没有这笔交易。",
            "在该机POS或收单银行商户平台按订单的参考号查询：确已扣款的，联系收单银行补入结算；确未扣款的，不得退款，"
            "请信息中心核查本系统记录，并核实HIS是否已登记该笔缴费。",
            order_no=ours.order_no, ours=yuan(ours.amount), details=details)
    return Discrepancy(
        Source.BANK_POS, DiscrepancyKind.STATE_MISMATCH, Severity.CRITICAL, key,
        f"本系统记录已在POS{POS_KIND_NAMES.get(ours.kind, ours.kind)} {yuan(ours.amount)} 元，"
        f"自助机 {ours.device_id} 的POS批结算没有这笔交易，患者可能没有收到退款。",
        "在该机POS按原交易参考号查询：未退的，在POS做退货退给患者并登记；已退的，联系收单银行核对结算明细。",
        order_no=ours.order_no, ours=yuan(ours.amount), details=details)


def match_pos_lines(lines: Iterable[PosLine], ours: Mapping[str, OurCardTrade],
                    expected: Iterable[str]) -> tuple[list[Discrepancy], int]:
    """POS batch lines against our card transactions; ``expected`` are the keys of ours the batches must
    list (done, in the batches' period). Returns (discrepancies, lines matched without one)."""
    found: list[Discrepancy] = []
    seen: set[str] = set()
    clean = 0
    for line in lines:
        seen.add(line.key)
        discrepancy = classify_pos_line(line, ours.get(line.key))
        if discrepancy is None:
            clean += 1
        else:
            found.append(discrepancy)
    found += [missing_pos_line(key, ours[key]) for key in expected if key not in seen]
    return found, clean


def batch_totals_mismatch(batch: BatchFigures) -> Discrepancy | None:
    """The terminal's own totals against the sum of its lines (a slip that does not add up)."""
    summed = {kind: [line.amount for line in batch.lines if line.kind == kind] for kind in POS_KIND_NAMES}
    printed = {"sale": (batch.sale_count, batch.sale_amount), "void": (batch.void_count, batch.void_amount),
               "refund": (batch.refund_count, batch.refund_amount)}
    differing = [kind for kind in POS_KIND_NAMES if printed[kind] != (len(summed[kind]), sum(summed[kind]))]
    net = sum(summed["sale"]) - sum(summed["void"]) - sum(summed["refund"])
    if not differing and net == batch.net_amount:
        return None
    shown = "；".join(f"{POS_KIND_NAMES[kind]}：汇总 {printed[kind][0]} 笔 {yuan(printed[kind][1])} 元，"
                     f"明细 {len(summed[kind])} 笔 {yuan(sum(summed[kind]))} 元" for kind in differing)
    return Discrepancy(
        Source.BANK_POS, DiscrepancyKind.TOTALS_MISMATCH, Severity.WARNING, f"{batch.device_id}/{batch.batch_no}",
        f"自助机 {batch.device_id} 的POS批结算（批次号 {batch.batch_no}）汇总与明细不符：{shown or '净额不符'}。",
        "在该机POS打印结算单与收单银行的结算记录核对；以银行入账为准，并请信息中心检查该机POS驱动。",
        ours=yuan(net), theirs=yuan(batch.net_amount),
        details={"device_id": batch.device_id, "terminal_id": batch.terminal_id, "batch_no": batch.batch_no})


def missing_batch(device_id: str, day: dt.date, count: int, amount: int) -> Discrepancy:
    """A kiosk whose POS batch for the day never arrived; ``count``/``amount`` are our card transactions there."""
    if count:
        message = (f"自助机 {device_id} 没有上送 {day} 的银行POS批结算，本系统当天在该机有 {count} 笔银行卡交易"
                   f"（收款 {yuan(amount)} 元），无法逐笔核对。")
    else:
        message = f"自助机 {device_id} 没有上送 {day} 的银行POS批结算（此前每天都有）。"
    return Discrepancy(
        Source.BANK_POS, DiscrepancyKind.BATCH_MISSING, Severity.CRITICAL if count else Severity.WARNING, device_id,
        message,
        "检查该机是否在线、设备代理是否运行（代理会在下一轮补做结算并上送）；当天仍未收到的，在POS打印结算单或向收单银行"
        "索取该终端的结算明细，人工核对后重新对账。",
        ours=yuan(amount) if count else None, details={"device_id": device_id, "transactions": str(count)})
