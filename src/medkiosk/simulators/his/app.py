"""The HIS simulator: the reference implementation of our "HIS gateway" contract (/his/v1).

Run it alone with ``uvicorn --factory medkiosk.simulators.his.app:create_app --port 8201``.
Its control surface (faults, data, call journal) is under ``/__sim__/``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Response
from pydantic import BaseModel, Field

from medkiosk.domain.money import NonNegativeMoney
from medkiosk.simulators.control import SimulatorControl, clock_router
from medkiosk.simulators.his.data import DEFAULT_SEED
from medkiosk.simulators.his.records import (
    CheckInKind,
    OrderStatus,
    PaymentChannel,
    PaymentRecord,
    RegistrationRecord,
)
from medkiosk.simulators.his.state import HisState
from medkiosk.simulators.jsonapi import Invalid, Refusal, answer_in_contract_errors
from medkiosk.simulators.personas import HOSPITAL_CODE, HOSPITAL_NAME

PREFIX = "/his/v1"


class NewPatientBody(BaseModel):
    name: str
    id_number: str
    gender: Literal["M", "F"] | None = None
    birth_date: dt.date | None = None
    phone: str
    insurance_card_no: str | None = None


Key = Annotated[str, Field(min_length=1, max_length=64)]
Reference = Annotated[str, Field(min_length=1, max_length=64)]


class PaymentBody(BaseModel):
    idempotency_key: Key
    patient_id: Reference
    visit_no: Reference
    order_nos: list[Reference] = Field(min_length=1, max_length=100)
    total: NonNegativeMoney
    fund: NonNegativeMoney
    account: NonNegativeMoney
    cash: NonNegativeMoney
    insurance_settlement_id: Reference | None = None
    channel: PaymentChannel
    trade_no: Reference | None = None
    paid_at: dt.datetime


class CancelBody(BaseModel):
    idempotency_key: Key
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class AppointmentBody(BaseModel):
    booking_ref: Key
    date: dt.date
    start: dt.time
    end: dt.time
    place: Annotated[str, Field(min_length=1, max_length=200)]


class AppointmentCancelBody(BaseModel):
    booking_ref: Key


class CheckInBody(BaseModel):
    idempotency_key: Key
    kind: CheckInKind
    reference: Reference
    patient_id: Reference
    department_code: Reference
    queue_no: Annotated[str, Field(min_length=1, max_length=20)]
    checked_in_at: dt.datetime
    device_id: Annotated[str, Field(max_length=32)] | None = None


class HoldBody(BaseModel):
    idempotency_key: Key
    patient_id: Reference
    schedule_id: Reference
    source: Literal["kiosk", "window"] = "kiosk"


class KeyBody(BaseModel):
    idempotency_key: Key


class AppRefundBody(BaseModel):
    idempotency_key: Key
    refund_no: Annotated[str, Field(min_length=1, max_length=64)]


class SimSettings(BaseModel):
    """The simulator's settings through ``/__sim__/settings`` (back to their defaults on reset)."""

    hold_minutes: float | None = Field(default=None, gt=0, le=24 * 60)
    """How long a held number (or a picked-up appointment) waits for its fee before it is released."""


REPLAYED_HEADER = "Idempotent-Replayed"


def _moment(value: str | None, name: str) -> dt.datetime | None:
    """A query's date (its midnight) or date-time; one without an offset is the simulator's local time."""
    if value is None or not value.strip():
        return None
    try:
        moment = (dt.datetime.combine(dt.date.fromisoformat(value), dt.time()) if len(value.strip()) == 10
                  else dt.datetime.fromisoformat(value.strip()))
    except ValueError:
        raise Invalid(f"请求参数有误：{name}") from None
    return moment if moment.tzinfo else moment.astimezone()


def _payment(payment: PaymentRecord) -> dict[str, Any]:
    return payment.model_dump(mode="json", exclude={"cancel_idempotency_key"})


def _mask(value: str | None) -> str | None:
    """The journal keeps the shape of personal data, not the data: 3201**********0421."""
    if not value:
        return value
    if len(value) <= 2:
        return value[0] + "*"
    keep = 4 if len(value) > 8 else 1
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


def create_app(state: HisState | None = None, *, seed: int = DEFAULT_SEED) -> FastAPI:
    """A HIS simulator app over ``state`` (default: the demo hospital built from ``seed``)."""
    state = state if state is not None else HisState(seed=seed)
    control = SimulatorControl("his", state, seed=seed)
    app = FastAPI(title="medkiosk HIS simulator", version="1",
                  description="Reference implementation of the HIS gateway contract; see docs/simulators/his.md.")
    app.state.control = control
    app.state.his = state
    app.include_router(control.router())
    app.include_router(clock_router(state, lambda: _clock(state)))

    @app.get("/__sim__/settings", tags=["simulator control"])
    def settings() -> dict[str, Any]:
        return state.settings()

    @app.post("/__sim__/settings", tags=["simulator control"])
    def configure(change: SimSettings) -> dict[str, Any]:
        return state.configure(**change.model_dump(exclude_none=True))

    answer_in_contract_errors(app, prefix=PREFIX, refusal=Refusal)

    his = APIRouter(prefix=PREFIX, tags=["HIS gateway"])

    @his.get("/health")
    async def health() -> dict[str, Any]:
        return await control.operate("health", None, lambda: {
            "status": "ok", "system": "his", "version": "v1", "hospital_code": HOSPITAL_CODE,
            "hospital_name": HOSPITAL_NAME, "time": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        })

    @his.get("/patients")
    async def find_patient(id_number: str | None = None, visit_card_no: str | None = None,
                           insurance_card_no: str | None = None, patient_id: str | None = None) -> dict[str, Any]:
        criteria = {"id_number": id_number, "visit_card_no": visit_card_no,
                    "insurance_card_no": insurance_card_no, "patient_id": patient_id}
        journal = {key: _mask(value) for key, value in criteria.items() if value}
        def run() -> dict[str, Any]:
            patient = state.find_patient(**criteria)
            current = state.current_admission(patient.patient_id)
            # The current admission travels with the patient so a kiosk checks 门住分离 without a second call.
            return {**patient.model_dump(mode="json"),
                    "admission": current.model_dump(mode="json", exclude={"patient_id", "discharged_on"})
                    if current else None}

        return await control.operate("patients.find", journal, run)

    @his.post("/patients", status_code=201)
    async def create_patient(body: NewPatientBody) -> dict[str, Any]:
        journal = {"name": _mask(body.name), "id_number": _mask(body.id_number), "phone": _mask(body.phone),
                   "gender": body.gender, "insurance_card_no": _mask(body.insurance_card_no)}
        return await control.operate("patients.create", journal,
                                     lambda: state.create_patient(**body.model_dump()).model_dump(mode="json"))

    @his.get("/patients/{patient_id}/admission")
    async def admission(patient_id: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            current = state.current_admission(patient_id)
            if current is None:
                return {"admission": None}
            return {"admission": current.model_dump(mode="json", exclude={"patient_id", "discharged_on"})}
        return await control.operate("admission.get", {"patient_id": patient_id}, run)

    @his.get("/patients/{patient_id}/orders")
    async def orders(patient_id: str, status: OrderStatus | None = None) -> dict[str, Any]:
        return await control.operate("orders.list", {"patient_id": patient_id, "status": status},
                                     lambda: {"visits": state.visits(patient_id, status)})

    @his.get("/patients/{patient_id}/exam-orders")
    async def exam_orders(patient_id: str, status: OrderStatus | None = None) -> dict[str, Any]:
        return await control.operate("exam_orders.list", {"patient_id": patient_id, "status": status},
                                     lambda: {"exam_orders": state.exam_orders(patient_id, status)})

    @his.post("/exam-orders/{order_no}/appointment")
    async def book_exam(order_no: str, body: AppointmentBody) -> dict[str, Any]:
        return await control.operate("exam_orders.book", {"order_no": order_no, **body.model_dump(mode="json")},
                                     lambda: state.book_exam(order_no, body.model_dump()))

    @his.post("/exam-orders/{order_no}/appointment/cancel")
    async def cancel_exam_booking(order_no: str, body: AppointmentCancelBody) -> dict[str, Any]:
        return await control.operate("exam_orders.cancel", {"order_no": order_no, **body.model_dump()},
                                     lambda: state.cancel_exam_booking(order_no, body.booking_ref))

    @his.get("/patients/{patient_id}/documents")
    async def documents(patient_id: str) -> dict[str, Any]:
        return await control.operate("documents.list", {"patient_id": patient_id},
                                     lambda: {"documents": state.documents(patient_id)})

    @his.get("/documents/{doc_no}")
    async def document(doc_no: str) -> dict[str, Any]:
        return await control.operate("documents.get", {"doc_no": doc_no}, lambda: state.document(doc_no))

    @his.get("/patients/{patient_id}/reports")
    async def reports(patient_id: str) -> dict[str, Any]:
        return await control.operate("reports.list", {"patient_id": patient_id},
                                     lambda: {"reports": state.reports(patient_id)})

    @his.get("/reports/{report_no}")
    async def report(report_no: str) -> dict[str, Any]:
        return await control.operate("reports.get", {"report_no": report_no}, lambda: state.report(report_no))

    @his.post("/reports/{report_no}/printed")
    async def report_printed(report_no: str) -> dict[str, Any]:
        return await control.operate("reports.printed", {"report_no": report_no},
                                     lambda: state.report_printed(report_no))

    @his.get("/departments")
    async def departments() -> dict[str, Any]:
        return await control.operate("departments.list", None, lambda: {"departments": state.department_tree()})

    @his.get("/doctors")
    async def doctors(department_code: str | None = None) -> dict[str, Any]:
        return await control.operate("doctors.list", {"department_code": department_code},
                                     lambda: {"doctors": state.doctors(department_code)})

    @his.get("/schedules")
    async def schedules(date: dt.date | None = Query(None), department_code: str | None = None,
                        doctor_code: str | None = None) -> dict[str, Any]:
        request = {"date": date.isoformat() if date else None, "department_code": department_code,
                   "doctor_code": doctor_code}
        return await control.operate("schedules.list", request,
                                     lambda: {"schedules": state.schedules(date, department_code, doctor_code)})

    @his.post("/payments", status_code=201)
    async def post_payment(body: PaymentBody, response: Response) -> dict[str, Any]:
        journal = body.model_dump(mode="json", include={"idempotency_key", "patient_id", "visit_no", "order_nos",
                                                        "total", "cash", "channel"})

        def run() -> dict[str, Any]:
            payment, replayed = state.post_payment(**body.model_dump())
            if replayed:
                response.headers[REPLAYED_HEADER] = "true"
            return _payment(payment)

        return await control.operate("payments.post", journal, run)

    @his.post("/payments/{receipt_no}/cancel")
    async def cancel_payment(receipt_no: str, body: CancelBody, response: Response) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            payment, replayed = state.cancel_payment(receipt_no, idempotency_key=body.idempotency_key,
                                                     reason=body.reason)
            if replayed:
                response.headers[REPLAYED_HEADER] = "true"
            return _payment(payment)

        return await control.operate("payments.cancel", {"receipt_no": receipt_no, **body.model_dump()}, run)

    @his.get("/payments")
    async def list_payments(patient_id: str | None = None, since: str | None = None,
                            until: str | None = None) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            found = state.payments(patient_id, _moment(since, "since"), _moment(until, "until"))
            return {"payments": [_payment(p) for p in found]}

        return await control.operate("payments.list", {"patient_id": patient_id, "since": since, "until": until}, run)

    @his.get("/payments/{receipt_no}")
    async def get_payment(receipt_no: str) -> dict[str, Any]:
        return await control.operate("payments.get", {"receipt_no": receipt_no},
                                     lambda: _payment(state.payment(receipt_no)))

    @his.get("/patients/{patient_id}/registrations")
    async def registrations(patient_id: str, date: dt.date | None = Query(None)) -> dict[str, Any]:
        request = {"patient_id": patient_id, "date": date.isoformat() if date else None}
        return await control.operate("registrations.list", request,
                                     lambda: {"registrations": state.registrations(patient_id, date)})

    def answer(registration: RegistrationRecord, replayed: bool, response: Response) -> dict[str, Any]:
        if replayed:
            response.headers[REPLAYED_HEADER] = "true"
        return state.registration_json(registration)

    @his.post("/registrations", status_code=201)
    async def hold_registration(body: HoldBody, response: Response) -> dict[str, Any]:
        return await control.operate("registrations.hold", body.model_dump(),
                                     lambda: answer(*state.hold_registration(**body.model_dump()), response))

    @his.get("/registrations/{registration_no}")
    async def registration(registration_no: str) -> dict[str, Any]:
        return await control.operate("registrations.get", {"registration_no": registration_no},
                                     lambda: state.registration_json(state.registration(registration_no)))

    @his.post("/registrations/{registration_no}/release")
    async def release_registration(registration_no: str, body: KeyBody, response: Response) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return answer(*state.release_registration(registration_no, idempotency_key=body.idempotency_key),
                          response)

        return await control.operate("registrations.release", {"registration_no": registration_no,
                                                               **body.model_dump()}, run)

    @his.post("/registrations/{registration_no}/cancel")
    async def cancel_registration(registration_no: str, body: CancelBody, response: Response) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return answer(*state.cancel_registration(registration_no, idempotency_key=body.idempotency_key,
                                                     reason=body.reason), response)

        return await control.operate("registrations.cancel", {"registration_no": registration_no,
                                                              **body.model_dump()}, run)

    @his.get("/patients/{patient_id}/appointments")
    async def appointments(patient_id: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return {"appointments": [state.registration_json(r) for r in state.appointments(patient_id)]}

        return await control.operate("appointments.list", {"patient_id": patient_id}, run)

    @his.post("/appointments/{registration_no}/pick-up")
    async def pick_up_appointment(registration_no: str, body: KeyBody, response: Response) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return answer(*state.pick_up_appointment(registration_no, idempotency_key=body.idempotency_key),
                          response)

        return await control.operate("appointments.pick_up", {"registration_no": registration_no,
                                                              **body.model_dump()}, run)

    @his.get("/patients/{patient_id}/swappable")
    async def swappable(patient_id: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return {"registrations": [state.registration_json(r) for r in state.swappable(patient_id)]}

        return await control.operate("registrations.swappable", {"patient_id": patient_id}, run)

    @his.post("/registrations/{registration_no}/swap")
    async def start_swap(registration_no: str, body: KeyBody, response: Response) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return answer(*state.start_swap(registration_no, idempotency_key=body.idempotency_key), response)

        return await control.operate("registrations.swap", {"registration_no": registration_no,
                                                            **body.model_dump()}, run)

    @his.post("/registrations/{registration_no}/swap/release")
    async def release_swap(registration_no: str, body: KeyBody, response: Response) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return answer(*state.release_swap(registration_no, idempotency_key=body.idempotency_key), response)

        return await control.operate("registrations.swap_release", {"registration_no": registration_no,
                                                                    **body.model_dump()}, run)

    @his.post("/registrations/{registration_no}/app-refund")
    async def app_refunded(registration_no: str, body: AppRefundBody, response: Response) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return answer(*state.app_refunded(registration_no, **body.model_dump()), response)

        return await control.operate("registrations.app_refund", {"registration_no": registration_no,
                                                                  **body.model_dump()}, run)

    @his.post("/check-ins", status_code=201)
    async def check_in(body: CheckInBody, response: Response) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            record, replayed = state.check_in(**body.model_dump())
            if replayed:
                response.headers[REPLAYED_HEADER] = "true"
            return record.model_dump(mode="json", exclude={"idempotency_key", "device_id"})

        journal = body.model_dump(mode="json", exclude={"device_id"})
        return await control.operate("check_ins.post", journal, run)

    app.include_router(his)
    return app


def _clock(state: HisState) -> dict[str, Any]:
    return {"now": state.now().isoformat(timespec="seconds"), "offset_seconds": state.clock_offset}
