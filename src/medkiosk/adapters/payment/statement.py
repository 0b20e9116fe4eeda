"""Read the channel's daily statement (trade bill): trades, refunds and the summary, exact to the cent.

The format (docs/simulators/payment.md) follows WeChat Pay's trade bill: a header of column names,
one line per trade or refund with every field prefixed by a backtick, a summary header and a
summary line. The reader finds columns by name (their order may change, unknown ones are
skipped), ignores backticks, blank lines, a BOM and CR line ends, and streams: one line at a
time, no pandas; a million-line statement reads in about 3–4 s.
It checks the summary against the lines, so a truncated download is an error, never a short
statement.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from medkiosk.adapters.payment.port import PaymentChannel, RefundState

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")
TRADE_STATE, REFUND_STATE = "SUCCESS", "REFUND"
"""交易状态 of a trade line and of a refund line."""

# Column names: the line's columns, then the summary's.
_TIME, _MERCHANT, _CHANNEL, _TRANSACTION = "交易时间", "商户号", "支付渠道", "渠道订单号"
_OUT_TRADE_NO, _TYPE, _STATE, _AMOUNT = "商户订单号", "交易类型", "交易状态", "订单金额"
_REFUND_ID, _OUT_REFUND_NO, _REFUND_AMOUNT, _REFUND_STATE = "渠道退款单号", "商户退款单号", "退款金额", "退款状态"
_DESCRIPTION, _FEE = "商品名称", "手续费"
LINE_COLUMNS = (_TIME, _MERCHANT, _CHANNEL, _TRANSACTION, _OUT_TRADE_NO, _TYPE, _STATE, _AMOUNT, _REFUND_ID,
                _OUT_REFUND_NO, _REFUND_AMOUNT, _REFUND_STATE, _DESCRIPTION, _FEE)
SUMMARY_COLUMNS = ("总交易单数", "总交易金额", "总退款单数", "总退款金额", "手续费总金额")

_CHANNELS = {c.value: c for c in PaymentChannel}
_REFUND_STATES = {s.value: s for s in RefundState}
_INTERN_LIMIT = 4096
_TIME_CACHE_LIMIT = 100_000
_ZERO = Decimal("0.00")


class StatementFormatError(ValueError):
    """The text is not a whole statement in the channel's format; ``line`` is 1-based (0: the whole)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


class Trade(NamedTuple):
    """A payment the channel took (交易状态 SUCCESS)."""

    time: dt.datetime
    """When it was paid (China time)."""
    merchant_id: str
    channel: PaymentChannel
    transaction_id: str
    out_trade_no: str
    trade_type: str
    """NATIVE (QR order) or MICROPAY (payment code)."""
    amount: Decimal
    """What the channel took."""
    description: str
    fee: Decimal


class Refund(NamedTuple):
    """A refund the channel accepted (交易状态 REFUND); its ``refund_state`` may still be PROCESSING."""

    time: dt.datetime
    """When the refund was accepted (China time)."""
    merchant_id: str
    channel: PaymentChannel
    transaction_id: str
    out_trade_no: str
    trade_type: str
    amount: Decimal
    """The refunded trade's paid amount."""
    refund_id: str
    out_refund_no: str
    refund_amount: Decimal
    refund_state: RefundState
    description: str
    fee: Decimal
    """The fee the channel gives back (negative)."""


class StatementSummary(NamedTuple):
    trade_count: int
    trade_amount: Decimal
    refund_count: int
    refund_amount: Decimal
    fee_total: Decimal


@dataclass(frozen=True, slots=True)
class Statement:
    trades: list[Trade]
    refunds: list[Refund]
    summary: StatementSummary


def parse_statement(text: str | Iterable[str]) -> Statement:
    """The whole statement in memory; ``text`` is the downloaded text or any iterable of its lines."""
    trades: list[Trade] = []
    refunds: list[Refund] = []
    add_trade, add_refund = trades.append, refunds.append
    summary = None
    with _cyclic_gc_paused():
        for row in iter_statement(text):
            kind = type(row)
            if kind is Trade:
                add_trade(row)  # type: ignore[arg-type]
            elif kind is Refund:
                add_refund(row)  # type: ignore[arg-type]
            else:
                summary = row
    assert isinstance(summary, StatementSummary)
    return Statement(trades, refunds, summary)


def iter_statement(text: str | Iterable[str]) -> Iterator[Trade | Refund | StatementSummary]:
    """Each trade and refund as it is read, then the summary (checked against them) last.

    For a statement too big to hold: a reconciliation folds the rows into its own index as they
    come. Raises :class:`StatementFormatError` on anything that is not the format.
    """
    lines = _lines(text) if isinstance(text, str) else iter(text)
    number = 0
    header: list[str] | None = None
    for number, line in enumerate(lines, 1):
        line = line.strip("\ufeff\r\n ")
        if line:
            header = [name.strip() for name in line.replace("`", "").split(",")]
            break
    if header is None:
        raise StatementFormatError("the statement is empty")
    columns = {name: index for index, name in enumerate(header)}
    missing = [name for name in LINE_COLUMNS if name not in columns]
    if missing:
        raise StatementFormatError(f"the header lacks {'、'.join(missing)}", number)
    width = len(header)
    (i_time, i_merchant, i_channel, i_transaction, i_out_trade_no, i_type, i_state, i_amount, i_refund_id,
     i_out_refund_no, i_refund_amount, i_refund_state, i_description, i_fee) = (columns[c] for c in LINE_COLUMNS)
    # Merchant, trade type and description repeat on every line, times on many: keep one copy of each.
    shared: dict[str, str] = {}
    times: dict[str, dt.datetime] = {}
    share, shared_get, time_of = shared.setdefault, shared.get, times.get
    trade_count = refund_count = 0
    trade_amount = refund_amount = fee_total = _ZERO
    summary_header = SUMMARY_COLUMNS[0]
    fromisoformat, Decimal_, tz, new = dt.datetime.fromisoformat, Decimal, CHINA_TZ, tuple.__new__

    header_line = number
    for number, line in enumerate(lines, header_line + 1):
        fields = line.replace("`", "").rstrip("\r\n").split(",")
        if len(fields) != width:
            if not line.strip():
                continue
            if any(field.strip() == summary_header for field in fields):
                break
            raise StatementFormatError(f"{len(fields)} fields where the header has {width}", number)
        try:
            at = fields[i_time]
            time = time_of(at)
            if time is None:
                if len(times) >= _TIME_CACHE_LIMIT:
                    times.clear()
                time = times[at] = fromisoformat(at.strip()).replace(tzinfo=tz)
            channel = _CHANNELS[fields[i_channel].strip()]
            amount = Decimal_(fields[i_amount])
            fee = Decimal_(fields[i_fee])
            merchant, trade_type, description = (fields[i_merchant].strip(), fields[i_type].strip(),
                                                 fields[i_description].strip())
            if len(shared) < _INTERN_LIMIT:
                merchant, trade_type, description = share(merchant, merchant), share(trade_type, trade_type), \
                    share(description, description)
            else:
                merchant, trade_type, description = shared_get(merchant, merchant), \
                    shared_get(trade_type, trade_type), shared_get(description, description)
            state = fields[i_state].strip()
            if state == TRADE_STATE:
                trade_count += 1
                trade_amount += amount
                fee_total += fee
                yield new(Trade, (time, merchant, channel, fields[i_transaction].strip(),
                                  fields[i_out_trade_no].strip(), trade_type, amount, description, fee))
            elif state == REFUND_STATE:
                refunded = Decimal_(fields[i_refund_amount])
                refund_count += 1
                refund_amount += refunded
                fee_total += fee
                yield new(Refund, (time, merchant, channel, fields[i_transaction].strip(),
                                   fields[i_out_trade_no].strip(), trade_type, amount, fields[i_refund_id].strip(),
                                   fields[i_out_refund_no].strip(), refunded,
                                   _REFUND_STATES[fields[i_refund_state].strip()], description, fee))
            else:
                raise StatementFormatError(f"unknown 交易状态 {state!r}", number)
        except (ValueError, KeyError, InvalidOperation) as exc:
            if isinstance(exc, StatementFormatError):
                raise
            raise StatementFormatError(f"unreadable line ({type(exc).__name__}: {exc})", number) from None
    else:
        raise StatementFormatError("no summary: the statement is truncated", number)

    summary = _summary(lines, fields, number)
    counted = StatementSummary(trade_count, trade_amount, refund_count, refund_amount, fee_total)
    for name, stated, found in zip(SUMMARY_COLUMNS, summary, counted, strict=True):
        if stated != found:
            raise StatementFormatError(f"the summary's {name} is {stated} but the lines add up to {found}")
    yield summary


def _summary(lines: Iterator[str], header: list[str], header_number: int) -> StatementSummary:
    """The summary line under its header (found by name, like the lines' columns); nothing may follow."""
    columns = {name.strip(): index for index, name in enumerate(header)}
    missing = [name for name in SUMMARY_COLUMNS if name not in columns]
    if missing:
        raise StatementFormatError(f"the summary header lacks {'、'.join(missing)}", header_number)
    values = None
    number = header_number
    for number, line in enumerate(lines, header_number + 1):
        if line.strip("\r\n "):
            values = [v.strip() for v in line.replace("`", "").split(",")]
            break
    if values is None:
        raise StatementFormatError("the summary header has no summary line", header_number)
    if len(values) != len(header):
        raise StatementFormatError(f"the summary has {len(values)} fields where its header has {len(header)}",
                                   number)
    for extra, line in enumerate(lines, number + 1):
        if line.strip("\r\n "):
            raise StatementFormatError("text after the summary", extra)
    trades, trade_amount, refunds, refund_amount, fees = (values[columns[name]] for name in SUMMARY_COLUMNS)
    try:
        return StatementSummary(int(trades), Decimal(trade_amount), int(refunds), Decimal(refund_amount),
                                Decimal(fees))
    except (ValueError, InvalidOperation):
        raise StatementFormatError("unreadable summary", number) from None


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    # A million new rows trigger collections that find no cycles (rows hold only strings, numbers
    # and times) yet walk every row kept so far: pausing them saves a third of the time.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one at a time, without a second copy of the text."""
    start, end_of_text = 0, len(text)
    find = text.find
    while start < end_of_text:
        end = find("\n", start)
        if end < 0:
            end = end_of_text
        yield text[start:end]
        start = end + 1
