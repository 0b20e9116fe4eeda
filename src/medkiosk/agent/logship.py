"""Log shipping: the agent's structured log lines, masked at the source, batched and retried to the service.

A structlog processor (:func:`capture`) copies every line the agent logs — after the project's
masking processor, and masked once more here in case logging was configured without it — into
the shipper of the agent whose code is running (a context variable, so several agents in one
test process never mix their lines). The shipper posts batches to ``POST /api/device/logs``.
A batch keeps its id until the service acknowledges it, so a retry after a lost answer is stored
once. The buffer is bounded: when the service is away for long, the oldest lines are dropped and
the number dropped is logged when shipping resumes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

import structlog

from medkiosk.agent.client import ServiceClient, ServiceUnavailable
from medkiosk.logging import get_logger, mask_personal_data

log = get_logger("medkiosk.agent.logship")

LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40, "critical": 50}
_current: ContextVar["LogShipper | None"] = ContextVar("medkiosk_log_shipper", default=None)


def capture(_logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: hand a masked copy of the line to the running agent's shipper, if any."""
    shipper = _current.get()
    if shipper is not None:
        shipper.capture(method_name, event_dict)
    return event_dict


def install_capture() -> None:
    """Put :func:`capture` just before the renderer (so after masking) in structlog's processors."""
    processors = list(structlog.get_config()["processors"])
    if capture in processors:
        return
    processors.insert(max(len(processors) - 1, 0), capture)
    structlog.configure(processors=processors)


class ShipperContext:
    """ASGI middleware: requests served by this agent log into its shipper."""

    def __init__(self, app: Any, shipper: "LogShipper") -> None:
        self.app = app
        self.shipper = shipper

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        token = _current.set(self.shipper)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


class LogShipper:
    def __init__(self, client: ServiceClient, *, period: float = 10.0, batch_lines: int = 200,
                 buffer_lines: int = 5000, level: str = "info") -> None:
        self.client = client
        self.period = period
        self.batch_lines = batch_lines
        self.level = LEVELS.get(level.lower(), 20)
        self._buffer: deque[dict[str, Any]] = deque(maxlen=buffer_lines)
        self._batch: tuple[str, list[dict[str, Any]]] | None = None
        self.dropped = 0
        self.shipped = 0
        self.session_id: str | None = None
        self._failures = 0

    def bind(self) -> None:
        """Make this shipper the current one for the calling context (and tasks started from it)."""
        _current.set(self)

    # -- capture ---------------------------------------------------------------------------------------
    def capture(self, method_name: str, event_dict: dict[str, Any]) -> None:
        level = str(event_dict.get("level") or method_name or "info").lower()
        if LEVELS.get(level, 20) < self.level:
            return
        line = mask_personal_data(None, method_name, dict(event_dict))
        line["level"] = "error" if level == "exception" else level
        line.setdefault("timestamp", datetime.now(timezone.utc).isoformat())
        if self.session_id and "session_id" not in line:
            line["session_id"] = self.session_id
        line.pop("exc_info", None)
        try:
            frozen = json.loads(json.dumps(line, default=str, ensure_ascii=False))
        except (TypeError, ValueError):
            frozen = {"event": str(line.get("event", "")), "level": line["level"], "timestamp": line["timestamp"],
                      "unserialisable": True}
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(frozen)

    def note_outcome(self, outcome: Any) -> None:
        """The page got an identification outcome: later lines carry its session id."""
        if isinstance(outcome, dict) and isinstance(outcome.get("session"), dict):
            session_id = outcome["session"].get("session_id")
            if isinstance(session_id, str) and session_id:
                self.session_id = session_id[:64]

    def session_ended(self) -> None:
        self.session_id = None

    @property
    def pending(self) -> int:
        return len(self._buffer) + (len(self._batch[1]) if self._batch else 0)

    # -- shipping --------------------------------------------------------------------------------------
    def ship_once(self) -> int:
        """Send one batch (the unacknowledged one first); returns the lines acknowledged."""
        if self._batch is None:
            if not self._buffer:
                return 0
            lines = [self._buffer.popleft() for _ in range(min(self.batch_lines, len(self._buffer)))]
            self._batch = (uuid.uuid4().hex, lines)
        batch_id, lines = self._batch
        try:
            response = self.client.post("/api/device/logs", {"batch_id": batch_id, "lines": lines})
        except ServiceUnavailable:
            self._failures += 1
            return 0
        if response.status_code >= 500 or response.status_code in (401, 408, 429):
            self._failures += 1
            return 0
        # 2xx: stored (or a duplicate of a batch already stored); another 4xx: the batch itself is
        # unacceptable, and retrying it forever would block every later line.
        self._batch = None
        self._failures = 0
        if response.status_code >= 400:
            return 0
        self.shipped += len(lines)
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            log.warning("log_lines_dropped", lines=dropped)
        return len(lines)

    def flush(self, max_batches: int = 100) -> int:
        """Ship until the buffer is empty or a batch fails."""
        total = 0
        for _ in range(max_batches):
            if self.pending == 0:
                break
            sent = self.ship_once()
            if sent == 0 and self._batch is not None:
                break
            total += sent
        return total

    async def run(self) -> None:
        while True:
            delay = self.period * min(2 ** self._failures, 12)  # back off while the service is away
            await asyncio.sleep(delay)
            try:
                await asyncio.to_thread(self.flush)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - shipping must never stop the agent
                self._failures += 1
