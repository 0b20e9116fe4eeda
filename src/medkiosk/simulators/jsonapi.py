"""How the simulators of our own JSON contracts (HIS, e-invoice, payment channel) answer when they say no.

A refusal, an injected error fault and a request that does not fit the contract are all answered
``{"code", "message"}`` with an HTTP status, the message in Chinese and fit to show. The insurance
simulator speaks the platform's envelopes instead and renders its refusals itself.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from medkiosk.simulators.control import SimulatedError

SIM_FAULT_STATUS = 503
# Where FastAPI says a bad value was; the field's own name is what the caller needs.
_LOCATIONS = ("body", "query", "path", "header")


class ContractRefusal(Protocol):
    """What a simulator's refusal carries: the status, the contract's code and a message to show."""

    status: int
    code: str
    message: str


class Refusal(Exception):
    """The simulated upstream answers "no" (HIS, e-invoice platform): ``{"code", "message"}`` with ``status``."""

    status = 400
    code = "REFUSED"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(Refusal):
    status, code = 404, "NOT_FOUND"


class Conflict(Refusal):
    status, code = 409, "CONFLICT"


class Invalid(Refusal):
    status, code = 422, "INVALID"


# An injected error fault whose code is one of the contract's refusal codes is answered with that
# refusal's status, so a training session can rehearse a refusal as well as an outage.
REFUSAL_STATUS = {kind.code: kind.status for kind in (Refusal, NotFound, Conflict, Invalid)}


def error_reply(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def answer_in_contract_errors(app: FastAPI, *, prefix: str, refusal: type[Exception]) -> None:
    """Render ``refusal``, injected errors and invalid requests under ``prefix`` as the contract's errors.

    Invalid requests elsewhere (the ``/__sim__/`` control surface) keep FastAPI's own reply.
    """

    @app.exception_handler(refusal)
    async def refused(_request: Request, exc: ContractRefusal) -> JSONResponse:
        return error_reply(exc.status, exc.code, exc.message)

    @app.exception_handler(SimulatedError)
    async def simulated(_request: Request, exc: SimulatedError) -> JSONResponse:
        return error_reply(REFUSAL_STATUS.get(exc.code, SIM_FAULT_STATUS), exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith(prefix):
            return await request_validation_exception_handler(request, exc)
        fields = sorted({".".join(str(p) for p in e["loc"] if p not in _LOCATIONS) or "请求体"
                         for e in exc.errors()})
        return error_reply(422, "INVALID", f"请求参数有误：{'、'.join(fields)}")
