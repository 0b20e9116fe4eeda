"""Releases rolled out in phases: the states, the phase plan, the gate, and what a rollback touches.

Pure rules, no I/O. The service feeds the gate with observations of the kiosks in a phase
(heartbeats, transactions, peripheral faults, what the agents reported about the release) and
writes whatever the rules decide.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class RolloutState(StrEnum):
    ROLLING_OUT = "rolling_out"
    """Phases are being installed and judged, one after another."""
    COMPLETED = "completed"
    """Every phase passed its gate: the release is what the fleet runs, and the next rollout's fallback."""
    ROLLED_BACK = "rolled_back"
    """A gate failed or staff pulled it: its kiosks were sent back to the pinned previous release."""


class PhaseState(StrEnum):
    PENDING = "pending"
    """Waiting for the phases before it."""
    ACTIVE = "active"
    """Its kiosks were told to install the release; its gate is being judged."""
    PASSED = "passed"
    """Its gate passed."""
    FAILED = "failed"
    """Its gate failed; the rollout was rolled back because of it."""
    ROLLED_BACK = "rolled_back"
    """It had started when the rollout was rolled back: its kiosks were sent back."""
    CANCELLED = "cancelled"
    """It never started: the rollout ended (rolled back) before its turn."""


class PhaseKind(StrEnum):
    PILOT = "pilot"
    """One kiosk per building (a designated preview kiosk when the building has one)."""
    SHARE = "share"
    """A share of the remaining kiosks."""
    REST = "rest"
    """Every kiosk not yet in an earlier phase."""


class GateOutcome(StrEnum):
    WAIT = "wait"
    """Not enough evidence yet: still installing, or the soak time has not passed."""
    PASS = "pass"
    """Every kiosk runs the release healthily and the soak time has passed."""
    FAIL = "fail"
    """At least one rule was broken: roll back."""


class AgentReleaseStatus(StrEnum):
    """What an agent reports about a release it was told to run."""

    REFUSED = "refused"
    """It refused the artifact (unsigned, tampered, unknown key, bad content): nothing was installed."""
    FAILED = "failed"
    """It could not download or unpack it (network, disk); it will try again."""
    SWITCHED = "switched"
    """Installed beside the running version and switched to; the health check is running."""
    HEALTHY = "healthy"
    """The health check passed and the switch is committed."""
    ROLLED_BACK = "rolled_back"
    """Not healthy by its deadline: the agent switched back to the version it came from on its own."""


class IllegalTransition(Exception):
    def __init__(self, what: str, current: str, target: str) -> None:
        super().__init__(f"a {what} cannot go from {current} to {target}")
        self.current = current
        self.target = target


ROLLOUT_ALLOWED: dict[RolloutState, frozenset[RolloutState]] = {
    RolloutState.ROLLING_OUT: frozenset({RolloutState.COMPLETED, RolloutState.ROLLED_BACK}),
    RolloutState.COMPLETED: frozenset({RolloutState.ROLLED_BACK}),
    RolloutState.ROLLED_BACK: frozenset(),
}

PHASE_ALLOWED: dict[PhaseState, frozenset[PhaseState]] = {
    PhaseState.PENDING: frozenset({PhaseState.ACTIVE, PhaseState.CANCELLED}),
    PhaseState.ACTIVE: frozenset({PhaseState.PASSED, PhaseState.FAILED, PhaseState.ROLLED_BACK}),
    PhaseState.PASSED: frozenset({PhaseState.ROLLED_BACK}),
    PhaseState.FAILED: frozenset(),
    PhaseState.ROLLED_BACK: frozenset(),
    PhaseState.CANCELLED: frozenset(),
}


def check_rollout_transition(current: RolloutState | str, target: RolloutState) -> RolloutState:
    current = RolloutState(current)
    if target not in ROLLOUT_ALLOWED[current]:
        raise IllegalTransition("rollout", current.value, target.value)
    return target


def check_phase_transition(current: PhaseState | str, target: PhaseState) -> PhaseState:
    current = PhaseState(current)
    if target not in PHASE_ALLOWED[current]:
        raise IllegalTransition("phase", current.value, target.value)
    return target


def phase_after_rollback(current: PhaseState | str) -> PhaseState:
    """Where a phase goes when its rollout is rolled back (a failed phase stays failed)."""
    current = PhaseState(current)
    if current in (PhaseState.ACTIVE, PhaseState.PASSED):
        return PhaseState.ROLLED_BACK
    if current is PhaseState.PENDING:
        return PhaseState.CANCELLED
    return current


# --- thresholds ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateThresholds:
    """The rules a phase must meet, fixed when the rollout starts (stored with it)."""

    soak_seconds: int = 600
    """How long a phase's kiosks run the release, healthy, before the next phase starts."""
    install_deadline_seconds: int = 600
    """Every kiosk must report the release healthy within this time of the phase's start."""
    health_deadline_seconds: int = 120
    """Given to the agents: how long after switching they have to become healthy before switching back."""
    heartbeat_within_seconds: int = 30
    """A kiosk silent for longer than this fails the gate."""
    min_success_rate: float = 0.95
    """Completed payments over completed + failed, for the phase's kiosks since the phase started."""
    min_transactions: int = 5
    """Below this many transactions the success rate is not judged (too little evidence)."""
    max_new_peripheral_faults: int = 0
    """Peripherals that went faulty after the phase started (faults already there do not count)."""
    share_percent: int = 25
    """The second phase's share of the kiosks left after the pilots."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_success_rate <= 1:
            raise ValueError("min_success_rate is between 0 and 1")
        if not 1 <= self.share_percent <= 100:
            raise ValueError("share_percent is between 1 and 100")
        for name in ("soak_seconds", "install_deadline_seconds", "health_deadline_seconds",
                     "heartbeat_within_seconds", "min_transactions", "max_new_peripheral_faults"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "GateThresholds":
        known = {f.name: f.type for f in fields(cls)}
        values = {k: v for k, v in dict(data or {}).items() if k in known}
        return cls(**values)


# --- the phase plan -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FleetDevice:
    device_id: str
    building: str
    preview: bool = False
    """A designated test kiosk: chosen first as its building's pilot."""


@dataclass(frozen=True)
class PlannedPhase:
    kind: PhaseKind
    device_ids: tuple[str, ...]


def building_of(location: str) -> str:
    """The campus and building of a ledger location such as ``本部 / 门诊楼 / 2F / 内科候诊区``."""
    parts = [part.strip() for part in (location or "").split("/") if part.strip()]
    return " / ".join(parts[:2]) if parts else ""


def plan_phases(devices: Iterable[FleetDevice], share_percent: int = 25) -> list[PlannedPhase]:
    """Pilot kiosks (one per building), then ``share_percent`` of the rest, then all the others.

    Deterministic: the same fleet gives the same plan. Empty phases are left out.
    """
    fleet = sorted(devices, key=lambda d: (d.building, not d.preview, d.device_id))
    pilots: list[str] = []
    seen_buildings: set[str] = set()
    rest: list[str] = []
    for device in fleet:
        if device.building not in seen_buildings:
            seen_buildings.add(device.building)
            pilots.append(device.device_id)
        else:
            rest.append(device.device_id)
    rest.sort()
    share_count = math.ceil(len(rest) * share_percent / 100)
    share, remainder = rest[:share_count], rest[share_count:]
    planned = [PlannedPhase(PhaseKind.PILOT, tuple(sorted(pilots)))]
    if remainder:
        planned.append(PlannedPhase(PhaseKind.SHARE, tuple(share)))
        planned.append(PlannedPhase(PhaseKind.REST, tuple(remainder)))
    else:  # the share would be everyone left: it is the last phase
        planned.append(PlannedPhase(PhaseKind.REST, tuple(share)))
    return [phase for phase in planned if phase.device_ids]


# --- the gate -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceObservation:
    """What is known about one kiosk of a phase, since the phase started.

    The service builds these from what it stores (heartbeats, payments, agent reports); a
    telemetry source can build them from its own series instead (see services/releases.py).
    """

    device_id: str
    last_heartbeat_at: datetime | None
    running_version: str
    release_status: AgentReleaseStatus | None = None
    release_detail: str = ""
    transactions: int = 0
    failures: int = 0
    faulty_peripherals: frozenset[str] = frozenset()


@dataclass(frozen=True)
class GateVerdict:
    outcome: GateOutcome
    reasons: tuple[str, ...] = ()
    transactions: int = 0
    failures: int = 0
    healthy: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "reasons": list(self.reasons), "transactions": self.transactions,
                "failures": self.failures, "healthy": list(self.healthy)}


def judge_phase(version: str, started_at: datetime, now: datetime, observations: Sequence[DeviceObservation],
                thresholds: GateThresholds, baseline: Mapping[str, Iterable[str]] | None = None) -> GateVerdict:
    """The gate of one phase. Reasons are Chinese, for the staff page and the rollback record."""
    baseline = {k: frozenset(v) for k, v in (baseline or {}).items()}
    elapsed = now - started_at
    failures: list[str] = []
    waiting: list[str] = []
    healthy: list[str] = []
    heartbeat_limit = timedelta(seconds=thresholds.heartbeat_within_seconds)
    past_install_deadline = elapsed > timedelta(seconds=thresholds.install_deadline_seconds)
    for obs in observations:
        device = obs.device_id
        if obs.release_status is AgentReleaseStatus.REFUSED:
            failures.append(f"{device} 拒绝安装该版本：{obs.release_detail or '安装包校验失败'}")
        elif obs.release_status is AgentReleaseStatus.ROLLED_BACK:
            failures.append(f"{device} 升级后健康检查未通过，已自行回退：{obs.release_detail or '未在期限内恢复健康'}")
        silent_since = obs.last_heartbeat_at
        if elapsed > heartbeat_limit and (silent_since is None or now - silent_since > heartbeat_limit):
            failures.append(f"{device} 超过 {thresholds.heartbeat_within_seconds} 秒没有心跳")
        new_faults = sorted(obs.faulty_peripherals - baseline.get(device, frozenset()))
        if len(new_faults) > thresholds.max_new_peripheral_faults:
            failures.append(f"{device} 外设出现新故障：{'、'.join(new_faults)}")
        is_healthy = obs.release_status is AgentReleaseStatus.HEALTHY and obs.running_version == version
        if is_healthy:
            healthy.append(device)
        elif past_install_deadline and obs.release_status not in (AgentReleaseStatus.REFUSED,
                                                                   AgentReleaseStatus.ROLLED_BACK):
            failures.append(f"{device} 未在 {thresholds.install_deadline_seconds} 秒内完成升级")
        else:
            waiting.append(device)
    transactions = sum(o.transactions for o in observations)
    failed = sum(o.failures for o in observations)
    if transactions >= max(thresholds.min_transactions, 1):
        rate = (transactions - failed) / transactions
        if rate < thresholds.min_success_rate:
            failures.append(f"交易成功率 {rate:.1%} 低于 {thresholds.min_success_rate:.0%}"
                            f"（{transactions} 笔中失败 {failed} 笔）")
    common = dict(transactions=transactions, failures=failed, healthy=tuple(healthy))
    if failures:
        return GateVerdict(GateOutcome.FAIL, tuple(failures), **common)
    if waiting:
        return GateVerdict(GateOutcome.WAIT, (f"等待升级完成：{'、'.join(waiting)}",), **common)
    if elapsed < timedelta(seconds=thresholds.soak_seconds):
        left = int((timedelta(seconds=thresholds.soak_seconds) - elapsed).total_seconds())
        return GateVerdict(GateOutcome.WAIT, (f"观察期还剩 {left} 秒",), **common)
    return GateVerdict(GateOutcome.PASS, (), **common)


def devices_to_send_back(phases: Iterable[tuple[PhaseState | str, Sequence[str]]]) -> list[str]:
    """The kiosks a rollback returns to the previous release: those of every phase that had started."""
    started = {PhaseState.ACTIVE, PhaseState.PASSED, PhaseState.FAILED}
    out: list[str] = []
    for state, device_ids in phases:
        if PhaseState(state) in started:
            out.extend(d for d in device_ids if d not in out)
    return out


# --- major-event mode ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MajorEventPeriod:
    """A staff-set period (重大保障) with tighter thresholds; ``thresholds`` are read by the alerts."""

    id: int
    name: str
    starts_at: datetime
    ends_at: datetime
    thresholds: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def active_at(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


DEFAULT_MAJOR_EVENT_THRESHOLDS: dict[str, Any] = {
    "offline_for_seconds": 30,
    "error_rate_factor": 1.5,
    "paper_low_warns": True,
    "escalate_after_minutes": 5,
    "freeze_releases": True,
}
"""Suggested values; the alerts decide what each key means for their rules."""
