"""Peripherals with no driver on this kiosk: they say so in their status instead of pretending.

Card readers, the scanner and the bank POS need their vendors' SDKs, which we do not have; a real
driver implements the protocol in base.py and is wired in ``drivers.build_drivers``.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import NoReturn

from medkiosk.agent.documents import Receipt
from medkiosk.agent.drivers.base import (
    PeripheralState,
    PeripheralStatus,
    PosBatch,
    PosDeclined,
    PosResult,
    PosUnavailable,
    PrintJob,
)
from medkiosk.agent.drivers.escpos_printer import refusal_for


class NotConfiguredReader:
    def __init__(self, label: str, setting: str) -> None:
        self.label = label
        self.setting = setting

    async def next_read(self) -> NoReturn:
        await asyncio.Event().wait()  # nothing will ever be read
        raise AssertionError("unreachable")

    def release(self) -> None:
        pass

    def status(self) -> PeripheralStatus:
        return PeripheralStatus(state=PeripheralState.OFFLINE,
                                detail=f"未配置{self.label}驱动（{self.setting}），本机未接入厂商SDK",
                                extra={"driver": "none"})


class NotConfiguredPos:
    def status(self) -> PeripheralStatus:
        return PeripheralStatus(state=PeripheralState.OFFLINE,
                                detail="未配置银行POS驱动（MEDKIOSK_AGENT_BANK_POS_DRIVER），本机未接入银行MIS接口",
                                extra={"driver": "none"})

    def _refuse(self) -> NoReturn:
        raise PosUnavailable("银行卡支付暂不可用", "请换用扫码支付或到人工窗口办理", detail="bank POS not configured")

    def sale(self, amount: Decimal, order_no: str) -> PosResult:
        # Nothing can have been charged on a terminal that is not there: a refusal, not an unknown.
        raise PosDeclined("银行卡支付暂不可用", "请换用扫码支付或到人工窗口办理", detail="bank POS not configured")

    def void(self, reference: str, order_no: str) -> PosResult:
        self._refuse()

    def refund(self, amount: Decimal, reference: str, order_no: str) -> PosResult:
        self._refuse()

    def query(self, order_no: str) -> PosResult | None:
        return None

    def settle(self) -> PosBatch:
        self._refuse()


class NotConfiguredReceiptPrinter:
    """The escpos driver was chosen but no connection is configured."""

    def __init__(self, detail: str) -> None:
        self.detail = detail

    def status(self) -> PeripheralStatus:
        return PeripheralStatus(state=PeripheralState.OFFLINE, detail=self.detail, extra={"driver": "escpos"})

    def print_receipt(self, receipt: Receipt) -> PrintJob:
        raise refusal_for(self.status(), "小票打印机")
