"""The HIS adapter against the HIS simulator over real HTTP: the contract, the demo hospital, faults."""

from __future__ import annotations

import datetime as dt
import logging
import time
from decimal import Decimal

import httpx
import pytest

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.his.http import HisHttpAdapter
from medkiosk.adapters.his.port import DoctorLevel, ExamType, HalfDay, ItemKind, NewPatient, OrderStatus
from medkiosk.domain.identity import birth_date_from_id, gender_from_id, id_check_char, make_id_number
from medkiosk.simulators.his.app import create_app
from medkiosk.simulators.personas import PERSONAS

from simulator_fixtures import simulator_fixtures

FILED = [key for key, p in PERSONAS.items() if p.patient_id]
FIRST_VISIT = [key for key, p in PERSONAS.items() if not p.patient_id]
ADMITTED = [key for key, p in PERSONAS.items() if p.admission]


server, sim = simulator_fixtures(create_app, name="his-sim")


@pytest.fixture
def his(server, sim):
    with HisHttpAdapter(server.url, timeout=5) as adapter:
        yield adapter


def new_person(seq: int = 7, **overrides) -> NewPatient:
    fields = {"name": "测试新患者", "id_number": make_id_number("320106", dt.date(1999, 9, 9), seq),
              "phone": "13700000001"} | overrides
    return NewPatient(**fields)


# -- patients -------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", FILED)
def test_every_filed_persona_is_found_by_id_number_and_by_visit_card(his, key):
    persona = PERSONAS[key]
    by_id = his.find_patient(id_number=persona.id_number)
    by_card = his.find_patient(visit_card_no=persona.visit_card_no)
    assert by_id is not None and by_id == by_card
    assert (by_id.patient_id, by_id.name, by_id.phone) == (persona.patient_id, persona.name, persona.phone)
    assert by_id.gender == gender_from_id(persona.id_number)
    assert by_id.birth_date == birth_date_from_id(persona.id_number)
    if persona.insurance:
        assert his.find_patient(insurance_card_no=persona.insurance.card_no) == by_id
    else:
        assert by_id.insurance_card_no is None


def test_a_lower_case_x_in_the_id_number_still_finds_the_patient(his, sim):
    id_number = next(n for seq in range(1000)
                     if (n := make_id_number("320104", dt.date(1970, 7, 1), seq)).endswith("X"))
    sim.post("/__sim__/data/patients", json=[{"name": "带X患者", "id_number": id_number,
                                              "phone": "13812345678"}]).raise_for_status()
    found = his.find_patient(id_number=id_number.lower())
    assert found is not None and found.id_number == id_number


def test_find_patient_needs_exactly_one_criterion(his):
    with pytest.raises(ValueError):
        his.find_patient()
    with pytest.raises(ValueError):
        his.find_patient(id_number="x", patient_id="P000001")


@pytest.mark.parametrize("key", FIRST_VISIT)
def test_a_first_visit_persona_is_unknown_then_filed_and_found(his, key):
    persona = PERSONAS[key]
    assert his.find_patient(id_number=persona.id_number) is None

    card = persona.insurance.card_no if persona.insurance else None
    created = his.create_patient(NewPatient(name=persona.name, id_number=persona.id_number, phone=persona.phone,
                                            insurance_card_no=card))

    assert created.patient_id not in {p.patient_id for p in PERSONAS.values()}
    assert created.visit_card_no and created.visit_card_no not in {p.visit_card_no for p in PERSONAS.values()}
    assert created.gender == gender_from_id(persona.id_number)
    assert his.find_patient(id_number=persona.id_number) == created
    assert his.find_patient(visit_card_no=created.visit_card_no) == created
    if card:
        assert his.find_patient(insurance_card_no=card) == created


def test_filing_an_id_number_twice_is_refused_with_the_his_message(his):
    persona = PERSONAS["local_employee"]
    with pytest.raises(UpstreamRefused) as refused:
        his.create_patient(NewPatient(name=persona.name, id_number=persona.id_number, phone=persona.phone))
    assert not isinstance(refused.value, UpstreamNotFound)
    assert refused.value.code == "CONFLICT"
    assert "已建档" in refused.value.message


def test_filing_twice_answers_409_on_the_wire(sim):
    persona = PERSONAS["self_pay"]
    reply = sim.post("/his/v1/patients", json={"name": persona.name, "id_number": persona.id_number,
                                                "gender": gender_from_id(persona.id_number), "phone": persona.phone,
                                                "birth_date": birth_date_from_id(persona.id_number).isoformat()})
    assert reply.status_code == 409
    assert reply.json()["code"] == "CONFLICT"


VALID_ID = new_person().id_number
WRONG_CHECK_DIGIT = VALID_ID[:17] + ("0" if VALID_ID[17] != "0" else "1")
THIRTIETH_OF_FEBRUARY = "32010619990230007" + id_check_char("32010619990230007")


@pytest.mark.parametrize("fields, words", [
    ({"id_number": WRONG_CHECK_DIGIT}, "身份证"),
    ({"id_number": THIRTIETH_OF_FEBRUARY}, "身份证"),
    ({"phone": "12345"}, "手机"),
    ({"gender": "F"}, "性别"),  # the ID number says male
])
def test_bad_filing_details_are_refused_as_invalid(his, sim, fields, words):
    person = new_person(**fields)
    with pytest.raises(UpstreamRefused) as refused:
        his.create_patient(person)
    assert refused.value.code == "INVALID"
    assert words in refused.value.message
    raw = sim.post("/his/v1/patients", json=person.model_dump(mode="json", exclude_none=True))
    assert raw.status_code == 422 and raw.json()["code"] == "INVALID"
    assert his.find_patient(id_number=new_person().id_number) is None


def test_a_malformed_request_is_answered_in_the_his_error_shape(sim):
    reply = sim.post("/his/v1/patients", json={"name": "某人", "gender": "X"})
    assert reply.status_code == 422
    body = reply.json()
    assert body["code"] == "INVALID" and "id_number" in body["message"] and "gender" in body["message"]


# -- admissions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("key", FILED)
def test_admitted_personas_have_their_admission_and_the_others_none(his, key):
    persona = PERSONAS[key]
    admission = his.current_admission(persona.patient_id)
    if persona.admission is None:
        assert admission is None
    else:
        assert admission is not None
        assert (admission.admission_no, admission.ward, admission.bed, admission.department, admission.admitted_on) \
            == (persona.admission.admission_no, persona.admission.ward, persona.admission.bed,
                persona.admission.department, persona.admission.admitted_on)


def test_the_two_inpatient_personas_are_admitted(his):
    assert sorted(ADMITTED) == ["inpatient", "inpatient_self_pay"]
    assert all(his.current_admission(PERSONAS[key].patient_id) for key in ADMITTED)


def test_a_past_stay_does_not_make_a_patient_an_inpatient(his, sim):
    local = PERSONAS["local_employee"]
    stays = [a for a in sim.get("/__sim__/state/admissions").json() if a["patient_id"] == local.patient_id]
    assert stays and all(a["discharged_on"] for a in stays)
    assert his.current_admission(local.patient_id) is None


def test_the_admission_of_an_unknown_patient_is_not_found(his):
    with pytest.raises(UpstreamNotFound):
        his.current_admission("P999999")


# -- departments, doctors, schedules ---------------------------------------------------------------

def test_departments_are_two_levels_with_at_least_twenty_clinical_departments(his):
    groups = his.list_departments()
    names = {g.name for g in groups}
    assert {"内科", "外科", "妇产科", "儿科", "五官科", "医技"} <= names
    clinical = [d for g in groups if g.name != "医技" for d in g.children]
    assert len(clinical) >= 20
    for group in groups:
        assert group.parent_code is None and group.children
        for department in group.children:
            assert department.parent_code == group.code
            assert department.children == []
            assert department.location and department.intro
    codes = [d.code for g in groups for d in [g, *g.children]]
    assert len(codes) == len(set(codes))


def test_there_are_forty_doctors_of_every_title_and_both_levels(his):
    doctors = his.list_doctors()
    assert len(doctors) >= 40
    assert {d.title for d in doctors} == {"主任医师", "副主任医师", "主治医师", "住院医师"}
    assert {d.level for d in doctors} == {DoctorLevel.ORDINARY, DoctorLevel.EXPERT}
    for doctor in doctors:
        expected = DoctorLevel.EXPERT if doctor.title in ("主任医师", "副主任医师") else DoctorLevel.ORDINARY
        assert doctor.level == expected and doctor.intro
    clinical = {d.code for g in his.list_departments() for d in g.children}
    assert {d.department_code for d in doctors} <= clinical


def test_doctors_can_be_listed_by_department_or_by_group(his):
    cardiology = his.list_doctors("0101")
    assert cardiology and {d.department_code for d in cardiology} == {"0101"}
    internal = his.list_doctors("01")
    assert {d.department_code for d in internal} >= {"0101", "0104"}
    assert {d.department_code[:2] for d in internal} == {"01"}
    assert his.list_doctors("9999") == []


def test_schedules_run_from_today_for_fourteen_more_days_with_both_half_days_and_levels(his):
    today = dt.date.today()
    seen_half_days, seen_levels = set(), set()
    for offset in range(15):
        day = today + dt.timedelta(days=offset)
        slots = his.list_schedules(day)
        assert slots, f"no slots on {day}"
        assert {s.date for s in slots} == {day}
        seen_half_days |= {s.half_day for s in slots}
        seen_levels |= {s.level for s in slots}
        for slot in slots:
            assert 0 <= slot.remaining <= slot.total
            assert isinstance(slot.fee, Decimal) and slot.fee == slot.fee.quantize(Decimal("0.01"))
            if slot.level is DoctorLevel.ORDINARY:
                assert slot.fee == Decimal("10.00")
            else:
                assert slot.fee in (Decimal("30.00"), Decimal("50.00"))
    assert seen_half_days == {HalfDay.AM, HalfDay.PM}
    assert seen_levels == {DoctorLevel.ORDINARY, DoctorLevel.EXPERT}
    assert his.list_schedules(today + dt.timedelta(days=15)) == []
    assert his.list_schedules(today - dt.timedelta(days=1)) == []


def test_schedules_filter_by_department_and_doctor(his):
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    cardiology = his.list_schedules(tomorrow, department_code="0101")
    assert cardiology and {s.department_code for s in cardiology} == {"0101"}
    assert {s.department_name for s in cardiology} == {"心血管内科"}
    doctor = cardiology[0].doctor_code
    mine = his.list_schedules(tomorrow, doctor_code=doctor)
    assert mine and {s.doctor_code for s in mine} == {doctor}


def test_money_travels_as_strings_with_two_places(sim):
    slots = sim.get("/his/v1/schedules", params={"date": dt.date.today().isoformat()}).json()["schedules"]
    assert slots and all(isinstance(s["fee"], str) and s["fee"].count(".") == 1 and len(s["fee"].split(".")[1]) == 2
                         for s in slots)
    visits = sim.get(f"/his/v1/patients/{PERSONAS['self_pay'].patient_id}/orders?status=unpaid").json()["visits"]
    amounts = [v["total_amount"] for v in visits] + [i[k] for v in visits for i in v["items"]
                                                     for k in ("unit_price", "amount")]
    assert amounts and all(isinstance(a, str) and len(a.split(".")[1]) == 2 for a in amounts)


# -- orders and exam orders -------------------------------------------------------------------------

@pytest.mark.parametrize("key", FILED)
def test_every_filed_persona_has_unpaid_orders_of_every_kind(his, key):
    visits = his.unpaid_orders(PERSONAS[key].patient_id)
    items = [item for visit in visits for item in visit.items]
    assert {item.kind for item in items} == set(ItemKind)
    for visit in visits:
        assert visit.total_amount == sum(item.amount for item in visit.items)
        assert visit.department_name and visit.doctor_name
        for item in visit.items:
            assert item.amount == item.unit_price * item.quantity
            if item.insurance_code is None:
                assert item.self_pay_only
    non_medical = {item.name: item for item in items if item.kind is ItemKind.NON_MEDICAL}
    assert {"病历复印费", "影像光盘刻录费"} <= set(non_medical)
    assert all(item.self_pay_only and item.insurance_code is None for item in non_medical.values())
    covered = [item for item in items if item.insurance_code and not item.self_pay_only]
    assert covered, "some items are covered by insurance"


def test_unpaid_orders_of_an_unknown_patient_are_not_found(his):
    with pytest.raises(UpstreamNotFound):
        his.unpaid_orders("P999999")


@pytest.mark.parametrize("key", FILED)
def test_every_filed_persona_has_paid_ct_mri_ultrasound_and_ecg_orders(his, key):
    orders = his.exam_orders(PERSONAS[key].patient_id)
    assert {o.exam_type for o in orders} == set(ExamType)
    assert all(o.status is OrderStatus.PAID for o in orders)
    assert any(o.booked for o in orders) and any(not o.booked for o in orders)
    preparations = " ".join(o.preparation for o in orders if o.exam_type is ExamType.ULTRASOUND)
    assert "空腹" in preparations and "憋尿" in preparations
    assert all(o.department_name and o.location and o.body_part and o.exam_name for o in orders)


def test_an_unpaid_exam_is_charged_in_the_orders_and_not_listed_as_paid(his, sim):
    patient_id = PERSONAS["local_employee"].patient_id
    unpaid_exams = {i.order_no for v in his.unpaid_orders(patient_id) for i in v.items if i.kind is ItemKind.EXAM}
    all_exam_orders = sim.get(f"/his/v1/patients/{patient_id}/exam-orders").json()["exam_orders"]
    assert unpaid_exams <= {o["order_no"] for o in all_exam_orders if o["status"] == "unpaid"}
    assert unpaid_exams.isdisjoint({o.order_no for o in his.exam_orders(patient_id)})


# -- run-time data through the control surface -------------------------------------------------------

def test_a_patient_added_at_run_time_is_found_by_the_adapter(his, sim):
    id_number = make_id_number("320111", dt.date(1980, 1, 2), 31)
    reply = sim.post("/__sim__/data/patients", json=[{"name": "培训患者", "id_number": id_number,
                                                      "phone": "13811112222", "insurance_card_no": "A32019999"}])
    assert reply.status_code == 200 and reply.json() == {"added": 1}

    found = his.find_patient(id_number=id_number)
    assert found is not None and found.name == "培训患者" and found.patient_id and found.visit_card_no
    assert his.find_patient(insurance_card_no="A32019999") == found
    assert his.unpaid_orders(found.patient_id) == []


def test_a_department_and_doctor_added_at_run_time_are_listed(his, sim):
    assert sim.post("/__sim__/data/departments", json=[
        {"code": "0107", "name": "老年医学科", "parent_code": "01", "location": "门诊楼3层D区", "intro": "老年综合评估。"},
    ]).status_code == 200
    assert sim.post("/__sim__/data/doctors", json=[
        {"code": "D010701", "name": "培训医生", "title": "主任医师", "department_code": "0107", "level": "expert"},
    ]).status_code == 200
    day = dt.date.today() + dt.timedelta(days=2)
    assert sim.post("/__sim__/data/schedules", json=[
        {"date": day.isoformat(), "half_day": "pm", "department_code": "0107", "doctor_code": "D010701",
         "level": "expert", "fee": "50.00", "total": 10, "remaining": 10},
    ]).status_code == 200

    internal = next(g for g in his.list_departments() if g.code == "01")
    assert "老年医学科" in {d.name for d in internal.children}
    slots = his.list_schedules(day, department_code="0107")
    assert [(s.doctor_name, s.half_day, s.fee) for s in slots] == [("培训医生", HalfDay.PM, Decimal("50.00"))]


def test_a_bad_item_is_refused_with_422_and_nothing_is_added(his, sim):
    before = len(sim.get("/__sim__/state/patients").json())
    good = {"name": "好数据", "id_number": make_id_number("320111", dt.date(1981, 1, 2), 32), "phone": "13811113333"}
    bad = {"name": "坏数据", "id_number": "320111198101020329", "phone": "13811114444"}
    reply = sim.post("/__sim__/data/patients", json=[good, bad])
    assert reply.status_code == 422
    assert "item 1" in reply.json()["detail"] and "id_number" in reply.json()["detail"]
    assert len(sim.get("/__sim__/state/patients").json()) == before
    assert his.find_patient(id_number=good["id_number"]) is None


@pytest.mark.parametrize("collection, item, words", [
    ("doctors", {"code": "D9", "name": "某", "title": "主任医师", "department_code": "9999", "level": "expert"},
     "does not exist"),
    ("schedules", {"date": "2030-01-01", "half_day": "am", "department_code": "0101", "doctor_code": "D010101",
                   "level": "ordinary", "fee": 10.5, "total": 5, "remaining": 5}, "not a float"),
    ("patients", {"name": "重复", "id_number": PERSONAS["self_pay"].id_number, "phone": "13800000000"},
     "duplicate id_number"),
    ("orders", {"order_no": "X1", "patient_id": "P000001", "visit_no": "V", "visit_date": "2030-01-01",
                "department_code": "0101", "doctor_code": "D010101",
                "items": [{"item_code": "F0001", "name": "病历复印费", "kind": "non_medical", "self_pay_only": True,
                           "unit": "张", "unit_price": "0.50", "quantity": 2, "amount": "2.00"}]}, "amount"),
    ("nonsense", {"a": 1}, "unknown collection"),
])
def test_bad_run_time_data_is_refused_with_a_clear_message(sim, collection, item, words):
    before = sim.get("/__sim__/state").json()
    reply = sim.post(f"/__sim__/data/{collection}", json=[item])
    assert reply.status_code == 422
    assert words in reply.json()["detail"]
    assert sim.get("/__sim__/state").json() == before


# -- faults --------------------------------------------------------------------------------------------

def fault(sim, **spec) -> dict:
    reply = sim.post("/__sim__/faults", json=spec)
    reply.raise_for_status()
    return reply.json()


def test_an_error_fault_is_an_unknown_outcome_carrying_its_message(his, sim):
    fault(sim, operation="patients.find", kind="error", message="HIS 数据库连接失败", count=1)
    with pytest.raises(UpstreamUnknown) as unknown:
        his.find_patient(id_number=PERSONAS["local_employee"].id_number)
    assert (unknown.value.code, unknown.value.message) == ("SIM_FAULT", "HIS 数据库连接失败")
    assert his.find_patient(id_number=PERSONAS["local_employee"].id_number) is not None


def test_an_error_fault_with_a_refusal_code_is_a_refusal(his, sim):
    fault(sim, operation="patients.create", kind="error", code="REFUSED", message="HIS 暂停建档，请到窗口办理")
    with pytest.raises(UpstreamRefused) as refused:
        his.create_patient(new_person())
    assert refused.value.message == "HIS 暂停建档，请到窗口办理"
    assert his.find_patient(id_number=new_person().id_number) is None


def test_a_fault_touches_only_its_operation(his, sim):
    fault(sim, operation="patients.find", kind="error")
    assert len(his.list_departments()) >= 5
    with pytest.raises(UpstreamUnknown):
        his.find_patient(patient_id="P000001")


def test_a_latency_fault_delays_the_answer(his, sim):
    fault(sim, operation="departments.list", kind="latency", delay_ms=400)
    started = time.monotonic()
    groups = his.list_departments()
    assert time.monotonic() - started >= 0.4
    assert groups


def test_a_timeout_fault_is_an_unknown_outcome_and_commits_nothing(server, sim):
    fault(sim, operation="patients.create", kind="timeout", hang_seconds=0.8, count=1)
    person = new_person(seq=41)
    with HisHttpAdapter(server.url, timeout=0.2) as impatient:
        started = time.monotonic()
        with pytest.raises(UpstreamUnknown) as unknown:
            impatient.create_patient(person)
        assert time.monotonic() - started < 0.8
        assert unknown.value.code == "TIMEOUT"
        time.sleep(0.8)  # past the hang: the simulator gave up without filing
        assert impatient.find_patient(id_number=person.id_number) is None


def test_a_lost_reply_files_the_patient_upstream_while_the_adapter_sees_no_answer(server, sim):
    fault(sim, operation="patients.create", kind="lost_reply", hang_seconds=1.0, count=1)
    person = new_person(seq=43)
    with HisHttpAdapter(server.url, timeout=0.3) as impatient:
        with pytest.raises(UpstreamUnknown):
            impatient.create_patient(person)
        filed = impatient.find_patient(id_number=person.id_number)
    assert filed is not None and filed.name == person.name
    calls = sim.get("/__sim__/calls", params={"operation": "patients.create"}).json()
    assert len(calls) == 1


def test_a_counted_fault_expires_after_its_count(his, sim):
    fault(sim, operation="departments.list", kind="error", count=2)
    for _ in range(2):
        with pytest.raises(UpstreamUnknown):
            his.list_departments()
    assert his.list_departments()
    assert sim.get("/__sim__/faults").json() == []


def test_a_probable_fault_hits_some_calls_and_spares_others(his, sim):
    fault(sim, operation="doctors.list", kind="error", probability=0.5)
    outcomes = []
    for _ in range(30):
        try:
            his.list_doctors("0101")
            outcomes.append("ok")
        except UpstreamUnknown:
            outcomes.append("failed")
    assert 0 < outcomes.count("failed") < 30


def test_a_probable_counted_fault_stops_after_its_count(his, sim):
    fault(sim, operation="doctors.list", kind="error", probability=0.5, count=3)
    failures = 0
    for _ in range(40):
        try:
            his.list_doctors("0101")
        except UpstreamUnknown:
            failures += 1
    assert failures == 3
    assert sim.get("/__sim__/faults").json() == []


def test_the_call_journal_keeps_no_readable_id_numbers(his, sim):
    id_number = PERSONAS["local_employee"].id_number
    his.find_patient(id_number=id_number)
    calls = sim.get("/__sim__/calls", params={"operation": "patients.find"}).json()
    assert len(calls) == 1
    recorded = calls[0]["request"]["id_number"]
    assert recorded != id_number and recorded[:4] == id_number[:4] and recorded[-4:] == id_number[-4:]


def test_reset_restores_the_demo_hospital(his, sim):
    created = his.create_patient(new_person(seq=45))
    fault(sim, operation="health", kind="error")
    sim.post("/__sim__/reset").raise_for_status()
    assert his.find_patient(patient_id=created.patient_id) is None
    assert his.health().status == "ok"


# -- the adapter's reading of replies the simulator does not send --------------------------------------

def adapter_answering(handler) -> HisHttpAdapter:
    return HisHttpAdapter("http://his.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("reply, error", [
    (httpx.Response(500, text="<html>Internal Server Error</html>"), UpstreamUnknown),
    (httpx.Response(502, json={"code": "GATEWAY", "message": "网关错误"}), UpstreamUnknown),
    (httpx.Response(429, json={"code": "BUSY", "message": "请求过多"}), UpstreamUnknown),
    (httpx.Response(200, text="not json"), UpstreamUnknown),
    (httpx.Response(200, json={"something": "else"}), UpstreamUnknown),
    (httpx.Response(200, json={"departments": [{"code": "01"}]}), UpstreamUnknown),
    (httpx.Response(400, text="bad request"), UpstreamRefused),
    (httpx.Response(403, json={"code": "FORBIDDEN", "message": "终端未授权"}), UpstreamRefused),
    (httpx.Response(404, json={"code": "NOT_FOUND", "message": "无此接口"}), UpstreamNotFound),
])
def test_the_adapter_maps_every_reply_to_a_refusal_or_an_unknown_outcome(reply, error):
    with adapter_answering(lambda request: reply) as adapter:
        with pytest.raises(error) as raised:
            adapter.list_departments()
    assert type(raised.value) is error
    assert raised.value.system == "his" and raised.value.operation == "departments.list"
    assert raised.value.message


def test_a_refusal_keeps_the_his_message_for_the_screen():
    reply = httpx.Response(403, json={"code": "FORBIDDEN", "message": "终端未授权"})
    with adapter_answering(lambda request: reply) as adapter, pytest.raises(UpstreamRefused) as refused:
        adapter.health()
    assert (refused.value.code, refused.value.message) == ("FORBIDDEN", "终端未授权")


def test_a_connection_failure_is_an_unknown_outcome():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with adapter_answering(refuse) as adapter, pytest.raises(UpstreamUnknown) as unknown:
        adapter.health()
    assert unknown.value.code == "TRANSPORT"


def test_amounts_sent_as_json_numbers_are_read_exactly():
    slot = {"schedule_id": "S1", "date": "2030-01-01", "half_day": "am", "department_code": "0101",
            "department_name": "心血管内科", "doctor_code": "D1", "doctor_name": "某", "level": "expert",
            "fee": 30.1, "total": 10, "remaining": 3, "added_by_a_newer_his": True}
    with adapter_answering(lambda request: httpx.Response(200, json={"schedules": [slot]})) as adapter:
        [parsed] = adapter.list_schedules(dt.date(2030, 1, 1))
    assert parsed.fee == Decimal("30.10") and str(parsed.fee) == "30.10"


def test_the_adapter_sends_the_contract_paths_and_parameters():
    seen = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.split(b"?")[0].decode(), dict(request.url.params)))
        return httpx.Response(200, json={"visits": [], "exam_orders": [], "schedules": []})

    with adapter_answering(record) as adapter:
        adapter.unpaid_orders("P 1/2")
        adapter.exam_orders("P000001")
        adapter.list_schedules(dt.date(2030, 1, 2), department_code="0101")
    assert seen == [
        ("GET", "/his/v1/patients/P%201%2F2/orders", {"status": "unpaid"}),
        ("GET", "/his/v1/patients/P000001/exam-orders", {"status": "paid"}),
        ("GET", "/his/v1/schedules", {"date": "2030-01-02", "department_code": "0101"}),
    ]


def test_the_adapter_logs_no_personal_data(his, caplog):
    persona = PERSONAS["local_employee"]
    caplog.set_level(logging.DEBUG, logger="medkiosk.adapters.his")
    his.find_patient(id_number=persona.id_number)
    with pytest.raises(UpstreamRefused):
        his.create_patient(NewPatient(name=persona.name, id_number=persona.id_number, phone=persona.phone))
    # Only the adapter's own lines: httpx logs request URLs (scrubbed by our log formatter, not in caplog).
    lines = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("medkiosk.adapters.his"))
    assert lines, "the adapter logs its calls"
    assert not any(secret in lines for secret in (persona.name, persona.id_number, persona.phone))


def test_a_patient_found_carries_their_current_admission(his):
    inpatient = his.find_patient(id_number=PERSONAS["inpatient"].id_number)
    assert inpatient.admission is not None and inpatient.admission.ward == "心内科一病区"
    assert his.find_patient(id_number=PERSONAS["local_employee"].id_number).admission is None
