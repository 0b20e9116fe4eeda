"""The payment-channel port over the channel's merchant API: JSON over HTTP under ``/pay/v1`` (httpx, sync).

Errors become the adapters' two kinds: a 4xx with the contract's ``{"code", "message"}`` is a
refusal (nothing happened; the message is Chinese and fit to show), anything else without a
usable answer — a timeout, a dropped connection, a 5xx, a reply we cannot read — is an unknown
outcome: the charge or refund may have happened, so the payment engine queries before it decides.
Nothing secret is logged: never a payment code, only operations, order numbers, statuses and codes.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import BinaryIO
from urllib.parse import quote

import httpx

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamUnknown
from medkiosk.adapters.jsonhttp import JsonHttpClient
from medkiosk.adapters.payment.port import ChargeResult, QrOrder, RefundStatus, TradeStatus
from medkiosk.adapters.payment.statement import Statement, parse_statement
from medkiosk.domain.money import format_amount, parse_amount

SYSTEM = "payment"
API_PREFIX = "/pay/v1"
MERCHANT_HEADER = "X-Merchant-Id"

log = logging.getLogger(__name__)


class PaymentChannelHttpAdapter:
    """:class:`~medkiosk.adapters.payment.port.PaymentChannelPort` over HTTP.

    ``base_url`` is the channel's root (``http://pay-gateway:8203``); the adapter adds ``/pay/v1``
    and sends ``merchant_id`` with every call. ``timeout`` is seconds (or an ``httpx.Timeout``)
    for each call; ``transport`` lets tests put an ``httpx.MockTransport`` in place of the network.
    """

    def __init__(self, base_url: str, *, merchant_id: str, timeout: float | httpx.Timeout = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.merchant_id = merchant_id
        self._wire = JsonHttpClient(SYSTEM, base_url.rstrip("/") + API_PREFIX, name="支付渠道",
                                    not_found="支付渠道中没有该订单", log=log, timeout=timeout,
                                    transport=transport, headers={MERCHANT_HEADER: merchant_id})

    def close(self) -> None:
        self._wire.close()

    def __enter__(self) -> PaymentChannelHttpAdapter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the port -----------------------------------------------------------------------------
    def create_qr_order(self, out_trade_no: str, amount: Decimal, description: str,
                        expire_seconds: int) -> QrOrder:
        body = self._wire.call("qr.create", "POST", "/qr-orders", key=out_trade_no, payload={
            "out_trade_no": out_trade_no, "amount": _amount(amount), "description": description,
            "expire_seconds": expire_seconds})
        return self._wire.parse("qr.create", QrOrder, body)

    def charge_payment_code(self, out_trade_no: str, auth_code: str, amount: Decimal,
                            description: str) -> ChargeResult:
        body = self._wire.call("code.charge", "POST", "/code-charges", key=out_trade_no, payload={
            "out_trade_no": out_trade_no, "auth_code": auth_code, "amount": _amount(amount),
            "description": description})
        return self._wire.parse("code.charge", ChargeResult, body)

    def query(self, out_trade_no: str) -> TradeStatus | None:
        try:
            body = self._wire.call("order.query", "GET", f"/orders/{_segment(out_trade_no)}", key=out_trade_no)
        except UpstreamNotFound:
            return None
        return self._wire.parse("order.query", TradeStatus, body)

    def close_order(self, out_trade_no: str) -> None:
        """Close an unpaid order. Refused when paid; :class:`UpstreamNotFound` when the channel never saw it."""
        self._wire.call("order.close", "POST", f"/orders/{_segment(out_trade_no)}/close", key=out_trade_no)

    def refund(self, out_trade_no: str, out_refund_no: str, refund_amount: Decimal, total_amount: Decimal,
               reason: str) -> RefundStatus:
        body = self._wire.call("refund.create", "POST", "/refunds", key=out_trade_no, payload={
            "out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
            "refund_amount": _amount(refund_amount), "total_amount": _amount(total_amount),
            "reason": reason})
        return self._wire.parse("refund.create", RefundStatus, body)

    def query_refund(self, out_refund_no: str) -> RefundStatus | None:
        try:
            body = self._wire.call("refund.query", "GET", f"/refunds/{_segment(out_refund_no)}", key=out_refund_no)
        except UpstreamNotFound:
            return None
        return self._wire.parse("refund.query", RefundStatus, body)

    def statement(self, date: dt.date) -> str:
        response = self._wire.request("statement.get", "GET", f"/statements/{date:%Y-%m-%d}", key=date.isoformat())
        try:
            return response.content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UpstreamUnknown(SYSTEM, "对账单编码无法识别", code="UNPARSABLE", operation="statement.get") from None

    def download_statement(self, date: dt.date, into: BinaryIO) -> int:
        """Stream the statement of ``date`` into ``into`` (bytes, as the channel sent them); returns the size."""
        return self._wire.download("statement.get", f"/statements/{date:%Y-%m-%d}", into, key=date.isoformat())

    def parse_statement(self, text: str) -> Statement:
        return parse_statement(text)


def _amount(value: Decimal) -> str:
    # parse_amount refuses floats and fractions of a cent instead of rounding them away.
    return format_amount(parse_amount(value))


def _segment(value: str) -> str:
    return quote(value, safe="")
