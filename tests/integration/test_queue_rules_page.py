"""The IT centre's queue-rules page (/staff/queues/rules): a form per department, CSRF-checked, for the
manage_queues permission only, every change in the audit trail with its values before and after."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.services import audit
from medkiosk.services.staff import StaffService
from medkiosk.settings import Settings

from staff_client import PASSWORD, login

FORM = {"name": "心血管内科", "zone": "门诊楼2层A区", "am_closes": "11:30", "pm_closes": "17:00",
        "slot_minutes": "20", "late_grace_minutes": "10", "priority_age": "75", "returning_after": "1",
        "missed_after": "3", "max_missed": "2", "result_seconds": "6", "priority_flags": ["aged", "veteran"]}


@pytest.fixture
def site(sqlite_url):
    # No HIS runs here: the page names departments from its own rules when the HIS does not answer.
    container = build_container(Settings(database_url=sqlite_url, recovery_seconds=0, upstream_timeout_seconds=1))
    staff = StaffService.from_container(container)
    staff.create_user("it.wang", "王工", ["it_admin"], PASSWORD)
    staff.create_user("dr.li", "李医生", ["doctor"], PASSWORD)
    staff.create_user("eng.zhao", "", ["engineer"], PASSWORD)
    with TestClient(create_app(container=container)) as client:
        yield client, container
    container.close()


def test_the_it_centre_changes_a_departments_rules_on_the_page_and_the_change_is_audited(site):
    client, container = site
    token = login(client, "it.wang")
    page = client.get("/staff/queues/rules?department=0101")
    assert page.status_code == 200 and 'data-testid="rules-form"' in page.text
    assert "排队规则" in page.text and 'value="12:00"' in page.text  # the defaults until changed

    saved = client.post("/staff/queues/rules/0101", data={**FORM, "csrf_token": token}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/staff/queues/rules?department=0101&saved=1"
    rules = container.queues.rules("0101")
    assert (rules.am_closes, rules.pm_closes, rules.slot_minutes, rules.result_seconds) == (
        dt.time(11, 30), dt.time(17), 20, 6)
    assert {f.value for f in rules.priority_flags} == {"aged", "veteran"} and not rules.missed_auto_requeue
    shown = client.get(saved.headers["location"])
    assert "已保存，规则立即生效" in shown.text and 'value="11:30"' in shown.text and "门诊楼2层A区" in shown.text
    assert container.queues.departments()[0]["zone"] == "门诊楼2层A区"

    with container.uow() as uow:
        entry = next(e for e in audit.recent(uow) if e.action == "queue.rules_changed")
    assert entry.actor == "it.wang" and entry.target == "queue_department:0101"
    assert entry.details["changed"]["am_closes"] == {"from": "12:00", "to": "11:30"}
    assert entry.details["changed"]["priority_flags"] == {"from": ["aged", "disabled", "veteran"],
                                                          "to": ["aged", "veteran"]}
    assert "returning_after" in entry.details["changed"] and "missed_after" not in entry.details["changed"]
    assert "修改排队规则" in client.get("/staff/audit").text

    # Saving the same values again changes nothing, and adds nothing to the trail.
    client.post("/staff/queues/rules/0101", data={**FORM, "csrf_token": token}, follow_redirects=False)
    with container.uow() as uow:
        assert sum(e.action == "queue.rules_changed" for e in audit.recent(uow)) == 1


def test_wrong_values_are_explained_and_change_nothing(site):
    client, container = site
    token = login(client, "it.wang")
    bad = client.post("/staff/queues/rules/0101", data={**FORM, "result_seconds": "60", "csrf_token": token})
    assert bad.status_code == 422 and "规则不正确" in bad.text and "报到结果显示秒数" in bad.text
    assert 'value="60"' in bad.text  # the form comes back as typed, to correct
    not_a_number = client.post("/staff/queues/rules/0101", data={**FORM, "slot_minutes": "半小时",
                                                                 "csrf_token": token})
    assert not_a_number.status_code == 422 and "时段长度（分钟）须为整数" in not_a_number.text
    bad_time = client.post("/staff/queues/rules/0101", data={**FORM, "am_closes": "25:00", "csrf_token": token})
    assert bad_time.status_code == 422 and "规则不正确" in bad_time.text
    assert container.queues.departments() == []


def test_only_the_it_centre_may_and_only_with_the_csrf_token(site):
    client, container = site
    assert client.get("/staff/queues/rules", follow_redirects=False).headers["location"].startswith("/staff/login")
    token = login(client, "it.wang")
    forged = client.post("/staff/queues/rules/0101", data=FORM)  # no token
    assert forged.status_code == 403
    wrong = client.post("/staff/queues/rules/0101", data={**FORM, "csrf_token": "x" * 40})
    assert wrong.status_code == 403
    cross_site = client.post("/staff/queues/rules/0101", data={**FORM, "csrf_token": token},
                             headers={"Origin": "http://evil.example"})
    assert cross_site.status_code == 403
    assert container.queues.departments() == []
    assert "/staff/queues/rules" in client.get("/staff/").text  # in the IT centre's navigation
    client.post("/staff/logout", data={"csrf_token": token})

    for person in ("dr.li", "eng.zhao"):
        token = login(client, person)
        assert client.get("/staff/queues/rules").status_code == 403
        refused = client.post("/staff/queues/rules/0101", data={**FORM, "csrf_token": token})
        assert refused.status_code == 403
        assert "/staff/queues/rules" not in client.get("/staff/password").text
        client.post("/staff/logout", data={"csrf_token": token})
    assert container.queues.departments() == []
