"""The identification loop: reads from the agent's own readers go to the service; its answer to the page.

Identity reaches the service only from here, never from the page: the page can wait for an
outcome and can answer the service's phone question for a pending identification, nothing more.
A ``needs_phone`` outcome carries a ``pending`` token that the agent keeps and the page never sees.

The scanner also reads wallets' payment codes. They are money, not identity, and never go to the
identify endpoint: while the page waits for a payment (its long-poll names the order), a payment
code becomes a ``payment_code`` outcome for that order; at any other time it is answered with a
short-lived error telling the patient to choose the bill first.

The exam appointment slip's QR code (``EXAM:<order_no>``) is not identity either: it is printed
paper with a predictable number, so anyone holding it (or a copy) could become its patient. It is
answered, like an unexpected payment code, with a short-lived error saying how to identify and
that 报到 then lists the exam; it never reaches the service or the insurance platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from medkiosk.agent.client import ServiceClient, ServiceUnavailable
from medkiosk.agent.drivers.base import Medium, MediumRead, Reader, ScanRead
from medkiosk.domain.masking import mask_card, mask_name
from medkiosk.logging import get_logger

log = get_logger("medkiosk.agent.identification")

OUTCOME_TTL_SECONDS = 60.0  # an outcome nobody collected within this is stale: the patient has gone

UNREACHABLE = {"outcome": "error", "message": "暂时无法连接医院服务，请稍后再试",
               "next_step": "请稍后重新刷卡，或到人工窗口办理"}
UNEXPECTED = {"outcome": "error", "message": "身份识别暂时无法完成", "next_step": "请稍后重新刷卡，或到人工窗口办理"}
OUTCOMES = {"identified", "refused", "needs_phone", "error"}

# Payment codes of the wallets the channel takes (docs/simulators/payment.md): WeChat 18 digits
# starting 10-15, Alipay 16-24 digits starting 25-30, UnionPay 19 digits starting 62. No
# e-certificate QR or visit card looks like this.
PAYMENT_CODE = re.compile(r"^(?:1[0-5]\d{16}|(?:2[5-9]|30)\d{14,22}|62\d{17})$")
# After the page's payment long-poll ends, a code read in the gap before its next poll still counts.
PAYMENT_CODE_GRACE_SECONDS = 3.0
# A payment code shown when no payment waits: tell the page that is open now, then forget it.
UNEXPECTED_CODE_TTL_SECONDS = 5.0
UNEXPECTED_PAYMENT_CODE = {"outcome": "error", "message": "这是手机付款码，现在还不需要付款",
                           "next_step": "请先识别身份，进入“门诊缴费”选择要缴的费用，在付款页面再出示付款码"}
# The exam appointment slip's QR (services/exams.py appointment_slip).
EXAM_SLIP_CODE = re.compile(r"^EXAM:[A-Za-z0-9_.-]{1,40}$")
EXAM_SLIP = {"outcome": "error", "message": "这是检查预约单上的二维码，不能用来识别身份",
             "next_step": "请插医保卡、放身份证或出示医保电子凭证，识别后选择“报到”，即可为预约的检查报到"}


def exam_slip_in(read: MediumRead) -> bool:
    """Whether the scanner read an exam appointment slip's QR code."""
    return isinstance(read, ScanRead) and bool(read.qrcode) and bool(EXAM_SLIP_CODE.match(read.qrcode.strip()))


def payment_code_in(read: MediumRead) -> str | None:
    """The digits of a wallet's payment code held to the scanner, if that is what was read."""
    if isinstance(read, ScanRead) and read.medium is Medium.E_CERTIFICATE and read.qrcode:
        code = read.qrcode.strip()
        if PAYMENT_CODE.match(code):
            return code
    return None


class OutcomeMailbox:
    """One slot for the latest outcome, collected by the page's long-poll."""

    def __init__(self, ttl: float = OUTCOME_TTL_SECONDS) -> None:
        self._ttl = ttl
        self._item: tuple[dict[str, Any], float] | None = None
        self._arrived = asyncio.Event()

    def post(self, outcome: dict[str, Any], ttl: float | None = None) -> None:
        """Leave an outcome for the next poll; it is stale after ``ttl`` (default: the mailbox's)."""
        self._item = (outcome, time.monotonic() + (self._ttl if ttl is None else ttl))
        self._arrived.set()

    def clear(self) -> None:
        self._item = None

    def wake(self) -> None:
        """Wake waiters without an outcome (shutting down)."""
        self._arrived.set()

    def _take(self) -> dict[str, Any] | None:
        if self._item is None:
            return None
        outcome, stale_at = self._item
        self._item = None
        return outcome if time.monotonic() <= stale_at else None

    async def take(self, timeout: float, gone: Callable[[], Awaitable[bool]] | None = None,
                   check_every: float = 1.0) -> dict[str, Any] | None:
        """The next outcome, or None after ``timeout``; stops early (taking nothing) if ``gone()``."""
        deadline = time.monotonic() + timeout
        while True:
            outcome = self._take()
            if outcome is not None:
                return outcome
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(remaining, check_every))
            # A poll whose page has gone must not take an outcome: it stays for the next poll.
            if gone is not None and await gone():
                return None


def _reply_outcome(payload: Any) -> dict[str, Any]:
    """The service's reply as an outcome; anything without one becomes an agent-made error."""
    if isinstance(payload, dict) and payload.get("outcome") in OUTCOMES:
        return payload
    if isinstance(payload, dict) and payload.get("message"):
        return {"outcome": "error", "message": payload["message"],
                "next_step": payload.get("next_step") or UNEXPECTED["next_step"]}
    return dict(UNEXPECTED)


class Identification:
    """Owns the readers' loop, the outcome mailbox and the pending token of a ``needs_phone``."""

    def __init__(self, readers: dict[str, Reader], client: ServiceClient, *,
                 payment_code_grace: float = PAYMENT_CODE_GRACE_SECONDS) -> None:
        self.readers = readers
        self.client = client
        self.mailbox = OutcomeMailbox()
        self._pending: str | None = None
        self._epoch = 0  # bumped when a session ends: replies to older reads are dropped
        self._events: asyncio.Queue[MediumRead] = asyncio.Queue()
        self._payment_order: str | None = None  # the order whose page waits for a payment code
        self._payment_polls = 0
        self._payment_until = 0.0
        self._payment_grace = payment_code_grace

    @property
    def has_pending(self) -> bool:
        return self._pending is not None

    # -- payment codes ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def expecting_payment_code(self, order_no: str):
        """While the page's long-poll for ``order_no`` is open (and a moment after), codes are for it."""
        if self._payment_order != order_no:
            self._payment_order, self._payment_polls, self._payment_until = order_no, 0, 0.0
        self._payment_polls += 1
        try:
            yield
        finally:
            if self._payment_order == order_no:
                self._payment_polls -= 1
                if self._payment_polls == 0:
                    self._payment_until = time.monotonic() + self._payment_grace

    @property
    def payment_order(self) -> str | None:
        """The order a payment code read now would pay, or None when no payment waits."""
        if self._payment_order is None:
            return None
        if self._payment_polls > 0 or time.monotonic() < self._payment_until:
            return self._payment_order
        return None

    async def next_outcome(self, timeout: float, gone: Callable[[], Awaitable[bool]] | None = None,
                           payment_order: str | None = None) -> dict[str, Any] | None:
        """The next outcome for a poll; a payment code goes only to the poll of the order it was read for."""
        deadline = time.monotonic() + timeout
        while True:
            outcome = await self.mailbox.take(max(0.0, deadline - time.monotonic()), gone)
            if outcome is None or outcome.get("outcome") != "payment_code":
                return outcome
            if payment_order is not None and outcome.get("order_no") == payment_order:
                return outcome
            log.info("payment_code_dropped", reason="read for another order", order_no=outcome.get("order_no"))
            if time.monotonic() >= deadline:
                return None

    async def run(self) -> None:
        """Run until cancelled: one task per reader feeds a queue handled in order."""
        async with asyncio.TaskGroup() as group:
            for name, reader in self.readers.items():
                group.create_task(self._watch(name, reader), name=f"reader:{name}")
            group.create_task(self._consume(), name="identify")

    async def _watch(self, name: str, reader: Reader) -> None:
        while True:
            try:
                read = await reader.next_read()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a flaky reader must not stop the others
                log.exception("reader_failed", reader=name)
                await asyncio.sleep(1.0)
                continue
            await self._events.put(read)

    async def _consume(self) -> None:
        while True:
            read = await self._events.get()
            try:
                await self.identify(read)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep identifying the next patient whatever happened
                log.exception("identify_crashed", medium=read.medium.value)
                self.mailbox.post(dict(UNEXPECTED))

    async def identify(self, read: MediumRead) -> dict[str, Any]:
        code = payment_code_in(read)
        if code is not None:
            return self._payment_code(code)
        if exam_slip_in(read):
            log.info("exam_slip_scanned")
            outcome = dict(EXAM_SLIP)
            self.mailbox.post(outcome, ttl=UNEXPECTED_CODE_TTL_SECONDS)
            return outcome
        epoch = self._epoch
        log.info("medium_read", **read.masked())
        outcome = await self._call("/api/device/identify", read.identify_body(), medium=read.medium.value)
        if epoch != self._epoch:
            log.info("identify_reply_dropped", reason="session ended meanwhile", medium=read.medium.value)
            return outcome
        outcome = self._keep_pending(outcome)
        self.mailbox.post(outcome)
        return outcome

    async def answer_phone(self, phone: str) -> dict[str, Any] | None:
        """Complete a ``needs_phone`` identification; None when there is nothing pending."""
        if self._pending is None:
            return None
        epoch = self._epoch
        outcome = await self._call("/api/device/identify/phone", {"pending": self._pending, "phone": phone},
                                   medium="phone")
        if epoch != self._epoch:  # the page ended the session while the service answered
            return None
        return self._keep_pending(outcome)

    def _payment_code(self, code: str) -> dict[str, Any]:
        order_no = self.payment_order
        if order_no is None:
            log.info("payment_code_unexpected", code=mask_card(code))
            outcome = dict(UNEXPECTED_PAYMENT_CODE)
            self.mailbox.post(outcome, ttl=UNEXPECTED_CODE_TTL_SECONDS)
            return outcome
        log.info("payment_code_read", code=mask_card(code), order_no=order_no)
        outcome = {"outcome": "payment_code", "auth_code": code, "order_no": order_no}
        self.mailbox.post(outcome)
        return outcome

    def session_ended(self) -> None:
        self._epoch += 1
        self._pending = None
        self._payment_order, self._payment_polls, self._payment_until = None, 0, 0.0
        self.mailbox.clear()
        while not self._events.empty():
            self._events.get_nowait()
        for name, reader in self.readers.items():
            try:
                reader.release()
            except Exception:  # noqa: BLE001
                log.exception("reader_release_failed", reader=name)

    def _keep_pending(self, outcome: dict[str, Any]) -> dict[str, Any]:
        kind = outcome.get("outcome")
        if kind == "needs_phone":
            outcome = dict(outcome)
            token = outcome.pop("pending", None)
            if token:
                self._pending = str(token)
            log.info("identify_needs_phone", masked_name=mask_name(str(outcome.get("masked_name", ""))))
        elif kind in ("identified", "refused"):
            self._pending = None
        # "error" keeps any pending token: the patient may try the phone again.
        return outcome

    async def _call(self, path: str, body: dict[str, Any], *, medium: str) -> dict[str, Any]:
        try:
            response = await asyncio.to_thread(self.client.post, path, body)
        except ServiceUnavailable as exc:
            log.warning("identify_unreachable", medium=medium, error=str(exc))
            return dict(UNREACHABLE)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code == 401:
            log.warning("service_refused_device", path=path, reply=response.text[:200])
        outcome = _reply_outcome(payload)
        (log.warning if response.status_code >= 400 else log.info)(
            "identify_outcome", medium=medium, status=response.status_code, outcome=outcome.get("outcome"))
        return outcome
