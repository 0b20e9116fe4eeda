"""Operations platform on SQLite and PostgreSQL: the ledger's history, telemetry, alerts, notifications."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.security import signing
from medkiosk.services import audit
from medkiosk.services.clock import FrozenClock
from medkiosk.services.events import record_event
from medkiosk.services.operations import operations_of
from medkiosk.services.staff import StaffService
from medkiosk.settings import Settings, TerminalType
from medkiosk.store.models import DeviceState
from medkiosk.store.models_operations import AlertRecord, DeviceTelemetry, TelemetryHour, TelemetryMinute

from staff_client import PASSWORD, login

PRINTER_OK = {"state": "ok", "detail": "", "paper": "ok", "driver": "simulated"}


class Receiver:
    """A local HTTP receiver standing in for a WeCom robot / Alertmanager webhook."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length", 0))
                received.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
                answer = b'{"errcode": 0, "errmsg": "ok"}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Site:
    def __init__(self, url: str) -> None:
        self.clock = FrozenClock()
        # Background loops off: the test drives evaluation itself with a frozen clock.
        self.container = build_container(Settings(database_url=url, ops_evaluation_seconds=0, ops_probe_seconds=0,
                                                  recovery_seconds=0), clock=self.clock)
        self.app = create_app(container=self.container)
        self.ops = operations_of(self.container)
        self.client = TestClient(self.app)
        self.signers: dict[str, signing.DeviceSigner] = {}

    def enroll(self, device_id: str, location: str = "本部 / 门诊楼 / 1F / 挂号区") -> None:
        pem = self.container.devices.enroll(device_id, TerminalType.OUTPATIENT, location=location)
        self.signers[device_id] = signing.DeviceSigner(device_id, signing.private_key_from_pem(pem))

    def beat(self, device_id: str, *, paper: str = "ok", transactions: int = 0, failures: int = 0, **extra):
        printer = {**PRINTER_OK, "paper": paper, "state": {"ok": "ok", "low": "warning", "out": "fault"}[paper]}
        body = json.dumps({"software_version": "1.2.0", "screen": "home",
                           "peripherals": {"receipt_printer": printer},
                           "telemetry": {"cpu_percent": 12.5, "memory_percent": 40, "disk_percent": 55,
                                         "transactions": transactions, "failures": failures}, **extra}).encode()
        headers = self.signers[device_id].headers("POST", "/api/device/heartbeat", body,
                                                  now=self.clock.now().timestamp())
        return self.client.post("/api/device/heartbeat", content=body,
                                headers={**headers, "Content-Type": "application/json"})

    def login(self, username: str, *roles: str) -> str:
        StaffService.from_container(self.container).create_user(username, "", list(roles), PASSWORD)
        return login(self.client, username)

    def alerts(self, rule: str | None = None) -> list[AlertRecord]:
        return [a for a in self.ops.alerts.alerts(open_only=False) if rule is None or a.rule == rule]

    def close(self) -> None:
        self.client.close()
        self.ops.close()
        self.container.close()


@pytest.fixture
def site(database_url):
    site = Site(database_url)
    yield site
    site.close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


# --- ledger -----------------------------------------------------------------------------------------------
def test_every_ledger_change_is_in_the_audit_trail_with_before_and_after(site):
    ledger = site.ops.ledger
    ledger.create("zhangwei", "K012", {"asset_no": "ZC-2024-0012", "model": "SK-800", "vendor": "某某科技",
                                       "campus": "本部", "building": "门诊楼", "floor": "2F", "area": "内科候诊区"})
    diff = ledger.update("zhangwei", "K012", {"floor": "3F", "network": {"ip": "10.2.3.12"},
                                              "peripherals": [{"kind": "receipt_printer", "model": "TM-T88V",
                                                               "serial": "X1", "firmware": "2.1"}]})
    assert diff["before"] == {"floor": "2F", "network": {}, "peripherals": []}
    assert diff["after"]["floor"] == "3F" and diff["after"]["network"] == {"ip": "10.2.3.12"}
    assert ledger.update("zhangwei", "K012", {"floor": "3F"}) == {"before": {}, "after": {}}  # nothing changed
    history = ledger.history("K012")
    assert [e.action for e in history] == ["ledger.changed", "ledger.created"]
    assert history[0].actor == "zhangwei" and history[0].details["before"]["floor"] == "2F"
    with site.container.uow() as uow:
        assert audit.verify_chain(uow) == (True, None)


def test_commissioning_ends_with_the_agents_key_enrolled(site):
    ledger = site.ops.ledger
    ledger.create("admin", "K020", {"building": "门诊楼", "floor": "1F"})
    with pytest.raises(ValueError, match="请先完成调试步骤"):
        ledger.enroll("admin", "K020")
    for step in ("network", "peripherals", "software", "business"):
        ledger.complete_step("admin", "K020", step, "已测试")
    pem = ledger.enroll("admin", "K020")
    site.signers["K020"] = signing.DeviceSigner("K020", signing.private_key_from_pem(pem))
    assert site.beat("K020").status_code == 200
    assert ledger.get("K020").status == "in_service"
    assert "ledger.enrolled" in [e.action for e in ledger.history("K020")]


# --- telemetry --------------------------------------------------------------------------------------------
def test_heartbeat_telemetry_is_kept_as_current_state_and_history(site):
    site.enroll("K001")
    assert site.beat("K001", transactions=10, failures=1).status_code == 200
    site.clock.advance(seconds=5)
    assert site.beat("K001", transactions=14, failures=1).status_code == 200
    site.clock.advance(seconds=5)
    assert site.beat("K001", transactions=3, failures=0).status_code == 200  # the agent restarted
    with site.container.uow() as uow:
        telemetry = uow.session.get(DeviceTelemetry, "K001")
        assert telemetry.cpu_percent == 12.5 and telemetry.transactions_total == 3
        minutes = uow.session.scalars(select(TelemetryMinute)).all()
        hours = uow.session.scalars(select(TelemetryHour)).all()
        assert sum(m.beats for m in minutes) == 3 and sum(m.transactions for m in minutes) == 17
        assert sum(h.transactions for h in hours) == 17 and sum(h.failures for h in hours) == 1
        assert uow.session.get(DeviceState, "K001").software_version == "1.2.0"
    view = site.ops.monitoring.fleet()[0]
    assert view.online and view.building == "门诊楼" and view.floor == "1F" and view.transactions_today == 17


def test_a_replayed_heartbeat_is_still_refused(site):
    site.enroll("K001")
    body = json.dumps({"software_version": "1"}).encode()
    headers = site.signers["K001"].headers("POST", "/api/device/heartbeat", body, now=site.clock.now().timestamp())
    first = site.client.post("/api/device/heartbeat", content=body, headers=headers)
    again = site.client.post("/api/device/heartbeat", content=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 401)
    assert again.json()["reason"] == "replayed"


# --- alerts -----------------------------------------------------------------------------------------------
def test_an_offline_kiosk_is_alerted_after_its_for_and_a_webhook_is_delivered(site, receiver):
    site.ops.alerts.add_channel("admin", "值班群", "wecom", receiver.url + "/robot")
    site.ops.alerts.add_channel("admin", "集成", "webhook", receiver.url + "/am")
    site.enroll("K001")
    site.enroll("K002", "本部 / 门诊楼 / 2F / 缴费区")
    site.beat("K001")
    site.beat("K002")
    for _ in range(4):  # K001 goes quiet; K002 keeps beating
        site.clock.advance(seconds=5)
        site.beat("K002")
        site.ops.alerts.evaluate()
    assert site.alerts("device_offline")[0].state == "pending"  # quiet 20 s: overdue but not yet for 30 s
    assert receiver.bodies == []
    site.clock.advance(seconds=10)
    site.beat("K002")
    sent = site.ops.alerts.evaluate()
    offline = site.alerts("device_offline")
    assert [a.state for a in offline] == ["firing"] and offline[0].labels["device"] == "K001"
    assert len(sent) == 1
    robot = next(r["body"] for r in receiver.bodies if r["path"] == "/robot")
    assert robot["msgtype"] == "markdown" and "K001" in robot["markdown"]["content"]
    am = next(r["body"] for r in receiver.bodies if r["path"] == "/am")
    assert am["version"] == "4" and am["status"] == "firing" and am["alerts"][0]["labels"]["device"] == "K001"
    # De-duplicated: evaluating again sends nothing new and keeps one alert.
    site.ops.alerts.evaluate()
    assert len(receiver.bodies) == 2 and len(site.alerts("device_offline")) == 1
    # Back online: resolved after keep_firing_for, and the resolution is notified once.
    site.beat("K001")
    site.ops.alerts.evaluate()
    assert site.alerts("device_offline")[0].state == "firing"
    site.clock.advance(seconds=60)
    site.beat("K001")
    site.beat("K002")
    site.ops.alerts.evaluate()
    assert site.alerts("device_offline")[0].state == "resolved"
    assert any(r["body"].get("status") == "resolved" for r in receiver.bodies if r["path"] == "/am")


def test_paper_out_alerts_at_once_and_a_silence_mutes_the_notification(site, receiver):
    site.ops.alerts.add_channel("admin", "值班群", "dingtalk", receiver.url + "/ding", secret="SEC123")
    site.enroll("K001")
    site.enroll("K002", "本部 / 门诊楼 / 2F / 缴费区")
    site.ops.alerts.add_silence("liwei", ["floor=2F"], ends_at=site.clock.now() + timedelta(hours=1),
                                comment="2F 更换打印机")
    site.beat("K001", paper="out")
    site.beat("K002", paper="out")
    site.ops.alerts.evaluate()
    firing = {a.labels["device"]: a.state for a in site.alerts("paper_out")}
    assert firing == {"K001": "firing", "K002": "firing"}
    assert site.alerts("printer_fault") == []  # out of paper is not also a printer fault
    [message] = receiver.bodies
    assert "timestamp=" in message["path"] and "sign=" in message["path"]
    assert "K001" in message["body"]["markdown"]["text"] and "K002" not in message["body"]["markdown"]["text"]


def test_a_payment_anomaly_event_raises_an_alert_until_it_is_handled(site):
    with site.container.uow() as uow:
        record_event(uow, site.clock, "payment_anomaly", "金额不一致", severity="critical", device_id="K001",
                     details={"order_no": "P123"})
        uow.commit()
    site.ops.alerts.evaluate()
    [alert] = site.alerts("payment_anomaly")
    assert alert.state == "firing" and alert.labels["order"] == "P123"


def test_an_upstream_that_stops_answering_is_alerted_after_its_for(site):
    site.ops.monitoring.record_probes([("his", False, "ConnectError", 3000)])
    site.ops.alerts.evaluate()
    assert site.alerts("upstream_down")[0].state == "pending"
    site.clock.advance(seconds=31)
    site.ops.alerts.evaluate()
    assert site.alerts("upstream_down")[0].state == "firing"


def test_a_floor_whose_kiosks_all_went_quiet_is_one_network_alert(site, receiver):
    site.ops.alerts.add_channel("admin", "值班群", "webhook", receiver.url + "/am")
    for device_id in ("K001", "K002"):
        site.enroll(device_id)
        site.beat(device_id)
    site.clock.advance(seconds=45)
    site.ops.alerts.evaluate()
    rules = sorted(r["body"]["alerts"][0]["labels"]["rule"] for r in receiver.bodies)
    assert rules == ["location_network_down"]  # the two offline alerts are inhibited
    assert {a.labels["device"] for a in site.alerts("device_offline")} == {"K001", "K002"}


# --- staff pages -------------------------------------------------------------------------------------------
def test_an_engineer_sees_the_dashboard_and_acknowledges_an_alert_with_a_comment(site):
    site.enroll("K001")
    site.beat("K001", paper="out", transactions=5)
    site.ops.alerts.evaluate()
    csrf = site.login("liwei", "engineer")
    page = site.client.get("/staff/ops/")
    assert page.status_code == 200 and 'data-device="K001"' in page.text and "<svg" in page.text
    assert "缺纸" in page.text
    alert = site.alerts("paper_out")[0]
    refused = site.client.post(f"/staff/ops/alerts/{alert.id}/ack", data={"comment": "已换纸"},
                               follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token
    done = site.client.post(f"/staff/ops/alerts/{alert.id}/ack", data={"comment": "已换纸", "csrf_token": csrf},
                            follow_redirects=False)
    assert done.status_code == 303
    acked = site.alerts("paper_out")[0]
    assert acked.acknowledged_by == "liwei" and acked.notes[0]["text"] == "已换纸"
    assert site.client.get("/staff/ops/alerts").status_code == 200
    # Engineers see the ledger but cannot change it.
    assert site.client.post("/staff/ops/ledger", data={"device_id": "K009", "csrf_token": csrf},
                            follow_redirects=False).status_code == 403


def test_an_administrator_records_a_device_through_the_pages(site):
    csrf = site.login("admin1", "it_admin")
    created = site.client.post("/staff/ops/ledger", data={"device_id": "K030", "asset_no": "ZC-30", "building": "住院楼",
                                                          "floor": "5F", "csrf_token": csrf}, follow_redirects=False)
    assert created.status_code == 303
    changed = site.client.post("/staff/ops/ledger/K030", data={"floor": "6F", "network_ip": "10.0.0.30",
                                                               "config": "kiosk.mode=ward\n", "csrf_token": csrf},
                               follow_redirects=False)
    assert changed.status_code == 303, changed.text
    page = site.client.get("/staff/ops/ledger/K030")
    assert page.status_code == 200 and "5F" in page.text and "6F" in page.text
    assert site.ops.ledger.get("K030").config == {"kiosk.mode": "ward"}
