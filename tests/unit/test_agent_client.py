"""The agent's signed client: what it signs is exactly what it sends, and failures say what they are."""

from __future__ import annotations

import httpx
import pytest

from medkiosk.agent.client import ServiceClient, ServiceUnavailable
from medkiosk.security import signing
from medkiosk.security.signing import DeviceSigner, generate_key


@pytest.fixture
def key():
    return generate_key()


def recording_client(key, seen: list[httpx.Request]) -> ServiceClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    return ServiceClient("http://service.test", DeviceSigner("K001", key), transport=httpx.MockTransport(handler))


def verify(key, request: httpx.Request) -> None:
    signed = signing.read_signed_headers(request.headers)
    signing.verify(key.public_key(), signed, request.headers[signing.HEADER_SIGNATURE], request.method,
                   request.url.raw_path.decode(), request.content)


def test_a_post_is_signed_over_the_exact_body_bytes_it_sends(key):
    seen: list[httpx.Request] = []
    with recording_client(key, seen) as client:
        client.post("/api/device/identify", {"medium": "insurance_card", "name": "王建国", "amount": "12.00"})
    request = seen[0]
    assert request.headers[signing.HEADER_DEVICE] == "K001"
    verify(key, request)
    # The same headers do not hold for any other body.
    signed = signing.read_signed_headers(request.headers)
    with pytest.raises(signing.SignatureError):
        signing.verify(key.public_key(), signed, request.headers[signing.HEADER_SIGNATURE], "POST",
                       "/api/device/identify", request.content + b" ")


def test_the_signed_path_includes_the_query_string(key):
    seen: list[httpx.Request] = []
    with recording_client(key, seen) as client:
        client.get("/api/kiosk/slots", params={"department": "心内科", "date": "2026-11-25"})
        client.request("GET", "/api/kiosk/orders?visit=V1&page=2")
    for request in seen:
        assert b"?" in request.url.raw_path
        verify(key, request)
    signed = signing.read_signed_headers(seen[1].headers)
    with pytest.raises(signing.SignatureError):
        signing.verify(key.public_key(), signed, seen[1].headers[signing.HEADER_SIGNATURE], "GET",
                       "/api/kiosk/orders", b"")


def test_raw_content_is_signed_as_given(key):
    seen: list[httpx.Request] = []
    body = '{"b": 1,  "a": "中文"}'.encode()
    with recording_client(key, seen) as client:
        client.request("PUT", "/api/kiosk/x", content=body, headers={"content-type": "application/json"})
    assert seen[0].content == body
    verify(key, seen[0])


def test_every_request_gets_a_fresh_nonce(key):
    seen: list[httpx.Request] = []
    with recording_client(key, seen) as client:
        client.get("/api/kiosk/home")
        client.get("/api/kiosk/home")
    assert seen[0].headers[signing.HEADER_NONCE] != seen[1].headers[signing.HEADER_NONCE]


@pytest.mark.parametrize("failure, unknown", [
    (httpx.ConnectError("refused"), False),
    (httpx.ConnectTimeout("slow"), False),
    (httpx.ReadTimeout("slow"), True),
    (httpx.RemoteProtocolError("dropped"), True),
])
def test_transport_failures_become_service_unavailable_saying_whether_the_outcome_is_known(key, failure, unknown):
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    client = ServiceClient("http://service.test", DeviceSigner("K001", key), transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceUnavailable) as raised:
        client.post("/api/device/heartbeat", {})
    assert raised.value.outcome_unknown is unknown


def flaky_client(key, seen: list[httpx.Request], failures: int) -> ServiceClient:
    """A service that drops the first ``failures`` requests unanswered, as when it closes an idle
    pooled connection just as the agent reuses it."""
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= failures:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(200, json={"session": None})

    return ServiceClient("http://service.test", DeviceSigner("K001", key), transport=httpx.MockTransport(handler))


def test_a_read_dropped_on_a_closing_connection_is_asked_again_freshly_signed(key):
    seen: list[httpx.Request] = []
    with flaky_client(key, seen, failures=1) as client:
        assert client.get("/api/kiosk/session").json() == {"session": None}
    assert len(seen) == 2
    verify(key, seen[1])
    assert seen[0].headers[signing.HEADER_NONCE] != seen[1].headers[signing.HEADER_NONCE]


def test_a_read_dropped_twice_is_an_unknown_outcome(key):
    seen: list[httpx.Request] = []
    with flaky_client(key, seen, failures=2) as client, pytest.raises(ServiceUnavailable) as raised:
        client.get("/api/kiosk/session")
    assert raised.value.outcome_unknown and len(seen) == 2


def test_a_write_dropped_unanswered_is_not_sent_again(key):
    seen: list[httpx.Request] = []
    with flaky_client(key, seen, failures=1) as client, pytest.raises(ServiceUnavailable) as raised:
        client.post("/api/kiosk/payments", {"visit": "V1"})
    assert raised.value.outcome_unknown and len(seen) == 1
