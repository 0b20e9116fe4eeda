"""The screens beside 挂号 in a real browser against the whole demo stack: an appointment outside its pick-up
window says from when until when (tender #15), today's slip is reprinted marked 补打 until the limit
(tender #16), and an app-paid registration is swapped to insurance keeping its number (tender #11).

The registration rules' clock is frozen where a test needs a time of day, and put back afterwards with the
HIS simulator's data (and the payment simulator's, after a swap refunded the app's payment).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect

from medkiosk.domain.masking import mask_name
from medkiosk.services.clock import FrozenClock
from medkiosk.services.registrations import registrations_of
from medkiosk.simulators.personas import PERSONAS

from kiosk_helpers import Taps, account_balance, assert_targets_and_fit, identify, printed, shoot

pytestmark = pytest.mark.browser

HOSPITAL = ZoneInfo("Asia/Shanghai")


def masked(persona: str) -> str:
    return mask_name(PERSONAS[persona].name)


@pytest.fixture
def his_today(stack):
    """The HIS simulator's today, its demo data fresh; its data (and the payment simulator's) reset afterwards."""
    his = stack.his.url
    httpx.post(f"{his}/__sim__/reset", timeout=10).raise_for_status()
    now = dt.datetime.fromisoformat(httpx.get(f"{his}/__sim__/clock", timeout=10).json()["now"])
    try:
        yield now.date()
    finally:
        httpx.post(f"{his}/__sim__/reset", timeout=10).raise_for_status()
        httpx.post(f"{stack.payment.url}/__sim__/reset", timeout=10).raise_for_status()


@pytest.fixture
def rules_clock(stack):
    """Freeze the registration rules' clock (pick-up window, reprint day) at a hospital time; put back afterwards."""
    service = registrations_of(stack.container)
    real = service._clock

    def freeze(day: dt.date, at: dt.time) -> None:
        service._clock = FrozenClock(dt.datetime.combine(day, at, tzinfo=HOSPITAL).astimezone(dt.timezone.utc))

    try:
        yield freeze
    finally:
        service._clock = real


def book_in_app(stack, persona: str, day: dt.date, *, paid: bool = False) -> dict:
    """An appointment for ``persona`` made in the app for ``day``'s morning (paid there, or not yet)."""
    slots = httpx.get(f"{stack.his.url}/his/v1/schedules", params={"date": day.isoformat()}, timeout=10).json()
    slot = next(s for s in slots["schedules"] if s["half_day"] == "am" and s["remaining"] >= 3)
    record = {"registration_no": f"GHAPP{persona.upper()[:6]}E2E", "patient_id": PERSONAS[persona].patient_id,
              "date": day.isoformat(), "half_day": "am", "department_code": slot["department_code"],
              "doctor_code": slot["doctor_code"], "level": slot["level"],
              "queue_no": slot["total"] - slot["remaining"] + 1, "fee": slot["fee"], "status": "booked",
              "source": "app", "schedule_id": slot["schedule_id"],
              "app_trade_no": "APPTE2E00001" if paid else None, "app_paid_amount": slot["fee"] if paid else None}
    httpx.post(f"{stack.his.url}/__sim__/data/registrations", json=[record], timeout=10).raise_for_status()
    return record


def phone_pays(stack, order_no: str) -> None:
    reply = httpx.post(f"{stack.payment.url}/__sim__/pay/{order_no}P1", json={"channel": "wechat"}, timeout=10)
    assert reply.status_code == 200, reply.text


def test_picking_up_outside_its_window_shows_from_when_until_when(page, stack, kiosk_url, his_today, rules_clock):
    day = his_today + dt.timedelta(days=1)
    appointment = book_in_app(stack, "self_pay", day)
    rules_clock(day - dt.timedelta(days=1), dt.time(15, 0))  # the afternoon before
    identify(page, kiosk_url, "id-card", "self_pay", masked("self_pay"))

    page.get_by_test_id("tile-appointment_pickup").click()
    expect(page.get_by_test_id("regm-pickup")).to_be_visible(timeout=15_000)
    opens, closes = f"{day.month}月{day.day}日 07:00", f"{day.month}月{day.day}日 12:00"
    card = page.get_by_test_id("regm-appointment").filter(has_text=opens)
    expect(card).to_have_count(1)
    expect(card).to_contain_text(closes)
    expect(card.locator(".exam-problem-next")).to_contain_text("请您：")
    expect(card.get_by_test_id("regm-pick-up")).to_have_count(0)  # not offered outside the window
    text = page.evaluate("document.body.innerText")
    assert appointment["registration_no"] not in text and appointment["schedule_id"] not in text
    assert PERSONAS["self_pay"].name not in text
    assert_targets_and_fit(page)
    shoot(page, "regm-pickup-outside-window")
    reply = httpx.get(f"{stack.his.url}/his/v1/registrations/{appointment['registration_no']}", timeout=10)
    assert reply.json()["status"] == "booked"  # nothing changed


def test_an_appointment_paid_in_the_app_is_picked_up_in_one_tap_and_its_slip_prints(page, stack, kiosk_url,
                                                                                   his_today, rules_clock):
    day = his_today + dt.timedelta(days=1)
    appointment = book_in_app(stack, "local_employee", day, paid=True)
    rules_clock(day, dt.time(7, 30))  # inside the window: from 07:00
    identify(page, kiosk_url, "insurance-card", "local_employee", masked("local_employee"))

    page.get_by_test_id("tile-appointment_pickup").click()
    card = page.locator(f"[data-testid='regm-appointment'][data-number='{appointment['queue_no']}']")
    expect(card).to_contain_text("已在医院App支付", timeout=15_000)
    shoot(page, "regm-pickup")
    card.get_by_test_id("regm-pick-up").click()
    expect(page.get_by_test_id("reg-result")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("reg-number")).to_have_text(f"{appointment['queue_no']} 号")
    expect(page.get_by_test_id("reg-print-status")).to_have_text("挂号条已打印，请在出纸口取走", timeout=15_000)
    slip = printed(kiosk_url, f"reg-{appointment['registration_no']}")[0]["text"].replace(" ", "")
    assert f"序号：{appointment['queue_no']}" in slip and "已在医院App支付" in slip, slip
    reply = httpx.get(f"{stack.his.url}/his/v1/registrations/{appointment['registration_no']}", timeout=10)
    assert reply.json()["status"] == "registered"
    expect(page.get_by_test_id("start")).to_be_visible(timeout=20_000)  # the page clears itself


def test_todays_slip_is_reprinted_marked_as_such_and_the_count_goes_down(page, stack, kiosk_url, his_today,
                                                                       rules_clock):
    persona = "local_employee"  # the demo gives her today's registrations made at a window
    rules_clock(his_today, dt.time(9, 0))
    identify(page, kiosk_url, "insurance-card", persona, masked(persona))
    # The menu carries 补打挂号条 and 换成医保挂号 beside 挂号, every tile in view at each screen shape.
    for width, height in ((1280, 1024), (1080, 1920), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        expect(page.get_by_test_id("tile-reg_swap")).to_be_visible()
        assert_targets_and_fit(page)
        shoot(page, f"regm-menu-{width}x{height}")
        assert page.evaluate("""(() => {
            const host = document.getElementById('screen').getBoundingClientRect();
            return [...document.querySelectorAll('.tile')].every(t => t.getBoundingClientRect().bottom <= host.bottom + 1);
        })()""")
    tap = Taps(page)

    tap(page.get_by_test_id("tile-reg_reprint"))
    card = page.get_by_test_id("regm-today-item").first
    expect(card).to_be_visible(timeout=15_000)
    number = card.get_attribute("data-number")
    expect(card.get_by_test_id("regm-reprints-left")).to_have_text("还可补打 2 次")
    assert_targets_and_fit(page)
    shoot(page, "regm-today")

    tap(card.get_by_test_id("regm-reprint"))
    expect(card.get_by_test_id("regm-reprint-status")).to_have_text("已补打，请在出纸口取走挂号条", timeout=15_000)
    expect(card.get_by_test_id("regm-reprints-left")).to_have_text("还可补打 1 次")
    assert tap.count == 2
    slips = printed(kiosk_url, "regre-")
    assert slips, "no slip printed"
    slip = slips[0]["text"].replace(" ", "")
    assert "挂号条（补打）" in slip and f"序号：{number}" in slip and masked(persona) in slip, slip
    assert PERSONAS[persona].name not in slip

    card.get_by_test_id("regm-reprint").click()
    expect(card.get_by_test_id("regm-reprints-left")).to_have_text("补打次数已用完", timeout=15_000)
    expect(card.get_by_test_id("regm-reprint")).to_be_disabled()
    expect(card.locator(".exam-problem-next")).to_contain_text("人工窗口")
    assert len(printed(kiosk_url, "regre-")) == len(slips) + 1
    shoot(page, "regm-today-limit")


@pytest.fixture
def cash_left(stack):
    """Her personal account emptied for the test, so the swap leaves a cash part to pay by QR (in the demo it
    covers the fee, which settles at once — the same path as a pick-up paid in the app, tested above)."""
    with account_balance(stack, "cross_province_filed", "0.00"):
        yield
def test_an_app_paid_registration_is_swapped_to_insurance_keeping_its_number(page, stack, kiosk_url, his_today,
                                                                             cash_left):
    persona = "cross_province_filed"
    identify(page, kiosk_url, "insurance-card", persona, masked(persona))
    tomorrow = (his_today + dt.timedelta(days=1)).isoformat()
    listed = httpx.get(f"{kiosk_url}/local/api/kiosk/registrations/swappable", timeout=10).json()
    app_paid = next(r for r in listed["registrations"] if r["date"] == tomorrow)
    number = str(app_paid["queue_no"])

    page.get_by_test_id("tile-reg_swap").click()
    card = page.locator(f"[data-testid='regm-swappable'][data-number='{number}']")
    expect(card).to_be_visible(timeout=15_000)
    expect(card).to_contain_text("已在医院App支付")
    expect(page.get_by_test_id("pay-cross-region")).to_have_count(0)  # choosing is not paying
    shoot(page, "regm-swap")
    card.get_by_test_id("regm-swap-choose").click()
    expect(page.get_by_test_id("regm-swap-number")).to_have_text(f"{number} 号")
    expect(page.get_by_test_id("regm-swap-confirm")).to_contain_text("App支付的费用将原路退回")
    page.get_by_test_id("regm-swap-go").click()

    # The cash part on the payment screens, with the 异地医保 notice.
    result = page.get_by_test_id("reg-result")
    qr = page.locator("[data-testid='pay-qr']:not([disabled])")
    expect(qr).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("pay-cross-region")).to_contain_text("异地医保")  # money is paid here
    shoot(page, "regm-swap-pay-split")
    qr.click()
    phone_pays(stack, page.get_by_test_id("pay-qr-screen").get_attribute("data-order", timeout=15_000))
    expect(result).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("reg-number")).to_have_text(f"{number} 号")
    expect(page.get_by_test_id("regm-app-refund")).to_contain_text("App支付的费用将原路退回")
    expect(page.get_by_test_id("reg-print-status")).to_have_text("挂号条已打印，请在出纸口取走", timeout=15_000)
    state = httpx.get(f"{kiosk_url}/local/api/kiosk/registrations/{app_paid['registration_no']}",
                      timeout=10).json()["registration"]
    assert state["state"] in ("registered", "refunding_app") and str(state["queue_no"]) == number
    shoot(page, "regm-swap-result")
    slip = printed(kiosk_url, f"reg-{app_paid['registration_no']}")[0]["text"].replace(" ", "")
    assert f"序号：{number}" in slip and "异地医保" in slip
    expect(page.get_by_test_id("start")).to_be_visible(timeout=20_000)  # the page clears itself


def test_a_number_taken_here_is_cancelled_and_its_fee_goes_back(page, stack, kiosk_url, his_today, rules_clock):
    persona = "self_pay"  # by ID card: the fee is paid by QR code, and goes back the same way
    day = his_today + dt.timedelta(days=1)
    rules_clock(his_today, dt.time(15, 0))  # the afternoon before: still in time to cancel
    identify(page, kiosk_url, "id-card", persona, masked(persona))
    # The number taken and paid through the agent's API, as the page's 挂号 screens would.
    codes = {c for g in httpx.get(f"{kiosk_url}/local/api/kiosk/registration/departments", timeout=10).json()["groups"]
             for d in g["departments"] if not d["doctor_codes"] for c in d["his_codes"]}
    slots = httpx.get(f"{stack.his.url}/his/v1/schedules", params={"date": day.isoformat()}, timeout=10).json()
    slot = next(s for s in slots["schedules"] if s["department_code"] in codes and s["half_day"] == "am"
                and s["remaining"] >= 3)
    held = httpx.post(f"{kiosk_url}/local/api/kiosk/registrations",
                      json={"schedule_id": slot["schedule_id"], "date": day.isoformat()}, timeout=30)
    assert held.status_code == 200, held.text
    registration_no, order_no = held.json()["registration"]["registration_no"], held.json()["payment"]["order_no"]
    paying = httpx.post(f"{kiosk_url}/local/api/kiosk/payments/{order_no}/pay", json={"method": "qr"}, timeout=30)
    assert paying.status_code == 200, paying.text
    phone_pays(stack, order_no)
    for _ in range(100):
        if httpx.get(f"{kiosk_url}/local/api/kiosk/payments/{order_no}", timeout=10).json()["state"] == "completed":
            break
        page.wait_for_timeout(200)
    registered = httpx.get(f"{kiosk_url}/local/api/kiosk/registrations/{registration_no}", timeout=10).json()
    assert registered["registration"]["state"] == "registered", registered
    number = str(registered["registration"]["queue_no"])

    page.get_by_test_id("tile-reg_cancel").click()
    card = page.locator(f"[data-testid='regm-cancellable'][data-number='{number}']")
    expect(card).to_be_visible(timeout=15_000)
    expect(card).to_contain_text(f"{day.month}月{day.day}日")
    expect(card).to_contain_text(f"¥{slot['fee']}")
    assert_targets_and_fit(page)
    shoot(page, "regm-cancel")
    card.get_by_test_id("regm-cancel-choose").click()
    confirm = page.get_by_test_id("regm-cancel-confirm")
    expect(confirm).to_contain_text("确认退号？退号后该号将释放，费用原路退回")
    expect(page.get_by_test_id("regm-cancel-number")).to_have_text(f"{number} 号")
    page.get_by_test_id("regm-cancel-go").click()
    expect(page.get_by_test_id("regm-cancel-refund")).to_have_text(f"已退号，费用 ¥{slot['fee']} 将原路退回",
                                                                    timeout=20_000)
    assert_targets_and_fit(page)
    shoot(page, "regm-cancel-done")
    reply = httpx.get(f"{stack.his.url}/his/v1/registrations/{registration_no}", timeout=10)
    assert reply.json()["status"] == "cancelled"
    page.get_by_test_id("regm-cancel-finish").click()
    expect(page.get_by_test_id("start")).to_be_visible(timeout=20_000)  # the session ends as after a number
