"""Kiosk check-in API (报到): today's registrations and checking in; signed by the kiosk's agent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from medkiosk.api.deps import authenticated_device, container
from medkiosk.bootstrap import Container
from medkiosk.services.devices import AuthenticatedDevice
from medkiosk.services.queues import QueueRefused
from medkiosk.services.sessions import NoSession

router = APIRouter(prefix="/api/kiosk/checkin", tags=["kiosk check-in"])

Device = Annotated[AuthenticatedDevice, Depends(authenticated_device)]
Services = Annotated[Container, Depends(container)]


class CheckIn(BaseModel):
    registration_no: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


def _guard(call):
    try:
        return call()
    except QueueRefused as exc:
        raise HTTPException(exc.status, {"message": exc.message, "next_step": exc.next_step}) from exc
    except NoSession as exc:
        raise HTTPException(401, {"message": "操作超时，已退出，请重新识别身份", "next_step": "请重新插卡或扫码",
                                  "session_ended": True}) from exc


@router.get("")
def today(device: Device, services: Services) -> dict[str, Any]:
    """The patient's registrations of today and whether each can check in."""
    return _guard(lambda: services.checkin.today(device))


@router.post("")
def check_in(body: CheckIn, device: Device, services: Services) -> dict[str, Any]:
    """Check in: join the department's queue (the HIS is told); the number, position and people ahead."""
    return _guard(lambda: services.checkin.check_in(device, body.registration_no))
