"""The e-invoice port over our e-invoice contract: JSON over HTTP under ``/einvoice/v1`` (httpx, sync).

Errors become the adapters' two kinds: a 4xx with ``{"code", "message"}`` is a refusal (404 is
"not found"); a timeout, a broken connection, a 5xx or a reply that does not fit is an unknown
outcome, and the caller repeats the call with the same idempotency key. Only operations,
statuses, codes and timings are logged — never the payer's name.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from medkiosk.adapters.einvoice.port import (
    EInvoiceHealth,
    Invoice,
    InvoiceRequest,
    VoidedInvoice,
)
from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown

SYSTEM = "einvoice"
API_PREFIX = "/einvoice/v1"
# Statuses that say "try again later" rather than "no".
_TRANSIENT_4XX = {408, 425, 429}

log = logging.getLogger(__name__)


class EInvoiceHttpAdapter:
    """:class:`~medkiosk.adapters.einvoice.port.EInvoicePort` over HTTP.

    ``base_url`` is the platform's root (``http://einvoice:8204``); the adapter adds
    ``/einvoice/v1``. ``timeout`` is seconds (or an ``httpx.Timeout``) for each call; ``transport``
    lets tests put an ``httpx.MockTransport`` in place of the network.
    """

    def __init__(self, base_url: str, *, timeout: float | httpx.Timeout = 5.0,
                 transport: httpx.BaseTransport | None = None, headers: Mapping[str, str] | None = None) -> None:
        self._client = httpx.Client(base_url=base_url.rstrip("/") + API_PREFIX, timeout=timeout,
                                    transport=transport, headers=dict(headers or {}))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> EInvoiceHttpAdapter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the port -----------------------------------------------------------------------------
    def health(self) -> EInvoiceHealth:
        return _parse("health", EInvoiceHealth, _json_body("health", self._call("health", "GET", "/health")))

    def issue(self, request: InvoiceRequest) -> Invoice:
        response = self._call("einvoice.issue", "POST", "/invoices", payload=request.model_dump(mode="json"))
        return _parse("einvoice.issue", Invoice, _json_body("einvoice.issue", response))

    def void(self, invoice_no: str, idempotency_key: str, reason: str) -> VoidedInvoice:
        response = self._call("einvoice.void", "POST", f"/invoices/{quote(invoice_no, safe='')}/void",
                              payload={"idempotency_key": idempotency_key, "reason": reason})
        return _parse("einvoice.void", VoidedInvoice, _json_body("einvoice.void", response))

    def pdf(self, invoice_no: str) -> bytes:
        response = self._call("einvoice.pdf", "GET", f"/invoices/{quote(invoice_no, safe='')}/pdf")
        if not response.content.startswith(b"%PDF-"):
            log.warning("einvoice einvoice.pdf: HTTP %s without a PDF (%s)", response.status_code,
                        response.headers.get("content-type", "-"))
            raise UpstreamUnknown(SYSTEM, "电子票据平台返回的不是 PDF 文件", code="UNPARSABLE", operation="einvoice.pdf")
        return response.content

    def find(self, bill_no: str) -> list[Invoice]:
        response = self._call("einvoice.list", "GET", "/invoices", params={"bill_no": bill_no})
        body = _json_body("einvoice.list", response)
        if not isinstance(body, dict) or "invoices" not in body:
            log.warning("einvoice einvoice.list: reply has no 'invoices'")
            raise UpstreamUnknown(SYSTEM, "电子票据平台应答格式无法识别", code="UNPARSABLE", operation="einvoice.list")
        return _parse("einvoice.list", list[Invoice], body["invoices"])

    # -- the wire -----------------------------------------------------------------------------
    def _call(self, operation: str, method: str, path: str, *, params: Mapping[str, str] | None = None,
              payload: Any = None) -> httpx.Response:
        started = time.monotonic()
        try:
            response = self._client.request(method, path, params=params, json=payload)
        except httpx.TimeoutException as exc:
            log.warning("einvoice %s: timed out after %.0f ms", operation, _ms(started))
            raise UpstreamUnknown(SYSTEM, "电子票据平台响应超时", code="TIMEOUT", operation=operation) from exc
        except httpx.RequestError as exc:
            log.warning("einvoice %s: %s", operation, type(exc).__name__)
            raise UpstreamUnknown(SYSTEM, "无法连接电子票据平台", code="TRANSPORT", operation=operation) from exc
        status = response.status_code
        log.debug("einvoice %s: HTTP %s in %.0f ms", operation, status, _ms(started))
        if 200 <= status < 300:
            return response
        code, message = _error_of(_json(response.content))
        if status == 404:
            log.info("einvoice %s: HTTP 404 code %s", operation, code or "-")
            raise UpstreamNotFound(SYSTEM, message or "电子票据平台中没有该票据", code=code or "NOT_FOUND",
                                   operation=operation)
        log.warning("einvoice %s: HTTP %s code %s", operation, status, code or "-")
        if 400 <= status < 500 and status not in _TRANSIENT_4XX:
            raise UpstreamRefused(SYSTEM, message or f"电子票据平台拒绝了该请求（HTTP {status}）",
                                  code=code or str(status), operation=operation)
        raise UpstreamUnknown(SYSTEM, message or f"电子票据平台暂时无法处理（HTTP {status}）", code=code or str(status),
                              operation=operation)


_UNPARSABLE = object()
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _json_body(operation: str, response: httpx.Response) -> Any:
    body = _json(response.content)
    if body is _UNPARSABLE:
        log.warning("einvoice %s: HTTP %s with an unparsable body", operation, response.status_code)
        raise UpstreamUnknown(SYSTEM, "电子票据平台应答无法解析", code="UNPARSABLE", operation=operation)
    return body


def _parse(operation: str, shape: Any, data: Any) -> Any:
    if shape not in _ADAPTERS:
        _ADAPTERS[shape] = TypeAdapter(shape)
    try:
        return _ADAPTERS[shape].validate_python(data)
    except ValidationError as exc:
        # Field paths only: the input values may be personal data.
        where = sorted({".".join(map(str, e["loc"])) for e in exc.errors(include_input=False)})[:5]
        log.warning("einvoice %s: reply does not fit the contract at %s", operation, where)
        raise UpstreamUnknown(SYSTEM, "电子票据平台应答格式无法识别", code="UNPARSABLE", operation=operation) from None


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
