"""The control surface every simulator shares: inspect state, load data, inject faults, see calls.

Mounted under ``/__sim__/`` on each simulator. Integrators use it to rehearse their own cases,
our tests use it to inject the failures a real upstream produces (latency, a timeout, an error
reply, or the reply lost after the upstream committed).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, model_validator

T = TypeVar("T")


class FaultKind(StrEnum):
    LATENCY = "latency"
    """Add ``delay_ms`` before the operation runs, then answer normally."""
    TIMEOUT = "timeout"
    """Hang for ``hang_seconds`` before doing anything: nothing is committed upstream."""
    ERROR = "error"
    """Refuse the operation with the simulator's own error reply; nothing is committed."""
    LOST_REPLY = "lost_reply"
    """Commit the operation, then hang for ``hang_seconds``: the caller never sees the answer."""


class FaultSpec(BaseModel):
    """A fault to inject. ``operation`` names a simulator operation (``*`` matches all)."""

    operation: str = "*"
    kind: FaultKind
    delay_ms: int = Field(default=0, ge=0, le=600_000)
    hang_seconds: float = Field(default=30.0, ge=0, le=3600)
    count: int | None = Field(default=None, ge=1, description="apply to this many calls, then expire")
    probability: float | None = Field(default=None, gt=0, le=1, description="apply to each call with this chance")
    message: str = "模拟器注入的错误"
    code: str = "SIM_FAULT"

    @model_validator(mode="after")
    def _latency_needs_delay(self) -> "FaultSpec":
        if self.kind is FaultKind.LATENCY and self.delay_ms == 0:
            raise ValueError("a latency fault needs delay_ms > 0")
        return self


class Fault(FaultSpec):
    id: int
    applied: int = 0


class SimulatedError(Exception):
    """Raised by :meth:`SimulatorControl.before` for an ERROR fault; each simulator renders it."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class SimulatorState(Protocol):
    """What a simulator's data store offers the control surface."""

    def snapshot(self) -> dict[str, Any]: ...

    def load(self, data: dict[str, Any]) -> None: ...

    def reset(self) -> None: ...

    def add(self, collection: str, items: list[dict[str, Any]]) -> int: ...


class ClockAdvance(BaseModel):
    advance_seconds: float = Field(gt=0, le=366 * 24 * 3600)


class MovableClock(Protocol):
    """A simulator state whose clock moves forward on demand (tokens age, QR orders expire)."""

    def advance(self, seconds: float) -> None: ...


def clock_router(state: MovableClock, describe: Callable[[], dict[str, Any]]) -> APIRouter:
    """``/__sim__/clock``: GET shows the simulator's time as ``describe`` tells it, POST moves it forward."""
    router = APIRouter(prefix="/__sim__", tags=["simulator control"])

    @router.get("/clock")
    def clock() -> dict[str, Any]:
        return describe()

    @router.post("/clock")
    def advance(change: ClockAdvance) -> dict[str, Any]:
        state.advance(change.advance_seconds)
        return describe()

    return router


class SimulatorControl:
    """Faults and call journal of one simulator; thread-safe so tests may call it from anywhere."""

    def __init__(self, name: str, state: SimulatorState, *, seed: int | None = None, journal_size: int = 2000) -> None:
        self.name = name
        self.state = state
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.calls: deque[dict[str, Any]] = deque(maxlen=journal_size)

    # -- faults -----------------------------------------------------------------------------
    def add_fault(self, spec: FaultSpec) -> Fault:
        with self._lock:
            fault = Fault(id=next(self._ids), **spec.model_dump())
            self._faults.append(fault)
            return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[Fault]:
        with self._lock:
            return [f.model_copy() for f in self._faults]

    def _take(self, operation: str, kinds: set[FaultKind]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind not in kinds or fault.operation not in ("*", operation):
                    continue
                if fault.probability is not None and self._random.random() >= fault.probability:
                    continue
                fault.applied += 1
                if fault.count is not None and fault.applied >= fault.count:
                    self._faults.remove(fault)
                return fault.model_copy()
        return None

    async def before(self, operation: str, request: dict[str, Any] | None = None) -> None:
        """Run before an operation: record it, then apply latency, timeout or error faults."""
        self.calls.append({"operation": operation, "at": time.time(), "request": request})
        latency = self._take(operation, {FaultKind.LATENCY})
        if latency:
            await asyncio.sleep(latency.delay_ms / 1000)
        timeout = self._take(operation, {FaultKind.TIMEOUT})
        if timeout:
            await asyncio.sleep(timeout.hang_seconds)
            raise SimulatedError("模拟超时后未处理", "SIM_TIMEOUT")
        error = self._take(operation, {FaultKind.ERROR})
        if error:
            raise SimulatedError(error.message, error.code)

    async def after(self, operation: str) -> None:
        """Run after an operation committed: a LOST_REPLY fault hangs so the caller gives up."""
        lost = self._take(operation, {FaultKind.LOST_REPLY})
        if lost:
            await asyncio.sleep(lost.hang_seconds)

    async def operate(self, operation: str, journal: dict[str, Any] | None, run: Callable[[], T]) -> T:
        """One operation: :meth:`before` (journaling ``journal``), then ``run``, then :meth:`after`."""
        await self.before(operation, journal)
        result = run()  # a refusal raises here: nothing committed, so no lost reply either
        await self.after(operation)
        return result

    # -- HTTP surface -----------------------------------------------------------------------
    def router(self) -> APIRouter:
        router = APIRouter(prefix="/__sim__", tags=["simulator control"])

        @router.get("/")
        def describe() -> dict[str, Any]:
            return {
                "simulator": self.name,
                "endpoints": [
                    "GET /__sim__/state",
                    "GET /__sim__/state/{collection}",
                    "POST /__sim__/reset",
                    "POST /__sim__/load",
                    "POST /__sim__/data/{collection}",
                    "GET|POST|DELETE /__sim__/faults",
                    "GET|DELETE /__sim__/calls",
                ],
                "fault_kinds": [k.value for k in FaultKind],
            }

        @router.get("/state")
        def state() -> dict[str, Any]:
            return self.state.snapshot()

        @router.get("/state/{collection}")
        def state_of(collection: str) -> Any:
            snap = self.state.snapshot()
            if collection not in snap:
                raise HTTPException(404, f"no collection {collection!r}; have {sorted(snap)}")
            return snap[collection]

        @router.post("/reset")
        def reset() -> dict[str, str]:
            self.state.reset()
            self.clear_faults()
            self.calls.clear()
            return {"status": "reset"}

        @router.post("/load")
        def load(data: dict[str, Any]) -> dict[str, str]:
            try:
                self.state.load(data)
            except (KeyError, ValueError, TypeError) as exc:
                raise HTTPException(422, f"cannot load: {exc}") from exc
            return {"status": "loaded"}

        @router.post("/data/{collection}")
        def add(collection: str, items: list[dict[str, Any]]) -> dict[str, int]:
            try:
                added = self.state.add(collection, items)
            except (KeyError, ValueError, TypeError) as exc:
                raise HTTPException(422, f"cannot add to {collection!r}: {exc}") from exc
            return {"added": added}

        @router.get("/faults")
        def list_faults() -> list[Fault]:
            return self.faults()

        @router.post("/faults")
        def inject(spec: FaultSpec) -> Fault:
            return self.add_fault(spec)

        @router.delete("/faults")
        def clear() -> dict[str, str]:
            self.clear_faults()
            return {"status": "cleared"}

        @router.get("/calls")
        def calls(operation: str | None = None) -> list[dict[str, Any]]:
            return [c for c in self.calls if operation is None or c["operation"] == operation]

        @router.delete("/calls")
        def forget_calls() -> dict[str, str]:
            self.calls.clear()
            return {"status": "cleared"}

        return router
