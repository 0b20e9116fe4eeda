"""The payment simulator's memory and rules: orders, refunds and a clock, behind one lock.

It implements the ``SimulatorState`` protocol of :mod:`medkiosk.simulators.control` (collections
``orders`` and ``refunds``). With ``demo`` it starts (and resets) holding the hospital app's trades
of the demo HIS's registrations, so a swap (换号) at a kiosk can refund them. Every transition happens here, under the lock, so a rule (an order
is paid once, refunds never exceed what was paid) holds however the routes interleave. The clock
can be moved forward so QR orders expire without a test waiting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from medkiosk.adapters.payment.port import PAID_STATES, PaymentChannel, RefundState, TradeState
from medkiosk.simulators.his.data import DEFAULT_SEED as HIS_SEED
from medkiosk.simulators.his.data import app_payments
from medkiosk.simulators.payment.records import (
    CHINA_TZ,
    OrderKind,
    OrderRecord,
    Pending,
    RefundRecord,
    mask_code,
)
from medkiosk.simulators.payment.statement import REFUND, TRADE, StatementLine, fee_of, render_statement
from medkiosk.simulators.personas import HOSPITAL_NAME

DEFAULT_MERCHANT_ID = "1900000109"
DEFAULT_FEE_RATE = Decimal("0.006")
DEFAULT_EXPIRE_SECONDS = 300
QUERIES_TO_DECIDE = 2
"""A USERPAYING charge with a magic code ends on this query (the first still answers USERPAYING)."""

PAID_MESSAGE = "支付成功"
CONFIRM_MESSAGE = "需要用户输入支付密码"
BALANCE_MESSAGE = "余额不足"
CODE_EXPIRED_MESSAGE = "付款码已过期，请刷新付款码后重新扫码"

_RECORDS: dict[str, TypeAdapter[Any]] = {"orders": TypeAdapter(list[OrderRecord]),
                                         "refunds": TypeAdapter(list[RefundRecord])}
COLLECTIONS = tuple(_RECORDS)
_PAID_VALUES = frozenset(s.value for s in PAID_STATES)
_CHANNEL_VALUES = frozenset(c.value for c in PaymentChannel)
_ZERO = Decimal("0.00")


class PaymentRefusal(Exception):
    """The channel answers "no": rendered as ``{"code", "message"}`` with ``status``; nothing changed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _order_not_found() -> PaymentRefusal:
    return PaymentRefusal(404, "ORDER_NOT_EXIST", "订单不存在")


def code_behaviour(auth_code: str) -> tuple[PaymentChannel, TradeState, Pending | None, str] | None:
    """What charging ``auth_code`` does: channel, first state, how a USERPAYING ends, message.

    None for a code no wallet issues. WeChat codes are 18 digits starting 10–15, Alipay codes
    16–24 digits starting 25–30, UnionPay codes 19 digits starting 62. Magic WeChat codes
    (docs/simulators/payment.md): 1300… success, 1301… confirm on the phone, 1302… balance too
    low after confirming, 1303… code expired, 1304… never confirmed.
    """
    code = auth_code.strip()
    if not code.isdigit():
        return None
    head = int(code[:2])
    if len(code) == 18 and 10 <= head <= 15:
        magic = {
            "1301": (TradeState.USERPAYING, Pending.CONFIRM, CONFIRM_MESSAGE),
            "1302": (TradeState.USERPAYING, Pending.DECLINE, CONFIRM_MESSAGE),
            "1303": (TradeState.PAYERROR, None, CODE_EXPIRED_MESSAGE),
            "1304": (TradeState.USERPAYING, Pending.NEVER, CONFIRM_MESSAGE),
        }.get(code[:4], (TradeState.SUCCESS, None, PAID_MESSAGE))
        return (PaymentChannel.WECHAT, *magic)
    if 16 <= len(code) <= 24 and 25 <= head <= 30:
        return PaymentChannel.ALIPAY, TradeState.SUCCESS, None, PAID_MESSAGE
    if len(code) == 19 and code.startswith("62"):
        return PaymentChannel.UNIONPAY, TradeState.SUCCESS, None, PAID_MESSAGE
    return None


class PaymentState:
    """One merchant's orders and refunds at the aggregated channel."""

    collections = COLLECTIONS

    def __init__(self, *, merchant_id: str = DEFAULT_MERCHANT_ID, fee_rate: Decimal = DEFAULT_FEE_RATE,
                 clock: Callable[[], float] = time.time, demo: bool = False, demo_today: dt.date | None = None,
                 demo_seed: int = HIS_SEED) -> None:
        """``demo``: hold the app trades of the demo HIS built for ``demo_today`` from ``demo_seed``
        (default: the HIS simulator's own defaults, today being the local date as the HIS reads it)."""
        self.merchant_id = merchant_id
        self.fee_rate = fee_rate
        self._clock = clock
        self.demo = demo
        self._demo_today = demo_today
        self._demo_seed = demo_seed
        self._lock = threading.RLock()
        self.reset()

    # -- clock ------------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock() + self._offset

    def now_local(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now(), CHINA_TZ).replace(microsecond=0)

    def today(self) -> dt.date:
        return self.now_local().date()

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (unpaid QR orders expire by it)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds

    @property
    def clock_offset(self) -> float:
        return self._offset

    # -- SimulatorState ---------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._orders: dict[str, OrderRecord] = {}
            self._refunds: dict[str, RefundRecord] = {}
            self._refunded: dict[str, Decimal] = {}
            self._ids: set[str] = set()
            self._offset = 0.0
            self._sequence = itertools.count(1)
            if self.demo:
                self.load({"orders": self._app_trades()})

    def _app_trades(self) -> list[dict[str, Any]]:
        """The hospital app's trades: every registration of the demo HIS paid in the app."""
        today = self._demo_today or dt.date.today()
        return [{"out_trade_no": p.out_trade_no, "kind": OrderKind.APP, "amount": p.amount,
                 "description": f"{HOSPITAL_NAME}预约挂号", "state": TradeState.SUCCESS,
                 "channel": PaymentChannel.WECHAT, "created_at": p.paid_at, "paid_at": p.paid_at}
                for p in app_payments(today=today, seed=self._demo_seed)]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            for key in list(self._orders):
                self._expire(key)
            return {"orders": [o.model_dump(mode="json") for o in self._orders.values()],
                    "refunds": [r.model_dump(mode="json") for r in self._refunds.values()]}

    def load(self, data: dict[str, Any]) -> None:
        """Replace the named collections (the other stays); the result must hang together."""
        unknown = sorted(set(data) - set(COLLECTIONS))
        if unknown:
            raise KeyError(f"unknown collections {unknown}; known: {list(COLLECTIONS)}")
        with self._lock:
            orders = self._orders
            if "orders" in data:
                orders = _keyed(self._parse("orders", data["orders"], orders={}), "out_trade_no")
            refunds = self._refunds
            if "refunds" in data:
                refunds = _keyed(self._parse("refunds", data["refunds"], orders=orders), "out_refund_no")
            self._commit(orders, refunds)

    def add(self, collection: str, items: list[dict[str, Any]]) -> int:
        """Add new orders or refunds; a number already used, or one bad item, refuses them all."""
        if collection not in COLLECTIONS:
            raise KeyError(f"unknown collection {collection!r}; known: {list(COLLECTIONS)}")
        with self._lock:
            records = self._parse(collection, items, orders=self._orders)
            key = "out_trade_no" if collection == "orders" else "out_refund_no"
            existing = self._orders if collection == "orders" else self._refunds
            added = _keyed(records, key)
            taken = sorted(set(added) & set(existing))
            if taken:
                raise ValueError(f"{key} already used: {taken}")
            if collection == "orders":
                self._commit({**self._orders, **added}, self._refunds)
            else:
                self._commit(self._orders, {**self._refunds, **added})
            return len(records)

    def _parse(self, collection: str, items: Any, *, orders: dict[str, OrderRecord]) -> list[Any]:
        if not isinstance(items, list):
            raise TypeError(f"{collection} takes a list of records")
        now = self.now_local()
        prepared = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise TypeError(f"item {index}: a record is a JSON object, not {type(item).__name__}")
            prepared.append(self._with_defaults(collection, dict(item), orders, now))
        return _RECORDS[collection].validate_python(prepared)

    def _with_defaults(self, collection: str, item: dict[str, Any], orders: dict[str, OrderRecord],
                       now: dt.datetime) -> dict[str, Any]:
        """Fill what a trainer need not spell out: times, ids, the QR payload, a paid order's payment."""
        created = item.setdefault("created_at", now)
        if collection == "orders":
            if item.get("kind", OrderKind.QR) == OrderKind.QR:
                if "expires_at" not in item:
                    start = created if isinstance(created, dt.datetime) else dt.datetime.fromisoformat(str(created))
                    item["expires_at"] = start + dt.timedelta(seconds=DEFAULT_EXPIRE_SECONDS)
                if "code_url" not in item:
                    item["code_url"] = self._code_url(str(item.get("out_trade_no", "")))
            if item.get("state") in _PAID_VALUES:
                channel = item.setdefault("channel", PaymentChannel.WECHAT)
                item.setdefault("paid_amount", item.get("amount"))
                item.setdefault("paid_at", created)
                if "transaction_id" not in item and channel in _CHANNEL_VALUES:
                    item["transaction_id"] = self._transaction_id(PaymentChannel(channel))
        else:
            if "refund_id" not in item:
                item["refund_id"] = self._refund_id()
            order = orders.get(str(item.get("out_trade_no")))
            if order is not None and order.paid_amount is not None:
                item.setdefault("total_amount", order.paid_amount)
            if item.get("state") == RefundState.SUCCESS:
                item.setdefault("succeeded_at", created)
        return item

    def _commit(self, orders: dict[str, OrderRecord], refunds: dict[str, RefundRecord]) -> None:
        """Check that refunds belong to paid orders and never exceed them, mark refunded orders, apply."""
        refunded: dict[str, Decimal] = {}
        for refund in refunds.values():
            order = orders.get(refund.out_trade_no)
            if order is None:
                raise ValueError(f"refund {refund.out_refund_no}: no order {refund.out_trade_no}")
            if order.state not in PAID_STATES:
                raise ValueError(f"refund {refund.out_refund_no}: order {order.out_trade_no} is {order.state}")
            refunded[order.out_trade_no] = refunded.get(order.out_trade_no, _ZERO) + refund.refund_amount
        for key, total in refunded.items():
            order = orders[key]
            assert order.paid_amount is not None
            if total > order.paid_amount:
                raise ValueError(f"order {key}: refunds {total} exceed the paid {order.paid_amount}")
        orders = {key: order.model_copy(update={"state": TradeState.REFUND})
                  if key in refunded and order.state is TradeState.SUCCESS else order
                  for key, order in orders.items()}
        self._orders, self._refunds, self._refunded = dict(orders), dict(refunds), refunded
        self._ids = {o.transaction_id for o in orders.values() if o.transaction_id} | {
            r.refund_id for r in refunds.values()}

    # -- orders -----------------------------------------------------------------------------
    def create_qr_order(self, *, out_trade_no: str, amount: Decimal, description: str, expire_seconds: int,
                        notify_url: str | None = None) -> OrderRecord:
        """A new QR order, or the same one again for the same amount (the order number is the key)."""
        with self._lock:
            existing = self._existing(out_trade_no, amount, OrderKind.QR)
            if existing is not None:
                return existing
            now = self.now_local()
            order = OrderRecord(out_trade_no=out_trade_no, kind=OrderKind.QR, amount=amount,
                                description=description, created_at=now,
                                expires_at=now + dt.timedelta(seconds=expire_seconds),
                                code_url=self._code_url(out_trade_no), notify_url=notify_url)
            self._orders[out_trade_no] = order
            return order

    def charge_code(self, *, out_trade_no: str, auth_code: str, amount: Decimal, description: str) -> OrderRecord:
        """Charge a scanned payment code; the same order number again answers its state, charging nothing."""
        behaviour = code_behaviour(auth_code)
        with self._lock:
            existing = self._existing(out_trade_no, amount, OrderKind.CODE)
            if existing is not None:
                return existing
            if behaviour is None:
                raise PaymentRefusal(400, "AUTH_CODE_INVALID", "付款码无效，请让患者刷新付款码后重新扫码")
            channel, state, pending, message = behaviour
            now = self.now_local()
            order = OrderRecord(out_trade_no=out_trade_no, kind=OrderKind.CODE, amount=amount,
                                description=description, created_at=now, auth_code=mask_code(auth_code.strip()),
                                state=TradeState.NOTPAY, pending=pending, channel=channel, message=message)
            order = self._paid(order, channel, amount) if state is TradeState.SUCCESS else \
                order.model_copy(update={"state": state})
            self._orders[out_trade_no] = order
            return order

    def query(self, out_trade_no: str) -> OrderRecord:
        """The order as the channel sees it now; a USERPAYING charge with a magic code moves on."""
        with self._lock:
            order = self._expire(out_trade_no)
            if order.state is TradeState.USERPAYING and order.pending in (Pending.CONFIRM, Pending.DECLINE):
                queries = order.queries + 1
                order = order.model_copy(update={"queries": queries})
                if queries >= QUERIES_TO_DECIDE:
                    if order.pending is Pending.CONFIRM:
                        assert order.channel is not None
                        order = self._paid(order, order.channel, order.amount)
                    else:
                        order = order.model_copy(update={"state": TradeState.PAYERROR, "message": BALANCE_MESSAGE})
                    order = order.model_copy(update={"pending": None})
                self._orders[out_trade_no] = order
            return order

    def close(self, out_trade_no: str) -> OrderRecord:
        """Close an unpaid order; a paid one is refused (refund it instead). Closing twice is fine."""
        with self._lock:
            order = self._expire(out_trade_no)
            if order.state in PAID_STATES:
                raise PaymentRefusal(409, "ORDER_PAID", "订单已支付，不能关闭，请发起退款")
            if order.state is not TradeState.CLOSED:
                order = order.model_copy(update={"state": TradeState.CLOSED, "pending": None,
                                                 "closed_at": self.now_local(), "message": "订单已关闭"})
                self._orders[out_trade_no] = order
            return order

    def phone_pays(self, out_trade_no: str, channel: PaymentChannel, amount: Decimal | None = None) -> OrderRecord:
        """The patient pays a QR order (or confirms a USERPAYING charge); ``amount`` overrides what is taken."""
        with self._lock:
            order = self._expire(out_trade_no)
            if order.state in PAID_STATES:
                raise PaymentRefusal(409, "ORDER_PAID", "订单已支付，请勿重复支付")
            if order.state is TradeState.CLOSED:
                expired = order.closed_at is not None and order.closed_at == order.expires_at
                raise PaymentRefusal(409, "ORDER_CLOSED", "二维码已过期" if expired else "订单已关闭")
            if order.state is TradeState.PAYERROR:
                raise PaymentRefusal(409, "ORDER_FAILED", "该订单支付失败，请重新下单")
            if order.kind is OrderKind.CODE:
                channel = order.channel or channel
            order = self._paid(order.model_copy(update={"pending": None}), channel,
                               order.amount if amount is None else amount)
            self._orders[out_trade_no] = order
            return order

    def refunded_amount(self, out_trade_no: str) -> Decimal:
        with self._lock:
            return self._refunded.get(out_trade_no, _ZERO)

    # -- refunds ----------------------------------------------------------------------------
    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_amount: Decimal, total_amount: Decimal,
               reason: str) -> RefundRecord:
        """Accept a refund (PROCESSING); the same refund number again answers the first refund."""
        with self._lock:
            existing = self._refunds.get(out_refund_no)
            if existing is not None:
                if existing.out_trade_no != out_trade_no or existing.refund_amount != refund_amount:
                    raise PaymentRefusal(409, "OUT_REFUND_NO_USED",
                                         "退款单号已用于另一笔退款（订单号或退款金额不同）")
                return existing
            order = self._expire(out_trade_no)
            if order.state not in PAID_STATES:
                raise PaymentRefusal(400, "TRADE_NOT_PAID", "订单未支付，不能退款")
            assert order.paid_amount is not None
            if total_amount != order.paid_amount:
                raise PaymentRefusal(400, "TOTAL_AMOUNT_MISMATCH",
                                     f"原订单金额不符：该订单实付{order.paid_amount:.2f}元，"
                                     f"请求中为{total_amount:.2f}元")
            refunded = self.refunded_amount(out_trade_no)
            if refunded + refund_amount > order.paid_amount:
                raise PaymentRefusal(400, "NOT_ENOUGH_REFUNDABLE",
                                     f"退款金额超过可退金额：实付{order.paid_amount:.2f}元，已退{refunded:.2f}元，"
                                     f"可退{order.paid_amount - refunded:.2f}元，本次申请{refund_amount:.2f}元")
            refund = RefundRecord(out_refund_no=out_refund_no, out_trade_no=out_trade_no,
                                  refund_id=self._refund_id(), refund_amount=refund_amount,
                                  total_amount=total_amount, reason=reason, created_at=self.now_local())
            self._refunds[out_refund_no] = refund
            self._refunded[out_trade_no] = refunded + refund_amount
            self._orders[out_trade_no] = order.model_copy(update={"state": TradeState.REFUND})
            return refund

    def query_refund(self, out_refund_no: str) -> RefundRecord:
        """The refund now; a PROCESSING refund has arrived by the first query."""
        with self._lock:
            refund = self._refunds.get(out_refund_no)
            if refund is None:
                raise PaymentRefusal(404, "REFUND_NOT_EXIST", "退款单不存在")
            if refund.state is RefundState.PROCESSING:
                refund = refund.model_copy(update={"state": RefundState.SUCCESS, "succeeded_at": self.now_local(),
                                                   "queries": refund.queries + 1})
                self._refunds[out_refund_no] = refund
            return refund

    def set_refund_state(self, out_refund_no: str, state: RefundState) -> RefundRecord:
        """Training and tests: make a refund ABNORMAL (a closed card), or finish it."""
        with self._lock:
            refund = self._refunds.get(out_refund_no)
            if refund is None:
                raise PaymentRefusal(404, "REFUND_NOT_EXIST", "退款单不存在")
            succeeded = self.now_local() if state is RefundState.SUCCESS else None
            refund = refund.model_copy(update={"state": state, "succeeded_at": succeeded})
            self._refunds[out_refund_no] = refund
            return refund

    # -- statement --------------------------------------------------------------------------
    def statement(self, day: dt.date) -> str:
        """The day's trade bill: trades by the day they were paid, refunds by the day they were accepted."""
        if day > self.today():
            raise PaymentRefusal(400, "STATEMENT_NOT_READY", f"{day:%Y-%m-%d}的对账单尚未生成")
        with self._lock:
            orders = dict(self._orders)
            refunds = list(self._refunds.values())
        return render_statement(self.merchant_id, self.statement_lines(day, orders, refunds))

    def statement_lines(self, day: dt.date, orders: dict[str, OrderRecord],
                        refunds: Iterable[RefundRecord]) -> list[StatementLine]:
        lines = []
        for order in orders.values():
            if order.state in PAID_STATES and order.paid_at is not None and order.paid_at.date() == day:
                assert order.paid_amount is not None and order.channel and order.transaction_id
                lines.append(StatementLine(
                    time=order.paid_at, channel=order.channel.value, transaction_id=order.transaction_id,
                    out_trade_no=order.out_trade_no, trade_type=order.kind.trade_type, state=TRADE,
                    amount=order.paid_amount, description=order.description,
                    fee=fee_of(order.paid_amount, self.fee_rate)))
        for refund in refunds:
            order = orders[refund.out_trade_no]
            if refund.created_at.date() != day:
                continue
            assert order.paid_amount is not None and order.channel and order.transaction_id
            lines.append(StatementLine(
                time=refund.created_at, channel=order.channel.value, transaction_id=order.transaction_id,
                out_trade_no=order.out_trade_no, trade_type=order.kind.trade_type, state=REFUND,
                amount=order.paid_amount, description=order.description,
                fee=-fee_of(refund.refund_amount, self.fee_rate), refund_id=refund.refund_id,
                out_refund_no=refund.out_refund_no, refund_amount=refund.refund_amount,
                refund_state=refund.state.value))
        lines.sort(key=lambda line: (line.time, line.state != TRADE, line.out_trade_no, line.out_refund_no))
        return lines

    # -- helpers ----------------------------------------------------------------------------
    def _existing(self, out_trade_no: str, amount: Decimal, kind: OrderKind) -> OrderRecord | None:
        order = self._orders.get(out_trade_no)
        if order is None:
            return None
        if order.amount != amount:
            raise PaymentRefusal(409, "OUT_TRADE_NO_USED",
                                 f"订单号已存在且金额不同（原订单金额{order.amount:.2f}元），请使用新的订单号")
        if order.kind is not kind:
            raise PaymentRefusal(409, "OUT_TRADE_NO_USED", "订单号已用于另一种支付方式，请使用新的订单号")
        return self._expire(out_trade_no)

    def _expire(self, out_trade_no: str) -> OrderRecord:
        """The order, closed first if it is an unpaid QR order past its expiry."""
        order = self._orders.get(out_trade_no)
        if order is None:
            raise _order_not_found()
        if (order.state is TradeState.NOTPAY and order.expires_at is not None
                and self.now_local() >= order.expires_at):
            order = order.model_copy(update={"state": TradeState.CLOSED, "closed_at": order.expires_at,
                                             "message": "二维码已过期，订单已关闭"})
            self._orders[out_trade_no] = order
        return order

    def _paid(self, order: OrderRecord, channel: PaymentChannel, paid_amount: Decimal) -> OrderRecord:
        return order.model_copy(update={
            "state": TradeState.SUCCESS, "channel": channel, "paid_amount": paid_amount,
            "transaction_id": self._transaction_id(channel), "paid_at": self.now_local(), "message": PAID_MESSAGE,
        })

    def _code_url(self, out_trade_no: str) -> str:
        token = hashlib.sha256(f"{self.merchant_id}:{out_trade_no}".encode()).hexdigest()[:24]
        return f"simpay://qr/{token}"

    def _transaction_id(self, channel: PaymentChannel) -> str:
        pattern = {PaymentChannel.WECHAT: "4200{day}{seq:016d}", PaymentChannel.ALIPAY: "{day}2200{seq:016d}",
                   PaymentChannel.UNIONPAY: "62{day}{seq:014d}"}[channel]
        return self._new_id(pattern)

    def _refund_id(self) -> str:
        return self._new_id("5000{day}{seq:016d}")

    def _new_id(self, pattern: str) -> str:
        # A sequence keeps ids unique; the set skips ids a loaded record already uses.
        day = f"{self.now_local():%Y%m%d}"
        while True:
            candidate = pattern.format(day=day, seq=next(self._sequence))
            if candidate not in self._ids:
                self._ids.add(candidate)
                return candidate


def _keyed(records: list[Any], key: str) -> dict[str, Any]:
    keyed: dict[str, Any] = {}
    for record in records:
        value = getattr(record, key)
        if value in keyed:
            raise ValueError(f"{key} {value} appears twice")
        keyed[value] = record
    return keyed
