"""The staff pages and JSON API over HTTP: login, cookies, CSRF, roles, logout, expiry, dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.services import audit
from medkiosk.services.clock import FrozenClock
from medkiosk.services.events import record_event
from medkiosk.services.staff import LOGIN_REFUSED_MESSAGE, StaffService
from medkiosk.settings import Settings
from medkiosk.store.models import Device, DeviceState, Event, StaffUser

from staff_client import PASSWORD, login

COOKIE = "medkiosk_staff"


class Site:
    """An app on its own database and frozen clock, with helpers to make people and events."""

    def __init__(self, url: str, **settings) -> None:
        self.clock = FrozenClock()
        self.container = build_container(Settings(database_url=url, **settings), clock=self.clock)
        self.app = create_app(container=self.container)
        self.staff = StaffService.from_container(self.container)

    def person(self, username: str, *roles: str) -> None:
        self.staff.create_user(username, "", list(roles), PASSWORD)

    def client(self) -> TestClient:
        return TestClient(self.app)

    def event(self, kind: str = "staff_call", message: str = "门诊一楼 A 区 的患者呼叫工作人员", **details) -> int:
        with self.container.uow() as uow:
            event = record_event(uow, self.clock, kind, message, severity="warning", device_id="K-001",
                                 details=details)
            uow.commit()
            return event.id

    def read_event(self, event_id: int) -> Event:
        with self.container.uow() as uow:
            event = uow.session.get(Event, event_id)
            uow.session.expunge(event)
            return event


@pytest.fixture
def site(sqlite_url):
    site = Site(sqlite_url)
    yield site
    site.container.close()


# --- logging in ---------------------------------------------------------------------------------------
def test_login_sets_an_httponly_samesite_strict_cookie(site):
    site.person("liwei", "engineer")
    with site.client() as client:
        response = client.post("/staff/login", data={"username": "liwei", "password": PASSWORD},
                               follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/staff/"
        cookie = response.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
        assert cookie.startswith(f"{COOKIE}=")
        assert "httponly" in attributes and attributes["samesite"].lower() == "samesite=strict"
        assert attributes["path"] == "Path=/" and "secure" not in attributes  # demo runs on plain http
        assert client.get("/staff/").status_code == 200


def test_outside_the_demo_the_cookie_is_secure_and_host_only(sqlite_url):
    site = Site(sqlite_url, environment="development")
    try:
        site.person("liwei", "engineer")
        with site.client() as client:
            response = client.post("/staff/login", data={"username": "liwei", "password": PASSWORD},
                                   follow_redirects=False)
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"__Host-{COOKIE}=") and "Secure" in cookie and "Domain" not in cookie
    finally:
        site.container.close()


def test_wrong_password_and_unknown_user_get_the_same_answer(site):
    site.person("liwei", "engineer")
    with site.client() as client:
        wrong = client.post("/staff/login", data={"username": "liwei", "password": "Wrong-Password-9"})
        unknown = client.post("/staff/login", data={"username": "nobody", "password": "Wrong-Password-9"})
    assert wrong.status_code == unknown.status_code == 401
    assert LOGIN_REFUSED_MESSAGE in wrong.text
    assert wrong.text.replace("liwei", "nobody") == unknown.text
    assert "set-cookie" not in wrong.headers and "set-cookie" not in unknown.headers


def test_five_failures_lock_the_account_even_against_the_right_password(site):
    site.person("liwei", "engineer")
    with site.client() as client:
        for _ in range(5):
            assert client.post("/staff/login", data={"username": "liwei", "password": "Wrong-9-Password"}
                               ).status_code == 401
        locked = client.post("/staff/login", data={"username": "liwei", "password": PASSWORD})
        assert locked.status_code == 401 and LOGIN_REFUSED_MESSAGE in locked.text
        site.clock.advance(minutes=15, seconds=1)
        login(client, "liwei")


def test_login_only_redirects_to_staff_pages(site):
    site.person("liwei", "engineer")
    with site.client() as client:
        for target, expected in [("/staff/audit", "/staff/audit"), ("https://evil.example/", "/staff/"),
                                 ("//evil.example/staff", "/staff/")]:
            response = client.post("/staff/login", data={"username": "liwei", "password": PASSWORD, "next": target},
                                   follow_redirects=False)
            assert response.headers["location"] == expected


def test_a_login_posted_from_another_site_is_refused(site):
    site.person("liwei", "engineer")
    with site.client() as client:
        response = client.post("/staff/login", data={"username": "liwei", "password": PASSWORD},
                               headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert response.status_code == 403 and "set-cookie" not in response.headers


# --- without a session ----------------------------------------------------------------------------------
def test_pages_send_strangers_to_the_login_page_and_the_api_answers_401(site):
    with site.client() as client:
        page = client.get("/staff/users", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/staff/login?next=%2Fstaff%2Fusers"
        api = client.get("/api/staff/events?kind=staff_call&unhandled=1")
        assert api.status_code == 401 and api.json()["message"] == "请先登录"
        assert client.post(f"/staff/events/{site.event()}/handle", follow_redirects=False).status_code == 303
        assert "工作人员登录" in client.get("/staff/login").text


# --- CSRF ---------------------------------------------------------------------------------------------------
def test_handling_an_event_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(site):
    site.person("liwei", "engineer")
    event_id = site.event()
    with site.client() as client:
        token = login(client, "liwei")
        attempts = [
            client.post(f"/staff/events/{event_id}/handle"),
            client.post(f"/staff/events/{event_id}/handle", data={"csrf_token": "forged"}),
            client.post(f"/staff/events/{event_id}/handle", data={"csrf_token": token[:-1]}),
            client.post(f"/api/staff/events/{event_id}/handle", headers={"X-CSRF-Token": "forged"}),
            client.post(f"/staff/events/{event_id}/handle", data={"csrf_token": token},
                        headers={"Origin": "https://evil.example"}),
        ]
    for response in attempts:
        assert response.status_code == 403
    assert "安全令牌" in attempts[0].text and "<html" in attempts[0].text  # a page for the browser
    assert "安全令牌" in attempts[3].json()["message"]  # JSON for the API
    assert "请求来源" in attempts[4].text
    event = site.read_event(event_id)
    assert event.handled_at is None and event.handled_by is None
    with site.container.uow() as uow:
        assert "event.handled" not in [entry.action for entry in audit.recent(uow)]


def test_with_the_right_csrf_token_an_event_is_handled_and_audited(site):
    site.person("liwei", "engineer")
    by_form, by_header = site.event(), site.event()
    with site.client() as client:
        token = login(client, "liwei")
        response = client.post(f"/staff/events/{by_form}/handle", data={"csrf_token": token},
                               headers={"Origin": "http://testserver"}, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == f"/staff/?handled={by_form}"
        response = client.post(f"/api/staff/events/{by_header}/handle", headers={"X-CSRF-Token": token})
        assert response.status_code == 200 and response.json()["event"]["handled_by"] == "liwei"
        assert client.post("/api/staff/events/999/handle", headers={"X-CSRF-Token": token}).status_code == 404
    for event_id in (by_form, by_header):
        event = site.read_event(event_id)
        assert event.handled_by == "liwei" and event.handled_at is not None
    with site.container.uow() as uow:
        handled = [entry for entry in audit.recent(uow) if entry.action == "event.handled"]
        assert {entry.target for entry in handled} == {f"event:{by_form}", f"event:{by_header}"}
        assert audit.verify_chain(uow) == (True, None)


# --- roles --------------------------------------------------------------------------------------------------
def test_an_engineer_cannot_create_users(site):
    site.person("liwei", "engineer")
    with site.client() as client:
        token = login(client, "liwei")
        assert client.get("/staff/users").status_code == 403
        response = client.post("/staff/users", data={"csrf_token": token, "username": "intruder",
                                                     "roles": ["it_admin"], "password": PASSWORD})
        assert response.status_code == 403 and "权限" in response.text
        assert client.get("/staff/audit").status_code == 403
    with site.container.uow() as uow:
        assert uow.session.scalars(select(StaffUser).where(StaffUser.username == "intruder")).first() is None


def test_an_it_admin_creates_users_with_roles(site):
    site.person("admin", "it_admin")
    with site.client() as client:
        token = login(client, "admin")
        response = client.post("/staff/users", data={"csrf_token": token, "username": "wangfang",
                                                     "display_name": "王芳", "roles": ["finance", "auditor"],
                                                     "password": PASSWORD}, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/staff/users?created=wangfang"
        page = client.get(response.headers["location"])
        assert "wangfang" in page.text and "王芳" in page.text and "已创建账号" in page.text
        weak = client.post("/staff/users", data={"csrf_token": token, "username": "weakling",
                                                  "roles": ["engineer"], "password": "short"})
        assert weak.status_code == 400 and "至少需要 10 个字符" in weak.text
        duplicate = client.post("/staff/users", data={"csrf_token": token, "username": "wangfang",
                                                      "roles": ["engineer"], "password": PASSWORD})
        assert duplicate.status_code == 409 and "已存在" in duplicate.text
    with site.client() as newcomer:
        login(newcomer, "wangfang")
        me = newcomer.get("/api/staff/me").json()
        # The union of both roles (services/staff.py ROLE_PERMISSIONS, docs/staff.md): the finance office's
        # payments and reconciliation, the auditor's audit trail (reconciliation counted once).
        assert me["roles"] == ["finance", "auditor"] and me["permissions"] == [
            "read_audit", "resolve_discrepancies", "view_payments", "view_reconciliation"]


def test_the_audit_page_is_for_auditors_and_it_admins_and_verifies_the_chain(site):
    site.person("shenji", "auditor")
    site.person("admin", "it_admin")
    site.person("liwei", "engineer")
    with site.client() as client:
        login(client, "shenji")
        page = client.get("/staff/audit?verify=1")
        assert page.status_code == 200 and "完整性校验通过" in page.text and "创建账号" in page.text
        assert client.get("/api/staff/events").status_code == 403
        assert client.get("/staff/").status_code == 200  # a dashboard without devices or events
    with site.client() as client:
        login(client, "admin")
        assert client.get("/staff/audit").status_code == 200
    with site.container.uow() as uow:
        first = audit.recent(uow)[-1]
        uow.session.execute(text("UPDATE audit_log SET actor = 'x' WHERE id = :id"), {"id": first.id})
        uow.commit()
    with site.client() as client:
        login(client, "shenji")
        assert "完整性校验失败" in client.get("/staff/audit?verify=1").text


# --- logging out and expiry ----------------------------------------------------------------------------------
def test_logout_revokes_the_session(site):
    site.person("liwei", "engineer")
    with site.client() as client:
        token = login(client, "liwei")
        stolen = client.cookies.get(COOKIE)
        response = client.post("/staff/logout", data={"csrf_token": token}, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/staff/login"
    with site.client() as replay:
        replay.cookies.set(COOKIE, stolen)
        assert replay.get("/api/staff/me").status_code == 401
        assert replay.get("/staff/", follow_redirects=False).headers["location"].startswith("/staff/login")


def test_a_session_expires_after_staff_session_hours(site):
    site.person("liwei", "engineer")
    with site.client() as client:
        login(client, "liwei")
        site.clock.advance(hours=site.container.settings.staff_session_hours, seconds=-1)
        assert client.get("/api/staff/me").status_code == 200
        site.clock.advance(seconds=1)
        assert client.get("/api/staff/me").status_code == 401


# --- the dashboard and the events API ------------------------------------------------------------------------
def _devices(site: Site) -> None:
    now = site.clock.now()
    with site.container.uow() as uow:
        for device_id, name, seen in [("K-001", "门诊一楼 1 号机", now - timedelta(seconds=5)),
                                      ("K-002", "门诊二楼 1 号机", now - timedelta(seconds=16)),
                                      ("K-003", "住院部 3 病区", None)]:
            uow.session.add(Device(id=device_id, terminal_type="outpatient", name=name, location=name,
                                   public_key="unused", enabled=True, preview=False, enrolled_at=now))
            uow.session.flush()
            if seen:
                uow.session.add(DeviceState(device_id=device_id, last_seen_at=seen, software_version="1.0.0",
                                            screen="home", peripherals={
                                                "receipt_printer": {"state": "warning", "detail": "纸将尽"}}))
        uow.commit()


def test_the_dashboard_shows_devices_online_and_offline_and_highlights_calls(site):
    site.person("liwei", "engineer")
    _devices(site)
    site.event("identify_refused", "身份证识别未通过")
    site.clock.advance(seconds=1)
    call = site.event(reason="不会操作", screen="payment")
    with site.client() as client:
        login(client, "liwei")
        page = client.get("/staff/").text
        devices = client.get("/api/staff/devices").json()["devices"]
    assert {d["id"]: d["online"] for d in devices} == {"K-001": True, "K-002": False, "K-003": False}
    assert "在线 1 / 共 3 台" in page and "凭条打印机：注意" in page
    assert page.index("呼叫工作人员") < page.index("身份识别未通过")  # newest first
    assert 'class="call' in page and f"/staff/events/{call}/handle" in page and "不会操作" in page


def test_the_events_api_filters_by_kind_and_open_ones(site):
    site.person("liwei", "engineer")
    first = site.event()
    site.clock.advance(seconds=1)
    refused = site.event("identify_refused", "身份证识别未通过")
    site.clock.advance(seconds=1)
    second = site.event()
    with site.client() as client:
        token = login(client, "liwei")
        client.post(f"/api/staff/events/{first}/handle", headers={"X-CSRF-Token": token})
        every = client.get("/api/staff/events").json()["events"]
        calls = client.get("/api/staff/events?kind=staff_call").json()["events"]
        open_calls = client.get("/api/staff/events?kind=staff_call&unhandled=1").json()["events"]
    assert [e["id"] for e in every] == [second, refused, first]
    assert [e["id"] for e in calls] == [second, first] and all(e["staff_call"] for e in calls)
    assert [e["id"] for e in open_calls] == [second]


def test_staff_pages_never_show_an_id_number_or_phone_even_if_an_event_holds_one(site):
    site.person("liwei", "engineer")
    site.event("identify_refused", "110101199003071234 身份证不在有效期内", phone="13912345678")
    with site.client() as client:
        login(client, "liwei")
        page = client.get("/staff/").text
        api = client.get("/api/staff/events").text
    for text in (page, api):
        assert "110101199003071234" not in text and "13912345678" not in text
        assert "1101**********1234" in text and "139****5678" in text


def test_staff_pages_forbid_framing_and_caching_and_load_only_our_own_css(site):
    with site.client() as client:
        page = client.get("/staff/login")
        css = client.get("/static/staff/staff.css")
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert css.status_code == 200 and "http" not in css.text
    assert 'href="/static/staff/staff.css"' in page.text and "cdn" not in page.text.lower()


# --- the same flow on both databases ---------------------------------------------------------------------------
def test_login_handle_and_logout_on_both_databases(database_url):
    site = Site(database_url)
    try:
        site.person("liwei", "engineer")
        event_id = site.event()
        with site.client() as client:
            token = login(client, "liwei")
            assert client.post(f"/staff/events/{event_id}/handle", data={"csrf_token": "nope"}).status_code == 403
            assert client.post(f"/staff/events/{event_id}/handle", data={"csrf_token": token},
                               follow_redirects=False).status_code == 303
            assert client.post("/staff/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
            assert client.get("/api/staff/me").status_code == 401
        assert site.read_event(event_id).handled_by == "liwei"
        with site.container.uow() as uow:
            actions = [entry.action for entry in reversed(audit.recent(uow))]
            assert actions == ["staff.user_created", "staff.login", "event.handled", "staff.logout"]
            assert audit.verify_chain(uow) == (True, None)
    finally:
        site.container.close()
