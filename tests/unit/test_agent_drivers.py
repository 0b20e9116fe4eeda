"""The agent's drivers: simulated peripherals, the ESC/POS receipt rendering, CUPS and the real ESC/POS path."""

from __future__ import annotations

import asyncio
import io
import socket
import stat
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from escpos.printer import Network
from reportlab.pdfgen import canvas

from medkiosk.agent.config import AgentSettings
from medkiosk.agent.documents import FS_CHINESE_MODE_ON, Receipt, render_text
from medkiosk.agent.drivers import build_drivers
from medkiosk.agent.drivers.base import (
    CardRead,
    PaperLevel,
    PeripheralError,
    PeripheralState,
    PosDeclined,
    PrinterNotReady,
)
from medkiosk.agent.drivers.cups import CupsA4Printer
from medkiosk.agent.drivers.escpos_printer import EscposReceiptPrinter
from medkiosk.agent.drivers.simulated import (
    SimulatedA4Printer,
    SimulatedInsuranceCardReader,
    SimulatedPos,
    SimulatedReceiptPrinter,
)
from medkiosk.agent.drivers.unconfigured import NotConfiguredReader
from medkiosk.security.signing import generate_key, private_key_to_pem

FULL_CUT = b"\x1dV\x00"
PARTIAL_CUT = b"\x1dV\x01"


def slip() -> Receipt:
    return Receipt(title="挂号条", job_id="reg-1", lines=[
        {"type": "text", "text": "示范市第一人民医院", "bold": True, "double": True, "align": "center"},
        "科室：心血管内科",
        {"type": "rule"},
        {"type": "qr", "payload": "REG-20261125-0001"},
    ])


def a_pdf() -> bytes:
    out = io.BytesIO()
    page = canvas.Canvas(out)
    page.drawString(72, 720, "requisition")
    page.showPage()
    page.save()
    return out.getvalue()


# The receipt printer (simulated): real ESC/POS bytes.

def test_a_chinese_line_reaches_the_printer_in_gb18030_after_the_chinese_mode_command(tmp_path):
    printer = SimulatedReceiptPrinter(tmp_path)
    printer.print_receipt(slip())
    data = printer.last_bytes
    assert data.startswith(b"\x1b@" + FS_CHINESE_MODE_ON)
    assert "示范市第一人民医院".encode("gb18030") in data
    assert "科室：心血管内科".encode("gb18030") in data


def test_a_line_of_full_width_characters_alone_is_not_turned_into_question_marks(tmp_path):
    # python-escpos's magic encoder prints "？？" for a line with no U+4E00–U+9FA5 character.
    printer = SimulatedReceiptPrinter(tmp_path)
    printer.print_receipt(Receipt(lines=["：￥１２"]))
    assert "：￥１２".encode("gb18030") in printer.last_bytes
    assert b"??" not in printer.last_bytes


def test_a_receipt_ends_with_a_cut_and_an_explicit_partial_cut_is_kept(tmp_path):
    printer = SimulatedReceiptPrinter(tmp_path)
    printer.print_receipt(slip())
    assert FULL_CUT in printer.last_bytes
    printer.print_receipt(Receipt(lines=["一", {"type": "cut", "partial": True}]))
    assert PARTIAL_CUT in printer.last_bytes and FULL_CUT not in printer.last_bytes


def test_the_qr_payload_is_sent_to_the_printer_as_a_native_qr_code(tmp_path):
    printer = SimulatedReceiptPrinter(tmp_path)
    printer.print_receipt(slip())
    data = printer.last_bytes
    store = data.index(b"\x1d(k")  # GS ( k: the 2D-code commands
    assert b"1P0REG-20261125-0001" in data[store:]  # function 180: store the data
    assert b"\x1d(k\x03\x001Q0" in data  # function 181: print it


def test_the_qr_can_be_sent_as_a_raster_image_for_printers_without_native_qr(tmp_path):
    printer = SimulatedReceiptPrinter(tmp_path, native_qr=False)
    printer.print_receipt(slip())
    assert b"\x1dv0" in printer.last_bytes  # GS v 0: raster bit image
    assert b"REG-20261125-0001" not in printer.last_bytes


def test_each_receipt_is_saved_as_bytes_and_text_and_the_last_ones_are_kept(tmp_path):
    printer = SimulatedReceiptPrinter(tmp_path, keep=2)
    for _ in range(3):
        job = printer.print_receipt(slip())
    bin_path, txt_path = job.files
    assert bin_path.read_bytes() == printer.last_bytes
    text = txt_path.read_text(encoding="utf-8")
    assert "科室：心血管内科" in text and "[二维码] REG-20261125-0001" in text
    assert len(printer.outbox.recent) == 2
    assert len(list(tmp_path.glob("receipt-*.bin"))) == 3


def test_paper_low_is_read_from_the_printers_realtime_status_and_still_prints(tmp_path):
    printer = SimulatedReceiptPrinter(tmp_path)
    printer.set_state(paper=PaperLevel.LOW)
    status = printer.status()
    assert status.state is PeripheralState.WARNING and status.extra["paper"] == "low"
    printer.print_receipt(slip())


def test_paper_out_is_reported_as_a_fault_and_refuses_printing(tmp_path):
    printer = SimulatedReceiptPrinter(tmp_path)
    printer.set_state(paper=PaperLevel.OUT)
    status = printer.status()
    assert status.state is PeripheralState.FAULT and status.extra["paper"] == "out"
    with pytest.raises(PrinterNotReady) as refused:
        printer.print_receipt(slip())
    assert refused.value.message == "小票打印机缺纸，请到人工窗口办理"
    assert list(tmp_path.glob("*.bin")) == []


def test_a_printer_that_does_not_answer_is_offline(tmp_path):
    printer = SimulatedReceiptPrinter(tmp_path)
    printer.set_state(state=PeripheralState.OFFLINE)
    assert printer.status().state is PeripheralState.OFFLINE
    printer.set_state(state=PeripheralState.FAULT)
    assert printer.status().detail == "小票打印机切刀故障"


def test_the_text_rendering_centres_by_display_width():
    text = render_text(Receipt(lines=[{"type": "text", "text": "挂号条", "align": "center"}]), columns=20)
    assert text.splitlines()[0] == " " * 7 + "挂号条"


# The A4 printer and the POS (simulated).

def test_the_simulated_a4_printer_saves_the_pdf(tmp_path):
    printer = SimulatedA4Printer(tmp_path)
    pdf = a_pdf()
    job = printer.print_pdf(pdf, title="CT申请单")
    assert job.files[0].suffix == ".pdf" and job.files[0].read_bytes() == pdf
    assert printer.outbox.recent[-1].pages == 1


def test_the_simulated_a4_printer_refuses_when_out_of_paper_or_given_something_else(tmp_path):
    printer = SimulatedA4Printer(tmp_path)
    with pytest.raises(PeripheralError):
        printer.print_pdf(b"<html>", title="x")
    printer.set_state(paper=PaperLevel.OUT)
    with pytest.raises(PrinterNotReady, match="A4打印机缺纸"):
        printer.print_pdf(a_pdf())


def test_the_pos_sells_voids_and_refunds_with_references():
    pos = SimulatedPos()
    sale = pos.sale(Decimal("25.50"), "ORD-1")
    assert sale.reference and sale.amount == Decimal("25.50")
    assert pos.sale(Decimal("25.50"), "ORD-1") == sale  # a retried sale does not charge twice
    refund = pos.refund(Decimal("10.00"), sale.reference, "ORD-1-R1")
    assert refund.original_reference == sale.reference
    void = pos.void(sale.reference, "ORD-1-V")
    assert void.amount == Decimal("25.50")
    with pytest.raises(PosDeclined):
        pos.refund(Decimal("30.00"), sale.reference, "ORD-1-R2")


def test_the_pos_declines_with_the_reason_it_was_given():
    pos = SimulatedPos()
    pos.set_decline(True, "交易被拒绝：卡片已冻结")
    with pytest.raises(PosDeclined) as declined:
        pos.sale(Decimal("12.00"), "ORD-2")
    assert declined.value.message == "交易被拒绝：卡片已冻结"
    assert pos.journal == {}


# Readers.

def test_a_simulated_reader_delivers_what_is_presented_and_forgets_it_on_release():
    async def scenario():
        reader = SimulatedInsuranceCardReader()
        reader.present(CardRead(card_no="A1", name="王建国"))
        first = await reader.next_read()
        reader.present(CardRead(card_no="A2"))
        reader.release()
        assert not reader.card_present
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.next_read(), 0.05)
        return first

    assert asyncio.run(scenario()).card_no == "A1"


def test_a_faulty_simulated_reader_refuses_a_card():
    reader = SimulatedInsuranceCardReader()
    reader.set_state(PeripheralState.FAULT)
    with pytest.raises(PeripheralError):
        reader.present(CardRead(card_no="A1"))


def test_a_reader_without_a_vendor_driver_says_it_is_not_configured():
    status = NotConfiguredReader("医保读卡器", "MEDKIOSK_AGENT_INSURANCE_CARD_READER_DRIVER").status()
    assert status.state is PeripheralState.OFFLINE and "未配置" in status.detail


# Wiring.

@pytest.fixture
def key_file(tmp_path) -> Path:
    path = tmp_path / "device.pem"
    path.write_bytes(private_key_to_pem(generate_key()))
    return path


def test_demo_mode_wires_simulated_drivers_everywhere(key_file, tmp_path):
    drivers = build_drivers(AgentSettings(device_id="K1", key_file=key_file, demo=True, output_dir=tmp_path))
    assert {type(p).__name__ for p in drivers.all().values()} == {
        "SimulatedInsuranceCardReader", "SimulatedIdCardReader", "SimulatedQrScanner", "SimulatedReceiptPrinter",
        "SimulatedA4Printer", "SimulatedPos"}


def test_production_wiring_uses_real_printers_and_reports_what_is_not_configured(key_file, tmp_path):
    drivers = build_drivers(AgentSettings(device_id="K1", key_file=key_file, output_dir=tmp_path,
                                          lpstat_command=str(tmp_path / "no-lpstat")))
    statuses = {name: p.status() for name, p in drivers.all().items()}
    assert isinstance(drivers.a4_printer, CupsA4Printer)
    assert statuses["receipt_printer"].state is PeripheralState.OFFLINE
    assert "MEDKIOSK_AGENT_RECEIPT_PRINTER_CONNECTION" in statuses["receipt_printer"].detail
    assert "lpstat" in statuses["a4_printer"].detail
    assert all(statuses[n].state is PeripheralState.OFFLINE for n in ("insurance_card_reader", "bank_pos"))


def test_a_settings_key_that_is_not_an_ed25519_pem_is_refused_at_start(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ValueError, match="Ed25519"):
        AgentSettings(device_id="K1", key_file=bad)


def test_the_agent_refuses_to_listen_beyond_loopback(key_file):
    with pytest.raises(ValueError, match="loopback"):
        AgentSettings(device_id="K1", key_file=key_file, host="0.0.0.0")


# CUPS, with stand-in lp/lpstat programs.

def _program(path: Path, script: str) -> str:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_cups_prints_the_pdf_with_lp_to_the_named_printer(tmp_path):
    log = tmp_path / "lp.args"
    lp = _program(tmp_path / "lp", f'echo "$@" > {log}\ncp "$6" {tmp_path}/got.pdf\n'
                                   'echo "request id is A4-17 (1 file(s))"\n')
    lpstat = _program(tmp_path / "lpstat", 'echo "printer A4 is idle.  enabled since Mon"\n'
                                           'echo "\tAlerts: none"\n')
    printer = CupsA4Printer("A4", lp_command=lp, lpstat_command=lpstat, spool_dir=tmp_path / "spool")
    pdf = a_pdf()
    job = printer.print_pdf(pdf, title="处方底方")
    assert job.job_id == "A4-17"
    assert log.read_text().startswith("-d A4 -t 处方底方 --")
    assert (tmp_path / "got.pdf").read_bytes() == pdf
    assert list((tmp_path / "spool").iterdir()) == []  # the spooled copy is removed


def test_cups_reports_media_empty_as_paper_out_and_refuses(tmp_path):
    lpstat = _program(tmp_path / "lpstat", 'echo "printer A4 is idle.  enabled since Mon"\n'
                                           'echo "\tAlerts: media-empty-error toner-low-warning"\n')
    printer = CupsA4Printer("A4", lp_command=str(tmp_path / "lp"), lpstat_command=lpstat)
    status = printer.status()
    assert status.state is PeripheralState.FAULT and status.extra["paper"] == "out"
    with pytest.raises(PrinterNotReady, match="缺纸"):
        printer.print_pdf(a_pdf())


def test_cups_without_lp_fails_with_a_clear_error(tmp_path):
    lpstat = _program(tmp_path / "lpstat", 'echo "printer A4 is idle.  enabled since Mon"\n')
    printer = CupsA4Printer("A4", lp_command=str(tmp_path / "missing-lp"), lpstat_command=lpstat)
    with pytest.raises(PeripheralError) as failed:
        printer.print_pdf(a_pdf())
    assert "cups-client" in failed.value.detail


def test_cups_passes_on_what_lp_says_when_it_fails(tmp_path):
    lp = _program(tmp_path / "lp", 'echo "lp: The printer or class does not exist." >&2\nexit 1\n')
    lpstat = _program(tmp_path / "lpstat", 'echo "printer A4 is idle.  enabled since Mon"\n')
    with pytest.raises(PeripheralError) as failed:
        CupsA4Printer("A4", lp_command=lp, lpstat_command=lpstat).print_pdf(a_pdf())
    assert "does not exist" in failed.value.detail


# The real ESC/POS driver, against a stand-in network printer on loopback.

class FakeNetworkPrinter:
    """Accepts ESC/POS over TCP like a printer's port 9100 and answers DLE EOT n."""

    def __init__(self, paper: int = 0x12) -> None:
        self.paper = paper
        self.received = bytearray()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                while chunk := conn.recv(65536):
                    self.received += chunk
                    if len(chunk) == 3 and chunk[:2] == b"\x10\x04":
                        conn.sendall(bytes([{1: 0x12, 4: self.paper}.get(chunk[2], 0x12)]))

    def close(self) -> None:
        self.server.close()


def test_the_escpos_driver_prints_over_the_network_and_reads_paper_from_the_printer():
    fake = FakeNetworkPrinter(paper=0x1E)  # near-end sensor on
    try:
        driver = EscposReceiptPrinter(lambda: Network("127.0.0.1", fake.port, timeout=2),
                                      describe=f"network 127.0.0.1:{fake.port}")
        status = driver.status()
        assert status.state is PeripheralState.WARNING and status.extra["paper"] == "low"
        driver.print_receipt(slip())
        deadline = threading.Event()
        for _ in range(100):
            if FULL_CUT in fake.received:
                break
            deadline.wait(0.02)
        assert "示范市第一人民医院".encode("gb18030") in fake.received and FULL_CUT in fake.received
    finally:
        fake.close()


def test_the_escpos_driver_refuses_when_the_printer_reports_paper_out():
    fake = FakeNetworkPrinter(paper=0x72)
    try:
        driver = EscposReceiptPrinter(lambda: Network("127.0.0.1", fake.port, timeout=2), describe="network")
        with pytest.raises(PrinterNotReady, match="缺纸"):
            driver.print_receipt(slip())
    finally:
        fake.close()


def test_an_unreachable_escpos_printer_is_offline_not_a_crash():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    driver = EscposReceiptPrinter(lambda: Network("127.0.0.1", port, timeout=1), describe="network")
    assert driver.status().state is PeripheralState.OFFLINE
