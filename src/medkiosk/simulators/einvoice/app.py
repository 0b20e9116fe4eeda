"""The e-invoice simulator: the fiscal e-invoice platform (财政电子票据平台) behind our contract (/einvoice/v1).

Run it alone with ``medkiosk sim einvoice`` (port 8204) or
``uvicorn --factory medkiosk.simulators.einvoice.app:create_app --port 8204``. Its control surface
(faults, data, call journal) is under ``/__sim__/``; see docs/simulators/einvoice.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, Field

from medkiosk.adapters.einvoice.port import InvoiceKind, PayerIdType
from medkiosk.domain.masking import mask_name
from medkiosk.domain.money import NonNegativeMoney
from medkiosk.simulators.control import SimulatorControl
from medkiosk.simulators.einvoice.document import render_invoice
from medkiosk.simulators.einvoice.records import InvoiceRecord, ItemRecord
from medkiosk.simulators.einvoice.state import DEFAULT_SEED, EInvoiceState
from medkiosk.simulators.jsonapi import Refusal, answer_in_contract_errors

PREFIX = "/einvoice/v1"
REPLAYED_HEADER = "Idempotent-Replayed"

Key = Annotated[str, Field(min_length=1, max_length=64)]


class IssueBody(BaseModel):
    idempotency_key: Key
    bill_no: Key
    payer_name: Annotated[str, Field(min_length=1, max_length=50)]
    payer_id_type: PayerIdType = PayerIdType.RESIDENT_ID
    total: NonNegativeMoney
    fund: NonNegativeMoney
    account: NonNegativeMoney
    cash: NonNegativeMoney
    items: list[ItemRecord] = Field(min_length=1, max_length=200)
    insurance_type: Annotated[str, Field(max_length=40)] | None = None
    cross_region_note: Annotated[str, Field(max_length=100)] | None = None
    issued_at: dt.datetime


class VoidBody(BaseModel):
    idempotency_key: Key
    reason: Annotated[str, Field(min_length=1, max_length=200)]


def create_app(state: EInvoiceState | None = None, *, seed: int = DEFAULT_SEED) -> FastAPI:
    """An e-invoice platform simulator over ``state`` (default: an empty platform numbered from ``seed``)."""
    state = state if state is not None else EInvoiceState(seed=seed)
    control = SimulatorControl("einvoice", state, seed=seed)
    app = FastAPI(title="medkiosk e-invoice platform simulator", version="1",
                  description="财政电子票据平台模拟器; see docs/simulators/einvoice.md.")
    app.state.control = control
    app.state.einvoice = state
    app.include_router(control.router())

    answer_in_contract_errors(app, prefix=PREFIX, refusal=Refusal)

    def pdf_url(request: Request, invoice_no: str) -> str:
        return str(request.url_for("invoice_pdf", invoice_no=invoice_no))

    def reply(request: Request, invoice: InvoiceRecord) -> dict[str, Any]:
        return {**invoice.model_dump(mode="json"), "pdf_url": pdf_url(request, invoice.invoice_no)}

    api = APIRouter(prefix=PREFIX, tags=["e-invoice platform"])

    @api.get("/health")
    async def health() -> dict[str, Any]:
        return await control.operate("health", None, lambda: {"status": "ok", "system": "einvoice", "version": "v1"})

    @api.post("/invoices", status_code=201)
    async def issue(body: IssueBody, request: Request, response: Response) -> dict[str, Any]:
        journal = {"idempotency_key": body.idempotency_key, "bill_no": body.bill_no,
                   "payer_name": mask_name(body.payer_name), "total": f"{body.total:.2f}"}

        def run() -> dict[str, Any]:
            fields = body.model_dump()
            invoice, replayed = state.issue(**fields)
            if replayed:
                response.headers[REPLAYED_HEADER] = "true"
            return reply(request, invoice)

        return await control.operate("einvoice.issue", journal, run)

    @api.get("/invoices")
    async def find(request: Request, bill_no: str | None = None) -> dict[str, Any]:
        return await control.operate("einvoice.list", {"bill_no": bill_no},
                                     lambda: {"invoices": [reply(request, i) for i in state.find(bill_no)]})

    @api.get("/invoices/{invoice_no}")
    async def get(invoice_no: str, request: Request) -> dict[str, Any]:
        return await control.operate("einvoice.get", {"invoice_no": invoice_no},
                                     lambda: reply(request, state.invoice(invoice_no)))

    @api.post("/invoices/{invoice_no}/void")
    async def void(invoice_no: str, body: VoidBody, request: Request, response: Response) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            red, original, replayed = state.void(invoice_no, idempotency_key=body.idempotency_key,
                                                 reason=body.reason)
            if replayed:
                response.headers[REPLAYED_HEADER] = "true"
            return {"original_invoice_no": original.invoice_no, "red_invoice_code": red.invoice_code,
                    "red_invoice_no": red.invoice_no, "red_check_code": red.check_code,
                    "voided_at": original.model_dump(mode="json")["voided_at"],
                    "reason": red.void_reason, "total": f"{red.total:.2f}",
                    "pdf_url": pdf_url(request, red.invoice_no)}

        return await control.operate("einvoice.void", {"invoice_no": invoice_no, **body.model_dump()}, run)

    @api.get("/invoices/{invoice_no}/pdf", name="invoice_pdf")
    async def invoice_pdf(invoice_no: str) -> Response:
        def run() -> bytes:
            invoice = state.invoice(invoice_no)
            original = state.invoice(invoice.original_invoice_no) \
                if invoice.kind is InvoiceKind.RED and invoice.original_invoice_no else None
            return render_invoice(invoice, original)

        content = await control.operate("einvoice.pdf", {"invoice_no": invoice_no}, run)
        return Response(content, media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="einvoice-{invoice_no}.pdf"'})

    app.include_router(api)
    return app
