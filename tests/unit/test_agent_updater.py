"""The agent's updater against a fake service (httpx.MockTransport): install beside, switch, commit or go back."""

from __future__ import annotations

import dataclasses
import json
import os

import httpx
import pytest

from medkiosk.agent.client import ServiceClient
from medkiosk.agent.config import AgentSettings
from medkiosk.agent.drivers import build_drivers
from medkiosk.agent.drivers.base import PeripheralState
from medkiosk.agent.updater import BundleStore, Updater
from medkiosk.security.release_signing import BUILTIN, parse_key_list
from medkiosk.security.signing import DeviceSigner, generate_key, private_key_to_pem
from release_fixtures import ReleaseKit


class FakeService:
    """Answers the updater's three calls; ``target`` and ``content`` are set by each test."""

    def __init__(self) -> None:
        self.target: dict = {"version": None}
        self.content = b""
        self.reports: list[dict] = []
        self.downloads = 0

    def offer(self, content: bytes, signed, **changes) -> None:
        self.content = content
        self.target = {**dataclasses.asdict(signed), "artifact": f"/api/device/releases/{signed.version}/artifact",
                       "health_deadline_seconds": 60, **changes}

    def statuses(self) -> list[tuple[str, str]]:
        return [(r["version"], r["status"]) for r in self.reports]

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/device/release":
            return httpx.Response(200, json=self.target)
        if path.endswith("/artifact"):
            self.downloads += 1
            return httpx.Response(200, content=self.content)
        if path == "/api/device/release/report":
            self.reports.append(json.loads(request.content))
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(404)


class Rig:
    def __init__(self, tmp_path, kit: ReleaseKit, service: FakeService) -> None:
        key = generate_key()
        (tmp_path / "device.pem").write_bytes(private_key_to_pem(key))
        self.settings = AgentSettings(device_id="K-UPD-01", key_file=tmp_path / "device.pem", demo=True,
                                      output_dir=tmp_path / "out")
        self.drivers = build_drivers(self.settings)
        self.client = ServiceClient("http://service.test", DeviceSigner("K-UPD-01", key),
                                    transport=httpx.MockTransport(service.handle))
        self.store = BundleStore(tmp_path / "releases")
        self.trusted = parse_key_list(kit.public_key)
        self.clock = 1_000_000.0
        self.beats = 0
        self.version_told = ""
        self.updater = self.new_updater()

    def new_updater(self) -> Updater:
        """A fresh updater on the same folders: what an agent restart gives."""
        return Updater(self.client, self.store, self.trusted, drivers=self.drivers, heartbeats=lambda: self.beats,
                       on_version=lambda v: setattr(self, "version_told", v), builtin_version="0.1.0",
                       now=lambda: self.clock)


@pytest.fixture
def kit(tmp_path):
    return ReleaseKit(tmp_path / "kit")


@pytest.fixture
def service():
    return FakeService()


@pytest.fixture
def rig(tmp_path, kit, service):
    return Rig(tmp_path, kit, service)


def test_a_signed_release_is_installed_beside_switched_to_and_committed_after_a_heartbeat(rig, kit, service):
    service.offer(*kit.artifact("1.1.0"))
    assert rig.updater.check_once() == "switched"
    assert os.readlink(rig.store.current_link) == os.path.join("versions", "1.1.0")
    assert rig.updater.web_dir() == rig.store.versions / "1.1.0" / "web"
    assert rig.version_told == "1.1.0"
    assert rig.updater.check_once() == "checking"  # no heartbeat has carried the new version yet
    rig.beats += 1
    assert rig.updater.check_once() == "committed"
    assert service.statuses() == [("1.1.0", "switched"), ("1.1.0", "healthy")]
    assert rig.updater.check_once() == "idle"
    assert service.downloads == 1


def test_a_version_that_is_not_healthy_by_its_deadline_is_switched_back_and_not_retried(rig, kit, service):
    service.offer(*kit.artifact("1.1.0", requires={"peripherals": ["a4_printer"]}))
    rig.drivers.a4_printer.set_state(PeripheralState.FAULT)
    assert rig.updater.check_once() == "switched"
    rig.beats += 1
    assert rig.updater.check_once() == "checking"
    rig.clock += 61
    assert rig.updater.check_once() == "rolled_back"
    assert rig.updater.running_version() == BUILTIN and not rig.store.current_link.exists()
    assert rig.version_told == "0.1.0"
    version, status = service.statuses()[-1]
    assert (version, status) == ("1.1.0", "rolled_back") and "a4_printer" in service.reports[-1]["detail"]
    assert rig.updater.check_once() == "skipped"
    assert rig.store.installed("1.1.0")  # kept beside, for the record; not current


def test_a_restarted_agent_keeps_checking_and_still_switches_back_at_the_deadline(rig, kit, service):
    service.offer(*kit.artifact("1.1.0", index=False))  # a page without its entry: never healthy
    assert rig.updater.check_once() == "switched"
    restarted = rig.new_updater()
    rig.beats += 1
    assert restarted.check_once() == "checking"
    rig.clock += 61
    assert restarted.check_once() == "rolled_back"
    assert "web/index.html" in service.reports[-1]["detail"]


def test_a_tampered_artifact_is_refused_reported_and_never_installed(rig, kit, service):
    content, signed = kit.artifact("1.1.0")
    service.offer(content[:-10] + bytes(b ^ 0xFF for b in content[-10:]), signed)
    assert rig.updater.check_once() == "refused"
    assert service.statuses() == [("1.1.0", "refused")] and service.reports[0]["detail"].startswith("tampered")
    assert not (rig.store.versions / "1.1.0").exists() and rig.updater.running_version() == BUILTIN
    assert rig.updater.check_once() == "skipped"  # refused once is enough; the gate takes it from there


def test_an_unsigned_offer_is_refused_without_downloading(rig, kit, service):
    service.offer(*kit.artifact("1.1.0"))
    service.target.pop("signature")
    assert rig.updater.check_once() == "refused"
    assert service.reports[0]["detail"].startswith("unsigned") and service.downloads == 0


def test_an_artifact_signed_with_an_untrusted_key_is_refused(rig, tmp_path, service):
    stranger = ReleaseKit(tmp_path / "stranger")
    service.offer(*stranger.artifact("1.1.0"))
    assert rig.updater.check_once() == "refused"
    assert service.reports[0]["detail"].startswith("unknown_key")


def test_the_service_sending_the_kiosk_back_switches_to_the_version_it_still_has(rig, kit, service):
    service.offer(*kit.artifact("1.1.0"))
    rig.updater.check_once()
    rig.beats += 1
    assert rig.updater.check_once() == "committed"
    service.offer(*kit.artifact("1.2.0"))
    assert rig.updater.check_once() == "switched"
    service.target = {"version": "1.1.0", **{k: v for k, v in dataclasses.asdict(kit.artifact("1.1.0")[1]).items()
                                            if k != "version"}}
    # mid-check, the gate failed elsewhere: the service wants 1.1.0 back, which is still installed
    assert rig.updater.check_once() == "idle"
    assert rig.updater.running_version() == "1.1.0" and service.downloads == 2 and rig.version_told == "1.1.0"
    service.target = {"version": BUILTIN}
    assert rig.updater.check_once() == "switched"
    rig.beats += 1
    assert rig.updater.check_once() == "committed"
    assert rig.updater.web_dir() is None and rig.version_told == "0.1.0"
