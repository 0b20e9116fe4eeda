"""The demo panel's endpoints: present the personas' cards and codes, set peripheral states, see printouts.

Mounted only when the agent runs with ``demo`` on; otherwise every path here answers 404.
What the panel presents goes through the same identification loop as a physical read.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from medkiosk.agent.drivers.base import (
    CardRead,
    Drivers,
    IdCardRead,
    Medium,
    PaperLevel,
    PeripheralError,
    PeripheralState,
    ScanRead,
)
from medkiosk.agent.drivers.simulated import (
    SimulatedA4Printer,
    SimulatedPos,
    SimulatedReceiptPrinter,
    SimulatedReader,
)
from medkiosk.agent.errors import AgentError
from medkiosk.domain.masking import mask_name
from medkiosk.domain.identity import birth_date_from_id, gender_from_id
from medkiosk.simulators.personas import PERSONAS, Persona

DEMO_ADDRESS = "示范市示范区健康路1号"  # personas carry no address; the ID card needs one


def persona_media(persona: Persona) -> list[str]:
    media = [Medium.ID_CARD.value]
    if persona.insurance is not None:
        media.insert(0, Medium.INSURANCE_CARD.value)
        if persona.insurance.ec_qr:
            media.append(Medium.E_CERTIFICATE.value)
    if persona.visit_card_no:
        media.append(Medium.VISIT_CARD.value)
    return media


def _persona(key: str) -> Persona:
    persona = PERSONAS.get(key)
    if persona is None:
        raise AgentError(404, "没有这个演示人员", "请从演示人员列表中选择")
    return persona


class PersonaOrFields(BaseModel):
    persona: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "PersonaOrFields":
        explicit = {k for k, v in self.model_dump(exclude={"persona"}).items() if v not in (None, "")}
        if self.persona is None and not explicit:
            raise ValueError("give a persona or the card's fields")
        return self


class InsuranceCardIn(PersonaOrFields):
    card_no: str | None = Field(default=None, max_length=40)
    card_sn: str | None = Field(default=None, max_length=64)
    id_number: str | None = Field(default=None, max_length=18)
    name: str | None = Field(default=None, max_length=50)


class IdCardIn(PersonaOrFields):
    id_number: str | None = Field(default=None, max_length=18)
    name: str | None = Field(default=None, max_length=50)
    gender: str | None = None
    birth_date: str | None = None
    address: str | None = Field(default=None, max_length=120)


class VisitCardIn(PersonaOrFields):
    visit_card_no: str | None = Field(default=None, max_length=40)


class ScanIn(PersonaOrFields):
    code: str | None = Field(default=None, max_length=1000)


class PeripheralIn(BaseModel):
    name: str
    state: PeripheralState | None = None
    paper: PaperLevel | None = None
    detail: str = Field(default="", max_length=100)


class PosIn(BaseModel):
    decline: bool
    reason: str | None = Field(default=None, max_length=100)


def _present(reader: object, read: Any) -> dict[str, Any]:
    if not isinstance(reader, SimulatedReader):
        raise AgentError(409, "该设备不是模拟设备", "演示面板只能操作模拟设备")
    try:
        reader.present(read)
    except PeripheralError as exc:
        raise AgentError(409, exc.message, exc.next_step) from exc
    return {"presented": read.medium.value}


def demo_router(drivers: Drivers) -> APIRouter:
    router = APIRouter(prefix="/local/demo")

    @router.get("/personas")
    async def personas() -> list[dict[str, Any]]:
        return [{"key": p.key, "masked_name": mask_name(p.name), "notes": p.notes, "media": persona_media(p)}
                for p in PERSONAS.values()]

    @router.post("/insurance-card")
    async def insurance_card(body: InsuranceCardIn) -> dict[str, Any]:
        if body.persona is not None:
            persona = _persona(body.persona)
            if persona.insurance is None:
                raise AgentError(422, "该演示人员没有医保卡", "请换用身份证或就诊卡")
            read = CardRead(card_no=persona.insurance.card_no, card_sn=persona.insurance.card_sn,
                            id_number=persona.id_number, name=persona.name)
        else:
            if not body.card_no:
                raise AgentError(422, "请填写卡号", "医保卡需要卡号")
            read = CardRead(card_no=body.card_no, card_sn=body.card_sn or "", id_number=body.id_number or "",
                            name=body.name or "")
        return _present(drivers.insurance_card_reader, read)

    @router.post("/id-card")
    async def id_card(body: IdCardIn) -> dict[str, Any]:
        if body.persona is not None:
            persona = _persona(body.persona)
            read = IdCardRead(id_number=persona.id_number, name=persona.name,
                              gender=gender_from_id(persona.id_number),
                              birth_date=birth_date_from_id(persona.id_number).isoformat(), address=DEMO_ADDRESS)
        else:
            if not (body.id_number and body.name):
                raise AgentError(422, "请填写身份证号和姓名", "身份证需要号码和姓名")
            read = IdCardRead(id_number=body.id_number, name=body.name, gender=body.gender,
                              birth_date=body.birth_date, address=body.address or "")
        return _present(drivers.id_card_reader, read)

    @router.post("/visit-card")
    async def visit_card(body: VisitCardIn) -> dict[str, Any]:
        number = body.visit_card_no
        if body.persona is not None:
            number = _persona(body.persona).visit_card_no
            if not number:
                raise AgentError(422, "该演示人员没有就诊卡", "请换用医保卡或身份证")
        return _present(drivers.qr_scanner, ScanRead(medium=Medium.VISIT_CARD, visit_card_no=number))

    @router.post("/scan")
    async def scan(body: ScanIn) -> dict[str, Any]:
        code = body.code
        if body.persona is not None:
            persona = _persona(body.persona)
            code = persona.insurance.ec_qr if persona.insurance else None
            if not code:
                raise AgentError(422, "该演示人员没有医保电子凭证", "请换用身份证或就诊卡")
        return _present(drivers.qr_scanner, ScanRead(medium=Medium.E_CERTIFICATE, qrcode=code))

    @router.post("/peripheral")
    async def peripheral(body: PeripheralIn) -> dict[str, Any]:
        target = drivers.all().get(body.name)
        if target is None:
            raise AgentError(404, "没有这个设备", "设备名：" + "、".join(drivers.all()))
        if isinstance(target, (SimulatedReceiptPrinter, SimulatedA4Printer)):
            target.set_state(body.state, body.paper)
        elif isinstance(target, (SimulatedReader, SimulatedPos)):
            if body.paper is not None:
                raise AgentError(422, "该设备没有纸张状态", "只有打印机可以设置纸张")
            if body.state is not None:
                if isinstance(target, SimulatedReader):
                    target.set_state(body.state, body.detail)
                else:
                    target.set_state(body.state)
        else:
            raise AgentError(409, "该设备不是模拟设备", "演示面板只能操作模拟设备")
        return {"name": body.name, **target.status().for_heartbeat()}

    @router.get("/printed")
    async def printed() -> list[dict[str, Any]]:
        items = []
        for printer in (drivers.receipt_printer, drivers.a4_printer):
            if isinstance(printer, (SimulatedReceiptPrinter, SimulatedA4Printer)):
                items.extend(printer.outbox.recent)
        return [p.as_json() for p in sorted(items, key=lambda p: p.printed_at, reverse=True)]

    @router.post("/pos")
    async def pos(body: PosIn) -> dict[str, Any]:
        if not isinstance(drivers.bank_pos, SimulatedPos):
            raise AgentError(409, "该设备不是模拟设备", "演示面板只能操作模拟设备")
        drivers.bank_pos.set_decline(body.decline, body.reason)
        return {"decline": drivers.bank_pos.decline, "reason": drivers.bank_pos.decline_reason}

    return router
