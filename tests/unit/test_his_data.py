"""The HIS simulator's demo hospital and its in-memory rules, without HTTP."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from medkiosk.domain.identity import is_valid_id_number, make_id_number
from medkiosk.simulators.his.data import CATALOG, build_demo_hospital
from medkiosk.simulators.his.state import Conflict, HisState, Invalid, NotFound
from medkiosk.simulators.personas import PERSONAS

TODAY = dt.date(2026, 11, 25)


@pytest.fixture
def state() -> HisState:
    return HisState(today=TODAY)


def test_the_same_seed_and_day_build_the_same_hospital():
    assert build_demo_hospital(today=TODAY, seed=7) == build_demo_hospital(today=TODAY, seed=7)
    assert build_demo_hospital(today=TODAY, seed=7) != build_demo_hospital(today=TODAY, seed=8)


def test_the_calendar_moves_with_today():
    later = TODAY + dt.timedelta(days=30)
    dates = {s["date"] for s in build_demo_hospital(today=later)["schedules"]}
    assert min(dates) == later and max(dates) == later + dt.timedelta(days=14)


def test_filed_personas_are_patients_with_their_own_details_and_first_visits_are_absent(state):
    patients = {p["id_number"]: p for p in state.snapshot()["patients"]}
    for persona in PERSONAS.values():
        if persona.patient_id is None:
            assert persona.id_number not in patients
            continue
        record = patients[persona.id_number]
        assert (record["patient_id"], record["name"], record["phone"], record["visit_card_no"]) == (
            persona.patient_id, persona.name, persona.phone, persona.visit_card_no)


def test_at_least_thirty_patients_with_valid_unique_id_numbers(state):
    patients = state.snapshot()["patients"]
    assert len(patients) >= 30
    assert all(is_valid_id_number(p["id_number"]) for p in patients)
    for field in ("patient_id", "id_number", "visit_card_no", "phone"):
        assert len({p[field] for p in patients}) == len(patients), field


def test_catalogue_items_without_an_insurance_code_are_self_pay_only():
    assert all(item.self_pay_only for item in CATALOG.values() if item.insurance_code is None)
    assert all(item.unit_price == item.unit_price.quantize(Decimal("0.01")) for item in CATALOG.values())


def test_filing_assigns_the_next_patient_id_and_visit_card(state):
    created = state.create_patient(name="新患者", id_number=make_id_number("320102", dt.date(2000, 1, 1), 11),
                                   phone="13600000000")
    numbers = [int(p["patient_id"][1:]) for p in state.snapshot()["patients"]]
    assert created.patient_id == f"P{max(numbers):06d}"
    assert created.visit_card_no == f"V1{max(numbers):07d}"
    assert state.find_patient(visit_card_no=created.visit_card_no) == created


def test_filing_refusals_say_why(state):
    with pytest.raises(Conflict):
        state.create_patient(name="王建国", id_number=PERSONAS["local_employee"].id_number, phone="13905150001")
    with pytest.raises(Invalid, match="手机"):
        state.create_patient(name="某", id_number=make_id_number("320102", dt.date(2000, 1, 1), 12), phone="110")
    with pytest.raises(Invalid, match="查询条件"):
        state.find_patient(id_number=PERSONAS["local_employee"].id_number, patient_id="P000001")
    with pytest.raises(NotFound):
        state.find_patient(patient_id="P404404")


def test_a_batch_with_one_bad_item_changes_nothing(state):
    before = state.snapshot()
    good = {"name": "甲", "id_number": make_id_number("320102", dt.date(2000, 1, 1), 13), "phone": "13600000001"}
    with pytest.raises(ValueError, match="item 1"):
        state.add("patients", [good, {"name": "乙", "id_number": "123", "phone": "13600000002"}])
    assert state.snapshot() == before


def test_a_slot_added_without_an_id_gets_one(state):
    day = TODAY + dt.timedelta(days=20)
    state.add("schedules", [{"date": day.isoformat(), "half_day": "am", "department_code": "0101",
                             "doctor_code": "D010101", "level": "expert", "fee": "50.00", "total": 5, "remaining": 5}])
    [slot] = state.schedules(day)
    assert slot["schedule_id"] == f"S{day:%Y%m%d}D010101AM" and slot["fee"] == "50.00"


def test_loading_departments_that_orphan_the_doctors_is_refused(state):
    before = state.snapshot()
    with pytest.raises(ValueError, match="does not exist"):
        state.load({"departments": [{"code": "01", "name": "内科", "location": "门诊楼", "intro": ""}]})
    assert state.snapshot() == before


def test_a_hospital_can_load_its_own_departments_and_doctors(state):
    state.load({
        "departments": [{"code": "A", "name": "大内科", "location": "1号楼"},
                        {"code": "A1", "name": "全科医学科", "parent_code": "A", "location": "1号楼2层"}],
        "doctors": [{"code": "X1", "name": "某医生", "title": "主治医师", "department_code": "A1", "level": "ordinary"}],
        "schedules": [], "orders": [], "exam_orders": [],
    })
    assert [(g["name"], [c["name"] for c in g["children"]]) for g in state.department_tree()] == [
        ("大内科", ["全科医学科"])]
    assert [d["code"] for d in state.doctors("A")] == ["X1"]
    assert state.find_patient(patient_id="P000001")  # patients were not part of the load


def test_an_unknown_collection_is_refused(state):
    with pytest.raises(KeyError):
        state.add("wards", [{}])
    with pytest.raises(KeyError):
        state.load({"wards": []})
