"""Departments configured by the hospital (tender #14): a draft seen only by preview kiosks until it is
published, a publish seen by every worker, every change audited with before and after; the IT centre's
page (/staff/departments). The HIS simulator answers over real HTTP; every test runs on both databases."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from kiosk_client import Kiosk
from simulator_fixtures import service_container, simulators_fixture
from staff_client import PASSWORD, login

from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.services import audit
from medkiosk.services.departments import DepartmentService, DepartmentsRefused
from medkiosk.services.staff import StaffService
from medkiosk.settings import Settings, TerminalType

simulators = simulators_fixture("his")
PATH = "/api/kiosk/registration/departments"


def names(answer: dict) -> list[str]:
    return [d["name"] for g in answer["groups"] for d in g["departments"]]


def department(answer: dict, name: str) -> dict:
    return next(d for g in answer["groups"] for d in g["departments"] if d["name"] == name)


def trail(container, prefix: str = "departments.") -> list[audit.AuditRecord]:
    with container.uow() as uow:
        return [e for e in reversed(audit.recent(uow)) if e.action.startswith(prefix)]


@pytest.fixture
def site(database_url, simulators):
    """The service on ``database_url`` wired to the HIS simulator, a preview kiosk, an ordinary kiosk, staff."""
    container = service_container(database_url, simulators, upstream_timeout_seconds=3)
    staff = StaffService.from_container(container)
    staff.create_user("it.wang", "王工", ["it_admin"], PASSWORD)
    staff.create_user("dr.li", "李医生", ["doctor"], PASSWORD)
    with TestClient(create_app(container=container)) as client:
        kiosks = {}
        for device in ("K-TEST", "K001"):
            kiosks[device] = Kiosk("http://testserver", device,
                                   container.devices.enroll(device, TerminalType.OUTPATIENT, location="门诊楼 1F"))
            kiosks[device].client = client
        container.departments.set_preview("it.wang", "K-TEST", True)
        yield container, client, kiosks["K-TEST"], kiosks["K001"]
    container.close()


# --- the service --------------------------------------------------------------------------------------------
def test_unconfigured_the_kiosk_shows_the_his_departments_as_the_his_names_them(site):
    _container, _client, preview, ordinary = site
    answer = ordinary.get(PATH)
    assert answer["preview"] is False
    assert [g["name"] for g in answer["groups"]][:2] == ["内科", "外科"]
    cardiology = department(answer, "心血管内科")
    assert cardiology == {"name": "心血管内科", "intro": "高血压、冠心病、心律失常、心力衰竭的诊治。",
                          "location": "门诊楼2层A区", "his_codes": ["0101"], "doctor_codes": None}
    assert preview.get(PATH)["groups"] == answer["groups"]  # no draft yet: the preview kiosk sees the same


def test_a_preview_kiosk_sees_the_draft_and_the_others_only_once_it_is_published(site):
    container, _client, preview, ordinary = site
    service = container.departments
    service.save_department("it.wang", {"his_codes": ["0101"], "name": "心内科", "location": "门诊楼2层A区（东）",
                                        "intro": "胸闷、胸痛、心慌请挂此科。"})
    shown = preview.get(PATH)
    assert shown["preview"] is True and "心内科" in names(shown) and "心血管内科" not in names(shown)
    assert department(shown, "心内科")["location"] == "门诊楼2层A区（东）"
    assert "心血管内科" in names(ordinary.get(PATH)) and "心内科" not in names(ordinary.get(PATH))

    service.publish("it.wang")
    assert "心内科" in names(ordinary.get(PATH)) and "心血管内科" not in names(ordinary.get(PATH))
    assert preview.get(PATH)["preview"] is False  # nothing left in draft: it shows the published one

    changed, published = trail(container)[1:]
    assert (changed.action, changed.actor) == ("departments.draft_changed", "it.wang")
    assert changed.details["before"] == [] and changed.details["after"][0]["name"] == "心内科"
    assert changed.details["after"][0]["his_codes"] == ["0101"]
    assert published.action == "departments.published" and published.details["before"] == []
    assert [e["name"] for e in published.details["after"]] == ["心内科"]

    # The next change starts a new draft from what is published; its audit names both sides.
    key = published.details["after"][0]["key"]
    service.save_department("it.wang", {"name": "心脏内科"}, key=key)
    renamed = trail(container)[-1]
    assert renamed.details["before"][0]["name"] == "心内科" and renamed.details["after"][0]["name"] == "心脏内科"
    assert "心内科" in names(ordinary.get(PATH)) and "心脏内科" in names(preview.get(PATH))

    service.discard("it.wang")
    assert "心内科" in names(preview.get(PATH)) and trail(container)[-1].action == "departments.draft_discarded"


def test_merging_splitting_hiding_and_reordering_reshape_what_the_kiosk_shows(site, simulators):
    container, _client, preview, _ordinary = site
    service = container.departments
    service.merge("it.wang", "内科综合门诊", ["0101", "0102"], location="门诊楼2层")
    doctors = [d["code"] for d in service.his_doctors("0202")]
    service.split("it.wang", "0202", [("关节外科", doctors[:1]), ("脊柱外科", doctors[1:])])
    lab = service.configuration(draft=True)
    service.save_department("it.wang", {"his_codes": ["0704"], "name": "检验科", "hidden": True})
    service.save_department("it.wang", {"his_codes": ["0206"], "name": "皮肤科", "position": 1, "group": "特色门诊"})
    shown = preview.get(PATH)
    assert shown["groups"][0] == {"name": "特色门诊", "departments": [department(shown, "皮肤科")]}
    merged = department(shown, "内科综合门诊")
    assert merged["his_codes"] == ["0101", "0102"] and merged["location"] == "门诊楼2层"
    assert "心血管内科" not in names(shown) and "检验科" not in names(shown)
    assert department(shown, "关节外科")["doctor_codes"] == doctors[:1]
    assert department(shown, "脊柱外科")["doctor_codes"] == doctors[1:]
    assert names(shown).index("关节外科") + 1 == names(shown).index("脊柱外科")
    assert len(lab.entries) == 3  # the merge and the two halves of the split

    # A department the HIS adds later shows up as the HIS names it, with nobody configuring it.
    httpx.post(simulators["his"].url + "/__sim__/data/departments", json=[
        {"code": "0107", "name": "风湿免疫科", "parent_code": "01", "location": "门诊楼3层D区", "intro": "风湿病。"}],
    ).raise_for_status()
    service.his_departments(fresh=True)
    assert department(preview.get(PATH), "风湿免疫科")["his_codes"] == ["0107"]


def test_a_draft_that_would_confuse_patients_is_refused_with_reasons_and_changes_nothing(site):
    container, *_ = site
    service = container.departments
    service.save_department("it.wang", {"his_codes": ["0102"], "name": "呼吸科"})
    before = service.configuration(draft=True)
    with pytest.raises(DepartmentsRefused) as twice:
        service.save_department("it.wang", {"his_codes": ["0101", "0102"], "name": "心肺门诊"})
    assert "HIS 科室 0102（呼吸与危重症医学科）同时对应到" in twice.value.message
    with pytest.raises(DepartmentsRefused) as unknown:
        service.save_department("it.wang", {"his_codes": ["0101", "9999"], "name": "心内科"})
    assert "9999 在 HIS 中不存在" in unknown.value.message
    with pytest.raises(DepartmentsRefused) as nameless:
        service.save_department("it.wang", {"name": "  "}, key=before.entries[0].key)
    assert "名称不能为空" in nameless.value.message
    with pytest.raises(DepartmentsRefused) as stranger:
        service.split("it.wang", "0301", [("妇科一", ["D030101"]), ("妇科二", ["D010101"])])
    assert "D010101" in stranger.value.message and "不在其对应的 HIS 科室出诊" in stranger.value.message
    assert service.configuration(draft=True) == before
    assert [e.action for e in trail(container)] == ["departments.preview_kiosk", "departments.draft_changed"]


def test_a_publish_made_in_one_worker_is_seen_by_another_at_once(site, database_url):
    container, _client, _preview, ordinary = site
    other = build_container(Settings(database_url=database_url, recovery_seconds=0,
                                     his_url=container.settings.his_url, upstream_timeout_seconds=3))
    try:
        assert "心血管内科" in names(other.departments.for_kiosk(preview=False))  # warm: cached by revision
        container.departments.save_department("it.wang", {"his_codes": ["0101"], "name": "心内科"})
        assert "心内科" not in names(other.departments.for_kiosk(preview=False))
        assert "心内科" in names(other.departments.for_kiosk(preview=True))
        container.departments.publish("it.wang")
        assert "心内科" in names(other.departments.for_kiosk(preview=False))
        assert "心内科" in names(ordinary.get(PATH))
    finally:
        other.close()


def test_preview_kiosks_are_the_ledgers_test_kiosks_and_setting_one_is_audited(site):
    container, _client, _preview, ordinary = site
    service = container.departments
    assert [k["device_id"] for k in service.preview_kiosks()] == ["K-TEST"]
    service.save_department("it.wang", {"his_codes": ["0101"], "name": "心内科"})
    assert service.set_preview("it.wang", "K001", True) is True
    assert service.set_preview("it.wang", "K001", True) is False  # already: nothing written
    assert "心内科" in names(ordinary.get(PATH))
    service.set_preview("it.wang", "K001", False)
    assert "心内科" not in names(ordinary.get(PATH))
    flips = [e for e in trail(container) if e.action == "departments.preview_kiosk" and e.target == "ledger:K001"]
    assert [(e.details["before"], e.details["after"]) for e in flips] == [
        ({"preview": False}, {"preview": True}), ({"preview": True}, {"preview": False})]
    with pytest.raises(DepartmentsRefused, match="没有编号为 K404"):
        service.set_preview("it.wang", "K404", True)


def test_a_kiosk_request_must_be_signed(site):
    _container, client, *_ = site
    assert client.get(PATH).status_code == 401


def test_the_published_configuration_survives_a_new_service_instance(site, database_url):
    container, *_ = site
    container.departments.save_department("it.wang", {"his_codes": ["0101"], "name": "心内科"})
    container.departments.publish("it.wang")
    fresh = DepartmentService(container.uow, container.clock, container.his)
    assert "心内科" in names(fresh.for_kiosk(preview=False))


# --- the IT centre's page --------------------------------------------------------------------------------------
def test_a_rename_on_the_page_shows_on_the_preview_kiosk_and_elsewhere_only_once_published(site):
    container, client, preview, ordinary = site
    token = login(client, "it.wang")
    page = client.get("/staff/departments")
    assert page.status_code == 200 and "科室配置" in page.text and 'data-testid="draft-tree"' in page.text
    form = client.get("/staff/departments?his=0101")
    assert 'data-testid="department-form"' in form.text and 'value="心血管内科"' in form.text

    saved = client.post("/staff/departments/save", data={
        "csrf_token": token, "key": "", "his_code": "0101", "name": "心内科", "group": "内科", "position": "10",
        "his_codes": "0101", "doctor_codes": "", "intro": "胸闷、胸痛请挂此科。", "location": "门诊楼2层A区"},
        follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/staff/departments?done=saved"
    assert "已保存到草稿" in client.get(saved.headers["location"]).text
    assert department(preview.get(PATH), "心内科")["intro"] == "胸闷、胸痛请挂此科。"
    assert "心内科" not in names(ordinary.get(PATH))

    published = client.post("/staff/departments/publish", data={"csrf_token": token}, follow_redirects=False)
    assert published.status_code == 303
    assert "心内科" in names(ordinary.get(PATH))
    assert [e.actor for e in trail(container)][-2:] == ["it.wang", "it.wang"]


def test_the_page_explains_a_refused_change_and_changes_nothing(site):
    container, client, *_ = site
    token = login(client, "it.wang")
    refused = client.post("/staff/departments/merge", data={"csrf_token": token, "name": "", "his_codes": ["0101",
                                                                                                           "0102"]})
    assert refused.status_code == 422 and "名称不能为空" in refused.text
    bad_order = client.post("/staff/departments/save", data={"csrf_token": token, "his_code": "0101",
                                                             "name": "心内科", "his_codes": "0101", "position": "前面"})
    assert bad_order.status_code == 422 and "顺序须为整数" in bad_order.text
    nothing = client.post("/staff/departments/publish", data={"csrf_token": token})
    assert nothing.status_code == 422 and "没有待发布的草稿" in nothing.text
    assert container.departments.configuration(draft=True).version is None


def test_a_split_on_the_page_puts_each_doctor_in_one_department(site):
    container, client, preview, _ordinary = site
    token = login(client, "it.wang")
    form = client.get("/staff/departments?split=0202")
    assert 'data-testid="split-form"' in form.text and 'name="doctor_D020201"' in form.text
    saved = client.post("/staff/departments/split", data={
        "csrf_token": token, "his_code": "0202", "name_1": "关节外科", "name_2": "脊柱外科",
        "doctor_D020201": "1", "doctor_D020202": "2", "doctor_D020203": "2"}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    shown = preview.get(PATH)
    assert department(shown, "脊柱外科")["doctor_codes"] == ["D020202", "D020203"]
    container.departments.save_department("it.wang", {"his_codes": ["0704"], "name": "检验科", "hidden": True})
    page = client.get("/staff/departments")
    assert page.status_code == 200 and "已隐藏" in page.text and "D020202、D020203" in page.text


def test_only_the_it_centre_may_and_only_with_the_csrf_token(site):
    container, client, *_ = site
    assert client.get("/staff/departments", follow_redirects=False).headers["location"].startswith("/staff/login")
    token = login(client, "it.wang")
    data = {"his_code": "0101", "name": "心内科", "his_codes": "0101"}
    assert client.post("/staff/departments/save", data=data).status_code == 403
    assert client.post("/staff/departments/save", data={**data, "csrf_token": "x" * 40}).status_code == 403
    assert "/staff/departments" in client.get("/staff/").text  # in the IT centre's navigation
    client.post("/staff/logout", data={"csrf_token": token})
    token = login(client, "dr.li")
    assert client.get("/staff/departments").status_code == 403
    assert client.post("/staff/departments/save", data={**data, "csrf_token": token}).status_code == 403
    assert client.post("/staff/departments/preview", data={"csrf_token": token, "device_id": "K001",
                                                           "preview": "on"}).status_code == 403
    assert container.departments.configuration(draft=True).version is None
    assert [k["device_id"] for k in container.departments.preview_kiosks()] == ["K-TEST"]
