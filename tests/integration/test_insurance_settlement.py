"""Outpatient settlement against the insurance simulator, over real HTTP: the payment engine's view.

Amounts are the worked examples of docs/simulators/insurance.md (and tests/unit/test_insurance_split.py).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import httpx
import pytest

from medkiosk.adapters.errors import UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.insurance import (
    SPECIAL_DISEASE_OUTPATIENT,
    Certificate,
    Diagnosis,
    DifferenceKind,
    FeeItem,
    InsuranceHttpAdapter,
    ReversalOutcome,
    SettlementLine,
    SettlementRequest,
    SettlementResult,
)
from medkiosk.adapters.insurance.wire import new_msgid
from medkiosk.serving import BackgroundServer
from medkiosk.simulators.his.data import CATALOG as HIS_CATALOG
from medkiosk.simulators.insurance import create_app
from medkiosk.simulators.personas import (
    HOSPITAL_ADMDVS,
    HOSPITAL_CODE,
    HOSPITAL_NAME,
    PERSONAS,
    Persona,
)

from simulator_fixtures import simulator_fixtures

D = Decimal
SENT_AT = datetime(2026, 11, 25, 10, 0)
FILING_MISSING = "未办理异地就医备案，请先通过国家医保服务平台APP备案"


sim, control = simulator_fixtures(lambda: create_app(seed=20261125), name="insurance-sim",
                                  server="sim", client="control")


def _adapter(sim: BackgroundServer, **kwargs) -> InsuranceHttpAdapter:
    return InsuranceHttpAdapter(sim.url, hospital_code=HOSPITAL_CODE, hospital_name=HOSPITAL_NAME,
                                hospital_admdvs=HOSPITAL_ADMDVS, device_no="KIOSK-0101", **kwargs)


@pytest.fixture
def adapter(sim: BackgroundServer, control: httpx.Client) -> Iterator[InsuranceHttpAdapter]:
    with _adapter(sim) as insurance:
        yield insurance


@pytest.fixture
def msgid() -> Callable[[], str]:
    """The payment engine's msgids: allocated (and, in the engine, persisted) before sending."""
    sequence = itertools.count(1)
    return lambda: new_msgid(HOSPITAL_CODE, SENT_AT, next(sequence))


# -- a visit, as the payment engine drives it ---------------------------------------------------
def _item(serial: int, his_code: str, quantity: int = 1, price: str | None = None) -> FeeItem:
    item = HIS_CATALOG[his_code]
    unit_price = D(price) if price else item.unit_price
    return FeeItem(serial=str(serial), hospital_code=item.item_code, insurance_code=item.insurance_code or "",
                   quantity=D(quantity), unit_price=unit_price, amount=(unit_price * quantity).quantize(D("0.01")),
                   occurred_at=SENT_AT, department_code="0101", department_name="心血管内科",
                   doctor_code="D010101", doctor_name="测试医生")


def _certificate(adapter: InsuranceHttpAdapter, persona: Persona, medium: str) -> Certificate:
    if medium == "id_number":
        return Certificate("02", persona.id_number)
    if medium == "card":
        return Certificate("03", persona.insurance.card_no, persona.insurance.card_sn)
    if medium == "card_without_sn":
        return Certificate("03", persona.insurance.card_no)
    return adapter.resolve_e_certificate(persona.insurance.ec_qr).as_certificate()


@dataclass
class Visit:
    persona: Persona
    certificate: Certificate
    mdtrt_id: str

    @property
    def psn_no(self) -> str:
        return self.persona.insurance.psn_no

    @property
    def region(self) -> str:
        return self.persona.insurance.insuplc_admdvs

    def request(self, total: Decimal, batch: str = "B1", **kwargs) -> SettlementRequest:
        return SettlementRequest(psn_no=self.psn_no, insured_region=self.region, scheme=self.persona.insurance.insutype,
                                 certificate=self.certificate, mdtrt_id=self.mdtrt_id, batch_no=batch, total=total,
                                 **kwargs)


def _open_visit(adapter: InsuranceHttpAdapter, msgid, key: str, *, medium: str = "id_number", visit_no: str = "MZ1",
                disease: str = "") -> Visit:
    persona = PERSONAS[key]
    certificate = _certificate(adapter, persona, medium)
    registration = adapter.register_visit(
        psn_no=persona.insurance.psn_no, insured_region=persona.insurance.insuplc_admdvs,
        scheme=persona.insurance.insutype, certificate=certificate, visit_no=visit_no, began_at=SENT_AT,
        department_code="0101", department_name="心血管内科", doctor_code="D010101", doctor_name="测试医生",
        msgid=msgid())
    assert registration.visit_no == visit_no
    special = bool(disease)
    adapter.upload_visit_info(
        psn_no=registration.psn_no, insured_region=persona.insurance.insuplc_admdvs, mdtrt_id=registration.mdtrt_id,
        began_at=SENT_AT, med_type=SPECIAL_DISEASE_OUTPATIENT if special else "11", disease_code=disease,
        disease_name="糖尿病" if special else "", diagnoses=[Diagnosis("E11.900", "2型糖尿病")], msgid=msgid())
    return Visit(persona, certificate, registration.mdtrt_id)


def _upload(adapter, msgid, visit: Visit, items: list[FeeItem], batch: str = "B1"):
    return adapter.upload_fees(psn_no=visit.psn_no, insured_region=visit.region, mdtrt_id=visit.mdtrt_id,
                               batch_no=batch, items=items, msgid=msgid())


def _bill(adapter, msgid, visit: Visit, items: list[FeeItem], batch: str = "B1") -> SettlementRequest:
    results = _upload(adapter, msgid, visit, items, batch)
    return visit.request(sum((r.amount for r in results), D("0.00")), batch,
                         med_type=SPECIAL_DISEASE_OUTPATIENT if visit.persona.key == "special_disease" else "11")


def _balance(adapter: InsuranceHttpAdapter, persona: Persona) -> Decimal:
    return adapter.person_info(Certificate("02", persona.id_number)).balance


def _settlements(control: httpx.Client) -> list[dict]:
    return control.get("/__sim__/state/settlements").json()


def _sim_today(control: httpx.Client) -> date:
    return datetime.fromisoformat(control.get("/__sim__/clock").json()["now"]).date()


def _amounts(result: SettlementResult) -> tuple[Decimal, ...]:
    return (result.total, result.fund, result.account, result.cash, result.deductible, result.balance_after)


# -- the full flow, for each kind of insured person ---------------------------------------------
FLOWS = {
    # persona: (medium, special-disease code, lines, (total, fund, account, cash, deductible, balance after))
    "local_employee": ("id_number", "", [("E0001", 1), ("J0001", 1), ("Y0101", 1)],
                       ("268.00", "65.60", "202.40", "0.00", "100.00", "1317.95")),
    "local_resident": ("e_certificate", "", [("J0001", 1), ("J0002", 1), ("Y0004", 2)],
                       ("99.60", "24.80", "0.00", "74.80", "50.00", "0.00")),
    "same_province": ("card_without_sn", "", [("E0001", 1), ("E0003", 1), ("Y0003", 2)],
                      ("242.20", "52.86", "189.34", "0.00", "150.00", "670.66")),
    "cross_province_filed": ("card", "", [("E0001", 1), ("E0003", 1)],
                             ("205.00", "27.75", "177.25", "0.00", "150.00", "2133.25")),
    "special_disease": ("id_number", "M03900", [("Y0003", 3), ("J0003", 1)],
                        ("110.80", "84.76", "26.04", "0.00", "0.00", "3019.76")),
    "first_visit_insured": ("id_number", "", [("E0001", 1), ("J0001", 1), ("J0004", 1)],
                            ("210.00", "0.00", "210.00", "0.00", "192.00", "445.40")),
}


@pytest.mark.parametrize("key", list(FLOWS))
def test_an_insured_persons_bill_is_registered_uploaded_pre_settled_and_settled_to_the_fen(adapter, control, msgid,
                                                                                          key):
    medium, disease, lines, expected = FLOWS[key]
    visit = _open_visit(adapter, msgid, key, medium=medium, disease=disease)
    request = _bill(adapter, msgid, visit, [_item(n, code, qty) for n, (code, qty) in enumerate(lines, 1)])

    preview = adapter.pre_settle(request)
    assert preview.setl_id is None
    assert _settlements(control) == []  # 2206 commits nothing

    settled = adapter.settle(request, msgid=msgid())

    assert _amounts(settled) == tuple(map(D, expected))
    assert _amounts(preview) == _amounts(settled)
    assert settled.setl_id and settled.parts_add_up and settled.mdtrt_id == visit.mdtrt_id
    assert settled.clearing_agency == HOSPITAL_ADMDVS
    assert sum(d.amount for d in settled.details) == settled.fund
    assert _balance(adapter, visit.persona) == settled.balance_after
    assert [s["status"] for s in _settlements(control)] == ["valid"]


def test_the_cross_province_patient_is_classed_by_this_hospitals_catalog_and_paid_by_hefeis_policy(adapter, msgid):
    visit = _open_visit(adapter, msgid, "cross_province_filed", medium="card")
    ct = _upload(adapter, msgid, visit, [_item(1, "E0001")])[0]

    settled = adapter.settle(visit.request(ct.amount), msgid=msgid())

    # class B in this hospital's catalog (class A in 340100's)
    assert (ct.item_class, ct.pre_self_paid, ct.in_scope) == ("02", D("18.00"), D("162.00"))
    assert (settled.deductible, settled.fund_ratio, settled.fund) == (D("150.00"), D("0.75"), D("9.00"))


def test_a_cross_province_patient_without_a_filing_is_told_to_file_first(adapter, msgid):
    unfiled = PERSONAS["cross_province_unfiled"]

    with pytest.raises(UpstreamRefused) as refused:
        adapter.register_visit(psn_no=unfiled.insurance.psn_no, insured_region="420100", scheme="390",
                               certificate=Certificate("03", unfiled.insurance.card_no, unfiled.insurance.card_sn),
                               visit_no="MZ9", began_at=SENT_AT, department_code="0202", department_name="骨科",
                               doctor_code="D020201", doctor_name="测试医生", msgid=msgid())

    assert refused.value.message == FILING_MISSING and refused.value.operation == "2201"


def test_a_filing_withdrawn_after_registration_refuses_pre_settlement_and_settlement(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "cross_province_filed", medium="card")
    request = _bill(adapter, msgid, visit, [_item(1, "E0003")])
    person = next(p for p in control.get("/__sim__/state/people").json() if p["psn_no"] == visit.psn_no)
    control.post("/__sim__/data/people", json=[{**person, "filing": False}]).raise_for_status()

    for call in (lambda: adapter.pre_settle(request), lambda: adapter.settle(request, msgid=msgid())):
        with pytest.raises(UpstreamRefused) as refused:
            call()
        assert refused.value.message == FILING_MISSING
    assert _settlements(control) == []


def test_the_years_deductible_is_paid_once_so_the_next_bill_gets_the_full_ratio(adapter, control, msgid):
    first = _open_visit(adapter, msgid, "local_employee", visit_no="MZ1")
    adapter.settle(_bill(adapter, msgid, first, [_item(1, "J0002")]), msgid=msgid())  # 60.00, all deductible
    second = _open_visit(adapter, msgid, "local_employee", visit_no="MZ2")

    settled = adapter.settle(_bill(adapter, msgid, second, [_item(1, "J0001"), _item(2, "E0001")]), msgid=msgid())

    assert (settled.deductible, settled.fund, settled.account) == (D("40.00"), D("113.60"), D("86.40"))
    counters = control.get("/__sim__/state/year_to_date").json()
    assert [(c["deductible_paid"], c["fund_paid"], c["settlements"]) for c in counters] == [("100.00", "113.60", 2)]


# -- idempotency and unknown outcomes -----------------------------------------------------------
def test_settle_is_idempotent_by_msgid_the_same_msgid_returns_the_same_settlement(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    request = _bill(adapter, msgid, visit, [_item(1, "E0001")])
    settle_msgid = msgid()

    first = adapter.settle(request, msgid=settle_msgid)
    again = adapter.settle(request, msgid=settle_msgid)

    assert again == first
    assert len(_settlements(control)) == 1
    assert _balance(adapter, visit.persona) == D("1520.35") - first.account


def test_a_second_settlement_of_the_same_batch_with_a_new_msgid_is_refused(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    request = _bill(adapter, msgid, visit, [_item(1, "E0001")])
    first = adapter.settle(request, msgid=msgid())

    with pytest.raises(UpstreamRefused) as refused:
        adapter.settle(request, msgid=msgid())

    assert first.setl_id in refused.value.message and "已结算" in refused.value.message
    assert len(_settlements(control)) == 1


def test_a_msgid_reused_for_a_different_request_is_refused(adapter, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    request = _bill(adapter, msgid, visit, [_item(1, "E0001")])
    used = msgid()
    adapter.settle(request, msgid=used)

    with pytest.raises(UpstreamRefused, match="报文ID"):
        adapter.cancel_fees(psn_no=visit.psn_no, insured_region=visit.region, mdtrt_id=visit.mdtrt_id, msgid=used)


def test_a_settlement_whose_reply_is_lost_is_reversed_by_its_msgid_and_then_settled_once(sim, adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    request = _bill(adapter, msgid, visit, [_item(1, "E0001"), _item(2, "J0001"), _item(3, "Y0101")])
    lost_msgid = msgid()
    control.post("/__sim__/faults", json={"operation": "2207", "kind": "lost_reply", "hang_seconds": 1.0,
                                          "count": 1}).raise_for_status()

    with _adapter(sim, timeout=0.3) as impatient, pytest.raises(UpstreamUnknown) as unknown:
        impatient.settle(request, msgid=lost_msgid)

    assert unknown.value.code == "TIMEOUT" and unknown.value.operation == "2207"
    assert [s["status"] for s in _settlements(control)] == ["valid"]  # the platform committed
    assert _balance(adapter, visit.persona) == D("1317.95")

    reversal = adapter.reverse(lost_msgid, "2207", visit.psn_no, visit.region, msgid=msgid())

    assert reversal.outcome is ReversalOutcome.REVERSED
    assert reversal.balance_after == D("1520.35") == _balance(adapter, visit.persona)
    assert reversal.setl_id == _settlements(control)[0]["setl_id"]
    with pytest.raises(UpstreamRefused, match="已被冲正"):
        adapter.settle(request, msgid=lost_msgid)  # a reversed msgid never settles again, nor replays

    settled = adapter.settle(request, msgid=msgid())

    assert settled.account == D("202.40") and settled.deductible == D("100.00")  # the reversal gave the deductible back
    assert sorted(s["status"] for s in _settlements(control)) == ["reversed", "valid"]
    assert _balance(adapter, visit.persona) == D("1317.95")


def test_reversing_twice_is_harmless_and_a_reversed_settlement_cannot_be_cancelled(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    settle_msgid = msgid()
    settled = adapter.settle(_bill(adapter, msgid, visit, [_item(1, "E0001")]), msgid=settle_msgid)
    adapter.reverse(settle_msgid, "2207", visit.psn_no, visit.region, msgid=msgid())

    again = adapter.reverse(settle_msgid, "2207", visit.psn_no, visit.region, msgid=msgid())

    assert again.outcome is ReversalOutcome.ALREADY_REVERSED
    assert _balance(adapter, visit.persona) == D("1520.35")
    with pytest.raises(UpstreamRefused, match="已冲正"):
        adapter.cancel_settlement(setl_id=settled.setl_id, mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no,
                                  insured_region=visit.region, msgid=msgid())


def test_a_reversal_of_a_message_never_received_succeeds_undoes_nothing_and_bars_the_late_original(adapter, control,
                                                                                                msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    request = _bill(adapter, msgid, visit, [_item(1, "E0001")])
    never_sent = msgid()

    reversal = adapter.reverse(never_sent, "2207", visit.psn_no, visit.region, msgid=msgid())

    assert reversal.outcome is ReversalOutcome.NOT_RECEIVED and reversal.setl_id is None
    assert _balance(adapter, visit.persona) == D("1520.35")
    with pytest.raises(UpstreamRefused, match="已被冲正"):
        adapter.settle(request, msgid=never_sent)  # the original, arriving late
    assert _settlements(control) == []
    assert adapter.settle(request, msgid=msgid()).setl_id


def test_a_platform_that_times_out_before_settling_has_nothing_to_reverse(sim, adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    request = _bill(adapter, msgid, visit, [_item(1, "E0001")])
    hung = msgid()
    control.post("/__sim__/faults", json={"operation": "2207", "kind": "timeout", "hang_seconds": 0.6,
                                          "count": 1}).raise_for_status()

    with _adapter(sim, timeout=0.2) as impatient, pytest.raises(UpstreamUnknown):
        impatient.settle(request, msgid=hung)
    reversal = adapter.reverse(hung, "2207", visit.psn_no, visit.region, msgid=msgid())
    time.sleep(0.6)  # let the hung request finish on the platform's side

    assert reversal.outcome is ReversalOutcome.NOT_RECEIVED
    assert _settlements(control) == []
    assert _balance(adapter, visit.persona) == D("1520.35")


# -- cancel ---------------------------------------------------------------------------------------
def test_cancelling_a_settlement_restores_the_account_and_cannot_be_repeated(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    settle_msgid = msgid()
    settled = adapter.settle(_bill(adapter, msgid, visit, [_item(1, "E0001"), _item(2, "Y0101")]), msgid=settle_msgid)
    cancel_msgid = msgid()

    cancelled = adapter.cancel_settlement(setl_id=settled.setl_id, mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no,
                                          insured_region=visit.region, msgid=cancel_msgid)

    assert (cancelled.setl_id, cancelled.total, cancelled.fund, cancelled.account, cancelled.cash) == (
        settled.setl_id, settled.total, settled.fund, settled.account, settled.cash)
    assert cancelled.balance_after == D("1520.35") == _balance(adapter, visit.persona)
    assert cancelled.cancellation_id != settled.setl_id
    assert adapter.cancel_settlement(setl_id=settled.setl_id, mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no,
                                     insured_region=visit.region, msgid=cancel_msgid) == cancelled  # a replay
    with pytest.raises(UpstreamRefused, match="已撤销"):
        adapter.cancel_settlement(setl_id=settled.setl_id, mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no,
                                  insured_region=visit.region, msgid=msgid())
    reversal = adapter.reverse(settle_msgid, "2207", visit.psn_no, visit.region, msgid=msgid())
    assert reversal.outcome is ReversalOutcome.ALREADY_CANCELLED
    assert _balance(adapter, visit.persona) == D("1520.35")
    assert [s["status"] for s in _settlements(control)] == ["cancelled"]


def test_the_lines_of_a_cancelled_settlement_can_be_withdrawn_and_a_visit_without_settlement_cancelled(adapter,
                                                                                                       control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    request = _bill(adapter, msgid, visit, [_item(1, "E0001")])
    settled = adapter.settle(request, msgid=msgid())
    with pytest.raises(UpstreamRefused, match="已结算"):
        adapter.cancel_fees(psn_no=visit.psn_no, insured_region=visit.region, mdtrt_id=visit.mdtrt_id,
                            batch_no="B1", msgid=msgid())
    with pytest.raises(UpstreamRefused, match="有效结算"):
        adapter.cancel_visit(psn_no=visit.psn_no, insured_region=visit.region, mdtrt_id=visit.mdtrt_id,
                             visit_no="MZ1", msgid=msgid())
    adapter.cancel_settlement(setl_id=settled.setl_id, mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no,
                              insured_region=visit.region, msgid=msgid())

    adapter.cancel_fees(psn_no=visit.psn_no, insured_region=visit.region, mdtrt_id=visit.mdtrt_id, batch_no="B1",
                        msgid=msgid())

    with pytest.raises(UpstreamRefused, match="没有待结算的费用明细"):
        adapter.pre_settle(request)
    adapter.cancel_visit(psn_no=visit.psn_no, insured_region=visit.region, mdtrt_id=visit.mdtrt_id, visit_no="MZ1",
                         msgid=msgid())
    assert [r["status"] for r in control.get("/__sim__/state/registrations").json()] == ["cancelled"]


# -- refusals on bad input ----------------------------------------------------------------------
def test_a_fee_line_whose_amount_is_not_quantity_times_price_is_refused(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    wrong = FeeItem(serial="1", hospital_code="Y0001", insurance_code="XB01ACA056A001010101443", quantity=D(2),
                    unit_price=D("15.80"), amount=D("31.00"), occurred_at=SENT_AT)

    with pytest.raises(UpstreamRefused) as refused:
        _upload(adapter, msgid, visit, [_item(2, "J0001"), wrong])

    assert "31.00" in refused.value.message and "31.60" in refused.value.message
    assert control.get("/__sim__/state/fee_details").json() == []  # nothing of the batch was kept


def test_an_item_outside_the_catalog_is_paid_in_full_by_the_patient(adapter, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")

    copies, disc = _upload(adapter, msgid, visit, [_item(1, "F0001", 6), _item(2, "F0002")])

    assert (copies.item_class, copies.self_paid_in_full, copies.in_scope) == ("03", D("3.00"), D("0.00"))
    assert (disc.item_class, disc.self_paid_in_full, disc.self_pay_ratio) == ("03", D("20.00"), D("1"))
    assert copies.note


def test_a_total_that_differs_from_the_uploaded_lines_is_refused_naming_both_amounts(adapter, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    _upload(adapter, msgid, visit, [_item(1, "E0001"), _item(2, "J0001")])

    with pytest.raises(UpstreamRefused) as refused:
        adapter.pre_settle(visit.request(D("210.00")))

    assert "210.00" in refused.value.message and "200.00" in refused.value.message


def test_a_special_disease_visit_for_a_disease_not_filed_is_refused(adapter, msgid):
    persona = PERSONAS["special_disease"]
    registration = adapter.register_visit(
        psn_no=persona.insurance.psn_no, insured_region="320100", scheme="310",
        certificate=Certificate("02", persona.id_number), visit_no="MZ1", began_at=SENT_AT, department_code="0104",
        department_name="内分泌科", doctor_code="D010401", doctor_name="测试医生", msgid=msgid())

    with pytest.raises(UpstreamRefused, match="门诊慢特病备案"):
        adapter.upload_visit_info(psn_no=persona.insurance.psn_no, insured_region="320100",
                                  mdtrt_id=registration.mdtrt_id, began_at=SENT_AT, med_type="14",
                                  disease_code="M99999", msgid=msgid())


def test_a_special_disease_settlement_must_match_the_visits_kind(adapter, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")  # an ordinary visit
    request = _bill(adapter, msgid, visit, [_item(1, "J0001")])

    with pytest.raises(UpstreamRefused, match="医疗类别"):
        adapter.pre_settle(visit.request(request.total, med_type="14"))


# -- magic inputs -------------------------------------------------------------------------------
def test_a_total_ending_in_37_fen_makes_the_settlement_reply_one_fen_off(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    request = _bill(adapter, msgid, visit, [_item(1, "Y0001", price="15.37")])

    settled = adapter.settle(request, msgid=msgid())

    assert (request.total, settled.total) == (D("15.37"), D("15.38"))
    assert not settled.parts_add_up
    assert _settlements(control)[0]["medfee_sumamt"] == "15.37"  # what the platform actually settled


def test_a_total_ending_in_36_fen_makes_the_pre_settlement_reply_one_fen_off(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    request = _bill(adapter, msgid, visit, [_item(1, "Y0001", price="15.36")])

    assert adapter.pre_settle(request).total == D("15.37")
    assert adapter.settle(request, msgid=msgid()).total == D("15.36")


def test_a_total_ending_in_97_fen_settles_then_loses_the_reply_and_resending_the_msgid_gets_it(adapter, control,
                                                                                               msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    request = _bill(adapter, msgid, visit, [_item(1, "Y0001", price="15.97")])
    settle_msgid = msgid()

    with pytest.raises(UpstreamUnknown) as unknown:
        adapter.settle(request, msgid=settle_msgid)
    assert unknown.value.code == "HTTP_502"

    settled = adapter.settle(request, msgid=settle_msgid)

    assert settled.setl_id == _settlements(control)[0]["setl_id"]
    assert len(_settlements(control)) == 1 and settled.total == D("15.97")


# -- reconciliation -----------------------------------------------------------------------------
def _settle_batches(adapter, msgid, visit: Visit, codes: list[str]) -> list[SettlementResult]:
    return [adapter.settle(_bill(adapter, msgid, visit, [_item(n, code)], batch=f"B{n}"), msgid=msgid())
            for n, code in enumerate(codes, 1)]


def test_totals_reconciliation_agrees_with_the_hospitals_journal_and_reports_a_difference(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    settled = _settle_batches(adapter, msgid, visit, ["E0001", "J0001"])
    today = _sim_today(control)
    total, fund, account = (sum((getattr(s, f) for s in settled), D("0.00")) for f in ("total", "fund", "account"))

    agree = adapter.reconcile_totals(clearing_agency=HOSPITAL_ADMDVS, begins_on=today, ends_on=today, total=total,
                                     fund=fund, account=account, count=2)
    differ = adapter.reconcile_totals(clearing_agency=HOSPITAL_ADMDVS, begins_on=today, ends_on=today,
                                      total=total + D("0.01"), fund=fund, account=account, count=3)

    assert agree.consistent and (agree.total, agree.fund, agree.account, agree.count) == (total, fund, account, 2)
    assert not differ.consistent and differ.count == 2
    assert "医疗费总额" in differ.description and "结算笔数" in differ.description


def test_totals_leave_out_cancelled_and_reversed_settlements_and_other_days(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    kept, cancelled = _settle_batches(adapter, msgid, visit, ["E0001", "J0001"])
    adapter.cancel_settlement(setl_id=cancelled.setl_id, mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no,
                              insured_region=visit.region, msgid=msgid())
    today = _sim_today(control)

    result = adapter.reconcile_totals(clearing_agency=HOSPITAL_ADMDVS, begins_on=today, ends_on=today,
                                      total=kept.total, fund=kept.fund, account=kept.account, count=1)
    tomorrow = date.fromordinal(today.toordinal() + 1)
    empty = adapter.reconcile_totals(clearing_agency=HOSPITAL_ADMDVS, begins_on=tomorrow, ends_on=tomorrow,
                                     total=D("0"), fund=D("0"), account=D("0"), count=0)

    assert result.consistent and empty.consistent and empty.count == 0


def test_detail_reconciliation_lists_each_difference_on_either_side(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    matched, mismatched, cancelled, unlisted = _settle_batches(adapter, msgid, visit,
                                                               ["E0001", "J0001", "J0004", "E0003"])
    adapter.cancel_settlement(setl_id=cancelled.setl_id, mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no,
                              insured_region=visit.region, msgid=msgid())
    today = _sim_today(control)

    def line(s: SettlementResult, **change) -> SettlementLine:
        values = {"setl_id": s.setl_id, "total": s.total, "fund": s.fund, "account": s.account, "cash": s.cash}
        return SettlementLine(**{**values, **change})

    journal = [line(matched), line(mismatched, fund=mismatched.fund + D("1.00")), line(cancelled),
               SettlementLine(setl_id="NO-SUCH-SETTLEMENT", total=D("5.00"), fund=D("0"), account=D("5.00"),
                              cash=D("0"))]
    result = adapter.reconcile_details(clearing_agency=HOSPITAL_ADMDVS, begins_on=today, ends_on=today,
                                       settlements=journal)
    found = {d.setl_id: d for d in result.differences}

    assert not result.consistent
    assert (result.hospital_count, result.platform_count, result.matched_count) == (4, 3, 1)
    assert set(found) == {mismatched.setl_id, cancelled.setl_id, "NO-SUCH-SETTLEMENT", unlisted.setl_id}
    assert found[mismatched.setl_id].kind is DifferenceKind.AMOUNT_MISMATCH
    assert [(a.field, a.hospital, a.platform) for a in found[mismatched.setl_id].amounts] == [
        ("fund_pay_sumamt", mismatched.fund + D("1.00"), mismatched.fund)]
    assert (found[cancelled.setl_id].kind, found[cancelled.setl_id].platform_state) == (
        DifferenceKind.HOSPITAL_ONLY, "cancelled")
    assert (found["NO-SUCH-SETTLEMENT"].kind, found["NO-SUCH-SETTLEMENT"].platform_state) == (
        DifferenceKind.HOSPITAL_ONLY, "unknown")
    assert found[unlisted.setl_id].kind is DifferenceKind.PLATFORM_ONLY
    assert {a.field: a.platform for a in found[unlisted.setl_id].amounts}["medfee_sumamt"] == unlisted.total


def test_detail_reconciliation_of_a_matching_journal_is_consistent(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "same_province", medium="card_without_sn")
    settled = _settle_batches(adapter, msgid, visit, ["E0001", "Y0003"])
    today = _sim_today(control)

    result = adapter.reconcile_details(
        clearing_agency=HOSPITAL_ADMDVS, begins_on=today, ends_on=today,
        settlements=[SettlementLine(s.setl_id, s.total, s.fund, s.account, s.cash) for s in settled])

    assert result.consistent and result.differences == () and result.matched_count == 2


# -- the control surface ------------------------------------------------------------------------
def test_the_outpatient_books_are_inspectable_and_reset_empties_them(adapter, control, msgid):
    visit = _open_visit(adapter, msgid, "local_employee")
    adapter.settle(_bill(adapter, msgid, visit, [_item(1, "E0001")]), msgid=msgid())

    state = control.get("/__sim__/state").json()
    for collection in ("registrations", "fee_details", "settlements", "messages", "year_to_date"):
        assert state[collection], collection
    assert {"catalog", "policies"} <= set(state)
    assert {m["infno"] for m in state["messages"]} == {"2201", "2203", "2204", "2207"}

    control.post("/__sim__/reset").raise_for_status()

    state = control.get("/__sim__/state").json()
    assert all(state[c] == [] for c in ("registrations", "fee_details", "settlements", "messages", "year_to_date"))
    assert _balance(adapter, visit.persona) == D("1520.35")


def test_a_policy_loaded_at_run_time_changes_the_split(adapter, control, msgid):
    control.post("/__sim__/data/policies", json=[{"admdvs": "320100", "kind": "retired", "deductible": "0.00",
                                                   "fund_ratio": "0.90", "visit_cap": "1000.00"}]).raise_for_status()
    visit = _open_visit(adapter, msgid, "local_employee")

    settled = adapter.settle(_bill(adapter, msgid, visit, [_item(1, "J0001")]), msgid=msgid())

    assert (settled.deductible, settled.fund, settled.account) == (D("0.00"), D("18.00"), D("2.00"))
