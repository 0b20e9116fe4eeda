"""Releases on the kiosk: learn the target, download, verify, install beside, switch, check health, commit or go back.

Layout under ``releases_dir``::

    versions/1.4.0/        manifest.json, web/… (the page), config/…
    versions/1.5.0/
    current -> versions/1.5.0      (a symlink, replaced atomically; absent = the agent's built-in page)
    state.json                     the switch in progress, versions found bad, artifacts refused

A switch is *pending* until its health check passes; then it is committed. The pending switch,
with its deadline as wall-clock time, is written before the link changes, so an agent restarted
mid-check carries on checking — and switches back by itself when the deadline passes.

Nothing is installed unless its signature verifies against a release key this kiosk was
configured to trust; refusals are logged and reported to the service.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.staticfiles import StaticFiles

from medkiosk.agent.client import ServiceClient, ServiceUnavailable
from medkiosk.agent.drivers.base import Drivers
from medkiosk.domain.releases import AgentReleaseStatus
from medkiosk.logging import get_logger
from medkiosk.security.release_signing import (BUILTIN, MANIFEST, VERSION_RE, Manifest, ReleaseRefused,
                                               ReleaseSignature, check_unpacked, unpack,
                                               verify_artifact)

log = get_logger("medkiosk.agent.updater")

WORKING_STATES = frozenset({"ok", "warning"})
PAGE_ENTRY = "web/index.html"


# --- the folders --------------------------------------------------------------------------------------
class BundleStore:
    """The installed versions and the ``current`` link."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = root / "versions"
        self.current_link = root / "current"
        self.state_file = root / "state.json"

    def current_version(self) -> str:
        try:
            target = os.readlink(self.current_link)
        except (FileNotFoundError, OSError):
            return BUILTIN
        return Path(target).name

    def path(self, version: str) -> Path:
        if not VERSION_RE.match(version) or version == BUILTIN:
            raise ValueError(f"not an installable version: {version!r}")
        return self.versions / version

    def manifest(self, version: str) -> Manifest | None:
        try:
            data = json.loads((self.path(version) / MANIFEST).read_text(encoding="utf-8"))
            return Manifest(str(data["version"]), dict(data["files"]), dict(data.get("requires") or {}))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def installed(self, version: str) -> bool:
        manifest = self.manifest(version)
        return manifest is not None and check_unpacked(self.path(version), manifest) is None

    def web_dir(self) -> Path | None:
        """The page of the current version, or ``None`` for the agent's built-in page."""
        version = self.current_version()
        if version == BUILTIN:
            return None
        web = self.versions / version / "web"
        return web if web.is_dir() else None

    def install(self, content: bytes, manifest: Manifest) -> Path:
        """Unpack beside the running version: into a temporary folder, then renamed into place."""
        self.versions.mkdir(parents=True, exist_ok=True)
        final = self.path(manifest.version)
        staging = self.versions / f".staging-{manifest.version}-{uuid.uuid4().hex[:8]}"
        try:
            unpack(content, manifest, staging)
            if final.exists():  # an earlier, incomplete copy: never the running one (checked by the caller)
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def switch(self, version: str) -> None:
        """Point ``current`` at ``version`` in one atomic rename (``builtin``: remove the link)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if version == BUILTIN:
            try:
                os.unlink(self.current_link)
            except FileNotFoundError:
                pass
            return
        if not self.path(version).is_dir():
            raise FileNotFoundError(f"version {version} is not installed")
        temporary = self.root / f".current-{uuid.uuid4().hex[:8]}"
        os.symlink(Path("versions") / version, temporary)
        os.replace(temporary, self.current_link)

    def load_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
            return state if isinstance(state, dict) else {}
        except (OSError, ValueError):
            return {}

    def save_state(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.state_file.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.state_file)


class BundleStaticFiles(StaticFiles):
    """``/static/kiosk``: files of whichever page is current *now* (a switch needs no restart)."""

    def __init__(self, resolve: Callable[[], Path]) -> None:
        super().__init__(directory=str(resolve()), check_dir=False)
        self._resolve = resolve

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path.startswith(("/", "\\")):
            return "", None
        directory = os.path.realpath(self._resolve())
        full_path = os.path.realpath(os.path.join(directory, path))
        if os.path.commonpath([full_path, directory]) != directory:
            return "", None
        try:
            return full_path, os.stat(full_path)
        except (FileNotFoundError, NotADirectoryError):
            return "", None


# --- the updater --------------------------------------------------------------------------------------
@dataclass
class HealthContext:
    """What the health check compares against: the moment of the switch."""

    version: str
    heartbeats_at_switch: int
    working_at_switch: list[str] = field(default_factory=list)


class Updater:
    """One kiosk's release loop. ``check_once`` is one pass; ``run`` repeats it every ``period`` seconds."""

    def __init__(self, client: ServiceClient, store: BundleStore, trusted: dict[str, Ed25519PublicKey], *,
                 drivers: Drivers, heartbeats: Callable[[], int], on_version: Callable[[str], None],
                 builtin_version: str, period: float = 60.0, default_deadline: float = 120.0,
                 now: Callable[[], float] = time.time) -> None:
        self.client = client
        self.store = store
        self.trusted = trusted
        self.drivers = drivers
        self.heartbeats = heartbeats
        self.on_version = on_version
        self.builtin_version = builtin_version
        self.period = period
        self.default_deadline = default_deadline
        self.now = now
        self._outbox: list[dict[str, Any]] = []
        self.last_outcome = ""

    # -- what runs -------------------------------------------------------------------------------------
    def running_version(self) -> str:
        return self.store.current_version()

    def reported_version(self) -> str:
        """What heartbeats say: the bundle's version, or the agent's own for its built-in page."""
        version = self.running_version()
        return self.builtin_version if version == BUILTIN else version

    def web_dir(self) -> Path | None:
        return self.store.web_dir()

    def announce(self) -> None:
        self.on_version(self.reported_version())

    # -- one pass --------------------------------------------------------------------------------------
    def check_once(self) -> str:
        self._flush_reports()
        state = self.store.load_state()
        target = self._fetch_target()
        pending = state.get("pending")
        if pending:
            wanted = target.get("version") if target else None
            if target is not None and wanted is not None and wanted != pending["version"]:
                # The service changed its mind mid-check (e.g. the phase's gate failed): go where it says.
                log.info("release_abandoned", version=pending["version"], target=wanted)
                self._go_back(state, pending, status=None, detail="")
            else:
                return self._remember(self._check_pending(state, pending))
        if target is None:
            return self._remember("unreachable")
        version = target.get("version")
        current = self.running_version()
        if not version or version == current:
            return self._remember("idle")
        if version == BUILTIN:
            return self._remember(self._switch(state, BUILTIN, target))
        sha = str(target.get("sha256", ""))
        if state.get("bad", {}).get(version) == sha or state.get("refused", {}).get(version) == sha:
            return self._remember("skipped")  # told already; the gate decides what happens next
        if not self.store.installed(version):
            outcome = self._download_and_install(state, version, target)
            if outcome != "installed":
                return self._remember(outcome)
        return self._remember(self._switch(state, version, target))

    def _remember(self, outcome: str) -> str:
        self.last_outcome = outcome
        return outcome

    def _fetch_target(self) -> dict[str, Any] | None:
        try:
            response = self.client.get("/api/device/release")
        except ServiceUnavailable as exc:
            log.warning("release_target_unreachable", error=str(exc))
            return None
        if response.status_code != 200:
            log.warning("release_target_refused", status=response.status_code, reply=response.text[:200])
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _download_and_install(self, state: dict[str, Any], version: str, target: dict[str, Any]) -> str:
        sha = str(target.get("sha256", ""))
        try:
            if not VERSION_RE.match(version):
                raise ReleaseRefused("bad_artifact", f"bad version {version[:40]!r}")
            signed = ReleaseSignature.from_json(target) if target.get("signature") else None
            if signed is None:
                raise ReleaseRefused("unsigned", "the service offered no signature")
            if signed.version != version:
                raise ReleaseRefused("version_mismatch", f"signature names {signed.version}")
            if not self.trusted:
                raise ReleaseRefused("unknown_key", "no release key is configured on this kiosk")
            response = self.client.get(str(target.get("artifact") or f"/api/device/releases/{version}/artifact"))
            if response.status_code != 200:
                log.warning("release_download_failed", version=version, status=response.status_code)
                self._report(version, AgentReleaseStatus.FAILED, f"下载失败：HTTP {response.status_code}")
                return "failed"
            manifest = verify_artifact(response.content, signed, self.trusted)
            self.store.install(response.content, manifest)
        except ReleaseRefused as exc:
            log.warning("release_refused", version=version, reason=exc.reason, detail=exc.detail)
            state.setdefault("refused", {})[version] = sha
            self.store.save_state(state)
            self._report(version, AgentReleaseStatus.REFUSED, f"{exc.reason}: {exc.detail}"[:500])
            return "refused"
        except ServiceUnavailable as exc:
            log.warning("release_download_failed", version=version, error=str(exc))
            return "failed"
        except OSError as exc:
            log.warning("release_install_failed", version=version, error=str(exc))
            self._report(version, AgentReleaseStatus.FAILED, f"安装失败：{type(exc).__name__}")
            return "failed"
        log.info("release_installed", version=version, sha256=sha)
        return "installed"

    def _switch(self, state: dict[str, Any], version: str, target: dict[str, Any]) -> str:
        previous = self.running_version()
        deadline = float(target.get("health_deadline_seconds") or self.default_deadline)
        context = HealthContext(version, self.heartbeats(), self._working_peripherals())
        state["pending"] = {"version": version, "previous": previous, "sha256": str(target.get("sha256", "")),
                            "deadline": self.now() + deadline, "heartbeats_at_switch": context.heartbeats_at_switch,
                            "working_at_switch": context.working_at_switch}
        self.store.save_state(state)  # before the link moves: a restart mid-check must know to check
        try:
            self.store.switch(version)
        except OSError as exc:
            state["pending"] = None
            self.store.save_state(state)
            log.warning("release_switch_failed", version=version, error=str(exc))
            self._report(version, AgentReleaseStatus.FAILED, f"切换失败：{type(exc).__name__}")
            return "failed"
        self.announce()
        log.info("release_switched", version=version, previous=previous, deadline_seconds=deadline)
        self._report(version, AgentReleaseStatus.SWITCHED, f"从 {previous} 切换")
        return "switched"

    def _check_pending(self, state: dict[str, Any], pending: dict[str, Any]) -> str:
        problems = self.health_problems(pending)
        if not problems:
            state["pending"] = None
            state["committed"] = pending["version"]
            self.store.save_state(state)
            log.info("release_committed", version=pending["version"])
            self._report(pending["version"], AgentReleaseStatus.HEALTHY, "健康检查通过")
            return "committed"
        if self.now() >= float(pending["deadline"]):
            detail = "；".join(problems)
            log.warning("release_unhealthy", version=pending["version"], problems=problems)
            state.setdefault("bad", {})[pending["version"]] = pending.get("sha256", "")
            self._go_back(state, pending, status=AgentReleaseStatus.ROLLED_BACK, detail=detail)
            return "rolled_back"
        return "checking"

    def _go_back(self, state: dict[str, Any], pending: dict[str, Any], *, status: AgentReleaseStatus | None,
                 detail: str) -> None:
        previous = pending["previous"]
        state["pending"] = None
        self.store.save_state(state)
        try:
            self.store.switch(previous)
        except (OSError, ValueError):  # the version we came from is gone from disk: the built-in page is always there
            log.warning("release_previous_missing", version=previous)
            previous = BUILTIN
            self.store.switch(BUILTIN)
        self.announce()
        log.warning("release_switched_back", version=pending["version"], to=previous, detail=detail[:300])
        if status is not None:
            self._report(pending["version"], status, f"已切换回 {previous}：{detail}"[:1000])

    # -- health ----------------------------------------------------------------------------------------
    def _working_peripherals(self) -> list[str]:
        working = []
        for name, peripheral in self.drivers.all().items():
            try:
                if str(peripheral.status().state) in WORKING_STATES:
                    working.append(name)
            except Exception:  # noqa: BLE001 - a driver bug is a non-working peripheral, not a crash
                continue
        return working

    def health_problems(self, pending: dict[str, Any]) -> list[str]:
        """Empty when the switched-to version is healthy. Each problem is a short Chinese sentence."""
        version = pending["version"]
        problems: list[str] = []
        if self.running_version() != version:
            problems.append(f"当前运行的不是 {version}")
        manifest = None
        if version != BUILTIN:
            manifest = self.store.manifest(version)
            broken = check_unpacked(self.store.path(version), manifest) if manifest else "清单缺失"
            if broken:
                problems.append(f"安装文件不完整：{broken}")
            elif not (self.store.path(version) / PAGE_ENTRY).is_file():
                problems.append("自助机页面入口缺失（web/index.html）")
        if self.heartbeats() <= int(pending.get("heartbeats_at_switch", 0)):
            problems.append("切换后尚无心跳被服务端接收")
        states = {}
        for name, peripheral in self.drivers.all().items():
            try:
                states[name] = str(peripheral.status().state)
            except Exception:  # noqa: BLE001
                states[name] = "fault"
        for name in manifest.required_peripherals if manifest else []:
            if states.get(name) not in WORKING_STATES:
                problems.append(f"该版本需要的外设不可用：{name}")
        for name in pending.get("working_at_switch", []):
            if states.get(name) not in WORKING_STATES:
                problems.append(f"外设在切换后不可用：{name}")
        return problems

    # -- reports ---------------------------------------------------------------------------------------
    def _report(self, version: str, status: AgentReleaseStatus, detail: str) -> None:
        self._outbox.append({"version": version, "status": status.value, "detail": detail[:1000]})
        self._flush_reports()

    def _flush_reports(self) -> None:
        while self._outbox:
            report = self._outbox[0]
            try:
                response = self.client.post("/api/device/release/report", report)
            except ServiceUnavailable as exc:
                log.warning("release_report_failed", error=str(exc))
                return
            if response.status_code >= 500:
                log.warning("release_report_failed", status=response.status_code)
                return
            if response.status_code >= 400:
                log.warning("release_report_refused", status=response.status_code, reply=response.text[:200])
            self._outbox.pop(0)

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.check_once)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must survive a bad pass
                log.exception("release_check_crashed")
            await asyncio.sleep(self.period)
