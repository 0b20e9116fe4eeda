"""Check-in (报到) for an exam appointment at the kiosk: today's bookings listed next to the registrations,
the exam department's queue joined in booked-window order, the HIS told; over real HTTP against the
simulators, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from medkiosk.services.clock import FrozenClock
from medkiosk.services.exams import exams_of
from medkiosk.settings import TerminalType
from medkiosk.simulators.personas import PERSONAS
from medkiosk.store.models_queues import QueueEntryRow

from kiosk_client import Kiosk
from simulator_fixtures import serving, service_container, simulators_fixture

TZ = ZoneInfo("Asia/Shanghai")
RADIOLOGY = "0701"  # the demo HIS's department that performs CT and MRI


simulators = simulators_fixture()


class World:
    def __init__(self, container, url: str, his_url: str, clock: FrozenClock) -> None:
        self.container = container
        self.url = url
        self.his_url = his_url
        self.clock = clock
        self.today = clock.now().astimezone(TZ).date()

    def kiosk(self, device_id: str, persona: str, *, id_card: bool = False) -> Kiosk:
        kiosk = Kiosk(self.url, device_id, self.container.devices.enroll(device_id, TerminalType.OUTPATIENT,
                                                                          location="门诊楼 1F"))
        if id_card:
            kiosk.place_id_card(persona)
        else:
            kiosk.insert_insurance_card(persona)
        return kiosk

    def at(self, hour: int, minute: int = 0) -> None:
        """Hospital time for the exam rules and the queue (device signatures keep real time)."""
        target = dt.datetime.combine(self.today, dt.time(hour, minute), tzinfo=TZ)
        self.clock.advance(seconds=(target - self.clock.now()).total_seconds())

    def entries(self) -> list[QueueEntryRow]:
        with self.container.uow() as uow:
            return list(uow.session.scalars(select(QueueEntryRow).order_by(QueueEntryRow.id)))

    def told(self) -> list[dict]:
        return httpx.get(f"{self.his_url}/__sim__/state/check_ins", timeout=10).json()


@pytest.fixture
def world(database_url, simulators):
    container = service_container(database_url, simulators, upstream_timeout_seconds=3)
    today = dt.datetime.now(TZ).date()
    clock = FrozenClock(dt.datetime.combine(today, dt.time(9, 0), tzinfo=TZ).astimezone(dt.UTC))
    exams_of(container).clock = clock
    container.queues._clock = clock  # the queue's "on time" is read against the same hospital morning
    with serving(container) as url:
        yield World(container, url, simulators["his"].url, clock)


def book(kiosk: Kiosk, exam_type: str, day: dt.date, start: str) -> dict:
    orders = kiosk.get("/api/kiosk/exams/orders")["orders"]
    order = next(o for o in orders if o["exam_type"] == exam_type and o["state"] == "bookable")
    kiosk.post(f"/api/kiosk/exams/orders/{order['order_no']}/booking", {"date": day.isoformat(), "start": start})
    return order


def test_patients_check_in_for_todays_ct_and_queue_by_their_booked_windows(world):
    # A cross-province card holder (tender #4) books 11:00, a local patient 10:00; the later window
    # checks in first, and the earlier one still goes ahead of them.
    cross = world.kiosk("K001", "cross_province_filed")
    local = world.kiosk("K002", "local_employee")
    late_ct = book(cross, "ct", world.today, "11:00")
    early_ct = book(local, "ct", world.today, "10:00")

    listed = cross.get("/api/kiosk/checkin")
    assert [(e["order_no"], e["status"], e["window"]) for e in listed["exams"]] == [
        (late_ct["order_no"], "open", "11:00–12:00")]
    exam = listed["exams"][0]
    assert exam["place"] == "医技楼1层 放射科 CT检查室" and exam["exam_name"] == "胸部CT平扫"
    assert "异地" not in str(listed["exams"])

    first = cross.post("/api/kiosk/checkin", {"exam_order_no": late_ct["order_no"]})
    assert first["entry"]["position"] == 1 and first["entry"]["department_code"] == RADIOLOGY
    assert first["entry"]["location"] == "医技楼1层 放射科 CT检查室" and first["exam_name"] == "胸部CT平扫"
    assert 3 <= first["result_seconds"] <= 10
    second = local.post("/api/kiosk/checkin", {"exam_order_no": early_ct["order_no"]})
    assert second["entry"]["position"] == 1 and second["entry"]["ahead"] == 0
    assert cross.get("/api/kiosk/checkin")["exams"][0]["entry"]["position"] == 2

    told = world.told()
    assert sorted((c["kind"], c["reference"], c["department_code"]) for c in told) == sorted(
        [("exam", late_ct["order_no"], RADIOLOGY), ("exam", early_ct["order_no"], RADIOLOGY)])
    rows = world.entries()
    assert {r.source for r in rows} == {"exam"} and all(r.his_state == "told" for r in rows)
    assert {r.masked_name for r in rows} == {"陈*", "王*国"}
    assert not any(PERSONAS[p].name in repr(r.__dict__) for r in rows for p in ("cross_province_filed",
                                                                              "local_employee"))
    # A second tap answers the same entry and tells the HIS nothing new.
    again = cross.post("/api/kiosk/checkin", {"exam_order_no": late_ct["order_no"]})
    assert again["already"] and again["entry"]["entry_id"] == first["entry"]["entry_id"]
    assert len(world.told()) == 2
    assert cross.get("/api/kiosk/checkin")["exams"][0]["status"] == "checked_in"


def test_an_exam_checks_in_only_on_its_day_and_before_its_half_day_closes(world):
    kiosk = world.kiosk("K001", "local_employee")
    ct = book(kiosk, "ct", world.today, "10:00")
    tomorrow = book(kiosk, "ultrasound", world.today + dt.timedelta(days=1), "09:00")
    assert [e["order_no"] for e in kiosk.get("/api/kiosk/checkin")["exams"]] == [ct["order_no"]]
    refused = kiosk.post("/api/kiosk/checkin", {"exam_order_no": tomorrow["order_no"]}, expect=409)
    assert "请在检查当天报到" in refused["message"] and refused["next_step"]

    world.at(12, 30)  # the morning's check-in closed at 12:00 (the department's rule)
    listed = kiosk.get("/api/kiosk/checkin")["exams"][0]
    assert listed["status"] == "closed" and "12:00 截止" in listed["note"]
    closed = kiosk.post("/api/kiosk/checkin", {"exam_order_no": ct["order_no"]}, expect=409)
    assert "上午检查的报到时间已过" in closed["message"]
    assert "登记台" in closed["next_step"]
    assert world.entries() == [] and world.told() == []

    # Not this patient's booking, or no booking at all: nothing to check in.
    other = world.kiosk("K002", "self_pay", id_card=True)
    missing = other.post("/api/kiosk/checkin", {"exam_order_no": ct["order_no"]}, expect=404)
    assert missing["next_step"]
    bad = other.post("/api/kiosk/checkin", {"registration_no": "R1", "exam_order_no": ct["order_no"]}, expect=422)
    assert bad


def test_an_exam_the_his_never_heard_of_is_told_before_the_check_in(world):
    kiosk = world.kiosk("K001", "local_employee")
    ct = book(kiosk, "ct", world.today, "10:00")
    # The HIS lost the appointment (its reply was lost when booked): the check-in tells it again first.
    with world.container.uow() as uow:
        from medkiosk.store.models_exams import ExamBooking

        booking = uow.session.scalar(select(ExamBooking).where(ExamBooking.order_no == ct["order_no"]))
        booking.his_synced = False
        uow.commit()
    httpx.post(f"{world.his_url}/his/v1/exam-orders/{ct['order_no']}/appointment/cancel",
               json={"booking_ref": booking.id}, timeout=10).raise_for_status()
    done = kiosk.post("/api/kiosk/checkin", {"exam_order_no": ct["order_no"]})
    assert done["entry"]["state"] == "waiting"
    assert [(c["kind"], c["reference"]) for c in world.told()] == [("exam", ct["order_no"])]


def test_todays_exams_still_check_in_when_the_his_cannot_list_the_registrations(world):
    kiosk = world.kiosk("K001", "local_employee")
    ct = book(kiosk, "ct", world.today, "10:00")
    httpx.post(f"{world.his_url}/__sim__/faults", json={"operation": "registrations.list", "kind": "error"},
               timeout=10).raise_for_status()
    try:
        listed = kiosk.get("/api/kiosk/checkin")
        assert listed["registrations"] == [] and [e["order_no"] for e in listed["exams"]] == [ct["order_no"]]
        assert "挂号" in listed["registrations_problem"]["message"] and listed["registrations_problem"]["next_step"]
        assert kiosk.post("/api/kiosk/checkin", {"exam_order_no": ct["order_no"]})["entry"]["position"] == 1
    finally:
        httpx.delete(f"{world.his_url}/__sim__/faults", timeout=10)
    # Without any exam today, the HIS's silence is the answer, with where to go.
    other = world.kiosk("K002", "self_pay", id_card=True)
    httpx.post(f"{world.his_url}/__sim__/faults", json={"operation": "registrations.list", "kind": "error"},
               timeout=10).raise_for_status()
    try:
        refused = other.get("/api/kiosk/checkin", expect=503)
    finally:
        httpx.delete(f"{world.his_url}/__sim__/faults", timeout=10)
    assert "挂号" in refused["message"] and refused["next_step"]
