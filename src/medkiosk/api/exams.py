"""Kiosk exam-appointment API (检查预约): the patient's exam orders, windows, booking, moving, cancelling, the slip."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from medkiosk.api.deps import Device, Services
from medkiosk.api.refusals import refusal_guard
from medkiosk.services.exams import ExamRefused, exams_of

router = APIRouter(prefix="/api/kiosk/exams", tags=["kiosk exams"])

OrderNo = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]


class ChooseWindow(BaseModel):
    date: dt.date
    start: dt.time


guard = refusal_guard(ExamRefused)


@router.get("/orders")
def orders(device: Device, services: Services) -> dict[str, Any]:
    """Paid exam orders that need an appointment: bookable, booked here (with the window), or booked elsewhere."""
    return guard(lambda: exams_of(services).orders(device))


@router.get("/orders/{order_no}/slots")
def slots(order_no: OrderNo, device: Device, services: Services) -> dict[str, Any]:
    """Dates and time windows with the places left, earliest first; no resource is ever named."""
    return guard(lambda: exams_of(services).slots(device, order_no))


@router.post("/orders/{order_no}/booking")
def book(order_no: OrderNo, body: ChooseWindow, device: Device, services: Services) -> dict[str, Any]:
    return guard(lambda: exams_of(services).book(device, order_no, body.date, body.start))


@router.post("/orders/{order_no}/booking/move")
def move(order_no: OrderNo, body: ChooseWindow, device: Device, services: Services) -> dict[str, Any]:
    """改约: the same booking in another window, within the change deadline."""
    return guard(lambda: exams_of(services).move(device, order_no, body.date, body.start))


@router.post("/orders/{order_no}/booking/cancel")
def cancel(order_no: OrderNo, device: Device, services: Services) -> dict[str, Any]:
    return guard(lambda: exams_of(services).cancel(device, order_no))


@router.get("/orders/{order_no}/slip")
def slip(order_no: OrderNo, device: Device, services: Services, reprint: bool = False) -> dict[str, Any]:
    """The appointment slip for the agent's receipt printer; ``reprint`` marks it 补打 and counts it."""
    return guard(lambda: exams_of(services).slip(device, order_no, reprint=reprint).model_dump(mode="json"))
