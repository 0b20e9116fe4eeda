"""Paying at the kiosk, over real HTTP against every simulator: each outcome of DESIGN 5."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.serving import start_in_thread
from medkiosk.settings import Settings, TerminalType
from medkiosk.simulators import registry
from medkiosk.simulators.personas import PERSONAS
from medkiosk.store.models import Event, PaymentOrder

from kiosk_client import Kiosk


@pytest.fixture(scope="module")
def simulators():
    servers = {name: start_in_thread(registry.create(name), name=f"{name}-sim") for name in registry.NAMES}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def world(database_url, simulators):
    for server in simulators.values():
        httpx.post(server.url + "/__sim__/reset")
    settings = Settings(database_url=database_url, recovery_seconds=0, upstream_timeout_seconds=2,
                        **{f"{name}_url": server.url for name, server in simulators.items()})
    container = build_container(settings)
    service = start_in_thread(create_app(container=container), name="service")
    kiosk = Kiosk(service.url, "K001", container.devices.enroll("K001", TerminalType.OUTPATIENT, location="门诊楼 1F"))
    yield World(container, kiosk, simulators)
    service.stop()
    container.close()


class World:
    def __init__(self, container, kiosk, simulators) -> None:
        self.container = container
        self.kiosk = kiosk
        self.sims = {name: server.url for name, server in simulators.items()}

    def sim(self, name: str, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.sims[name] + path, timeout=10, **kwargs)

    def fault(self, name: str, **spec) -> None:
        assert self.sim(name, "POST", "/__sim__/faults", json=spec).status_code == 200

    def phone_pays(self, order: dict, **body) -> None:
        trade = f"{order['order_no']}P1"
        response = self.sim("payment", "POST", f"/__sim__/pay/{trade}", json={"channel": "wechat", **body})
        assert response.status_code == 200, response.text

    def first_visit_with_items(self, bills: dict, *, self_pay_only: bool | None = None) -> dict:
        for visit in bills["visits"]:
            if self_pay_only is None or any(i["self_pay_only"] == self_pay_only for i in visit["items"]):
                return visit
        raise AssertionError("no such visit in the demo data")

    def order(self, order_no: str) -> PaymentOrder:
        with self.container.uow() as uow:
            return uow.session.get(PaymentOrder, order_no)

    def events(self, kind: str) -> list[Event]:
        with self.container.uow() as uow:
            return list(uow.session.scalars(select(Event).where(Event.kind == kind)))

    def unpaid_visit_numbers(self, key: str) -> set[str]:
        patient = PERSONAS[key].patient_id
        reply = self.sim("his", "GET", f"/his/v1/patients/{patient}/orders", params={"status": "unpaid"}).json()
        return {v["visit_no"] for v in reply["visits"]}


def self_pay_order(world) -> tuple[dict, dict]:
    """郑浩 (self-pay, ID card) starts paying his first visit as self-pay."""
    world.kiosk.place_id_card("self_pay")
    visit = world.first_visit_with_items(world.kiosk.get("/api/kiosk/payments/bills"))
    return visit, world.kiosk.post("/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": "self_pay"})


def test_a_self_pay_patient_pays_a_visit_by_qr_and_gets_a_receipt(world):
    kiosk = world.kiosk
    kiosk.place_id_card("self_pay")
    bills = kiosk.get("/api/kiosk/payments/bills")
    assert bills["insurance_available"] is False
    visit = world.first_visit_with_items(bills)
    order = kiosk.post("/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": "self_pay"})
    assert order["state"] == "presettled"
    assert order["split"]["cash"] == visit["total"] and order["split"]["fund"] == "0.00"
    waiting = kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    assert waiting["state"] == "awaiting_payment" and waiting["code_url"]
    assert kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "awaiting_payment"
    world.phone_pays(order)
    done = kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert done["state"] == "completed", done
    assert done["receipt_no"] and done["invoice_no"]
    assert visit["visit_no"] not in world.unpaid_visit_numbers("self_pay")
    receipt = kiosk.get(f"/api/kiosk/payments/{order['order_no']}/receipt")
    text = " ".join(line.get("text", "") for line in receipt["lines"])
    assert "门诊缴费凭条" in text and f"￥{visit['total']}" in text and "郑*" in text and "郑浩" not in text


def test_a_payment_not_made_in_time_is_closed_and_nothing_is_charged(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    closed = kiosk.post(f"/api/kiosk/payments/{order['order_no']}/cancel")
    assert closed["state"] == "closed" and closed["paid_amount"] == "0.00"
    assert world.container.channel.query(f"{order['order_no']}P1").state == "CLOSED"
    assert visit["visit_no"] in world.unpaid_visit_numbers("self_pay")


def test_a_payment_that_races_the_cancel_is_completed_not_lost(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.phone_pays(order)  # the patient paid just as they pressed cancel
    after = kiosk.post(f"/api/kiosk/payments/{order['order_no']}/cancel")
    assert after["state"] == "completed"


def test_the_channel_taking_a_different_amount_halts_refunds_and_alerts(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    wrong = str(Decimal(visit["total"]) + Decimal("1.00"))
    world.phone_pays(order, amount=wrong)
    result = kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert result["state"] == "refunded", result
    assert result["anomaly"] == "cash_paid" and result["refunded_amount"] == wrong
    assert "人工收费窗口" in result["next_step"]
    assert [e.details["check"] for e in world.events("payment_anomaly")] == ["cash_paid"]
    assert visit["visit_no"] in world.unpaid_visit_numbers("self_pay")
    slip = kiosk.get(f"/api/kiosk/payments/{order['order_no']}/receipt")
    assert "缴费异常凭条" in " ".join(line.get("text", "") for line in slip["lines"])


def test_his_refusing_the_posting_refunds_the_patient(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.fault("his", operation="payments.post", kind="error", code="REFUSED", message="该处方已被医生作废", count=1)
    world.phone_pays(order)
    result = kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert result["state"] == "refunded", result
    assert "作废" in result["message"]
    refund = world.container.channel.query_refund(f"{order['order_no']}R1")
    assert refund.state == "SUCCESS" and refund.refund_amount == Decimal(visit["total"])


def test_a_crash_after_payment_is_finished_by_the_recovery_worker(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.phone_pays(order)
    # The kiosk never asks again (the service died, the page was closed): recovery finds it.
    counts = world.container.payments.recover()
    assert counts.get("completed") == 1
    assert world.order(order["order_no"]).state == "completed"


def test_his_unreachable_during_posting_is_retried_with_the_same_key_and_posts_once(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.fault("his", operation="payments.post", kind="lost_reply", hang_seconds=3, count=1)
    world.phone_pays(order)
    stuck = kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert stuck["state"] == "posting"
    assert world.container.payments.recover().get("completed") == 1
    patient = PERSONAS["self_pay"].patient_id
    posted = world.sim("his", "GET", "/his/v1/payments", params={"patient_id": patient}).json()
    postings = posted["payments"] if isinstance(posted, dict) else posted
    assert len([p for p in postings if p["visit_no"] == visit["visit_no"]]) == 1


# -- insured patients ------------------------------------------------------------------------------
def settlements_of(world, mdtrt_id: str) -> list[dict]:
    state = world.sim("insurance", "GET", "/__sim__/state/settlements").json()
    rows = state.values() if isinstance(state, dict) else state
    return [s for s in rows if s.get("mdtrt_id") == mdtrt_id]


def valid(settlements: list[dict]) -> list[dict]:
    return [s for s in settlements if s["status"] == "valid"]


def insured_order(world, key: str = "same_province", **identify) -> tuple[dict, dict]:
    kiosk = world.kiosk
    kiosk.insert_insurance_card(key, **identify)
    bills = kiosk.get("/api/kiosk/payments/bills")
    assert bills["insurance_available"] is True
    visit = world.first_visit_with_items(bills)
    order = kiosk.post("/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": "insurance"})
    return visit, order


def test_an_insured_patient_sees_the_split_pays_the_cash_part_and_is_settled_once(world):
    visit, order = insured_order(world, "local_resident")
    assert order["state"] == "presettled", order
    split = {k: Decimal(v) for k, v in order["split"].items()}
    assert split["fund"] > 0 and split["cash"] > 0
    assert split["fund"] + split["account"] + split["cash"] == Decimal(visit["total"])
    assert order["cross_region_notice"] == ""  # a local patient: no 异地 notice
    world.kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.phone_pays(order)
    done = world.kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert done["state"] == "completed", done
    assert Decimal(done["paid_amount"]) == split["cash"]
    row = world.order(order["order_no"])
    assert len(valid(settlements_of(world, row.mdtrt_id))) == 1
    assert visit["visit_no"] not in world.unpaid_visit_numbers("local_resident")


def test_a_bill_the_personal_account_covers_completes_without_paying(world):
    visit, order = insured_order(world, "same_province")
    assert order["state"] == "completed", order
    assert order["split"]["cash"] == "0.00" and Decimal(order["split"]["account"]) > 0
    assert order["pay_method"] == "none"
    assert order["cross_region_notice"].startswith("异地医保（省内）")
    row = world.order(order["order_no"])
    assert len(valid(settlements_of(world, row.mdtrt_id))) == 1


def test_a_settlement_whose_reply_is_lost_is_reversed_and_settled_again_exactly_once(world):
    visit, order = insured_order(world, "local_resident")
    world.fault("insurance", operation="2207", kind="lost_reply", hang_seconds=4, count=1)
    world.kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.phone_pays(order)
    result = world.kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    if result["state"] != "completed":
        world.container.payments.recover()
        result = world.kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert result["state"] == "completed", result
    row = world.order(order["order_no"])
    settlements = settlements_of(world, row.mdtrt_id)
    assert len(valid(settlements)) == 1
    assert [s["status"] for s in settlements].count("reversed") == 1  # the lost one was reversed (冲正)
    assert row.setl_id == valid(settlements)[0]["setl_id"]


def test_a_refused_settlement_refunds_the_cash_part(world):
    visit, order = insured_order(world, "local_resident")
    cash = Decimal(order["split"]["cash"])
    assert cash > 0
    world.kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.fault("insurance", operation="2207", kind="error", message="结算失败：基金支付异常", count=1)
    world.phone_pays(order)
    result = world.kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert result["state"] == "refunded", result
    assert Decimal(result["refunded_amount"]) == cash
    assert visit["visit_no"] in world.unpaid_visit_numbers("local_resident")


def test_his_refusing_an_insured_posting_cancels_the_settlement_and_refunds(world):
    visit, order = insured_order(world, "local_resident")
    world.kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.fault("his", operation="payments.post", kind="error", code="REFUSED", message="该处方已被医生作废", count=1)
    world.phone_pays(order)
    result = world.kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert result["state"] == "refunded", result
    row = world.order(order["order_no"])
    assert [s["status"] for s in settlements_of(world, row.mdtrt_id)] == ["cancelled"]
    assert Decimal(result["refunded_amount"]) == Decimal(order["split"]["cash"])


def test_an_unfiled_cross_province_patient_is_told_why_and_offered_self_pay(world):
    kiosk = world.kiosk
    kiosk.insert_insurance_card("cross_province_unfiled")
    visit = world.first_visit_with_items(kiosk.get("/api/kiosk/payments/bills"))
    order = kiosk.post("/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": "insurance"})
    assert order["state"] == "failed"
    assert "备案" in order["message"] and order["offer_self_pay"] is True
    assert order["paid_amount"] == "0.00"


def test_a_patient_sees_their_payments_and_reprints_a_receipt_marked_as_such(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.phone_pays(order)
    assert kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "completed"
    kiosk.post("/api/kiosk/session/logout")
    kiosk.swipe_visit_card("self_pay")  # another day, another medium: the same patient
    history = kiosk.get("/api/kiosk/payments/history")
    assert [p["order_no"] for p in history["payments"]] == [order["order_no"]]
    copy = kiosk.get(f"/api/kiosk/payments/{order['order_no']}/receipt?reprint=true")
    assert "（补打）" in " ".join(line.get("text", "") for line in copy["lines"])
    assert world.order(order["order_no"]).details["reprints"] == {"receipt": 1}
    pdf = kiosk.request("GET", f"/api/kiosk/payments/{order['order_no']}/invoice.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_another_patient_cannot_see_or_reprint_someone_elses_payment(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    kiosk.insert_insurance_card("local_resident")
    assert kiosk.request("GET", f"/api/kiosk/payments/{order['order_no']}/receipt").status_code == 404
    assert kiosk.get("/api/kiosk/payments/history")["payments"] == []


def test_a_bad_payment_code_changes_nothing(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    refused = kiosk.request("POST", f"/api/kiosk/payments/{order['order_no']}/pay",
                            {"method": "payment_code", "auth_code": "12ab"})
    assert refused.status_code == 422 and "付款码" in refused.json()["message"]
    assert kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "presettled"


def test_a_payment_code_pays_at_once(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    done = kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay",
                      {"method": "payment_code", "auth_code": "130012345678901234"})
    assert done["state"] == "completed", done


def test_when_the_channel_cannot_create_the_qr_order_nothing_is_charged(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    world.fault("payment", operation="qr.create", kind="error", count=1)
    result = kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    assert result["state"] == "closed" and "未扣款" in result["message"]


def test_a_payment_code_shown_while_the_qr_code_is_on_screen_closes_the_qr_order_and_charges_the_code(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    done = kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay",
                      {"method": "payment_code", "auth_code": "130012345678901234"})
    assert done["state"] == "completed", done
    assert world.container.channel.query(f"{order['order_no']}P1").state == "CLOSED"
    charged = world.container.channel.query(f"{order['order_no']}P2")
    assert charged.state == "SUCCESS" and charged.amount == Decimal(visit["total"])
    assert world.order(order["order_no"]).out_trade_no == f"{order['order_no']}P2"


def test_a_qr_code_paid_just_before_a_payment_code_is_shown_is_not_charged_twice(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.phone_pays(order)
    done = kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay",
                      {"method": "payment_code", "auth_code": "130012345678901234"})
    assert done["state"] == "completed" and done["paid_amount"] == visit["total"]
    assert world.container.channel.query(f"{order['order_no']}P2") is None


def test_starting_a_visits_bill_again_closes_the_unconfirmed_attempt(world):
    kiosk = world.kiosk
    world.kiosk.insert_insurance_card("local_resident")
    visit = world.first_visit_with_items(kiosk.get("/api/kiosk/payments/bills"))
    first = kiosk.post("/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": "insurance"})
    assert Decimal(first["split"]["cash"]) > 0
    kiosk.post(f"/api/kiosk/payments/{first['order_no']}/pay", {"method": "qr"})
    again = kiosk.post("/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": "insurance"})
    assert again["state"] == "presettled", again["message"]
    earlier = world.order(first["order_no"])
    assert earlier.state == "closed" and earlier.visit_state == "withdrawn" and earlier.paid_amount == 0
    assert world.container.channel.query(f"{first['order_no']}P1").state == "CLOSED"


def test_a_second_bill_for_a_visit_whose_payment_is_being_settled_is_refused(world):
    kiosk = world.kiosk
    visit, order = self_pay_order(world)
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.phone_pays(order)
    world.fault("his", operation="payments.post", kind="timeout", count=3)
    assert kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "posting"
    refused = kiosk.request("POST", "/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": "self_pay"})
    assert refused.status_code == 409 and "正在处理" in refused.json()["message"]
    assert world.order(order["order_no"]).state == "posting"


def test_a_special_disease_visit_settles_as_med_type_14_with_its_disease_code(world):
    kiosk = world.kiosk
    kiosk.insert_insurance_card("special_disease")
    visits = kiosk.get("/api/kiosk/payments/bills")["visits"]
    today = visits[0]  # the doctor recorded 糖尿病 (M03900), which 赵敏 has filed
    order = kiosk.post("/api/kiosk/payments", {"visit_no": today["visit_no"], "mode": "insurance"})
    assert order["state"] in ("presettled", "completed"), order["message"]  # her account may cover it all
    if order["state"] == "presettled":
        kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
        world.phone_pays(order)
    done = kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert done["state"] == "completed", done
    row = world.order(order["order_no"])
    visit = [v for v in world.sim("insurance", "GET", "/__sim__/state/registrations").json()
             if v["mdtrt_id"] == row.mdtrt_id][0]
    assert (visit["med_type"], visit["dise_codg"]) == ("14", "M03900")
    settled = [s for s in world.sim("insurance", "GET", "/__sim__/state/settlements").json()
               if s["setl_id"] == row.setl_id][0]
    assert settled["med_type"] == "14" and Decimal(settled["psn_cash_pay"]) == row.cash

