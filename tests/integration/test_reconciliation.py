"""Daily reconciliation over real HTTP against every simulator, on SQLite and PostgreSQL.

Real payments go through the kiosk service first; then one-sided entries are planted on one side
only, and the run must find exactly those, each with the right classification.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from medkiosk.services.clock import FrozenClock
from medkiosk.services.reconciliation import EVENT_KIND, ReconciliationFailed, ReconciliationService
from medkiosk.store.models import Event, PaymentOrder, PaymentStep
from medkiosk.store.models_reconciliation import ReconciliationRun

from test_payments import simulators, world  # noqa: F401  (fixtures: the simulators, the service, a kiosk)

WECHAT_CODE = "130012345678901234"


def reconciler(world, clock: FrozenClock | None = None) -> ReconciliationService:
    """The service as the CLI builds it, with a clock already in tomorrow (only a finished day is run)."""
    container = world.container
    settings = container.settings
    return ReconciliationService(container.uow, clock or FrozenClock(datetime.now(timezone.utc) + timedelta(days=1)),
                                 channel=container.channel, his=container.his, insurance=container.insurance,
                                 tz=settings.tz, hospital_admdvs=settings.hospital_admdvs,
                                 pay_window=timedelta(seconds=settings.pay_window_seconds))


def today(world):
    return datetime.now(world.container.settings.tz).date()


def pay(world, key: str, *, mode: str = "self_pay", card: bool = False) -> dict:
    """A patient identifies, pays their first unpaid visit with a payment code, and it completes."""
    if card:
        world.kiosk.insert_insurance_card(key)
    else:
        world.kiosk.place_id_card(key)
    visit = world.kiosk.get("/api/kiosk/payments/bills")["visits"][0]
    order = world.kiosk.post("/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": mode})
    if order["state"] == "presettled":
        order = world.kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay",
                                 {"method": "payment_code", "auth_code": WECHAT_CODE})
    return order


def found(run_view, world) -> set[tuple[str, str, str]]:
    run, rows = reconciler(world).run_detail(run_view.id)
    return {(d.source, d.kind, d.reference) for d in rows}


def test_a_day_where_every_side_agrees_has_no_discrepancy(world):
    assert pay(world, "self_pay")["state"] == "completed"
    assert pay(world, "local_resident", mode="insurance", card=True)["state"] == "completed"
    world.fault("his", operation="payments.post", kind="error", code="REFUSED", message="该处方已被医生作废", count=1)
    assert pay(world, "local_employee")["state"] == "refunded"  # paid, then refunded: both on the statement

    view = reconciler(world).run(today(world))

    assert view.status == "succeeded" and view.discrepancy_count == 0, found(view, world)
    channel = view.figures["channel"]
    assert (channel["trades"], channel["refunds"], channel["matched_trades"], channel["matched_refunds"]) == (3, 1, 3, 1)
    assert view.figures["insurance"]["totals_consistent"] is True
    assert view.figures["his"]["kiosk_postings"] == 2


def test_the_hospital_apps_own_payments_on_the_statement_are_left_to_the_app(world):
    # The demo's app-paid registrations were paid in the app last evening: yesterday's statement has them.
    yesterday = today(world) - timedelta(days=1)
    app_trades = [t for t in world.sim("payment", "GET", "/__sim__/state/orders").json() if t["kind"] == "app"]
    assert app_trades

    view = reconciler(world, FrozenClock(datetime.now(timezone.utc))).run(yesterday)

    assert view.status == "succeeded" and view.discrepancy_count == 0, found(view, world)
    assert view.figures["channel"]["app_lines"] == len(app_trades) and view.figures["channel"]["matched_trades"] == 0


def test_one_sided_entries_planted_on_each_side_are_found_exactly(world):
    container = world.container
    clean = pay(world, "self_pay")
    refunded_here = pay(world, "self_pay")  # the patient's second visit
    his_cancelled = pay(world, "local_employee")
    insured = pay(world, "local_resident", mode="insurance", card=True)
    assert {o["state"] for o in (clean, refunded_here, his_cancelled, insured)} == {"completed"}

    # 1. Someone paid at the channel for an order number this system never recorded.
    stray = "PO20261125STRAY0001P1"
    container.channel.create_qr_order(stray, Decimal("12.34"), "门诊缴费", 300)
    assert world.sim("payment", "POST", f"/__sim__/pay/{stray}", json={"channel": "alipay"}).status_code == 200
    # 2. Our journal says an order was refunded; the channel never heard of the refund.
    order_no = refunded_here["order_no"]
    with container.uow() as uow:
        row = uow.session.get(PaymentOrder, order_no)
        row.state, row.refunded_amount = "refunded", row.paid_amount
        uow.session.add(PaymentStep(order_no=order_no, step="refund", key=f"{order_no}R1", status="succeeded",
                                    detail={"amount": str(row.paid_amount)}, started_at=datetime.now(timezone.utc)))
        uow.commit()
    # 3. A cashier cancelled a kiosk payment in HIS behind the kiosk's back.
    receipt = world.order(his_cancelled["order_no"]).receipt_no
    assert world.sim("his", "POST", f"/his/v1/payments/{receipt}/cancel",
                     json={"idempotency_key": "window-cancel-1", "reason": "窗口退费"}).status_code == 200
    # 4. The insurance platform cancelled a settlement this system still counts.
    settled = world.order(insured["order_no"])
    container.insurance.cancel_settlement(setl_id=settled.setl_id, mdtrt_id=settled.mdtrt_id,
                                          psn_no="32010000000000000002", insured_region="320100",
                                          msgid=container.insurance.new_msgid())

    view = reconciler(world).run(today(world))

    assert found(view, world) == {
        ("channel", "channel_only", stray),
        ("channel", "state_mismatch", f"{order_no}R1"),
        ("his", "state_mismatch", f"{order_no}:post"),  # HIS still has the refunded order as paid
        ("his", "state_mismatch", f"{his_cancelled['order_no']}:post"),
        ("insurance", "ours_only", settled.setl_id),
    }
    _, rows = reconciler(world).run_detail(view.id)
    by_reference = {d.reference: d for d in rows}
    assert by_reference[stray].theirs == Decimal("12.34") and "退款" in by_reference[stray].fix
    assert by_reference[f"{order_no}R1"].order_no == order_no and by_reference[f"{order_no}R1"].severity == "critical"
    assert by_reference[settled.setl_id].order_no == insured["order_no"]
    assert "已撤销" in by_reference[settled.setl_id].message
    with container.uow() as uow:
        events = list(uow.session.scalars(select(Event).where(Event.kind == EVENT_KIND)))
    assert sorted(e.details["discrepancy_id"] for e in events) == sorted(d.id for d in rows)
    assert {e.severity for e in events} <= {"warning", "critical"}


def test_a_statement_that_cannot_be_fetched_fails_the_run_and_alerts(world):
    pay(world, "self_pay")
    world.fault("payment", operation="statement.get", kind="error", count=1)

    with pytest.raises(ReconciliationFailed) as failed:
        reconciler(world).run(today(world))

    run, rows = reconciler(world).run_detail(failed.value.run_id)
    assert run.status == "failed" and run.error and rows == []
    assert [e.severity for e in world.events("reconciliation_failed")] == ["critical"]


def test_the_daily_run_happens_once_however_many_copies_of_the_service_wake(world):
    pay(world, "self_pay")
    clock = FrozenClock(datetime.now(timezone.utc) + timedelta(days=1))

    first = reconciler(world, clock).run_scheduled()
    second = reconciler(world, clock).run_scheduled()

    assert first is not None and first.business_date == today(world) and second is None
    with world.container.uow() as uow:
        assert len(uow.session.scalars(select(ReconciliationRun)).all()) == 1


def test_a_day_that_has_not_ended_is_refused(world):
    with pytest.raises(ValueError, match="not ended"):
        reconciler(world, FrozenClock(datetime.now(timezone.utc))).run(today(world))
