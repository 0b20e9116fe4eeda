"""Kiosk payment API: the patient's unpaid bills, paying them, and the paper that goes with it."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import AwareDatetime, BaseModel, Field

from medkiosk.api.deps import Device, Services
from medkiosk.domain.payment import PaymentMode, PayMethod, PaymentState
from medkiosk.services.payments import PaymentRefused, PosReport
from medkiosk.services.receipts import payment_receipt
from medkiosk.services.sessions import NoSession

router = APIRouter(prefix="/api/kiosk/payments", tags=["kiosk payments"])
pos_router = APIRouter(prefix="/api/device/pos", tags=["device"])

ORDER_NO = r"^PO[0-9A-F]{18,30}$"


class StartPayment(BaseModel):
    visit_no: str = Field(min_length=1, max_length=40)
    mode: PaymentMode
    order_nos: list[str] | None = Field(default=None, max_length=200)


class Pay(BaseModel):
    method: PayMethod
    auth_code: str | None = Field(default=None, max_length=32)


def _refused(exc: PaymentRefused) -> HTTPException:
    return HTTPException(exc.status, {"message": exc.message, "next_step": exc.next_step,
                                      "offer_self_pay": exc.offer_self_pay})


def _guard(call):
    try:
        return call()
    except PaymentRefused as exc:
        raise _refused(exc) from exc
    except NoSession as exc:
        raise HTTPException(401, {"message": "操作超时，已退出，请重新识别身份", "next_step": "请重新插卡或扫码",
                                  "session_ended": True}) from exc


@router.get("/bills")
def bills(device: Device, services: Services) -> dict[str, Any]:
    """The patient's unpaid orders, grouped by visit."""
    return _guard(lambda: services.payments.bills(device))


@router.get("/history")
def history(device: Device, services: Services) -> dict[str, Any]:
    """The patient's kiosk payments of the last 30 days, to look at or reprint."""
    return _guard(lambda: services.payments.history(device))


@router.post("")
def start(body: StartPayment, device: Device, services: Services) -> dict[str, Any]:
    """Choose what to pay (default: the whole visit); the split is computed (pre-settled) at once."""
    return _guard(lambda: services.payments.start(device, body.visit_no, mode=body.mode, order_nos=body.order_nos))


@router.post("/{order_no}/pay")
def pay(order_no: Annotated[str, Field(pattern=ORDER_NO)], body: Pay, device: Device,
        services: Services) -> dict[str, Any]:
    """Pay the cash part: a QR code to scan, or a payment code shown to the scanner."""
    return _guard(lambda: services.payments.pay(device, order_no, body.method, body.auth_code))


@router.get("/{order_no}")
def status(order_no: str, device: Device, services: Services) -> dict[str, Any]:
    """Where the payment stands (while waiting, the channel is asked whether the patient has paid)."""
    return _guard(lambda: services.payments.status(device, order_no))


@router.post("/{order_no}/cancel")
def cancel(order_no: str, device: Device, services: Services) -> dict[str, Any]:
    """The patient backs out; nothing is kept that was charged."""
    return _guard(lambda: services.payments.cancel(device, order_no))


@router.get("/{order_no}/receipt")
def receipt(order_no: str, device: Device, services: Services, reprint: bool = False) -> dict[str, Any]:
    """The receipt (or exception slip) for the agent to print; ``reprint`` marks it 补打 and is logged."""
    def build() -> dict[str, Any]:
        order = services.payments.status(device, order_no)
        if not PaymentState(order["state"]).terminal:
            raise PaymentRefused("缴费尚未完成，暂不能打印凭条。", "请稍候", status=409)
        if reprint:
            services.payments.record_reprint(device, order_no, "receipt")
        session = services.sessions.current(device)
        document = payment_receipt(order, hospital_name=services.settings.hospital_name,
                                   masked_name=session.patient["masked_name"],
                                   printed_at=services.clock.now().astimezone(services.settings.tz),
                                   reprint=reprint)
        return document.model_dump(mode="json")

    return _guard(build)


@router.get("/{order_no}/invoice.pdf", response_class=Response)
def invoice_pdf(order_no: str, device: Device, services: Services, reprint: bool = False) -> Response:
    """The e-invoice as a PDF, for the agent's A4 printer; ``reprint`` (缴费记录) is counted and logged."""
    def fetch() -> bytes:
        pdf = services.payments.invoice_pdf(device, order_no)
        if reprint:  # only once there is a PDF to print: an invoice not issued yet is no reprint
            services.payments.record_reprint(device, order_no, "invoice")
        return pdf

    pdf = _guard(fetch)
    return Response(pdf, media_type="application/pdf", headers={"Cache-Control": "no-store"})


class PosReportIn(BaseModel):
    """One POS outcome the agent reports: a sale under the order's ``…P1``, a void/refund under ``…R1``."""

    key: str = Field(pattern=r"^PO[0-9A-F]{18,30}[PR][0-9]{1,2}$")
    kind: Literal["sale", "void", "refund"]
    status: Literal["approved", "declined", "unknown"]
    amount: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    reference: str = Field(default="", max_length=40)
    message: str = Field(default="", max_length=200)
    approved_at: AwareDatetime | None = None
    """The POS's own time of an approval: a report sent late from the outbox keeps the sale's day."""


@pos_router.post("/reports")
def pos_report(body: PosReportIn, device: Device, services: Services) -> dict[str, Any]:
    """What the kiosk's bank POS did; the order goes on (paid, closed, refunded) at once."""
    if body.status == "approved" and body.amount is None:
        raise HTTPException(422, {"message": "缺少交易金额", "next_step": "请重新报告"})
    return _guard(lambda: services.payments.record_pos_report(device, PosReport(**body.model_dump())))


@pos_router.get("/tasks")
def pos_tasks(device: Device, services: Services) -> dict[str, Any]:
    """Card payments this kiosk's POS must void or refund."""
    return {"tasks": services.payments.pos_tasks(device)}


class PosBatchLineIn(BaseModel):
    """One transaction of a settled batch: a sale under the order's ``…P1``, a void/refund under ``…R1``."""

    reference: str = Field(min_length=1, max_length=40)
    kind: Literal["sale", "void", "refund"]
    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    key: str = Field(min_length=1, max_length=64)
    original_reference: str | None = Field(default=None, max_length=40)
    approved_at: AwareDatetime


class PosBatchIn(BaseModel):
    """A settled batch (批结算) of the kiosk's POS: the terminal's totals and every line."""

    batch_no: str = Field(pattern=r"^[0-9A-Za-z]{1,20}$")
    terminal_id: str = Field(pattern=r"^[0-9A-Za-z._-]{1,32}$")
    settled_at: AwareDatetime
    business_date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$",
                                      description="the hospital day the batch closes (default: that of settled_at)")
    sale_count: int = Field(ge=0, le=100_000)
    sale_amount: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    void_count: int = Field(ge=0, le=100_000)
    void_amount: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    refund_count: int = Field(ge=0, le=100_000)
    refund_amount: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    net_amount: Decimal = Field(max_digits=14, decimal_places=2)
    lines: list[PosBatchLineIn] = Field(default_factory=list, max_length=20_000)


@pos_router.post("/batches")
def pos_batch(body: PosBatchIn, device: Device, services: Services) -> dict[str, Any]:
    """A settled batch of the kiosk's POS, kept for the daily reconciliation; the same batch twice is stored once."""
    import datetime as dt

    from medkiosk.services.reconciliation import (
        PosBatchConflict,
        PosBatchLineReport,
        PosBatchReport,
        ReconciliationService,
    )

    try:
        day = dt.date.fromisoformat(body.business_date) if body.business_date else None
    except ValueError as exc:
        raise HTTPException(422, {"message": "结算日期有误", "next_step": "请检查设备代理"}) from exc
    report = PosBatchReport(
        **body.model_dump(exclude={"lines", "business_date"}), business_date=day,
        lines=tuple(PosBatchLineReport(**line.model_dump()) for line in body.lines))
    try:
        return ReconciliationService.from_container(services).record_pos_batch(device.id, report)
    except PosBatchConflict as exc:
        raise HTTPException(422, {"message": str(exc), "next_step": "请信息中心核对该机POS结算单"}) from exc
