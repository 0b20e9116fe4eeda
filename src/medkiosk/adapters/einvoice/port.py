"""The e-invoice port: what the kiosk asks of the fiscal e-invoice platform (财政电子票据), and its answers.

An outpatient payment gets one medical-charges e-invoice (医疗收费电子票据); a refund voids it
with a red-letter invoice (红冲). Models are parsed at the edge from the contract in
docs/simulators/einvoice.md. The payer's name is on the invoice (the platform needs it) but never
in a ``repr`` or a log line.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medkiosk.domain.money import Money, NonNegativeMoney


class InvoiceKind(StrEnum):
    BLUE = "blue"
    """An ordinary invoice (蓝字票据) for money received."""
    RED = "red"
    """A red-letter invoice (红字票据) that voids a blue one (红冲)."""


class InvoiceStatus(StrEnum):
    ISSUED = "issued"
    """Valid: the invoice stands."""
    VOIDED = "voided"
    """A blue invoice voided by a red-letter one; it no longer counts."""


class PayerIdType(StrEnum):
    RESIDENT_ID = "resident_id"
    """Resident identity card (居民身份证)."""
    PASSPORT = "passport"
    """Passport (护照)."""
    TRAVEL_PERMIT = "travel_permit"
    """Mainland travel permit for Hong Kong, Macao or Taiwan residents (港澳台居民来往内地通行证)."""
    OTHER = "other"
    """Another document, or none (a newborn, an unidentified patient)."""


class EInvoiceModel(BaseModel):
    # A tolerant reader: fields the kiosk does not use may come and go on the platform's side.
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


FISCAL_CATEGORIES = {
    "drug": "西药费",
    "lab": "化验费",
    "exam": "检查费",
    "treatment": "治疗费",
    "material": "卫生材料费",
    "non_medical": "其他费用",
    "registration": "挂号费",
}
"""The invoice's charge category (收费项目类别) for each HIS item kind (and for a registration fee)."""


class InvoiceItem(EInvoiceModel):
    name: str = Field(min_length=1, max_length=100)
    amount: NonNegativeMoney
    category: str = Field(min_length=1, max_length=20)
    """The charge category printed on the invoice (西药费, 检查费, 化验费 …); an HIS item kind
    (``drug``, ``exam`` …, see :data:`FISCAL_CATEGORIES`) is read as its category."""

    @field_validator("category", mode="before")
    @classmethod
    def _category_of_kind(cls, value: Any) -> Any:
        return FISCAL_CATEGORIES.get(str(value).strip(), value) if value is not None else value


class InvoiceRequest(EInvoiceModel):
    """An invoice to issue for one paid bill; ``idempotency_key`` makes a retry return the same invoice."""

    idempotency_key: str = Field(min_length=1, max_length=64)
    bill_no: str = Field(min_length=1, max_length=64)
    """Our order number: the platform's business serial (业务流水号)."""
    payer_name: str = Field(min_length=1, max_length=50, repr=False)
    """The patient's name, as printed on the invoice (mask it in logs, never here)."""
    payer_id_type: PayerIdType = PayerIdType.RESIDENT_ID
    total: NonNegativeMoney
    fund: NonNegativeMoney
    """Paid by the pooled insurance fund (医保统筹基金)."""
    account: NonNegativeMoney
    """Paid from the personal insurance account (个人账户)."""
    cash: NonNegativeMoney
    """Paid by the patient (个人现金); ``fund + account + cash == total`` and the items add up to ``total``."""
    items: list[InvoiceItem] = Field(min_length=1, max_length=200)
    insurance_type: str | None = Field(default=None, max_length=40)
    """As printed (职工基本医疗保险, 城乡居民基本医疗保险 …); None for self-pay."""
    cross_region_note: str | None = Field(default=None, max_length=100)
    """Set for a cross-region settlement (异地医保结算), e.g. the insured region; printed on the invoice."""
    issued_at: dt.datetime
    """When the bill was paid; printed as the invoice date. A repeat may carry a later time: the first is kept."""


class Invoice(EInvoiceModel):
    invoice_code: str
    """票据代码 (8 digits)."""
    invoice_no: str
    """票据号码 (10 digits)."""
    check_code: str
    """校验码: with code and number, what a patient types to verify the invoice online."""
    kind: InvoiceKind
    status: InvoiceStatus
    bill_no: str
    payer_name: str = Field(repr=False)
    payer_id_type: PayerIdType
    total: Money
    fund: Money
    account: Money
    cash: Money
    items: list[InvoiceItem]
    insurance_type: str | None = None
    cross_region_note: str | None = None
    issued_at: dt.datetime
    pdf_url: str
    original_invoice_no: str | None = None
    """For a red-letter invoice: the blue invoice it voids."""
    red_invoice_no: str | None = None
    """For a voided blue invoice: the red-letter invoice that voided it."""
    voided_at: dt.datetime | None = None
    void_reason: str | None = None


class VoidedInvoice(EInvoiceModel):
    """The answer to a void: the red-letter invoice that cancels ``original_invoice_no``."""

    original_invoice_no: str
    red_invoice_code: str
    red_invoice_no: str
    red_check_code: str
    voided_at: dt.datetime
    reason: str
    total: Money
    pdf_url: str


class EInvoiceHealth(EInvoiceModel):
    status: str
    version: str | None = None


class EInvoicePort(Protocol):
    """The fiscal e-invoice platform as the kiosk sees it.

    Every method raises :class:`~medkiosk.adapters.errors.UpstreamRefused` when the platform
    refuses (its message is fit to show; :class:`~medkiosk.adapters.errors.UpstreamNotFound` for an
    unknown invoice) and :class:`~medkiosk.adapters.errors.UpstreamUnknown` when no usable answer
    came back — then repeat the call with the same idempotency key, which is safe.
    """

    def health(self) -> EInvoiceHealth: ...

    def issue(self, request: InvoiceRequest) -> Invoice:
        """Issue the bill's invoice; the same key answers with the same invoice."""
        ...

    def void(self, invoice_no: str, idempotency_key: str, reason: str) -> VoidedInvoice:
        """Void an invoice with a red-letter one (红冲); the same key answers with the same red invoice."""
        ...

    def pdf(self, invoice_no: str) -> bytes:
        """The invoice's PDF (blue or red), ready to print on A4."""
        ...

    def find(self, bill_no: str) -> list[Invoice]:
        """Every invoice of a bill, blue and red, oldest first."""
        ...
