"""The channel's statement: what the simulator writes, the adapter reads back exactly, fast and tolerantly."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medkiosk.adapters.payment import (
    PaymentChannel,
    Refund,
    RefundState,
    StatementFormatError,
    Trade,
    iter_statement,
    parse_statement,
)
from medkiosk.simulators.payment.records import CHINA_TZ
from medkiosk.simulators.payment.state import code_behaviour
from medkiosk.simulators.payment.statement import StatementLine, fee_of, render_statement

MERCHANT = "1900000109"
RATE = Decimal("0.006")
HEADER = "交易时间,商户号,支付渠道,渠道订单号,商户订单号,交易类型,交易状态,订单金额,渠道退款单号,商户退款单号,退款金额,退款状态,商品名称,手续费"
SUMMARY_HEADER = "总交易单数,总交易金额,总退款单数,总退款金额,手续费总金额"

cents = st.integers(min_value=1, max_value=10**9).map(lambda c: Decimal(c).scaleb(-2))
out_no = st.text("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ_-|*", min_size=6, max_size=32)
digits = st.text("0123456789", min_size=20, max_size=32)
moments = st.datetimes(min_value=dt.datetime(2026, 11, 25), max_value=dt.datetime(2026, 11, 25, 23, 59, 59)) \
    .map(lambda t: t.replace(microsecond=0, tzinfo=CHINA_TZ))
descriptions = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@st.composite
def statement_lines(draw) -> StatementLine:
    amount = draw(cents)
    common = {"time": draw(moments), "channel": draw(st.sampled_from([c.value for c in PaymentChannel])),
              "transaction_id": draw(digits), "out_trade_no": draw(out_no),
              "trade_type": draw(st.sampled_from(["NATIVE", "MICROPAY"])), "amount": amount,
              "description": draw(descriptions)}
    if draw(st.booleans()):
        return StatementLine(state="SUCCESS", fee=fee_of(amount, RATE), **common)
    refunded = draw(cents.filter(lambda c: c <= amount))
    return StatementLine(state="REFUND", fee=Decimal("0.00") - fee_of(refunded, RATE), refund_id=draw(digits),
                         out_refund_no=draw(out_no), refund_amount=refunded,
                         refund_state=draw(st.sampled_from([s.value for s in RefundState])), **common)


def sanitised(text: str) -> str:
    """What a description becomes on the statement: no separators, no backticks, no line breaks, no edge spaces."""
    return text.replace(",", "，").replace("`", "'").replace("\r", " ").replace("\n", " ").strip()


@settings(max_examples=150, deadline=None)
@given(st.lists(statement_lines(), max_size=30))
def test_every_line_the_channel_writes_reads_back_exactly(lines):
    statement = parse_statement(render_statement(MERCHANT, lines))

    wrote_trades = [line for line in lines if line.state == "SUCCESS"]
    wrote_refunds = [line for line in lines if line.state == "REFUND"]
    assert statement.trades == [
        Trade(line.time, MERCHANT, PaymentChannel(line.channel), line.transaction_id, line.out_trade_no,
              line.trade_type, line.amount, sanitised(line.description), line.fee) for line in wrote_trades]
    assert statement.refunds == [
        Refund(line.time, MERCHANT, PaymentChannel(line.channel), line.transaction_id, line.out_trade_no,
               line.trade_type, line.amount, line.refund_id, line.out_refund_no, line.refund_amount,
               RefundState(line.refund_state), sanitised(line.description), line.fee) for line in wrote_refunds]
    summary = statement.summary
    assert (summary.trade_count, summary.refund_count) == (len(wrote_trades), len(wrote_refunds))
    assert summary.trade_amount == sum((line.amount for line in wrote_trades), Decimal(0))
    assert summary.refund_amount == sum((line.refund_amount for line in wrote_refunds), Decimal(0))
    assert summary.fee_total == sum((line.fee for line in lines), Decimal(0))


def test_a_200000_line_statement_streams_through_with_exact_counts_and_sums():
    trades = 180_000
    refunds = 20_000
    expected_amount = expected_refunds = expected_fees = Decimal(0)

    def lines():
        nonlocal expected_amount, expected_refunds, expected_fees
        yield HEADER + "\r\n"
        for i in range(trades + refunds):
            at = f"2026-11-25 {8 + i // 36000:02d}:{i // 600 % 60:02d}:{i // 10 % 60:02d}"
            amount = Decimal(i % 99_999 + 1).scaleb(-2)
            if i % 10 == 3:
                refunded = (amount / 2).quantize(Decimal("0.01"))
                fee = Decimal("0.00") - fee_of(refunded, RATE)
                expected_refunds += refunded
                yield (f"`{at},`{MERCHANT},`wechat,`4200{i:024d},`K{i:015d},`NATIVE,`REFUND,`{amount},"
                       f"`5000{i:024d},`R{i:015d},`{refunded},`SUCCESS,`门诊缴费,`{fee}\r\n")
            else:
                fee = fee_of(amount, RATE)
                expected_amount += amount
                yield (f"`{at},`{MERCHANT},`alipay,`4200{i:024d},`K{i:015d},`MICROPAY,`SUCCESS,`{amount},"
                       f"`,`,`0.00,`,`门诊缴费,`{fee}\r\n")
            expected_fees += fee
        yield SUMMARY_HEADER + "\r\n"
        yield f"`{trades},`{expected_amount},`{refunds},`{expected_refunds},`{expected_fees}\r\n"

    started = time.perf_counter()
    statement = parse_statement(lines())
    elapsed = time.perf_counter() - started

    assert (len(statement.trades), len(statement.refunds)) == (trades, refunds)
    assert sum(t.amount for t in statement.trades) == expected_amount == statement.summary.trade_amount
    assert sum(r.refund_amount for r in statement.refunds) == expected_refunds
    assert statement.summary.fee_total == expected_fees
    assert statement.refunds[-1].out_refund_no == f"R{trades + refunds - 7:015d}"
    assert elapsed < 15, f"200,000 lines took {elapsed:.1f} s: the reader is no longer linear"


def small_statement() -> str:
    base = dt.datetime(2026, 11, 25, 9, 30, tzinfo=CHINA_TZ)
    return render_statement(MERCHANT, [
        StatementLine(base, "wechat", "4200000000000000000000000001", "K20261125001P1", "NATIVE", "SUCCESS",
                      Decimal("25.50"), "门诊缴费", Decimal("0.15")),
        StatementLine(base + dt.timedelta(minutes=5), "wechat", "4200000000000000000000000001", "K20261125001P1",
                      "NATIVE", "REFUND", Decimal("25.50"), "门诊缴费", Decimal("-0.03"),
                      "5000000000000000000000000002", "K20261125001R1", Decimal("5.50"), "SUCCESS"),
    ])


def test_the_reader_does_not_mind_missing_backticks_lf_line_ends_a_bom_or_blank_lines():
    text = small_statement()
    plain = "\ufeff" + text.replace("`", "").replace("\r\n", "\n").replace("\n总交易单数", "\n\n总交易单数") + "\n\n"

    assert parse_statement(plain) == parse_statement(text)


def test_the_reader_finds_columns_by_name_and_skips_ones_it_does_not_know():
    header, trade, refund, summary_header, summary, _end = small_statement().split("\r\n")

    def reordered(line: str, extra: str) -> str:
        return ",".join([extra, *reversed(line.split(","))])

    text = "\r\n".join([reordered(header, "备注"), reordered(trade, "`x"), reordered(refund, "`x"),
                         reordered(summary_header, "说明"), reordered(summary, "`y")])

    assert parse_statement(text) == parse_statement(small_statement())


def test_a_statement_read_line_by_line_from_a_file_is_the_same(tmp_path):
    path = tmp_path / "statement.csv"
    path.write_text(small_statement(), encoding="utf-8", newline="")
    with path.open(encoding="utf-8", newline="") as lines:
        rows = list(iter_statement(lines))

    assert rows[:-1] == [*parse_statement(small_statement()).trades, *parse_statement(small_statement()).refunds]
    assert rows[-1].trade_count == 1


@pytest.mark.parametrize(("damage", "complaint"), [
    (lambda text: text.split("总交易单数")[0], "truncated"),
    (lambda text: text.replace("`1,`25.50", "`1,`25.60"), "总交易金额"),
    (lambda text: text.replace("`25.50,`,", "`25.5O,`,"), "line 2"),
    (lambda text: text.replace("`wechat", "`paypal", 1), "line 2"),
    (lambda text: text.replace("`门诊缴费", "`门诊,缴费", 1), "15 fields"),
    (lambda text: text.replace("商户订单号", "订单号"), "lacks 商户订单号"),
    (lambda text: text + "`junk\r\n", "after the summary"),
    (lambda text: "", "empty"),
])
def test_a_damaged_statement_is_an_error_never_a_short_statement(damage, complaint):
    with pytest.raises(StatementFormatError, match=complaint):
        parse_statement(damage(small_statement()))


@pytest.mark.parametrize(("code", "expected"), [
    ("130012345678901234", (PaymentChannel.WECHAT, "SUCCESS", None)),
    ("130112345678901234", (PaymentChannel.WECHAT, "USERPAYING", "confirm")),
    ("130212345678901234", (PaymentChannel.WECHAT, "USERPAYING", "decline")),
    ("130312345678901234", (PaymentChannel.WECHAT, "PAYERROR", None)),
    ("130412345678901234", (PaymentChannel.WECHAT, "USERPAYING", "never")),
    ("101234567890123456", (PaymentChannel.WECHAT, "SUCCESS", None)),
    ("2512345678901234", (PaymentChannel.ALIPAY, "SUCCESS", None)),
    ("6212345678901234567", (PaymentChannel.UNIONPAY, "SUCCESS", None)),
])
def test_payment_codes_choose_the_wallet_and_the_magic_path(code, expected):
    channel, state, pending, _message = code_behaviour(code)
    assert (channel, state, pending) == expected


@pytest.mark.parametrize("code", ["", "1300", "160000000000000000", "13000000000000000a", "62123"])
def test_codes_no_wallet_issues_are_not_payment_codes(code):
    assert code_behaviour(code) is None
