"""Kiosk document API: requisitions and prescription copies to reprint (补打), lab and exam reports, on A4."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from medkiosk.api.deps import Device, Services
from medkiosk.api.refusals import refusal_guard
from medkiosk.services.documents import DocumentRefused, documents_of

router = APIRouter(prefix="/api/kiosk/documents", tags=["kiosk documents"])

DocNo = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]


class PrintOutcome(BaseModel):
    printed: bool
    detail: str = Field(default="", max_length=500)


guard = refusal_guard(DocumentRefused)


@router.get("")
def documents(device: Device, services: Services) -> dict[str, Any]:
    """Exam requisitions and prescriptions the HIS holds for the patient, with the prints left."""
    return guard(lambda: documents_of(services).documents(device))


@router.get("/reports")
def reports(device: Device, services: Services) -> dict[str, Any]:
    return guard(lambda: documents_of(services).reports(device))


@router.post("/{kind}/{doc_no}/print")
def issue(kind: Literal["requisition", "prescription", "report"], doc_no: DocNo, device: Device,
          services: Services) -> dict[str, Any]:
    """Reserve the next print (limit checked, copy or original decided); fetch its PDF next."""
    return guard(lambda: documents_of(services).issue(device, kind, doc_no))


@router.get("/prints/{print_id}.pdf", response_class=Response)
def pdf(print_id: int, device: Device, services: Services) -> Response:
    body = guard(lambda: documents_of(services).pdf(device, print_id))
    return Response(body, media_type="application/pdf", headers={"Cache-Control": "no-store"})


@router.post("/prints/{print_id}/result")
def result(print_id: int, body: PrintOutcome, device: Device, services: Services) -> dict[str, Any]:
    """The A4 printer's answer: printed (counted) or failed (not counted; the patient may try again)."""
    return guard(lambda: documents_of(services).finish(device, print_id, printed=body.printed, detail=body.detail))
