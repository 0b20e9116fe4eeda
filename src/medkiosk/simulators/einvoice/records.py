"""The e-invoice simulator's stored invoices: strict about what they accept, checked to add up."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medkiosk.adapters.einvoice.port import InvoiceKind, InvoiceStatus, PayerIdType
from medkiosk.domain.money import NonNegativeMoney as Money

Key = Annotated[str, Field(min_length=1, max_length=64)]
Digits = Annotated[str, Field(pattern=r"^\d+$", min_length=6, max_length=20)]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class ItemRecord(Record):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    amount: Money
    category: Annotated[str, Field(min_length=1, max_length=20)]


class InvoiceRecord(Record):
    """A blue invoice, or a red-letter one that voids a blue one (then its figures are the blue one's)."""

    invoice_code: Digits
    invoice_no: Digits
    check_code: Annotated[str, Field(pattern=r"^[0-9a-f]{6}$")]
    kind: InvoiceKind = InvoiceKind.BLUE
    status: InvoiceStatus = InvoiceStatus.ISSUED
    idempotency_key: Key
    bill_no: Key
    payer_name: Annotated[str, Field(min_length=1, max_length=50)]
    payer_id_type: PayerIdType
    total: Money
    fund: Money
    account: Money
    cash: Money
    items: list[ItemRecord] = Field(min_length=1, max_length=200)
    insurance_type: Annotated[str, Field(max_length=40)] | None = None
    cross_region_note: Annotated[str, Field(max_length=100)] | None = None
    issued_at: dt.datetime
    original_invoice_no: Digits | None = None
    red_invoice_no: Digits | None = None
    voided_at: dt.datetime | None = None
    void_reason: Annotated[str, Field(max_length=200)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> InvoiceRecord:
        if self.fund + self.account + self.cash != self.total:
            raise ValueError("fund + account + cash must equal total")
        if sum(i.amount for i in self.items) != self.total:  # type: ignore[misc]
            raise ValueError("the items do not add up to total")
        if self.kind is InvoiceKind.RED:
            if self.original_invoice_no is None or self.status is not InvoiceStatus.ISSUED:
                raise ValueError("a red invoice names original_invoice_no and is issued")
            if self.red_invoice_no is not None:
                raise ValueError("a red invoice cannot itself be voided")
        else:
            if self.original_invoice_no is not None:
                raise ValueError("only a red invoice has an original_invoice_no")
            voided = self.status is InvoiceStatus.VOIDED
            if voided != (self.red_invoice_no is not None) or voided != (self.voided_at is not None):
                raise ValueError("a voided invoice, and only a voided one, has red_invoice_no and voided_at")
        return self

