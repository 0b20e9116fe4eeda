"""The insurance adapter against the insurance simulator, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal

import httpx
import pytest

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.insurance import Certificate, InsuranceHttpAdapter
from medkiosk.adapters.insurance.wire import new_msgid
from medkiosk.domain.identity import make_id_number
from medkiosk.serving import BackgroundServer, free_port
from medkiosk.simulators.insurance import create_app
from medkiosk.simulators.personas import HOSPITAL_ADMDVS, HOSPITAL_CODE, HOSPITAL_NAME, PERSONAS

from simulator_fixtures import simulator_fixtures

LOCAL = PERSONAS["local_employee"]
CROSS = PERSONAS["cross_province_filed"]
LOST = PERSONAS["lost_card"]
SPECIAL = PERSONAS["special_disease"]
SELF_PAY = PERSONAS["self_pay"]
SENT_AT = datetime(2026, 11, 25, 9, 30)


sim, control = simulator_fixtures(lambda: create_app(seed=20261125), name="insurance-sim",
                                  server="sim", client="control")


@pytest.fixture
def adapter(sim: BackgroundServer, control: httpx.Client) -> Iterator[InsuranceHttpAdapter]:
    with _adapter(sim) as insurance:
        yield insurance


def _adapter(sim: BackgroundServer, **kwargs) -> InsuranceHttpAdapter:
    return InsuranceHttpAdapter(sim.url, hospital_code=HOSPITAL_CODE, hospital_name=HOSPITAL_NAME,
                                hospital_admdvs=HOSPITAL_ADMDVS, device_no="KIOSK-0101", **kwargs)


def _calls(control: httpx.Client, operation: str) -> list[dict]:
    return control.get("/__sim__/calls", params={"operation": operation}).json()


def _card(persona, *, with_sn: bool = True) -> Certificate:
    return Certificate("03", persona.insurance.card_no, persona.insurance.card_sn if with_sn else None)


def _envelope(**overrides) -> dict:
    envelope = {
        "infno": "9001", "msgid": new_msgid(HOSPITAL_CODE, SENT_AT, 2), "mdtrtarea_admvs": HOSPITAL_ADMDVS,
        "insuplc_admdvs": "", "recer_sys_code": "FSI", "dev_no": "KIOSK-0101", "dev_safe_info": "", "cainfo": "",
        "signtype": "", "infver": "V1.0", "opter_type": "2", "opter": "KIOSK-0101", "opter_name": "自助机",
        "inf_time": "2026-11-25 09:30:00", "fixmedins_code": HOSPITAL_CODE, "fixmedins_name": HOSPITAL_NAME,
        "sign_no": "", "input": {"signIn": {"opter_no": "KIOSK-0101", "mac": "", "ip": ""}},
    }
    envelope.update(overrides)
    return envelope


# -- sign-in ------------------------------------------------------------------------------------
def test_the_adapter_signs_in_once_and_reuses_the_sign_no(adapter, control):
    adapter.person_info(Certificate("02", LOCAL.id_number))
    adapter.person_info(Certificate("02", SPECIAL.id_number))

    assert len(_calls(control, "9001")) == 1
    assert len(_calls(control, "1101")) == 2


def test_the_adapter_signs_in_again_when_the_platform_has_forgotten_its_sign_in(adapter, control):
    adapter.person_info(Certificate("02", LOCAL.id_number))
    control.post("/__sim__/load", json={"signins": []}).raise_for_status()  # as the platform does overnight

    person = adapter.person_info(Certificate("02", LOCAL.id_number))

    assert person.psn_no == LOCAL.insurance.psn_no
    assert len(_calls(control, "9001")) == 2
    assert len(_calls(control, "1101")) == 3  # first, refused as not signed in, retried


def test_a_transaction_without_a_valid_sign_no_is_refused(sim):
    body = _envelope(infno="1101", sign_no="not-a-sign-no",
                     input={"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": LOCAL.id_number}})
    reply = httpx.post(f"{sim.url}/fsi/api", json=body).json()

    assert int(reply["infcode"]) == -1
    assert reply["err_msg"] == "未签到或签到已失效"


# -- the envelope -------------------------------------------------------------------------------
def test_a_msgid_that_does_not_start_with_the_hospital_code_is_refused(sim):
    reply = httpx.post(f"{sim.url}/fsi/api", json=_envelope(msgid="X" * 12 + "20261125093000" + "0001")).json()

    assert reply["infcode"] == "-1"  # odd sequence: infcode sent as a string
    assert "msgid" in reply["err_msg"]


def test_an_envelope_missing_fields_is_refused_naming_them(sim):
    body = _envelope()
    del body["recer_sys_code"], body["inf_time"]
    reply = httpx.post(f"{sim.url}/fsi/api", json=body).json()

    assert reply["infcode"] == -1  # even sequence: infcode sent as a number
    assert "recer_sys_code" in reply["err_msg"] and "inf_time" in reply["err_msg"]


def test_the_simulator_varies_infcode_type_and_sends_sign_in_output_as_a_json_string(sim):
    even = httpx.post(f"{sim.url}/fsi/api", json=_envelope(msgid=new_msgid(HOSPITAL_CODE, SENT_AT, 8))).json()
    odd = httpx.post(f"{sim.url}/fsi/api", json=_envelope(msgid=new_msgid(HOSPITAL_CODE, SENT_AT, 9))).json()

    assert even["infcode"] == 0 and odd["infcode"] == "0"
    assert isinstance(even["output"], str) and '"sign_no"' in even["output"]


def test_1101_with_an_insured_region_in_the_envelope_is_refused(adapter):
    with pytest.raises(UpstreamRefused) as refused:
        adapter.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": LOCAL.id_number}},
                     insuplc_admdvs=HOSPITAL_ADMDVS)

    assert "insuplc_admdvs" in refused.value.message


# -- 1101 by each medium ------------------------------------------------------------------------
@pytest.mark.parametrize("medium", ["id_number", "card", "e_certificate"])
def test_the_local_employee_is_found_by_every_medium(adapter, medium):
    if medium == "id_number":
        certificate = Certificate("02", LOCAL.id_number)
    elif medium == "card":
        certificate = _card(LOCAL, with_sn=False)  # a local card needs no 卡识别码
    else:
        certificate = adapter.resolve_e_certificate(LOCAL.insurance.ec_qr).as_certificate()

    person = adapter.person_info(certificate)

    assert (person.psn_no, person.name, person.id_number) == (LOCAL.insurance.psn_no, LOCAL.name, LOCAL.id_number)
    assert (person.gender, person.birth_date) == ("M", date(1958, 3, 15))
    assert (person.insured_region, person.scheme, person.person_type) == ("320100", "310", "12")
    assert person.balance == Decimal("1520.35") and isinstance(person.balance, Decimal)
    assert not person.is_cross_province(HOSPITAL_ADMDVS)


def test_a_resident_is_reported_under_the_resident_scheme_with_an_empty_account(adapter):
    resident = PERSONAS["local_resident"]
    person = adapter.person_info(Certificate("02", resident.id_number))

    assert (person.scheme, person.gender, person.balance) == ("390", "F", Decimal("0.00"))


def test_a_card_reported_lost_is_refused_with_the_platforms_message(adapter):
    with pytest.raises(UpstreamRefused) as refused:
        adapter.person_info(_card(LOST))

    assert refused.value.message == "该社保卡已挂失，请持身份证到人工窗口办理"
    assert not isinstance(refused.value, UpstreamNotFound)


def test_the_holder_of_a_lost_card_is_still_found_by_id_number(adapter):
    assert adapter.person_info(Certificate("02", LOST.id_number)).psn_no == LOST.insurance.psn_no


def test_a_cross_province_card_without_its_card_sn_is_refused_naming_the_card_sn(adapter):
    with pytest.raises(UpstreamRefused) as refused:
        adapter.person_info(_card(CROSS, with_sn=False))

    assert "卡识别码" in refused.value.message


def test_a_cross_province_card_with_a_wrong_card_sn_is_refused(adapter):
    with pytest.raises(UpstreamRefused) as refused:
        adapter.person_info(Certificate("03", CROSS.insurance.card_no, "340100D15600000500000000000000000000"))

    assert "卡识别码" in refused.value.message


def test_a_cross_province_card_with_its_card_sn_gives_the_persons_own_insured_region(adapter):
    person = adapter.person_info(_card(CROSS))

    assert person.insured_region == "340100" != HOSPITAL_ADMDVS
    assert person.is_cross_province(HOSPITAL_ADMDVS)
    assert person.balance == Decimal("2310.50")


def test_a_same_province_card_needs_no_card_sn_and_keeps_its_own_region(adapter):
    same = PERSONAS["same_province"]
    person = adapter.person_info(_card(same, with_sn=False))

    assert person.insured_region == "320200"
    assert not person.is_cross_province(HOSPITAL_ADMDVS)


def test_someone_without_insurance_is_not_found(adapter):
    with pytest.raises(UpstreamNotFound) as not_found:
        adapter.person_info(Certificate("02", SELF_PAY.id_number))

    assert "未查询到" in not_found.value.message


# -- e-certificate ------------------------------------------------------------------------------
def test_an_e_certificate_qr_resolves_to_a_token_for_the_persons_region(adapter):
    certificate = adapter.resolve_e_certificate(CROSS.insurance.ec_qr)

    assert (certificate.id_number, certificate.name, certificate.insured_region) == (CROSS.id_number, CROSS.name, "340100")
    assert certificate.token and certificate.expires_in_seconds == 600
    assert adapter.person_info(certificate.as_certificate()).psn_no == CROSS.insurance.psn_no


def test_an_unknown_qr_is_refused(adapter):
    with pytest.raises(UpstreamRefused) as refused:
        adapter.resolve_e_certificate("ECQR-NOBODY")

    assert refused.value.message == "电子凭证二维码无效或已过期，请刷新后重试"


def test_an_expired_e_certificate_token_is_refused(adapter, control):
    certificate = adapter.resolve_e_certificate(LOCAL.insurance.ec_qr)
    control.post("/__sim__/clock", json={"advance_seconds": 601}).raise_for_status()

    with pytest.raises(UpstreamRefused) as refused:
        adapter.person_info(certificate.as_certificate())

    assert "过期" in refused.value.message


def test_a_made_up_e_certificate_token_is_refused(adapter):
    with pytest.raises(UpstreamRefused):
        adapter.person_info(Certificate("01", "ect-made-up"))


# -- 5301 special diseases ----------------------------------------------------------------------
def test_the_special_disease_patients_filings_come_from_5301(adapter):
    person = adapter.person_info(Certificate("02", SPECIAL.id_number), include_special_diseases=True)

    assert [(d.code, d.name) for d in person.special_diseases] == [("M03900", "糖尿病"), ("M01600", "高血压")]
    assert all(d.begins_on and d.ends_on and d.begins_on < d.ends_on for d in person.special_diseases)


def test_special_diseases_are_only_queried_when_asked(adapter, control):
    person = adapter.person_info(Certificate("02", SPECIAL.id_number))

    assert person.special_diseases == ()
    assert _calls(control, "5301") == []


def test_someone_without_filings_has_no_special_diseases(adapter):
    assert adapter.special_diseases(LOCAL.insurance.psn_no, "320100") == []


def test_5301_sent_with_the_hospitals_region_for_a_cross_province_person_is_refused(adapter):
    with pytest.raises(UpstreamRefused) as refused:
        adapter.special_diseases(CROSS.insurance.psn_no, HOSPITAL_ADMDVS)

    assert "参保地" in refused.value.message


# -- data loaded at run time --------------------------------------------------------------------
def _new_person(**overrides) -> dict:
    person = {
        "psn_no": "32010000000000000999", "name": "测试人", "id_number": make_id_number("320102", date(1980, 1, 2), 511),
        "insutype": "310", "psn_type": "11", "insuplc_admdvs": "320100", "card_no": "A32010999",
        "card_sn": "320100D15600000500A1B2C3D4E5F6A999", "balance": "88.80", "ec_qr": "ECQR-320100-0999",
    }
    person.update(overrides)
    return person


def test_a_person_added_through_the_control_surface_is_known_at_once(adapter, control):
    added = control.post("/__sim__/data/people", json=[_new_person()])

    assert added.status_code == 200 and added.json() == {"added": 1}
    person = adapter.person_info(Certificate("03", "A32010999"))
    assert (person.psn_no, person.balance, person.gender) == ("32010000000000000999", Decimal("88.80"), "M")


def test_a_bad_person_is_refused_with_422_and_nothing_is_added(adapter, control):
    people_before = control.get("/__sim__/state/people").json()
    good = _new_person()
    wrong_check_digit = good["id_number"][:-1] + ("1" if good["id_number"][-1] != "1" else "2")
    bad = _new_person(psn_no="32010000000000000998", id_number=wrong_check_digit, card_no="A1", ec_qr="Q1")

    refused = control.post("/__sim__/data/people", json=[good, bad])

    assert refused.status_code == 422
    assert control.get("/__sim__/state/people").json() == people_before
    with pytest.raises(UpstreamNotFound):
        adapter.person_info(Certificate("02", good["id_number"]))


def test_a_person_reusing_someone_elses_card_is_refused(control):
    refused = control.post("/__sim__/data/people", json=[_new_person(card_no=LOCAL.insurance.card_no)])

    assert refused.status_code == 422 and "card_no" in refused.json()["detail"]


# -- faults -------------------------------------------------------------------------------------
def test_an_injected_error_reaches_the_caller_as_a_refusal_with_its_message(adapter, control):
    control.post("/__sim__/faults", json={"operation": "1101", "kind": "error", "message": "医保中心系统维护中",
                                          "count": 1}).raise_for_status()

    with pytest.raises(UpstreamRefused) as refused:
        adapter.person_info(Certificate("02", LOCAL.id_number))

    assert refused.value.message == "医保中心系统维护中"
    assert adapter.person_info(Certificate("02", LOCAL.id_number)).psn_no == LOCAL.insurance.psn_no


def test_a_platform_that_does_not_answer_in_time_is_an_unknown_outcome(sim, control):
    with _adapter(sim, timeout=0.3) as impatient:
        impatient.sign_in()
        control.post("/__sim__/faults", json={"operation": "1101", "kind": "timeout", "hang_seconds": 1.0,
                                              "count": 1}).raise_for_status()

        with pytest.raises(UpstreamUnknown) as unknown:
            impatient.person_info(Certificate("02", LOCAL.id_number))

    assert unknown.value.code == "TIMEOUT" and not unknown.value.permanent


def test_a_reply_lost_after_the_platform_answered_is_an_unknown_outcome(sim, control):
    with _adapter(sim, timeout=0.3) as impatient:
        control.post("/__sim__/faults", json={"operation": "ec.query", "kind": "lost_reply", "hang_seconds": 1.0,
                                              "count": 1}).raise_for_status()

        with pytest.raises(UpstreamUnknown):
            impatient.resolve_e_certificate(LOCAL.insurance.ec_qr)


def test_a_platform_that_is_not_there_is_an_unknown_outcome():
    with InsuranceHttpAdapter(f"http://127.0.0.1:{free_port()}", hospital_code=HOSPITAL_CODE,
                              hospital_name=HOSPITAL_NAME, hospital_admdvs=HOSPITAL_ADMDVS, device_no="K1",
                              timeout=1) as nowhere:
        with pytest.raises(UpstreamUnknown) as unknown:
            nowhere.sign_in()

    assert unknown.value.code == "TRANSPORT"
