"""Print jobs from the page: one at a time per printer, refused when the printer says it cannot,
and printed once per ``job_id`` (a repeat gets the first answer; paper must not move twice).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from medkiosk.agent.drivers.base import Peripheral, PeripheralError, PrintJob
from medkiosk.agent.drivers.escpos_printer import refusal_for
from medkiosk.agent.errors import AgentError
from medkiosk.logging import get_logger

log = get_logger("medkiosk.agent.printing")

REMEMBERED_JOBS = 200


class PrintQueue:
    def __init__(self, name: str, label: str, printer: Peripheral) -> None:
        self.name = name
        self.label = label
        self.printer = printer
        self._lock = asyncio.Lock()
        self._done: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._in_flight: set[str] = set()

    async def submit(self, job_id: str | None, title: str, run: Callable[[], PrintJob]) -> dict[str, Any]:
        if job_id is not None:
            if job_id in self._done:
                return {**self._done[job_id], "replayed": True}
            if job_id in self._in_flight:
                raise AgentError(409, "正在打印，请稍候", "打印完成后请取走单据")
            self._in_flight.add(job_id)
        try:
            async with self._lock:
                status = await asyncio.to_thread(self.printer.status)
                if not status.can_work:
                    refusal = refusal_for(status, self.label)
                    log.warning("print_refused", printer=self.name, state=status.state.value, detail=status.detail)
                    raise AgentError(503, refusal.message, refusal.next_step)
                try:
                    job = await asyncio.to_thread(run)
                except PeripheralError as exc:
                    log.warning("print_failed", printer=self.name, error=exc.detail or exc.message)
                    raise AgentError(503, exc.message, exc.next_step) from exc
                after = await asyncio.to_thread(self.printer.status)
        finally:
            if job_id is not None:
                self._in_flight.discard(job_id)
        result = {"printed": True, "job_id": job.job_id, "printed_at": job.printed_at.isoformat(timespec="seconds"),
                  "printer_state": after.state.value}
        log.info("printed", printer=self.name, job_id=job.job_id, title=title, printer_state=after.state.value)
        if job_id is not None:
            self._done[job_id] = result
            while len(self._done) > REMEMBERED_JOBS:
                self._done.popitem(last=False)
        return result
