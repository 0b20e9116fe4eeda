"""Exam appointments at the kiosk, over real HTTP against the simulators, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from medkiosk.agent.documents import Receipt, render_text
from medkiosk.domain.exams import ExamConfig, ExamResource, ExamRules, WindowTemplate
from medkiosk.services.clock import FrozenClock
from medkiosk.services.exams import DEMO_EXAM_CONFIG, exams_of
from medkiosk.settings import TerminalType
from medkiosk.simulators.personas import PERSONAS
from medkiosk.store.models_exams import ExamBookingEvent, ExamSlot

from kiosk_client import Kiosk
from simulator_fixtures import serving, service_container, simulators_fixture

TZ = ZoneInfo("Asia/Shanghai")
# Any name of an internal resource (the demo's are CT-01, US-02 …) must stay off the page.
RESOURCE_CODES = ("CT-01", "CT-02", "MR-01", "US-01", "US-02", "ECG-01")


simulators = simulators_fixture()


@pytest.fixture
def world(database_url, simulators):
    container = service_container(database_url, simulators, upstream_timeout_seconds=3)
    # Nine o'clock in the morning, hospital time: the day's later windows are still bookable.
    clock = FrozenClock(dt.datetime.combine(dt.date.today(), dt.time(9, 0), tzinfo=TZ).astimezone(dt.timezone.utc))
    exams_of(container).clock = clock  # the exam rules' clock; device signatures keep real time
    with serving(container) as url:
        yield World(container, url, simulators, clock)


class World:
    def __init__(self, container, url, simulators, clock) -> None:
        self.container = container
        self.url = url
        self.clock = clock
        self.his = simulators["his"].url
        self.kiosk = self.new_kiosk("K001")

    def new_kiosk(self, device_id: str) -> Kiosk:
        return Kiosk(self.url, device_id, self.container.devices.enroll(device_id, TerminalType.OUTPATIENT,
                                                                       location="门诊楼 1F"))

    def his_exam_order(self, patient_id: str, order_no: str) -> dict:
        orders = httpx.get(f"{self.his}/his/v1/patients/{patient_id}/exam-orders").json()["exam_orders"]
        return next(o for o in orders if o["order_no"] == order_no)


def order_of(kiosk: Kiosk, exam_type: str, state: str = "bookable") -> dict:
    orders = kiosk.get("/api/kiosk/exams/orders")["orders"]
    return next(o for o in orders if o["exam_type"] == exam_type and o["state"] == state)


def book(kiosk: Kiosk, order: dict, window: dict, *, expect: int = 200) -> dict:
    return kiosk.post(f"/api/kiosk/exams/orders/{order['order_no']}/booking",
                      {"date": window["date"], "start": window["start"]}, expect=expect)


def windows(slots: dict) -> list[dict]:
    return [w for day in slots["days"] for w in day["windows"]]


def slip_text(kiosk: Kiosk, order_no: str, **query) -> str:
    """The slip's lines as printed (rendered at 48 columns), and each line's own text."""
    suffix = "?reprint=true" if query.get("reprint") else ""
    slip = Receipt.model_validate(kiosk.get(f"/api/kiosk/exams/orders/{order_no}/slip{suffix}"))
    return render_text(slip) + "\n".join(getattr(line, "text", "") for line in slip.lines)


def test_a_patient_books_the_earliest_ct_window_and_the_slip_says_when_where_and_how(world):
    kiosk = world.kiosk
    kiosk.insert_insurance_card("local_employee")
    listed = kiosk.get("/api/kiosk/exams/orders")["orders"]
    assert {o["exam_type"]: o["state"] for o in listed if o["exam_type"] != "ultrasound"} == {
        "ct": "bookable", "mri": "bookable", "ecg": "elsewhere"}  # the demo ECG was booked at the HIS
    ct = order_of(kiosk, "ct")
    slots = kiosk.get(f"/api/kiosk/exams/orders/{ct['order_no']}/slots")
    flat = windows(slots)
    assert [(w["date"], w["start"]) for w in flat] == sorted((w["date"], w["start"]) for w in flat)
    assert slots["earliest"] == next(w for w in flat if w["bookable"])
    # 09:00 now, 30 minutes' lead: today's first offered CT window is 10:00.
    assert (flat[0]["date"], flat[0]["start"]) == (dt.date.today().isoformat(), "10:00")
    today = dt.date.today()
    capacity = sum(t.capacity for r in DEMO_EXAM_CONFIG.resources_for("ct") for t in r.opens(today)
                   if t.start == dt.time(10))
    assert flat[0]["remaining"] == capacity  # every scanner's places, summed: no scanner is named
    assert not any(code in json.dumps(slots) for code in RESOURCE_CODES)

    booked = book(kiosk, ct, slots["earliest"])
    assert booked["state"] == "booked" and booked["booking"]["label"] == "10:00–11:00"
    assert booked["booking"]["place"] == "医技楼1层 放射科 CT检查室"
    assert not any(code in json.dumps(booked) for code in RESOURCE_CODES)
    his = world.his_exam_order(PERSONAS["local_employee"].patient_id, ct["order_no"])
    assert his["booked"] and his["appointment"]["start"] == "10:00:00"
    again = kiosk.get(f"/api/kiosk/exams/orders/{ct['order_no']}/slots")
    assert windows(again)[0]["remaining"] == capacity - 1

    text = slip_text(kiosk, ct["order_no"])
    for expected in ("检查预约单", "王*国", "胸部CT平扫", "预约时段", "10:00–11:00", "医技楼1层 放射科 CT检查室",
                     "检查前准备", "金属物品", "报到方式", "登记台", f"EXAM:{ct['order_no']}",
                     "在自助机报到请刷医保卡、身份证或就诊卡"):  # the QR code does not identify at a kiosk
        assert expected in text, expected
    assert "王建国" not in text and "补打" not in text
    reprinted = slip_text(kiosk, ct["order_no"], reprint=True)
    assert "检查预约单（补打）" in reprinted


def test_a_fasting_ultrasound_slip_carries_its_preparation(world):
    kiosk = world.kiosk
    kiosk.insert_insurance_card("local_employee")
    orders = kiosk.get("/api/kiosk/exams/orders")["orders"]
    abdominal = next(o for o in orders if o["exam_type"] == "ultrasound" and "腹部" in o["exam_name"])
    slots = kiosk.get(f"/api/kiosk/exams/orders/{abdominal['order_no']}/slots")
    book(kiosk, abdominal, slots["earliest"])
    text = slip_text(kiosk, abdominal["order_no"])
    assert "空腹8小时" in text and "医技楼2层 超声医学科" in text


def test_a_cross_province_patient_books_and_cancels_without_any_cross_region_text(world):
    kiosk = world.kiosk
    kiosk.insert_insurance_card("cross_province_filed")
    replies = [kiosk.get("/api/kiosk/exams/orders")]
    mri = order_of(kiosk, "mri")
    slots = kiosk.get(f"/api/kiosk/exams/orders/{mri['order_no']}/slots")
    later = next(w for w in windows(slots) if w["bookable"] and w["date"] > dt.date.today().isoformat())
    replies += [slots, book(kiosk, mri, later), kiosk.get("/api/kiosk/exams/orders"),
                kiosk.get(f"/api/kiosk/exams/orders/{mri['order_no']}/slip"),
                kiosk.post(f"/api/kiosk/exams/orders/{mri['order_no']}/booking/cancel")]
    for reply in replies:
        assert "异地" not in json.dumps(reply, ensure_ascii=False)
    assert replies[-1]["state"] == "cancelled"
    assert not world.his_exam_order(PERSONAS["cross_province_filed"].patient_id, mri["order_no"])["booked"]


def test_a_patients_overlapping_and_not_same_day_bookings_are_refused(world):
    kiosk = world.kiosk
    kiosk.insert_insurance_card("local_employee")
    ct, mri = order_of(kiosk, "ct"), order_of(kiosk, "mri")
    ultrasound = order_of(kiosk, "ultrasound")
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    book(kiosk, ct, {"date": tomorrow, "start": "09:00"})

    same_day = book(kiosk, mri, {"date": tomorrow, "start": "14:00"}, expect=409)
    assert "同一天" in same_day["message"] and same_day["next_step"]
    mri_slots = kiosk.get(f"/api/kiosk/exams/orders/{mri['order_no']}/slots")
    day = next(d for d in mri_slots["days"] if d["date"] == tomorrow)
    # 08:00–10:00 overlaps the CT itself; the other windows fall on the CT's day.
    assert [w["reason"] for w in day["windows"]] == ["与其他预约冲突"] + ["同日不可安排"] * (len(day["windows"]) - 1)
    assert not day["bookable"]

    overlap = book(kiosk, ultrasound, {"date": tomorrow, "start": "09:00"}, expect=409)
    assert "重叠" in overlap["message"]
    assert book(kiosk, ultrasound, {"date": tomorrow, "start": "10:00"})["state"] == "booked"
    # One booking per order: the same order cannot take a second window.
    second = book(kiosk, ct, {"date": tomorrow, "start": "14:00"}, expect=409)
    assert "已经预约" in second["message"]


def test_a_booking_is_moved_and_cancelled_within_the_rules_and_each_change_is_logged(world):
    kiosk = world.kiosk
    kiosk.insert_insurance_card("local_employee")
    ct = order_of(kiosk, "ct")
    day = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    book(kiosk, ct, {"date": day, "start": "08:00"})
    moved = kiosk.post(f"/api/kiosk/exams/orders/{ct['order_no']}/booking/move", {"date": day, "start": "15:00"})
    assert moved["booking"]["label"] == "15:00–16:00" and moved["booking"]["moves_left"] == 1
    his = world.his_exam_order(PERSONAS["local_employee"].patient_id, ct["order_no"])
    assert his["appointment"]["start"] == "15:00:00"
    with world.container.uow() as uow:
        taken: dict[str, int] = {}
        for slot in uow.session.scalars(select(ExamSlot).where(ExamSlot.day == dt.date.fromisoformat(day))):
            taken[slot.start.strftime("%H:%M")] = taken.get(slot.start.strftime("%H:%M"), 0) + slot.booked
    assert taken == {"08:00": 0, "15:00": 1}
    kiosk.post(f"/api/kiosk/exams/orders/{ct['order_no']}/booking/move", {"date": day, "start": "14:00"})
    third = kiosk.post(f"/api/kiosk/exams/orders/{ct['order_no']}/booking/move", {"date": day, "start": "16:00"},
                       expect=409)
    assert "不能再改约" in third["message"]

    # Within two hours of the window the kiosk no longer cancels: the patient is sent to the desk.
    start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(14, 0), tzinfo=TZ)
    world.clock._at = (start - dt.timedelta(minutes=90)).astimezone(dt.timezone.utc)
    late = kiosk.post(f"/api/kiosk/exams/orders/{ct['order_no']}/booking/cancel", expect=409)
    assert "不足2小时" in late["message"] and "登记台" in late["next_step"]
    world.clock._at = (start - dt.timedelta(hours=3)).astimezone(dt.timezone.utc)
    assert kiosk.post(f"/api/kiosk/exams/orders/{ct['order_no']}/booking/cancel")["state"] == "cancelled"
    assert order_of(kiosk, "ct")["state"] == "bookable"
    with world.container.uow() as uow:
        actions = [e.action for e in uow.session.scalars(select(ExamBookingEvent).order_by(ExamBookingEvent.id))]
    assert actions == ["booked", "moved", "moved", "cancelled"]


def test_the_his_refusing_an_appointment_gives_the_place_back(world):
    kiosk = world.kiosk
    kiosk.insert_insurance_card("local_employee")
    ct = order_of(kiosk, "ct")
    httpx.post(f"{world.his}/__sim__/faults", json={"operation": "exam_orders.book", "kind": "error",
                                                    "code": "REFUSED", "message": "该检查已退费", "count": 1})
    slots = kiosk.get(f"/api/kiosk/exams/orders/{ct['order_no']}/slots")
    refused = book(kiosk, ct, slots["earliest"], expect=409)
    assert "该检查已退费" in refused["message"]
    assert windows(kiosk.get(f"/api/kiosk/exams/orders/{ct['order_no']}/slots"))[0]["remaining"] == \
        slots["earliest"]["remaining"]
    assert order_of(kiosk, "ct")["state"] == "bookable"


@pytest.mark.postgres
def test_many_kiosks_racing_for_the_last_window_get_exactly_its_capacity(world, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("the row-lock race is a PostgreSQL matter")
    capacity, racers = 3, 10
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    exams_of(world.container).config = ExamConfig(
        resources=(ExamResource("CT-LAST", frozenset({"ct"}), "医技楼1层 放射科 CT检查室",
                                (WindowTemplate(dt.time(8), dt.time(9), capacity),)),),
        rules=ExamRules(horizon_days=3))
    patients = [p for p in httpx.get(f"{world.his}/__sim__/state/patients").json()
                if p["patient_id"] > "P000010"][:racers]
    admitted = {a["patient_id"] for a in httpx.get(f"{world.his}/__sim__/state/admissions").json()
                if a["discharged_on"] is None}
    patients = [p for p in patients if p["patient_id"] not in admitted]
    orders = [{"order_no": f"CFRACE{n:04d}", "patient_id": p["patient_id"], "visit_no": f"MZRACE{n:04d}",
               "exam_type": "ct", "exam_name": "胸部CT平扫", "body_part": "胸部", "department_code": "0701",
               "status": "paid", "ordered_on": dt.date.today().isoformat(), "amount": "180.00"}
              for n, p in enumerate(patients)]
    assert httpx.post(f"{world.his}/__sim__/data/exam_orders", json=orders).status_code == 200
    kiosks = []
    for n, patient in enumerate(patients):
        kiosk = world.new_kiosk(f"R{n:03d}")
        kiosk.post("/api/device/identify", {"medium": "visit_card", "visit_card_no": patient["visit_card_no"]})
        kiosks.append(kiosk)
    barrier = threading.Barrier(len(kiosks))
    results: list[int] = []

    def race(kiosk: Kiosk, order: dict) -> None:
        barrier.wait()
        response = kiosk.request("POST", f"/api/kiosk/exams/orders/{order['order_no']}/booking",
                                 {"date": tomorrow.isoformat(), "start": "08:00"})
        results.append(response.status_code)

    threads = [threading.Thread(target=race, args=pair) for pair in zip(kiosks, orders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] * capacity + [409] * (len(kiosks) - capacity)
    with world.container.uow() as uow:
        slot = uow.session.scalar(select(ExamSlot).where(ExamSlot.resource_code == "CT-LAST"))
    assert slot.booked == capacity
    booked_at_his = [o for o in httpx.get(f"{world.his}/__sim__/state/exam_orders").json()
                     if o["order_no"].startswith("CFRACE") and o["booked"]]
    assert len(booked_at_his) == capacity
