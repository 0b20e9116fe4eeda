"""Exam appointments (检查预约) in a real browser against the whole demo stack: book with its slip, cancel.

A cross-province patient's booking and cancelling screens carry no 异地 text at all (tender #2):
the page's visible text and its whole DOM text are both checked, on every screen of the flow.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from medkiosk.domain.masking import mask_name
from medkiosk.simulators.personas import PERSONAS

from kiosk_helpers import identify, printed, shoot

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def fresh_hospital(stack):
    """Every test starts from the demo hospital's own exam orders, none booked at the kiosk."""
    httpx.post(f"{stack.his.url}/__sim__/reset", timeout=10).raise_for_status()


def exam_order(stack, persona: str, exam_type: str) -> dict:
    patient = PERSONAS[persona].patient_id
    orders = httpx.get(f"{stack.his.url}/his/v1/patients/{patient}/exam-orders", params={"status": "paid"},
                       timeout=10).json()["exam_orders"]
    return next(o for o in orders if o["exam_type"] == exam_type)


def assert_no_cross_region_text(page, where: str) -> None:
    visible = page.evaluate("document.body.innerText")
    whole = page.evaluate("document.documentElement.textContent")
    assert "异地" not in visible, f"{where}: 异地 on screen"
    assert "异地" not in whole, f"{where}: 异地 in the page"


def test_a_patient_books_the_earliest_ct_window_and_the_slip_prints(page, stack, kiosk_url):
    ct = exam_order(stack, "local_employee", "ct")
    identify(page, kiosk_url, "insurance-card", "local_employee", "王*国")
    page.get_by_test_id("tile-exam_booking").click()
    expect(page.get_by_test_id("exam-orders")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id(f"exam-order-{ct['order_no']}")).to_have_attribute("data-state", "bookable")
    shoot(page, "exam-orders")

    page.get_by_test_id(f"exam-book-{ct['order_no']}").click()
    expect(page.get_by_test_id("exam-slots")).to_be_visible(timeout=15_000)
    earliest = page.get_by_test_id("exam-earliest").inner_text()
    text = page.evaluate("document.body.innerText")
    assert "剩余" in text and not any(code in text for code in ("CT-01", "CT-02", "资源"))
    shoot(page, "exam-slots")

    page.get_by_test_id("exam-earliest").click()
    expect(page.get_by_test_id("exam-result")).to_be_visible(timeout=15_000)
    window = page.get_by_test_id("exam-result-window").inner_text()
    assert window in earliest
    expect(page.get_by_test_id("exam-result-place")).to_have_text("医技楼1层 放射科 CT检查室")
    expect(page.get_by_test_id("exam-print-status")).to_have_text("预约单已打印，请在出纸口取走", timeout=15_000)
    shoot(page, "exam-result")

    slips = printed(kiosk_url, "exam-")
    assert slips, "no appointment slip printed"
    slip = slips[0]["text"]
    for expected in ("检查预约单", "王*国", "胸部CT平扫", "医技楼1层 放射科 CT检查室", "检查前准备", "报到方式"):
        assert expected in slip, expected
    assert "王建国" not in slip
    his = exam_order(stack, "local_employee", "ct")
    assert his["booked"] and his["appointment"]["start"][:5] == window.split("–")[0]

    page.get_by_test_id("exam-done").click()
    expect(page.get_by_test_id("tile-exam_booking")).to_be_visible()


def test_a_cross_province_patient_sees_no_cross_region_text_booking_and_cancelling(page, stack, kiosk_url):
    mri = exam_order(stack, "cross_province_filed", "mri")
    identify(page, kiosk_url, "insurance-card", "cross_province_filed", mask_name(PERSONAS["cross_province_filed"].name))
    # Tender #2: the 异地 label only where money is involved — not on the menu, not on exam screens.
    expect(page.get_by_test_id("patient-category")).to_be_hidden()
    page.get_by_test_id("tile-exam_booking").click()
    expect(page.get_by_test_id("exam-orders")).to_be_visible(timeout=15_000)
    assert_no_cross_region_text(page, "exam orders")

    page.get_by_test_id(f"exam-book-{mri['order_no']}").click()
    expect(page.get_by_test_id("exam-slots")).to_be_visible(timeout=15_000)
    assert_no_cross_region_text(page, "slots")
    # A day after today, so the booking can still be cancelled at the kiosk.
    later = page.locator("[data-testid^='exam-day-']:not(.is-full)").nth(1)
    later.click()
    page.locator("[data-testid^='exam-window-']:not([disabled])").first.click()
    expect(page.get_by_test_id("exam-result")).to_be_visible(timeout=15_000)
    assert_no_cross_region_text(page, "booked")
    shoot(page, "exam-result-cross-province")

    page.get_by_test_id("nav-back").click()
    expect(page.get_by_test_id(f"exam-order-{mri['order_no']}")).to_have_attribute("data-state", "booked",
                                                                                  timeout=15_000)
    page.get_by_test_id(f"exam-cancel-{mri['order_no']}").click()
    expect(page.get_by_test_id("exam-cancel")).to_be_visible()
    assert_no_cross_region_text(page, "cancel")
    shoot(page, "exam-cancel")
    page.get_by_test_id("exam-cancel-confirm").click()
    expect(page.get_by_test_id("exam-cancelled")).to_be_visible(timeout=15_000)
    assert_no_cross_region_text(page, "cancelled")
    assert not exam_order(stack, "cross_province_filed", "mri")["booked"]

    page.get_by_test_id("nav-home").click()
    expect(page.get_by_test_id("tile-payment")).to_be_visible()
    expect(page.get_by_test_id("patient-category")).to_be_hidden()
