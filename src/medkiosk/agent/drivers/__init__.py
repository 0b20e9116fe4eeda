"""The one place that decides, from the settings, which driver owns each peripheral."""

from __future__ import annotations

from collections.abc import Callable

from escpos.escpos import Escpos

from medkiosk.agent.config import AgentSettings, ReceiptPrinterConnection
from medkiosk.agent.drivers.base import Drivers, PeripheralError, ReceiptPrinter
from medkiosk.agent.drivers.cups import CupsA4Printer
from medkiosk.agent.drivers.escpos_printer import EscposReceiptPrinter
from medkiosk.agent.drivers.simulated import (
    SimulatedA4Printer,
    SimulatedIdCardReader,
    SimulatedInsuranceCardReader,
    SimulatedPos,
    SimulatedQrScanner,
    SimulatedReceiptPrinter,
)
from medkiosk.agent.drivers.unconfigured import NotConfiguredPos, NotConfiguredReader, NotConfiguredReceiptPrinter

__all__ = ["Drivers", "build_drivers", "escpos_connector"]


def escpos_connector(settings: AgentSettings) -> tuple[Callable[[], Escpos], str] | str:
    """A factory for the configured python-escpos printer and its description, or why there is none."""
    connection = settings.receipt_printer_connection
    profile = settings.receipt_printer_profile
    timeout = settings.receipt_printer_timeout_seconds
    if connection is ReceiptPrinterConnection.USB:
        if not (settings.receipt_printer_usb_vendor and settings.receipt_printer_usb_product):
            return "未配置小票打印机USB厂商号/产品号（MEDKIOSK_AGENT_RECEIPT_PRINTER_USB_VENDOR/_PRODUCT）"
        vendor, product = settings.receipt_printer_usb_vendor, settings.receipt_printer_usb_product

        def connect() -> Escpos:
            from escpos.printer import Usb

            if not Usb.is_usable():
                raise PeripheralError("小票打印机暂时无法使用", detail="缺少 pyusb：pip install 'python-escpos[usb]'")
            # pyusb's timeout is in milliseconds.
            return Usb(vendor, product, timeout=int(timeout * 1000), profile=profile)

        return connect, f"usb {vendor:04x}:{product:04x}"
    if connection is ReceiptPrinterConnection.SERIAL:
        device, baudrate = settings.receipt_printer_serial_device, settings.receipt_printer_serial_baudrate

        def connect() -> Escpos:
            from escpos.printer import Serial

            if not Serial.is_usable():
                raise PeripheralError("小票打印机暂时无法使用", detail="缺少 pyserial：pip install 'python-escpos[serial]'")
            return Serial(devfile=device, baudrate=baudrate, timeout=timeout, profile=profile)

        return connect, f"serial {device}@{baudrate}"
    if connection is ReceiptPrinterConnection.NETWORK:
        if not settings.receipt_printer_host:
            return "未配置小票打印机地址（MEDKIOSK_AGENT_RECEIPT_PRINTER_HOST）"
        host, port = settings.receipt_printer_host, settings.receipt_printer_port

        def connect() -> Escpos:
            from escpos.printer import Network

            return Network(host, port, timeout=timeout, profile=profile)

        return connect, f"network {host}:{port}"
    return "未配置小票打印机连接方式（MEDKIOSK_AGENT_RECEIPT_PRINTER_CONNECTION：usb、serial 或 network）"


def _receipt_printer(settings: AgentSettings) -> ReceiptPrinter:
    common = dict(profile=settings.receipt_printer_profile, chinese_mode=settings.receipt_printer_chinese_mode,
                  native_qr=settings.receipt_printer_native_qr, columns=settings.receipt_columns)
    if settings.driver_for("receipt_printer") == "simulated":
        return SimulatedReceiptPrinter(settings.printout_dir, keep=settings.printed_keep, **common)
    found = escpos_connector(settings)
    if isinstance(found, str):
        return NotConfiguredReceiptPrinter(found)
    connect, describe = found
    return EscposReceiptPrinter(connect, describe=describe, **common)


def build_drivers(settings: AgentSettings) -> Drivers:
    def reader(kind: str, simulated, label: str):
        if settings.driver_for(kind) == "simulated":
            return simulated()
        return NotConfiguredReader(label, f"MEDKIOSK_AGENT_{kind.upper()}_DRIVER")

    if settings.driver_for("a4_printer") == "simulated":
        a4 = SimulatedA4Printer(settings.printout_dir, keep=settings.printed_keep)
    else:
        a4 = CupsA4Printer(settings.a4_printer_name, spool_dir=settings.printout_dir / "spool",
                           lp_command=settings.lp_command, lpstat_command=settings.lpstat_command)
    return Drivers(
        insurance_card_reader=reader("insurance_card_reader", SimulatedInsuranceCardReader, "医保读卡器"),
        id_card_reader=reader("id_card_reader", SimulatedIdCardReader, "身份证阅读器"),
        qr_scanner=reader("qr_scanner", SimulatedQrScanner, "扫码器"),
        receipt_printer=_receipt_printer(settings),
        a4_printer=a4,
        bank_pos=(SimulatedPos(terminal_id=settings.device_id[-8:].rjust(8, "0"))
                  if settings.driver_for("bank_pos") == "simulated" else NotConfiguredPos()),
    )
