"""Device API: called only by a kiosk's agent, never by the page (identity and heartbeats)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from medkiosk.api.deps import authenticated_device, container
from medkiosk.bootstrap import Container
from medkiosk.services.devices import AuthenticatedDevice
from medkiosk.services.identify import MediumRead

router = APIRouter(prefix="/api/device", tags=["device"])

Device = Annotated[AuthenticatedDevice, Depends(authenticated_device)]
Services = Annotated[Container, Depends(container)]


class FirstVisit(BaseModel):
    pending: str = Field(max_length=4096)
    phone: str = Field(max_length=20)


class PeripheralState(BaseModel):
    state: str = Field(pattern="^(ok|warning|fault|offline|not_configured)$")
    detail: str = Field(default="", max_length=200)
    model_config = {"extra": "allow"}


class Heartbeat(BaseModel):
    software_version: str = Field(default="", max_length=40)
    uptime_seconds: int = Field(default=0, ge=0)
    screen: str = Field(default="", max_length=60)
    peripherals: dict[str, PeripheralState] = Field(default_factory=dict)


@router.post("/identify")
def identify(read: MediumRead, device: Device, services: Services) -> dict[str, Any]:
    """Identify the patient from what one of the kiosk's readers read; opens a session on success."""
    return services.identify.identify(device, read).to_json()


@router.post("/identify/phone")
def identify_first_visit(body: FirstVisit, device: Device, services: Services) -> dict[str, Any]:
    """Complete a first visit: create the HIS patient with the phone number the patient entered."""
    return services.identify.complete_first_visit(device, body.pending, body.phone.strip()).to_json()


@router.post("/heartbeat")
def heartbeat(body: Heartbeat, device: Device, services: Services) -> dict[str, Any]:
    """Store the device's current state (peripherals, version, screen)."""
    at = services.devices.record_heartbeat(
        device, software_version=body.software_version, uptime_seconds=body.uptime_seconds, screen=body.screen,
        peripherals={name: p.model_dump() for name, p in body.peripherals.items()})
    return {"received_at": at.isoformat()}
