"""Inspections (巡检): when rounds are due, and what a device's telemetry says about it — pure.

The tender asks for three inspections a day. A round is opened at each scheduled time (hospital
time); every device in it is first checked automatically from what its agent reported (online,
peripherals, paper, load, today's failures, consumables about to run out), then an engineer signs
each one off as fine or as a problem with a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any

DEFAULT_TIMES = (time(8, 0), time(12, 30), time(16, 30))
LOAD_LIMIT = 90.0
FAILURE_RATE_LIMIT = 0.10
MIN_TRANSACTIONS = 20
PERIPHERAL_NAMES = {"insurance_card_reader": "医保卡读卡器", "id_card_reader": "身份证读卡器", "qr_scanner": "扫码器",
                    "receipt_printer": "凭条打印机", "a4_printer": "A4打印机", "bank_pos": "银行POS"}


class Verdict(StrEnum):
    FINE = "fine"
    """The engineer looked and the device is fine."""
    PROBLEM = "problem"
    """The engineer found a problem (written in the note); it becomes a ticket."""


class RoundState(StrEnum):
    OPEN = "open"
    """Opened at its time; devices still to be signed off."""
    SIGNED_OFF = "signed_off"
    """Every device signed off."""


@dataclass(frozen=True)
class Finding:
    code: str
    text: str
    """Chinese, shown to the engineer."""


@dataclass(frozen=True)
class Snapshot:
    """What the service knows of one device when a round opens."""

    device_id: str
    online: bool
    last_seen_at: datetime | None
    peripherals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None
    transactions_today: int = 0
    failures_today: int = 0
    runs_out: Sequence[str] = ()
    """Consumables (Chinese names) that will run out before the next inspection."""


def check(snapshot: Snapshot) -> list[Finding]:
    """The automatic part of an inspection: every finding, empty when all looks fine."""
    if snapshot.last_seen_at is None:
        return [Finding("never_seen", "从未收到心跳")]
    if not snapshot.online:
        return [Finding("offline", "离线（心跳中断）")]
    found: list[Finding] = []
    for name, p in sorted(snapshot.peripherals.items()):
        title = PERIPHERAL_NAMES.get(name, name)
        state, paper, detail = p.get("state"), p.get("paper"), str(p.get("detail") or "")
        if paper == "out":
            found.append(Finding("paper_out", f"{title}缺纸"))
        elif paper == "low":
            found.append(Finding("paper_low", f"{title}纸将尽"))
        if state == "fault" and paper != "out":
            found.append(Finding("peripheral_fault", f"{title}故障{('：' + detail) if detail else ''}"))
        elif state == "offline" and p.get("driver") != "none":
            found.append(Finding("peripheral_offline", f"{title}未连接"))
    for code, title, value in (("cpu", "CPU", snapshot.cpu_percent), ("memory", "内存", snapshot.memory_percent),
                               ("disk", "磁盘", snapshot.disk_percent)):
        if value is not None and value >= LOAD_LIMIT:
            found.append(Finding(f"{code}_high", f"{title}占用 {value:.0f}%"))
    tx, fail = snapshot.transactions_today, snapshot.failures_today
    if tx >= MIN_TRANSACTIONS and fail / tx >= FAILURE_RATE_LIMIT:
        found.append(Finding("failures", f"今日交易失败率 {fail / tx:.0%}（{fail}/{tx}）"))
    for name in snapshot.runs_out:
        found.append(Finding("runs_out", f"{name}预计在下次巡检前用完"))
    return found


# --- schedule --------------------------------------------------------------------------------------------
def parse_times(text: str) -> tuple[time, ...]:
    """``"08:00, 12:30, 16:30"`` → sorted, distinct times. Refuses anything else."""
    times = set()
    for part in text.replace("，", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            times.add(time.fromisoformat(part).replace(second=0, microsecond=0))
        except ValueError as exc:
            raise ValueError(f"巡检时间应写成 08:00 这样的格式：{part[:10]}") from exc
    if not times:
        raise ValueError("至少设置一个巡检时间")
    if len(times) > 12:
        raise ValueError("每天最多 12 次巡检")
    return tuple(sorted(times))


def slots_on(day: date, times: Iterable[time], tz: tzinfo) -> list[datetime]:
    return [datetime.combine(day, t, tzinfo=tz) for t in sorted(times)]


def due_slot(times: Sequence[time], now: datetime, tz: tzinfo, opened: Iterable[datetime]) -> datetime | None:
    """The latest of today's scheduled times that has come and has no round yet, else ``None``.
    Earlier missed slots of the same day are not opened: one round checks the fleet as it is now."""
    local = now.astimezone(tz)
    past = [s for s in slots_on(local.date(), times, tz) if s <= local]
    if not past:
        return None
    latest = past[-1]
    if any(abs(o - latest) < timedelta(seconds=1) for o in opened):
        return None
    return latest


def next_slot(times: Sequence[time], now: datetime, tz: tzinfo) -> datetime:
    """The next scheduled time after ``now`` (tomorrow's first when today's are past)."""
    local = now.astimezone(tz)
    for day in (local.date(), local.date() + timedelta(days=1)):
        for slot in slots_on(day, times, tz):
            if slot > local:
                return slot
    raise ValueError("no inspection times")
