"""Upstream calls are counted by system, operation and outcome, through httpx.MockTransport."""

from __future__ import annotations

import logging

import httpx
import pytest
from prometheus_client import REGISTRY

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.jsonhttp import JsonHttpClient


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def client(handler) -> JsonHttpClient:
    return JsonHttpClient("his", "http://his.test", name="HIS", not_found="HIS 中没有该记录",
                          log=logging.getLogger("test"), timeout=1, transport=httpx.MockTransport(handler),
                          headers=None)


def answering(status: int, body: bytes = b"{}"):
    return client(lambda request: httpx.Response(status, content=body))


@pytest.mark.parametrize(("status", "error", "outcome", "kind"), [
    (404, UpstreamNotFound, "not_found", ""),
    (409, UpstreamRefused, "refused", "http_409"),
    (503, UpstreamUnknown, "unknown", "http_503"),
])
def test_an_answer_that_is_not_2xx_is_counted_by_its_outcome(status, error, outcome, kind):
    labels = {"system": "his", "operation": "payments.post"}
    calls, errors = count("medkiosk_upstream_calls_total", **labels, outcome=outcome), \
        count("medkiosk_upstream_errors_total", **labels, kind=kind)
    with pytest.raises(error):
        answering(status).call("payments.post", "POST", "/payments", payload={}, key="P1")
    assert count("medkiosk_upstream_calls_total", **labels, outcome=outcome) == calls + 1
    # "Not found" is an everyday answer, not an error.
    assert count("medkiosk_upstream_errors_total", **labels, kind=kind) == errors + (0 if outcome == "not_found" else 1)


def test_a_timeout_is_an_unknown_outcome_and_a_success_is_timed():
    labels = {"system": "his", "operation": "orders.list"}
    before = count("medkiosk_upstream_errors_total", **labels, kind="timeout")

    def hang(request):
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(UpstreamUnknown):
        client(hang).call("orders.list", "GET", "/orders")
    assert count("medkiosk_upstream_errors_total", **labels, kind="timeout") == before + 1
    timed = count("medkiosk_upstream_call_duration_seconds_count", **labels)
    assert answering(200, b'{"visits": []}').call("orders.list", "GET", "/orders") == {"visits": []}
    assert count("medkiosk_upstream_call_duration_seconds_count", **labels) == timed + 1
