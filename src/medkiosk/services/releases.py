"""Releases: publish signed artifacts, roll them out in gated phases, roll back, tell kiosks their target.

The gate reads its evidence through :class:`PhaseHealthSource`. The default,
:class:`StoredHealthSource`, reads what the service already stores — each kiosk's last heartbeat
(``device_states``), its payments (``payment_orders``) and what its agent reported about the
release. A telemetry module can hand the service another source (same ``observe`` signature,
e.g. from per-minute transaction and peripheral-fault series) without touching the gate.

Every copy of the service may run :meth:`ReleaseService.evaluate`; a rollout's row is locked
while it is judged, so two copies never start the same phase twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select, text

from medkiosk.domain.releases import (AgentReleaseStatus, DeviceObservation, FleetDevice, GateOutcome, GateThresholds,
                                      GateVerdict, PhaseState, RolloutState, building_of,
                                      check_phase_transition, check_rollout_transition, devices_to_send_back,
                                      judge_phase, phase_after_rollback, plan_phases)
from medkiosk.logging import get_logger
from medkiosk.security.release_signing import (BUILTIN, ReleaseRefused, ReleaseSignature, parse_key_list,
                                               verify_artifact)
from medkiosk.services import audit
from medkiosk.services.clock import Clock, as_utc
from medkiosk.services.events import record_event
from medkiosk.store.models import Device, DeviceState, PaymentOrder
from medkiosk.store.models_releases import (DeviceReleaseReport, DeviceTarget, Release, ReleaseArtifact, Rollout,
                                            RolloutPhase)
from medkiosk.store.uow import UnitOfWork

if TYPE_CHECKING:
    from medkiosk.bootstrap import Container

log = get_logger(__name__)

FAULTY_STATES = frozenset({"fault", "offline"})
FAILED_PAYMENT_STATES = ("failed", "refunded")
SYSTEM = "system"


class ReleaseError(ValueError):
    """A release request refused; the message is Chinese and shown as is. ``status`` suits HTTP."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --- the gate's evidence ------------------------------------------------------------------------------
class PhaseHealthSource(Protocol):
    def observe(self, uow: UnitOfWork, device_ids: Sequence[str], version: str, since: datetime,
                now: datetime) -> list[DeviceObservation]:
        """One observation per device of the phase, covering ``since`` (the phase's start) to ``now``."""


class StoredHealthSource:
    """The gate's evidence from the tables the service already writes."""

    def observe(self, uow: UnitOfWork, device_ids: Sequence[str], version: str, since: datetime,
                now: datetime) -> list[DeviceObservation]:
        session = uow.session
        ids = list(device_ids)
        states = {s.device_id: s for s in session.scalars(select(DeviceState).where(DeviceState.device_id.in_(ids)))}
        reports: dict[str, DeviceReleaseReport] = {}
        for report in session.scalars(
                select(DeviceReleaseReport)
                .where(DeviceReleaseReport.device_id.in_(ids), DeviceReleaseReport.version == version,
                       DeviceReleaseReport.at >= since)
                .order_by(DeviceReleaseReport.id)):
            reports[report.device_id] = report  # the latest wins
        payments: dict[str, tuple[int, int]] = {}
        rows = session.execute(
            select(PaymentOrder.device_id, PaymentOrder.state, PaymentOrder.anomaly, func.count())
            .where(PaymentOrder.device_id.in_(ids), PaymentOrder.created_at >= since)
            .group_by(PaymentOrder.device_id, PaymentOrder.state, PaymentOrder.anomaly))
        for device_id, state, anomaly, count in rows:
            done, failed = payments.get(device_id, (0, 0))
            if anomaly or state in FAILED_PAYMENT_STATES:
                done, failed = done + count, failed + count
            elif state == "completed":
                done += count
            payments[device_id] = (done, failed)
        observations = []
        for device_id in ids:
            state = states.get(device_id)
            report = reports.get(device_id)
            peripherals = (state.peripherals or {}) if state else {}
            transactions, failures = payments.get(device_id, (0, 0))
            observations.append(DeviceObservation(
                device_id=device_id,
                last_heartbeat_at=as_utc(state.last_seen_at) if state else None,
                running_version=state.software_version if state else "",
                release_status=AgentReleaseStatus(report.status) if report else None,
                release_detail=report.detail if report else "",
                transactions=transactions, failures=failures,
                faulty_peripherals=frozenset(name for name, p in peripherals.items()
                                             if isinstance(p, dict) and p.get("state") in FAULTY_STATES)))
        return observations


# --- what the service hands out -----------------------------------------------------------------------
@dataclass(frozen=True)
class ReleaseView:
    version: str
    changes: list[str]
    test_record: str
    sha256: str
    size: int
    key_id: str
    published_at: datetime
    published_by: str

    @classmethod
    def of(cls, row: Release) -> "ReleaseView":
        return cls(row.version, list(row.changes or []), row.test_record, row.sha256, row.size, row.key_id,
                   as_utc(row.published_at), row.published_by)

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "changes": self.changes, "test_record": self.test_record,
                "sha256": self.sha256, "size": self.size, "key_id": self.key_id,
                "published_at": self.published_at.isoformat(), "published_by": self.published_by}


@dataclass(frozen=True)
class DeviceReleaseView:
    device_id: str
    running_version: str
    last_seen_at: datetime | None
    status: str | None
    detail: str
    reported_at: datetime | None


@dataclass(frozen=True)
class PhaseView:
    id: int
    position: int
    kind: str
    state: str
    device_ids: list[str]
    verdict: dict[str, Any]
    started_at: datetime | None
    finished_at: datetime | None
    devices: list[DeviceReleaseView]

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "kind": self.kind, "state": self.state, "device_ids": self.device_ids,
                "verdict": self.verdict, "started_at": self.started_at.isoformat() if self.started_at else None,
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "devices": [{"device_id": d.device_id, "running_version": d.running_version, "status": d.status,
                             "detail": d.detail} for d in self.devices]}


@dataclass(frozen=True)
class RolloutView:
    id: int
    version: str
    previous_version: str
    state: str
    thresholds: dict[str, Any]
    reason: str
    created_at: datetime
    created_by: str
    finished_at: datetime | None
    phases: list[PhaseView]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "previous_version": self.previous_version,
                "state": self.state, "thresholds": self.thresholds, "reason": self.reason,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by,
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "phases": [phase.to_json() for phase in self.phases]}


def _opt(value: datetime | None) -> datetime | None:
    return as_utc(value) if value else None


# --- the service ----------------------------------------------------------------------------------------
class ReleaseService:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Clock, *,
                 trusted_keys: Mapping[str, Ed25519PublicKey] | None = None,
                 health: PhaseHealthSource | None = None,
                 releases_frozen: Callable[[datetime], str | None] | None = None) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._trusted = dict(trusted_keys or {})
        self._health = health or StoredHealthSource()
        self._frozen = releases_frozen or (lambda _now: None)

    @classmethod
    def from_container(cls, container: "Container") -> "ReleaseService":
        """Built per use from the container; a telemetry module may set ``container.release_health``."""
        from medkiosk.services.major_events import MajorEventService

        major = MajorEventService.from_container(container)
        return cls(container.uow, container.clock,
                   trusted_keys=parse_key_list(getattr(container.settings, "release_public_keys", "")),
                   health=getattr(container, "release_health", None),
                   releases_frozen=major.release_freeze_reason)

    # -- publishing ------------------------------------------------------------------------------------
    def publish(self, content: bytes, signature: ReleaseSignature | None, *, changes: Sequence[str],
                test_record: str, actor: str) -> ReleaseView:
        """Store a release after checking its signature against the keys this service trusts."""
        if not self._trusted:
            raise ReleaseError("服务端未配置发布公钥（MEDKIOSK_RELEASE_PUBLIC_KEYS），不能发布版本")
        try:
            manifest = verify_artifact(content, signature, self._trusted)
        except ReleaseRefused as exc:
            log.warning("release.publish_refused", reason=exc.reason, detail=exc.detail, actor=actor)
            raise ReleaseError(f"安装包未通过签名校验（{exc.reason}）：{exc.detail}") from exc
        assert signature is not None
        changes = [line.strip() for line in changes if line.strip()]
        if not changes:
            raise ReleaseError("请填写变更清单（每行一项：新增、修改或删除的功能）")
        if not test_record.strip():
            raise ReleaseError("请附上测试记录")
        now = self._clock.now()
        with self._uow() as uow:
            if uow.session.get(Release, manifest.version) is not None:
                raise ReleaseError(f"版本 {manifest.version} 已发布过；同一版本号不能重复发布", 409)
            row = Release(version=manifest.version, changes=changes, test_record=test_record.strip(),
                          sha256=signature.sha256, size=signature.size, signature=signature.signature,
                          key_id=signature.key_id, published_at=now, published_by=actor)
            uow.session.add(row)
            uow.session.flush()
            uow.session.add(ReleaseArtifact(version=manifest.version, content=content))
            audit.append(uow, self._clock, actor, "release.published", f"release:{manifest.version}",
                         {"sha256": signature.sha256, "key_id": signature.key_id, "changes": len(changes)})
            uow.commit()
            view = ReleaseView.of(row)
        log.info("release.published", version=view.version, sha256=view.sha256, actor=actor)
        return view

    def releases(self) -> list[ReleaseView]:
        with self._uow() as uow:
            return [ReleaseView.of(r) for r in uow.session.scalars(select(Release).order_by(Release.published_at.desc()))]

    def artifact(self, version: str) -> tuple[ReleaseView, bytes] | None:
        with self._uow() as uow:
            row = uow.session.get(Release, version)
            blob = uow.session.get(ReleaseArtifact, version)
            if row is None or blob is None:
                return None
            return ReleaseView.of(row), bytes(blob.content)

    def fleet_version(self) -> str:
        """The release the fleet settled on: the newest completed rollout's, or the agents' built-in page."""
        with self._uow() as uow:
            return self._fleet_version(uow)

    @staticmethod
    def _fleet_version(uow: UnitOfWork) -> str:
        version = uow.session.scalars(
            select(Rollout.version).where(Rollout.state == RolloutState.COMPLETED.value)
            .order_by(Rollout.finished_at.desc(), Rollout.id.desc()).limit(1)).first()
        return version or BUILTIN

    # -- rollouts --------------------------------------------------------------------------------------
    def start_rollout(self, version: str, *, actor: str, thresholds: GateThresholds | None = None,
                      device_ids: Sequence[str] | None = None, force: bool = False) -> int:
        """Plan the phases over the enabled kiosks (or ``device_ids``), pin the fallback, start the pilots."""
        thresholds = thresholds or GateThresholds()
        now = self._clock.now()
        frozen = self._frozen(now)
        if frozen and not force:
            raise ReleaseError(f"{frozen}期间暂停发布新版本", 409)
        with self._uow() as uow:
            if uow.session.get(Release, version) is None:
                raise ReleaseError(f"没有已发布的版本 {version}", 404)
            busy = uow.session.scalars(select(Rollout.id).where(Rollout.state == RolloutState.ROLLING_OUT.value)).first()
            if busy is not None:
                raise ReleaseError(f"第 {busy} 号发布计划尚未结束，请等它完成或回退后再发布", 409)
            previous = self._fleet_version(uow)
            if previous == version:
                raise ReleaseError(f"全部设备已在使用版本 {version}", 409)
            fleet = self._fleet(uow, device_ids)
            if not fleet:
                raise ReleaseError("没有可以升级的设备")
            rollout = Rollout(version=version, previous_version=previous, state=RolloutState.ROLLING_OUT.value,
                              thresholds=thresholds.to_json(), reason="", created_at=now, created_by=actor)
            uow.session.add(rollout)
            uow.session.flush()
            for position, planned in enumerate(plan_phases(fleet, thresholds.share_percent)):
                uow.session.add(RolloutPhase(rollout_id=rollout.id, position=position, kind=planned.kind.value,
                                             device_ids=list(planned.device_ids), state=PhaseState.PENDING.value,
                                             baseline={}, verdict={}))
            uow.session.flush()
            self._start_next_phase(uow, rollout, now)
            audit.append(uow, self._clock, actor, "release.rollout_started", f"rollout:{rollout.id}",
                         {"version": version, "previous": previous, "devices": len(fleet), "forced": bool(frozen)})
            uow.commit()
            rollout_id = rollout.id
        log.info("release.rollout_started", rollout_id=rollout_id, version=version, previous=previous, actor=actor)
        return rollout_id

    @staticmethod
    def _fleet(uow: UnitOfWork, device_ids: Sequence[str] | None) -> list[FleetDevice]:
        query = select(Device).where(Device.enabled.is_(True))
        if device_ids is not None:
            query = query.where(Device.id.in_(list(device_ids)))
        return [FleetDevice(d.id, building_of(d.location), bool(d.preview)) for d in uow.session.scalars(query)]

    def _start_next_phase(self, uow: UnitOfWork, rollout: Rollout, now: datetime) -> RolloutPhase | None:
        phase = uow.session.scalars(
            select(RolloutPhase).where(RolloutPhase.rollout_id == rollout.id,
                                       RolloutPhase.state == PhaseState.PENDING.value)
            .order_by(RolloutPhase.position).limit(1)).first()
        if phase is None:
            return None
        phase.state = check_phase_transition(phase.state, PhaseState.ACTIVE).value
        phase.started_at = now
        states = {s.device_id: s for s in uow.session.scalars(
            select(DeviceState).where(DeviceState.device_id.in_(list(phase.device_ids))))}
        phase.baseline = {device_id: sorted(name for name, p in (states[device_id].peripherals or {}).items()
                                            if isinstance(p, dict) and p.get("state") in FAULTY_STATES)
                          for device_id in phase.device_ids if device_id in states}
        thresholds = GateThresholds.from_json(rollout.thresholds)
        self._set_targets(uow, phase.device_ids, rollout.version, rollout.id, thresholds.health_deadline_seconds, now)
        log.info("release.phase_started", rollout_id=rollout.id, position=phase.position, kind=phase.kind,
                 devices=len(phase.device_ids))
        return phase

    @staticmethod
    def _set_targets(uow: UnitOfWork, device_ids: Sequence[str], version: str, rollout_id: int,
                     health_deadline: int, now: datetime) -> None:
        for device_id in device_ids:
            target = uow.session.get(DeviceTarget, device_id)
            if target is None:
                target = DeviceTarget(device_id=device_id)
                uow.session.add(target)
            target.version = version
            target.rollout_id = rollout_id
            target.health_deadline_seconds = health_deadline
            target.assigned_at = now

    @staticmethod
    def _lock(uow: UnitOfWork, rollout_id: int) -> Rollout | None:
        """Lock one rollout row for the rest of the transaction (SQLite: take the database's write lock)."""
        session = uow.session
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("UPDATE rollouts SET id = id WHERE id = :id"), {"id": rollout_id})
            return session.get(Rollout, rollout_id, populate_existing=True)
        return session.scalars(select(Rollout).where(Rollout.id == rollout_id).with_for_update()).first()

    def evaluate(self) -> list[tuple[int, GateVerdict]]:
        """Judge the active phase of every rollout in progress; advance, complete or roll back."""
        with self._uow() as uow:
            ids = list(uow.session.scalars(select(Rollout.id).where(Rollout.state == RolloutState.ROLLING_OUT.value)))
        return [verdict for rollout_id in ids if (verdict := self._evaluate_one(rollout_id)) is not None]

    def _evaluate_one(self, rollout_id: int) -> tuple[int, GateVerdict] | None:
        now = self._clock.now()
        with self._uow() as uow:
            rollout = self._lock(uow, rollout_id)
            if rollout is None or rollout.state != RolloutState.ROLLING_OUT.value:
                return None
            phase = uow.session.scalars(
                select(RolloutPhase).where(RolloutPhase.rollout_id == rollout.id,
                                           RolloutPhase.state == PhaseState.ACTIVE.value)
                .order_by(RolloutPhase.position).limit(1)).first()
            if phase is None:  # nothing active: start the next one, or finish
                phase = self._start_next_phase(uow, rollout, now)
                if phase is None:
                    self._complete(uow, rollout, now)
                uow.commit()
                return None
            thresholds = GateThresholds.from_json(rollout.thresholds)
            observations = self._health.observe(uow, phase.device_ids, rollout.version, as_utc(phase.started_at), now)
            verdict = judge_phase(rollout.version, as_utc(phase.started_at), now, observations, thresholds,
                                  phase.baseline)
            phase.verdict = verdict.to_json()
            if verdict.outcome is GateOutcome.FAIL:
                phase.state = check_phase_transition(phase.state, PhaseState.FAILED).value
                phase.finished_at = now
                self._roll_back(uow, rollout, now, actor=SYSTEM,
                                reason=f"第 {phase.position + 1} 阶段未通过检查：" + "；".join(verdict.reasons))
            elif verdict.outcome is GateOutcome.PASS:
                phase.state = check_phase_transition(phase.state, PhaseState.PASSED).value
                phase.finished_at = now
                log.info("release.phase_passed", rollout_id=rollout.id, position=phase.position)
                if self._start_next_phase(uow, rollout, now) is None:
                    self._complete(uow, rollout, now)
            uow.commit()
            return rollout_id, verdict

    def _complete(self, uow: UnitOfWork, rollout: Rollout, now: datetime) -> None:
        rollout.state = check_rollout_transition(rollout.state, RolloutState.COMPLETED).value
        rollout.finished_at = now
        audit.append(uow, self._clock, SYSTEM, "release.rollout_completed", f"rollout:{rollout.id}",
                     {"version": rollout.version})
        log.info("release.rollout_completed", rollout_id=rollout.id, version=rollout.version)

    def rollback(self, rollout_id: int, *, actor: str, reason: str = "") -> None:
        """Staff's button: send every kiosk the rollout reached back to its pinned previous release."""
        now = self._clock.now()
        with self._uow() as uow:
            rollout = self._lock(uow, rollout_id)
            if rollout is None:
                raise ReleaseError(f"没有第 {rollout_id} 号发布计划", 404)
            if rollout.state == RolloutState.ROLLED_BACK.value:
                raise ReleaseError(f"第 {rollout_id} 号发布计划已经回退过", 409)
            self._roll_back(uow, rollout, now, actor=actor, reason=reason.strip() or "工作人员手动回退")
            uow.commit()

    def _roll_back(self, uow: UnitOfWork, rollout: Rollout, now: datetime, *, actor: str, reason: str) -> None:
        rollout.state = check_rollout_transition(rollout.state, RolloutState.ROLLED_BACK).value
        rollout.finished_at = now
        rollout.reason = reason[:2000]
        phases = list(uow.session.scalars(select(RolloutPhase).where(RolloutPhase.rollout_id == rollout.id)
                                          .order_by(RolloutPhase.position)))
        back = devices_to_send_back((p.state, p.device_ids) for p in phases)
        for phase in phases:
            after = phase_after_rollback(phase.state)
            if after.value != phase.state:
                phase.state = check_phase_transition(phase.state, after).value
                phase.finished_at = phase.finished_at or now
        thresholds = GateThresholds.from_json(rollout.thresholds)
        self._set_targets(uow, back, rollout.previous_version, rollout.id, thresholds.health_deadline_seconds, now)
        record_event(uow, self._clock, "release_rolled_back",
                     f"版本 {rollout.version} 已回退到 {rollout.previous_version}：{reason}"[:1000],
                     severity="warning", details={"rollout_id": rollout.id, "version": rollout.version,
                                                  "previous": rollout.previous_version, "devices": back})
        audit.append(uow, self._clock, actor, "release.rolled_back", f"rollout:{rollout.id}",
                     {"version": rollout.version, "previous": rollout.previous_version, "reason": reason[:300],
                      "devices": len(back)})
        log.warning("release.rolled_back", rollout_id=rollout.id, version=rollout.version,
                    previous=rollout.previous_version, actor=actor, reason=reason[:300])

    def rollouts(self, *, limit: int = 20) -> list[RolloutView]:
        with self._uow() as uow:
            ids = list(uow.session.scalars(select(Rollout.id).order_by(Rollout.id.desc()).limit(limit)))
            return [self._view(uow, rollout_id) for rollout_id in ids]

    def rollout(self, rollout_id: int) -> RolloutView | None:
        with self._uow() as uow:
            if uow.session.get(Rollout, rollout_id) is None:
                return None
            return self._view(uow, rollout_id)

    def _view(self, uow: UnitOfWork, rollout_id: int) -> RolloutView:
        rollout = uow.session.get(Rollout, rollout_id)
        phases = list(uow.session.scalars(select(RolloutPhase).where(RolloutPhase.rollout_id == rollout_id)
                                          .order_by(RolloutPhase.position)))
        all_ids = [d for p in phases for d in p.device_ids]
        states = {s.device_id: s for s in uow.session.scalars(
            select(DeviceState).where(DeviceState.device_id.in_(all_ids)))}
        latest: dict[str, DeviceReleaseReport] = {}
        for report in uow.session.scalars(select(DeviceReleaseReport).where(
                DeviceReleaseReport.device_id.in_(all_ids),
                DeviceReleaseReport.at >= rollout.created_at).order_by(DeviceReleaseReport.id)):
            latest[report.device_id] = report
        views = []
        for phase in phases:
            devices = []
            for device_id in phase.device_ids:
                state, report = states.get(device_id), latest.get(device_id)
                devices.append(DeviceReleaseView(
                    device_id, state.software_version if state else "", _opt(state.last_seen_at) if state else None,
                    f"{report.status}" if report else None,
                    f"{report.version}：{report.detail}" if report and report.detail else (report.version if report else ""),
                    _opt(report.at) if report else None))
            views.append(PhaseView(phase.id, phase.position, phase.kind, phase.state, list(phase.device_ids),
                                   dict(phase.verdict or {}), _opt(phase.started_at), _opt(phase.finished_at), devices))
        return RolloutView(rollout.id, rollout.version, rollout.previous_version, rollout.state,
                           dict(rollout.thresholds or {}), rollout.reason, as_utc(rollout.created_at),
                           rollout.created_by, _opt(rollout.finished_at), views)

    # -- the agent's side ------------------------------------------------------------------------------
    def target_for(self, device_id: str) -> dict[str, Any]:
        """What the agent should run: a release with its signature, ``builtin``, or ``None`` (keep running)."""
        with self._uow() as uow:
            target = uow.session.get(DeviceTarget, device_id)
            version = target.version if target else self._fleet_version(uow)
            deadline = target.health_deadline_seconds if target else GateThresholds().health_deadline_seconds
            if version == BUILTIN:
                return {"version": BUILTIN if target else None, "health_deadline_seconds": deadline}
            release = uow.session.get(Release, version)
            if release is None:
                return {"version": None, "health_deadline_seconds": deadline}
            return {"version": release.version, "sha256": release.sha256, "size": release.size,
                    "key_id": release.key_id, "signature": release.signature,
                    "artifact": f"/api/device/releases/{release.version}/artifact",
                    "rollout_id": target.rollout_id if target else None, "health_deadline_seconds": deadline}

    def record_report(self, device_id: str, version: str, status: AgentReleaseStatus, detail: str = "") -> None:
        now = self._clock.now()
        with self._uow() as uow:
            uow.session.add(DeviceReleaseReport(device_id=device_id, version=version[:40], status=status.value,
                                                detail=detail[:1000], at=now))
            if status is AgentReleaseStatus.REFUSED:
                record_event(uow, self._clock, "release_refused",
                             f"设备 {device_id} 拒绝安装版本 {version}：{detail[:200]}", severity="warning",
                             device_id=device_id, details={"version": version[:40], "detail": detail[:300]})
            uow.commit()
        (log.warning if status in (AgentReleaseStatus.REFUSED, AgentReleaseStatus.ROLLED_BACK) else log.info)(
            "release.device_report", device_id=device_id, version=version, status=status.value, detail=detail[:300])

