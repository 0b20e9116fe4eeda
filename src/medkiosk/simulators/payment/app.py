"""The payment-channel simulator: one aggregated merchant API for WeChat Pay, Alipay and UnionPay.

The contract (``/pay/v1``, JSON, amounts as two-place strings) is ours, modelled on WeChat Pay v3
and Alipay's merchant APIs; docs/simulators/payment.md is its reference. Run it alone with
``medkiosk sim payment`` (port 8203). Besides the shared control surface under ``/__sim__/`` it
has a clock (``/__sim__/clock``), the patient's phone (``POST /__sim__/pay/{out_trade_no}``), a
refund outcome switch and the journal of payment notifications it sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import deque
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Header
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from medkiosk.adapters.payment.port import PaymentChannel, RefundState
from medkiosk.domain.money import Money
from medkiosk.simulators.control import SimulatorControl, clock_router
from medkiosk.simulators.jsonapi import answer_in_contract_errors
from medkiosk.simulators.payment.records import (
    OUT_NO_PATTERN,
    OrderRecord,
    PositiveMoney,
    RefundRecord,
    mask_code,
)
from medkiosk.simulators.payment.state import PaymentRefusal, PaymentState

PREFIX = "/pay/v1"
MERCHANT_HEADER = "X-Merchant-Id"
NOTIFY_TIMEOUT_SECONDS = 5.0

log = logging.getLogger(__name__)


class QrOrderBody(BaseModel):
    out_trade_no: str = Field(pattern=OUT_NO_PATTERN)
    amount: PositiveMoney
    description: str = Field(min_length=1, max_length=127)
    expire_seconds: int = Field(default=300, ge=60, le=7200)
    notify_url: str | None = Field(default=None, max_length=256)


class CodeChargeBody(BaseModel):
    out_trade_no: str = Field(pattern=OUT_NO_PATTERN)
    auth_code: str = Field(min_length=1, max_length=32)
    amount: PositiveMoney
    description: str = Field(min_length=1, max_length=127)


class RefundBody(BaseModel):
    out_trade_no: str = Field(pattern=OUT_NO_PATTERN)
    out_refund_no: str = Field(pattern=OUT_NO_PATTERN)
    refund_amount: PositiveMoney
    total_amount: PositiveMoney
    reason: str = Field(default="", max_length=80)


class PhonePayment(BaseModel):
    channel: PaymentChannel = PaymentChannel.WECHAT
    amount: PositiveMoney | None = None
    """Take this instead of the order's amount: the mismatch the payment engine must catch."""


class RefundOutcome(BaseModel):
    state: RefundState


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def order_reply(order: OrderRecord, refunded: Money) -> dict[str, Any]:
    """``GET /orders/{out_trade_no}``: the order as the contract shows it."""
    return {
        "out_trade_no": order.out_trade_no, "state": order.state.value, "amount": f"{order.amount:.2f}",
        "paid_amount": f"{order.paid_amount:.2f}" if order.paid_amount is not None else None,
        "refunded_amount": f"{refunded:.2f}", "transaction_id": order.transaction_id,
        "paid_at": _time(order.paid_at), "channel": order.channel.value if order.channel else None,
        "trade_type": order.kind.trade_type, "message": order.message,
    }


def refund_reply(refund: RefundRecord) -> dict[str, Any]:
    return {
        "out_refund_no": refund.out_refund_no, "out_trade_no": refund.out_trade_no, "refund_id": refund.refund_id,
        "state": refund.state.value, "refund_amount": f"{refund.refund_amount:.2f}",
        "total_amount": f"{refund.total_amount:.2f}", "created_at": _time(refund.created_at),
        "succeeded_at": _time(refund.succeeded_at),
    }


def create_app(state: PaymentState | None = None, *, seed: int | None = None) -> FastAPI:
    """The simulator as an ASGI app over ``state`` (default: merchant 1900000109 holding the hospital
    app's trades of the demo HIS, built from ``seed`` when given)."""
    state = state if state is not None else PaymentState(demo=True, **({"demo_seed": seed} if seed else {}))
    control = SimulatorControl("payment", state, seed=seed)
    notifications: deque[dict[str, Any]] = deque(maxlen=1000)
    pending_notifications: set[asyncio.Task[None]] = set()
    app = FastAPI(title="medkiosk · payment channel simulator", version="1",
                  description="聚合支付（微信/支付宝/云闪付）商户接口模拟器。See docs/simulators/payment.md.")
    app.state.control = control
    app.state.payment = state
    app.state.notifications = notifications
    app.include_router(control.router())

    answer_in_contract_errors(app, prefix=PREFIX, refusal=PaymentRefusal)

    def merchant(x_merchant_id: str | None = Header(default=None)) -> None:
        if x_merchant_id != state.merchant_id:
            raise PaymentRefusal(403, "MCH_NOT_EXISTS", "商户号不存在或未开通该接口")

    pay = APIRouter(prefix=PREFIX, tags=["payment channel"], dependencies=[Depends(merchant)])

    @pay.post("/qr-orders")
    async def create_qr_order(body: QrOrderBody) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            order = state.create_qr_order(**body.model_dump())
            return {"out_trade_no": order.out_trade_no, "code_url": order.code_url,
                    "expires_at": _time(order.expires_at), "state": order.state.value}
        return await control.operate("qr.create", body.model_dump(mode="json"), run)

    @pay.post("/code-charges")
    async def charge_code(body: CodeChargeBody) -> dict[str, Any]:
        journal = body.model_dump(mode="json") | {"auth_code": mask_code(body.auth_code)}
        def run() -> dict[str, Any]:
            order = state.charge_code(**body.model_dump())
            return {"out_trade_no": order.out_trade_no, "state": order.state.value,
                    "transaction_id": order.transaction_id, "message": order.message}
        return await control.operate("code.charge", journal, run)

    @pay.get("/orders/{out_trade_no}")
    async def query(out_trade_no: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            order = state.query(out_trade_no)
            return order_reply(order, state.refunded_amount(out_trade_no))
        return await control.operate("order.query", {"out_trade_no": out_trade_no}, run)

    @pay.post("/orders/{out_trade_no}/close")
    async def close(out_trade_no: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            order = state.close(out_trade_no)
            return {"out_trade_no": order.out_trade_no, "state": order.state.value}
        return await control.operate("order.close", {"out_trade_no": out_trade_no}, run)

    @pay.post("/refunds")
    async def refund(body: RefundBody) -> dict[str, Any]:
        return await control.operate("refund.create", body.model_dump(mode="json"),
                                     lambda: refund_reply(state.refund(**body.model_dump())))

    @pay.get("/refunds/{out_refund_no}")
    async def query_refund(out_refund_no: str) -> dict[str, Any]:
        return await control.operate("refund.query", {"out_refund_no": out_refund_no},
                                     lambda: refund_reply(state.query_refund(out_refund_no)))

    @pay.get("/statements/{day}")
    async def statement(day: dt.date) -> PlainTextResponse:
        text = await control.operate("statement.get", {"date": day.isoformat()}, lambda: state.statement(day))
        return PlainTextResponse(text, media_type="text/plain; charset=utf-8")

    app.include_router(pay)
    app.include_router(_phone_router(state, notifications, pending_notifications))
    app.include_router(clock_router(state, lambda: _clock(state)))
    return app


# -- simulator-specific control -----------------------------------------------------------------
def _phone_router(state: PaymentState, notifications: deque[dict[str, Any]],
                  pending: set[asyncio.Task[None]]) -> APIRouter:
    router = APIRouter(prefix="/__sim__", tags=["simulator control"])

    @router.post("/pay/{out_trade_no}")
    async def phone_pays(out_trade_no: str, payment: PhonePayment | None = None) -> dict[str, Any]:
        """The patient scans the QR code and pays (or confirms a USERPAYING charge on the phone)."""
        payment = payment or PhonePayment()
        order = state.phone_pays(out_trade_no, payment.channel, payment.amount)
        reply = order_reply(order, state.refunded_amount(out_trade_no))
        if order.notify_url:
            task = asyncio.get_running_loop().create_task(_notify(order.notify_url, reply, notifications))
            pending.add(task)
            task.add_done_callback(pending.discard)
        return reply

    @router.post("/refunds/{out_refund_no}/state")
    def refund_outcome(out_refund_no: str, outcome: RefundOutcome) -> dict[str, Any]:
        return refund_reply(state.set_refund_state(out_refund_no, outcome.state))

    @router.get("/notifications")
    def sent() -> list[dict[str, Any]]:
        return list(notifications)

    return router


async def _notify(url: str, order: dict[str, Any], journal: deque[dict[str, Any]]) -> None:
    """One best-effort payment notification, as a channel sends to ``notify_url``; the outcome is journaled."""
    body = {"event_type": "TRANSACTION.SUCCESS", **order}
    entry: dict[str, Any] = {"out_trade_no": order["out_trade_no"], "url": url, "status": None, "error": None}
    try:
        async with httpx.AsyncClient(timeout=NOTIFY_TIMEOUT_SECONDS) as client:
            response = await client.post(url, json=body)
        entry["status"] = response.status_code
    except httpx.HTTPError as exc:
        entry["error"] = type(exc).__name__
        log.info("payment notification to %s failed: %s", url, type(exc).__name__)
    journal.append(entry)


def _clock(state: PaymentState) -> dict[str, Any]:
    return {"now": state.now_local().isoformat(timespec="seconds"), "offset_seconds": state.clock_offset}
