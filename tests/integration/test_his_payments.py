"""Payment posting to the HIS, through the adapter against the HIS simulator over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import httpx
import pytest

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.his.http import HisHttpAdapter
from medkiosk.adapters.his.port import (
    ItemKind,
    OrderStatus,
    PaymentChannel,
    PaymentPosting,
    PaymentStatus,
    UnpaidVisit,
)
from medkiosk.simulators.his.app import create_app
from medkiosk.simulators.personas import PERSONAS

from simulator_fixtures import simulator_fixtures

LOCAL = PERSONAS["local_employee"]
SELF_PAY = PERSONAS["self_pay"]
PAID_AT = dt.datetime(2026, 11, 25, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))


server, sim = simulator_fixtures(create_app, name="his-sim")


@pytest.fixture
def his(server, sim):
    with HisHttpAdapter(server.url, timeout=5) as adapter:
        yield adapter


def todays_visit(his: HisHttpAdapter, patient_id: str = LOCAL.patient_id) -> UnpaidVisit:
    return max(his.unpaid_orders(patient_id), key=lambda v: v.visit_date)


def wechat_posting(visit: UnpaidVisit, key: str = "PAY-0001-his", **overrides) -> PaymentPosting:
    """The visit's whole bill, paid in cash through WeChat."""
    total = visit.total_amount
    fields = {"idempotency_key": key, "patient_id": LOCAL.patient_id, "visit_no": visit.visit_no,
              "order_nos": sorted({i.order_no for i in visit.items}), "total": total, "fund": Decimal("0.00"),
              "account": Decimal("0.00"), "cash": total, "channel": PaymentChannel.WECHAT,
              "trade_no": "4200001234202611250001", "paid_at": PAID_AT} | overrides
    return PaymentPosting(**fields)


def insured_posting(visit: UnpaidVisit, key: str = "PAY-0002-his") -> PaymentPosting:
    """The visit's bill split by insurance: a fund share, a personal-account share and cash."""
    total = visit.total_amount
    fund = (total * Decimal("0.6")).quantize(Decimal("0.01"))
    account = Decimal("10.00")
    return PaymentPosting(idempotency_key=key, patient_id=LOCAL.patient_id, visit_no=visit.visit_no,
                          order_nos=sorted({i.order_no for i in visit.items}), total=total, fund=fund,
                          account=account, cash=total - fund - account, insurance_settlement_id="SETL202611250001",
                          channel=PaymentChannel.ALIPAY, trade_no="2026112522001400001", paid_at=PAID_AT)


def fault(sim, **spec) -> None:
    sim.post("/__sim__/faults", json=spec).raise_for_status()


def unpaid_order_nos(his: HisHttpAdapter, patient_id: str = LOCAL.patient_id) -> set[str]:
    return {i.order_no for v in his.unpaid_orders(patient_id) for i in v.items}


# -- posting --------------------------------------------------------------------------------------------

def test_posting_a_visit_marks_its_orders_paid_and_they_leave_the_unpaid_list(his):
    visit = todays_visit(his)
    posting = insured_posting(visit)

    posted = his.post_payment(posting)

    assert posted.receipt_no.startswith("SF") and posted.status is PaymentStatus.POSTED
    assert posted.posted_at.tzinfo is not None
    assert (posted.total, posted.fund, posted.account, posted.cash) == \
        (posting.total, posting.fund, posting.account, posting.cash)
    assert sorted(posted.order_nos) == posting.order_nos
    assert [(i.order_no, i.item_code, i.amount) for i in posted.items] == \
        [(i.order_no, i.item_code, i.amount) for i in visit.items]
    assert unpaid_order_nos(his).isdisjoint(posting.order_nos)
    assert visit.visit_no not in {v.visit_no for v in his.unpaid_orders(LOCAL.patient_id)}


def test_the_other_visits_stay_unpaid(his):
    visits = his.unpaid_orders(LOCAL.patient_id)
    today = todays_visit(his)
    his.post_payment(wechat_posting(today))
    left = his.unpaid_orders(LOCAL.patient_id)
    assert [v.visit_no for v in left] == [v.visit_no for v in visits if v.visit_no != today.visit_no]


def test_paying_the_ct_order_makes_its_exam_order_paid_for_booking(his):
    visit = todays_visit(his)
    ct = next(i.order_no for i in visit.items if i.kind is ItemKind.EXAM)
    assert ct not in {o.order_no for o in his.exam_orders(LOCAL.patient_id)}
    his.post_payment(wechat_posting(visit))
    assert ct in {o.order_no for o in his.exam_orders(LOCAL.patient_id)}


def test_a_repeat_with_the_same_key_returns_the_first_receipt_and_posts_once(his, sim):
    posting = insured_posting(todays_visit(his))
    first = his.post_payment(posting)
    again = his.post_payment(posting)
    assert again == first
    assert len(his.list_payments(LOCAL.patient_id)) == 1

    raw = sim.post("/his/v1/payments", json=posting.model_dump(mode="json"))
    assert raw.status_code == 201 and raw.headers["idempotent-replayed"] == "true"
    assert raw.json()["receipt_no"] == first.receipt_no


def test_the_same_key_with_a_different_body_is_refused(his):
    visit = todays_visit(his)
    his.post_payment(wechat_posting(visit))
    changed = wechat_posting(visit, trade_no="4200009999202611259999")
    with pytest.raises(UpstreamRefused) as refused:
        his.post_payment(changed)
    assert refused.value.code == "IDEMPOTENCY_CONFLICT" and "幂等键" in refused.value.message
    assert len(his.list_payments(LOCAL.patient_id)) == 1


def test_a_total_that_differs_from_the_orders_is_refused_and_nothing_is_paid(his, sim):
    visit = todays_visit(his)
    short = visit.total_amount - Decimal("0.01")
    with pytest.raises(UpstreamRefused) as refused:
        his.post_payment(wechat_posting(visit, total=short, cash=short))
    assert refused.value.code == "AMOUNT_MISMATCH"
    assert f"应收{visit.total_amount:.2f}元" in refused.value.message and f"提交{short:.2f}元" in refused.value.message
    assert {i.order_no for i in visit.items} <= unpaid_order_nos(his)
    raw = sim.post("/his/v1/payments", json=wechat_posting(visit, total=short, cash=short).model_dump(mode="json"))
    assert raw.status_code == 422


def test_paying_an_order_already_paid_is_refused(his, sim):
    visit = todays_visit(his)
    his.post_payment(wechat_posting(visit, key="first"))
    with pytest.raises(UpstreamRefused) as refused:
        his.post_payment(wechat_posting(visit, key="second"))
    assert refused.value.code == "ORDER_PAID" and "已缴费" in refused.value.message
    raw = sim.post("/his/v1/payments", json=wechat_posting(visit, key="third").model_dump(mode="json"))
    assert raw.status_code == 409


@pytest.mark.parametrize("change, code", [
    ({"order_nos": ["CF2099010199999"]}, "ORDER_NOT_FOUND"),
    ({"visit_no": "MZ209901019999"}, "ORDER_MISMATCH"),
    ({"patient_id": SELF_PAY.patient_id}, "ORDER_MISMATCH"),
])
def test_orders_that_are_unknown_or_of_another_patient_or_visit_are_refused(his, change, code):
    visit = todays_visit(his)
    with pytest.raises(UpstreamRefused) as refused:
        his.post_payment(wechat_posting(visit).model_copy(update=change))
    assert refused.value.code == code and refused.value.message
    assert his.list_payments() == []


@pytest.mark.parametrize("change, words", [
    (lambda p: {"fund": Decimal("1.00")}, "之和不等于总额"),
    (lambda p: {"trade_no": None}, "trade_no"),
    (lambda p: {"channel": PaymentChannel.INSURANCE}, "支付渠道"),
    (lambda p: {"fund": Decimal("1.00"), "cash": p.cash - 1}, "insurance_settlement_id"),
    (lambda p: {"order_nos": [*p.order_nos, p.order_nos[0]]}, "重复"),
], ids=["split", "no-trade-no", "cash-through-insurance", "fund-without-settlement", "duplicate-order"])
def test_figures_that_do_not_hang_together_are_refused_as_invalid(his, change, words):
    posting = wechat_posting(todays_visit(his))
    with pytest.raises(UpstreamRefused) as refused:
        his.post_payment(posting.model_copy(update=change(posting)))
    assert refused.value.code == "INVALID" and words in refused.value.message


def add_voided_prescription(sim) -> str:
    """A visit whose number ends in -REFUSE: the magic input for a prescription the doctor voided."""
    sim.post("/__sim__/data/orders", json=[{
        "order_no": "CF2026112599001", "patient_id": SELF_PAY.patient_id, "visit_no": "MZ202611259901-REFUSE",
        "visit_date": "2026-11-25", "department_code": "0201", "doctor_code": "D020101",
        "items": [{"item_code": "Y0004", "name": "阿莫西林胶囊 0.25g×24粒", "kind": "drug",
                   "insurance_code": "XJ01CAA040E001010101336", "unit": "盒", "unit_price": "9.80", "quantity": 2}],
    }]).raise_for_status()
    return "MZ202611259901-REFUSE"


def test_a_voided_prescription_is_refused_for_good(his, sim):
    visit_no = add_voided_prescription(sim)
    visit = next(v for v in his.unpaid_orders(SELF_PAY.patient_id) if v.visit_no == visit_no)
    for attempt in ("try-1", "try-2"):
        with pytest.raises(UpstreamRefused) as refused:
            his.post_payment(wechat_posting(visit, key=attempt, patient_id=SELF_PAY.patient_id))
        assert refused.value.code == "ORDER_REFUSED"
        assert refused.value.message.startswith("该处方已被医生作废")
    assert his.list_payments() == []


def test_an_injected_refusal_is_a_refusal_and_posts_nothing(his, sim):
    fault(sim, operation="payments.post", kind="error", code="REFUSED", message="HIS 日结中，暂停收费")
    with pytest.raises(UpstreamRefused) as refused:
        his.post_payment(wechat_posting(todays_visit(his)))
    assert refused.value.message == "HIS 日结中，暂停收费"
    assert his.list_payments() == []


def test_an_outage_is_an_unknown_outcome_and_a_retry_with_the_same_key_posts(his, sim):
    fault(sim, operation="payments.post", kind="error", count=1, message="HIS 数据库连接失败")
    posting = wechat_posting(todays_visit(his))
    with pytest.raises(UpstreamUnknown):
        his.post_payment(posting)
    assert his.list_payments() == []
    assert his.post_payment(posting).status is PaymentStatus.POSTED


def test_a_lost_reply_then_a_retry_with_the_same_key_returns_the_same_receipt_posted_once(server, sim):
    fault(sim, operation="payments.post", kind="lost_reply", hang_seconds=1.0, count=1)
    with HisHttpAdapter(server.url, timeout=0.3) as impatient:
        posting = wechat_posting(todays_visit(impatient))
        with pytest.raises(UpstreamUnknown) as unknown:
            impatient.post_payment(posting)
        assert unknown.value.code == "TIMEOUT"
        retried = impatient.post_payment(posting)
        assert impatient.list_payments(LOCAL.patient_id) == [retried]
    assert set(retried.order_nos) == set(posting.order_nos)
    assert len(sim.get("/__sim__/calls", params={"operation": "payments.post"}).json()) == 2


# -- cancelling -----------------------------------------------------------------------------------------

def test_cancelling_a_payment_makes_its_orders_unpaid_again_and_they_can_be_paid_anew(his):
    visit = todays_visit(his)
    posted = his.post_payment(wechat_posting(visit))

    cancelled = his.cancel_payment(posted.receipt_no, "REFUND-0001-his", "医保结算被拒，退款")

    assert cancelled.status is PaymentStatus.CANCELLED and cancelled.cancelled_at is not None
    assert cancelled.cancel_reason == "医保结算被拒，退款"
    assert {i.order_no for i in visit.items} <= unpaid_order_nos(his)
    again = his.post_payment(wechat_posting(visit, key="PAY-0001-his-2"))
    assert again.receipt_no != posted.receipt_no
    assert {p.status for p in his.list_payments(LOCAL.patient_id)} == {PaymentStatus.POSTED, PaymentStatus.CANCELLED}


def test_cancelling_twice_is_harmless(his, sim):
    posted = his.post_payment(wechat_posting(todays_visit(his)))
    first = his.cancel_payment(posted.receipt_no, "REFUND-1", "退款")
    assert his.cancel_payment(posted.receipt_no, "REFUND-1", "退款") == first
    assert his.cancel_payment(posted.receipt_no, "REFUND-2", "再次退款") == first
    raw = sim.post(f"/his/v1/payments/{posted.receipt_no}/cancel", json={"idempotency_key": "REFUND-1",
                                                                         "reason": "退款"})
    assert raw.status_code == 200 and raw.headers["idempotent-replayed"] == "true"


def test_a_cancel_key_reused_for_another_receipt_is_refused(his, sim):
    visits = his.unpaid_orders(LOCAL.patient_id)
    one = his.post_payment(wechat_posting(visits[0], key="A"))
    two = his.post_payment(wechat_posting(visits[1], key="B"))
    his.cancel_payment(one.receipt_no, "REFUND-X", "退款")
    with pytest.raises(UpstreamRefused) as refused:
        his.cancel_payment(two.receipt_no, "REFUND-X", "退款")
    assert refused.value.code == "IDEMPOTENCY_CONFLICT"
    assert his.get_payment(two.receipt_no).status is PaymentStatus.POSTED


def test_cancelling_an_unknown_receipt_is_not_found(his):
    with pytest.raises(UpstreamNotFound):
        his.cancel_payment("SF2099010100001", "REFUND-1", "退款")


def test_a_payment_with_a_booked_exam_is_not_cancelled(his, sim):
    visit = todays_visit(his)
    posted = his.post_payment(wechat_posting(visit))
    exam_orders = sim.get("/__sim__/state/exam_orders").json()
    for order in exam_orders:
        if order["order_no"] in posted.order_nos:
            order["booked"] = True
    sim.post("/__sim__/load", json={"exam_orders": exam_orders}).raise_for_status()
    with pytest.raises(UpstreamRefused) as refused:
        his.cancel_payment(posted.receipt_no, "REFUND-1", "退款")
    assert refused.value.code == "EXAM_BOOKED"
    assert his.get_payment(posted.receipt_no).status is PaymentStatus.POSTED


# -- reading payments -------------------------------------------------------------------------------------

def test_payments_are_listed_by_patient_and_time_and_read_one_by_one(his):
    visits = his.unpaid_orders(LOCAL.patient_id)
    first = his.post_payment(wechat_posting(visits[1], key="A"))
    second = his.post_payment(insured_posting(visits[0], key="B"))
    other_visit = todays_visit(his, SELF_PAY.patient_id)
    others = his.post_payment(wechat_posting(other_visit, key="C", patient_id=SELF_PAY.patient_id))

    mine = his.list_payments(LOCAL.patient_id, since=dt.date.today() - dt.timedelta(days=30))
    assert {p.receipt_no for p in mine} == {first.receipt_no, second.receipt_no}
    assert [p.posted_at for p in mine] == sorted((p.posted_at for p in mine), reverse=True)
    assert {p.receipt_no for p in his.list_payments()} == {first.receipt_no, second.receipt_no, others.receipt_no}
    assert his.list_payments(since=dt.date.today() + dt.timedelta(days=1)) == []
    assert his.list_payments(until=dt.date.today()) == []
    assert his.get_payment(second.receipt_no) == second
    assert his.get_payment("SF2099010100001") is None


def test_a_bad_since_is_answered_as_invalid(sim):
    reply = sim.get("/his/v1/payments", params={"since": "yesterday"})
    assert reply.status_code == 422 and reply.json()["code"] == "INVALID"


def test_payments_are_kept_in_the_simulator_state_and_reset_clears_them(his, sim):
    posted = his.post_payment(wechat_posting(todays_visit(his)))
    [stored] = sim.get("/__sim__/state/payments").json()
    assert stored["receipt_no"] == posted.receipt_no and stored["total"] == f"{posted.total:.2f}"
    sim.post("/__sim__/reset").raise_for_status()
    assert his.list_payments() == [] and his.get_payment(posted.receipt_no) is None


def test_a_loaded_payment_must_hang_together_with_its_orders(his, sim):
    posted = his.post_payment(wechat_posting(todays_visit(his)))
    payments = sim.get("/__sim__/state/payments").json()
    orders = sim.get("/__sim__/state/orders").json()
    for order in orders:
        if order["order_no"] in posted.order_nos:
            order["status"] = "unpaid"
    reply = sim.post("/__sim__/load", json={"orders": orders, "payments": payments})
    assert reply.status_code == 422 and "is not paid" in reply.json()["detail"]
    assert his.get_payment(posted.receipt_no) is not None


# -- the adapter's side of the wire ---------------------------------------------------------------------

def test_the_adapter_sends_amounts_as_strings_to_the_contract_paths():
    seen: list[tuple[str, str, object]] = []
    visit = UnpaidVisit(visit_no="MZ1", visit_date=dt.date(2026, 11, 25), department_code="0101",
                        department_name="心血管内科", doctor_code="D1", doctor_name="某", total_amount="9.80",
                        items=[{"order_no": "CF1", "item_code": "Y0004", "name": "阿莫西林", "kind": "drug",
                                "self_pay_only": False, "unit_price": "4.90", "quantity": 2, "amount": "9.80"}])
    posting = wechat_posting(visit)
    reply = {"receipt_no": "SF1", "posted_at": "2026-11-25T09:31:00+08:00", "status": "posted",
             **posting.model_dump(mode="json"),
             "items": [visit.items[0].model_dump(mode="json")]}

    def record(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.raw_path.decode(), body))
        if request.url.path.endswith("/payments") and request.method == "GET":
            return httpx.Response(200, json={"payments": [reply]})
        return httpx.Response(201, json=reply)

    with HisHttpAdapter("http://his.test", transport=httpx.MockTransport(record)) as adapter:
        posted = adapter.post_payment(posting)
        adapter.cancel_payment("SF 1/2", "K", "退款")
        adapter.list_payments("P000001", since=dt.date(2026, 11, 1))
    assert posted.items[0].order_no == "CF1" and posted.total == Decimal("9.80")
    method, path, body = seen[0]
    assert (method, path) == ("POST", "/his/v1/payments")
    assert (body["total"], body["cash"], body["fund"]) == ("9.80", "9.80", "0.00")
    assert body["paid_at"] == "2026-11-25T09:30:00+08:00" and body["order_nos"] == ["CF1"]
    assert seen[1][:2] == ("POST", "/his/v1/payments/SF%201%2F2/cancel")
    assert seen[1][2] == {"idempotency_key": "K", "reason": "退款"}
    assert seen[2][:2] == ("GET", "/his/v1/payments?patient_id=P000001&since=2026-11-01")


def test_a_server_error_on_posting_is_an_unknown_outcome_not_a_refusal():
    reply = httpx.Response(502, json={"code": "GATEWAY", "message": "网关错误"})
    visit = UnpaidVisit(visit_no="MZ1", visit_date=dt.date(2026, 11, 25), department_code="0101", department_name="x",
                        doctor_code="D1", doctor_name="y", total_amount="1.00",
                        items=[{"order_no": "CF1", "item_code": "F0003", "name": "病历本工本费", "kind": "non_medical",
                                "self_pay_only": True, "unit_price": "1.00", "quantity": 1, "amount": "1.00"}])
    with HisHttpAdapter("http://his.test", transport=httpx.MockTransport(lambda r: reply)) as adapter, \
            pytest.raises(UpstreamUnknown):
        adapter.post_payment(wechat_posting(visit))


def test_order_status_is_exposed_on_the_wire_after_payment(his, sim):
    visit = todays_visit(his)
    his.post_payment(wechat_posting(visit))
    paid = sim.get(f"/his/v1/patients/{LOCAL.patient_id}/orders", params={"status": OrderStatus.PAID.value})
    assert {i["order_no"] for v in paid.json()["visits"] for i in v["items"]} == {i.order_no for i in visit.items}
