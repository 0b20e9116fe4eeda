"""Kiosk registration API (挂号): days, doctors and numbers, holding and paying a number, the slip.

The fee is paid through the payment routes (``/api/kiosk/payments/{order_no}/…``) like any bill;
these routes hold the number, follow it to registered (or released), and print the slip.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from medkiosk.api.deps import Device, Services
from medkiosk.api.refusals import refusal_guard
from medkiosk.domain.payment import PaymentMode
from medkiosk.services.registrations import RegistrationRefused, registrations_of

router = APIRouter(prefix="/api/kiosk/registrations", tags=["kiosk registration"])

RegistrationNo = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]
Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]


class Hold(BaseModel):
    schedule_id: Code
    date: dt.date
    mode: PaymentMode | None = None
    """Default: insurance for an identified insured patient, self-pay otherwise."""


guard = refusal_guard(RegistrationRefused)


@router.get("/dates")
def dates(device: Device, services: Services) -> dict[str, Any]:
    """Today and the days ahead a number can be taken for (the hospital's horizon)."""
    return guard(lambda: registrations_of(services).dates())


@router.get("/schedules")
def schedules(device: Device, services: Services, date: dt.date,
              department_code: Annotated[list[Code], Query(min_length=1, max_length=20)],
              doctor_code: Annotated[list[Code] | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """A kiosk department's doctors on a day (its HIS codes and, for a split one, its doctors, as
    ``GET /api/kiosk/registration/departments`` gives them), each with half-days, fee and numbers left."""
    return guard(lambda: registrations_of(services).schedules(device, date, department_code, doctor_code))


@router.post("")
def hold(body: Hold, device: Device, services: Services) -> dict[str, Any]:
    """Hold the number and start paying its fee: answers the registration and the payment order."""
    return guard(lambda: registrations_of(services).register(device, body.schedule_id, body.date, body.mode))


class PickUp(BaseModel):
    mode: PaymentMode | None = None


@router.get("/appointments")
def appointments(device: Device, services: Services) -> dict[str, Any]:
    """Appointments made in the app or by phone (预约), each with its pick-up window and whether it is open now."""
    return guard(lambda: registrations_of(services).appointments(device))


@router.post("/appointments/{registration_no}/pick-up")
def pick_up(registration_no: RegistrationNo, device: Device, services: Services,
            body: PickUp | None = None) -> dict[str, Any]:
    """取号: paid in the app, registered at once (``payment`` null); otherwise the fee's payment order."""
    return guard(lambda: registrations_of(services).pick_up(device, registration_no, body.mode if body else None))


@router.get("/swappable")
def swappable(device: Device, services: Services) -> dict[str, Any]:
    """Registrations paid in the hospital app as self-pay, which an insured patient can swap to insurance."""
    return guard(lambda: registrations_of(services).swappable(device))


@router.post("/swappable/{registration_no}/swap")
def swap(registration_no: RegistrationNo, device: Device, services: Services) -> dict[str, Any]:
    """换号: the same doctor, half-day and number paid with insurance; the app payment refunded after."""
    return guard(lambda: registrations_of(services).swap(device, registration_no))


@router.get("/mine")
def mine(device: Device, services: Services) -> dict[str, Any]:
    """The numbers this patient took at a kiosk for today and later, each with whether 退号 is possible now."""
    return guard(lambda: registrations_of(services).mine(device))


@router.get("/today")
def today(device: Device, services: Services) -> dict[str, Any]:
    """Today's registrations (kiosk, window or app), each with whether its slip can be reprinted."""
    return guard(lambda: registrations_of(services).today(device))


@router.post("/today/{registration_no}/reprint")
def reprint(registration_no: RegistrationNo, device: Device, services: Services) -> dict[str, Any]:
    """Today's registration slip again, marked 补打, counted against the hospital's limit and logged."""
    return guard(lambda: registrations_of(services).reprint(device, registration_no))


@router.get("/{registration_no}")
def status(registration_no: RegistrationNo, device: Device, services: Services) -> dict[str, Any]:
    return guard(lambda: registrations_of(services).status(device, registration_no))


@router.post("/{registration_no}/release")
def release(registration_no: RegistrationNo, device: Device, services: Services) -> dict[str, Any]:
    """The patient backs out before paying: the payment is cancelled and the number goes back on sale."""
    return guard(lambda: registrations_of(services).release(device, registration_no))


@router.post("/{registration_no}/cancel")
def cancel(registration_no: RegistrationNo, device: Device, services: Services) -> dict[str, Any]:
    """退号 within the hospital's rules: cancelled in the HIS, the fee given back by its own path."""
    return guard(lambda: registrations_of(services).cancel(device, registration_no))


@router.get("/{registration_no}/slip")
def slip(registration_no: RegistrationNo, device: Device, services: Services) -> dict[str, Any]:
    """The registration slip (挂号条) for the agent's receipt printer, once the fee is paid."""
    return guard(lambda: registrations_of(services).slip(device, registration_no))
