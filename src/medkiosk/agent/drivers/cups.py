"""The A4 printer through CUPS: ``lp`` prints a PDF, ``lpstat`` says how the printer is.

CUPS reports a printer's condition as IPP ``printer-state-reasons`` (``media-empty-error``,
``toner-low-warning`` …), which ``lpstat -l -p`` prints on its ``Alerts:`` line.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

from medkiosk.agent.drivers.base import (
    PaperLevel,
    PeripheralError,
    PeripheralState,
    PeripheralStatus,
    PrintJob,
)
from medkiosk.agent.drivers.escpos_printer import refuse_unless_pdf_printable

_REQUEST_ID = re.compile(r"request id is (\S+)")

# printer-state-reasons keywords (RFC 8011 and PWG 5100.9), most serious first.
_REASONS: list[tuple[str, PeripheralState, str, PaperLevel | None]] = [
    ("media-empty", PeripheralState.FAULT, "A4打印机缺纸", PaperLevel.OUT),
    ("media-needed", PeripheralState.FAULT, "A4打印机缺纸", PaperLevel.OUT),
    ("media-jam", PeripheralState.FAULT, "A4打印机卡纸", None),
    ("door-open", PeripheralState.FAULT, "A4打印机机盖打开", None),
    ("cover-open", PeripheralState.FAULT, "A4打印机机盖打开", None),
    ("toner-empty", PeripheralState.FAULT, "A4打印机墨粉用完", None),
    ("marker-supply-empty", PeripheralState.FAULT, "A4打印机墨粉用完", None),
    ("offline", PeripheralState.OFFLINE, "A4打印机离线", None),
    ("shutdown", PeripheralState.OFFLINE, "A4打印机已关机", None),
    ("media-low", PeripheralState.WARNING, "A4纸即将用完，请及时补充", PaperLevel.LOW),
    ("toner-low", PeripheralState.WARNING, "A4打印机墨粉不足", None),
    ("marker-supply-low", PeripheralState.WARNING, "A4打印机墨粉不足", None),
]


class CupsA4Printer:
    def __init__(self, printer_name: str | None, *, spool_dir: Path | None = None, lp_command: str = "lp",
                 lpstat_command: str = "lpstat", timeout: float = 30.0) -> None:
        self.printer_name = printer_name
        self._spool_dir = spool_dir
        self._lp = lp_command
        self._lpstat = lpstat_command
        self._timeout = timeout

    def _extra(self, **more) -> dict:
        return {"driver": "cups", "printer": self.printer_name or "(default)", **more}

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}  # lpstat's words are parsed: keep them English
        return subprocess.run(args, capture_output=True, text=True, timeout=self._timeout, env=env, check=False)

    def status(self) -> PeripheralStatus:
        args = [self._lpstat, "-l", "-p"] + ([self.printer_name] if self.printer_name else [])
        if not self.printer_name:
            args = [self._lpstat, "-d"]
        try:
            done = self._run(args)
        except FileNotFoundError:
            return PeripheralStatus(state=PeripheralState.OFFLINE, detail="未安装CUPS客户端（找不到 lpstat）",
                                    extra=self._extra())
        except subprocess.TimeoutExpired:
            return PeripheralStatus(state=PeripheralState.OFFLINE, detail="CUPS无响应", extra=self._extra())
        output = (done.stdout or "").strip()
        if done.returncode != 0:
            reason = (done.stderr or output).strip()[:200]
            return PeripheralStatus(state=PeripheralState.OFFLINE, detail=f"CUPS中找不到A4打印机：{reason}",
                                    extra=self._extra())
        if not self.printer_name:
            if "no system default destination" in output or not output:
                return PeripheralStatus(state=PeripheralState.OFFLINE, detail="CUPS未设置默认打印机",
                                        extra=self._extra())
            return PeripheralStatus(state=PeripheralState.OK, detail="A4打印机（CUPS默认）", extra=self._extra())
        if re.search(r"\bdisabled\b", output.splitlines()[0] if output else ""):
            return PeripheralStatus(state=PeripheralState.FAULT, detail="A4打印机在CUPS中已停用", extra=self._extra())
        alerts = " ".join(line.split(":", 1)[1] for line in output.splitlines()
                          if line.strip().startswith("Alerts:"))
        for keyword, state, detail, paper in _REASONS:
            if keyword in alerts:
                extra = self._extra(alerts=alerts.strip())
                if paper is not None:
                    extra["paper"] = paper.value
                return PeripheralStatus(state=state, detail=detail, extra=extra)
        return PeripheralStatus(state=PeripheralState.OK, detail="A4打印机正常", extra=self._extra(paper="ok"))

    def print_pdf(self, pdf: bytes, *, title: str = "") -> PrintJob:
        refuse_unless_pdf_printable(pdf, self.status())
        if self._spool_dir is not None:
            self._spool_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(suffix=".pdf", dir=self._spool_dir, delete=False) as handle:
            handle.write(pdf)
            path = Path(handle.name)
        args = [self._lp] + (["-d", self.printer_name] if self.printer_name else [])
        args += ["-t", title or "medkiosk", "--", str(path)]
        try:
            done = self._run(args)
        except FileNotFoundError as exc:
            raise PeripheralError("A4打印机暂时无法使用，请到人工窗口办理",
                                  detail=f"'{self._lp}' not found: install the CUPS client (cups-client)") from exc
        except subprocess.TimeoutExpired as exc:
            raise PeripheralError("A4打印机暂时无法使用，请到人工窗口办理",
                                  detail=f"'{self._lp}' did not finish in {self._timeout}s") from exc
        finally:
            path.unlink(missing_ok=True)  # lp has copied the file to the CUPS spool when it returns
        if done.returncode != 0:
            raise PeripheralError("A4打印失败，请到人工窗口办理",
                                  detail=f"lp exited {done.returncode}: {(done.stderr or done.stdout).strip()[:300]}")
        found = _REQUEST_ID.search(done.stdout or "")
        job_id = found.group(1) if found else f"cups-{datetime.now():%Y%m%d%H%M%S}"
        return PrintJob(job_id, "a4", datetime.now().astimezone(), title)
