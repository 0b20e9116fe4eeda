"""Kiosk API: the page's business calls, forwarded and signed by the agent; bound to the device."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from medkiosk.api.deps import Device, Services
from medkiosk.domain.session import SessionEnd
from medkiosk.logging import get_logger
from medkiosk.services.catalog import tiles_for
from medkiosk.services.events import record_event
from medkiosk.services.sessions import NoSession
from medkiosk.settings import TerminalType

log = get_logger(__name__)
router = APIRouter(prefix="/api/kiosk", tags=["kiosk"])


TERMINAL_LABELS = {TerminalType.OUTPATIENT: "门诊自助机", TerminalType.WARD: "住院病区终端"}


class StaffCall(BaseModel):
    reason: str = Field(default="", max_length=100)
    screen: str = Field(default="", max_length=60)


@router.get("/home")
def home(device: Device, services: Services) -> dict[str, Any]:
    """What the home screen shows: hospital, terminal, service tiles and the session timings."""
    settings = services.settings
    return {
        "hospital_name": settings.hospital_name,
        "device_id": device.id,
        "device_name": device.name,
        "location": device.location,
        "terminal_type": device.terminal_type.value,
        "terminal_label": TERMINAL_LABELS[device.terminal_type],
        "idle_seconds": settings.session_idle_seconds,
        "warn_seconds": settings.session_warn_seconds,
        "demo": settings.demo,
        "services": tiles_for(device.terminal_type),
    }


@router.get("/session")
def session(device: Device, services: Services) -> dict[str, Any]:
    """The device's live session, or null with why it ended (an expired session is ended here)."""
    try:
        return {"session": services.sessions.current(device).to_json()}
    except NoSession as exc:
        return {"session": None, "ended": exc.ended.value if exc.ended else None}


@router.post("/session/extend")
def extend(device: Device, services: Services) -> dict[str, Any]:
    """The patient touched the screen or asked for more time (需要更多时间)."""
    try:
        return {"session": services.sessions.touch(device).to_json()}
    except NoSession as exc:
        return {"session": None, "ended": exc.ended.value if exc.ended else None}


@router.post("/session/logout")
def logout(device: Device, services: Services, reason: SessionEnd = SessionEnd.LOGOUT) -> dict[str, Any]:
    """End the session (退出, or the page's idle countdown ran out)."""
    return {"ended": services.sessions.end(device, reason)}


@router.post("/staff-call")
def staff_call(body: StaffCall, device: Device, services: Services) -> dict[str, str]:
    """呼叫工作人员: raise an event staff see on their events page."""
    with services.uow() as uow:
        record_event(uow, services.clock, "staff_call", f"{device.location or device.id} 的患者呼叫工作人员",
                     severity="warning", device_id=device.id,
                     details={"reason": body.reason, "screen": body.screen, "location": device.location})
        uow.commit()
    log.info("kiosk.staff_call", device_id=device.id, screen=body.screen)
    return {"message": "已通知工作人员，请在原地稍候，工作人员马上过来。"}
