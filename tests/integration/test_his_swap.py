"""Swapping a registration paid in the hospital app for an insurance one (换号, tender #11): the HIS
side (start, posting completes it, release, lapse, refusals, the app refund recorded) and the app's
trade at the payment channel, refunded exactly once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from medkiosk.adapters.errors import UpstreamRefused
from medkiosk.adapters.his.http import HisHttpAdapter
from medkiosk.adapters.his.port import PaymentChannel, PaymentPosting, Registration, RegistrationStatus
from medkiosk.adapters.payment import PaymentChannelHttpAdapter, RefundState, TradeState
from medkiosk.serving import BackgroundServer, start_in_thread
from medkiosk.simulators.his.app import create_app
from medkiosk.simulators.his.data import app_payments
from medkiosk.simulators.payment import PaymentState
from medkiosk.simulators.payment import create_app as create_payment_app
from medkiosk.simulators.personas import PERSONAS

from simulator_fixtures import advance_to, sim_now, simulator_fixtures

server, sim = simulator_fixtures(create_app, name="his-sim")

LOCAL = PERSONAS["local_employee"]
CROSS = PERSONAS["cross_province_filed"]
SELF_PAY = PERSONAS["self_pay"]
MERCHANT = "1900000109"


@pytest.fixture
def his(server, sim) -> Iterator[HisHttpAdapter]:
    with HisHttpAdapter(server.url, timeout=5) as adapter:
        yield adapter


def tomorrow(sim) -> dt.date:
    return sim_now(sim).date() + dt.timedelta(days=1)


def tomorrows_swappable(his, sim, persona=CROSS) -> Registration:
    """The persona's registration of tomorrow paid in the app (tomorrow, so no test depends on the hour)."""
    return next(r for r in his.swappable(persona.patient_id) if r.date == tomorrow(sim))


def swap_posting(registration: Registration, key: str = "") -> PaymentPosting:
    """The swap's fee paid as an insurance bill: the fund pays half, the rest at the kiosk."""
    assert registration.fee is not None and registration.swap_visit_no and registration.swap_fee_order_no
    fund = (registration.fee / 2).quantize(Decimal("0.01"))
    return PaymentPosting(
        idempotency_key=key or f"PO-{registration.registration_no}-swap", patient_id=registration.patient_id,
        visit_no=registration.swap_visit_no, order_nos=[registration.swap_fee_order_no], total=registration.fee,
        fund=fund, account=Decimal("0.00"), cash=registration.fee - fund, channel=PaymentChannel.WECHAT,
        trade_no=f"4200{registration.registration_no}", insurance_settlement_id=f"JS{registration.registration_no}",
        paid_at=dt.datetime.now(dt.UTC).replace(microsecond=0))


def refusal_code(call) -> str:
    with pytest.raises(UpstreamRefused) as refused:
        call()
    assert refused.value.message
    return refused.value.code


# -- what may be swapped -----------------------------------------------------------------------------
def test_the_swappable_registrations_are_those_paid_in_the_app_and_not_over_earliest_first(his, sim):
    for persona in (LOCAL, CROSS):
        listed = his.swappable(persona.patient_id)
        assert listed and [(r.date, r.half_day.value) for r in listed] == sorted(
            (r.date, r.half_day.value) for r in listed)
        assert all(r.status is RegistrationStatus.REGISTERED and r.source == "app" and r.paid_in_app
                   and r.app_paid_amount == r.fee and r.checked_in_at is None and not r.swapping
                   and r.swapped_at is None and not r.app_refund_due for r in listed)
        assert tomorrow(sim) in [r.date for r in listed]
    # An appointment paid in the app but not picked up is not a registration yet.
    assert all(r.status is RegistrationStatus.BOOKED for r in his.appointments(LOCAL.patient_id))
    assert not {r.registration_no for r in his.appointments(LOCAL.patient_id)} & {
        r.registration_no for r in his.swappable(LOCAL.patient_id)}
    assert his.swappable(SELF_PAY.patient_id) == []


def test_a_registration_whose_half_day_has_ended_is_no_longer_swappable(his, sim):
    registration = tomorrows_swappable(his, sim)
    advance_to(sim, dt.datetime.combine(registration.date, dt.time(12, 5), tzinfo=sim_now(sim).tzinfo))
    assert registration.registration_no not in [r.registration_no for r in his.swappable(CROSS.patient_id)]
    assert refusal_code(lambda: his.start_swap(registration.registration_no, idempotency_key="SW-late")) \
        == "half_day_over"


# -- swapping --------------------------------------------------------------------------------------------
def test_swapping_bills_the_fee_on_a_new_visit_and_its_posting_keeps_the_number_and_owes_the_app_refund(his, sim):
    before = tomorrows_swappable(his, sim)
    moment = sim_now(sim)
    started = his.start_swap(before.registration_no, idempotency_key="SW-1")
    assert started.status is RegistrationStatus.REGISTERED and started.swapping
    assert (started.queue_no, started.doctor_code, started.date, started.half_day) == (
        before.queue_no, before.doctor_code, before.date, before.half_day)
    assert started.swap_visit_no and started.swap_visit_no != before.visit_no
    assert dt.timedelta(minutes=14) <= started.swap_hold_until - moment <= dt.timedelta(minutes=16)

    [visit] = [v for v in his.unpaid_orders(CROSS.patient_id) if v.visit_no == started.swap_visit_no]
    assert visit.total_amount == before.fee == sum(i.amount for i in visit.items)
    assert [i.order_no for i in visit.items] == [started.swap_fee_order_no] * len(visit.items)
    assert any(i.insurance_code and not i.self_pay_only for i in visit.items)
    again = his.start_swap(before.registration_no, idempotency_key="SW-1")
    assert (again.swap_visit_no, again.swap_fee_order_no) == (started.swap_visit_no, started.swap_fee_order_no)
    assert len([v for v in his.unpaid_orders(CROSS.patient_id) if v.visit_no == started.swap_visit_no]) == 1

    payment = his.post_payment(swap_posting(started))

    swapped = his.registration(before.registration_no)
    assert swapped.status is RegistrationStatus.REGISTERED and not swapped.swapping
    assert (swapped.queue_no, swapped.doctor_code, swapped.date, swapped.half_day, swapped.window_start) == (
        before.queue_no, before.doctor_code, before.date, before.half_day, before.window_start)
    assert swapped.receipt_no == payment.receipt_no and swapped.swapped_at is not None
    assert swapped.app_refund_due and swapped.app_refund_no is None
    assert (swapped.app_trade_no, swapped.app_paid_amount) == (before.app_trade_no, before.app_paid_amount)
    assert swapped.visit_no == started.swap_visit_no and swapped.fee_order_no == started.swap_fee_order_no
    assert all(v.visit_no != started.swap_visit_no for v in his.unpaid_orders(CROSS.patient_id))
    assert before.registration_no not in [r.registration_no for r in his.swappable(CROSS.patient_id)]
    # Swapped once is enough; and it cannot be given up any more.
    assert refusal_code(lambda: his.start_swap(before.registration_no, idempotency_key="SW-1b")) == "not_swappable"
    assert refusal_code(lambda: his.release_swap(before.registration_no, idempotency_key="SW-1-R")) \
        == "already_swapped"


def test_the_kiosk_tells_the_his_once_the_app_payment_is_refunded(his, sim):
    registration = tomorrows_swappable(his, sim, LOCAL)
    assert refusal_code(lambda: his.app_refunded(registration.registration_no, idempotency_key="AR-0",
                                                 refund_no="RF0001")) == "no_app_refund_due"
    started = his.start_swap(registration.registration_no, idempotency_key="SW-2")
    his.post_payment(swap_posting(started))

    done = his.app_refunded(registration.registration_no, idempotency_key="AR-1", refund_no="RF0002")
    assert not done.app_refund_due and done.app_refund_no == "RF0002" and done.swapped_at is not None
    again = his.app_refunded(registration.registration_no, idempotency_key="AR-1", refund_no="RF0002")
    assert again.app_refund_no == "RF0002" and not again.app_refund_due
    assert refusal_code(lambda: his.app_refunded(registration.registration_no, idempotency_key="AR-2",
                                                 refund_no="RF0003")) == "app_refund_recorded"


# -- giving a swap up ----------------------------------------------------------------------------------
def test_releasing_a_swap_leaves_the_registration_as_it_was_and_a_late_posting_is_refused(his, sim):
    before = tomorrows_swappable(his, sim)
    started = his.start_swap(before.registration_no, idempotency_key="SW-3")

    released = his.release_swap(before.registration_no, idempotency_key="SW-3-R")

    assert released.model_dump() == before.model_dump()
    assert his.registration(before.registration_no).model_dump() == before.model_dump()
    assert all(v.visit_no != started.swap_visit_no for v in his.unpaid_orders(CROSS.patient_id))
    assert his.release_swap(before.registration_no, idempotency_key="SW-3-R").model_dump() == before.model_dump()
    assert refusal_code(lambda: his.post_payment(swap_posting(started))) == "SWAP_RELEASED"
    # Nothing is left half-done: the patient may start again.
    assert his.start_swap(before.registration_no, idempotency_key="SW-4").swapping


def test_a_swap_not_posted_in_time_lapses_and_the_registration_is_as_it_was(his, sim):
    before = tomorrows_swappable(his, sim)
    started = his.start_swap(before.registration_no, idempotency_key="SW-5")
    advance_to(sim, started.swap_hold_until + dt.timedelta(seconds=1))

    assert his.registration(before.registration_no).model_dump() == before.model_dump()
    assert all(v.visit_no != started.swap_visit_no for v in his.unpaid_orders(CROSS.patient_id))
    assert refusal_code(lambda: his.post_payment(swap_posting(started))) == "SWAP_RELEASED"
    # A retry of the lapsed swap's start answers the registration as it is now: no second swap.
    assert not his.start_swap(before.registration_no, idempotency_key="SW-5").swapping


# -- refusals ------------------------------------------------------------------------------------------
def test_only_a_valid_app_paid_registration_not_checked_in_and_not_being_swapped_can_be_swapped(his, sim):
    made_here = next(r for r in his.registrations_today(CROSS.patient_id) if not r.paid_in_app)
    assert refusal_code(lambda: his.start_swap(made_here.registration_no, idempotency_key="SW-6")) \
        == "not_swappable"
    [appointment, *_] = his.appointments(LOCAL.patient_id)
    assert refusal_code(lambda: his.start_swap(appointment.registration_no, idempotency_key="SW-7")) \
        == "not_swappable"

    registration = tomorrows_swappable(his, sim)
    his.start_swap(registration.registration_no, idempotency_key="SW-8")
    assert refusal_code(lambda: his.start_swap(registration.registration_no, idempotency_key="SW-9")) \
        == "swap_in_progress"
    assert refusal_code(lambda: his.cancel_registration(registration.registration_no, idempotency_key="CX-1",
                                                        reason="换号中退号")) == "swap_in_progress"
    other = tomorrows_swappable(his, sim, LOCAL)
    assert refusal_code(lambda: his.start_swap(other.registration_no, idempotency_key="SW-8")) \
        == "IDEMPOTENCY_CONFLICT"


def test_a_registration_already_checked_in_cannot_be_swapped(his, sim):
    registration = tomorrows_swappable(his, sim, LOCAL)
    sim.post("/__sim__/data/check_ins", json=[{
        "idempotency_key": "CI-swap", "kind": "registration", "reference": registration.registration_no,
        "patient_id": LOCAL.patient_id, "department_code": registration.department_code,
        "queue_no": str(registration.queue_no), "checked_in_at": sim_now(sim).isoformat()}]).raise_for_status()

    assert registration.registration_no not in [r.registration_no for r in his.swappable(LOCAL.patient_id)]
    assert refusal_code(lambda: his.start_swap(registration.registration_no, idempotency_key="SW-10")) \
        == "checked_in"


# -- the app's trade at the payment channel --------------------------------------------------------------
@pytest.fixture(scope="module")
def payment_server() -> Iterator[BackgroundServer]:
    background = start_in_thread(create_payment_app(), name="payment-sim")
    yield background
    background.stop()


@pytest.fixture
def channel(payment_server) -> Iterator[PaymentChannelHttpAdapter]:
    with httpx.Client(base_url=payment_server.url, timeout=5) as control:
        control.post("/__sim__/reset").raise_for_status()
    with PaymentChannelHttpAdapter(payment_server.url, merchant_id=MERCHANT, timeout=5) as adapter:
        yield adapter


def test_every_app_payment_of_the_his_is_a_paid_trade_at_the_channel(his, sim, channel):
    registrations = sim.get("/__sim__/state/registrations").json()
    paid_in_app = {r["app_trade_no"]: Decimal(r["app_paid_amount"]) for r in registrations if r["app_trade_no"]}
    assert paid_in_app == {p.out_trade_no: p.amount for p in app_payments(today=sim_now(sim).date())}
    for trade_no, amount in paid_in_app.items():
        trade = channel.query(trade_no)
        assert trade is not None and trade.state is TradeState.SUCCESS and trade.paid_amount == amount


def test_the_app_payment_of_a_swapped_registration_is_refunded_exactly_once(his, sim, channel):
    registration = tomorrows_swappable(his, sim)
    started = his.start_swap(registration.registration_no, idempotency_key="SW-11")
    his.post_payment(swap_posting(started))
    swapped = his.registration(registration.registration_no)
    assert swapped.app_refund_due and swapped.app_trade_no and swapped.app_paid_amount
    refund_no = f"RF{swapped.registration_no}"

    first = channel.refund(swapped.app_trade_no, refund_no, swapped.app_paid_amount, swapped.app_paid_amount,
                           "换号退APP挂号费")
    again = channel.refund(swapped.app_trade_no, refund_no, swapped.app_paid_amount, swapped.app_paid_amount,
                           "换号退APP挂号费")

    assert again.refund_id == first.refund_id and again.refund_amount == swapped.app_paid_amount
    with pytest.raises(UpstreamRefused) as refused:
        channel.refund(swapped.app_trade_no, f"{refund_no}B", swapped.app_paid_amount, swapped.app_paid_amount,
                       "换号退APP挂号费")
    assert refused.value.code == "NOT_ENOUGH_REFUNDABLE"
    assert channel.query_refund(refund_no).state is RefundState.SUCCESS
    trade = channel.query(swapped.app_trade_no)
    assert trade.state is TradeState.REFUND and trade.refunded_amount == swapped.app_paid_amount
    done = his.app_refunded(swapped.registration_no, idempotency_key=f"AR-{refund_no}", refund_no=refund_no)
    assert not done.app_refund_due and done.app_refund_no == refund_no


def test_a_payment_simulator_made_without_the_demo_holds_no_app_trade():
    assert PaymentState().snapshot()["orders"] == []
    assert len(PaymentState(demo=True).snapshot()["orders"]) == len(app_payments(today=dt.date.today()))
