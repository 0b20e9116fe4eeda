"""The kiosk page in a real browser against the whole demo stack, as a patient would use it.

The demo panel plays the readers (it is the only way identity enters: the page never sends one).
Assertions are about what a patient sees, plus what the page must not keep once they have gone.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from medkiosk.simulators.personas import PERSONAS

from kiosk_helpers import assert_targets_and_fit, close_pages, open_kiosk, present, session_of, shoot

pytestmark = pytest.mark.browser

VISIT_CARD_NOTICE = "使用就诊卡时按自费身份办理"


def patient_header(page):
    return page.get_by_test_id("patient-bar")


def test_a_local_employee_inserts_insurance_card_at_home_and_sees_only_masked_data(page, kiosk_url):
    open_kiosk(page, kiosk_url)
    shoot(page, "home-1920x1080")

    present(page, "insurance-card", "local_employee")

    header = patient_header(page)
    expect(header.get_by_test_id("patient-name")).to_have_text("王*国", timeout=15_000)
    expect(header.get_by_test_id("patient-category")).to_have_text("本地医保")
    expect(header.get_by_test_id("patient-medium")).to_have_text("医保卡")
    expect(header.get_by_test_id("patient-balance")).to_contain_text("¥1,520.35")
    expect(page.get_by_role("heading", name="请选择要办理的业务")).to_be_visible()
    shoot(page, "menu-local-employee")

    persona = PERSONAS["local_employee"]
    html = page.content()
    assert persona.name not in html
    assert persona.id_number not in html
    assert persona.insurance.card_no not in html


def test_b_cross_province_patient_shows_e_certificate_and_is_labelled_cross_province(page, kiosk_url):
    open_kiosk(page, kiosk_url)
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("waiting")).to_contain_text("正在等待读卡…")

    present(page, "e-certificate", "cross_province_filed")

    header = patient_header(page)
    expect(header.get_by_test_id("patient-name")).to_have_text("陈*", timeout=15_000)
    expect(header.get_by_test_id("patient-medium")).to_have_text("医保电子凭证")
    expect(header.get_by_test_id("patient-balance")).to_contain_text("¥2,310.50")
    assert PERSONAS["cross_province_filed"].name not in page.content()
    # Tender #2: "异地医保" only where money is involved — not on the menu, on the payment screens.
    expect(header.get_by_test_id("patient-category")).to_be_hidden()
    assert "异地" not in page.evaluate("document.body.innerText")
    page.get_by_test_id("tile-payment").click()
    expect(header.get_by_test_id("patient-category")).to_have_text("跨省异地医保", timeout=15_000)


def test_c_idle_patient_is_warned_can_ask_for_time_and_is_logged_out_leaving_no_trace(page, kiosk_url):
    # Two clocks: the page's countdown runs on Playwright's fake clock (so the test need not wait
    # 30 s), while the service's idle clock runs in real time and is only read, never faked.
    page.clock.install()
    open_kiosk(page, kiosk_url)
    present(page, "visit-card", "local_employee")
    header = patient_header(page)
    expect(header.get_by_test_id("patient-name")).to_have_text("王*国", timeout=15_000)
    expect(page.get_by_test_id("patient-notices")).to_contain_text(VISIT_CARD_NOTICE)
    expect(header.get_by_test_id("session-countdown")).to_have_text(re.compile(r"^(30|29) 秒后自动退出$"))
    page.get_by_test_id("nav-large-text").click()  # a tap: restarts the countdown, and is remembered…
    expect(page.locator("html")).to_have_class(re.compile("large-text"))

    # Left idle, the page warns warn_seconds (20) before the end.
    warning = page.get_by_test_id("warn-dialog")
    for _ in range(15):
        if warning.is_visible():
            break
        page.clock.run_for(1000)
    expect(warning).to_be_visible()
    left = int(re.search(r"(\d+) 秒", page.get_by_test_id("warn-count").inner_text()).group(1))
    assert left >= 20
    expect(page.get_by_test_id("warn-more")).to_be_focused()
    shoot(page, "idle-warning")
    # The service (real time) has seen only a few seconds of idleness.
    assert session_of(kiosk_url)["seconds_left"] > 20

    page.get_by_test_id("warn-more").click()
    expect(warning).to_be_hidden()
    expect(header.get_by_test_id("session-countdown")).to_have_text(re.compile(r"^(30|29) 秒后自动退出$"))
    # "需要更多时间" told the service too: its real-time idle clock restarted.
    assert session_of(kiosk_url)["seconds_left"] >= 27

    # Left idle again: the page's countdown reaches zero and it goes home on its own.
    page.clock.run_for(31_000)
    expect(page.get_by_test_id("start")).to_be_visible(timeout=10_000)
    expect(header).to_be_hidden()
    expect(page.get_by_test_id("nav-large-text")).to_have_attribute("aria-pressed", "false")  # …until now

    # The service's session is gone because the page logged out (its own 30 s had not passed).
    assert session_of(kiosk_url) is None
    html = page.evaluate("document.documentElement.outerHTML")
    kept = page.evaluate("""JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),
                                            document.cookie, history.state, history.length])""")
    for trace in ("王*国", PERSONAS["local_employee"].patient_id, VISIT_CARD_NOTICE, "1,520.35"):
        assert trace not in html
        assert trace not in kept
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert page.evaluate("document.cookie") == ""


def test_d_admitted_patient_is_sent_to_the_ward_and_accepted_at_the_ward_terminal(
        page, context, problems, kiosk_url, ward_url):
    open_kiosk(page, kiosk_url)
    present(page, "insurance-card", "inpatient")

    expect(page.get_by_test_id("refusal-message")).to_contain_text("住院", timeout=15_000)
    expect(page.get_by_test_id("refusal-next-step")).to_contain_text("心内科一病区")
    expect(page.get_by_test_id("refusal-home")).to_be_visible()
    expect(patient_header(page)).to_be_hidden()
    shoot(page, "refused-inpatient")
    page.get_by_test_id("refusal-home").click()
    expect(page.get_by_test_id("start")).to_be_visible()

    ward = context.new_page()
    problems.watch(ward)
    open_kiosk(ward, ward_url)
    expect(ward.get_by_text("住院病区终端")).to_be_visible()
    present(ward, "insurance-card", "inpatient")
    header = patient_header(ward)
    expect(header.get_by_test_id("patient-name")).to_have_text("周*", timeout=15_000)
    expect(header.get_by_test_id("patient-category")).to_have_text("本地医保")
    expect(header.get_by_test_id("patient-admission")).to_contain_text("心内科一病区")
    expect(ward.get_by_test_id("tile-discharge_settlement")).to_be_visible()
    shoot(ward, "ward-menu-inpatient")
    assert PERSONAS["inpatient"].name not in ward.content()


def test_e_calling_staff_shows_the_confirmation(page, kiosk_url):
    open_kiosk(page, kiosk_url)
    page.get_by_test_id("start").click()
    expect(page.get_by_role("heading", name="请出示以下任意一种")).to_be_visible()
    shoot(page, "identify")

    page.get_by_test_id("nav-staff-call").click()
    dialog = page.get_by_test_id("staff-call-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("dialog-message")).to_contain_text("已通知工作人员")
    expect(page.get_by_test_id("dialog-ok")).to_be_focused()
    shoot(page, "staff-call")
    page.get_by_test_id("dialog-ok").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("nav-staff-call")).to_be_focused()


def test_f_first_visit_patient_enters_phone_on_keypad_and_is_identified(page, kiosk_url):
    open_kiosk(page, kiosk_url)
    present(page, "id-card", "first_visit_self_pay")

    expect(page.get_by_role("heading", name="首次就诊，请输入手机号码")).to_be_visible(timeout=15_000)
    expect(page.get_by_text("冯*，您好")).to_be_visible()
    display = page.get_by_test_id("phone-display")

    page.get_by_test_id("key-1").click()
    page.get_by_test_id("key-confirm").click()
    expect(page.get_by_test_id("phone-error")).to_contain_text("还差 10 位")
    page.get_by_test_id("key-clear").click()
    expect(page.get_by_test_id("phone-error")).to_be_hidden()

    phone = PERSONAS["first_visit_self_pay"].phone
    for digit in phone[:-1] + "9":
        page.get_by_test_id(f"key-{digit}").click()
    page.get_by_test_id("key-delete").click()
    page.get_by_test_id(f"key-{phone[-1]}").click()
    expect(display).to_have_attribute("aria-label", " ".join(phone))
    shoot(page, "phone-keypad")
    page.get_by_test_id("key-confirm").click()

    header = patient_header(page)
    expect(header.get_by_test_id("patient-name")).to_have_text("冯*", timeout=15_000)
    expect(header.get_by_test_id("patient-category")).to_have_text("自费")
    expect(header.get_by_test_id("patient-medium")).to_have_text("身份证")
    expect(header.get_by_test_id("patient-balance")).to_have_count(0)
    assert phone not in page.content()


def test_g_a_tile_not_built_yet_says_coming_soon_and_back_and_home_work(page, kiosk_url):
    open_kiosk(page, kiosk_url)
    tile = page.get_by_test_id("tile-queries")
    expect(tile).to_contain_text("费用查询")
    expect(page.get_by_test_id("tile-status-queries")).to_have_text("即将开放")

    tile.click()
    dialog = page.get_by_test_id("coming-soon-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("即将开放")
    expect(dialog).to_contain_text("人工窗口")
    shoot(page, "coming-soon")
    page.get_by_test_id("dialog-ok").click()
    expect(dialog).to_be_hidden()

    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("waiting")).to_be_visible()
    page.get_by_test_id("nav-back").click()
    expect(page.get_by_test_id("start")).to_be_visible()
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("waiting")).to_be_visible()
    page.get_by_test_id("nav-home").click()
    expect(page.get_by_test_id("start")).to_be_visible()

    # 大字模式 makes type and targets larger, and the page still works.
    base = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    page.get_by_test_id("nav-large-text").click()
    expect(page.get_by_test_id("nav-large-text")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") > base
    shoot(page, "home-large-text")
    # A built service chosen before identifying: identify first, then it opens.
    page.get_by_test_id("tile-payment").click()
    expect(page.get_by_text("读卡后将为您办理：门诊缴费")).to_be_visible()
    page.get_by_test_id("nav-home").click()
    page.get_by_test_id("nav-large-text").click()
    expect(page.get_by_test_id("nav-large-text")).to_have_attribute("aria-pressed", "false")


def test_demo_panel_plays_the_peripherals_and_says_so(page, problems, kiosk_url):
    open_kiosk(page, kiosk_url)
    page.get_by_test_id("demo-handle").click()
    expect(page.get_by_text("演示工具")).to_be_visible()
    expect(page.get_by_test_id("demo-personas")).to_contain_text("王*国")
    page.get_by_test_id("demo-paper-low").click()
    expect(page.get_by_test_id("demo-paper-low")).to_have_attribute("aria-pressed", "true")
    page.get_by_test_id("demo-insurance-card-reader-fault").click()
    expect(page.get_by_test_id("demo-insurance-card-reader-fault")).to_have_attribute("aria-pressed", "true")
    shoot(page, "demo-panel")
    # A faulty reader takes no card: the panel says why, the patient screen is unchanged.
    page.get_by_test_id("demo-insurance-card-local_employee").click()
    expect(page.get_by_test_id("demo-status")).to_contain_text("未成功")
    problems.forgive("status of 409")
    expect(page.get_by_test_id("start")).to_be_visible()
    page.get_by_test_id("demo-insurance-card-reader-ok").click()
    page.get_by_test_id("demo-paper-ok").click()
    expect(page.get_by_test_id("demo-paper-ok")).to_have_attribute("aria-pressed", "true")
    page.get_by_test_id("demo-close").click()
    expect(page.get_by_test_id("demo-personas")).to_have_count(0)
    assert "王*国" not in page.content()


def test_a_session_ended_elsewhere_sends_the_page_home(page, kiosk_url):
    page.clock.install()
    open_kiosk(page, kiosk_url)
    present(page, "insurance-card", "same_province")
    expect(page.get_by_test_id("patient-name")).not_to_be_empty(timeout=15_000)
    expect(page.get_by_test_id("patient-category")).to_be_hidden()  # 省内异地医保: only on payment screens

    # The session ends behind the page's back (as when the service ends it): the next check notices.
    httpx.post(f"{kiosk_url}/local/api/kiosk/session/logout", timeout=10).raise_for_status()
    page.clock.run_for(11_000)
    expect(page.get_by_test_id("start")).to_be_visible(timeout=10_000)
    assert "张*" not in page.evaluate("document.documentElement.outerHTML")


def test_an_abandoned_screen_without_a_patient_returns_home(page, kiosk_url):
    page.clock.install()
    open_kiosk(page, kiosk_url)
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("waiting")).to_be_visible()
    page.clock.run_for(31_000)
    expect(page.get_by_test_id("start")).to_be_visible()


@pytest.mark.parametrize("width,height", [(1920, 1080), (1080, 1920), (1280, 1024)])
def test_screens_fit_large_type_and_large_targets_at_each_kiosk_size(browser, stack, width, height):
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    try:
        page = context.new_page()
        open_kiosk(page, stack.agents["K001"].url)
        size = f"{width}x{height}"
        shoot(page, f"home-{size}")
        assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 24
        assert_targets_and_fit(page)
        # Every service tile is on screen without scrolling.
        assert page.evaluate("""(() => {
            const host = document.getElementById('screen').getBoundingClientRect();
            return [...document.querySelectorAll('.tile')].every(t => t.getBoundingClientRect().bottom <= host.bottom + 1);
        })()""")

        # Everything the screen loaded (page, styles, scripts, pictograms, API replies) ≤ 200 KB.
        loaded = page.evaluate("""[performance.getEntriesByType('navigation')[0],
                                   ...performance.getEntriesByType('resource')]
                                  .reduce((sum, e) => sum + (e.transferSize || e.encodedBodySize || 0), 0)""")
        assert 0 < loaded <= 200 * 1024, loaded

        page.get_by_test_id("start").click()
        expect(page.get_by_test_id("waiting")).to_be_visible()
        shoot(page, f"identify-{size}")
        assert_targets_and_fit(page)
    finally:
        close_pages(context)
        context.close()


def test_a_new_release_takes_effect_between_patients_never_under_ones_hands(page, kiosk_url, stack, monkeypatch):
    runtime = stack.agents["K001"].server.config.app.state.agent
    monkeypatch.setattr(runtime.settings, "page_check_seconds", 1.0)
    open_kiosk(page, kiosk_url)
    present(page, "insurance-card", "local_employee")
    expect(patient_header(page).get_by_test_id("patient-name")).to_have_text("王*国", timeout=15_000)
    page.evaluate("window.__sameLoad = true")
    # The agent switches to a new page release while the patient is at the kiosk.
    monkeypatch.setattr(runtime.updater, "reported_version", lambda: "2026.11.26-new")
    page.wait_for_timeout(3_000)
    assert page.evaluate("window.__sameLoad === true")  # not reloaded under the patient's hands
    expect(patient_header(page).get_by_test_id("patient-name")).to_have_text("王*国")
    page.get_by_test_id("patient-logout").click()
    # Between patients the page loads the new release by itself.
    reloaded_by = time.monotonic() + 15
    while page.evaluate("window.__sameLoad === true") and time.monotonic() < reloaded_by:
        page.wait_for_timeout(200)  # (wait_for_function evaluates a string, which the page's CSP forbids)
    assert page.evaluate("window.__sameLoad === undefined")
    expect(page.get_by_test_id("start")).to_be_visible(timeout=15_000)
    monkeypatch.undo()  # the release is back to what it was: the idle page reloads once more, then stays
    page.wait_for_timeout(3_000)
    page.evaluate("window.__sameLoad = true")
    page.wait_for_timeout(2_500)
    assert page.evaluate("window.__sameLoad === true")  # the version does not change again: no reload loop
