"""End-to-end fixtures: the whole demo stack once per module, Debian's Chromium, a fresh page per test.

The stack is what ``medkiosk demo`` runs (simulators, the service on SQLite, an outpatient kiosk
K001 and a ward terminal W001 with simulated devices). The browser is the machine's Chromium:
no browser is ever downloaded. Screenshots go to /tmp/medkiosk-shots/ for a human to look at.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kiosk_helpers import PageProblems, close_pages, leave_no_session, session_of

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-gpu"]
LANDSCAPE = {"width": 1920, "height": 1080}


def _start_stack(tmp: Path):
    """start_stack, retried: it may be mid-change by another engineer when the suite starts."""
    last: BaseException | None = None
    for attempt in range(4):
        try:
            from medkiosk.demo import start_stack
            from medkiosk.settings import Settings

            return start_stack(Settings(database_url=f"sqlite:///{tmp}/medkiosk.db", var_dir=tmp,
                                        session_idle_seconds=30, session_warn_seconds=20))
        except Exception as exc:  # noqa: BLE001 - report the last failure if every attempt fails
            last = exc
            if attempt < 3:
                time.sleep(120)
    raise RuntimeError(f"the demo stack did not start: {last!r}") from last


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = _start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def kiosk_url(stack) -> str:
    return stack.agents["K001"].url


@pytest.fixture(scope="module")
def ward_url(stack) -> str:
    return stack.agents["W001"].url


@pytest.fixture(scope="module")
def browser():
    # Module scope, not session: while sync Playwright runs, its event loop counts as running in
    # this thread, and later tests calling asyncio.run() would fail.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport=LANDSCAPE, locale="zh-CN", timezone_id="Asia/Shanghai")
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context, problems, stack):
    """A fresh page per test; afterwards no session may be left on either terminal."""
    page = context.new_page()
    problems.watch(page)
    yield page
    for p in context.pages:
        leave_no_session(p)
    for device_id in stack.agents:
        assert session_of(stack.agents[device_id].url) is None, f"{device_id} still has a session"
    assert not problems.items, problems.items
    close_pages(context)

