"""The 80 mm receipt printer over ESC/POS (python-escpos): status from the printer, jobs as one write.

Paper and health come from the printer's own real-time status (``DLE EOT n``), read with
python-escpos's ``is_online()`` and ``paper_status()``; when the printer says it is offline we
ask it why (``DLE EOT 2``, and ``DLE EOT 3`` for errors). The simulated printer answers the
same queries from its settable state, so both go through :func:`read_printer_status`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import datetime

from escpos.constants import DLE, EOT
from escpos.escpos import Escpos
from escpos.printer import Dummy

from medkiosk.agent.documents import Receipt, render_escpos
from medkiosk.agent.drivers.base import (
    PaperLevel,
    PeripheralError,
    PeripheralState,
    PeripheralStatus,
    PrinterNotReady,
    PrintJob,
)

RT_OFFLINE_CAUSE = DLE + EOT + b"\x02"
RT_ERROR_CAUSE = DLE + EOT + b"\x03"
CAUSE_COVER_OPEN = 0x04
CAUSE_PAPER_END = 0x20
CAUSE_ERROR = 0x40
ERROR_CUTTER = 0x08
ERROR_UNRECOVERABLE = 0x20
ERROR_AUTO_RECOVERABLE = 0x40

_PAPER = {0: PaperLevel.OUT, 1: PaperLevel.LOW, 2: PaperLevel.OK}


def _first(reply: bytes) -> int | None:
    return reply[0] if reply else None


def read_printer_status(printer: Escpos, extra: dict | None = None) -> PeripheralStatus:
    """Ask the printer itself how it is (ESC/POS real-time status)."""
    extra = dict(extra or {})
    if not printer.is_online():
        cause = _first(printer.query_status(RT_OFFLINE_CAUSE))
        if cause is None:
            return PeripheralStatus(state=PeripheralState.OFFLINE, detail="小票打印机无应答", extra=extra)
        if cause & CAUSE_COVER_OPEN:
            return PeripheralStatus(state=PeripheralState.FAULT, detail="小票打印机纸仓盖打开",
                                    extra={**extra, "cover_open": True})
        if cause & CAUSE_PAPER_END:
            return PeripheralStatus(state=PeripheralState.FAULT, detail="小票打印机缺纸",
                                    extra={**extra, "paper": PaperLevel.OUT.value})
        if cause & CAUSE_ERROR:
            error = _first(printer.query_status(RT_ERROR_CAUSE)) or 0
            if error & ERROR_CUTTER:
                detail = "小票打印机切刀故障"
            elif error & ERROR_UNRECOVERABLE:
                detail = "小票打印机不可恢复错误，需要维修"
            elif error & ERROR_AUTO_RECOVERABLE:
                detail = "小票打印机打印头过热，稍后自动恢复"
            else:
                detail = "小票打印机报告错误"
            return PeripheralStatus(state=PeripheralState.FAULT, detail=detail, extra={**extra, "error": error})
        return PeripheralStatus(state=PeripheralState.FAULT, detail="小票打印机处于离线状态", extra=extra)
    paper = _PAPER.get(printer.paper_status(), PaperLevel.OUT)
    extra["paper"] = paper.value
    if paper is PaperLevel.OUT:
        return PeripheralStatus(state=PeripheralState.FAULT, detail="小票打印机缺纸", extra=extra)
    if paper is PaperLevel.LOW:
        return PeripheralStatus(state=PeripheralState.WARNING, detail="小票纸即将用完，请及时更换", extra=extra)
    return PeripheralStatus(state=PeripheralState.OK, detail="小票打印机正常", extra=extra)


def refusal_for(status: PeripheralStatus, printer_label: str = "打印机") -> PrinterNotReady:
    """The patient-facing refusal for a printer that cannot print now."""
    if status.extra.get("paper") == PaperLevel.OUT.value:
        message = f"{printer_label}缺纸，请到人工窗口办理"
    elif status.state is PeripheralState.OFFLINE:
        message = f"{printer_label}暂时无法使用，请到人工窗口办理"
    else:
        message = f"{printer_label}故障，请到人工窗口办理"
    return PrinterNotReady(message, "工作人员会尽快处理，您可以到人工窗口打印", detail=status.detail)


def refuse_unless_pdf_printable(pdf: bytes, status: PeripheralStatus) -> None:
    """Before an A4 job (CUPS or simulated): the body must be a PDF and the printer able to print."""
    if not pdf.startswith(b"%PDF-"):
        raise PeripheralError("打印内容有误，请到人工窗口办理", detail="not a PDF")
    if not status.can_work:
        raise refusal_for(status, "A4打印机")


def render_job_bytes(receipt: Receipt, *, profile: str | None, chinese_mode: bool, native_qr: bool,
                     columns: int) -> bytes:
    """The exact ESC/POS bytes of one job, captured with python-escpos's Dummy printer."""
    job = Dummy(profile=profile)
    render_escpos(receipt, job, chinese_mode=chinese_mode, native_qr=native_qr, columns=columns)
    return job.output


class CheckedReceiptPrinter:
    """What every ESC/POS receipt printer does before a job: ask the printer, refuse if it cannot print.

    Subclasses provide ``_lock``, the rendering options and ``_status_locked()`` (the printer's own
    real-time status, read under the lock).
    """

    _lock: threading.Lock

    def _status_locked(self) -> PeripheralStatus:
        raise NotImplementedError

    def status(self) -> PeripheralStatus:
        with self._lock:
            return self._status_locked()

    def _render(self, receipt: Receipt) -> bytes:
        return render_job_bytes(receipt, profile=self._profile, chinese_mode=self._chinese_mode,
                                native_qr=self._native_qr, columns=self._columns)

    def _refuse_unless_ready(self) -> None:
        """Call with the lock held: the status read and the job's write must not interleave."""
        status = self._status_locked()
        if not status.can_work:
            raise refusal_for(status, "小票打印机")


class EscposReceiptPrinter(CheckedReceiptPrinter):
    """A real ESC/POS printer. ``connect`` builds the python-escpos printer (Usb, Serial or Network)."""

    def __init__(self, connect: Callable[[], Escpos], *, describe: str, profile: str | None = None,
                 chinese_mode: bool = True, native_qr: bool = True, columns: int = 48) -> None:
        self._connect = connect
        self._describe = describe
        self._profile = profile
        self._chinese_mode = chinese_mode
        self._native_qr = native_qr
        self._columns = columns
        self._printer: Escpos | None = None
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)

    def _extra(self) -> dict:
        return {"driver": "escpos", "connection": self._describe}

    def _device(self) -> Escpos:
        if self._printer is None:
            self._printer = self._connect()
        return self._printer

    def _drop(self) -> None:
        """Forget a broken connection: the next call opens a fresh one."""
        printer, self._printer = self._printer, None
        if printer is not None:
            try:
                printer.close()
            except Exception:  # noqa: BLE001 - closing a broken link may fail in any way
                pass

    def _status_locked(self) -> PeripheralStatus:
        try:
            return read_printer_status(self._device(), self._extra())
        except PeripheralError as exc:
            self._drop()
            return PeripheralStatus(state=PeripheralState.OFFLINE, detail=exc.detail or exc.message,
                                    extra=self._extra())
        except Exception as exc:  # noqa: BLE001 - USB, serial and socket errors have no common base
            self._drop()
            return PeripheralStatus(state=PeripheralState.OFFLINE, detail=f"小票打印机连接失败：{exc}",
                                    extra=self._extra())

    def print_receipt(self, receipt: Receipt) -> PrintJob:
        data = self._render(receipt)
        with self._lock:
            self._refuse_unless_ready()
            try:
                self._device()._raw(data)  # one write: a job is never interleaved with a status query
            except Exception as exc:  # noqa: BLE001
                self._drop()
                raise PeripheralError("小票打印失败，请到人工窗口办理", detail=f"write failed: {exc}") from exc
        job_id = receipt.job_id or f"receipt-{next(self._sequence)}"
        return PrintJob(job_id=job_id, kind="receipt", printed_at=datetime.now().astimezone(), title=receipt.title)
