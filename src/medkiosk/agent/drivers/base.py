"""What the agent asks of each peripheral: small typed protocols, the reads they deliver, their errors.

Readers are asynchronous: ``await reader.next_read()`` returns when a patient presents a card or
a code (a real driver polls its SDK on a thread and hands the read to the event loop). Printers
and the POS are synchronous (blocking device I/O); the agent calls them on a worker thread.
Every peripheral reports ``status()`` for the heartbeat; ``detail`` is Chinese, for staff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from medkiosk.agent.documents import Receipt
from medkiosk.domain.masking import mask_card, mask_id_number, mask_name


class PeripheralState(StrEnum):
    OK = "ok"
    """Working."""
    WARNING = "warning"
    """Working, but needs attention soon (paper low)."""
    FAULT = "fault"
    """Present but cannot do its job (paper out, cover open, cutter jammed)."""
    OFFLINE = "offline"
    """Not answering, or not configured on this kiosk."""


class PaperLevel(StrEnum):
    OK = "ok"
    LOW = "low"
    """The near-end sensor is on: a few metres left."""
    OUT = "out"


class PeripheralStatus(BaseModel):
    state: PeripheralState
    detail: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def can_work(self) -> bool:
        return self.state in (PeripheralState.OK, PeripheralState.WARNING)

    def for_heartbeat(self) -> dict[str, Any]:
        return {**self.extra, "state": self.state.value, "detail": self.detail[:200]}


class Medium(StrEnum):
    INSURANCE_CARD = "insurance_card"
    ID_CARD = "id_card"
    E_CERTIFICATE = "e_certificate"
    VISIT_CARD = "visit_card"


class CardRead(BaseModel):
    """A social-security (insurance) card in the card reader."""

    medium: Literal[Medium.INSURANCE_CARD] = Medium.INSURANCE_CARD
    card_no: str = Field(min_length=1, max_length=40)
    card_sn: str = Field(default="", max_length=64)
    id_number: str = Field(default="", max_length=18)
    name: str = Field(default="", max_length=40)

    def identify_body(self) -> dict[str, Any]:
        return {"medium": self.medium.value, "card_no": self.card_no, "card_sn": self.card_sn,
                "id_number": self.id_number, "name": self.name}

    def masked(self) -> dict[str, str]:
        return {"medium": self.medium.value, "card_no": mask_card(self.card_no),
                "id_number": mask_id_number(self.id_number), "name": mask_name(self.name)}


class IdCardRead(BaseModel):
    """A resident ID card on the ID-card reader."""

    medium: Literal[Medium.ID_CARD] = Medium.ID_CARD
    id_number: str = Field(min_length=15, max_length=18)
    name: str = Field(min_length=1, max_length=40)
    gender: Literal["M", "F"] | None = None
    birth_date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    address: str = Field(default="", max_length=200)

    def identify_body(self) -> dict[str, Any]:
        return {"medium": self.medium.value, "id_number": self.id_number, "name": self.name,
                "gender": self.gender, "birth_date": self.birth_date, "address": self.address}

    def masked(self) -> dict[str, str]:
        return {"medium": self.medium.value, "id_number": mask_id_number(self.id_number), "name": mask_name(self.name)}


class ScanRead(BaseModel):
    """A code at the scanner: the national insurance e-certificate QR, or a visit card's barcode."""

    medium: Literal[Medium.E_CERTIFICATE, Medium.VISIT_CARD]
    qrcode: str | None = Field(default=None, max_length=512)
    visit_card_no: str | None = Field(default=None, max_length=40)

    def identify_body(self) -> dict[str, Any]:
        if self.medium is Medium.E_CERTIFICATE:
            return {"medium": self.medium.value, "qrcode": self.qrcode}
        return {"medium": self.medium.value, "visit_card_no": self.visit_card_no}

    def masked(self) -> dict[str, str]:
        value = self.qrcode if self.medium is Medium.E_CERTIFICATE else self.visit_card_no
        return {"medium": self.medium.value, "code": mask_card(value)}


MediumRead = CardRead | IdCardRead | ScanRead


class PeripheralError(Exception):
    """A peripheral could not do what was asked; ``message`` and ``next_step`` are for the patient."""

    def __init__(self, message: str, next_step: str = "请到人工窗口办理", *, detail: str = "") -> None:
        super().__init__(detail or message)
        self.message = message
        self.next_step = next_step
        self.detail = detail


class PrinterNotReady(PeripheralError):
    """The printer reported a state it cannot print in (paper out, cover open, offline)."""


class PosDeclined(PeripheralError):
    """The bank refused the transaction: a refusal, permanent; show the reason, do not retry."""


class PosUnavailable(PeripheralError):
    """No usable answer from the POS: the transaction's outcome is unknown."""


class PosSaleSettled(PosDeclined):
    """A void refused because the sale has left the open batch (the terminal was settled): refund it."""


@dataclass(frozen=True)
class PrintJob:
    """What a printer did with a job. ``files`` are what a simulated printer saved."""

    job_id: str
    kind: Literal["receipt", "a4"]
    printed_at: datetime
    title: str = ""
    files: tuple[Path, ...] = ()


class PosKind(StrEnum):
    SALE = "sale"
    VOID = "void"
    REFUND = "refund"


class PosResult(BaseModel):
    kind: PosKind
    order_no: str
    amount: Decimal
    reference: str = Field(description="the bank's reference number (参考号)")
    original_reference: str | None = None
    approved_at: datetime


class PosBatchLine(BaseModel):
    """One transaction of a settled batch, as the terminal lists it on its settlement slip."""

    reference: str = Field(description="the bank's reference number (参考号)")
    kind: PosKind
    amount: Decimal
    key: str = Field(description="the order key it was made under: a sale's trade number, a void's or refund's "
                                 "refund number")
    original_reference: str | None = None
    approved_at: datetime


class PosBatch(BaseModel):
    """A settlement batch (批结算): what the terminal closed and sent to the bank, with its totals."""

    batch_no: str
    terminal_id: str
    settled_at: datetime
    lines: list[PosBatchLine] = Field(default_factory=list)
    sale_count: int = 0
    sale_amount: Decimal = Decimal("0.00")
    void_count: int = 0
    void_amount: Decimal = Decimal("0.00")
    refund_count: int = 0
    refund_amount: Decimal = Decimal("0.00")
    net_amount: Decimal = Decimal("0.00")
    """Sales less voids and refunds: what the bank credits the hospital for this batch (before fees)."""

    @classmethod
    def close(cls, batch_no: str, terminal_id: str, settled_at: datetime, lines: list[PosBatchLine]) -> "PosBatch":
        """A batch with its totals added up from its lines, the way a terminal prints them."""
        totals: dict[str, Any] = {}
        for kind in PosKind:
            of_kind = [line.amount for line in lines if line.kind is kind]
            totals[f"{kind.value}_count"] = len(of_kind)
            totals[f"{kind.value}_amount"] = sum(of_kind, Decimal("0.00"))
        net = totals["sale_amount"] - totals["void_amount"] - totals["refund_amount"]
        return cls(batch_no=batch_no, terminal_id=terminal_id, settled_at=settled_at, lines=lines, net_amount=net,
                   **totals)


@runtime_checkable
class Peripheral(Protocol):
    def status(self) -> PeripheralStatus: ...


class InsuranceCardReader(Peripheral, Protocol):
    async def next_read(self) -> CardRead:
        """Wait for the next card and return what it carries."""
        ...

    def release(self) -> None:
        """Eject the card (motorised readers) and forget any read not yet taken."""
        ...


class IdCardReader(Peripheral, Protocol):
    async def next_read(self) -> IdCardRead: ...

    def release(self) -> None: ...


class QrScanner(Peripheral, Protocol):
    async def next_read(self) -> ScanRead: ...

    def release(self) -> None: ...


class ReceiptPrinter(Peripheral, Protocol):
    def print_receipt(self, receipt: Receipt) -> PrintJob:
        """Print, or raise :class:`PrinterNotReady` / :class:`PeripheralError`."""
        ...


class A4Printer(Peripheral, Protocol):
    def print_pdf(self, pdf: bytes, *, title: str = "") -> PrintJob: ...


class BankPos(Peripheral, Protocol):
    def sale(self, amount: Decimal, order_no: str) -> PosResult:
        """Charge a bank card; raise :class:`PosDeclined` or :class:`PosUnavailable`."""
        ...

    def void(self, reference: str, order_no: str) -> PosResult:
        """Cancel a sale still in the open batch by its reference (:class:`PosSaleSettled` otherwise)."""
        ...

    def refund(self, amount: Decimal, reference: str, order_no: str) -> PosResult: ...

    def query(self, order_no: str) -> PosResult | None:
        """The transaction made under ``order_no`` (a sale's trade number, a void's or refund's refund
        number), or None when the terminal made none; raise :class:`PosUnavailable` when it cannot say."""
        ...

    def settle(self) -> PosBatch:
        """Close the open batch (批结算) and return it; the next transaction opens a new batch. A void
        after this raises :class:`PosSaleSettled` for the settled sales; raise :class:`PosUnavailable`
        when the terminal cannot settle now."""
        ...


Reader = InsuranceCardReader | IdCardReader | QrScanner

PERIPHERAL_NAMES = ("insurance_card_reader", "id_card_reader", "qr_scanner", "receipt_printer", "a4_printer",
                    "bank_pos")


@dataclass
class Drivers:
    """The six peripherals of one kiosk."""

    insurance_card_reader: InsuranceCardReader
    id_card_reader: IdCardReader
    qr_scanner: QrScanner
    receipt_printer: ReceiptPrinter
    a4_printer: A4Printer
    bank_pos: BankPos

    def all(self) -> dict[str, Peripheral]:
        return {name: getattr(self, name) for name in PERIPHERAL_NAMES}

    def readers(self) -> dict[str, Reader]:
        return {"insurance_card_reader": self.insurance_card_reader, "id_card_reader": self.id_card_reader,
                "qr_scanner": self.qr_scanner}
