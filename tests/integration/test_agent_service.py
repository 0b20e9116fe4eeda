"""The device agent over real HTTP, between a page (this test) and a stand-in kiosk service.

The stand-in verifies every device signature with medkiosk.security.signing and records what it
received; it stands in for the service only where the agent's side of the contract is checked.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request

from medkiosk.agent.app import create_agent_app
from medkiosk.agent.config import AgentSettings
from medkiosk.security import signing
from medkiosk.security.signing import generate_key, private_key_to_pem
from medkiosk.serving import free_port, start_in_thread
from medkiosk.simulators.personas import HOSPITAL_NAME, PERSONAS

PENDING_TOKEN = "pending-token-the-page-must-never-see"
LOCAL_EMPLOYEE = PERSONAS["local_employee"]
FIRST_VISIT = PERSONAS["first_visit_insured"]
LOST_CARD = PERSONAS["lost_card"]


class StandInService:
    """Verifies signatures, records signed calls, answers like the kiosk service's device and kiosk APIs."""

    def __init__(self, device_id: str, public_key) -> None:
        self.device_id = device_id
        self.public_key = public_key
        self.calls: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self._nonces: set[str] = set()
        self._lock = threading.Lock()
        self.app = self._build()

    def of(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.calls if c["path"] == path]

    async def _verified(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        query = request.scope.get("query_string", b"").decode()
        target = request.scope["raw_path"].decode() + (f"?{query}" if query else "")
        try:
            signed = signing.read_signed_headers(request.headers)
            if signed.device_id != self.device_id:
                raise signing.SignatureError("unknown")
            signing.verify(self.public_key, signed, request.headers[signing.HEADER_SIGNATURE], request.method,
                           target, body)
            with self._lock:
                if signed.nonce in self._nonces:
                    raise signing.SignatureError("replayed")
                self._nonces.add(signed.nonce)
        except signing.SignatureError as exc:
            self.refused.append(f"{exc.reason} {target}")
            raise HTTPException(401, {"message": "设备认证失败", "reason": exc.reason}) from exc
        call = {"method": request.method, "path": request.url.path, "target": target, "body": body,
                "json": await request.json() if body else None, "headers": dict(request.headers)}
        with self._lock:
            self.calls.append(call)
        return call

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/api/device/identify")
        async def identify(request: Request) -> dict[str, Any]:
            read = (await self._verified(request))["json"]
            if read.get("card_no") == LOCAL_EMPLOYEE.insurance.card_no or read.get("qrcode") == LOCAL_EMPLOYEE.insurance.ec_qr:
                return {"outcome": "identified", "session": {"patient": {"masked_name": "王*国"}, "category": "local"}}
            if read.get("card_no") == FIRST_VISIT.insurance.card_no:
                return {"outcome": "needs_phone", "masked_name": "钱*", "message": "首次就诊，请输入手机号码建档",
                        "next_step": "请输入手机号码", "pending": PENDING_TOKEN}
            return {"outcome": "refused", "message": "该卡已挂失", "next_step": "请到人工窗口办理"}

        @app.post("/api/device/identify/phone")
        async def identify_phone(request: Request) -> dict[str, Any]:
            body = (await self._verified(request))["json"]
            if body.get("pending") != PENDING_TOKEN:
                return {"outcome": "refused", "message": "识别已过期", "next_step": "请重新刷卡"}
            return {"outcome": "identified", "session": {"patient": {"masked_name": "钱*"}, "first_visit": True}}

        @app.post("/api/device/heartbeat")
        async def heartbeat(request: Request) -> dict[str, Any]:
            await self._verified(request)
            return {"received_at": "now"}

        @app.get("/api/kiosk/home")
        async def home(request: Request) -> dict[str, Any]:
            await self._verified(request)
            return {"hospital_name": HOSPITAL_NAME, "terminal_type": "outpatient", "idle_seconds": 120,
                    "warn_seconds": 30, "services": [{"key": "register", "label": "挂号"}], "device_id": "spoofed"}

        @app.api_route("/api/kiosk/echo/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
        async def echo(request: Request, rest: str):
            call = await self._verified(request)
            status = 409 if rest == "conflict" else 200
            from fastapi.responses import JSONResponse

            return JSONResponse({"method": call["method"], "target": call["target"], "json": call["json"]}, status)

        @app.api_route("/api/device/{rest:path}", methods=["GET", "POST"])
        async def other_device_calls(request: Request, rest: str) -> dict[str, Any]:
            await self._verified(request)
            return {"reached": rest}

        return app


@pytest.fixture(scope="module")
def device_key():
    return generate_key()


@pytest.fixture(scope="module")
def service(device_key):
    stand_in = StandInService("K-OUT-01", device_key.public_key())
    server = start_in_thread(stand_in.app, name="stand-in-service")
    stand_in.url = server.url
    yield stand_in
    server.stop()


def _settings(tmp_path_factory, device_key, **overrides) -> AgentSettings:
    folder = tmp_path_factory.mktemp("agent")
    key_file = folder / "device.pem"
    key_file.write_bytes(private_key_to_pem(device_key))
    values = dict(device_id="K-OUT-01", key_file=key_file, demo=True, output_dir=folder / "out",
                  heartbeat_seconds=0.1, long_poll_seconds=5, request_timeout_seconds=5)
    values.update(overrides)
    return AgentSettings(**values)


@pytest.fixture(scope="module")
def agent(service, device_key, tmp_path_factory):
    settings = _settings(tmp_path_factory, device_key, service_url=service.url)
    server = start_in_thread(create_agent_app(settings), name="agent")
    yield server
    server.stop()


@pytest.fixture
def page(agent):
    with httpx.Client(base_url=agent.url, timeout=10) as client:
        yield client
        client.post("/local/session/ended")


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_a_demo_insurance_card_is_identified_by_the_service_and_the_waiting_page_gets_the_outcome(page, service):
    before = len(service.of("/api/device/identify"))
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(page.get, "/local/identify/wait", params={"timeout": 5})
        time.sleep(0.2)  # the page is already waiting when the card goes in
        assert page.post("/local/demo/insurance-card", json={"persona": "local_employee"}).status_code == 200
        outcome = waiting.result(timeout=10).json()
    assert outcome == {"outcome": "identified", "session": {"patient": {"masked_name": "王*国"}, "category": "local"}}
    identify = service.of("/api/device/identify")[before]
    assert identify["json"] == {"medium": "insurance_card", "card_no": LOCAL_EMPLOYEE.insurance.card_no,
                                "card_sn": LOCAL_EMPLOYEE.insurance.card_sn, "id_number": LOCAL_EMPLOYEE.id_number,
                                "name": LOCAL_EMPLOYEE.name}
    assert identify["headers"][signing.HEADER_DEVICE.lower()] == "K-OUT-01"
    assert service.refused == []


def test_a_waiting_page_hears_waiting_when_nobody_presents_anything(page):
    started = time.monotonic()
    assert page.get("/local/identify/wait", params={"timeout": 0.3}).json() == {"outcome": "waiting"}
    assert time.monotonic() - started < 3


def test_each_medium_reaches_the_service_with_its_own_fields(page, service):
    cases = [
        ("/local/demo/id-card", {"persona": "local_employee"},
         {"medium": "id_card", "id_number": LOCAL_EMPLOYEE.id_number, "name": LOCAL_EMPLOYEE.name, "gender": "M",
          "birth_date": "1958-03-15"}),
        ("/local/demo/scan", {"persona": "local_employee"},
         {"medium": "e_certificate", "qrcode": LOCAL_EMPLOYEE.insurance.ec_qr}),
        ("/local/demo/visit-card", {"persona": "local_employee"},
         {"medium": "visit_card", "visit_card_no": LOCAL_EMPLOYEE.visit_card_no}),
    ]
    for endpoint, body, expected in cases:
        before = len(service.of("/api/device/identify"))
        assert page.post(endpoint, json=body).status_code == 200
        page.get("/local/identify/wait", params={"timeout": 5})
        sent = service.of("/api/device/identify")[before]["json"]
        assert {k: sent[k] for k in expected} == expected


def test_a_refusal_reaches_the_page_as_the_service_said_it(page):
    page.post("/local/demo/insurance-card", json={"persona": "lost_card"})
    assert page.get("/local/identify/wait", params={"timeout": 5}).json() == {
        "outcome": "refused", "message": "该卡已挂失", "next_step": "请到人工窗口办理"}


def test_a_first_visit_needs_a_phone_and_the_pending_token_never_reaches_the_page(page, service):
    assert page.post("/local/identify/phone", json={"phone": "13905150011"}).status_code == 409  # nothing pending
    page.post("/local/demo/insurance-card", json={"persona": "first_visit_insured"})
    response = page.get("/local/identify/wait", params={"timeout": 5})
    assert response.json() == {"outcome": "needs_phone", "masked_name": "钱*", "message": "首次就诊，请输入手机号码建档",
                               "next_step": "请输入手机号码"}
    assert PENDING_TOKEN not in response.text

    bad = page.post("/local/identify/phone", json={"phone": "2390515001"})
    assert bad.status_code == 422 and bad.json()["message"] == "请输入正确的手机号码"
    assert service.of("/api/device/identify/phone") == []

    done = page.post("/local/identify/phone", json={"phone": "13905150011"})
    assert done.json() == {"outcome": "identified", "session": {"patient": {"masked_name": "钱*"}, "first_visit": True}}
    assert service.of("/api/device/identify/phone")[-1]["json"] == {"pending": PENDING_TOKEN, "phone": "13905150011"}
    assert page.post("/local/identify/phone", json={"phone": "13905150011"}).status_code == 409  # used up


def test_when_the_session_ends_a_read_nobody_collected_is_forgotten_and_the_card_released(page, service):
    before = len(service.of("/api/device/identify"))
    page.post("/local/demo/insurance-card", json={"persona": "local_employee"})
    assert page.post("/local/demo/peripheral", json={"name": "insurance_card_reader"}).json()["card_present"] is True
    wait_for(lambda: len(service.of("/api/device/identify")) > before)
    time.sleep(0.1)  # the reply is in the agent's mailbox, nobody has collected it
    page.post("/local/session/ended")
    assert page.get("/local/identify/wait", params={"timeout": 0.3}).json() == {"outcome": "waiting"}
    assert page.post("/local/demo/peripheral", json={"name": "insurance_card_reader"}).json()["card_present"] is False


def test_a_payment_code_at_the_scanner_reaches_the_page_waiting_for_that_payment_and_not_the_service(page, service):
    before = len(service.of("/api/device/identify"))
    params = {"timeout": 5, "expect": "payment_code", "order_no": "PO20261125093000A1B2C3D4"}
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(page.get, "/local/identify/wait", params=params)
        time.sleep(0.2)  # the payment screen is already waiting when the phone is shown
        assert page.post("/local/demo/scan", json={"code": "130012345678901234"}).status_code == 200
        outcome = waiting.result(timeout=10).json()
    assert outcome == {"outcome": "payment_code", "auth_code": "130012345678901234",
                       "order_no": "PO20261125093000A1B2C3D4"}
    assert len(service.of("/api/device/identify")) == before
    assert page.get("/local/identify/wait", params={"timeout": 5, "expect": "payment_code"}).status_code == 422


def test_a_payment_code_when_nothing_is_to_be_paid_is_explained_not_sent_as_identity(page, service):
    before = len(service.of("/api/device/identify"))
    page.post("/local/demo/scan", json={"code": "130012345678901234"})
    outcome = page.get("/local/identify/wait", params={"timeout": 5}).json()
    assert outcome["outcome"] == "error" and "付款码" in outcome["message"]
    assert len(service.of("/api/device/identify")) == before


def test_the_agent_draws_a_qr_code_as_svg_for_the_page_and_refuses_oversized_data(page):
    drawn = page.get("/local/qr", params={"data": "simpay://qr/4bf23f82c1203321aeef78d4"})
    assert drawn.status_code == 200 and drawn.headers["content-type"].startswith("image/svg+xml")
    assert drawn.headers["cache-control"] == "no-store"
    assert drawn.text.startswith("<svg") and "viewBox" in drawn.text and "<script" not in drawn.text
    assert page.get("/local/qr", params={"data": "x" * 513}).status_code == 422
    assert page.get("/local/qr").status_code == 422
    remote = httpx.get(page.base_url.join("/local/qr"), params={"data": "x"}, headers={"Host": "kiosk.example"})
    assert remote.status_code == 421


def test_heartbeats_arrive_signed_with_the_peripherals_and_the_screen(page, service):
    page.post("/local/demo/peripheral", json={"name": "receipt_printer", "paper": "low"})
    page.post("/local/screen", json={"name": "home"})
    try:
        def reported():
            beats = service.of("/api/device/heartbeat")
            last = beats[-1]["json"] if beats else None
            return last if last and last["screen"] == "home" and \
                last["peripherals"]["receipt_printer"].get("paper") == "low" else None

        beat = wait_for(reported)
    finally:
        page.post("/local/demo/peripheral", json={"name": "receipt_printer", "paper": "ok"})
    assert set(beat["peripherals"]) == {"insurance_card_reader", "id_card_reader", "qr_scanner", "receipt_printer",
                                        "a4_printer", "bank_pos"}
    assert beat["peripherals"]["receipt_printer"]["state"] == "warning"
    assert beat["peripherals"]["receipt_printer"]["detail"]
    assert beat["software_version"] and beat["uptime_seconds"] >= 0
    assert service.refused == []


def test_the_page_reaches_the_kiosk_api_through_the_agent_signed(page, service):
    got = page.get("/local/api/kiosk/echo/orders", params={"visit": "V1", "page": "2"})
    assert got.json() == {"method": "GET", "target": "/api/kiosk/echo/orders?visit=V1&page=2", "json": None}
    posted = page.post("/local/api/kiosk/echo/pay", json={"order": "O-1", "amount": "12.50"})
    assert posted.json()["json"] == {"order": "O-1", "amount": "12.50"}
    conflict = page.put("/local/api/kiosk/echo/conflict", json={})
    assert conflict.status_code == 409
    assert service.refused == []


def test_the_config_merges_the_services_home_under_the_agents_own_fields(page):
    config = page.get("/local/config").json()
    assert config["hospital_name"] == HOSPITAL_NAME and config["terminal_type"] == "outpatient"
    assert config["idle_seconds"] == 120 and config["services"][0]["key"] == "register"
    assert config["device_id"] == "K-OUT-01" and config["demo"] is True and config["long_poll_seconds"] == 5


def test_no_path_trick_takes_the_page_to_the_device_api(agent, service):
    for target in ("/local/api/kiosk/../device/identify", "/local/api/kiosk/%2e%2e/device/identify",
                   "/local/api/kiosk/echo%2F..%2F..%2Fdevice%2Fidentify", "/local/api/device/identify"):
        with socket.create_connection((agent.host, agent.port), timeout=5) as conn:
            body = b'{"medium":"id_card","id_number":"110101199003071234","name":"x"}'
            conn.sendall(f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{agent.port}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 404"), (target, reply[:60])
    # Only the agent's own device calls (its readers, heartbeat and bank-POS round), never the page's.
    assert all("device" not in c["path"] or c["path"] in ("/api/device/identify", "/api/device/heartbeat",
                                                           "/api/device/identify/phone", "/api/device/pos/tasks",
                                                           "/api/device/pos/reports", "/api/device/pos/batches")
               for c in service.calls)
    assert not [c for c in service.calls if c["json"] and c["json"].get("id_number") == "110101199003071234"]


def test_a_receipt_prints_and_paper_out_refuses_with_a_plain_message(page):
    receipt = {"title": "挂号条", "job_id": "reg-it-1", "lines": [
        {"type": "text", "text": "挂号条", "double": True, "align": "center"}, "科室：心血管内科",
        {"type": "qr", "payload": "REG-IT-1"}]}
    first = page.post("/local/print/receipt", json=receipt)
    assert first.status_code == 200 and first.json()["printed"] is True
    again = page.post("/local/print/receipt", json=receipt)
    assert again.json()["replayed"] is True  # a repeated job does not print twice
    printed = [p for p in page.get("/local/demo/printed").json() if p["job_id"] == "reg-it-1"]
    assert len(printed) == 1 and "科室：心血管内科" in printed[0]["text"] and printed[0]["qr"] == ["REG-IT-1"]

    page.post("/local/demo/peripheral", json={"name": "receipt_printer", "paper": "out"})
    try:
        refused = page.post("/local/print/receipt", json={**receipt, "job_id": "reg-it-2"})
    finally:
        page.post("/local/demo/peripheral", json={"name": "receipt_printer", "paper": "ok"})
    assert refused.status_code == 503
    assert refused.json() == {"message": "小票打印机缺纸，请到人工窗口办理", "next_step": refused.json()["next_step"]}


def test_an_a4_pdf_is_printed_and_anything_else_refused(page):
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n"
    ok = page.post("/local/print/a4", content=pdf, headers={"Content-Type": "application/pdf"},
                   params={"title": "CT申请单"})
    assert ok.status_code == 200
    assert page.post("/local/print/a4", content=b"<html>", headers={"Content-Type": "text/html"}).status_code == 415


def test_the_page_is_served_with_no_store_and_a_self_only_policy(page):
    index = page.get("/")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert index.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in index.headers["content-security-policy"]
    assert "unsafe-inline" not in index.headers["content-security-policy"]


@pytest.fixture(scope="module")
def production_agent(service, device_key, tmp_path_factory):
    settings = _settings(tmp_path_factory, device_key, service_url=service.url, demo=False, heartbeat_seconds=60)
    server = start_in_thread(create_agent_app(settings), name="agent-production")
    yield server
    server.stop()


@pytest.mark.parametrize("method, path", [("GET", "/local/demo/personas"), ("POST", "/local/demo/insurance-card"),
                                          ("POST", "/local/demo/scan"), ("POST", "/local/demo/peripheral"),
                                          ("GET", "/local/demo/printed"), ("POST", "/local/demo/pos")])
def test_without_demo_the_demo_panel_does_not_exist(production_agent, method, path):
    response = httpx.request(method, production_agent.url + path, json={"persona": "local_employee"})
    assert response.status_code == 404
    assert response.json()["message"] == "没有这个功能"


def test_an_unreachable_service_becomes_an_error_outcome_for_the_page(device_key, tmp_path_factory):
    settings = _settings(tmp_path_factory, device_key, service_url=f"http://127.0.0.1:{free_port()}",
                         heartbeat_seconds=60)
    server = start_in_thread(create_agent_app(settings), name="agent-offline")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as page:
            page.post("/local/demo/insurance-card", json={"persona": "local_employee"})
            outcome = page.get("/local/identify/wait", params={"timeout": 5}).json()
            assert outcome["outcome"] == "error" and outcome["message"] and outcome["next_step"]
            config = page.get("/local/config")
            assert config.status_code == 503 and config.json()["device_id"] == "K-OUT-01"
            assert page.get("/local/api/kiosk/home").status_code == 502
    finally:
        server.stop()
