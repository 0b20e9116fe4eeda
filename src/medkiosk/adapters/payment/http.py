"""The payment-channel port over the channel's merchant API: JSON over HTTP under ``/pay/v1`` (httpx, sync).

Errors become the adapters' two kinds: a 4xx with the contract's ``{"code", "message"}`` is a
refusal (nothing happened; the message is Chinese and fit to show), anything else without a
usable answer — a timeout, a dropped connection, a 5xx, a reply we cannot read — is an unknown
outcome: the charge or refund may have happened, so the payment engine queries before it decides.
Nothing secret is logged: never a payment code, only operations, order numbers, statuses and codes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.payment.port import ChargeResult, QrOrder, RefundStatus, TradeStatus
from medkiosk.adapters.payment.statement import Statement, parse_statement
from medkiosk.domain.money import format_amount, parse_amount

SYSTEM = "payment"
API_PREFIX = "/pay/v1"
MERCHANT_HEADER = "X-Merchant-Id"
# Statuses that say "try again later" rather than "no".
_TRANSIENT_4XX = {408, 425, 429}

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
        self._client = httpx.Client(base_url=base_url.rstrip("/") + API_PREFIX, timeout=timeout,
                                    transport=transport, headers={MERCHANT_HEADER: merchant_id})

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PaymentChannelHttpAdapter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the port -----------------------------------------------------------------------------
    def create_qr_order(self, out_trade_no: str, amount: Decimal, description: str,
                        expire_seconds: int) -> QrOrder:
        body = self._call("qr.create", "POST", "/qr-orders", out_trade_no, payload={
            "out_trade_no": out_trade_no, "amount": _amount(amount), "description": description,
            "expire_seconds": expire_seconds})
        return self._parse("qr.create", QrOrder, body)

    def charge_payment_code(self, out_trade_no: str, auth_code: str, amount: Decimal,
                            description: str) -> ChargeResult:
        body = self._call("code.charge", "POST", "/code-charges", out_trade_no, payload={
            "out_trade_no": out_trade_no, "auth_code": auth_code, "amount": _amount(amount),
            "description": description})
        return self._parse("code.charge", ChargeResult, body)

    def query(self, out_trade_no: str) -> TradeStatus | None:
        try:
            body = self._call("order.query", "GET", f"/orders/{_segment(out_trade_no)}", out_trade_no)
        except UpstreamNotFound:
            return None
        return self._parse("order.query", TradeStatus, body)

    def close_order(self, out_trade_no: str) -> None:
        """Close an unpaid order. Refused when paid; :class:`UpstreamNotFound` when the channel never saw it."""
        self._call("order.close", "POST", f"/orders/{_segment(out_trade_no)}/close", out_trade_no)

    def refund(self, out_trade_no: str, out_refund_no: str, refund_amount: Decimal, total_amount: Decimal,
               reason: str) -> RefundStatus:
        body = self._call("refund.create", "POST", "/refunds", out_trade_no, payload={
            "out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
            "refund_amount": _amount(refund_amount), "total_amount": _amount(total_amount),
            "reason": reason})
        return self._parse("refund.create", RefundStatus, body)

    def query_refund(self, out_refund_no: str) -> RefundStatus | None:
        try:
            body = self._call("refund.query", "GET", f"/refunds/{_segment(out_refund_no)}", out_refund_no)
        except UpstreamNotFound:
            return None
        return self._parse("refund.query", RefundStatus, body)

    def statement(self, date: dt.date) -> str:
        return self._call("statement.get", "GET", f"/statements/{date:%Y-%m-%d}", date.isoformat(), text=True)

    def parse_statement(self, text: str) -> Statement:
        return parse_statement(text)

    # -- the wire -----------------------------------------------------------------------------
    def _call(self, operation: str, method: str, path: str, key: str, *, payload: Any = None,
              text: bool = False) -> Any:
        started = time.monotonic()
        try:
            response = self._client.request(method, path, json=payload)
        except httpx.TimeoutException as exc:
            log.warning("payment %s %s: timed out after %.0f ms", operation, key, _ms(started))
            raise UpstreamUnknown(SYSTEM, "支付渠道响应超时", code="TIMEOUT", operation=operation) from exc
        except httpx.RequestError as exc:
            log.warning("payment %s %s: %s", operation, key, type(exc).__name__)
            raise UpstreamUnknown(SYSTEM, "无法连接支付渠道", code="TRANSPORT", operation=operation) from exc
        status = response.status_code
        log.debug("payment %s %s: HTTP %s in %.0f ms", operation, key, status, _ms(started))
        if 200 <= status < 300:
            if text:
                try:
                    return response.content.decode("utf-8-sig")
                except UnicodeDecodeError:
                    raise UpstreamUnknown(SYSTEM, "对账单编码无法识别", code="UNPARSABLE",
                                          operation=operation) from None
            body = _json(response.content)
            if body is _UNPARSABLE:
                log.warning("payment %s %s: HTTP %s with an unparsable body", operation, key, status)
                raise UpstreamUnknown(SYSTEM, "支付渠道应答无法解析", code="UNPARSABLE", operation=operation)
            return body
        code, message = _error_of(_json(response.content))
        if status == 404:
            log.info("payment %s %s: HTTP 404 code %s", operation, key, code or "-")
            raise UpstreamNotFound(SYSTEM, message or "支付渠道中没有该订单", code=code or "NOT_FOUND",
                                   operation=operation)
        log.warning("payment %s %s: HTTP %s code %s", operation, key, status, code or "-")
        if 400 <= status < 500 and status not in _TRANSIENT_4XX:
            raise UpstreamRefused(SYSTEM, message or f"支付渠道拒绝了该请求（HTTP {status}）", code=code or str(status),
                                  operation=operation)
        raise UpstreamUnknown(SYSTEM, message or f"支付渠道暂时无法处理（HTTP {status}）", code=code or str(status),
                              operation=operation)

    @staticmethod
    def _parse(operation: str, shape: type[BaseModel], data: Any) -> Any:
        try:
            return shape.model_validate(data)
        except ValidationError as exc:
            where = sorted({".".join(map(str, e["loc"])) for e in exc.errors(include_input=False)})[:5]
            log.warning("payment %s: reply does not fit the contract at %s", operation, where)
            raise UpstreamUnknown(SYSTEM, "支付渠道应答格式无法识别", code="UNPARSABLE", operation=operation) from None


_UNPARSABLE = object()


def _amount(value: Decimal) -> str:
    # parse_amount refuses floats and fractions of a cent instead of rounding them away.
    return format_amount(parse_amount(value))


def _segment(value: str) -> str:
    return quote(value, safe="")


def _json(content: bytes) -> Any:
    # Numbers with a fraction become Decimal, so an amount sent as a JSON number stays exact.
    try:
        return json.loads(content, parse_float=Decimal)
    except ValueError:
        return _UNPARSABLE


def _error_of(body: Any) -> tuple[str, str]:
    if isinstance(body, dict):
        code, message = body.get("code"), body.get("message")
        return (code if isinstance(code, str) else ""), (message if isinstance(message, str) else "")
    return "", ""


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
