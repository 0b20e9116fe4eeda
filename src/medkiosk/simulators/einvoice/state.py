"""The e-invoice simulator's invoices and the platform's rules, in memory; the control surface loads them.

Thread-safe, because the control routes run in a thread pool and the platform's routes on the loop.
Every change is checked whole before it is applied.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from medkiosk.adapters.einvoice.port import InvoiceKind, InvoiceStatus, PayerIdType
from medkiosk.simulators.einvoice.records import InvoiceRecord, ItemRecord
from medkiosk.simulators.his.records import describe_validation_error
from medkiosk.simulators.jsonapi import Conflict, Invalid, NotFound

DEFAULT_SEED = 20261120
COLLECTIONS = ("invoices",)
# 票据代码: the region (江苏省南京市 3201), the kind of bill (06, medical charges) and the year.
INVOICE_CODE_PREFIX = "320106"
# What makes two issue requests with one idempotency key the same request; ``issued_at`` is left
# out, so a retry stamped later is still the same request (the first time is kept).
_REQUEST_FIELDS = ("bill_no", "payer_name", "payer_id_type", "total", "fund", "account", "cash", "items",
                   "insurance_type", "cross_region_note")


class EInvoiceState:
    """The invoices the simulated platform has issued; numbers continue from a seeded start."""

    def __init__(self, *, seed: int = DEFAULT_SEED) -> None:
        self.seed = seed
        self._first_number = random.Random(seed).randrange(1, 10_000) * 10_000 + 1
        self._lock = threading.RLock()
        self._invoices: list[InvoiceRecord] = []

    # -- SimulatorState -------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._invoices = []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"invoices": [i.model_dump(mode="json") for i in self._invoices]}

    def load(self, data: dict[str, Any]) -> None:
        unknown = sorted(set(data) - set(COLLECTIONS))
        if unknown:
            raise KeyError(f"unknown collections {unknown}; known: {list(COLLECTIONS)}")
        if "invoices" in data:
            invoices = _validated(data["invoices"])
            _check_integrity(invoices)
            with self._lock:
                self._invoices = invoices

    def add(self, collection: str, items: list[dict[str, Any]]) -> int:
        if collection not in COLLECTIONS:
            raise KeyError(f"unknown collection {collection!r}; known: {list(COLLECTIONS)}")
        records = _validated(items)
        with self._lock:
            candidate = [*self._invoices, *records]
            _check_integrity(candidate)
            self._invoices = candidate
        return len(records)

    # -- the platform's operations ------------------------------------------------------------------
    def issue(self, *, idempotency_key: str, bill_no: str, payer_name: str, payer_id_type: PayerIdType,
              total: Decimal, fund: Decimal, account: Decimal, cash: Decimal, items: list[dict[str, Any]],
              insurance_type: str | None, cross_region_note: str | None,
              issued_at: dt.datetime) -> tuple[InvoiceRecord, bool]:
        """Issue a blue invoice for a bill; ``(invoice, replayed)``."""
        request = {"bill_no": bill_no, "payer_name": payer_name.strip(), "payer_id_type": payer_id_type,
                   "total": total, "fund": fund, "account": account, "cash": cash,
                   "items": [ItemRecord(**item) for item in items], "insurance_type": insurance_type or None,
                   "cross_region_note": cross_region_note or None}
        with self._lock:
            earlier = self._by_key(idempotency_key)
            if earlier is not None:
                if earlier.kind is InvoiceKind.BLUE and all(
                        getattr(earlier, name) == request[name] for name in _REQUEST_FIELDS):
                    return earlier, True
                raise Conflict("该幂等键已用于内容不同的开票或冲红请求，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
            if fund + account + cash != total:
                raise Invalid(f"票面金额不平：统筹{fund}元、个人账户{account}元与现金{cash}元之和不等于合计{total}元",
                              code="AMOUNT_MISMATCH")
            listed = sum((i.amount for i in request["items"]), Decimal("0.00"))
            if listed != total:
                raise Invalid(f"票面金额不平：明细合计{listed}元，票面合计{total}元", code="AMOUNT_MISMATCH")
            if total <= 0:
                raise Invalid("开票金额须大于零")
            live = next((i for i in self._invoices if i.bill_no == bill_no and i.kind is InvoiceKind.BLUE
                         and i.status is InvoiceStatus.ISSUED), None)
            if live is not None:
                raise Conflict(f"业务单号 {bill_no} 已开具电子票据（票据号码 {live.invoice_no}），请勿重复开票",
                               code="BILL_INVOICED")
            invoice = self._numbered(issued_at, idempotency_key=idempotency_key, **request)
            self._invoices = [*self._invoices, invoice]
            return invoice, False

    def void(self, invoice_no: str, *, idempotency_key: str, reason: str) -> tuple[InvoiceRecord, InvoiceRecord, bool]:
        """Void a blue invoice with a red-letter one; ``(red, original, replayed)``."""
        with self._lock:
            earlier = self._by_key(idempotency_key)
            if earlier is not None:
                if earlier.kind is InvoiceKind.RED and earlier.original_invoice_no == invoice_no \
                        and earlier.void_reason == reason:
                    return earlier, self.invoice(invoice_no), True
                raise Conflict("该幂等键已用于内容不同的开票或冲红请求，请勿更改后重复提交", code="IDEMPOTENCY_CONFLICT")
            original = self.invoice(invoice_no)
            if original.kind is InvoiceKind.RED:
                raise Invalid(f"票据 {invoice_no} 是红字票据，不能冲红", code="RED_INVOICE")
            if original.status is InvoiceStatus.VOIDED:
                raise Conflict(f"票据 {invoice_no} 已于{original.voided_at:%Y-%m-%d %H:%M}红冲"
                               f"（红字票据号码 {original.red_invoice_no}），不能重复冲红", code="ALREADY_VOIDED")
            now = dt.datetime.now().astimezone().replace(microsecond=0)
            copied = {name: getattr(original, name) for name in _REQUEST_FIELDS}
            red = self._numbered(now, kind=InvoiceKind.RED, idempotency_key=idempotency_key,
                                 original_invoice_no=original.invoice_no, void_reason=reason, **copied)
            voided = original.model_copy(update={"status": InvoiceStatus.VOIDED, "red_invoice_no": red.invoice_no,
                                                 "voided_at": now, "void_reason": reason})
            self._invoices = [voided if i.invoice_no == invoice_no else i for i in self._invoices] + [red]
            return red, voided, False

    def invoice(self, invoice_no: str) -> InvoiceRecord:
        with self._lock:
            for invoice in self._invoices:
                if invoice.invoice_no == invoice_no:
                    return invoice
        raise NotFound(f"未找到票据号码为 {invoice_no} 的电子票据")

    def find(self, bill_no: str | None = None) -> list[InvoiceRecord]:
        """The invoices of a bill (or all), blue and red, in the order they were issued."""
        with self._lock:
            return [i for i in self._invoices if bill_no is None or i.bill_no == bill_no]

    def _by_key(self, idempotency_key: str) -> InvoiceRecord | None:
        return next((i for i in self._invoices if i.idempotency_key == idempotency_key), None)

    def _numbered(self, issued_at: dt.datetime, **fields: Any) -> InvoiceRecord:
        number = max((int(i.invoice_no) + 1 for i in self._invoices), default=self._first_number)
        invoice_code = f"{INVOICE_CODE_PREFIX}{issued_at:%y}"
        invoice_no = f"{number:010d}"
        digest = hashlib.sha256(f"{self.seed}|{invoice_code}|{invoice_no}|{fields['total']:.2f}".encode()).hexdigest()
        return InvoiceRecord(invoice_code=invoice_code, invoice_no=invoice_no, check_code=digest[:6],
                             issued_at=issued_at, **fields)


def _validated(items: Any) -> list[InvoiceRecord]:
    if not isinstance(items, list):
        raise TypeError("invoices must be a list of records")
    records = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise TypeError(f"item {index}: a record is a JSON object, not {type(item).__name__}")
        try:
            records.append(InvoiceRecord.model_validate(item))
        except ValidationError as exc:
            raise ValueError(f"item {index}: {describe_validation_error(exc)}") from None
    return records


def _check_integrity(invoices: list[InvoiceRecord]) -> None:
    """Unique numbers and keys, red and voided invoices that point at each other; ValueError otherwise."""
    by_no: dict[str, InvoiceRecord] = {}
    keys: set[str] = set()
    live_bills: set[str] = set()
    for invoice in invoices:
        if invoice.invoice_no in by_no:
            raise ValueError(f"duplicate invoice_no {invoice.invoice_no!r}")
        if invoice.idempotency_key in keys:
            raise ValueError(f"duplicate idempotency_key {invoice.idempotency_key!r}")
        by_no[invoice.invoice_no] = invoice
        keys.add(invoice.idempotency_key)
        if invoice.kind is InvoiceKind.BLUE and invoice.status is InvoiceStatus.ISSUED:
            if invoice.bill_no in live_bills:
                raise ValueError(f"bill {invoice.bill_no!r} has two issued blue invoices")
            live_bills.add(invoice.bill_no)
    for invoice in invoices:
        if invoice.kind is InvoiceKind.RED:
            original = by_no.get(invoice.original_invoice_no or "")
            if original is None or original.red_invoice_no != invoice.invoice_no:
                raise ValueError(f"red invoice {invoice.invoice_no} voids {invoice.original_invoice_no!r}, "
                                 "which does not exist or does not name it as its red invoice")
        elif invoice.red_invoice_no is not None:
            red = by_no.get(invoice.red_invoice_no)
            if red is None or red.original_invoice_no != invoice.invoice_no:
                raise ValueError(f"invoice {invoice.invoice_no} names red invoice {invoice.red_invoice_no!r}, "
                                 "which does not exist or does not void it")
