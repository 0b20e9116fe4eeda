"""The channel's daily statement (trade bill) as text, modelled on WeChat Pay's trade bill.

A header line of column names; one line per trade and per refund, every field prefixed by a
backtick so a spreadsheet keeps long numbers as text; then a summary header and a summary line.
Lines end in CRLF. docs/simulators/payment.md describes the format column by column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

from medkiosk.domain.money import CENT

COLUMNS = ("交易时间", "商户号", "支付渠道", "渠道订单号", "商户订单号", "交易类型", "交易状态", "订单金额",
           "渠道退款单号", "商户退款单号", "退款金额", "退款状态", "商品名称", "手续费")
SUMMARY_COLUMNS = ("总交易单数", "总交易金额", "总退款单数", "总退款金额", "手续费总金额")
TRADE, REFUND = "SUCCESS", "REFUND"
"""The 交易状态 of a trade line and of a refund line."""
NEWLINE = "\r\n"
_ZERO = Decimal("0.00")
# A field can hold neither the separator nor the backtick; descriptions are the only free text.
_UNSAFE = str.maketrans({",": "，", "`": "'", "\r": " ", "\n": " "})


class StatementLine(NamedTuple):
    """One trade (``state`` SUCCESS) or one refund (``state`` REFUND) on the statement."""

    time: dt.datetime
    """China time: when a trade was paid, when a refund was accepted."""
    channel: str
    transaction_id: str
    out_trade_no: str
    trade_type: str
    state: str
    amount: Decimal
    """What the channel took for the trade (on a refund line: the trade's paid amount)."""
    description: str
    fee: Decimal
    """The channel's fee; negative on a refund line (the fee returned)."""
    refund_id: str = ""
    out_refund_no: str = ""
    refund_amount: Decimal = _ZERO
    refund_state: str = ""


def fee_of(amount: Decimal, rate: Decimal) -> Decimal:
    """The channel's fee on an amount, to the cent, half up (a refund's fee is returned the same way)."""
    return (amount * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def render_statement(merchant_id: str, lines: Iterable[StatementLine]) -> str:
    """The statement text: header, the lines in the order given, the summary."""
    out = [",".join(COLUMNS)]
    trades = refunds = 0
    trade_amount = refund_amount = fees = _ZERO
    # A day has few distinct seconds and amounts compared with its lines: format each once.
    times: dict[dt.datetime, str] = {}
    amounts: dict[Decimal, str] = {}

    def money(value: Decimal) -> str:
        text = amounts.get(value)
        if text is None:
            text = amounts[value] = f"{value:.2f}"
        return text

    for line in lines:
        if line.state == TRADE:
            trades += 1
            trade_amount += line.amount
        else:
            refunds += 1
            refund_amount += line.refund_amount
        fees += line.fee
        at = times.get(line.time)
        if at is None:
            at = times[line.time] = f"{line.time:%Y-%m-%d %H:%M:%S}"
        out.append("`" + ",`".join((
            at, merchant_id, line.channel, line.transaction_id, line.out_trade_no, line.trade_type, line.state,
            money(line.amount), line.refund_id, line.out_refund_no, money(line.refund_amount), line.refund_state,
            line.description.translate(_UNSAFE), money(line.fee))))
    out.append(",".join(SUMMARY_COLUMNS))
    out.append("`" + ",`".join((str(trades), f"{trade_amount:.2f}", str(refunds), f"{refund_amount:.2f}",
                                f"{fees:.2f}")))
    return NEWLINE.join(out) + NEWLINE
