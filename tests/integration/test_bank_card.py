"""Paying by bank card on the kiosk's POS: the real service, a real agent with its simulated POS, the simulators.

The agent charges the card and reports the outcome; the service takes the payment forward or
closes the order, and when a card payment is unwound the agent voids it on the POS.
"""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest

from medkiosk.demo import start_stack
from medkiosk.settings import Settings
from medkiosk.store.models import PaymentOrder


@pytest.fixture
def world(database_url, tmp_path):
    stack = start_stack(Settings(database_url=database_url, var_dir=tmp_path, recovery_seconds=0,
                                 upstream_timeout_seconds=2), agent_overrides={"heartbeat_seconds": 0.3})
    try:
        yield CardWorld(stack)
    finally:
        stack.stop()


class CardWorld:
    def __init__(self, stack) -> None:
        self.stack = stack
        self.agent = httpx.Client(base_url=stack.agents["K001"].url, timeout=30)
        self.runtime = stack.agents["K001"].server.config.app.state.agent
        self.pos = self.runtime.drivers.bank_pos

    def sim(self, name: str, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.stack.simulators[name].url + path, timeout=10, **kwargs)

    def identify(self, persona: str) -> None:
        assert self.agent.post("/local/demo/id-card", json={"persona": persona}).status_code == 200
        outcome = self.agent.get("/local/identify/wait", params={"timeout": 10}).json()
        assert outcome["outcome"] == "identified", outcome

    def start_card_payment(self, persona: str = "self_pay") -> dict:
        self.identify(persona)
        visit = self.agent.get("/local/api/kiosk/payments/bills").json()["visits"][0]
        order = self.agent.post("/local/api/kiosk/payments", json={"visit_no": visit["visit_no"], "mode": "self_pay"})
        assert order.status_code == 200, order.text
        order = order.json()
        waiting = self.agent.post(f"/local/api/kiosk/payments/{order['order_no']}/pay", json={"method": "bank_card"})
        assert waiting.status_code == 200, waiting.text
        waiting = waiting.json()
        assert waiting["state"] == "awaiting_payment"
        assert waiting["pos"] == {"trade_no": f"{order['order_no']}P1", "amount": visit["total"]}
        return waiting

    def row(self, order_no: str) -> PaymentOrder:
        with self.stack.container.uow() as uow:
            return uow.session.get(PaymentOrder, order_no)

    def wait_for(self, order_no: str, state: str, seconds: float = 15) -> PaymentOrder:
        give_up = time.monotonic() + seconds
        while time.monotonic() < give_up:
            row = self.row(order_no)
            if row.state == state:
                return row
            time.sleep(0.2)
        raise AssertionError(f"{order_no} is {self.row(order_no).state}, not {state}")


def test_a_patient_pays_by_bank_card_and_the_bill_is_posted(world):
    order = world.start_card_payment()
    reply = world.agent.post(f"/local/pos/sale/{order['order_no']}")
    assert reply.status_code == 200, reply.text
    done = reply.json()
    assert done["state"] == "completed" and done["pay_method"] == "bank_card" and done["receipt_no"]
    sale = world.pos.query(f"{order['order_no']}P1")
    assert sale.amount == Decimal(order["split"]["cash"])
    row = world.row(order["order_no"])
    assert row.paid_amount == sale.amount and row.transaction_id == sale.reference
    posted = world.sim("his", "GET", "/__sim__/state/payments").json()
    assert [p["channel"] for p in posted if p["idempotency_key"] == f"{order['order_no']}:post"] == ["bank_card"]
    assert world.runtime.pos.outbox.pending() == []


def test_a_declined_card_charges_nothing_and_the_patient_can_pay_by_qr_instead(world):
    order = world.start_card_payment()
    world.pos.set_decline(True, "交易被拒绝：余额不足")
    reply = world.agent.post(f"/local/pos/sale/{order['order_no']}").json()
    assert reply["state"] == "closed" and "余额不足" in reply["message"] and reply["paid_amount"] == "0.00"
    again = world.agent.post("/local/api/kiosk/payments", json={"visit_no": order["visit"]["visit_no"],
                                                                "mode": "self_pay"}).json()
    assert again["state"] == "presettled"


def test_a_sale_whose_answer_was_lost_is_found_on_the_pos_and_completes(world):
    order = world.start_card_payment()
    world.pos.set_lose_next_reply()
    reply = world.agent.post(f"/local/pos/sale/{order['order_no']}")
    assert reply.status_code == 202 and "请勿重复刷卡" in reply.json()["next_step"]
    assert world.row(order["order_no"]).state == "awaiting_payment"
    row = world.wait_for(order["order_no"], "completed")  # the agent's round asks the POS and reports
    assert row.paid_amount == Decimal(order["split"]["cash"])


def test_a_sale_reported_while_the_service_is_down_is_sent_again_from_the_outbox(world):
    from concurrent.futures import ThreadPoolExecutor

    from medkiosk.api.app import create_app
    from medkiosk.serving import start_in_thread

    order = world.start_card_payment()
    world.pos.sale_seconds = 1.5  # the patient is entering the PIN when the service goes down
    service = world.stack.service
    with ThreadPoolExecutor(1) as pool:
        paying = pool.submit(world.agent.post, f"/local/pos/sale/{order['order_no']}")
        time.sleep(0.5)
        service.stop()
        reply = paying.result()
    assert reply.status_code == 202 and "请勿重复刷卡" in reply.json()["next_step"]
    assert [r["status"] for r in world.runtime.pos.outbox.pending()] == ["approved"]  # kept on disk
    world.stack.service = start_in_thread(create_app(container=world.stack.container), host=service.host,
                                          port=service.port, name="service")
    row = world.wait_for(order["order_no"], "completed")
    assert row.paid_amount == Decimal(order["split"]["cash"])
    give_up = time.monotonic() + 10  # the agent drops it once the service's reply reaches it
    while world.runtime.pos.outbox.pending() and time.monotonic() < give_up:
        time.sleep(0.1)
    assert world.runtime.pos.outbox.pending() == []


def test_a_card_payment_his_refuses_is_voided_on_the_pos_and_refunded(world):
    order = world.start_card_payment()
    assert world.sim("his", "POST", "/__sim__/faults", json={
        "operation": "payments.post", "kind": "error", "code": "REFUSED", "message": "该处方已被医生作废",
        "count": 1}).status_code == 200
    reply = world.agent.post(f"/local/pos/sale/{order['order_no']}").json()
    assert reply["state"] == "refunding"
    row = world.wait_for(order["order_no"], "refunded")  # the agent's round voids the sale on the POS
    void = world.pos.query(f"{order['order_no']}R1")
    assert void is not None and void.kind == "void" and void.original_reference == row.transaction_id
    assert row.refunded_amount == row.paid_amount == void.amount
