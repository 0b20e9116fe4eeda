"""The HIS port over the HIS gateway contract: JSON over HTTP under ``/his/v1`` (httpx, sync).

Errors become the adapters' two kinds: a 4xx with the contract's ``{"code", "message"}`` is a
refusal (404 is "not found"), anything else without a usable answer is an unknown outcome.
Nothing personal is logged: only operations, statuses, codes and timings.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.his.port import (
    Admission,
    Department,
    Doctor,
    ExamOrder,
    HisHealth,
    HisPatient,
    NewPatient,
    PaymentPosting,
    PostedPayment,
    ScheduleSlot,
    UnpaidVisit,
)

SYSTEM = "his"
API_PREFIX = "/his/v1"
# Statuses that say "try again later" rather than "no".
_TRANSIENT_4XX = {408, 425, 429}

log = logging.getLogger(__name__)


class HisHttpAdapter:
    """:class:`~medkiosk.adapters.his.port.HisPort` over HTTP.

    ``base_url`` is the gateway's root (``http://his-gateway:8201``); the adapter adds ``/his/v1``.
    ``timeout`` is seconds (or an ``httpx.Timeout``) for each call; ``transport`` lets tests put an
    ``httpx.MockTransport`` in place of the network.
    """

    def __init__(self, base_url: str, *, timeout: float | httpx.Timeout = 5.0,
                 transport: httpx.BaseTransport | None = None, headers: Mapping[str, str] | None = None) -> None:
        self._client = httpx.Client(base_url=base_url.rstrip("/") + API_PREFIX, timeout=timeout,
                                    transport=transport, headers=dict(headers or {}))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HisHttpAdapter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the port -----------------------------------------------------------------------------
    def health(self) -> HisHealth:
        return self._parse("health", HisHealth, self._call("health", "GET", "/health"))

    def find_patient(self, *, id_number: str | None = None, visit_card_no: str | None = None,
                     insurance_card_no: str | None = None, patient_id: str | None = None) -> HisPatient | None:
        criteria = {"id_number": id_number, "visit_card_no": visit_card_no,
                    "insurance_card_no": insurance_card_no, "patient_id": patient_id}
        given = {key: value for key, value in criteria.items() if value}
        if len(given) != 1:
            raise ValueError(f"find_patient takes exactly one criterion, got {sorted(given) or 'none'}")
        try:
            body = self._call("patients.find", "GET", "/patients", params=given)
        except UpstreamNotFound:
            return None
        return self._parse("patients.find", HisPatient, body)

    def create_patient(self, patient: NewPatient) -> HisPatient:
        body = self._call("patients.create", "POST", "/patients",
                          payload=patient.model_dump(mode="json", exclude_none=True))
        return self._parse("patients.create", HisPatient, body)

    def current_admission(self, patient_id: str) -> Admission | None:
        body = self._call("admission.get", "GET", f"/patients/{quote(patient_id, safe='')}/admission")
        return self._parse("admission.get", Admission | None, self._field("admission.get", body, "admission"))

    def list_departments(self) -> list[Department]:
        body = self._call("departments.list", "GET", "/departments")
        return self._parse("departments.list", list[Department], self._field("departments.list", body, "departments"))

    def list_doctors(self, department_code: str | None = None) -> list[Doctor]:
        params = {"department_code": department_code} if department_code else None
        body = self._call("doctors.list", "GET", "/doctors", params=params)
        return self._parse("doctors.list", list[Doctor], self._field("doctors.list", body, "doctors"))

    def list_schedules(self, date: dt.date, department_code: str | None = None,
                       doctor_code: str | None = None) -> list[ScheduleSlot]:
        params = {"date": date.isoformat()}
        if department_code:
            params["department_code"] = department_code
        if doctor_code:
            params["doctor_code"] = doctor_code
        body = self._call("schedules.list", "GET", "/schedules", params=params)
        return self._parse("schedules.list", list[ScheduleSlot], self._field("schedules.list", body, "schedules"))

    def unpaid_orders(self, patient_id: str) -> list[UnpaidVisit]:
        body = self._call("orders.list", "GET", f"/patients/{quote(patient_id, safe='')}/orders",
                          params={"status": "unpaid"})
        return self._parse("orders.list", list[UnpaidVisit], self._field("orders.list", body, "visits"))

    def exam_orders(self, patient_id: str) -> list[ExamOrder]:
        body = self._call("exam_orders.list", "GET", f"/patients/{quote(patient_id, safe='')}/exam-orders",
                          params={"status": "paid"})
        return self._parse("exam_orders.list", list[ExamOrder], self._field("exam_orders.list", body, "exam_orders"))

    def post_payment(self, posting: PaymentPosting) -> PostedPayment:
        body = self._call("payments.post", "POST", "/payments", payload=posting.model_dump(mode="json"))
        return self._parse("payments.post", PostedPayment, body)

    def cancel_payment(self, receipt_no: str, idempotency_key: str, reason: str) -> PostedPayment:
        body = self._call("payments.cancel", "POST", f"/payments/{quote(receipt_no, safe='')}/cancel",
                          payload={"idempotency_key": idempotency_key, "reason": reason})
        return self._parse("payments.cancel", PostedPayment, body)

    def list_payments(self, patient_id: str | None = None, since: dt.datetime | dt.date | None = None,
                      until: dt.datetime | dt.date | None = None) -> list[PostedPayment]:
        params = {name: value.isoformat() if isinstance(value, dt.date) else value
                  for name, value in (("patient_id", patient_id), ("since", since), ("until", until)) if value}
        body = self._call("payments.list", "GET", "/payments", params=params or None)
        return self._parse("payments.list", list[PostedPayment], self._field("payments.list", body, "payments"))

    def get_payment(self, receipt_no: str) -> PostedPayment | None:
        try:
            body = self._call("payments.get", "GET", f"/payments/{quote(receipt_no, safe='')}")
        except UpstreamNotFound:
            return None
        return self._parse("payments.get", PostedPayment, body)

    # -- the wire -----------------------------------------------------------------------------
    def _call(self, operation: str, method: str, path: str, *, params: Mapping[str, str] | None = None,
              payload: Any = None) -> Any:
        started = time.monotonic()
        try:
            response = self._client.request(method, path, params=params, json=payload)
        except httpx.TimeoutException as exc:
            log.warning("his %s: timed out after %.0f ms", operation, _ms(started))
            raise UpstreamUnknown(SYSTEM, "HIS 响应超时", code="TIMEOUT", operation=operation) from exc
        except httpx.RequestError as exc:
            log.warning("his %s: %s", operation, type(exc).__name__)
            raise UpstreamUnknown(SYSTEM, "无法连接 HIS", code="TRANSPORT", operation=operation) from exc
        status = response.status_code
        body = _json(response.content)
        code, message = _error_of(body)
        log.debug("his %s: HTTP %s in %.0f ms", operation, status, _ms(started))
        if 200 <= status < 300:
            if body is _UNPARSABLE:
                log.warning("his %s: HTTP %s with an unparsable body", operation, status)
                raise UpstreamUnknown(SYSTEM, "HIS 应答无法解析", code="UNPARSABLE", operation=operation)
            return body
        if status == 404:  # an everyday answer ("no such patient"), not a problem
            log.info("his %s: HTTP 404 code %s", operation, code or "-")
            raise UpstreamNotFound(SYSTEM, message or "HIS 中没有该记录", code=code or "NOT_FOUND", operation=operation)
        log.warning("his %s: HTTP %s code %s", operation, status, code or "-")
        if 400 <= status < 500 and status not in _TRANSIENT_4XX:
            raise UpstreamRefused(SYSTEM, message or f"HIS 拒绝了该请求（HTTP {status}）", code=code or str(status),
                                  operation=operation)
        raise UpstreamUnknown(SYSTEM, message or f"HIS 暂时无法处理（HTTP {status}）", code=code or str(status),
                              operation=operation)

    @staticmethod
    def _field(operation: str, body: Any, name: str) -> Any:
        if not isinstance(body, dict) or name not in body:
            log.warning("his %s: reply has no %r", operation, name)
            raise UpstreamUnknown(SYSTEM, "HIS 应答格式无法识别", code="UNPARSABLE", operation=operation)
        return body[name]

    @staticmethod
    def _parse(operation: str, shape: Any, data: Any) -> Any:
        try:
            return _adapter(shape).validate_python(data)
        except ValidationError as exc:
            # Field paths only: the input values may be personal data.
            where = sorted({".".join(map(str, e["loc"])) for e in exc.errors(include_input=False)})[:5]
            log.warning("his %s: reply does not fit the contract at %s", operation, where)
            raise UpstreamUnknown(SYSTEM, "HIS 应答格式无法识别", code="UNPARSABLE", operation=operation) from None


_UNPARSABLE = object()
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(shape: Any) -> TypeAdapter[Any]:
    if shape not in _ADAPTERS:
        _ADAPTERS[shape] = TypeAdapter(shape)
    return _ADAPTERS[shape]


def _json(content: bytes) -> Any:
    # Numbers with a fraction become Decimal, so an amount sent as a JSON number stays exact.
    try:
        return json.loads(content, parse_float=Decimal)
    except ValueError:
        return _UNPARSABLE


def _error_of(body: Any) -> tuple[str, str]:
    if isinstance(body, dict):
        code, message = body.get("code"), body.get("message")
        return (code if isinstance(code, str) else ""), (message if isinstance(message, str) else "")
    return "", ""


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
