"""Check-in at a kiosk and calling from the queue, over real HTTP against the simulators, on both databases."""

from __future__ import annotations

import datetime as dt
import threading

import httpx
import pytest
from sqlalchemy import select

from medkiosk.services.queues import NewEntry
from medkiosk.settings import TerminalType
from medkiosk.store.models_queues import QueueCall, QueueEntryRow

from kiosk_client import Kiosk
from simulator_fixtures import serving, service_container, simulators_fixture

TZ = dt.timezone(dt.timedelta(hours=8))


simulators = simulators_fixture()


CLINICS = ("0101", "0102", "0103", "0104", "0105", "0201", "0202", "0301")


class World:
    def __init__(self, container, kiosks, simulators) -> None:
        self.container = container
        self.kiosk, self.other_kiosk = kiosks
        self.his_url = simulators["his"].url
        self.clock = container.clock

    def his(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.his_url + path, timeout=10, **kwargs)

    def sessions_close_at(self, am: str, pm: str = "23:59") -> None:
        """The clinics' check-in closes at these times (the tests run at any hour of the day)."""
        for code in CLINICS:
            self.container.queues.set_rules(code, {"am_closes": am, "pm_closes": pm}, actor="test")

    def registrations(self, key: str) -> list[dict]:
        return self.kiosk.get("/api/kiosk/checkin")["registrations"]

    def entries(self) -> list[QueueEntryRow]:
        with self.container.uow() as uow:
            return list(uow.session.scalars(select(QueueEntryRow).order_by(QueueEntryRow.id)))


@pytest.fixture
def world(database_url, simulators):
    container = service_container(database_url, simulators, upstream_timeout_seconds=2)
    with serving(container) as url:
        kiosks = [Kiosk(url, device, container.devices.enroll(device, TerminalType.OUTPATIENT, location="门诊楼 1F"))
                  for device in ("K001", "K002")]
        world = World(container, kiosks, simulators)
        world.sessions_close_at("23:59")
        yield world


def test_a_cross_region_patient_checks_in_and_the_his_is_told(world):
    world.kiosk.insert_insurance_card("cross_province_filed")
    registrations = world.registrations("cross_province_filed")
    assert [(r["department_name"], r["status"]) for r in registrations] == [("呼吸与危重症医学科", "open"),
                                                                            ("心血管内科", "open")]
    first = registrations[0]
    result = world.kiosk.post("/api/kiosk/checkin", {"registration_no": first["registration_no"]})
    entry = result["entry"]
    assert entry["queue_no"] == str(first["queue_no"]) and entry["state"] == "waiting"
    assert entry["position"] == 1 and entry["ahead"] == 0 and entry["department_name"] == "呼吸与危重症医学科"
    assert 3 <= result["result_seconds"] <= 10
    told = world.his("GET", "/__sim__/state/check_ins").json()
    assert [(c["reference"], c["kind"]) for c in told] == [(first["registration_no"], "registration")]
    row = world.entries()[0]
    assert row.his_state == "told" and row.masked_name == "陈*" and "陈静" not in repr(row.__dict__)
    # Checking in again (a second tap, another kiosk) changes nothing.
    again = world.kiosk.post("/api/kiosk/checkin", {"registration_no": first["registration_no"]})
    assert again["already"] and again["entry"]["entry_id"] == entry["entry_id"]
    assert world.registrations("cross_province_filed")[0]["status"] == "checked_in"


def test_patients_queue_by_slot_and_the_second_sees_one_ahead(world):
    world.kiosk.insert_insurance_card("local_employee")
    mine = world.registrations("local_employee")[0]
    world.other_kiosk.place_id_card("self_pay")
    his = world.other_kiosk.get("/api/kiosk/checkin")["registrations"][0]
    first = world.other_kiosk.post("/api/kiosk/checkin", {"registration_no": his["registration_no"]})["entry"]
    assert first["position"] == 1
    second = world.kiosk.post("/api/kiosk/checkin", {"registration_no": mine["registration_no"]})["entry"]
    assert second["department_name"] == "心血管内科" and second["position"] == 1  # another department's queue


def test_unpaid_and_cancelled_registrations_cannot_check_in_and_say_what_to_do(world):
    world.kiosk.place_id_card("self_pay")
    unpaid = next(r for r in world.registrations("self_pay") if r["status"] == "unpaid")
    refused = world.kiosk.post("/api/kiosk/checkin", {"registration_no": unpaid["registration_no"]}, expect=409)
    assert "取号" in refused["message"] and refused["next_step"]


def test_an_appointment_not_picked_up_yet_is_listed_as_such_and_cannot_check_in(world):
    world.kiosk.insert_insurance_card("local_resident")  # the demo: this morning's appointment, unpaid, from the app
    booked = next(r for r in world.registrations("local_resident") if r["status"] == "unpaid")
    assert booked["note"] == "预约尚未取号，请先取号"
    refused = world.kiosk.post("/api/kiosk/checkin", {"registration_no": booked["registration_no"]}, expect=409)
    assert "取号" in refused["message"] and "预约取号" in refused["next_step"]
    assert world.entries() == []


def test_morning_registrations_cannot_check_in_after_the_morning_session_closes(world):
    world.sessions_close_at("00:00")  # it is after the morning session closed
    world.kiosk.insert_insurance_card("local_employee")
    morning = world.registrations("local_employee")[0]
    assert morning["half_day"] == "am" and morning["status"] == "closed" and "00:00" in morning["note"]
    refused = world.kiosk.post("/api/kiosk/checkin", {"registration_no": morning["registration_no"]}, expect=409)
    assert "报到时间已过" in refused["message"] and "分诊台" in refused["next_step"]


def test_a_his_refusal_takes_the_entry_out_and_a_his_outage_is_told_again_later(world):
    world.kiosk.insert_insurance_card("cross_province_filed")
    morning, afternoon = world.registrations("cross_province_filed")
    world.his("POST", "/__sim__/faults", json={"operation": "check_ins.post", "kind": "error", "code": "REFUSED",
                                               "message": "该科室暂停报到，请到分诊台办理", "count": 1})
    refused = world.kiosk.post("/api/kiosk/checkin", {"registration_no": morning["registration_no"]}, expect=409)
    assert refused["message"] == "该科室暂停报到，请到分诊台办理"
    assert world.entries()[0].state == "cancelled"
    world.his("POST", "/__sim__/faults", json={"operation": "check_ins.post", "kind": "error", "count": 1})
    result = world.kiosk.post("/api/kiosk/checkin", {"registration_no": afternoon["registration_no"]})
    assert result["entry"]["state"] == "waiting"  # in the queue although the HIS did not answer
    assert world.entries()[-1].his_state == "pending"
    assert world.container.checkin.tell_his_again(older_than=dt.timedelta(0)) == 1
    assert world.entries()[-1].his_state == "told"
    assert [c["reference"] for c in world.his("GET", "/__sim__/state/check_ins").json()] == [
        afternoon["registration_no"]]


def _join(world, reference: str, queue_no: str, window: tuple[str, str] | None = None, *, patient: int = 1,
          age: int | None = None):
    day = world.container.queues.today()
    start = end = None
    if window:
        start, end = (dt.datetime.combine(day, dt.time.fromisoformat(t), tzinfo=TZ) for t in window)
    with world.container.uow() as uow:  # a patient row to point at
        from medkiosk.store.models import Patient

        if uow.session.get(Patient, patient) is None:
            now = world.clock.now()
            uow.session.add(Patient(id=patient, his_patient_id=f"PX{patient}", name_enc="x", created_at=now,
                                    updated_at=now))
            uow.commit()
    return world.container.queues.join(NewEntry(
        source="registration", reference=reference, department_code="0101", department_name="心血管内科",
        queue_date=day, half_day="am", patient_row_id=patient, his_patient_id=f"PX{patient}",
        masked_name=f"张*{queue_no}", queue_no=queue_no, slot_start=start, slot_end=end, age=age))


def test_the_doctor_calls_in_order_recalls_marks_missed_and_the_missed_patient_rejoins_behind_three(world):
    queues = world.container.queues
    day = queues.today()
    for number in range(1, 7):
        _join(world, f"R{number}", str(number), ("08:00", "08:30"))
    call = queues.call_next("0101", day, room="2", actor="dr.li")
    assert call["queue_no"] == "1" and call["text"] == "请 1 号 张*1 到 2 诊室就诊"
    assert queues.recall(call["entry_id"], actor="dr.li")["kind"] == "recall"
    queues.mark_missed(call["entry_id"], actor="dr.li")
    assert [queues.call_next("0101", day, room="2")["queue_no"] for _ in range(1)] == ["2"]
    back = _join(world, "R1", "1")  # patient 1 checks in again after missing the call
    assert back.rejoined == "missed" and back.entry["position"] == 4  # behind 3, 4, 5
    board = queues.board(["0101"], day)
    assert [w["queue_no"] for w in board["departments"][0]["waiting"]] == ["3", "4", "5", "1", "6"]
    assert board["departments"][0]["calling"][0]["queue_no"] == "2"
    assert board["calls"][0]["text"] == "请 2 号 张*2 到 2 诊室就诊"


def test_a_patient_back_with_results_rejoins_with_priority(world):
    queues = world.container.queues
    day = queues.today()
    for number in range(1, 6):
        _join(world, f"R{number}", str(number), ("08:00", "08:30"))
    first = queues.call_next("0101", day, room="3")
    queues.mark_done(first["entry_id"])
    back = _join(world, "R1", "1")
    assert back.rejoined == "returning" and back.entry["position"] == 3  # behind two


def test_two_doctors_calling_at_once_never_call_the_same_patient(world):
    queues = world.container.queues
    day = queues.today()
    for number in range(1, 21):
        _join(world, f"R{number}", str(number), ("08:00", "08:30"))
    called: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def doctor(room: str) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                call = queues.call_next("0101", day, room=room, actor=f"dr{room}")
                called.append(call["queue_no"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=doctor, args=(str(room),)) for room in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(called, key=int) == [str(n) for n in range(1, 21)]  # each once, nobody twice
    with world.container.uow() as uow:
        assert len(list(uow.session.scalars(select(QueueCall)))) == 20


def test_kiosks_checking_in_at_once_each_get_one_place(world):
    queues = world.container.queues
    day = queues.today()
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def kiosk(number: int) -> None:
        try:
            barrier.wait()
            _join(world, f"W{number}", str(number), patient=1)
            _join(world, f"W{number}", str(number), patient=1)  # a double tap
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    _join(world, "W0", "0")
    threads = [threading.Thread(target=kiosk, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    view = queues.doctor_view("0101", day)
    assert sorted(w["queue_no"] for w in view["waiting"]) == sorted(str(n) for n in range(0, 9))
