"""The heartbeat: every few seconds, tell the service this kiosk is alive and how its peripherals are.

The service treats heartbeats as a dead-man's switch, so the loop never stops on an error: a
failed beat is logged and the next period tries again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from medkiosk.agent.client import ServiceClient, ServiceUnavailable
from medkiosk.agent.drivers.base import Drivers, PeripheralState, PeripheralStatus
from medkiosk.logging import get_logger

log = get_logger("medkiosk.agent.heartbeat")


def peripheral_report(drivers: Drivers) -> dict[str, dict[str, Any]]:
    """Every peripheral's status; one that fails to answer is reported as a fault, not skipped."""
    report: dict[str, dict[str, Any]] = {}
    for name, peripheral in drivers.all().items():
        try:
            status = peripheral.status()
        except Exception as exc:  # noqa: BLE001 - a driver bug must not hide the other peripherals
            log.exception("status_failed", peripheral=name)
            status = PeripheralStatus(state=PeripheralState.FAULT, detail=f"状态读取失败：{type(exc).__name__}")
        report[name] = status.for_heartbeat()
    return report


def system_load() -> dict[str, float]:
    """CPU, memory and disk use in percent, via psutil when it is installed (it is a dependency)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - an agent without psutil still beats
        return {}
    try:
        return {"cpu_percent": psutil.cpu_percent(interval=None), "memory_percent": psutil.virtual_memory().percent,
                "disk_percent": psutil.disk_usage("/").percent}
    except OSError:
        return {}


class Counters:
    """Business calls and failures since the agent started; the service takes their increase."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.transactions = 0
        self.failures = 0

    def record(self, *, ok: bool) -> None:
        with self._lock:
            self.transactions += 1
            if not ok:
                self.failures += 1


class Heartbeat:
    def __init__(self, client: ServiceClient, drivers: Drivers, *, period: float, software_version: str) -> None:
        self.client = client
        self.drivers = drivers
        self.period = period
        self.software_version = software_version
        self.started = time.monotonic()
        self.screen: str | None = None
        self.sent = 0
        self.failed = 0
        self.counters = Counters()

    def body(self) -> dict[str, Any]:
        return {
            "software_version": self.software_version,
            "uptime_seconds": int(time.monotonic() - self.started),
            "peripherals": peripheral_report(self.drivers),
            "screen": self.screen or "",
            "telemetry": {**system_load(), "transactions": self.counters.transactions,
                          "failures": self.counters.failures},
        }

    def beat(self) -> None:
        """One heartbeat (blocking: status queries talk to devices)."""
        response = self.client.post("/api/device/heartbeat", self.body())
        if response.status_code >= 400:
            raise ServiceUnavailable(f"heartbeat answered {response.status_code}: {response.text[:200]}",
                                     outcome_unknown=False)

    async def run(self) -> None:
        next_at = time.monotonic()
        while True:
            try:
                await asyncio.to_thread(self.beat)
                self.sent += 1
            except asyncio.CancelledError:
                raise
            except ServiceUnavailable as exc:
                self.failed += 1
                log.warning("heartbeat_failed", error=str(exc))
            except Exception:  # noqa: BLE001 - the dead-man's switch must keep ticking
                self.failed += 1
                log.exception("heartbeat_crashed")
            next_at += self.period
            await asyncio.sleep(max(next_at - time.monotonic(), 0))
            if time.monotonic() - next_at > self.period:  # fell behind (slow service): don't burst
                next_at = time.monotonic()
