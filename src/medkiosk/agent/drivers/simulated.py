"""Simulated peripherals: the demo panel plays patient and engineer, the rest behaves like hardware.

Readers deliver what the demo endpoints present. The receipt printer renders real ESC/POS bytes
and answers real-time status queries from its settable state, so paper low/out reach the agent
the same way they do from a real printer. The A4 printer keeps the PDFs; the POS approves or
declines on demand.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Generic, TypeVar

from escpos.constants import DLE, EOT
from escpos.printer import Dummy

from medkiosk.agent.documents import Receipt, render_text
from medkiosk.agent.drivers.base import (
    CardRead,
    IdCardRead,
    PaperLevel,
    PeripheralError,
    PeripheralState,
    PeripheralStatus,
    PosBatch,
    PosBatchLine,
    PosDeclined,
    PosKind,
    PosResult,
    PosSaleSettled,
    PosUnavailable,
    PrintJob,
    ScanRead,
)
from medkiosk.agent.drivers.escpos_printer import (
    CheckedReceiptPrinter,
    read_printer_status,
    refuse_unless_pdf_printable,
)

ReadT = TypeVar("ReadT", CardRead, IdCardRead, ScanRead)


class SimulatedReader(Generic[ReadT]):
    label = "读卡器"

    def __init__(self) -> None:
        self._reads: asyncio.Queue[ReadT] = asyncio.Queue()
        self._state = PeripheralState.OK
        self._detail = ""
        self.card_present = False

    def present(self, read: ReadT) -> None:
        """The demo panel puts a card on the reader (or a code under the scanner)."""
        if self._state in (PeripheralState.FAULT, PeripheralState.OFFLINE):
            raise PeripheralError(f"{self.label}暂时无法使用", "请换用其他方式或到人工窗口办理",
                                  detail=f"simulated {self._state.value}")
        self.card_present = True
        self._reads.put_nowait(read)

    async def next_read(self) -> ReadT:
        return await self._reads.get()

    def release(self) -> None:
        self.card_present = False
        while not self._reads.empty():
            self._reads.get_nowait()

    def set_state(self, state: PeripheralState, detail: str = "") -> None:
        self._state = state
        self._detail = detail

    def status(self) -> PeripheralStatus:
        detail = self._detail or {PeripheralState.OK: f"模拟{self.label}正常",
                                  PeripheralState.WARNING: f"模拟{self.label}需要注意",
                                  PeripheralState.FAULT: f"模拟{self.label}故障",
                                  PeripheralState.OFFLINE: f"模拟{self.label}离线"}[self._state]
        return PeripheralStatus(state=self._state, detail=detail,
                                extra={"driver": "simulated", "card_present": self.card_present})


class SimulatedInsuranceCardReader(SimulatedReader[CardRead]):
    label = "医保读卡器"


class SimulatedIdCardReader(SimulatedReader[IdCardRead]):
    label = "身份证阅读器"


class SimulatedQrScanner(SimulatedReader[ScanRead]):
    label = "扫码器"


@dataclass(frozen=True)
class Printout:
    """One simulated printout, as the demo panel lists it."""

    kind: str
    job_id: str
    title: str
    printed_at: datetime
    files: tuple[Path, ...]
    text: str = ""
    qr: tuple[str, ...] = ()
    pages: int | None = None

    def as_json(self) -> dict:
        return {"kind": self.kind, "job_id": self.job_id, "title": self.title,
                "printed_at": self.printed_at.isoformat(timespec="seconds"),
                "files": [str(p) for p in self.files], "text": self.text, "qr": list(self.qr), "pages": self.pages}


class _Outbox:
    """Where simulated printers put their output: files on disk, the last few in memory."""

    def __init__(self, folder: Path, keep: int) -> None:
        self.folder = folder
        self.recent: deque[Printout] = deque(maxlen=keep)
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()

    def stem(self, kind: str) -> tuple[str, Path]:
        with self._lock:
            n = next(self._sequence)
        self.folder.mkdir(parents=True, exist_ok=True)
        job_id = f"{kind}-{datetime.now():%Y%m%d-%H%M%S}-{n:04d}"
        return job_id, self.folder / job_id


class _RealtimeStatusDummy(Dummy):
    """A Dummy that answers ``DLE EOT n`` the way an Epson-compatible printer does."""

    def __init__(self) -> None:
        super().__init__()
        self.paper = PaperLevel.OK
        self.state = PeripheralState.OK
        self._replies: deque[bytes] = deque()

    def _answer(self, n: int) -> bytes:
        if self.state is PeripheralState.OFFLINE:
            return b""  # unplugged, powered off: nothing comes back
        paper_out = self.paper is PaperLevel.OUT
        fault = self.state is PeripheralState.FAULT
        near_end = self.paper is PaperLevel.LOW or self.state is PeripheralState.WARNING
        if n == 1:
            return bytes([0x12 | (0x08 if paper_out or fault else 0)])
        if n == 2:
            return bytes([0x12 | (0x20 if paper_out else 0) | (0x40 if fault else 0)])
        if n == 3:
            return bytes([0x12 | (0x08 if fault else 0)])  # a cutter error
        if n == 4:
            return bytes([0x12 | (0x0C if near_end or paper_out else 0) | (0x60 if paper_out else 0)])
        return b""

    def _raw(self, msg: bytes) -> None:
        if len(msg) == 3 and msg[:2] == DLE + EOT:
            self._replies.append(self._answer(msg[2]))
            return
        super()._raw(msg)

    def _read(self) -> bytes:
        return self._replies.popleft() if self._replies else b""


class SimulatedReceiptPrinter(CheckedReceiptPrinter):
    """Writes each job's ESC/POS bytes (``.bin``) and a plain-text rendering (``.txt``)."""

    def __init__(self, folder: Path, *, keep: int = 20, profile: str | None = None, chinese_mode: bool = True,
                 native_qr: bool = True, columns: int = 48) -> None:
        self.outbox = _Outbox(folder, keep)
        self._device = _RealtimeStatusDummy()
        self._profile = profile
        self._chinese_mode = chinese_mode
        self._native_qr = native_qr
        self._columns = columns
        self._lock = threading.Lock()
        self.last_bytes = b""

    def set_state(self, state: PeripheralState | None = None, paper: PaperLevel | None = None) -> None:
        with self._lock:
            if state is not None:
                self._device.state = state
            if paper is not None:
                self._device.paper = paper

    def _status_locked(self) -> PeripheralStatus:
        status = read_printer_status(self._device, {"driver": "simulated"})
        self._device.clear()
        return status

    def print_receipt(self, receipt: Receipt) -> PrintJob:
        data = self._render(receipt)
        with self._lock:
            self._refuse_unless_ready()
            job_id, stem = self.outbox.stem("receipt")
            text = render_text(receipt, self._columns)
            bin_path, txt_path = stem.with_suffix(".bin"), stem.with_suffix(".txt")
            bin_path.write_bytes(data)
            txt_path.write_text(text, encoding="utf-8")
            self.last_bytes = data
            printed = Printout("receipt", receipt.job_id or job_id, receipt.title, datetime.now().astimezone(),
                               (bin_path, txt_path), text=text, qr=tuple(receipt.qr_payloads))
            self.outbox.recent.append(printed)
        return PrintJob(printed.job_id, "receipt", printed.printed_at, receipt.title, printed.files)


_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


class SimulatedA4Printer:
    """Saves each PDF it is given; paper and state are set from the demo panel."""

    def __init__(self, folder: Path, *, keep: int = 20) -> None:
        self.outbox = _Outbox(folder, keep)
        self._state = PeripheralState.OK
        self._paper = PaperLevel.OK

    def set_state(self, state: PeripheralState | None = None, paper: PaperLevel | None = None) -> None:
        if state is not None:
            self._state = state
        if paper is not None:
            self._paper = paper

    def status(self) -> PeripheralStatus:
        extra = {"driver": "simulated", "paper": self._paper.value}
        if self._state is PeripheralState.OFFLINE:
            return PeripheralStatus(state=PeripheralState.OFFLINE, detail="A4打印机离线", extra=extra)
        if self._state is PeripheralState.FAULT:
            return PeripheralStatus(state=PeripheralState.FAULT, detail="A4打印机故障（卡纸）", extra=extra)
        if self._paper is PaperLevel.OUT:
            return PeripheralStatus(state=PeripheralState.FAULT, detail="A4打印机缺纸", extra=extra)
        if self._paper is PaperLevel.LOW or self._state is PeripheralState.WARNING:
            return PeripheralStatus(state=PeripheralState.WARNING, detail="A4纸即将用完，请及时补充", extra=extra)
        return PeripheralStatus(state=PeripheralState.OK, detail="A4打印机正常", extra=extra)

    def print_pdf(self, pdf: bytes, *, title: str = "") -> PrintJob:
        refuse_unless_pdf_printable(pdf, self.status())
        job_id, stem = self.outbox.stem("a4")
        path = stem.with_suffix(".pdf")
        path.write_bytes(pdf)
        printed = Printout("a4", job_id, title, datetime.now().astimezone(), (path,),
                           pages=len(_PDF_PAGE.findall(pdf)) or None)
        self.outbox.recent.append(printed)
        return PrintJob(job_id, "a4", printed.printed_at, title, (path,))


@dataclass
class SimulatedPos:
    """A bank POS (银行MIS) that approves, or declines with a reason when told to.

    Each (kind, order number) is answered once: a repeat returns the first result, so a retried
    sale never charges twice. Transactions go into the open batch until :meth:`settle` closes it;
    the settled batches are kept (``batches``), and a sale in one of them can no longer be voided,
    only refunded — as on a real terminal.
    """

    decline: bool = False
    decline_reason: str = "交易被拒绝：余额不足"
    lose_next_reply: bool = False
    sale_seconds: float = 0.0  # how long the patient takes at the terminal (card, PIN)
    state: PeripheralState = PeripheralState.OK
    terminal_id: str = "00000001"
    journal: dict[tuple[PosKind, str], PosResult] = field(default_factory=dict)
    open_batch: list[PosBatchLine] = field(default_factory=list)
    batches: list[PosBatch] = field(default_factory=list)
    next_batch_no: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_decline(self, decline: bool, reason: str | None = None) -> None:
        self.decline = decline
        if reason:
            self.decline_reason = reason

    def set_state(self, state: PeripheralState) -> None:
        self.state = state

    def status(self) -> PeripheralStatus:
        detail = {PeripheralState.OK: "银行POS正常", PeripheralState.WARNING: "银行POS需要注意",
                  PeripheralState.FAULT: "银行POS故障", PeripheralState.OFFLINE: "银行POS离线"}[self.state]
        return PeripheralStatus(state=self.state, detail=detail, extra={"driver": "simulated"})

    def _sales(self) -> dict[str, PosResult]:
        return {r.reference: r for (kind, _), r in self.journal.items() if kind is PosKind.SALE}

    def _transact(self, kind: PosKind, order_no: str, amount: Decimal, original: str | None = None) -> PosResult:
        with self._lock:
            if (kind, order_no) in self.journal:
                return self.journal[(kind, order_no)]
            if self.state in (PeripheralState.FAULT, PeripheralState.OFFLINE):
                raise PosUnavailable("银行卡终端暂时无法使用", "请换用扫码支付或到人工窗口办理",
                                     detail=f"simulated {self.state.value}")
            if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
                raise PosDeclined("金额有误", "请到人工窗口办理", detail=f"bad amount {amount}")
            if original is not None:
                sale = self._sales().get(original)
                if sale is None:
                    raise PosDeclined("原交易不存在", "请到人工窗口办理", detail=f"no sale {original}")
                if amount > sale.amount:
                    raise PosDeclined("退款金额超过原交易金额", "请到人工窗口办理")
                if kind is PosKind.VOID and not any(
                        line.kind is PosKind.SALE and line.reference == original for line in self.open_batch):
                    raise PosSaleSettled("原交易已结算，不能撤销，请做退货", "请用退货退款",
                                         detail=f"sale {original} is not in the open batch")
            if self.decline:
                raise PosDeclined(self.decline_reason, "请换一张银行卡或换用扫码支付")
            result = PosResult(kind=kind, order_no=order_no, amount=amount, reference=secrets.token_hex(6).upper(),
                               original_reference=original, approved_at=datetime.now().astimezone())
            self.journal[(kind, order_no)] = result
            self.open_batch.append(PosBatchLine(reference=result.reference, kind=kind, amount=amount, key=order_no,
                                                original_reference=original, approved_at=result.approved_at))
            return result

    def set_lose_next_reply(self, lose: bool = True) -> None:
        """The next transaction goes through at the bank but its answer never reaches the agent."""
        self.lose_next_reply = lose

    def sale(self, amount: Decimal, order_no: str) -> PosResult:
        if self.sale_seconds:
            time.sleep(self.sale_seconds)
        result = self._transact(PosKind.SALE, order_no, amount)
        if self.lose_next_reply:
            self.lose_next_reply = False
            raise PosUnavailable("银行卡终端无响应", "请勿重复刷卡，正在确认交易结果", detail="simulated lost reply")
        return result

    def query(self, order_no: str) -> PosResult | None:
        if self.state in (PeripheralState.FAULT, PeripheralState.OFFLINE):
            raise PosUnavailable("银行卡终端暂时无法使用", "请稍后", detail=f"simulated {self.state.value}")
        with self._lock:
            return next((r for (_, key), r in self.journal.items() if key == order_no), None)

    def void(self, reference: str, order_no: str) -> PosResult:
        sale = self._sales().get(reference)
        return self._transact(PosKind.VOID, order_no, sale.amount if sale else Decimal("0.01"), reference)

    def refund(self, amount: Decimal, reference: str, order_no: str) -> PosResult:
        return self._transact(PosKind.REFUND, order_no, amount, reference)

    def settle(self) -> PosBatch:
        with self._lock:
            if self.state in (PeripheralState.FAULT, PeripheralState.OFFLINE):
                raise PosUnavailable("银行卡终端暂时无法结算", "请稍后", detail=f"simulated {self.state.value}")
            batch = PosBatch.close(f"{self.next_batch_no:06d}", self.terminal_id, datetime.now().astimezone(),
                                   list(self.open_batch))
            self.batches.append(batch)
            self.open_batch.clear()
            self.next_batch_no += 1
            return batch
