"""Helpers for the kiosk page's browser tests: what a patient (or the demo panel) does, and what we check."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect

SHOTS = Path("/tmp/medkiosk-shots")
POLL_GONE_SECONDS = 1.2  # the agent notices a dropped long-poll within ~1 s (OutcomeMailbox.take)


class PageProblems:
    """Console errors and uncaught exceptions: a CSP violation shows up here."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def watch(self, page) -> None:
        page.on("console", lambda m: self.items.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.items.append(f"page error: {e}"))

    def forgive(self, fragment: str) -> None:
        """An error the test provoked on purpose (e.g. the 409 of a faulty reader)."""
        self.items = [item for item in self.items if fragment not in item]


def leave_no_session(page) -> None:
    """Log out through the page, as a patient would (退出), if someone is still identified."""
    if page.is_closed():
        return
    if page.get_by_test_id("demo-close").is_visible():
        page.get_by_test_id("demo-close").click()
    if page.get_by_test_id("warn-dialog").is_visible():
        page.get_by_test_id("warn-exit").click()
    elif page.get_by_test_id("patient-bar").is_visible():
        page.get_by_test_id("patient-logout").click()
    elif page.get_by_test_id("start").is_visible():
        return
    elif page.get_by_test_id("nav-home").is_visible() and \
            page.get_by_test_id("nav-home").get_attribute("aria-disabled") != "true":
        # Not identified: going home abandons a half-finished first visit and frees the readers.
        if page.get_by_test_id("dialog-ok").is_visible():
            page.get_by_test_id("dialog-ok").click()
        page.get_by_test_id("nav-home").click()
    page.get_by_test_id("start").wait_for(timeout=10_000)


def session_of(agent_url: str):
    """What the service says about the terminal's session, asked through its agent."""
    response = httpx.get(f"{agent_url}/local/api/kiosk/session", timeout=10)
    response.raise_for_status()
    return response.json()["session"]


def shoot(page, name: str) -> None:
    """Screenshot a screen for a human to look at, after checking it shows no programming junk."""
    text = page.evaluate("document.body.innerText")
    for junk in ("null", "undefined", "NaN", "[object"):
        assert junk not in text, f"{name}: the screen shows {junk!r}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def open_kiosk(page, url: str) -> None:
    page.goto(url + "/")
    expect(page.get_by_test_id("start")).to_be_visible(timeout=15_000)


def present(page, medium: str, persona: str) -> None:
    """The demo panel puts a persona's card on a reader (or their code under the scanner)."""
    page.get_by_test_id("demo-handle").click()
    page.get_by_test_id(f"demo-{medium}-{persona}").click()
    expect(page.get_by_test_id("demo-status")).to_contain_text("已发送")
    page.get_by_test_id("demo-close").click()
    # Closed, the drawer holds no persona names any more.
    expect(page.get_by_test_id("demo-personas")).to_have_count(0)


def close_pages(context) -> None:
    """Close the pages and let the agents notice their long-polls are gone.

    The agent checks a waiting poll's connection about once a second; until it has, an outcome
    arriving for the next test could be handed to the closed page's poll and be lost.
    """
    for p in context.pages:
        p.close()
    time.sleep(POLL_GONE_SECONDS)


def identify(page, url: str, medium: str, persona: str, masked_name: str) -> None:
    """Open the kiosk and let a persona present a medium until the menu greets them."""
    open_kiosk(page, url)
    present(page, medium, persona)
    expect(page.get_by_test_id("patient-name")).to_have_text(masked_name, timeout=15_000)


def printed(agent_url: str, job_prefix: str = "") -> list[dict]:
    """What the kiosk's (simulated) printers printed, newest first."""
    response = httpx.get(f"{agent_url}/local/demo/printed", timeout=10)
    response.raise_for_status()
    return [p for p in response.json() if p["job_id"].startswith(job_prefix)]


def assert_targets_and_fit(page) -> None:
    """Patient controls are at least 64×64 px and nothing spills sideways."""
    small = page.evaluate("""[...document.querySelectorAll('button')]
        .filter(b => !b.closest('#demo') && b.offsetParent !== null)
        .map(b => [b.textContent.trim(), b.getBoundingClientRect()])
        .filter(([, r]) => r.height < 64 || r.width < 64)
        .map(([t, r]) => `${t} ${Math.round(r.width)}x${Math.round(r.height)}`)""")
    assert not small, small
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


class Taps:
    """The patient's taps on the screen, counted (each a Playwright locator clicked once)."""

    def __init__(self, page) -> None:
        self.page = page
        self.count = 0

    def __call__(self, locator) -> None:
        locator.click()
        self.count += 1


@contextlib.contextmanager
def account_balance(stack, persona: str, balance: str):
    """The persona's personal account holds ``balance`` on the insurance simulator for a while (cash left to pay)."""
    from medkiosk.simulators.personas import PERSONAS

    psn_no = PERSONAS[persona].insurance.psn_no
    people = httpx.get(f"{stack.insurance.url}/__sim__/state/people", timeout=10).json()
    person = next(p for p in (people.values() if isinstance(people, dict) else people) if p["psn_no"] == psn_no)

    def put(amount: str) -> None:
        response = httpx.post(f"{stack.insurance.url}/__sim__/data/people", json=[{**person, "balance": amount}],
                              timeout=10)
        assert response.status_code == 200, response.text

    put(balance)
    try:
        yield
    finally:
        put(person["balance"])
