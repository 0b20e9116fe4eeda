"""Releases end to end: the real service and a real agent, each on its own thread, on SQLite and PostgreSQL.

A release is published (signed with a key the service and the agent trust), rolled out, and the
agent downloads, verifies, installs beside, switches and reports healthy; a release that is not
healthy on the kiosk is switched back by the agent itself and the failed gate rolls the rollout
back; a tampered artifact is refused. Shipped logs are searchable by staff, masked.
"""

from __future__ import annotations

import time

import httpx
import pytest
import structlog
from sqlalchemy import select, update

from medkiosk.agent.app import create_agent_app
from medkiosk.agent.config import AgentSettings
from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.domain.releases import RolloutState
from medkiosk.security.release_signing import BUILTIN
from medkiosk.serving import start_in_thread
from medkiosk.services.releases import ReleaseService
from medkiosk.services.staff import StaffService
from medkiosk.settings import Settings, TerminalType
from medkiosk.store.models import Event
from medkiosk.store.models_releases import DeviceLogLine, ReleaseArtifact
from release_fixtures import ReleaseKit

PASSWORD = "Release-Night-2300"
FAST_GATE = {"soak_seconds": 0, "install_deadline_seconds": 60, "health_deadline_seconds": 2,
             "heartbeat_within_seconds": 30}


def wait_for(predicate, timeout: float = 20.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


class Site:
    """The service with one kiosk K-REL-01 and its agent, and a signed-in administrator."""

    def __init__(self, database_url: str, tmp_path) -> None:
        self.kit = ReleaseKit(tmp_path / "kit")
        self.container = build_container(Settings(database_url=database_url, release_public_keys=self.kit.public_key,
                                                  release_evaluate_seconds=0, recovery_seconds=0))
        self.releases = ReleaseService.from_container(self.container)
        self.service = start_in_thread(create_app(container=self.container), name="service")
        pem = self.container.devices.enroll("K-REL-01", TerminalType.OUTPATIENT, location="本部 / 门诊楼 / 1F / 大厅")
        (tmp_path / "device.pem").write_bytes(pem)
        self.agent_settings = AgentSettings(
            device_id="K-REL-01", key_file=tmp_path / "device.pem", service_url=self.service.url, demo=True,
            output_dir=tmp_path / "out", releases_dir=tmp_path / "releases", heartbeat_seconds=0.1,
            release_check_seconds=0.2, release_public_keys=self.kit.public_key, log_ship_seconds=0.2,
            request_timeout_seconds=5)
        self.agent_app = create_agent_app(self.agent_settings)
        self.agent = start_in_thread(self.agent_app, name="agent")
        StaffService.from_container(self.container).create_user("opsadmin", "运维", ["it_admin"], PASSWORD)
        self.staff = httpx.Client(base_url=self.service.url, timeout=10)
        assert self.staff.post("/staff/login", data={"username": "opsadmin", "password": PASSWORD}).status_code in (200, 303)
        self.csrf = self.staff.get("/api/staff/me").json()["csrf_token"]

    @property
    def runtime(self):
        return self.agent_app.state.agent

    def publish(self, version: str, **kwargs) -> None:
        content, signed = self.kit.artifact(version, **kwargs)
        self.releases.publish(content, signed, changes=[f"版本 {version} 的变更"], test_record="测试通过", actor="cli")

    def roll_out(self, version: str) -> int:
        response = self.staff.post("/api/staff/rollouts", json={"version": version, "thresholds": FAST_GATE},
                                   headers={"X-CSRF-Token": self.csrf})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def until_rollout_ends(self, rollout_id: int) -> str:
        def ended():
            self.releases.evaluate()
            state = self.releases.rollout(rollout_id).state
            return state if state != RolloutState.ROLLING_OUT else None
        return wait_for(ended)

    def page(self) -> str:
        return httpx.get(self.agent.url + "/", timeout=5).text

    def close(self) -> None:
        self.staff.close()
        self.agent.stop()
        self.service.stop()
        self.container.close()


@pytest.fixture
def site(database_url, tmp_path):
    site = Site(database_url, tmp_path)
    yield site
    site.close()


def test_a_published_release_reaches_the_kiosk_which_switches_and_reports_healthy(site):
    site.publish("1.0.0")
    rollout_id = site.roll_out("1.0.0")
    assert site.until_rollout_ends(rollout_id) == RolloutState.COMPLETED
    assert site.runtime.updater.running_version() == "1.0.0"
    assert "page 1.0.0" in site.page()  # served from versions/1.0.0 without restarting the agent
    assert httpx.get(site.agent.url + "/static/kiosk/app.js").text == "window.PAGE_VERSION = '1.0.0';\n"
    view = site.releases.rollout(rollout_id)
    assert view.previous_version == BUILTIN
    assert [d.status for d in view.phases[0].devices] == ["healthy"]
    assert wait_for(lambda: site.staff.get("/api/staff/devices").json()["devices"][0]["software_version"] == "1.0.0")
    assert site.releases.fleet_version() == "1.0.0"
    assert "发布计划 #" in site.staff.get(f"/staff/releases/rollouts/{rollout_id}").text


def test_an_unhealthy_release_is_switched_back_by_the_kiosk_and_the_failed_gate_rolls_the_rollout_back(site):
    site.publish("1.0.0")
    assert site.until_rollout_ends(site.roll_out("1.0.0")) == RolloutState.COMPLETED
    # 2.0.0 needs the A4 printer, which is out of order on this kiosk.
    assert httpx.post(site.agent.url + "/local/demo/peripheral",
                      json={"name": "a4_printer", "state": "fault"}).status_code == 200
    wait_for(lambda: site.staff.get("/api/staff/devices").json()["devices"][0]["peripherals"]["a4_printer"]["state"]
             == "fault")  # known before the phase starts: an old fault, not one the release caused
    site.publish("2.0.0", requires={"peripherals": ["a4_printer"]})
    rollout_id = site.roll_out("2.0.0")
    assert site.until_rollout_ends(rollout_id) == RolloutState.ROLLED_BACK
    view = site.releases.rollout(rollout_id)
    assert view.previous_version == "1.0.0" and view.phases[0].state == "failed"
    assert "自行回退" in view.reason and "a4_printer" in view.reason
    assert site.runtime.updater.running_version() == "1.0.0" and "page 1.0.0" in site.page()
    assert site.releases.target_for("K-REL-01")["version"] == "1.0.0"
    assert site.releases.fleet_version() == "1.0.0"
    with site.container.uow() as uow:
        assert uow.session.scalars(select(Event.kind).where(Event.kind == "release_rolled_back")).all()


def test_a_tampered_artifact_is_refused_by_the_kiosk_and_the_rollout_is_rolled_back(site):
    site.publish("1.0.0")
    with site.container.uow() as uow:  # someone with database access swaps the page
        blob = uow.session.get(ReleaseArtifact, "1.0.0").content
        uow.session.execute(update(ReleaseArtifact).values(content=blob[:-8] + b"\x00" * 8))
        uow.commit()
    rollout_id = site.roll_out("1.0.0")
    assert site.until_rollout_ends(rollout_id) == RolloutState.ROLLED_BACK
    assert "拒绝安装" in site.releases.rollout(rollout_id).reason
    assert site.runtime.updater.running_version() == BUILTIN
    assert not (site.agent_settings.releases_dir / "versions" / "1.0.0").exists()


def test_staff_can_pull_the_brake_and_the_kiosk_goes_back_to_the_pinned_release(site):
    site.publish("1.0.0")
    assert site.until_rollout_ends(site.roll_out("1.0.0")) == RolloutState.COMPLETED
    site.publish("1.1.0")
    rollout_id = site.roll_out("1.1.0")
    assert site.until_rollout_ends(rollout_id) == RolloutState.COMPLETED
    response = site.staff.post(f"/api/staff/rollouts/{rollout_id}/rollback", json={"reason": "收费处反映小票异常"},
                               headers={"X-CSRF-Token": site.csrf})
    assert response.status_code == 200 and response.json()["state"] == "rolled_back"
    wait_for(lambda: site.runtime.updater.running_version() == "1.0.0")
    assert "page 1.0.0" in site.page()


def test_logs_shipped_by_the_agent_are_searchable_by_staff_with_personal_data_masked(site):
    site.runtime.logs.bind()  # this test thread logs as the agent would
    log = structlog.get_logger("medkiosk.agent.test")
    log.info("patient_note", name="王建国", id_number="110101195803150012", session_id="S-abc-123",
             note="患者 110101195803150012 电话 13912345678 已取号")
    log.warning("printer_paper_low", peripheral="receipt_printer")
    assert httpx.post(site.agent.url + "/local/demo/peripheral",
                      json={"name": "receipt_printer", "state": "fault"}).status_code == 200
    wait_for(lambda: site.runtime.logs.pending == 0 and site.runtime.logs.shipped >= 2)

    def search(**params):
        response = site.staff.get("/api/staff/logs", params=params)
        assert response.status_code == 200, response.text
        return response.json()["lines"]

    found = wait_for(lambda: search(device="K-REL-01", q="patient_note"))
    assert found[0]["fields"]["name"] == "王*国" and found[0]["fields"]["id_number"] == "1101**********0012"
    assert "13912345678" not in found[0]["fields"]["note"] and "110101195803150012" not in found[0]["fields"]["note"]
    assert [line["event"] for line in search(session="S-abc-123")] == ["patient_note"]
    assert "printer_paper_low" in [line["event"] for line in search(level="warning")]
    assert "patient_note" not in [line["event"] for line in search(level="warning")]
    assert search(q="110101195803150012") == []
    page = site.staff.get("/staff/logs", params={"device": "K-REL-01", "q": "patient"}).text
    assert "王*国" in page and "王建国" not in page and "110101195803150012" not in page
    with site.container.uow() as uow:
        stored = " ".join(uow.session.scalars(select(DeviceLogLine.text)))
    assert "王建国" not in stored and "110101195803150012" not in stored and "13912345678" not in stored
