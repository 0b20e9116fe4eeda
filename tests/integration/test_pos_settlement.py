"""The bank POS's daily settlement batch (批结算) and its reconciliation: the real service, a real agent
with its simulated POS, the simulators, on SQLite and PostgreSQL.

The agent settles the POS, keeps the batch in its outbox until the service has it, and the daily
reconciliation compares the batch's lines with our card payments kiosk by kiosk.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import func, select

from medkiosk.agent.pos import BATCHES
from medkiosk.services.clock import FrozenClock
from medkiosk.services.reconciliation import ReconciliationService
from medkiosk.store.models import PaymentOrder
from medkiosk.store.models_pos import PosSettlementBatch

from test_bank_card import CardWorld, world  # noqa: F401  (fixture: a stack with a card-paying agent)


def pay_by_card(world, persona: str = "self_pay") -> dict:
    order = world.start_card_payment(persona)
    reply = world.agent.post(f"/local/pos/sale/{order['order_no']}")
    assert reply.status_code == 200, reply.text
    return reply.json()


def settle_and_deliver(world) -> dict:
    """Settle the POS now (as the schedule does at bank_pos_settle_at) and wait for the service to have it."""
    entry = world.runtime.pos.settle(wait=10)
    assert entry is not None
    give_up = time.monotonic() + 10
    while world.runtime.pos.outbox.pending() and time.monotonic() < give_up:
        time.sleep(0.1)
    assert world.runtime.pos.outbox.pending() == []
    return entry


def stored_batches(world) -> list[PosSettlementBatch]:
    with world.stack.container.uow() as uow:
        return list(uow.session.scalars(select(PosSettlementBatch)))


def reconcile(world):
    container = world.stack.container
    settings = container.settings
    service = ReconciliationService(
        container.uow, FrozenClock(datetime.now(timezone.utc) + timedelta(days=1)), channel=container.channel,
        his=container.his, insurance=container.insurance, tz=settings.tz, hospital_admdvs=settings.hospital_admdvs,
        pay_window=timedelta(seconds=settings.pay_window_seconds))
    view = service.run(datetime.now(settings.tz).date())
    _, rows = service.run_detail(view.id)
    return view, rows


def test_a_settled_batch_is_reported_once_and_a_day_that_agrees_has_no_discrepancy(world):
    paid = pay_by_card(world)
    assert paid["state"] == "completed"
    assert world.sim("his", "POST", "/__sim__/faults", json={
        "operation": "payments.post", "kind": "error", "code": "REFUSED", "message": "该处方已被医生作废",
        "count": 1}).status_code == 200
    voided = pay_by_card(world)
    world.wait_for(voided["order_no"], "refunded")

    entry = settle_and_deliver(world)

    batch = entry["batch"]
    assert [line["kind"] for line in batch["lines"]] == ["sale", "sale", "void"]
    assert (batch["sale_count"], batch["void_count"], batch["refund_count"]) == (2, 1, 0)
    assert Decimal(batch["net_amount"]) == Decimal(paid["paid_amount"])
    again = world.runtime.pos.client.post(BATCHES, json=batch)  # the reply was lost: the agent sends it again
    assert again.status_code == 200 and again.json()["stored"] is False
    rows = stored_batches(world)
    assert len(rows) == 1 and rows[0].device_id == "K001" and rows[0].net_amount == Decimal(paid["paid_amount"])
    assert world.pos.open_batch == []  # the next sale opens the next batch

    view, found = reconcile(world)

    assert view.discrepancy_count == 0, [(d.kind, d.reference, d.message) for d in found]
    figures = view.figures["bank_pos"]
    assert (figures["batches"], figures["lines"], figures["matched_lines"], figures["our_card_transactions"]) == \
        (1, 3, 3, 3)


def test_differences_planted_on_either_side_are_found_exactly(world):
    clean = pay_by_card(world)
    mismatched = pay_by_card(world)
    unrecorded = pay_by_card(world, "local_employee")
    assert {o["state"] for o in (clean, mismatched, unrecorded)} == {"completed"}
    container = world.stack.container
    # 1. Our journal records another amount than the POS took.
    with container.uow() as uow:
        uow.session.get(PaymentOrder, mismatched["order_no"]).paid_amount += Decimal("1.00")
        uow.commit()
    # 2. A card was charged on the kiosk's POS for an order this system never had.
    stray = "PO20261126AAAAAAAAAAP1"
    world.pos.sale(Decimal("8.80"), stray)
    # 3. A refund made on the POS by hand, for a sale of ours.
    reference = world.row(clean["order_no"]).transaction_id
    world.pos.refund(Decimal("1.00"), reference, "PO20261126BBBBBBBBBBR1")
    # 4. A sale our journal has as paid is missing from the terminal's batch.
    world.pos.open_batch[:] = [line for line in world.pos.open_batch if line.key != f"{unrecorded['order_no']}P1"]

    settle_and_deliver(world)
    view, found = reconcile(world)

    assert {(d.source, d.kind, d.reference) for d in found} == {
        ("bank_pos", "amount_mismatch", f"{mismatched['order_no']}P1"),
        ("bank_pos", "pos_only", stray),
        ("bank_pos", "refund_mismatch", "PO20261126BBBBBBBBBBR1"),
        ("bank_pos", "ours_only", f"{unrecorded['order_no']}P1"),
    }
    by_kind = {d.kind: d for d in found}
    assert by_kind["amount_mismatch"].ours - by_kind["amount_mismatch"].theirs == Decimal("1.00")
    assert by_kind["pos_only"].theirs == Decimal("8.80") and "退货" in by_kind["pos_only"].fix
    assert by_kind["ours_only"].order_no == unrecorded["order_no"] and by_kind["ours_only"].severity == "critical"


def test_a_kiosk_that_took_cards_but_never_settled_is_reported(world):
    paid = pay_by_card(world)

    view, found = reconcile(world)

    assert [(d.source, d.kind, d.reference, d.severity) for d in found] == [
        ("bank_pos", "batch_missing", "K001", "critical")]
    assert found[0].ours == Decimal(paid["paid_amount"]) and view.figures["bank_pos"]["missing_batches"] == 1


def test_the_agent_settles_once_a_day_at_its_settlement_time(world):
    pos = world.runtime.pos
    pos.settle_at = "00:00"  # every moment is past today's settlement time
    pos._mark_settled(datetime.now(pos.tz).date() - timedelta(days=1))  # yesterday was settled
    pay_by_card(world)
    give_up = time.monotonic() + 10
    while not stored_batches(world) and time.monotonic() < give_up:
        time.sleep(0.1)
    time.sleep(1)  # a few more rounds: none settles again
    rows = stored_batches(world)
    assert len(rows) == 1 and rows[0].business_date == datetime.now(pos.tz).date()
    with world.stack.container.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(PosSettlementBatch)) == 1
