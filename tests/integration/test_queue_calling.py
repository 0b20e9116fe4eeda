"""The doctor's side of the queue over HTTP: the 医生 role, the calling API and page, queue rules, the board."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.services.queues import NewEntry
from medkiosk.services.staff import StaffService
from medkiosk.settings import Settings
from medkiosk.store.models import Patient

from staff_client import PASSWORD, login


@pytest.fixture
def site(sqlite_url):
    container = build_container(Settings(database_url=sqlite_url, recovery_seconds=0))
    staff = StaffService.from_container(container)
    staff.create_user("dr.li", "李医生", ["doctor"], PASSWORD)
    staff.create_user("it.wang", "", ["it_admin"], PASSWORD)
    staff.create_user("eng.zhao", "", ["engineer"], PASSWORD)
    queues = container.queues
    now = container.clock.now()
    with container.uow() as uow:
        uow.session.add(Patient(id=1, his_patient_id="P1", name_enc="x", created_at=now, updated_at=now))
        uow.commit()
    for number in (1, 2, 3):
        queues.join(NewEntry(source="registration", reference=f"R{number}", department_code="0101",
                             department_name="心血管内科", queue_date=queues.today(), half_day="am", patient_row_id=1,
                             his_patient_id="P1", masked_name=f"王*{number}", queue_no=str(number)))
    with TestClient(create_app(container=container)) as client:
        yield client, container
    container.close()


def test_a_doctor_calls_next_recalls_and_marks_done_through_the_api(site):
    client, _container = site
    csrf = {"X-CSRF-Token": login(client, "dr.li")}
    view = client.get("/api/queues/0101").json()
    assert [w["queue_no"] for w in view["waiting"]] == ["1", "2", "3"]
    call = client.post("/api/queues/0101/call-next", json={"room": "2"}, headers=csrf).json()["call"]
    assert call["text"] == "请 1 号 王*1 到 2 诊室就诊"
    assert client.post(f"/api/queues/entries/{call['entry_id']}/recall", json={}, headers=csrf).json()["call"][
        "kind"] == "recall"
    assert client.post(f"/api/queues/entries/{call['entry_id']}/done", headers=csrf).json()["entry"]["state"] == "done"
    refused = client.post(f"/api/queues/entries/{call['entry_id']}/missed", headers=csrf)
    assert refused.status_code == 409 and "已就诊" in refused.json()["message"]
    # Without the CSRF token nothing is called.
    assert client.post("/api/queues/0101/call-next", json={"room": "2"}).status_code == 403


def test_only_doctors_call_and_only_the_it_centre_sets_rules(site):
    client, container = site
    csrf = {"X-CSRF-Token": login(client, "eng.zhao")}
    assert client.post("/api/queues/0101/call-next", json={"room": "2"}, headers=csrf).status_code == 403
    client.post("/staff/logout", data={"csrf_token": csrf["X-CSRF-Token"]})
    csrf = {"X-CSRF-Token": login(client, "it.wang")}
    changed = client.put("/api/queues/departments/0101/rules", headers=csrf,
                         json={"rules": {"returning_after": 1, "am_closes": "11:30"}, "name": "心血管内科",
                               "zone": "门诊楼2层A区"})
    assert changed.status_code == 200, changed.text
    assert container.queues.rules("0101").returning_after == 1
    bad = client.put("/api/queues/departments/0101/rules", headers=csrf, json={"rules": {"result_seconds": 60}})
    assert bad.status_code == 422


def test_the_doctor_page_calls_by_form_and_shows_the_line_masked(site):
    client, _container = site
    csrf = login(client, "dr.li")
    page = client.get("/staff/queues/doctor", params={"department": "0101", "room": "3"})
    assert page.status_code == 200 and "王*1" in page.text and "叫下一位" in page.text
    done = client.post("/staff/queues/doctor/call-next", data={"csrf_token": csrf, "department": "0101", "room": "3"},
                       follow_redirects=True)
    assert "请 1 号 王*1 到 3 诊室就诊" in done.text


def test_the_board_shows_numbers_and_masked_names_and_streams_changes(site):
    client, container = site
    board = client.get("/api/board", params={"department": "0101"}).json()
    assert [w["queue_no"] for w in board["departments"][0]["waiting"]] == ["1", "2", "3"]
    container.queues.call_next("0101", container.queues.today(), room="2")
    with client.stream("GET", "/api/board/stream", params={"department": "0101"}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                break
    assert data["departments"][0]["calling"][0]["queue_no"] == "1"
    assert data["calls"][0]["text"] == "请 1 号 王*1 到 2 诊室就诊"
    page = client.get("/board/?department=0101")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/api/board").status_code == 422
