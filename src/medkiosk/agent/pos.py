"""The kiosk's bank POS (银行MIS) in a payment: the sale the patient makes, the voids and refunds
the service asks for when a card payment is unwound, and the terminal's daily settlement (批结算).

The service never talks to the POS; the agent does, and reports each outcome to the service
(``POST /api/device/pos/reports``). Every outcome is written to a small outbox file before it is
reported and removed only once the service has it, so a report lost with the network or an agent
restart is sent again: a card charged is never forgotten. A sale whose outcome the POS did not
give (it stopped answering) is asked for again (``query``) until it is known.

Once a day, at ``bank_pos_settle_at`` hospital time, the agent settles the POS: the terminal
closes its open batch and lists it, and the batch goes through the same outbox to the service
(``POST /api/device/pos/batches``) for the daily reconciliation. The day last settled is kept on
disk, so a restart never settles twice and a settlement missed while the agent was down is made
at its next round (for the day it was due).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from medkiosk.agent.client import ServiceClient, ServiceUnavailable
from medkiosk.agent.drivers.base import BankPos, PosBatch, PosDeclined, PosResult, PosSaleSettled, PosUnavailable
from medkiosk.agent.drivers.unconfigured import NotConfiguredPos
from medkiosk.logging import get_logger

log = get_logger("medkiosk.agent.pos")

REPORTS = "/api/device/pos/reports"
TASKS = "/api/device/pos/tasks"
BATCHES = "/api/device/pos/batches"
SETTLE_RETRY_SECONDS = 60.0
"""A settlement the POS could not make (busy, not answering) is tried again after this long."""


class PosRefused(Exception):
    """The sale cannot start: what the page shows (nothing was charged)."""

    def __init__(self, message: str, next_step: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.next_step = next_step
        self.status = status


class Outbox:
    """POS outcomes not yet acknowledged by the service, one JSON object per key, kept on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        return json.loads(self.path.read_text(encoding="utf-8") or "{}")

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.path)  # atomic: a crash leaves the old file or the new one

    def put(self, report: dict[str, Any]) -> None:
        with self._lock:
            entries = self._read()
            entries[report["key"]] = report
            self._write(entries)

    def remove(self, key: str) -> None:
        with self._lock:
            entries = self._read()
            if entries.pop(key, None) is not None:
                self._write(entries)

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._read().values())


def _approved(key: str, result: PosResult) -> dict[str, Any]:
    # The kind the POS made, which for a void refused after settlement is the refund made instead.
    return {"key": key, "kind": result.kind.value, "status": "approved", "amount": str(result.amount),
            "reference": result.reference, "approved_at": result.approved_at.isoformat()}


def settlement_day(now: dt.datetime, settle_at: str, tz: dt.tzinfo) -> dt.date:
    """The hospital day whose settlement time (``HH:MM``) is the latest one at or before ``now``."""
    hour, minute = (int(part) for part in settle_at.split(":"))
    local = now.astimezone(tz)
    due = dt.datetime.combine(local.date(), dt.time(hour, minute), tz)
    return local.date() if local >= due else local.date() - dt.timedelta(days=1)


def batch_entry(batch: PosBatch, business_date: dt.date) -> dict[str, Any]:
    """A settled batch as the outbox keeps it and the service is sent it."""
    body = {**batch.model_dump(mode="json"), "business_date": business_date.isoformat()}
    return {"key": f"batch:{batch.terminal_id}:{batch.batch_no}:{batch.settled_at.isoformat()}", "kind": "batch",
            "status": "settled", "batch": body}


class PosTerminal:
    def __init__(self, pos: BankPos, client: ServiceClient, outbox: Outbox, *, period: float = 5.0,
                 settle_at: str = "23:30", tz: dt.tzinfo = ZoneInfo("Asia/Shanghai"),
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        self.pos = pos
        self.client = client
        self.outbox = outbox
        self.period = period
        self.settle_at = settle_at
        self.tz = tz
        self._now = now
        self._settled_file = outbox.path.with_name("pos-settled.json")
        self._settle_retry_at = 0.0
        self._busy = threading.Lock()  # one POS transaction at a time

    # -- the patient's sale ---------------------------------------------------------------------
    def sale(self, order_no: str) -> tuple[int, Any]:
        """Charge the cash part of ``order_no`` on the card in the POS; returns the service's reply."""
        order = self._order(order_no)
        pos = order.get("pos") if isinstance(order, dict) else None
        if not pos or order.get("state") != "awaiting_payment":
            raise PosRefused("这笔缴费现在不能用银行卡支付。", "请返回重新选择支付方式")
        trade_no, amount = pos["trade_no"], Decimal(pos["amount"])
        if not self._busy.acquire(blocking=False):
            raise PosRefused("银行卡终端正在处理上一笔交易。", "请稍候")
        try:
            try:
                status = self.pos.status()
                if status.state.value in ("fault", "offline"):  # it cannot have charged anything
                    raise PosDeclined(f"银行卡终端暂时无法使用（{status.detail}）", "请换用扫码支付或到人工窗口办理")
                result = self.pos.sale(amount, trade_no)
                report = _approved(trade_no, result)
            except PosDeclined as exc:
                report = {"key": trade_no, "kind": "sale", "status": "declined", "message": exc.message}
            except PosUnavailable as exc:
                report = {"key": trade_no, "kind": "sale", "status": "unknown", "message": exc.message}
        finally:
            self._busy.release()
        self.outbox.put(report)
        log.info("pos.sale", order_no=order_no, status=report["status"], amount=str(amount))
        return self._report(report)

    def _order(self, order_no: str) -> Any:
        try:
            response = self.client.get(f"/api/kiosk/payments/{order_no}")
        except ServiceUnavailable as exc:
            raise PosRefused("暂时无法连接医院服务，未扣款。", "请稍后再试，或到人工窗口办理", 502) from exc
        if response.status_code != 200:
            raise PosRefused("没有找到这笔缴费。", "请返回重新办理", response.status_code)
        return response.json()

    # -- reporting ------------------------------------------------------------------------------
    def _report(self, report: dict[str, Any]) -> tuple[int, Any]:
        """Send one outcome; drop it from the outbox once the service has it (or refuses it for good)."""
        if report["status"] == "unknown":
            return 202, {"state": "awaiting_payment", "pos_pending": True, "message": report.get("message", ""),
                         "next_step": "正在向银行卡终端确认交易结果，请稍候；请勿重复刷卡"}
        response = self._deliver(REPORTS, report["key"], report)
        if response is None:
            return 202, {"state": "awaiting_payment", "pos_pending": True,
                         "next_step": "交易结果正在发送给医院服务，请稍候；请勿重复刷卡"}
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"message": "医院服务返回了无法识别的结果", "next_step": "请到人工窗口咨询"}

    def _deliver(self, path: str, key: str, body: dict[str, Any]) -> httpx.Response | None:
        """POST one outbox entry; drop it once the service has it (or refuses it for good). None: unsent."""
        try:
            response = self.client.post(path, json=body)
        except ServiceUnavailable as exc:
            log.warning("pos.report_unsent", key=key, error=str(exc))
            return None
        if response.status_code == 200 or 400 <= response.status_code < 500 and response.status_code not in (409, 429):
            self.outbox.remove(key)
            if response.status_code != 200:
                log.error("pos.report_refused", key=key, status=response.status_code, reply=response.text[:200])
        return response

    def resolve_unknown(self, report: dict[str, Any]) -> dict[str, Any]:
        """Ask the POS again what became of a transaction it did not answer for."""
        try:
            result = self.pos.query(report["key"])
        except PosUnavailable:
            return report
        if result is None:
            if report["kind"] == "sale":
                resolved = {**report, "status": "declined", "message": "银行卡终端未完成交易"}
            else:
                return report  # a void/refund not made: the task is fetched and tried again
        else:
            resolved = _approved(report["key"], result)
        self.outbox.put(resolved)
        return resolved

    # -- the background round -------------------------------------------------------------------
    def round(self) -> None:
        """Settle when it is time, send what is unsent, then carry out the voids and refunds the service asks for."""
        self.settle_if_due()
        for report in self.outbox.pending():
            if report["kind"] == "batch":
                self._deliver(BATCHES, report["key"], report["batch"])
                continue
            if report["status"] == "unknown":
                report = self.resolve_unknown(report)
            if report["status"] != "unknown":
                self._report(report)
        try:
            response = self.client.get(TASKS)
        except ServiceUnavailable:
            return
        if response.status_code != 200:
            return
        for task in response.json().get("tasks", []):
            self._give_back(task)

    def _give_back(self, task: dict[str, Any]) -> None:
        key, kind = task["key"], task["kind"]
        if not self._busy.acquire(blocking=False):
            return  # a patient is using the POS: next round
        try:
            if kind == "void":
                try:
                    result = self.pos.void(task["reference"], key)
                except PosSaleSettled:
                    # Settled between the sale and the void (the settlement may run before the hospital's
                    # day ends, when the service still asks for a void): the money goes back as a refund.
                    log.info("pos.void_after_settlement", key=key)
                    result = self.pos.refund(Decimal(task["amount"]), task["reference"], key)
            else:
                result = self.pos.refund(Decimal(task["amount"]), task["reference"], key)
            report = _approved(key, result)
        except PosDeclined as exc:
            report = {"key": key, "kind": kind, "status": "declined", "message": exc.message}
        except PosUnavailable as exc:
            report = {"key": key, "kind": kind, "status": "unknown", "message": exc.message}
        finally:
            self._busy.release()
        self.outbox.put(report)
        log.info("pos.give_back", key=key, kind=kind, status=report["status"])
        if report["status"] != "unknown":
            self._report(report)

    # -- the daily settlement (批结算) ------------------------------------------------------------
    def settle_if_due(self) -> dict[str, Any] | None:
        """Settle the POS once per hospital day, at the first round after ``settle_at``."""
        if isinstance(self.pos, NotConfiguredPos) or time.monotonic() < self._settle_retry_at:
            return None
        day = settlement_day(self._now(), self.settle_at, self.tz)
        last = self._last_settled()
        if last is None:
            # A new agent starts counting here: what is open on the POS is settled at the next settle_at.
            self._mark_settled(day)
            return None
        if last >= day:
            return None
        entry = self.settle(business_date=day)
        if entry is None:
            self._settle_retry_at = time.monotonic() + SETTLE_RETRY_SECONDS
        return entry

    def settle(self, *, business_date: dt.date | None = None, wait: float = 0.0) -> dict[str, Any] | None:
        """Close the POS's open batch now and keep it in the outbox until the service has it (sent at
        the next round); returns the outbox entry, or None when the POS could not settle now.

        ``business_date`` is the hospital day the batch closes (default: today's, for a settlement
        made by hand); a scheduled settlement marks that day done.
        """
        acquired = self._busy.acquire(timeout=wait) if wait else self._busy.acquire(blocking=False)
        if not acquired:  # a patient is paying: not in the middle of their sale
            log.info("pos.settle_deferred", reason="busy")
            return None
        try:
            batch = self.pos.settle()
        except (PosUnavailable, PosDeclined) as exc:
            log.warning("pos.settle_failed", error=exc.detail or exc.message)
            return None
        finally:
            self._busy.release()
        day = business_date or self._now().astimezone(self.tz).date()
        entry = batch_entry(batch, day)
        self.outbox.put(entry)  # before anything else: the batch is on disk before the day counts as settled
        if business_date is not None:
            self._mark_settled(business_date)
        log.info("pos.settled", batch_no=batch.batch_no, terminal_id=batch.terminal_id, day=day.isoformat(),
                 lines=len(batch.lines), net=str(batch.net_amount))
        return entry

    def _last_settled(self) -> dt.date | None:
        try:
            return dt.date.fromisoformat(json.loads(self._settled_file.read_text(encoding="utf-8"))["day"])
        except FileNotFoundError:
            return None

    def _mark_settled(self, day: dt.date) -> None:
        self._settled_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._settled_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"day": day.isoformat()}), encoding="utf-8")
        tmp.replace(self._settled_file)

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.round)
            except Exception:  # noqa: BLE001 - the loop must outlive one bad round
                log.exception("pos.round_failed")
            await asyncio.sleep(self.period)
