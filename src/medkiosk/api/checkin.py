"""Kiosk check-in API (报到): today's registrations and exam appointments, checking in; signed by the kiosk's agent."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from medkiosk.api.deps import Device, Services
from medkiosk.api.refusals import refusal_guard
from medkiosk.services.exams import ExamRefused, exams_of
from medkiosk.services.queues import QueueRefused

router = APIRouter(prefix="/api/kiosk/checkin", tags=["kiosk check-in"])



class CheckIn(BaseModel):
    """One of today's registrations or (``exam_order_no``) one of today's exam appointments."""

    registration_no: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    exam_order_no: str | None = Field(default=None, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")

    @model_validator(mode="after")
    def _one_of(self) -> CheckIn:
        if (self.registration_no is None) == (self.exam_order_no is None):
            raise ValueError("name exactly one of registration_no and exam_order_no")
        return self


_guard = refusal_guard(QueueRefused, ExamRefused)


@router.get("")
def today(device: Device, services: Services) -> dict[str, Any]:
    """The patient's registrations and exam appointments of today and whether each can check in."""
    def both() -> dict[str, Any]:
        exams = exams_of(services).due_today(device, services.checkin.queues)  # ours: no HIS call
        try:
            body = services.checkin.today(device)
        except QueueRefused as exc:
            if not exams:
                raise
            # The HIS did not list the registrations: today's exams can still check in.
            body = {"registrations": [], "result_seconds": 8,
                    "registrations_problem": {"message": exc.message, "next_step": exc.next_step}}
        return {**body, "exams": exams}

    return _guard(both)


@router.post("")
def check_in(body: CheckIn, device: Device, services: Services) -> dict[str, Any]:
    """Check in: join the department's (or exam room's) queue, the HIS told; the number, position, people ahead."""
    if body.exam_order_no is not None:
        return _guard(lambda: exams_of(services).check_in(device, body.exam_order_no, services.checkin))
    return _guard(lambda: services.checkin.check_in(device, body.registration_no))
