"""The payment-channel adapter against the payment simulator over real HTTP: orders, codes, refunds, faults, statements."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI, Request

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.payment import (
    ChargeState,
    PaymentChannel,
    PaymentChannelHttpAdapter,
    PaymentChannelPort,
    RefundState,
    TradeState,
)
from medkiosk.serving import BackgroundServer, start_in_thread
from medkiosk.simulators import registry
from medkiosk.simulators.payment import PaymentState, create_app
from medkiosk.simulators.payment.records import CHINA_TZ

MERCHANT = "1900000109"
# A weekday morning, moving with real time: no test runs across midnight.
OPENING = dt.datetime(2026, 11, 25, 9, 0, tzinfo=CHINA_TZ).timestamp()
WECHAT_CODE = "134567890123456789"
ALIPAY_CODE = "287654321098765432"
UNIONPAY_CODE = "6226090000000048001"
PAID_AT_ONCE, CONFIRMS, DECLINES, CODE_EXPIRED, NEVER_CONFIRMS = (
    "130012345678901234", "130112345678901234", "130212345678901234", "130312345678901234", "130412345678901234")


@pytest.fixture(scope="module")
def state() -> PaymentState:
    started = time.monotonic()
    return PaymentState(merchant_id=MERCHANT, clock=lambda: OPENING + time.monotonic() - started)


@pytest.fixture(scope="module")
def server(state: PaymentState) -> Iterator[BackgroundServer]:
    background = start_in_thread(create_app(state), name="payment-sim")
    yield background
    background.stop()


@pytest.fixture
def sim(server: BackgroundServer) -> Iterator[httpx.Client]:
    """The simulator's control surface (and the patient's phone), reset before each test."""
    with httpx.Client(base_url=server.url, timeout=5) as client:
        client.post("/__sim__/reset").raise_for_status()
        yield client


@pytest.fixture
def channel(server: BackgroundServer, sim: httpx.Client) -> Iterator[PaymentChannelHttpAdapter]:
    with PaymentChannelHttpAdapter(server.url, merchant_id=MERCHANT, timeout=5) as adapter:
        yield adapter


def pay_on_phone(sim: httpx.Client, out_trade_no: str, **body) -> httpx.Response:
    return sim.post(f"/__sim__/pay/{out_trade_no}", json={"channel": "wechat", **body})


def inject(sim: httpx.Client, **fault) -> None:
    sim.post("/__sim__/faults", json=fault).raise_for_status()


def yuan(value: str) -> Decimal:
    return Decimal(value)


def test_the_http_adapter_is_a_payment_channel_port(channel):
    port: PaymentChannelPort = channel
    assert callable(port.parse_statement)


# -- QR orders ------------------------------------------------------------------------------------

def test_a_qr_order_gives_a_code_to_show_and_the_same_order_number_gives_the_same_order(channel, state):
    first = channel.create_qr_order("K20261125001P1", yuan("25.50"), "门诊缴费", 300)
    again = channel.create_qr_order("K20261125001P1", yuan("25.50"), "门诊缴费", 300)

    assert first.code_url.startswith("simpay://qr/")
    assert abs((first.expires_at - state.now_local()).total_seconds() - 300) <= 2
    assert again == first
    status = channel.query("K20261125001P1")
    assert status is not None
    assert (status.state, status.amount, status.paid_amount, status.channel) == (
        TradeState.NOTPAY, yuan("25.50"), None, None)


def test_the_same_order_number_with_another_amount_is_refused(channel):
    channel.create_qr_order("K20261125002P1", yuan("25.50"), "门诊缴费", 300)
    with pytest.raises(UpstreamRefused) as refused:
        channel.create_qr_order("K20261125002P1", yuan("25.00"), "门诊缴费", 300)
    assert refused.value.code == "OUT_TRADE_NO_USED"
    assert "金额不同" in refused.value.message


def test_the_patient_pays_the_qr_code_and_the_query_shows_success_with_the_amount(channel, sim):
    channel.create_qr_order("K20261125003P1", yuan("88.80"), "门诊缴费", 300)
    pay_on_phone(sim, "K20261125003P1", channel="alipay").raise_for_status()

    status = channel.query("K20261125003P1")
    assert status is not None and status.paid
    assert status.state is TradeState.SUCCESS
    assert status.amount == status.paid_amount == yuan("88.80")
    assert status.channel is PaymentChannel.ALIPAY
    assert status.transaction_id and status.paid_at is not None
    assert pay_on_phone(sim, "K20261125003P1").status_code == 409  # paid once only


def test_an_unpaid_qr_order_expires_closed_and_can_no_longer_be_paid(channel, sim):
    channel.create_qr_order("K20261125004P1", yuan("10.00"), "门诊缴费", 120)
    sim.post("/__sim__/clock", json={"advance_seconds": 119}).raise_for_status()
    assert channel.query("K20261125004P1").state is TradeState.NOTPAY

    sim.post("/__sim__/clock", json={"advance_seconds": 2}).raise_for_status()
    assert channel.query("K20261125004P1").state is TradeState.CLOSED
    late = pay_on_phone(sim, "K20261125004P1")
    assert late.status_code == 409 and late.json()["message"] == "二维码已过期"


def test_closing_before_payment_closes_the_order_for_good(channel, sim):
    channel.create_qr_order("K20261125005P1", yuan("10.00"), "门诊缴费", 300)
    channel.close_order("K20261125005P1")
    channel.close_order("K20261125005P1")  # closing twice is fine

    assert channel.query("K20261125005P1").state is TradeState.CLOSED
    assert pay_on_phone(sim, "K20261125005P1").status_code == 409


def test_closing_a_paid_order_is_refused_so_the_engine_refunds_instead(channel, sim):
    channel.create_qr_order("K20261125006P1", yuan("10.00"), "门诊缴费", 300)
    pay_on_phone(sim, "K20261125006P1").raise_for_status()

    with pytest.raises(UpstreamRefused) as refused:
        channel.close_order("K20261125006P1")
    assert refused.value.code == "ORDER_PAID" and "退款" in refused.value.message
    assert channel.query("K20261125006P1").state is TradeState.SUCCESS


def test_an_order_the_channel_never_saw_is_none_and_cannot_be_closed(channel):
    assert channel.query("K20261125404P1") is None
    with pytest.raises(UpstreamNotFound):
        channel.close_order("K20261125404P1")


def test_the_phone_taking_another_amount_shows_as_a_paid_amount_that_differs(channel, sim):
    channel.create_qr_order("K20261125007P1", yuan("120.00"), "门诊缴费", 300)
    pay_on_phone(sim, "K20261125007P1", amount="102.00").raise_for_status()

    status = channel.query("K20261125007P1")
    assert status.state is TradeState.SUCCESS
    assert (status.amount, status.paid_amount) == (yuan("120.00"), yuan("102.00"))


def test_the_channel_notifies_the_notify_url_when_the_patient_pays(sim, server):
    received: list[dict] = []
    arrived = threading.Event()
    receiver = FastAPI()

    @receiver.post("/notify")
    async def notify(request: Request) -> dict[str, str]:
        received.append(await request.json())
        arrived.set()
        return {"code": "SUCCESS"}

    listening = start_in_thread(receiver, name="notify-receiver")
    try:
        headers = {"X-Merchant-Id": MERCHANT}
        sim.post("/pay/v1/qr-orders", headers=headers, json={
            "out_trade_no": "K20261125008P1", "amount": "9.90", "description": "门诊缴费", "expire_seconds": 300,
            "notify_url": f"{listening.url}/notify"}).raise_for_status()
        pay_on_phone(sim, "K20261125008P1").raise_for_status()
        assert arrived.wait(5)
    finally:
        listening.stop()
    assert received[0]["event_type"] == "TRANSACTION.SUCCESS"
    assert (received[0]["out_trade_no"], received[0]["paid_amount"]) == ("K20261125008P1", "9.90")
    journal = sim.get("/__sim__/notifications").json()
    assert journal[-1]["status"] == 200


# -- payment codes -------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "wallet"), [(PAID_AT_ONCE, PaymentChannel.WECHAT), (WECHAT_CODE, PaymentChannel.WECHAT),
                                              (ALIPAY_CODE, PaymentChannel.ALIPAY),
                                              (UNIONPAY_CODE, PaymentChannel.UNIONPAY)])
def test_a_good_payment_code_is_charged_at_once(channel, code, wallet):
    result = channel.charge_payment_code("K20261125010P1", code, yuan("35.00"), "门诊缴费")

    assert result.state is ChargeState.SUCCESS and result.transaction_id
    status = channel.query("K20261125010P1")
    assert (status.state, status.paid_amount, status.channel, status.transaction_id) == (
        TradeState.SUCCESS, yuan("35.00"), wallet, result.transaction_id)


def test_charging_the_same_order_again_answers_the_first_charge_without_charging_twice(channel, sim):
    first = channel.charge_payment_code("K20261125011P1", PAID_AT_ONCE, yuan("35.00"), "门诊缴费")
    again = channel.charge_payment_code("K20261125011P1", WECHAT_CODE, yuan("35.00"), "门诊缴费")

    assert again == first
    with pytest.raises(UpstreamRefused):
        channel.charge_payment_code("K20261125011P1", PAID_AT_ONCE, yuan("36.00"), "门诊缴费")


def test_a_code_that_needs_confirming_is_polled_until_success(channel):
    result = channel.charge_payment_code("K20261125012P1", CONFIRMS, yuan("35.00"), "门诊缴费")
    assert result.state is ChargeState.USERPAYING and result.transaction_id is None
    assert "密码" in result.message

    states = []
    for _ in range(5):
        status = channel.query("K20261125012P1")
        states.append(status.state)
        if status.state is not TradeState.USERPAYING:
            break
    assert states == [TradeState.USERPAYING, TradeState.SUCCESS]
    assert status.paid_amount == yuan("35.00") and status.transaction_id


def test_a_code_whose_balance_is_too_low_ends_in_a_payment_error(channel):
    assert channel.charge_payment_code("K20261125013P1", DECLINES, yuan("35.00"), "门诊缴费").state \
        is ChargeState.USERPAYING
    assert channel.query("K20261125013P1").state is TradeState.USERPAYING
    status = channel.query("K20261125013P1")
    assert (status.state, status.message, status.paid_amount) == (TradeState.PAYERROR, "余额不足", None)


def test_an_expired_payment_code_fails_at_once_with_a_message_for_the_patient(channel):
    result = channel.charge_payment_code("K20261125014P1", CODE_EXPIRED, yuan("35.00"), "门诊缴费")
    assert result.state is ChargeState.PAYERROR
    assert "付款码已过期" in result.message
    assert channel.query("K20261125014P1").state is TradeState.PAYERROR


def test_a_patient_who_never_confirms_is_closed_by_the_kiosk(channel):
    channel.charge_payment_code("K20261125015P1", NEVER_CONFIRMS, yuan("35.00"), "门诊缴费")
    for _ in range(3):
        assert channel.query("K20261125015P1").state is TradeState.USERPAYING
    channel.close_order("K20261125015P1")
    assert channel.query("K20261125015P1").state is TradeState.CLOSED


@pytest.mark.parametrize("code", ["123", "990000000000000000", "13456789012345678X", "1345678901234567890"])
def test_a_code_no_wallet_issues_is_refused_and_nothing_is_recorded(channel, code):
    with pytest.raises(UpstreamRefused) as refused:
        channel.charge_payment_code("K20261125016P1", code, yuan("35.00"), "门诊缴费")
    assert refused.value.code == "AUTH_CODE_INVALID"
    assert channel.query("K20261125016P1") is None


# -- refunds ----------------------------------------------------------------------------------------

def paid_order(channel, sim, out_trade_no: str, amount: str) -> None:
    channel.create_qr_order(out_trade_no, yuan(amount), "门诊缴费", 300)
    pay_on_phone(sim, out_trade_no).raise_for_status()


def test_a_full_refund_is_processing_then_successful(channel, sim):
    paid_order(channel, sim, "K20261125020P1", "50.00")

    refund = channel.refund("K20261125020P1", "K20261125020R1", yuan("50.00"), yuan("50.00"), "医保结算失败")
    assert (refund.state, refund.refund_amount, refund.total_amount) == (
        RefundState.PROCESSING, yuan("50.00"), yuan("50.00"))
    queried = channel.query_refund("K20261125020R1")
    assert queried.state is RefundState.SUCCESS and queried.refund_id == refund.refund_id
    assert queried.succeeded_at is not None
    status = channel.query("K20261125020P1")
    assert (status.state, status.paid_amount, status.refunded_amount) == (
        TradeState.REFUND, yuan("50.00"), yuan("50.00"))


def test_partial_refunds_add_up_to_the_paid_amount_and_never_beyond(channel, sim):
    paid_order(channel, sim, "K20261125021P1", "50.00")
    channel.refund("K20261125021P1", "K20261125021R1", yuan("20.00"), yuan("50.00"), "部分退费")
    channel.refund("K20261125021P1", "K20261125021R2", yuan("29.99"), yuan("50.00"), "部分退费")

    with pytest.raises(UpstreamRefused) as refused:
        channel.refund("K20261125021P1", "K20261125021R3", yuan("0.02"), yuan("50.00"), "部分退费")
    assert refused.value.code == "NOT_ENOUGH_REFUNDABLE"
    assert "可退0.01元" in refused.value.message
    channel.refund("K20261125021P1", "K20261125021R3", yuan("0.01"), yuan("50.00"), "部分退费")
    assert channel.query("K20261125021P1").refunded_amount == yuan("50.00")


def test_a_refund_number_sent_again_answers_the_first_refund_and_refunds_once(channel, sim):
    paid_order(channel, sim, "K20261125022P1", "50.00")
    first = channel.refund("K20261125022P1", "K20261125022R1", yuan("30.00"), yuan("50.00"), "退费")
    again = channel.refund("K20261125022P1", "K20261125022R1", yuan("30.00"), yuan("50.00"), "退费")

    assert again == first
    assert channel.query("K20261125022P1").refunded_amount == yuan("30.00")
    with pytest.raises(UpstreamRefused) as refused:
        channel.refund("K20261125022P1", "K20261125022R1", yuan("20.00"), yuan("50.00"), "退费")
    assert refused.value.code == "OUT_REFUND_NO_USED"


def test_refunds_are_refused_for_an_unpaid_order_or_the_wrong_total(channel, sim):
    channel.create_qr_order("K20261125023P1", yuan("50.00"), "门诊缴费", 300)
    with pytest.raises(UpstreamRefused, match="未支付"):
        channel.refund("K20261125023P1", "K20261125023R1", yuan("50.00"), yuan("50.00"), "退费")
    pay_on_phone(sim, "K20261125023P1", amount="45.00").raise_for_status()
    with pytest.raises(UpstreamRefused) as refused:
        channel.refund("K20261125023P1", "K20261125023R1", yuan("45.00"), yuan("50.00"), "退费")
    assert refused.value.code == "TOTAL_AMOUNT_MISMATCH" and "实付45.00元" in refused.value.message
    assert channel.refund("K20261125023P1", "K20261125023R1", yuan("45.00"), yuan("45.00"), "金额不符退款").state \
        is RefundState.PROCESSING


def test_an_unknown_refund_is_none_and_a_refund_can_go_abnormal(channel, sim):
    assert channel.query_refund("K20261125024R1") is None
    paid_order(channel, sim, "K20261125024P1", "8.00")
    channel.refund("K20261125024P1", "K20261125024R1", yuan("8.00"), yuan("8.00"), "退费")
    sim.post("/__sim__/refunds/K20261125024R1/state", json={"state": "ABNORMAL"}).raise_for_status()
    assert channel.query_refund("K20261125024R1").state is RefundState.ABNORMAL


# -- faults ------------------------------------------------------------------------------------------

def test_a_lost_reply_to_a_code_charge_is_unknown_but_the_query_shows_the_charge(server, sim):
    inject(sim, operation="code.charge", kind="lost_reply", hang_seconds=2, count=1)
    with PaymentChannelHttpAdapter(server.url, merchant_id=MERCHANT, timeout=0.5) as impatient:
        with pytest.raises(UpstreamUnknown) as unknown:
            impatient.charge_payment_code("K20261125030P1", PAID_AT_ONCE, yuan("35.00"), "门诊缴费")
        assert unknown.value.code == "TIMEOUT"
        status = impatient.query("K20261125030P1")
    assert status.state is TradeState.SUCCESS and status.paid_amount == yuan("35.00")


def test_a_lost_reply_to_a_refund_is_unknown_and_the_retry_returns_the_same_refund(server, sim, channel):
    paid_order(channel, sim, "K20261125031P1", "60.00")
    inject(sim, operation="refund.create", kind="lost_reply", hang_seconds=2, count=1)
    with PaymentChannelHttpAdapter(server.url, merchant_id=MERCHANT, timeout=0.5) as impatient, \
            pytest.raises(UpstreamUnknown):
        impatient.refund("K20261125031P1", "K20261125031R1", yuan("60.00"), yuan("60.00"), "退费")
    found = channel.query_refund("K20261125031R1")
    retried = channel.refund("K20261125031P1", "K20261125031R1", yuan("60.00"), yuan("60.00"), "退费")
    assert found is not None and retried.refund_id == found.refund_id
    assert channel.query("K20261125031P1").refunded_amount == yuan("60.00")


def test_a_timeout_before_the_channel_acts_creates_nothing(server, sim):
    inject(sim, operation="qr.create", kind="timeout", hang_seconds=2, count=1)
    with PaymentChannelHttpAdapter(server.url, merchant_id=MERCHANT, timeout=0.5) as impatient:
        with pytest.raises(UpstreamUnknown):
            impatient.create_qr_order("K20261125032P1", yuan("1.00"), "门诊缴费", 300)
        assert impatient.query("K20261125032P1") is None


@pytest.mark.parametrize(("code", "error"), [("SIM_FAULT", UpstreamUnknown), ("CONFLICT", UpstreamRefused)])
def test_an_injected_error_is_an_outage_or_a_refusal_by_its_code(channel, sim, code, error):
    inject(sim, operation="order.query", kind="error", code=code, message="通道维护中", count=1)
    with pytest.raises(error) as raised:
        channel.query("K20261125033P1")
    assert raised.value.message == "通道维护中"


def test_a_wrong_merchant_is_refused(server, sim):
    with PaymentChannelHttpAdapter(server.url, merchant_id="1900000000", timeout=5) as stranger, \
            pytest.raises(UpstreamRefused) as refused:
        stranger.create_qr_order("K20261125034P1", yuan("1.00"), "门诊缴费", 300)
    assert refused.value.code == "MCH_NOT_EXISTS"


def test_an_amount_sent_as_a_float_is_refused_on_the_wire(sim):
    reply = sim.post("/pay/v1/qr-orders", headers={"X-Merchant-Id": MERCHANT}, json={
        "out_trade_no": "K20261125035P1", "amount": 12.5, "description": "门诊缴费", "expire_seconds": 300})
    assert reply.status_code == 422
    assert reply.json() == {"code": "INVALID", "message": "请求参数有误：amount"}


def test_the_journal_keeps_the_shape_of_a_payment_code_not_the_code(channel, sim):
    channel.charge_payment_code("K20261125036P1", WECHAT_CODE, yuan("1.00"), "门诊缴费")
    call = sim.get("/__sim__/calls", params={"operation": "code.charge"}).json()[-1]
    assert call["request"]["auth_code"] == "134567********6789"


# -- statement ---------------------------------------------------------------------------------------

def test_the_statement_lists_the_days_trades_and_refunds_and_parses_back_exactly(channel, sim, state):
    paid_order(channel, sim, "K20261125040P1", "25.50")
    channel.charge_payment_code("K20261125041P1", ALIPAY_CODE, yuan("130.20"), "门诊缴费")
    paid_order(channel, sim, "K20261125042P1", "9.99")
    channel.refund("K20261125040P1", "K20261125040R1", yuan("5.50"), yuan("25.50"), "部分退费")
    channel.create_qr_order("K20261125043P1", yuan("77.00"), "门诊缴费", 300)  # never paid: not listed
    today = state.today()

    statement = channel.parse_statement(channel.statement(today))

    orders = {o["out_trade_no"]: o for o in sim.get("/__sim__/state/orders").json()}
    paid = [o for o in orders.values() if o["state"] in ("SUCCESS", "REFUND")]
    refunds = sim.get("/__sim__/state/refunds").json()
    assert sorted(t.out_trade_no for t in statement.trades) == sorted(o["out_trade_no"] for o in paid)
    assert [r.out_refund_no for r in statement.refunds] == ["K20261125040R1"]
    assert sum(t.amount for t in statement.trades) == sum(Decimal(o["paid_amount"]) for o in paid) \
        == statement.summary.trade_amount == yuan("165.69")
    assert sum(r.refund_amount for r in statement.refunds) == sum(Decimal(r["refund_amount"]) for r in refunds) \
        == statement.summary.refund_amount == yuan("5.50")
    trade = next(t for t in statement.trades if t.out_trade_no == "K20261125041P1")
    assert (trade.channel, trade.trade_type, trade.merchant_id, trade.fee) == (
        PaymentChannel.ALIPAY, "MICROPAY", MERCHANT, yuan("0.78"))
    assert trade.transaction_id == orders["K20261125041P1"]["transaction_id"]
    assert trade.time.date() == today
    refund = statement.refunds[0]
    assert (refund.refund_id, refund.amount, refund.fee, refund.refund_state) == (
        refunds[0]["refund_id"], yuan("25.50"), yuan("-0.03"), RefundState.PROCESSING)
    assert statement.summary.fee_total == sum(t.fee for t in statement.trades) + refund.fee


def test_the_statement_has_the_channels_shape_on_the_wire(channel, sim, state):
    paid_order(channel, sim, "K20261125044P1", "25.50")
    text = channel.statement(state.today())
    lines = text.split("\r\n")

    assert lines[0].startswith("交易时间,商户号,支付渠道,渠道订单号,商户订单号")
    assert lines[1].startswith("`") and all(field.startswith("`") for field in lines[1].split(","))
    assert lines[2] == "总交易单数,总交易金额,总退款单数,总退款金额,手续费总金额"
    assert lines[3] == "`1,`25.50,`0,`0.00,`0.15"
    assert lines[4:] == [""]


def test_a_statement_only_holds_its_own_day_and_tomorrows_is_not_ready(channel, sim, state):
    paid_order(channel, sim, "K20261125045P1", "10.00")
    day = state.today()
    sim.post("/__sim__/clock", json={"advance_seconds": 24 * 3600}).raise_for_status()
    paid_order(channel, sim, "K20261125046P1", "20.00")

    assert [t.out_trade_no for t in channel.parse_statement(channel.statement(day)).trades] == ["K20261125045P1"]
    assert [t.out_trade_no for t in channel.parse_statement(channel.statement(state.today())).trades] == [
        "K20261125046P1"]
    with pytest.raises(UpstreamRefused) as refused:
        channel.statement(state.today() + dt.timedelta(days=1))
    assert refused.value.code == "STATEMENT_NOT_READY"


# -- control surface ---------------------------------------------------------------------------------

def test_orders_and_refunds_can_be_added_and_loaded_but_not_beyond_what_was_paid(channel, sim):
    added = sim.post("/__sim__/data/orders", json=[
        {"out_trade_no": "K20261124050P1", "amount": "40.00", "state": "SUCCESS", "description": "门诊缴费",
         "created_at": "2026-11-24T15:00:00+08:00"},
        {"out_trade_no": "K20261124051P1", "amount": "12.00"},
    ])
    assert added.json() == {"added": 2}
    status = channel.query("K20261124050P1")
    assert (status.state, status.paid_amount, status.channel) == (TradeState.SUCCESS, yuan("40.00"),
                                                                  PaymentChannel.WECHAT)
    assert channel.query("K20261124051P1").state is TradeState.NOTPAY

    too_much = sim.post("/__sim__/data/refunds", json=[
        {"out_refund_no": "K20261124050R1", "out_trade_no": "K20261124050P1", "refund_amount": "40.01"}])
    assert too_much.status_code == 422
    sim.post("/__sim__/data/refunds", json=[
        {"out_refund_no": "K20261124050R1", "out_trade_no": "K20261124050P1", "refund_amount": "40.00",
         "state": "SUCCESS", "created_at": "2026-11-24T16:00:00+08:00"}]).raise_for_status()
    assert channel.query("K20261124050P1").state is TradeState.REFUND
    yesterday = channel.parse_statement(channel.statement(dt.date(2026, 11, 24)))
    assert (len(yesterday.trades), len(yesterday.refunds), yesterday.summary.refund_amount) == (1, 1, yuan("40.00"))

    snapshot = sim.get("/__sim__/state").json()
    sim.post("/__sim__/reset").raise_for_status()
    sim.post("/__sim__/load", json=snapshot).raise_for_status()
    assert sim.get("/__sim__/state").json() == snapshot


def test_the_payment_simulator_is_registered():
    assert "payment" in registry.NAMES
    assert registry.create("payment").title.startswith("medkiosk · payment")
