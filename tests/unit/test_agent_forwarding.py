"""The forwarder reaches the service's kiosk API and nothing else."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from medkiosk.agent.app import create_agent_app
from medkiosk.agent.client import ServiceClient
from medkiosk.agent.config import AgentSettings
from medkiosk.agent.forwarding import service_path
from medkiosk.security.signing import DeviceSigner, generate_key, private_key_to_pem


@pytest.mark.parametrize("path, target", [
    ("/local/api/kiosk/home", "/api/kiosk/home"),
    ("/local/api/kiosk/registrations/R1/slip", "/api/kiosk/registrations/R1/slip"),
    ("/local/api/kiosk/slots/D01:am", "/api/kiosk/slots/D01:am"),
])
def test_kiosk_api_paths_are_forwarded(path, target):
    assert service_path(path) == target


@pytest.mark.parametrize("path", [
    "/local/api/kiosk/",
    "/local/api/kiosk/../device/identify",
    "/local/api/kiosk/./home",
    "/local/api/kiosk/%2e%2e/device/identify",
    "/local/api/kiosk/%2E%2E/device/identify",
    "/local/api/kiosk/.%2e/device/identify",
    "/local/api/kiosk/a%2Fb",
    "/local/api/kiosk/a%2f..%2f..%2fdevice",
    "/local/api/kiosk/a%5Cb",
    "/local/api/kiosk/%252e%252e/device",
    "/local/api/kiosk//device",
    "/local/api/kiosk/home/",
    "/local/api/kiosk/a%zz",
    "/local/api/kiosk/departments/%E5%BF%83",
    "/local/api/kiosk/a%00b",
    "/local/api/kiosk/a b",
    "/local/api/device/identify",
    "/local/api/%6biosk/home",
])
def test_anything_else_is_refused(path):
    assert service_path(path) is None


@pytest.fixture
def agent(tmp_path):
    key = generate_key()
    key_file = tmp_path / "k.pem"
    key_file.write_bytes(private_key_to_pem(key))
    calls: list[httpx.Request] = []

    def service(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(201, json={"path": request.url.raw_path.decode()})

    settings = AgentSettings(device_id="K1", key_file=key_file, output_dir=tmp_path, heartbeat_seconds=3600)
    client = ServiceClient("http://service.test", DeviceSigner("K1", key), transport=httpx.MockTransport(service))
    app = create_agent_app(settings, client=client)
    with TestClient(app, base_url="http://127.0.0.1:8100") as page:
        yield page, calls


def test_a_page_call_is_forwarded_with_method_query_body_and_status(agent):
    page, calls = agent
    response = page.post("/local/api/kiosk/orders/pay?channel=qr", json={"order": "O1"},
                         headers={"Idempotency-Key": "pay-O1-1", "X-Medkiosk-Signature": "forged", "Cookie": "a=b"})
    assert response.status_code == 201
    assert response.json() == {"path": "/api/kiosk/orders/pay?channel=qr"}
    sent = [c for c in calls if c.url.path.startswith("/api/kiosk/")][0]
    assert sent.method == "POST" and sent.content == b'{"order":"O1"}'
    assert sent.headers["idempotency-key"] == "pay-O1-1" and "cookie" not in sent.headers
    assert sent.headers["x-medkiosk-signature"] != "forged"


@pytest.mark.parametrize("path", ["/local/api/kiosk/%2e%2e/device/identify", "/local/api/kiosk/a%2Fb",
                                  "/local/api/device/identify", "/local/api/kiosk/%2E%2E/%2E%2E/api/device/x"])
def test_path_tricks_never_reach_the_service(agent, path):
    page, calls = agent
    response = page.post(path, json={"medium": "id_card", "id_number": "110101199003071234"})
    assert response.status_code == 404
    assert response.json()["message"]
    assert [c for c in calls if "/device/identify" in c.url.path or "%2" in c.url.raw_path.decode()] == []


def test_a_write_from_another_origin_is_refused(agent):
    page, calls = agent
    response = page.post("/local/api/kiosk/orders/pay", json={}, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert not [c for c in calls if c.url.path == "/api/kiosk/orders/pay"]
