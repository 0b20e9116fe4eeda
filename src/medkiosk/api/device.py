"""Device API: called only by a kiosk's agent, never by the page (identity and heartbeats)."""

from __future__ import annotations

from typing import Any

import asyncio

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError

from medkiosk.api.deps import Device, Services, signed_path
from medkiosk.services.devices import DeviceAuthError
from medkiosk.services.identify import MediumRead
from medkiosk.services.monitoring import SignedBeat
from medkiosk.services.operations import operations_of

router = APIRouter(prefix="/api/device", tags=["device"])



class FirstVisit(BaseModel):
    pending: str = Field(max_length=4096)
    phone: str = Field(max_length=20)


class PeripheralState(BaseModel):
    state: str = Field(pattern="^(ok|warning|fault|offline|not_configured)$")
    detail: str = Field(default="", max_length=200)
    model_config = {"extra": "allow"}


class Telemetry(BaseModel):
    """Load and counters; the counters are cumulative since the agent started."""

    cpu_percent: float | None = Field(default=None, ge=0, le=100)
    memory_percent: float | None = Field(default=None, ge=0, le=100)
    disk_percent: float | None = Field(default=None, ge=0, le=100)
    transactions: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)


class Heartbeat(BaseModel):
    software_version: str = Field(default="", max_length=40)
    uptime_seconds: int = Field(default=0, ge=0)
    screen: str = Field(default="", max_length=60)
    peripherals: dict[str, PeripheralState] = Field(default_factory=dict, max_length=20)
    telemetry: Telemetry = Field(default_factory=Telemetry)


@router.post("/identify")
def identify(read: MediumRead, device: Device, services: Services) -> dict[str, Any]:
    """Identify the patient from what one of the kiosk's readers read; opens a session on success."""
    return services.identify.identify(device, read).to_json()


@router.post("/identify/phone")
def identify_first_visit(body: FirstVisit, device: Device, services: Services) -> dict[str, Any]:
    """Complete a first visit: create the HIS patient with the phone number the patient entered."""
    return services.identify.complete_first_visit(device, body.pending, body.phone.strip()).to_json()


@router.post("/heartbeat")
async def heartbeat(request: Request, services: Services) -> dict[str, Any]:
    """Store the device's current state and telemetry (signature checked, written in batches)."""
    body = await request.body()
    try:
        parsed = Heartbeat.model_validate_json(body).model_dump() if body else Heartbeat().model_dump()
    except ValidationError:
        parsed = None
    beat = SignedBeat(request.headers, request.method, signed_path(request), body, parsed,
                      request.client.host if request.client else "")
    try:
        at = await asyncio.wrap_future(operations_of(services).monitoring.submit(beat))
    except DeviceAuthError as exc:
        raise HTTPException(401, {"message": "设备认证失败", "reason": exc.reason}) from exc
    if parsed is None:
        raise HTTPException(422, {"message": "请求内容不正确", "next_step": "请检查设备代理版本"})
    return {"received_at": at.isoformat()}
