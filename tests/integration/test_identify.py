"""Identifying patients over real HTTP: the service, the HIS and insurance simulators, signed requests."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.serving import start_in_thread
from medkiosk.settings import Settings, TerminalType
from medkiosk.simulators import registry
from medkiosk.simulators.personas import PERSONAS
from medkiosk.store.models import Event, KioskSession, Patient

from kiosk_client import Kiosk


@pytest.fixture(scope="module")
def simulators():
    his = start_in_thread(registry.create("his"), name="his-sim")
    insurance = start_in_thread(registry.create("insurance"), name="insurance-sim")
    yield his, insurance
    his.stop()
    insurance.stop()


@pytest.fixture
def service(database_url, simulators):
    his, insurance = simulators
    httpx.post(his.url + "/__sim__/reset")
    httpx.post(insurance.url + "/__sim__/reset")
    settings = Settings(database_url=database_url, his_url=his.url, insurance_url=insurance.url)
    container = build_container(settings)
    server = start_in_thread(create_app(container=container), name="service")
    outpatient = Kiosk(server.url, "K001", container.devices.enroll("K001", TerminalType.OUTPATIENT,
                                                                    location="门诊楼 1F"))
    ward = Kiosk(server.url, "W001", container.devices.enroll("W001", TerminalType.WARD, location="住院楼 5F"))
    yield container, outpatient, ward, his
    server.stop()
    container.close()


def test_a_local_employee_identifies_with_the_insurance_card(service):
    _, kiosk, _, _ = service
    result = kiosk.insert_insurance_card("local_employee")
    assert result["outcome"] == "identified"
    session = result["session"]
    assert session["patient"]["masked_name"] == "王*国"
    assert session["category"] == "local" and session["category_label"] == "本地医保"
    assert session["patient"]["insurance"]["balance"] == "1520.35"
    assert "王建国" not in json.dumps(result, ensure_ascii=False)
    assert PERSONAS["local_employee"].id_number not in json.dumps(result)


def test_an_insured_patient_identifies_with_the_id_card(service):
    _, kiosk, _, _ = service
    result = kiosk.place_id_card("local_resident")
    assert result["outcome"] == "identified"
    assert result["session"]["medium_label"] == "身份证"
    assert result["session"]["category"] == "local"


def test_an_uninsured_patient_with_an_id_card_is_self_pay(service):
    _, kiosk, _, _ = service
    result = kiosk.place_id_card("self_pay")
    assert result["outcome"] == "identified"
    assert result["session"]["category"] == "self_pay"


def test_the_e_certificate_identifies_a_cross_province_patient_as_such(service):
    _, kiosk, _, _ = service
    result = kiosk.scan_e_certificate("cross_province_filed")
    assert result["outcome"] == "identified"
    assert result["session"]["category"] == "cross_province"
    assert result["session"]["category_label"] == "跨省异地医保"
    assert result["session"]["patient"]["insurance"]["insured_region"] == "340100"


def test_a_same_province_patient_is_classified_as_same_province(service):
    _, kiosk, _, _ = service
    assert kiosk.insert_insurance_card("same_province")["session"]["category"] == "same_province"


def test_a_visit_card_identifies_as_self_pay_with_a_notice(service):
    _, kiosk, _, _ = service
    result = kiosk.swipe_visit_card("local_employee")
    assert result["outcome"] == "identified"
    assert result["session"]["category"] == "self_pay"
    assert any("自费" in notice for notice in result["session"]["notices"])


def test_a_card_reported_lost_is_refused_with_the_platforms_message(service):
    container, kiosk, _, _ = service
    result = kiosk.insert_insurance_card("lost_card")
    assert result["outcome"] == "refused"
    assert "挂失" in result["message"]
    assert result["next_step"]
    assert kiosk.get("/api/kiosk/session")["session"] is None
    with container.uow() as uow:
        assert uow.session.scalars(select(Event.kind)).all() == ["identify_refused"]


def test_a_cross_province_card_without_its_card_sn_is_refused(service):
    _, kiosk, _, _ = service
    result = kiosk.insert_insurance_card("cross_province_filed", with_card_sn=False)
    assert result["outcome"] == "refused"
    assert "卡识别码" in result["message"]


def test_an_admitted_patient_is_refused_at_an_outpatient_kiosk_and_told_where_to_go(service):
    container, kiosk, _, _ = service
    result = kiosk.insert_insurance_card("inpatient")
    assert result["outcome"] == "refused"
    assert "住院" in result["message"]
    assert "心内科一病区" in result["next_step"]
    with container.uow() as uow:
        event = uow.session.scalars(select(Event)).one()
        assert event.details["reason"] == "inpatient"
        assert "周强" not in json.dumps(event.details, ensure_ascii=False)
        assert uow.session.scalars(select(KioskSession)).all() == []


def test_an_admitted_patient_is_accepted_at_a_ward_terminal(service):
    _, _, ward, _ = service
    result = ward.insert_insurance_card("inpatient")
    assert result["outcome"] == "identified"
    assert result["session"]["patient"]["admission"]["ward"] == "心内科一病区"


def test_a_first_visit_enters_a_phone_number_and_is_created_in_his(service):
    container, kiosk, _, his = service
    first = kiosk.place_id_card("first_visit_self_pay")
    assert first["outcome"] == "needs_phone"
    assert first["masked_name"] == "冯*"
    bad = kiosk.post("/api/device/identify/phone", {"pending": first["pending"], "phone": "12345"})
    assert bad["outcome"] == "refused" and "11 位" in bad["message"]
    done = kiosk.post("/api/device/identify/phone", {"pending": first["pending"], "phone": "13905150099"})
    assert done["outcome"] == "identified"
    assert done["session"]["patient"]["masked_phone"] == "139****0099"
    found = httpx.get(his.url + "/his/v1/patients", params={"id_number": PERSONAS["first_visit_self_pay"].id_number})
    assert found.status_code == 200


def test_a_pending_first_visit_cannot_be_completed_at_another_kiosk(service):
    _, kiosk, ward, _ = service
    first = kiosk.place_id_card("first_visit_self_pay")
    stolen = ward.post("/api/device/identify/phone", {"pending": first["pending"], "phone": "13905150099"})
    assert stolen["outcome"] == "refused"


def test_identifiers_are_encrypted_at_rest(service):
    container, kiosk, _, _ = service
    kiosk.insert_insurance_card("local_employee")
    persona = PERSONAS["local_employee"]
    with container.uow() as uow:
        row = uow.session.scalars(select(Patient)).one()
        stored = json.dumps([row.name_enc, row.id_number_enc, row.phone_enc, row.id_number_hash], ensure_ascii=False)
        assert persona.name not in stored and persona.id_number not in stored and persona.phone not in stored
        assert container.cipher.decrypt("patient.id_number", row.id_number_enc) == persona.id_number
        assert row.id_number_hash == container.cipher.lookup_hash("id_number", persona.id_number)


def test_a_new_patient_at_the_same_kiosk_replaces_the_previous_session(service):
    _, kiosk, _, _ = service
    first = kiosk.insert_insurance_card("local_employee")["session"]["session_id"]
    second = kiosk.place_id_card("self_pay")["session"]
    assert second["session_id"] != first
    assert kiosk.get("/api/kiosk/session")["session"]["patient"]["masked_name"] == "郑*"


def test_logout_ends_the_session(service):
    _, kiosk, _, _ = service
    kiosk.insert_insurance_card("local_employee")
    assert kiosk.post("/api/kiosk/session/logout", {})["ended"] is True
    assert kiosk.get("/api/kiosk/session")["session"] is None


def test_when_his_is_down_the_patient_is_told_plainly(service):
    _, kiosk, _, his = service
    httpx.post(his.url + "/__sim__/faults", json={"operation": "*", "kind": "error", "count": 5})
    result = kiosk.insert_insurance_card("local_employee")
    assert result["outcome"] == "refused"
    assert "人工窗口" in result["next_step"]


def test_a_staff_call_is_recorded_for_staff(service):
    container, kiosk, _, _ = service
    reply = kiosk.post("/api/kiosk/staff-call", {"screen": "home"})
    assert "工作人员" in reply["message"]
    with container.uow() as uow:
        event = uow.session.scalars(select(Event)).one()
        assert event.kind == "staff_call" and event.device_id == "K001"
