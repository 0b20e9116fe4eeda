"""The e-invoice port over our e-invoice contract: JSON over HTTP under ``/einvoice/v1`` (httpx, sync).

Errors become the adapters' two kinds: a 4xx with ``{"code", "message"}`` is a refusal (404 is
"not found"); a timeout, a broken connection, a 5xx or a reply that does not fit is an unknown
outcome, and the caller repeats the call with the same idempotency key. Only operations,
statuses, codes and timings are logged — never the payer's name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import quote

import httpx

from medkiosk.adapters.einvoice.port import (
    EInvoiceHealth,
    Invoice,
    InvoiceRequest,
    VoidedInvoice,
)
from medkiosk.adapters.errors import UpstreamUnknown
from medkiosk.adapters.jsonhttp import JsonHttpClient

SYSTEM = "einvoice"
API_PREFIX = "/einvoice/v1"

log = logging.getLogger(__name__)


class EInvoiceHttpAdapter:
    """:class:`~medkiosk.adapters.einvoice.port.EInvoicePort` over HTTP.

    ``base_url`` is the platform's root (``http://einvoice:8204``); the adapter adds
    ``/einvoice/v1``. ``timeout`` is seconds (or an ``httpx.Timeout``) for each call; ``transport``
    lets tests put an ``httpx.MockTransport`` in place of the network.
    """

    def __init__(self, base_url: str, *, timeout: float | httpx.Timeout = 5.0,
                 transport: httpx.BaseTransport | None = None, headers: Mapping[str, str] | None = None) -> None:
        self._wire = JsonHttpClient(SYSTEM, base_url.rstrip("/") + API_PREFIX, name="电子票据平台",
                                    not_found="电子票据平台中没有该票据", log=log, timeout=timeout,
                                    transport=transport, headers=headers)

    def close(self) -> None:
        self._wire.close()

    def __enter__(self) -> EInvoiceHttpAdapter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the port -----------------------------------------------------------------------------
    def health(self) -> EInvoiceHealth:
        return self._wire.parse("health", EInvoiceHealth, self._wire.call("health", "GET", "/health"))

    def issue(self, request: InvoiceRequest) -> Invoice:
        body = self._wire.call("einvoice.issue", "POST", "/invoices", payload=request.model_dump(mode="json"))
        return self._wire.parse("einvoice.issue", Invoice, body)

    def void(self, invoice_no: str, idempotency_key: str, reason: str) -> VoidedInvoice:
        body = self._wire.call("einvoice.void", "POST", f"/invoices/{quote(invoice_no, safe='')}/void",
                               payload={"idempotency_key": idempotency_key, "reason": reason})
        return self._wire.parse("einvoice.void", VoidedInvoice, body)

    def pdf(self, invoice_no: str) -> bytes:
        response = self._wire.request("einvoice.pdf", "GET", f"/invoices/{quote(invoice_no, safe='')}/pdf")
        if not response.content.startswith(b"%PDF-"):
            log.warning("einvoice einvoice.pdf: HTTP %s without a PDF (%s)", response.status_code,
                        response.headers.get("content-type", "-"))
            raise UpstreamUnknown(SYSTEM, "电子票据平台返回的不是 PDF 文件", code="UNPARSABLE", operation="einvoice.pdf")
        return response.content

    def find(self, bill_no: str) -> list[Invoice]:
        body = self._wire.call("einvoice.list", "GET", "/invoices", params={"bill_no": bill_no})
        return self._wire.parse("einvoice.list", list[Invoice], body, field="invoices")
