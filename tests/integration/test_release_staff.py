"""Releases, major-event mode and log retention from the staff side and the command line (no agent)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import structlog
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.cli import app as cli_app
from medkiosk.services import audit
from medkiosk.services.clock import FrozenClock
from medkiosk.services.logs import LogQuery, LogService
from medkiosk.services.major_events import MajorEventService, active_major_event
from medkiosk.services.releases import ReleaseError, ReleaseService
from medkiosk.services.staff import StaffService
from medkiosk.settings import Settings, TerminalType, get_settings
from release_fixtures import ReleaseKit
from staff_client import login

PASSWORD = "Release-Night-2300"


class Site:
    def __init__(self, url: str, kit: ReleaseKit) -> None:
        self.clock = FrozenClock()
        self.container = build_container(Settings(database_url=url, release_public_keys=kit.public_key,
                                                  release_evaluate_seconds=0, recovery_seconds=0), clock=self.clock)
        self.app = create_app(container=self.container)
        self.releases = ReleaseService.from_container(self.container)
        staff = StaffService.from_container(self.container)
        staff.create_user("admin1", "", ["it_admin"], PASSWORD)
        staff.create_user("engineer1", "", ["engineer"], PASSWORD)
        for n, location in enumerate(["本部 / 门诊楼 / 1F", "本部 / 门诊楼 / 2F", "本部 / 住院楼 / 3F"], start=1):
            self.container.devices.enroll(f"K{n}", TerminalType.OUTPATIENT, location=location)

    def client(self, username: str) -> tuple[TestClient, str]:
        client = TestClient(self.app)
        return client, login(client, username, PASSWORD)


@pytest.fixture
def kit(tmp_path):
    return ReleaseKit(tmp_path / "kit")


@pytest.fixture
def site(database_url, kit):
    site = Site(database_url, kit)
    yield site
    site.container.close()


def test_publishing_refuses_an_artifact_this_service_does_not_trust_and_a_version_twice(site, kit, tmp_path):
    content, signed = kit.artifact("1.0.0")
    stranger_content, stranger_signed = ReleaseKit(tmp_path / "other").artifact("1.0.0")
    with pytest.raises(ReleaseError, match="unknown_key"):
        site.releases.publish(stranger_content, stranger_signed, changes=["x"], test_record="ok", actor="cli")
    with pytest.raises(ReleaseError, match="unsigned"):
        site.releases.publish(content, None, changes=["x"], test_record="ok", actor="cli")
    with pytest.raises(ReleaseError, match="变更清单"):
        site.releases.publish(content, signed, changes=[" "], test_record="ok", actor="cli")
    site.releases.publish(content, signed, changes=["新增：检查预约"], test_record="回归测试 120 项通过", actor="cli")
    with pytest.raises(ReleaseError, match="重复发布"):
        site.releases.publish(content, signed, changes=["x"], test_record="ok", actor="cli")
    with site.container.uow() as uow:
        assert [e.action for e in audit.recent(uow)][:1] == ["release.published"]


def test_the_plan_pilots_one_kiosk_per_building_and_only_an_administrator_starts_it(site, kit):
    site.releases.publish(*kit.artifact("1.0.0"), changes=["x"], test_record="ok", actor="cli")
    engineer, engineer_csrf = site.client("engineer1")
    refused = engineer.post("/api/staff/rollouts", json={"version": "1.0.0"}, headers={"X-CSRF-Token": engineer_csrf})
    assert refused.status_code == 403
    admin, csrf = site.client("admin1")
    page = admin.get("/staff/releases")
    assert page.status_code == 200 and "分阶段发布" in page.text and "1.0.0" in page.text
    started = admin.post("/staff/releases/rollouts", data={"version": "1.0.0", "share_percent": "50",
                                                          "soak_minutes": "10", "install_minutes": "10",
                                                          "min_success_percent": "95", "csrf_token": csrf},
                         follow_redirects=False)
    assert started.status_code == 303
    rollout = site.releases.rollouts()[0]
    assert [(p.kind, p.device_ids, p.state) for p in rollout.phases] == [
        ("pilot", ["K1", "K3"], "active"), ("rest", ["K2"], "pending")]
    assert site.releases.target_for("K1")["version"] == "1.0.0" and site.releases.target_for("K2")["version"] is None
    assert "立即回退" not in engineer.get("/staff/releases").text  # the list; the button is on the rollout page
    assert "立即回退" in engineer.get(f"/staff/releases/rollouts/{rollout.id}").text
    braked = engineer.post(f"/staff/releases/rollouts/{rollout.id}/rollback",
                           data={"reason": "门诊楼反映页面卡顿", "csrf_token": engineer_csrf}, follow_redirects=False)
    assert braked.status_code == 303
    after = site.releases.rollout(rollout.id)
    assert after.state == "rolled_back" and after.reason == "门诊楼反映页面卡顿"
    assert [p.state for p in after.phases] == ["rolled_back", "cancelled"]
    assert site.releases.target_for("K1")["version"] == "builtin"
    assert engineer.post(f"/api/staff/rollouts/{rollout.id}/rollback", json={},
                         headers={"X-CSRF-Token": engineer_csrf}).status_code == 409


def test_a_rollout_without_evidence_in_time_fails_its_gate(site, kit):
    site.releases.publish(*kit.artifact("1.0.0"), changes=["x"], test_record="ok", actor="cli")
    from medkiosk.domain.releases import GateThresholds

    rollout_id = site.releases.start_rollout("1.0.0", actor="admin1", thresholds=GateThresholds(
        install_deadline_seconds=60, heartbeat_within_seconds=30))
    assert site.releases.evaluate()[0][1].outcome == "wait"
    site.clock.advance(seconds=61)
    verdict = site.releases.evaluate()[0][1]
    assert verdict.outcome == "fail" and any("没有心跳" in r for r in verdict.reasons)
    assert site.releases.rollout(rollout_id).state == "rolled_back"


def test_a_major_event_is_readable_by_others_and_freezes_releases_unless_forced(site, kit):
    site.releases.publish(*kit.artifact("1.0.0"), changes=["x"], test_record="ok", actor="cli")
    admin, csrf = site.client("admin1")
    now = site.clock.now().astimezone(timezone_cn())
    form = {"name": "春节保障", "starts_at": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            "ends_at": (now + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"), "offline_for_seconds": "20",
            "escalate_after_minutes": "3", "freeze_releases": "true", "csrf_token": csrf}
    assert admin.post("/staff/major-events", data=form, follow_redirects=False).status_code == 303
    period = active_major_event(site.container)
    assert period.name == "春节保障" and period.thresholds["offline_for_seconds"] == 20
    assert admin.get("/api/staff/major-events/active").json()["active"]["thresholds"]["escalate_after_minutes"] == 3
    assert "春节保障" in admin.get("/staff/major-events").text
    frozen = admin.post("/api/staff/rollouts", json={"version": "1.0.0"}, headers={"X-CSRF-Token": csrf})
    assert frozen.status_code == 409 and "重大保障" in frozen.json()["message"]
    forced = admin.post("/api/staff/rollouts", json={"version": "1.0.0", "force": True}, headers={"X-CSRF-Token": csrf})
    assert forced.status_code == 201
    MajorEventService.from_container(site.container).cancel(period.id, actor="admin1")
    assert active_major_event(site.container) is None


def timezone_cn():
    from medkiosk.api.staff import HOSPITAL_TIME

    return HOSPITAL_TIME


def test_a_retried_log_batch_is_stored_once_and_old_lines_are_purged(site):
    logs = LogService.from_container(site.container)
    old = (site.clock.now() - timedelta(days=40)).isoformat()
    lines = [{"event": "agent_started", "level": "info", "timestamp": old},
             {"event": "print_failed", "level": "error", "name": "李四", "timestamp": site.clock.now().isoformat()}]
    assert logs.ingest("K1", "batch-0001", lines) == {"accepted": 2, "duplicate": False}
    assert logs.ingest("K1", "batch-0001", lines) == {"accepted": 0, "duplicate": True}
    assert [line.fields["name"] for line in logs.search(LogQuery(level="error"))] == ["李*"]
    assert logs.purge(timedelta(days=30)) == 1
    assert [line.event for line in logs.search(LogQuery(device_id="K1"))] == ["print_failed"]


def test_the_command_line_builds_signs_and_publishes_a_release(sqlite_url, tmp_path, monkeypatch):
    runner = CliRunner()
    key = tmp_path / "release.pem"
    made = runner.invoke(cli_app, ["release", "keygen", "--key-out", str(key)])
    assert made.exit_code == 0, made.output
    public_key = made.output.strip().splitlines()[-1]
    bundle = ReleaseKit(tmp_path).bundle("3.1.0")
    artifact = tmp_path / "medkiosk-3.1.0.tar.gz"
    assert runner.invoke(cli_app, ["release", "build", str(bundle), "--version", "3.1.0", "--out", str(artifact)]).exit_code == 0
    (tmp_path / "changes.txt").write_text("新增：报到\n修改：缴费提示\n", encoding="utf-8")
    (tmp_path / "tests.txt").write_text("测试记录：全部通过", encoding="utf-8")
    monkeypatch.setenv("MEDKIOSK_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MEDKIOSK_RELEASE_PUBLIC_KEYS", public_key)
    get_settings.cache_clear()
    try:
        publish = ["release", "publish", str(artifact), "--changes", str(tmp_path / "changes.txt"),
                   "--test-record", str(tmp_path / "tests.txt")]
        unsigned = runner.invoke(cli_app, publish)
        assert unsigned.exit_code == 2 and "unsigned" in unsigned.output
        assert runner.invoke(cli_app, ["release", "sign", str(artifact), "--key", str(key)]).exit_code == 0
        published = runner.invoke(cli_app, publish)
        assert published.exit_code == 0, published.output
        container = build_container(get_settings())
        try:
            release = ReleaseService.from_container(container).releases()[0]
            assert (release.version, release.changes) == ("3.1.0", ["新增：报到", "修改：缴费提示"])
        finally:
            container.close()
        assert runner.invoke(cli_app, ["logs", "purge", "--days", "30"]).exit_code == 0
    finally:
        get_settings.cache_clear()
        structlog.reset_defaults()  # the CLI pointed logging at this test's captured stderr


def test_log_search_by_time_reads_hospital_time_on_the_page(site):
    logs = LogService.from_container(site.container)
    now = site.clock.now()
    logs.ingest("K2", "batch-0002", [{"event": "early", "level": "info", "timestamp": (now - timedelta(hours=3)).isoformat()},
                                     {"event": "late", "level": "info", "timestamp": (now - timedelta(minutes=5)).isoformat()}])
    admin, _ = site.client("admin1")
    since = (now - timedelta(hours=1)).astimezone(timezone_cn()).strftime("%Y-%m-%dT%H:%M")
    page = admin.get("/staff/logs", params={"device": "K2", "since": since}).text
    assert "late" in page and "early" not in page
    api = admin.get("/api/staff/logs", params={"device": "K2", "since": (now - timedelta(hours=4)).isoformat()}).json()
    assert [line["event"] for line in api["lines"]] == ["late", "early"]
