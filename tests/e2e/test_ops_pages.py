"""The operations pages in Chromium: the dashboard shows a kiosk running out of paper and one going
offline; an engineer signs off an inspection round. A stack of its own: two outpatient kiosks that
beat every second, and a dead-man's switch of 5 s + 1 s so offline shows within seconds."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from medkiosk.settings import TerminalType

pytestmark = pytest.mark.browser

PASSWORD = "Ward-Round-0800"


@pytest.fixture(scope="module")
def ops_stack(tmp_path_factory):
    from medkiosk.demo import DemoDevice, start_stack
    from medkiosk.services.staff import StaffService
    from medkiosk.settings import Settings

    tmp = tmp_path_factory.mktemp("ops")
    devices = [DemoDevice("K001", TerminalType.OUTPATIENT, "门诊一楼 1 号机", "本部 / 门诊楼 / 1F / 挂号收费大厅"),
               DemoDevice("K002", TerminalType.OUTPATIENT, "门诊二楼 2 号机", "本部 / 门诊楼 / 2F / 缴费区")]
    stack = start_stack(Settings(database_url=f"sqlite:///{tmp}/medkiosk.db", var_dir=tmp, ops_heartbeat_grace_seconds=1,
                                 ops_probe_seconds=0),
                        devices=devices, agent_overrides={"heartbeat_seconds": 1})
    StaffService.from_container(stack.container).create_user("liwei", "李伟", ["engineer"], PASSWORD)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def staff_page(context, ops_stack):
    page = context.new_page()
    page.goto(f"{ops_stack.service.url}/staff/login")
    page.fill("input[name=username]", "liwei")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/staff/**")
    yield page
    page.close()


def test_the_dashboard_shows_a_kiosk_out_of_paper_and_one_going_offline(staff_page, ops_stack):
    page = staff_page
    page.goto(f"{ops_stack.service.url}/staff/ops/")
    expect(page.locator('[data-device="K001"]')).to_have_attribute("data-state", "ok", timeout=15_000)
    expect(page.locator('[data-device="K002"]')).to_have_attribute("data-state", "ok", timeout=15_000)

    answer = httpx.post(f"{ops_stack.agents['K001'].url}/local/demo/peripheral",
                        json={"name": "receipt_printer", "state": "fault", "paper": "out"})
    assert answer.status_code == 200, answer.text
    kiosk = page.locator('[data-device="K001"]')
    expect(kiosk).to_have_attribute("data-state", "fault", timeout=15_000)  # the page refreshes every 5 s
    expect(kiosk.locator('[data-peripheral="receipt_printer"]')).to_contain_text("缺纸")

    ops_stack.agents["K002"].stop()  # the kiosk's agent stops: no more heartbeats
    quiet = page.locator('[data-device="K002"]')
    expect(quiet).to_have_attribute("data-state", "offline", timeout=30_000)
    expect(quiet).to_contain_text("离线")
    expect(page.locator("#offline-count")).to_have_text("1")
    page.screenshot(path="/tmp/medkiosk-shots/ops-dashboard.png", full_page=True)


def test_an_engineer_signs_off_an_inspection_round(staff_page, ops_stack):
    page = staff_page
    page.goto(f"{ops_stack.service.url}/staff/ops/inspections")
    page.get_by_role("button", name="立即开始一轮巡检").click()
    page.wait_for_url("**/staff/ops/inspections/*")
    for row in page.locator("tr[data-device]").all():
        device = row.get_attribute("data-device")
        target = page.locator(f'tr[data-device="{device}"]')
        if target.locator("[data-finding]").count():
            target.locator("input[name=note]").fill("已到现场处理")
            target.get_by_role("button", name="有问题").click()
        else:
            target.get_by_role("button", name="正常").click()
        expect(page.locator(f'tr[data-device="{device}"]')).not_to_have_attribute("data-verdict", "")
    expect(page.locator("h1")).to_contain_text("本轮已完成")
    page.screenshot(path="/tmp/medkiosk-shots/ops-inspection.png", full_page=True)
