"""The wire of the adapters whose contract is ours (HIS, e-invoice, payment channel): JSON over HTTP.

Every answer that is not a usable 2xx becomes one of the adapters' two error kinds: a 4xx with the
contract's ``{"code", "message"}`` is a refusal (404 is "not found"); a timeout, a broken
connection, a 5xx, a "try again later" 4xx or a reply that does not fit is an unknown outcome.
Lines go to the adapter's own logger and hold only operations, keys, statuses, codes and timings;
every call is also counted for Prometheus by system, operation and outcome (medkiosk.metrics).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, BinaryIO

import httpx
from pydantic import TypeAdapter, ValidationError

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.httpclient import send
from medkiosk.metrics import UPSTREAM_ERRORS, Outcome, record_upstream

# Statuses that say "try again later" rather than "no".
TRANSIENT_4XX = frozenset({408, 425, 429})


class JsonHttpClient:
    """One upstream's client: ``system`` names it in errors and logs, ``name`` is how a patient reads it.

    ``not_found`` is what a 404 without a message of its own says ("HIS 中没有该记录").
    """

    def __init__(self, system: str, base_url: str, *, name: str, not_found: str, log: logging.Logger,
                 timeout: float | httpx.Timeout, transport: httpx.BaseTransport | None,
                 headers: Mapping[str, str] | None) -> None:
        self.system = system
        self._not_found = not_found
        self._log = log
        # Chinese sets a Latin name apart from the words around it: "HIS 响应超时", "无法连接 HIS".
        self._name_first = f"{name} " if name.isascii() else name
        self._name_last = f" {name}" if name.isascii() else name
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport,
                                  headers=dict(headers or {}))

    def close(self) -> None:
        self._http.close()

    def call(self, operation: str, method: str, path: str, *, params: Mapping[str, str] | None = None,
             payload: Any = None, key: str = "") -> Any:
        """Send, and return the 2xx reply's JSON (fractions as ``Decimal``)."""
        response = self.request(operation, method, path, params=params, payload=payload, key=key)
        return self.json_of(operation, response, key=key)

    def request(self, operation: str, method: str, path: str, *, params: Mapping[str, str] | None = None,
                payload: Any = None, key: str = "") -> httpx.Response:
        """Send, and return the 2xx response; ``key`` (an order number, never personal data) goes in the log."""
        about = f"{operation} {key}" if key else operation
        started = time.monotonic()
        try:
            response = send(self._http, method, path, params=params, json=payload)
        except httpx.TimeoutException as exc:
            self._log.warning("%s %s: timed out after %.0f ms", self.system, about, _ms(started))
            record_upstream(self.system, operation, Outcome.UNKNOWN, started, kind="timeout")
            raise self._unknown(f"{self._name_first}响应超时", "TIMEOUT", operation) from exc
        except httpx.RequestError as exc:
            self._log.warning("%s %s: %s", self.system, about, type(exc).__name__)
            record_upstream(self.system, operation, Outcome.UNKNOWN, started, kind="transport")
            raise self._unknown(f"无法连接{self._name_last}", "TRANSPORT", operation) from exc
        self._log.debug("%s %s: HTTP %s in %.0f ms", self.system, about, response.status_code, _ms(started))
        if 200 <= response.status_code < 300:
            record_upstream(self.system, operation, Outcome.OK, started)
            return response
        raise self._counted(self._error(operation, about, response), operation, response.status_code, started)

    def download(self, operation: str, path: str, into: BinaryIO, *, key: str = "") -> int:
        """GET a 2xx body straight into ``into``, a chunk at a time (a day's statement can be hundreds
        of MB); returns the bytes written. Errors as :meth:`request`; a transfer cut short is unknown."""
        about = f"{operation} {key}" if key else operation
        started = time.monotonic()
        written = 0
        try:
            with self._http.stream("GET", path) as response:
                if not 200 <= response.status_code < 300:
                    response.read()
                    raise self._counted(self._error(operation, about, response), operation, response.status_code,
                                        started)
                for chunk in response.iter_bytes(1 << 20):
                    into.write(chunk)
                    written += len(chunk)
        except httpx.TimeoutException as exc:
            self._log.warning("%s %s: timed out after %.0f ms", self.system, about, _ms(started))
            record_upstream(self.system, operation, Outcome.UNKNOWN, started, kind="timeout")
            raise self._unknown(f"{self._name_first}响应超时", "TIMEOUT", operation) from exc
        except httpx.RequestError as exc:
            self._log.warning("%s %s: %s after %d bytes", self.system, about, type(exc).__name__, written)
            record_upstream(self.system, operation, Outcome.UNKNOWN, started, kind="transport")
            raise self._unknown(f"无法连接{self._name_last}", "TRANSPORT", operation) from exc
        self._log.debug("%s %s: %d bytes in %.0f ms", self.system, about, written, _ms(started))
        record_upstream(self.system, operation, Outcome.OK, started)
        return written

    def _counted(self, error: UpstreamRefused | UpstreamUnknown, operation: str, status: int,
                 started: float) -> UpstreamRefused | UpstreamUnknown:
        """``error``, once counted as the call's outcome."""
        outcome = (Outcome.NOT_FOUND if isinstance(error, UpstreamNotFound)
                   else Outcome.REFUSED if isinstance(error, UpstreamRefused) else Outcome.UNKNOWN)
        record_upstream(self.system, operation, outcome, started, kind=f"http_{status}")
        return error

    def _error(self, operation: str, about: str, response: httpx.Response) -> UpstreamRefused | UpstreamUnknown:
        """The adapters' error for a non-2xx response."""
        status = response.status_code
        code, message = _error_of(_json(response.content))
        if status == 404:  # an everyday answer ("no such patient"), not a problem
            self._log.info("%s %s: HTTP 404 code %s", self.system, about, code or "-")
            return UpstreamNotFound(self.system, message or self._not_found, code=code or "NOT_FOUND",
                                    operation=operation)
        self._log.warning("%s %s: HTTP %s code %s", self.system, about, status, code or "-")
        if 400 <= status < 500 and status not in TRANSIENT_4XX:
            return UpstreamRefused(self.system, message or f"{self._name_first}拒绝了该请求（HTTP {status}）",
                                   code=code or str(status), operation=operation)
        return self._unknown(message or f"{self._name_first}暂时无法处理（HTTP {status}）", code or str(status),
                             operation)

    def json_of(self, operation: str, response: httpx.Response, *, key: str = "") -> Any:
        body = _json(response.content)
        if body is _UNPARSABLE:
            about = f"{operation} {key}" if key else operation
            self._log.warning("%s %s: HTTP %s with an unparsable body", self.system, about, response.status_code)
            UPSTREAM_ERRORS.labels(self.system, operation[:40], "unparsable").inc()
            raise self._unknown(f"{self._name_first}应答无法解析", "UNPARSABLE", operation)
        return body

    def parse(self, operation: str, shape: Any, data: Any, *, field: str | None = None) -> Any:
        """``data`` (or its ``field``) read as ``shape``: a model, ``list[Model]``, ``Model | None`` …"""
        if field is not None:
            data = self._field(operation, data, field)
        try:
            return _adapter(shape).validate_python(data)
        except ValidationError as exc:
            # Field paths only: the input values may be personal data.
            where = sorted({".".join(map(str, e["loc"])) for e in exc.errors(include_input=False)})[:5]
            self._log.warning("%s %s: reply does not fit the contract at %s", self.system, operation, where)
            UPSTREAM_ERRORS.labels(self.system, operation[:40], "unparsable").inc()
            raise self._unknown(f"{self._name_first}应答格式无法识别", "UNPARSABLE", operation) from None

    def _field(self, operation: str, body: Any, name: str) -> Any:
        if not isinstance(body, dict) or name not in body:
            self._log.warning("%s %s: reply has no %r", self.system, operation, name)
            UPSTREAM_ERRORS.labels(self.system, operation[:40], "unparsable").inc()
            raise self._unknown(f"{self._name_first}应答格式无法识别", "UNPARSABLE", operation)
        return body[name]

    def _unknown(self, message: str, code: str, operation: str) -> UpstreamUnknown:
        return UpstreamUnknown(self.system, message, code=code, operation=operation)


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
