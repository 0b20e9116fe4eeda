"""Check-in (报到) in a real browser: two taps from the menu, the number shown, then the page clears the
patient and goes home by itself; the waiting-room board moves when the doctor calls."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from medkiosk.simulators.personas import PERSONAS

from kiosk_helpers import assert_targets_and_fit, identify, shoot

pytestmark = pytest.mark.browser

CLINICS = ("0101", "0102", "0103", "0104", "0105", "0201", "0202", "0301")
EXAM_DEPARTMENTS = ("0701", "0702", "0703")  # radiology, ultrasound, ECG in the demo HIS


@pytest.fixture(autouse=True)
def open_clinics(stack):
    """Fresh registrations, an empty queue, and check-in open whatever hour the test runs at."""
    httpx.post(f"{stack.his.url}/__sim__/reset", timeout=10).raise_for_status()
    queues = stack.container.queues
    for code in CLINICS + EXAM_DEPARTMENTS:
        queues.set_rules(code, {"am_closes": "23:59", "pm_closes": "23:59", "result_seconds": 5}, actor="test")
    from sqlalchemy import delete

    from medkiosk.store.models_exams import ExamBooking, ExamBookingEvent
    from medkiosk.store.models_queues import QueueCall, QueueEntryRow, QueueHead

    with stack.container.uow() as uow:
        for table in (QueueCall, QueueEntryRow, QueueHead, ExamBookingEvent, ExamBooking):
            uow.session.execute(delete(table))
        uow.commit()


def test_a_cross_region_patient_checks_in_in_two_taps_and_the_page_clears_itself(page, kiosk_url, stack):
    persona = PERSONAS["cross_province_filed"]
    identify(page, kiosk_url, "insurance-card", "cross_province_filed", "陈*")
    expect(page.get_by_test_id("patient-category")).to_be_hidden()  # 异地 only where money is involved
    expect(page.get_by_test_id("patient-balance")).to_be_visible()  # the menu shows the account balance
    taps = 0
    page.get_by_test_id("tile-check_in").click()
    taps += 1
    expect(page.get_by_test_id("checkin-list")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("patient-balance")).to_be_hidden()  # no money on check-in screens
    assert "异地" not in page.evaluate("document.body.innerText")  # tender #2: no insurance wording here
    assert_targets_and_fit(page)
    shoot(page, "checkin-list")
    first = page.locator("[data-testid^='checkin-go-']").first
    registration_no = first.get_attribute("data-testid").removeprefix("checkin-go-")
    first.click()
    taps += 1
    result = page.get_by_test_id("checkin-result")
    expect(result).to_be_visible(timeout=15_000)
    assert taps <= 2
    expect(page.get_by_test_id("checkin-number")).to_have_text(re.compile(r"^\d+ 号$"))
    expect(page.get_by_test_id("checkin-position")).to_contain_text("排第 1 位")
    assert "异地" not in page.evaluate("document.body.innerText")
    shoot(page, "checkin-result")
    told = httpx.get(f"{stack.his.url}/__sim__/state/check_ins", timeout=10).json()
    assert [c["reference"] for c in told] == [registration_no]

    # Within the configured seconds the page ends the session and goes home on its own.
    expect(page.get_by_test_id("start")).to_be_visible(timeout=12_000)
    expect(page.get_by_test_id("patient-bar")).to_be_hidden()
    text = page.evaluate("document.documentElement.textContent")
    for trace in ("陈*", persona.name, persona.patient_id, "号", "排第", "跨省异地医保", registration_no):
        if trace == "号":
            continue  # the home screen's own words (挂号) contain it
        assert trace not in text, f"{trace!r} is still in the page"
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    httpx.get(f"{kiosk_url}/local/api/kiosk/session", timeout=10).raise_for_status()
    assert httpx.get(f"{kiosk_url}/local/api/kiosk/session", timeout=10).json()["session"] is None


def test_the_board_updates_when_the_doctor_calls(page, context, kiosk_url, stack):
    identify(page, kiosk_url, "visit-card", "local_employee", "王*国")
    page.get_by_test_id("tile-check_in").click()
    page.locator("[data-testid^='checkin-go-']").first.click()
    expect(page.get_by_test_id("checkin-result")).to_be_visible(timeout=15_000)
    number = page.get_by_test_id("checkin-number").inner_text().removesuffix(" 号")
    page.get_by_test_id("checkin-finish").click()
    expect(page.get_by_test_id("start")).to_be_visible(timeout=10_000)

    board = context.new_page()
    board.goto(f"{stack.service.url}/board/?department=0101")
    waiting = board.get_by_test_id("board-waiting")
    expect(waiting.first).to_contain_text(f"{number} 号", timeout=10_000)
    expect(waiting.first).to_contain_text("王*国")
    assert "王建国" not in board.evaluate("document.body.innerText")

    queues = stack.container.queues
    call = queues.call_next("0101", queues.today(), room="2", actor="dr.test")
    assert call["queue_no"] == number
    expect(board.get_by_test_id("board-calling").first).to_contain_text(f"{number} 号", timeout=10_000)
    expect(board.get_by_test_id("board-announce")).to_have_text(f"请 {number} 号 王*国 到 2 诊室就诊")
    shoot(board, "queue-board")
    board.close()


def book_today(stack, persona: str, exam_type: str) -> dict:
    """An exam booked at a kiosk earlier for today's first window (written as the exam service keeps it,
    and told to the HIS), whatever hour the test runs at: the booking rules' own clock is not ours."""
    import datetime as dt
    import uuid

    from sqlalchemy import select

    from medkiosk.services.exams import exams_of
    from medkiosk.store.models import Patient
    from medkiosk.store.models_exams import ExamBooking

    patient_id = PERSONAS[persona].patient_id
    orders = httpx.get(f"{stack.his.url}/his/v1/patients/{patient_id}/exam-orders", params={"status": "paid"},
                       timeout=10).json()["exam_orders"]
    order = next(o for o in orders if o["exam_type"] == exam_type and not o["booked"])
    service = exams_of(stack.container)
    today = service.clock.now().astimezone(stack.container.settings.tz).date()
    place = "医技楼1层 放射科 CT检查室"
    booking_id = str(uuid.uuid4())
    with stack.container.uow() as uow:
        row_id = uow.session.scalar(select(Patient.id).where(Patient.his_patient_id == patient_id))
        now = service.clock.now()
        uow.session.add(ExamBooking(
            id=booking_id, order_no=order["order_no"], patient_id=row_id, his_patient_id=patient_id,
            exam_type=exam_type, state="booked", resource_code="CT-01", day=today, start=dt.time(8),
            end=dt.time(9), moves=0, his_synced=True, device_id="K001", created_at=now, updated_at=now,
            details={"exam_name": order["exam_name"], "exam_label": "CT", "department_name": "放射科",
                     "department_code": order["department_code"], "place": place}))
        uow.commit()
    httpx.post(f"{stack.his.url}/his/v1/exam-orders/{order['order_no']}/appointment", timeout=10,
               json={"booking_ref": booking_id, "date": today.isoformat(), "start": "08:00:00", "end": "09:00:00",
                     "place": place}).raise_for_status()
    return order


def test_a_cross_region_patient_checks_in_for_todays_ct_in_two_taps_and_the_page_clears_itself(page, kiosk_url,
                                                                                               stack):
    persona = PERSONAS["cross_province_filed"]
    identify(page, kiosk_url, "insurance-card", "cross_province_filed", "陈*")
    ct = book_today(stack, "cross_province_filed", "ct")
    taps = 0
    page.get_by_test_id("tile-check_in").click()
    taps += 1
    card = page.get_by_test_id(f"checkin-exam-{ct['order_no']}")
    expect(card).to_be_visible(timeout=15_000)
    expect(card).to_contain_text("08:00–09:00")
    expect(card).to_contain_text("医技楼1层 放射科 CT检查室")
    assert "异地" not in page.evaluate("document.body.innerText")
    assert_targets_and_fit(page)
    shoot(page, "checkin-exam-list")
    page.get_by_test_id(f"checkin-exam-go-{ct['order_no']}").click()
    taps += 1
    expect(page.get_by_test_id("checkin-result")).to_be_visible(timeout=15_000)
    assert taps <= 2
    expect(page.get_by_test_id("checkin-number")).to_have_text(re.compile(r"^\d+ 号$"))
    expect(page.get_by_test_id("checkin-position")).to_contain_text("排第 1 位")
    expect(page.get_by_test_id("checkin-result")).to_contain_text("放射科")
    shoot(page, "checkin-exam-result")
    told = httpx.get(f"{stack.his.url}/__sim__/state/check_ins", timeout=10).json()
    assert [(c["kind"], c["reference"]) for c in told] == [("exam", ct["order_no"])]

    expect(page.get_by_test_id("start")).to_be_visible(timeout=12_000)
    expect(page.get_by_test_id("patient-bar")).to_be_hidden()
    text = page.evaluate("document.documentElement.textContent")
    for trace in ("陈*", persona.name, persona.patient_id, "排第", "跨省异地医保", ct["order_no"], ct["exam_name"]):
        assert trace not in text, f"{trace!r} is still in the page"
