"""Reconciliation rules, no I/O: the channel's statement against our journal, HIS postings, insurance differences."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from medkiosk.adapters.payment import Refund, Trade, iter_statement
from medkiosk.domain.reconciliation import (
    Certainty,
    ChannelMatcher,
    DiscrepancyKind,
    OurPosting,
    OurRefund,
    OurTrade,
    Severity,
    Source,
    SettlementTotals,
    classify_posting,
    classify_refund,
    classify_settlement,
    classify_trade,
    match_postings,
    missing_postings,
    totals_mismatch,
)
from medkiosk.simulators.payment.records import CHINA_TZ
from medkiosk.simulators.payment.statement import StatementLine, fee_of, render_statement

MERCHANT = "1900000109"
RATE = Decimal("0.006")
DAY = dt.datetime(2026, 11, 25, 9, 0, tzinfo=CHINA_TZ)
K = DiscrepancyKind


def trade_line(n: int, out_trade_no: str, amount: Decimal) -> StatementLine:
    return StatementLine(DAY + dt.timedelta(seconds=n), "wechat", f"4200{n:024d}", out_trade_no, "NATIVE",
                         "SUCCESS", amount, "门诊缴费", fee_of(amount, RATE))


def refund_line(n: int, out_trade_no: str, paid: Decimal, out_refund_no: str, refunded: Decimal,
                state: str = "SUCCESS") -> StatementLine:
    return StatementLine(DAY + dt.timedelta(seconds=n, minutes=30), "wechat", f"4200{n:024d}", out_trade_no,
                         "NATIVE", "REFUND", paid, "门诊缴费", Decimal("0.00") - fee_of(refunded, RATE),
                         f"5000{n:024d}", out_refund_no, refunded, state)


def run(lines: list[StatementLine], trades: dict[str, OurTrade], refunds: dict[str, OurRefund]) -> ChannelMatcher:
    """What the service does: stream the statement text through the matcher."""
    matcher = ChannelMatcher(dict(trades), dict(refunds))
    text = render_statement(MERCHANT, lines)
    for row in iter_statement(iter(text.splitlines(keepends=True))):
        if type(row) is Trade:
            matcher.trade(row)
        elif type(row) is Refund:
            matcher.refund(row)
    return matcher


def found(matcher: ChannelMatcher) -> set[tuple[str, str]]:
    certain, late_trades, late_refunds = matcher.missing()
    assert not late_trades and not late_refunds
    return {(d.kind.value, d.reference) for d in matcher.discrepancies + certain} | {
        ("unknown_trade", number) for number, _ in matcher.unknown_trades} | {
        ("unknown_refund", number) for number, *_ in matcher.unknown_refunds}


def fen(amount: Decimal) -> int:
    return int(amount * 100)


@dataclass
class Day:
    """A consistent day: our journal and the channel's statement lines agree on every order."""

    lines: list[StatementLine]
    trades: dict[str, OurTrade]
    refunds: dict[str, OurRefund]


amounts = st.integers(min_value=1, max_value=10**7).map(lambda c: Decimal(c).scaleb(-2))


@st.composite
def days(draw) -> Day:
    count = draw(st.integers(min_value=1, max_value=25))
    paid = draw(st.lists(amounts, min_size=count, max_size=count))
    refunded = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    lines, trades, refunds = [], {}, {}
    for n, (amount, was_refunded) in enumerate(zip(paid, refunded, strict=True)):
        order_no = f"PO20261125{n:010d}"
        out_trade_no, out_refund_no = f"{order_no}P1", f"{order_no}R1"
        lines.append(trade_line(n, out_trade_no, amount))
        state = "refunded" if was_refunded else "completed"
        trades[out_trade_no] = OurTrade(state, fen(amount), Certainty.CERTAIN)
        if was_refunded:
            lines.append(refund_line(n, out_trade_no, amount, out_refund_no, amount))
            refunds[out_refund_no] = OurRefund(out_trade_no, order_no, state, fen(amount), Certainty.CERTAIN)
    return Day(lines, trades, refunds)


@settings(max_examples=80, deadline=None)
@given(days())
def test_a_day_where_both_sides_agree_has_no_discrepancy(day):
    matcher = run(day.lines, day.trades, day.refunds)
    assert found(matcher) == set()
    assert matcher.matched_trades == len(day.trades) and matcher.matched_refunds == len(day.refunds)


@settings(max_examples=120, deadline=None)
@given(days(), st.data())
def test_each_planted_difference_is_found_and_only_it(day, data):
    """Plant one difference of each kind the statement can show; exactly those come back."""
    lines, trades, refunds = list(day.lines), dict(day.trades), dict(day.refunds)
    expected = set()
    trade_lines = [line for line in lines if line.state == "SUCCESS"]
    victim = data.draw(st.sampled_from(trade_lines))
    what = data.draw(st.sampled_from(["drop_trade", "change_amount", "extra_trade", "ours_refunded_only",
                                      "refund_amount", "channel_refund_only"]))
    if what == "drop_trade":  # we recorded the money, the channel did not
        lines = [line for line in lines if line is not victim]
        expected.add((K.OURS_ONLY.value, victim.out_trade_no))
    elif what == "change_amount":
        lines = [line._replace(amount=line.amount + Decimal("0.01")) if line is victim else line for line in lines]
        expected.add((K.AMOUNT_MISMATCH.value, victim.out_trade_no))
    elif what == "extra_trade":  # paid at the channel for an order we never recorded
        lines.append(trade_line(999, "PO20261125XXXXXXXXXXP1", Decimal("12.00")))
        expected.add(("unknown_trade", "PO20261125XXXXXXXXXXP1"))
    elif what == "ours_refunded_only":  # we refunded, the channel shows the trade only
        order_no = victim.out_trade_no[:-2]
        refund_no = f"{order_no}R1"
        lines = [line for line in lines if line.out_refund_no != refund_no]
        trades[victim.out_trade_no] = trades[victim.out_trade_no]._replace(state="refunded")
        refunds[refund_no] = OurRefund(victim.out_trade_no, order_no, "refunded", fen(victim.amount),
                                       Certainty.CERTAIN)
        expected.add((K.STATE_MISMATCH.value, refund_no))
    elif what == "refund_amount":
        order_no = victim.out_trade_no[:-2]
        refund_no = f"{order_no}R1"
        lines = [line for line in lines if line.out_refund_no != refund_no]
        lines.append(refund_line(5, victim.out_trade_no, victim.amount, refund_no, Decimal("0.01")))
        refunds[refund_no] = OurRefund(victim.out_trade_no, order_no, "refunded", fen(victim.amount) + 1,
                                       Certainty.CERTAIN)
        expected.add((K.REFUND_MISMATCH.value, refund_no))
    else:  # a refund made by hand at the merchant console
        lines.append(refund_line(7, victim.out_trade_no, victim.amount, "MANUAL-REFUND-1", Decimal("0.01")))
        expected.add(("unknown_refund", "MANUAL-REFUND-1"))
    assert found(run(lines, trades, refunds)) == expected


def test_orders_before_the_day_are_matched_but_never_missed():
    trades = {"OLDP1": OurTrade("completed", 1000, Certainty.LOOKBACK),
              "NOWP1": OurTrade("completed", 2000, Certainty.CERTAIN),
              "LATEP1": OurTrade("completed", 3000, Certainty.LATE),
              "UNPAIDP1": OurTrade("closed", 0, Certainty.CERTAIN)}
    matcher = run([trade_line(1, "NOWP1", Decimal("20.00"))], trades, {})
    certain, late, _ = matcher.missing()
    assert certain == [] and late == ["LATEP1"]  # OLD was yesterday's; an unpaid order is never missing


def test_an_unknown_trade_is_channel_only_and_says_refund_it():
    d = classify_trade("XP1", None, Decimal("15.00"))
    assert (d.source, d.kind, d.severity, d.theirs) == (Source.CHANNEL, K.CHANNEL_ONLY, Severity.CRITICAL,
                                                        Decimal("15.00"))
    assert "退款" in d.fix


def test_a_trade_for_a_closed_order_is_channel_only_and_one_in_progress_a_warning():
    closed = classify_trade("XP1", OurTrade("closed", 0, Certainty.CERTAIN), Decimal("15.00"))
    waiting = classify_trade("XP1", OurTrade("awaiting_payment", 0, Certainty.CERTAIN), Decimal("15.00"))
    assert closed.kind is K.CHANNEL_ONLY and "已关闭" in closed.message
    assert (waiting.kind, waiting.severity) == (K.STATE_MISMATCH, Severity.WARNING)


def test_refund_states_the_channel_reports():
    ours = OurRefund("XP1", "X", "refunded", 1500, Certainty.CERTAIN)
    assert classify_refund("XR1", ours, Decimal("15.00"), "SUCCESS") is None
    assert classify_refund("XR1", ours, Decimal("15.00"), "PROCESSING") is None
    abnormal = classify_refund("XR1", ours, Decimal("15.00"), "ABNORMAL")
    assert abnormal.kind is K.STATE_MISMATCH and "人工退款" in abnormal.fix
    pending = classify_refund("XR1", ours._replace(state="refunding"), Decimal("15.00"), "SUCCESS")
    assert (pending.kind, pending.severity) == (K.STATE_MISMATCH, Severity.WARNING)


@dataclass
class Posting:
    idempotency_key: str
    receipt_no: str = "R0001"
    status: str = "posted"
    total: Decimal = Decimal("30.00")
    fund: Decimal = Decimal("0.00")
    account: Decimal = Decimal("0.00")
    cash: Decimal = Decimal("30.00")
    posted_at: dt.datetime = DAY


def posting(order_no: str, state: str = "completed", total: int = 3000,
            certainty: Certainty = Certainty.CERTAIN) -> OurPosting:
    return OurPosting(order_no, state, total, 0, 0, total, certainty)


def test_his_postings_against_our_completed_orders():
    ours = {"A:post": posting("A"), "B:post": posting("B"), "C:post": posting("C"),
            "OLD:post": posting("OLD", certainty=Certainty.LOOKBACK)}
    found_, unknown = match_postings([Posting("A:post"), Posting("C:post", cash=Decimal("31.00")),
                                      Posting("Z:post")], ours)
    assert [(d.kind, d.reference) for d in found_] == [(K.AMOUNT_MISMATCH, "C:post")]
    assert "现金" in found_[0].message
    assert [p.idempotency_key for p in unknown] == ["Z:post"]
    assert [(d.kind, d.reference) for d in missing_postings(ours)] == [(K.OURS_ONLY, "B:post")]


def test_his_posting_states_against_ours():
    assert classify_posting(Posting("Z:post"), None).kind is K.HIS_ONLY
    assert classify_posting(Posting("Z:post", status="cancelled"), None) is None
    refunded = classify_posting(Posting("A:post"), posting("A", state="refunded"))
    assert (refunded.kind, refunded.severity) == (K.STATE_MISMATCH, Severity.CRITICAL) and "撤销" in refunded.fix
    cancelled = classify_posting(Posting("A:post", status="cancelled"), posting("A"))
    assert cancelled.kind is K.STATE_MISMATCH
    assert classify_posting(Posting("A:post", status="cancelled"), posting("A", state="refunded")) is None


@dataclass
class Amount:
    field: str
    hospital: Decimal | None
    platform: Decimal | None


@dataclass
class Difference:
    setl_id: str
    kind: str
    platform_state: str
    note: str = ""
    amounts: tuple = ()


def test_insurance_differences_become_discrepancies_with_fixes():
    cancelled = classify_settlement(Difference("S1", "hospital_only", "cancelled",
                                               amounts=(Amount("medfee_sumamt", Decimal("50.00"), None),)), "PO1")
    assert (cancelled.kind, cancelled.order_no, cancelled.ours) == (K.OURS_ONLY, "PO1", Decimal("50.00"))
    assert "已撤销" in cancelled.message
    extra = classify_settlement(Difference("S2", "platform_only", "valid"), None)
    assert extra.kind is K.PLATFORM_ONLY and "2208" in extra.fix
    amount = classify_settlement(Difference("S3", "amount_mismatch", "valid", amounts=(
        Amount("fund_pay_sumamt", Decimal("66.60"), Decimal("65.60")),)), "PO3")
    assert amount.kind is K.AMOUNT_MISMATCH and "统筹：本系统 66.60 元，平台 65.60 元" in amount.message


def test_totals_that_disagree_without_a_detail_say_so():
    @dataclass
    class Totals:
        consistent: bool = False
        description: str = "不一致：结算笔数：医院1，平台2"
        total: Decimal | None = Decimal("100.00")
        fund: Decimal | None = None
        account: Decimal | None = None
        count: int | None = 2

    ours = SettlementTotals().add(Decimal("50.00"), Decimal("30.00"), Decimal("0.00"))
    d = totals_mismatch(dt.date(2026, 11, 25), ours, Totals())
    assert (d.kind, d.reference, d.ours, d.theirs) == (K.TOTALS_MISMATCH, "2026-11-25", Decimal("50.00"),
                                                      Decimal("100.00"))
