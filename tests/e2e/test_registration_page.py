"""Registration (挂号) in a real browser against the whole demo stack: a same-day number in five taps with
its slip printed, backing out giving the number back, and a renamed department shown first on a preview
kiosk, then everywhere once published.

Same-day must not depend on the hour the suite runs: the registration rules' clock is frozen at 07:30
hospital time of a day D (before the morning clinics start), and the HIS simulator's clock is moved to
the same instant, so D is "today" for both and its morning is open. The patient's phone is played by the
payment simulator (``POST /__sim__/pay/{order_no}P1``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect

from medkiosk.domain.masking import mask_name
from medkiosk.services.clock import FrozenClock
from medkiosk.services.registrations import registrations_of
from medkiosk.simulators.personas import PERSONAS

from kiosk_helpers import Taps, assert_targets_and_fit, identify, printed, shoot

pytestmark = pytest.mark.browser

HOSPITAL = ZoneInfo("Asia/Shanghai")
PATIENT = "self_pay"  # by ID card: the whole fee is paid by QR code
MASKED = mask_name(PERSONAS[PATIENT].name)


@pytest.fixture
def day_d(stack):
    """07:30 in the hospital on day D, for the registration rules and the HIS alike; undone afterwards."""
    his = stack.his.url
    httpx.post(f"{his}/__sim__/reset", timeout=10).raise_for_status()
    his_now = dt.datetime.fromisoformat(httpx.get(f"{his}/__sim__/clock", timeout=10).json()["now"])
    day = his_now.date() + dt.timedelta(days=1)
    at = dt.datetime.combine(day, dt.time(7, 30), tzinfo=HOSPITAL)
    while at <= his_now:  # late in the HIS's evening its tomorrow's 07:30 (UTC+8) may have passed
        day += dt.timedelta(days=1)
        at = dt.datetime.combine(day, dt.time(7, 30), tzinfo=HOSPITAL)
    service = registrations_of(stack.container)
    real_clock = service._clock
    service._clock = FrozenClock(at.astimezone(dt.timezone.utc))
    httpx.post(f"{his}/__sim__/clock", json={"advance_seconds": (at - his_now).total_seconds()},
               timeout=10).raise_for_status()
    try:
        yield day
    finally:
        service._clock = real_clock
        httpx.post(f"{his}/__sim__/reset", timeout=10).raise_for_status()


def his_schedules(stack, day: dt.date) -> list[dict]:
    reply = httpx.get(f"{stack.his.url}/his/v1/schedules", params={"date": day.isoformat()}, timeout=10)
    reply.raise_for_status()
    return reply.json()["schedules"]


def remaining(stack, schedule_id: str, day: dt.date) -> int:
    return next(s["remaining"] for s in his_schedules(stack, day) if s["schedule_id"] == schedule_id)


def kiosk_departments(kiosk_url: str) -> dict:
    reply = httpx.get(f"{kiosk_url}/local/api/kiosk/registration/departments", timeout=10)
    reply.raise_for_status()
    return reply.json()


def a_morning_with_numbers(stack, kiosk_url: str, day: dt.date) -> tuple[dict, dict]:
    """A kiosk department (as configured, not split) and one of its doctors' mornings with numbers left."""
    slots = his_schedules(stack, day)
    for group in kiosk_departments(kiosk_url)["groups"]:
        for department in group["departments"]:
            if department["doctor_codes"]:
                continue
            for slot in slots:
                if slot["department_code"] in department["his_codes"] and slot["half_day"] == "am" \
                        and slot["remaining"] >= 3:
                    return department, slot
    raise AssertionError("no department with morning numbers in the demo hospital")


def two_numbers(stack, kiosk_url: str, day: dt.date) -> tuple[dict, dict, dict]:
    """A kiosk department (not split) with two half-days (doctors' mornings or afternoons) with numbers left."""
    slots = his_schedules(stack, day)
    for group in kiosk_departments(kiosk_url)["groups"]:
        for department in group["departments"]:
            if department["doctor_codes"]:
                continue
            open_ = [s for s in slots if s["department_code"] in department["his_codes"] and s["remaining"] >= 3]
            if len(open_) >= 2:
                return department, open_[0], open_[1]
    raise AssertionError("no department with two half-days with numbers in the demo hospital")


def half_day(page, slot: dict):
    return doctor_card(page, slot["doctor_name"]).get_by_test_id(f"reg-slot-{slot['half_day']}")


def phone_pays(stack, order_no: str) -> None:
    reply = httpx.post(f"{stack.payment.url}/__sim__/pay/{order_no}P1", json={"channel": "wechat"}, timeout=10)
    assert reply.status_code == 200, reply.text


def department_button(page, name: str):
    return page.locator(f"[data-testid='reg-department'][data-name='{name}']")


def doctor_card(page, name: str):
    return page.locator(f"[data-testid='reg-doctor'][data-name='{name}']")


def test_a_same_day_number_takes_five_taps_from_identified_to_the_printed_slip(page, stack, kiosk_url, day_d):
    department, slot = a_morning_with_numbers(stack, kiosk_url, day_d)
    before = remaining(stack, slot["schedule_id"], day_d)
    identify(page, kiosk_url, "id-card", PATIENT, MASKED)
    tap = Taps(page)

    tap(page.get_by_test_id("tile-register"))
    expect(page.get_by_test_id("reg-departments")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id(f"reg-date-{day_d.isoformat()}")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id(f"reg-date-{day_d.isoformat()}")).to_contain_text("今天")
    expect(department_button(page, department["name"])).to_contain_text(department["location"])
    assert_targets_and_fit(page)
    shoot(page, "reg-departments")

    tap(department_button(page, department["name"]))
    expect(page.get_by_test_id("reg-doctors")).to_be_visible()
    card = doctor_card(page, slot["doctor_name"])
    morning = card.get_by_test_id("reg-slot-am")
    expect(morning).to_be_enabled(timeout=15_000)
    expect(morning).to_contain_text(f"剩余 {before} 个")
    text = page.evaluate("document.body.innerText")
    assert slot["schedule_id"] not in text and slot["doctor_code"] not in text  # no internal ids on screen
    assert_targets_and_fit(page)
    shoot(page, "reg-doctors")

    tap(morning)
    expect(page.get_by_test_id("reg-confirm")).to_be_visible()
    expect(page.get_by_test_id("reg-confirm-patient")).to_have_text(MASKED)
    expect(page.get_by_test_id("reg-confirm-department")).to_have_text(department["name"])
    expect(page.get_by_test_id("reg-confirm-doctor")).to_contain_text(slot["doctor_name"])
    expect(page.get_by_test_id("reg-confirm-when")).to_contain_text("今天")
    expect(page.get_by_test_id("reg-confirm-when")).to_contain_text("上午")
    expect(page.get_by_test_id("reg-confirm-place")).to_have_text(department["location"])
    expect(page.get_by_test_id("reg-confirm-fee")).to_have_text(f"¥{Decimal(slot['fee']):.2f}")
    expect(page.get_by_test_id("reg-confirm-go")).to_be_enabled()  # after the ghost-tap pause
    shoot(page, "reg-confirm")

    # A double tap holds one number and opens one payment.
    page.get_by_test_id("reg-confirm-go").dblclick()
    tap.count += 1
    expect(page.get_by_test_id("pay-split")).to_be_visible(timeout=15_000)
    assert remaining(stack, slot["schedule_id"], day_d) == before - 1

    tap(page.get_by_test_id("pay-qr"))
    order_no = page.get_by_test_id("pay-qr-screen").get_attribute("data-order", timeout=15_000)
    expect(page.get_by_test_id("qr-prompt")).to_be_visible()
    phone_pays(stack, order_no)  # the phone scans: not a tap on the kiosk

    expect(page.get_by_test_id("reg-result")).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("reg-print-status")).to_have_text("挂号条已打印，请在出纸口取走", timeout=15_000)
    assert tap.count <= 5, tap.count
    number = page.get_by_test_id("reg-number").inner_text()
    expect(page.get_by_test_id("reg-go")).to_have_text("请按时到诊区报到")
    expect(page.get_by_test_id("reg-result-place")).not_to_be_empty()
    place = page.get_by_test_id("reg-result-place").inner_text()
    shoot(page, "reg-result")

    slips = printed(kiosk_url, "reg-")
    assert len(slips) == 1, slips
    slip = slips[0]["text"].replace(" ", "")  # double-width lines print their digits spaced out
    for expected in ("挂号条", f"序号：{number.removesuffix(' 号')}", department["name"], slot["doctor_name"],
                     f"地点：{place}", f"患者：{MASKED}", f"{day_d.month}月{day_d.day}日上午"):
        assert expected.replace(" ", "") in slip, expected
    assert PERSONAS[PATIENT].name not in slip
    assert remaining(stack, slot["schedule_id"], day_d) == before - 1

    # The screen clears itself and goes home, as after check-in.
    expect(page.get_by_test_id("start")).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("patient-bar")).to_be_hidden()


def test_backing_out_on_the_payment_screen_gives_the_number_back(page, stack, kiosk_url, day_d):
    department, first, second = two_numbers(stack, kiosk_url, day_d)
    before = {s["schedule_id"]: remaining(stack, s["schedule_id"], day_d) for s in (first, second)}
    slips_before = [p["job_id"] for p in printed(kiosk_url, "reg-")]
    identify(page, kiosk_url, "id-card", PATIENT, MASKED)
    page.get_by_test_id("tile-register").click()
    department_button(page, department["name"]).click()
    half_day(page, first).click(timeout=15_000)
    page.get_by_test_id("reg-confirm-go").click()
    page.get_by_test_id("pay-qr").click(timeout=15_000)
    order_no = page.get_by_test_id("pay-qr-screen").get_attribute("data-order", timeout=15_000)
    assert remaining(stack, first["schedule_id"], day_d) == before[first["schedule_id"]] - 1

    page.get_by_test_id("pay-cancel").click()
    # Back on the doctors, with the numbers as they are again.
    expect(half_day(page, first)).to_contain_text(f"剩余 {before[first['schedule_id']]} 个", timeout=15_000)
    assert remaining(stack, first["schedule_id"], day_d) == before[first["schedule_id"]]
    order = httpx.get(f"{kiosk_url}/local/api/kiosk/payments/{order_no}", timeout=10).json()
    assert order["state"] == "closed" and order["paid_amount"] == "0.00"

    # 返回 on the split screen releases as well.
    half_day(page, second).click()
    page.get_by_test_id("reg-confirm-go").click()
    expect(page.get_by_test_id("pay-split")).to_be_visible(timeout=15_000)
    assert remaining(stack, second["schedule_id"], day_d) == before[second["schedule_id"]] - 1
    page.get_by_test_id("nav-back").click()
    expect(page.get_by_test_id("reg-doctors")).to_be_visible(timeout=15_000)
    expect(half_day(page, second)).to_contain_text(f"剩余 {before[second['schedule_id']]} 个", timeout=15_000)
    assert remaining(stack, second["schedule_id"], day_d) == before[second["schedule_id"]]
    assert [p["job_id"] for p in printed(kiosk_url, "reg-")] == slips_before  # no slip for a number given back


def test_a_cross_province_patient_sees_the_cross_region_notice_where_the_fee_is_settled(page, stack, kiosk_url,
                                                                                       day_d):
    department, slot = a_morning_with_numbers(stack, kiosk_url, day_d)
    persona = "cross_province_filed"
    identify(page, kiosk_url, "insurance-card", persona, mask_name(PERSONAS[persona].name))
    page.get_by_test_id("tile-register").click()
    department_button(page, department["name"]).click()
    expect(page.get_by_test_id("pay-cross-region")).to_have_count(0)  # choosing is not paying
    half_day(page, slot).click(timeout=15_000)
    page.get_by_test_id("reg-confirm-go").click()
    # Her account covers the fee in the demo (settled in four taps, no QR code); with cash left, the QR pays it.
    result = page.get_by_test_id("reg-result")
    qr = page.locator("[data-testid='pay-qr']:not([disabled])")
    expect(result.or_(qr)).to_be_visible(timeout=15_000)
    if not result.is_visible():
        expect(page.get_by_test_id("pay-cross-region")).to_be_visible()
        qr.click()
        phone_pays(stack, page.get_by_test_id("pay-qr-screen").get_attribute("data-order", timeout=15_000))
    expect(page.get_by_test_id("reg-result")).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("reg-cross-region")).to_contain_text("异地")
    expect(page.get_by_test_id("reg-print-status")).to_have_text("挂号条已打印，请在出纸口取走", timeout=15_000)
    shoot(page, "reg-result-cross-province")
    expect(page.get_by_test_id("start")).to_be_visible(timeout=20_000)


def test_a_hold_the_his_cannot_make_says_what_to_do_and_the_patient_can_choose_again(page, stack, kiosk_url,
                                                                                      day_d, problems):
    department, slot = a_morning_with_numbers(stack, kiosk_url, day_d)
    before = remaining(stack, slot["schedule_id"], day_d)
    identify(page, kiosk_url, "id-card", PATIENT, MASKED)
    page.get_by_test_id("tile-register").click()
    department_button(page, department["name"]).click()
    half_day(page, slot).click(timeout=15_000)
    # The HIS fails the hold while the patient reads the confirm screen.
    fault = {"operation": "registrations.hold", "kind": "error", "count": 1}
    httpx.post(f"{stack.his.url}/__sim__/faults", json=fault, timeout=10).raise_for_status()
    try:
        page.get_by_test_id("reg-confirm-go").click()
        expect(page.get_by_test_id("reg-error")).to_be_visible(timeout=15_000)
    finally:
        httpx.delete(f"{stack.his.url}/__sim__/faults", timeout=10)
    problems.forgive("503")  # the service's refusal, as the browser logs any error status
    expect(page.get_by_test_id("reg-error-message")).to_have_text("暂时无法挂号，请稍后再试。")
    expect(page.get_by_test_id("reg-error-next")).to_have_text("请您：请到人工窗口办理")
    expect(page.get_by_test_id("reg-confirm-go")).to_be_enabled()
    shoot(page, "reg-refused")
    assert remaining(stack, slot["schedule_id"], day_d) == before

    page.get_by_test_id("reg-choose-again").click()
    expect(page.get_by_test_id("reg-doctors")).to_be_visible()
    expect(half_day(page, slot)).to_contain_text(f"剩余 {before} 个", timeout=15_000)


def test_the_registration_screens_fit_every_screen_shape_in_large_text(page, stack, kiosk_url, day_d):
    department, slot = a_morning_with_numbers(stack, kiosk_url, day_d)
    identify(page, kiosk_url, "id-card", PATIENT, MASKED)
    page.get_by_test_id("nav-large-text").click()
    page.get_by_test_id("tile-register").click()
    expect(department_button(page, department["name"])).to_be_visible(timeout=15_000)
    for width, height in ((1080, 1920), (1280, 1024), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        assert_targets_and_fit(page)
    shoot(page, "reg-departments-large-text")
    department_button(page, department["name"]).click()
    expect(half_day(page, slot)).to_be_enabled(timeout=15_000)
    for width, height in ((1080, 1920), (1280, 1024), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        assert_targets_and_fit(page)
    page.set_viewport_size({"width": 1080, "height": 1920})
    shoot(page, "reg-doctors-portrait-large-text")


def shown_departments(page, kiosk_url: str, who: str, masked: str) -> tuple[list[str], bool]:
    """The department names the registration screen lists for a patient identified afresh, and whether it
    says it shows a draft (a preview kiosk)."""
    identify(page, kiosk_url, "id-card", who, masked)
    page.get_by_test_id("tile-register").click()
    expect(page.get_by_test_id("reg-departments")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("reg-department").first).to_be_visible()
    names = page.get_by_test_id("reg-department").evaluate_all("els => els.map(e => e.dataset.name)")
    preview = page.get_by_test_id("reg-preview").is_visible()
    page.get_by_test_id("patient-logout").click()
    expect(page.get_by_test_id("start")).to_be_visible(timeout=15_000)
    return names, preview


def test_a_renamed_department_shows_on_a_preview_kiosk_and_elsewhere_only_once_published(page, stack, kiosk_url):
    departments = stack.container.departments
    original = next(d for g in kiosk_departments(kiosk_url)["groups"] for d in g["departments"]
                    if d["his_codes"] == ["0101"])
    renamed = "心内科（预览）"
    departments.save_department("it.wang", {"his_codes": ["0101"], "name": renamed})
    try:
        # Only one outpatient kiosk in the stack: K001 is first a preview kiosk, then an ordinary one.
        departments.set_preview("it.wang", "K001", True)
        names, preview = shown_departments(page, kiosk_url, PATIENT, MASKED)
        assert renamed in names and original["name"] not in names and preview, names
        departments.set_preview("it.wang", "K001", False)
        names, preview = shown_departments(page, kiosk_url, PATIENT, MASKED)
        assert original["name"] in names and renamed not in names and not preview, names

        departments.publish("it.wang")
        names, preview = shown_departments(page, kiosk_url, PATIENT, MASKED)
        assert renamed in names and original["name"] not in names and not preview, names
    finally:
        departments.set_preview("it.wang", "K001", False)
        entry = next(e for e in departments.configuration(draft=True).entries if "0101" in e.his_codes)
        departments.save_department("it.wang", {"name": original["name"]}, key=entry.key)
        departments.publish("it.wang")
    assert original["name"] in [d["name"] for g in kiosk_departments(kiosk_url)["groups"] for d in g["departments"]]


def test_a_session_ended_elsewhere_sends_the_registration_screens_home(page, stack, kiosk_url, day_d, problems):
    department, _slot = a_morning_with_numbers(stack, kiosk_url, day_d)
    identify(page, kiosk_url, "id-card", PATIENT, MASKED)
    page.get_by_test_id("tile-register").click()
    expect(department_button(page, department["name"])).to_be_visible(timeout=15_000)
    # The session ends behind the page's back: the next call answers 401 session_ended, the page goes home.
    httpx.post(f"{kiosk_url}/local/api/kiosk/session/logout", timeout=10).raise_for_status()
    department_button(page, department["name"]).click()
    expect(page.get_by_test_id("start")).to_be_visible(timeout=10_000)
    problems.forgive("401")
    assert MASKED not in page.evaluate("document.documentElement.outerHTML")
