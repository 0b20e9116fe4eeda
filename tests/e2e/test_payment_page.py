"""Outpatient payment (门诊缴费) in a real browser against the whole demo stack, as a patient pays.

The demo panel plays the readers and the phone's payment code at the scanner; the payment
simulator's control surface plays the patient's phone paying the QR code on the screen. Taps are
counted from the menu: a bill is paid in at most three.
"""

from __future__ import annotations

import io
import re
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from medkiosk.simulators.personas import PERSONAS
from medkiosk.store.models import PaymentOrder

from kiosk_helpers import account_balance, assert_targets_and_fit, identify, open_kiosk, printed, shoot

pytestmark = pytest.mark.browser

QR_PROMPT = "↑↑请手机扫码支付↑↑"
SHAPES = [(1920, 1080), (1080, 1920), (1280, 1024)]


@pytest.fixture(autouse=True)
def fresh_bills(stack):
    """Every test starts from the demo hospital's own unpaid bills (paying one takes it away)."""
    httpx.post(f"{stack.his.url}/__sim__/reset", timeout=10).raise_for_status()


class Taps:
    """The patient's taps on the screen, counted."""

    def __init__(self, page) -> None:
        self.page = page
        self.count = 0

    def __call__(self, testid: str) -> None:
        self.page.get_by_test_id(testid).click()
        self.count += 1


def yuan(text: str) -> Decimal:
    return Decimal(re.sub(r"[^\d.]", "", text))


def qr_screen_order(page) -> str:
    screen = page.get_by_test_id("pay-qr-screen")
    expect(screen).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("qr-code")).to_be_visible()
    # The code is drawn by the agent: wait for the image itself, not only its box.
    page.wait_for_function("""() => { const img = document.querySelector("[data-testid='qr-code']");
                                       return img && img.complete && img.naturalWidth > 0; }""", timeout=10_000)
    return screen.get_attribute("data-order")


def order_of(kiosk_url: str, order_no: str) -> dict:
    """The order as the service tells the kiosk (the patient's session is still open)."""
    response = httpx.get(f"{kiosk_url}/local/api/kiosk/payments/{order_no}", timeout=10)
    response.raise_for_status()
    return response.json()


def phone_pays(stack, order_no: str, **body) -> None:
    """The patient's phone scans the code and pays (the channel may take another amount)."""
    response = httpx.post(f"{stack.payment.url}/__sim__/pay/{order_no}P1", json={"channel": "wechat", **body},
                          timeout=10)
    assert response.status_code == 200, response.text


def pdf_text(path: str) -> str:
    """The text of a PDF the simulated A4 printer saved."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(Path(path).read_bytes()))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def a4_sheets(kiosk_url: str) -> list[dict]:
    """What the kiosk's (simulated) A4 printer printed, newest first; each saved as a PDF in its folder."""
    return [p for p in printed(kiosk_url) if p["kind"] == "a4"]


def new_sheets(kiosk_url: str, before: list[dict]) -> list[dict]:
    seen = {p["job_id"] for p in before}
    return [p for p in a4_sheets(kiosk_url) if p["job_id"] not in seen]


def a4_paper(kiosk_url: str, paper: str) -> None:
    """The demo panel's switch for the A4 printer's paper."""
    response = httpx.post(f"{kiosk_url}/local/demo/peripheral", json={"name": "a4_printer", "paper": paper},
                          timeout=10)
    assert response.status_code == 200, response.text


def channel_orders(stack) -> dict[str, dict]:
    """The payment channel's own orders (the simulator's state), by out_trade_no."""
    orders = httpx.get(f"{stack.payment.url}/__sim__/state/orders", timeout=10).json()
    return {o["out_trade_no"]: o for o in orders}


def expect_result(page, state: str):
    result = page.get_by_test_id("pay-result")
    expect(result).to_have_attribute("data-state", state, timeout=20_000)
    return result


def test_a_self_pay_patient_pays_a_visit_by_qr_in_three_taps_and_the_receipt_prints(page, stack, kiosk_url):
    identify(page, kiosk_url, "id-card", "self_pay", "郑*")
    tap = Taps(page)

    tap("tile-payment")
    expect(page.get_by_test_id("pay-bills")).to_be_visible(timeout=15_000)
    first_visit = page.locator("[data-testid^='pay-visit-']").first
    expect(first_visit).to_have_attribute("aria-pressed", "true")  # the first whole visit is chosen
    total = yuan(page.get_by_test_id("pay-total").inner_text())
    expect(page.get_by_test_id("pay-insurance")).to_have_count(0)  # no insurance: one button, 自费支付
    shoot(page, "pay-bills-self-pay")

    tap("pay-self-pay")
    expect(page.get_by_test_id("pay-split")).to_be_visible(timeout=15_000)
    assert yuan(page.get_by_test_id("split-cash").inner_text()) == total
    expect(page.get_by_test_id("pay-bank-card")).to_be_enabled()
    expect(page.get_by_test_id("pay-cross-region")).to_have_count(0)
    shoot(page, "pay-split-self-pay")

    tap("pay-qr")
    order_no = qr_screen_order(page)
    assert yuan(page.get_by_test_id("pay-amount").inner_text()) == total
    shoot(page, "pay-qr")

    phone_pays(stack, order_no)
    expect_result(page, "completed")
    expect(page.get_by_test_id("result-title")).to_have_text("缴费成功")
    expect(page.get_by_test_id("receipt-no")).to_have_text(re.compile(r"\w{6,}"))
    expect(page.get_by_test_id("invoice-no")).not_to_be_empty()
    expect(page.get_by_test_id("print-status")).to_contain_text("凭条已打印", timeout=10_000)
    shoot(page, "pay-result-success")
    assert tap.count == 3, tap.count

    receipts = printed(kiosk_url, order_no)
    assert len(receipts) == 1 and receipts[0]["title"] == "缴费凭条"
    assert "门诊缴费凭条" in receipts[0]["text"] and f"{total:.2f}" in receipts[0]["text"]
    assert PERSONAS["self_pay"].name not in page.content()

    # One more tap, after paying: the e-invoice on the A4 printer, and where to take it.
    invoice_no = page.get_by_test_id("invoice-no").inner_text()
    before = a4_sheets(kiosk_url)
    page.get_by_test_id("invoice-a4").click()
    expect(page.get_by_test_id("invoice-status")).to_contain_text("请在下方出纸口取走票据", timeout=15_000)
    shoot(page, "pay-result-invoice-printed")
    sheets = new_sheets(kiosk_url, before)
    assert len(sheets) == 1 and sheets[0]["title"] == "电子票据", sheets
    text = pdf_text(sheets[0]["files"][0])
    assert "医疗收费电子票据" in text and invoice_no in text and f"{total:.2f}" in text, text


def test_b_a_local_insured_patient_sees_the_split_and_pays_the_cash_part_by_qr(page, stack, kiosk_url):
    # His personal account holds less than his share, so there is cash left to pay.
    with account_balance(stack, "local_employee", "50.00"):
        identify(page, kiosk_url, "insurance-card", "local_employee", "王*国")
        tap = Taps(page)
        tap("tile-payment")
        expect(page.get_by_test_id("pay-bills")).to_be_visible(timeout=15_000)
        # The earlier visit (copies, image disc …) is all self-pay: the patient may pay it without insurance.
        visits = page.locator("[data-testid^='pay-visit-']")
        expect(visits).to_have_count(2)
        visits.nth(1).click()
        expect(page.get_by_test_id("pay-insurance")).to_be_visible()
        expect(page.get_by_test_id("pay-self-pay")).to_contain_text("自费支付")
        shoot(page, "pay-bills-insured-self-pay-visit")
        # Today's visit has a self-pay item on a prescription with covered drugs: said plainly.
        visits.nth(0).click()
        expect(page.get_by_test_id("pay-insurance")).to_contain_text("医保结算")
        expect(page.locator(".pay-hint").first).to_contain_text("医保不报销")
        shoot(page, "pay-bills-insured")

        tap("pay-insurance")
        expect(page.get_by_test_id("pay-split")).to_be_visible(timeout=20_000)
        fund = yuan(page.get_by_test_id("split-fund").inner_text())
        account = yuan(page.get_by_test_id("split-account").inner_text())
        cash = yuan(page.get_by_test_id("split-cash").inner_text())
        assert fund > 0 and account == Decimal("50.00") and cash > 0
        assert fund + account + cash == yuan(page.get_by_test_id("split-total").inner_text())
        expect(page.get_by_test_id("pay-cross-region")).to_have_count(0)  # a local patient: no 异地 notice
        shoot(page, "pay-split-insured")

        tap("pay-qr")
        order_no = qr_screen_order(page)
        assert yuan(page.get_by_test_id("pay-amount").inner_text()) == cash
        phone_pays(stack, order_no)
        expect_result(page, "completed")
        assert yuan(page.get_by_test_id("result-fund").inner_text()) == fund
        assert yuan(page.get_by_test_id("paid-amount").inner_text()) == cash
        expect(page.get_by_test_id("print-status")).to_contain_text("凭条已打印", timeout=10_000)
        shoot(page, "pay-result-insured")
        assert tap.count == 3
        assert "医保统筹支付" in printed(kiosk_url, order_no)[0]["text"]


def test_c_a_cross_province_patient_sees_the_cross_region_notice_only_where_money_is_paid(page, stack, kiosk_url):
    with account_balance(stack, "cross_province_filed", "0.00"):
        open_kiosk(page, kiosk_url)
        assert "异地" not in page.locator("#screen").inner_text()  # home
        identify(page, kiosk_url, "e-certificate", "cross_province_filed", "陈*")
        expect(page.get_by_role("heading", name="请选择要办理的业务")).to_be_visible()
        # The menu (its screen and the session's notices) says nothing of 异地; only the patient bar
        # names the patient's insurance category.
        assert "异地" not in page.locator("#screen").inner_text()
        assert "异地" not in page.locator("#notices").inner_text()

        page.get_by_test_id("tile-payment").click()
        expect(page.get_by_test_id("pay-bills")).to_be_visible(timeout=15_000)
        expect(page.get_by_test_id("pay-cross-region")).to_contain_text("异地医保")
        page.get_by_test_id("pay-insurance").click()
        expect(page.get_by_test_id("pay-split")).to_be_visible(timeout=20_000)
        expect(page.get_by_test_id("pay-cross-region")).to_contain_text("异地医保")
        shoot(page, "pay-split-cross-province")
        page.get_by_test_id("pay-qr").click()
        order_no = qr_screen_order(page)

        # Leaving by 首页 cancels the order; the menu is again free of the notice.
        page.get_by_test_id("nav-home").click()
        expect(page.get_by_role("heading", name="请选择要办理的业务")).to_be_visible()
        assert "异地" not in page.locator("#screen").inner_text()
        for _ in range(50):
            if order_of(kiosk_url, order_no)["state"] == "closed":
                break
            page.wait_for_timeout(100)
        assert order_of(kiosk_url, order_no)["state"] == "closed"


def test_an_insured_patient_whose_account_covers_the_bill_is_settled_in_two_taps(page, kiosk_url):
    identify(page, kiosk_url, "insurance-card", "same_province", "张*")
    tap = Taps(page)
    tap("tile-payment")
    expect(page.get_by_test_id("pay-bills")).to_be_visible(timeout=15_000)
    tap("pay-insurance")
    expect_result(page, "completed")  # no cash to pay: no payment screen
    assert yuan(page.get_by_test_id("paid-amount").inner_text()) == 0
    assert yuan(page.get_by_test_id("result-account").inner_text()) > 0
    expect(page.get_by_test_id("pay-cross-region")).to_contain_text("异地医保")  # a settlement screen
    expect(page.get_by_test_id("print-status")).to_contain_text("凭条已打印", timeout=10_000)
    shoot(page, "pay-result-account-covers")
    assert tap.count == 2


def test_an_unfiled_cross_province_patient_is_offered_self_pay_in_one_tap(page, kiosk_url):
    identify(page, kiosk_url, "e-certificate", "cross_province_unfiled", "刘*")
    page.get_by_test_id("tile-payment").click()
    page.get_by_test_id("pay-insurance").click()
    expect_result(page, "failed")
    expect(page.get_by_test_id("result-message")).to_contain_text("备案")
    shoot(page, "pay-result-offer-self-pay")
    page.get_by_test_id("pay-offer-self-pay").click()
    expect(page.get_by_test_id("pay-split")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("pay-qr")).to_be_enabled()
    expect(page.get_by_test_id("pay-cross-region")).to_have_count(0)  # self-pay: no settlement notice
    page.get_by_test_id("nav-back").click()  # cancels the self-pay order
    expect(page.get_by_test_id("pay-bills")).to_be_visible(timeout=15_000)


def test_d_an_amount_the_channel_took_wrongly_is_refunded_with_plain_words_and_a_slip(page, stack, kiosk_url):
    identify(page, kiosk_url, "visit-card", "self_pay", "郑*")
    page.get_by_test_id("tile-payment").click()
    page.get_by_test_id("pay-self-pay").click()
    page.get_by_test_id("pay-qr").click()
    order_no = qr_screen_order(page)
    cash = Decimal(order_of(kiosk_url, order_no)["split"]["cash"])

    phone_pays(stack, order_no, amount=f"{cash + 1:.2f}")  # the channel takes one yuan more
    expect_result(page, "refunded")
    expect(page.get_by_test_id("result-title")).to_have_text("金额核对不一致，已为您退款")
    expect(page.get_by_test_id("result-next-step")).to_contain_text("人工收费窗口")
    assert yuan(page.get_by_test_id("paid-amount").inner_text()) == cash + 1
    assert yuan(page.get_by_test_id("refunded-amount").inner_text()) == cash + 1
    expect(page.get_by_test_id("print-status")).to_contain_text("异常凭条已打印", timeout=10_000)
    shoot(page, "pay-result-anomaly")
    slips = printed(kiosk_url, order_no)
    assert len(slips) == 1 and slips[0]["title"] == "缴费异常凭条" and "人工收费窗口" in slips[0]["text"]
    assert order_of(kiosk_url, order_no)["refunded_amount"] == f"{cash + 1:.2f}"


def test_e_the_qr_prompt_points_at_the_code_and_cancelling_closes_the_order(page, kiosk_url):
    identify(page, kiosk_url, "id-card", "self_pay", "郑*")
    page.get_by_test_id("tile-payment").click()
    page.get_by_test_id("pay-self-pay").click()
    page.get_by_test_id("pay-qr").click()
    order_no = qr_screen_order(page)

    prompt = page.get_by_test_id("qr-prompt")
    expect(prompt).to_have_text(QR_PROMPT)
    code, says = page.get_by_test_id("qr-code").bounding_box(), prompt.bounding_box()
    # The arrows point up at the code from right beneath it, centred on it and at least as wide.
    assert 0 <= says["y"] - (code["y"] + code["height"]) <= 40, (code, says)
    assert abs((says["x"] + says["width"] / 2) - (code["x"] + code["width"] / 2)) <= 4
    assert says["width"] >= code["width"] and code["width"] >= 380
    assert prompt.evaluate("el => parseFloat(getComputedStyle(el).fontSize)") >= 40
    expect(page.get_by_test_id("pay-countdown")).to_have_text(re.compile(r"请在 [45] 分 \d\d 秒内完成支付"))
    expect(page.get_by_test_id("pay-code-hint")).to_contain_text("付款码")

    page.get_by_test_id("pay-cancel").click()
    expect(page.get_by_test_id("pay-bills")).to_be_visible(timeout=15_000)
    assert order_of(kiosk_url, order_no)["state"] == "closed"


def test_f_a_payment_code_shown_to_the_scanner_pays_the_order_with_no_cancel_in_between(page, stack, kiosk_url):
    identify(page, kiosk_url, "id-card", "self_pay", "郑*")
    calls: list[str] = []
    page.on("request", lambda r: calls.append(f"{r.method} {r.url}") if "/local/api/kiosk/payments" in r.url else None)
    tap = Taps(page)
    tap("tile-payment")
    tap("pay-self-pay")
    tap("pay-qr")
    shown_for = qr_screen_order(page)

    # The patient holds the phone's payment code to the kiosk's scanner (played by the demo panel).
    page.get_by_test_id("demo-handle").click()
    page.get_by_test_id("demo-payment-code-ok").click()
    expect(page.get_by_test_id("demo-status")).to_contain_text("已发送")
    page.get_by_test_id("demo-close").click()

    expect_result(page, "completed")
    expect(page.get_by_test_id("result-title")).to_have_text("缴费成功")
    expect(page.get_by_test_id("print-status")).to_contain_text("凭条已打印", timeout=10_000)
    assert tap.count == 3
    # The code paid the very order whose QR code was showing: the page sent it once, cancelled
    # nothing and started no other order; the channel closed the QR order …P1 and took the code as …P2.
    assert order_of(kiosk_url, shown_for)["state"] == "completed"
    assert not [c for c in calls if c.endswith("/cancel")], calls
    assert len([c for c in calls if c.startswith("POST") and c.endswith("/payments")]) == 1, calls  # tap 2 only
    assert len([c for c in calls if c.endswith(f"/{shown_for}/pay")]) == 2, calls  # qr, then the code
    trades = channel_orders(stack)
    assert trades[f"{shown_for}P1"]["state"] == "CLOSED" and trades[f"{shown_for}P1"]["paid_amount"] is None
    assert trades[f"{shown_for}P2"]["state"] == "SUCCESS" and trades[f"{shown_for}P2"]["kind"] != "qr"
    expect(page.get_by_test_id("pay-result")).to_have_attribute("data-state", "completed")


def test_a_payment_code_the_patient_must_confirm_on_the_phone_waits_for_the_confirmation(page, kiosk_url):
    identify(page, kiosk_url, "id-card", "self_pay", "郑*")
    page.get_by_test_id("tile-payment").click()
    page.get_by_test_id("pay-self-pay").click()
    page.get_by_test_id("pay-qr").click()
    qr_screen_order(page)
    page.get_by_test_id("demo-handle").click()
    page.get_by_test_id("demo-payment-code-confirm").click()  # the wallet asks for the password first
    page.get_by_test_id("demo-close").click()
    expect(page.get_by_test_id("pay-status")).to_have_text("请在手机上确认付款（输入支付密码）", timeout=10_000)
    expect(page.get_by_test_id("qr-prompt")).to_have_count(0)
    shoot(page, "pay-confirm-on-phone")
    expect_result(page, "completed")  # the patient confirmed; the next look finds it paid


def test_the_payment_screens_fit_every_kiosk_shape_with_their_main_controls_in_view(page, kiosk_url):
    identify(page, kiosk_url, "id-card", "self_pay", "郑*")
    page.get_by_test_id("tile-payment").click()
    expect(page.get_by_test_id("pay-bills")).to_be_visible(timeout=15_000)
    each_shape(page, "pay-bills", ["pay-self-pay", "pay-total"])
    page.get_by_test_id("pay-self-pay").click()
    expect(page.get_by_test_id("pay-split")).to_be_visible(timeout=15_000)
    each_shape(page, "pay-split", ["split-cash", "pay-qr"])
    page.get_by_test_id("pay-qr").click()
    order_no = qr_screen_order(page)
    each_shape(page, "pay-qr", ["qr-code", "qr-prompt", "pay-amount", "pay-cancel"])

    page.get_by_test_id("nav-back").click()  # 返回 on the QR screen cancels the payment
    expect(page.get_by_test_id("pay-bills")).to_be_visible(timeout=15_000)
    assert order_of(kiosk_url, order_no)["state"] == "closed"


def each_shape(page, name: str, in_view: list[str]) -> None:
    """At each kiosk shape: large targets, nothing spilling sideways, the main controls on screen
    without scrolling; in 大字模式 (which may scroll) still large targets and no sideways spill."""
    for width, height in SHAPES:
        # A touch anywhere is activity: the test's short idle warning must not cover the screen.
        page.get_by_test_id("patient-name").click()
        page.set_viewport_size({"width": width, "height": height})
        assert_targets_and_fit(page)
        for testid in in_view:
            box = page.get_by_test_id(testid).bounding_box()
            host = page.locator("#screen").bounding_box()
            assert box and box["y"] + box["height"] <= host["y"] + host["height"] + 1, f"{name} {width}x{height}: {testid}"
        shoot(page, f"{name}-{width}x{height}")
    page.set_viewport_size({"width": 1920, "height": 1080})
    expect(page.get_by_test_id("warn-dialog")).to_be_hidden()
    page.get_by_test_id("nav-large-text").click()
    assert_targets_and_fit(page)
    shoot(page, f"{name}-large-text")
    page.get_by_test_id("nav-large-text").click()


def test_g_the_invoice_is_reprinted_from_the_payment_history_and_a_printer_without_paper_says_where_to_go(
        page, stack, kiosk_url, problems):
    identify(page, kiosk_url, "id-card", "self_pay", "郑*")
    page.get_by_test_id("tile-payment").click()
    page.get_by_test_id("pay-self-pay").click()
    page.get_by_test_id("pay-qr").click()
    order_no = qr_screen_order(page)
    phone_pays(stack, order_no)
    expect_result(page, "completed")
    expect(page.get_by_test_id("print-status")).to_contain_text("凭条已打印", timeout=10_000)
    invoice_no = page.get_by_test_id("invoice-no").inner_text()

    # The A4 printer is out of paper: said plainly, with where to go; nothing lands in the tray.
    before = a4_sheets(kiosk_url)
    a4_paper(kiosk_url, "out")
    try:
        page.get_by_test_id("invoice-a4").click()
        status = page.get_by_test_id("invoice-status")
        expect(status).to_contain_text("A4打印机缺纸，请到人工窗口办理", timeout=15_000)
        expect(status).to_contain_text("人工窗口")
        shoot(page, "pay-result-invoice-no-paper")
        problems.forgive("status of 503")  # the agent's refusal, provoked here
        assert new_sheets(kiosk_url, before) == []

        # Later, from 缴费记录 (门诊缴费 → 缴费记录), with paper again: the same button reprints it.
        page.get_by_test_id("pay-done").click()
        page.get_by_test_id("tile-payment").click()
        page.get_by_test_id("pay-history").click()
        card = page.get_by_test_id(f"history-{order_no}")
        expect(card).to_contain_text(invoice_no, timeout=15_000)
        assert PERSONAS["self_pay"].name not in page.content()
        assert_targets_and_fit(page)
    finally:
        a4_paper(kiosk_url, "ok")
    page.get_by_test_id(f"history-invoice-{order_no}").click()
    expect(page.get_by_test_id(f"history-print-{order_no}")).to_contain_text("请在下方出纸口取走票据", timeout=15_000)
    shoot(page, "pay-history")
    sheets = new_sheets(kiosk_url, before)
    assert len(sheets) == 1, sheets
    assert invoice_no in pdf_text(sheets[0]["files"][0])
    with stack.container.uow() as uow:  # the service counted the reprint (补打)
        assert uow.session.get(PaymentOrder, order_no).details["reprints"] == {"invoice": 1}
    page.get_by_test_id("pay-history-back").click()
    expect(page.get_by_test_id("pay-bills")).to_be_visible(timeout=15_000)


def test_an_invoice_not_issued_yet_says_so_and_where_to_print_it_later(page, stack, kiosk_url, problems):
    fault = httpx.post(f"{stack.einvoice.url}/__sim__/faults", json={"operation": "einvoice.issue", "kind": "error"},
                       timeout=10)
    assert fault.status_code < 300, fault.text
    try:
        identify(page, kiosk_url, "id-card", "self_pay", "郑*")
        page.get_by_test_id("tile-payment").click()
        page.get_by_test_id("pay-self-pay").click()
        page.get_by_test_id("pay-qr").click()
        order_no = qr_screen_order(page)
        phone_pays(stack, order_no)
        expect_result(page, "completed")  # the bill is paid; only its e-invoice is late
        expect(page.get_by_test_id("invoice-no")).to_contain_text("正在开具")
        before = a4_sheets(kiosk_url)
        page.get_by_test_id("invoice-a4").click()
        status = page.get_by_test_id("invoice-status")
        expect(status).to_contain_text("电子票据尚未开具", timeout=15_000)
        expect(status).to_contain_text("可稍后在“缴费记录”中打印")
        shoot(page, "pay-result-invoice-not-yet")
        problems.forgive("status of 409")
        assert new_sheets(kiosk_url, before) == []
    finally:
        httpx.delete(f"{stack.einvoice.url}/__sim__/faults", timeout=10).raise_for_status()


def pos_declines(kiosk_url: str, decline: bool, reason: str | None = None) -> None:
    """The demo panel's switch for the kiosk's (simulated) bank POS."""
    response = httpx.post(f"{kiosk_url}/local/demo/pos", json={"decline": decline, "reason": reason}, timeout=10)
    assert response.status_code == 200, response.text


def test_h_a_patient_pays_by_bank_card_on_the_kiosk_pos_in_three_taps(page, stack, kiosk_url):
    identify(page, kiosk_url, "id-card", "self_pay", "郑*")
    tap = Taps(page)
    tap("tile-payment")
    expect(page.get_by_test_id("pay-bills")).to_be_visible(timeout=15_000)
    total = yuan(page.get_by_test_id("pay-total").inner_text())
    tap("pay-self-pay")
    expect(page.get_by_test_id("pay-split")).to_be_visible(timeout=15_000)
    tap("pay-bank-card")
    expect_result(page, "completed")
    expect(page.get_by_test_id("result-title")).to_have_text("缴费成功")
    expect(page.get_by_test_id("print-status")).to_contain_text("凭条已打印", timeout=10_000)
    shoot(page, "pay-result-bank-card")
    assert tap.count == 3, tap.count
    orders = [o for o in channel_orders(stack).values() if o.get("amount") == f"{total:.2f}"]
    with stack.container.uow() as uow:
        from sqlalchemy import select

        from medkiosk.store.models import PaymentOrder

        paid = uow.session.scalars(select(PaymentOrder).where(PaymentOrder.pay_method == "bank_card")).all()
    assert [o.state for o in paid] == ["completed"] and paid[0].paid_amount == total
    assert f"{paid[0].order_no}P1" not in {o["out_trade_no"] for o in orders}  # never at the QR channel


def test_i_a_declined_bank_card_says_why_charges_nothing_and_qr_still_works(page, stack, kiosk_url):
    pos_declines(kiosk_url, True, "交易被拒绝：余额不足")
    try:
        identify(page, kiosk_url, "id-card", "self_pay", "郑*")
        page.get_by_test_id("tile-payment").click()
        expect(page.get_by_test_id("pay-bills")).to_be_visible(timeout=15_000)
        page.get_by_test_id("pay-self-pay").click()
        expect(page.get_by_test_id("pay-split")).to_be_visible(timeout=15_000)
        page.get_by_test_id("pay-bank-card").click()
        result = expect_result(page, "closed")
        expect(result).to_contain_text("余额不足")
        expect(result).to_contain_text("未扣款")
        shoot(page, "pay-result-bank-card-declined")
    finally:
        pos_declines(kiosk_url, False)
