"""Inspections, consumables, tickets and major-event alerting on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from test_operations import Site, receiver, site  # noqa: F401  (fixtures)

from medkiosk.services.consumables import ConsumableError
from medkiosk.services.inspections import InspectionError
from medkiosk.services.major_events import MajorEventService
from medkiosk.store.models_operations import TelemetryHour

SHANGHAI = ZoneInfo("Asia/Shanghai")


def move_to(site: Site, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """Forward the site's clock to the next such time of day in hospital time."""
    now = site.clock.now().astimezone(SHANGHAI)
    target = datetime.combine(now.date() + timedelta(days=1), time(hour, minute, second), tzinfo=SHANGHAI)
    site.clock.advance(seconds=(target - now).total_seconds())
    return target


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


# --- inspections ------------------------------------------------------------------------------------------
def test_an_inspection_round_opens_at_its_time_from_telemetry_and_a_problem_becomes_a_ticket(site):
    inspections = site.ops.inspections
    move_to(site, 7, 59, 50)
    site.enroll("K001")
    site.enroll("K002", "本部 / 门诊楼 / 2F / 缴费区")
    site.beat("K001", paper="out")
    site.beat("K002")
    assert inspections.open_due() is None  # 07:59:50: not yet
    site.clock.advance(seconds=15)
    site.beat("K001", paper="out")
    site.beat("K002")
    opened = inspections.open_due()
    assert opened is not None and opened.opened_by == "schedule"
    assert inspections.open_due() is None  # once per scheduled time
    view = inspections.get(opened.id)
    findings = {i.device_id: [f["code"] for f in i.findings] for i in view.items}
    assert findings == {"K001": ["paper_out"], "K002": []}
    k001 = next(i for i in view.items if i.device_id == "K001")
    k002 = next(i for i in view.items if i.device_id == "K002")
    inspections.sign_off(k002.id, "liwei", "fine")
    with pytest.raises(InspectionError, match="写明问题"):
        inspections.sign_off(k001.id, "liwei", "problem", "")
    signed = inspections.sign_off(k001.id, "liwei", "problem", "凭条打印机缺纸，纸仓卡纸")
    with pytest.raises(InspectionError, match="已由 liwei 签核"):
        inspections.sign_off(k001.id, "wangfang", "fine")
    ticket = site.ops.tickets.get(signed.ticket_id)
    assert ticket.row.source == "inspection" and ticket.row.device_id == "K001" and ticket.row.state == "new"
    assert "纸仓卡纸" in ticket.row.description and "缺纸" in ticket.row.description
    assert inspections.get(opened.id).round.state == "signed_off"

    report = inspections.daily_report(site.clock.now().astimezone(SHANGHAI).date())
    text = pdf_text(inspections.report_pdf(report))
    assert "巡检日报" in text and "K001" in text and "K002" in text
    assert "纸仓卡纸" in text and f"#{ticket.row.id}" in text
    sheet = load_workbook(io.BytesIO(inspections.report_xlsx(report))).active
    rows = [[c.value for c in row] for row in sheet.iter_rows(min_row=3)]
    assert {r[1] for r in rows} == {"K001", "K002"}
    assert any(r[1] == "K001" and r[5] == "有问题" and r[8] == f"#{ticket.row.id}" for r in rows)


def test_an_engineer_signs_off_a_round_through_the_pages_and_downloads_the_report(site):
    site.enroll("K001")
    site.beat("K001")
    csrf = site.login("liwei", "engineer")
    assert site.client.post("/staff/ops/inspections", follow_redirects=False).status_code == 403  # no CSRF
    opened = site.client.post("/staff/ops/inspections", data={"csrf_token": csrf}, follow_redirects=False)
    assert opened.status_code == 303
    page = site.client.get(opened.headers["location"])
    assert page.status_code == 200 and 'data-device="K001"' in page.text
    item = site.ops.inspections.rounds()[0].items[0]
    signed = site.client.post(f"{opened.headers['location']}/items/{item.id}", data={"verdict": "fine",
                                                                                     "csrf_token": csrf},
                              follow_redirects=False)
    assert signed.status_code == 303
    assert site.ops.inspections.rounds()[0].round.state == "signed_off"
    day = site.clock.now().astimezone(SHANGHAI).date().isoformat()
    pdf = site.client.get(f"/staff/ops/inspections/report/{day}?format=pdf")
    assert pdf.headers["content-type"] == "application/pdf" and "K001" in pdf_text(pdf.content)
    xlsx = site.client.get(f"/staff/ops/inspections/report/{day}?format=xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    # The schedule is the IT centre's: an engineer is refused.
    assert site.client.post("/staff/ops/inspections/schedule", data={"times": "09:00", "csrf_token": csrf},
                            follow_redirects=False).status_code == 403
    admin_csrf = site.login("admin1", "it_admin")
    assert site.client.post("/staff/ops/inspections/schedule", data={"times": "09:00，15:00", "csrf_token": admin_csrf},
                            follow_redirects=False).status_code == 303
    assert [t.strftime("%H:%M") for t in site.ops.inspections.times()] == ["09:00", "15:00"]


# --- tickets ----------------------------------------------------------------------------------------------
def test_an_alert_becomes_one_ticket_worked_to_closed_and_listed_on_the_devices_page(site):
    site.ops.ledger.create("admin", "K001", {"name": "门诊一楼 1 号机", "building": "门诊楼", "floor": "1F"})
    site.enroll("K001")
    site.beat("K001", paper="out")
    site.ops.alerts.evaluate()
    [alert] = site.alerts("paper_out")
    csrf = site.login("liwei", "engineer")
    assert site.client.post(f"/staff/ops/alerts/{alert.id}/ticket", follow_redirects=False).status_code == 403
    made = site.client.post(f"/staff/ops/alerts/{alert.id}/ticket", data={"csrf_token": csrf}, follow_redirects=False)
    again = site.client.post(f"/staff/ops/alerts/{alert.id}/ticket", data={"csrf_token": csrf}, follow_redirects=False)
    assert made.status_code == again.status_code == 303
    assert made.headers["location"] == again.headers["location"]  # one ticket per alert
    ticket_id = int(made.headers["location"].rsplit("/", 1)[1])
    ticket = site.ops.tickets.get(ticket_id)
    assert ticket.row.source == "alert" and ticket.row.priority == "p1" and ticket.row.device_id == "K001"
    assert f"工单 #{ticket_id}" in site.client.get("/staff/ops/alerts").text

    def move(to: str, csrf: str | None = None, **form):
        return site.client.post(f"/staff/ops/tickets/{ticket_id}/move",
                                data={"to": to, "csrf_token": csrf or current[0], **form}, follow_redirects=False)

    current = [csrf]
    assert move("resolved", cause="x", action="y").status_code == 400  # new → resolved is refused
    assert move("assigned").status_code == 303
    site.clock.advance(minutes=5)
    assert move("in_progress").status_code == 303
    refused = move("waiting")
    assert refused.status_code == 400 and "在等什么" in refused.text
    assert move("waiting", note="等厂家送切刀").status_code == 303
    site.clock.advance(hours=20)  # the part takes a day: the resolve clock is paused
    paused = site.ops.tickets.get(ticket_id)
    assert paused.resolve.paused and paused.resolve.elapsed == timedelta(minutes=5)
    current[0] = site.login("zhaoqiang", "engineer")  # the next day's engineer (yesterday's session expired)
    assert move("in_progress").status_code == 303
    incomplete = move("resolved", cause="切刀损坏")
    assert incomplete.status_code == 400
    assert "处理记录" in incomplete.text
    assert move("resolved", cause="切刀损坏导致卡纸", action="更换切刀并装纸", part0_name="切刀组件",
                part0_quantity="1").status_code == 303
    assert move("verified").status_code == 403  # verification is the IT centre's
    admin_csrf = site.login("admin1", "it_admin")
    assert move("verified", csrf=admin_csrf).status_code == 303
    assert move("closed", csrf=admin_csrf).status_code == 303
    done = site.ops.tickets.get(ticket_id)
    assert done.row.state == "closed" and done.row.parts == [{"name": "切刀组件", "quantity": 1}]
    assert [t["state"] for t in done.row.transitions] == ["new", "assigned", "in_progress", "waiting", "in_progress",
                                                          "resolved", "verified", "closed"]
    page = site.client.get("/staff/ops/ledger/K001")
    assert page.status_code == 200 and "设备异常记录" in page.text and f'data-ticket="{ticket_id}"' in page.text
    assert site.client.get(f"/staff/ops/tickets/{ticket_id}").status_code == 200
    assert site.client.get("/api/ops/tickets?device_id=K001").json()["tickets"][0]["state"] == "closed"


def test_ticket_clocks_are_announced_once_at_75_and_100_percent(site):
    ticket = site.ops.tickets.create("liwei", title="读卡器无反应", device_id="K001", priority="p1")  # own in 15 min
    site.clock.advance(minutes=12)
    assert [(n, lvl.value) for _, n, lvl in site.ops.tickets.check_clocks()] == [("own", "warning")]
    assert site.ops.tickets.check_clocks() == []
    site.clock.advance(minutes=3)
    assert [(n, lvl.value) for _, n, lvl in site.ops.tickets.check_clocks()] == [("own", "breached")]
    assert site.ops.tickets.get(ticket.id).own.level.value == "breached"


def test_a_ticket_clock_near_or_past_its_target_alerts_the_duty_group_until_the_ticket_is_owned(site, receiver):
    site.ops.alerts.add_channel("admin", "值班群", "wecom", receiver.url + "/robot")
    ticket = site.ops.tickets.create("liwei", title="读卡器无反应", device_id="K001", priority="p1")  # own in 15 min
    site.ops.alerts.evaluate()
    assert site.alerts("ticket_sla_warning") == [] and receiver.bodies == []
    site.clock.advance(minutes=12)  # 80 % of the time to own, nobody has taken it
    site.ops.alerts.evaluate()
    [warning] = site.alerts("ticket_sla_warning")
    assert warning.state == "firing" and warning.labels == {"ticket": str(ticket.id), "clock": "响应", "device": "K001"}
    robot = receiver.bodies[-1]["body"]["markdown"]["content"]
    assert f"工单 #{ticket.id}" in robot and "响应时限将到" in robot
    site.clock.advance(minutes=3)  # the target has passed
    seen = len(receiver.bodies)
    site.ops.alerts.evaluate()
    [breached] = site.alerts("ticket_sla_breached")
    assert breached.state == "firing" and breached.severity == "critical"
    assert site.alerts("ticket_sla_warning")[0].state == "resolved"  # the breach takes over from the warning
    since = [r["body"]["markdown"]["content"] for r in receiver.bodies[seen:]]  # one message per alert group
    assert any(f"工单 #{ticket.id}" in text and "响应已超时" in text for text in since), since
    site.ops.tickets.move(ticket.id, "zhaoqiang", "assigned", assignee="zhaoqiang")  # owned: the clock stops
    site.ops.alerts.evaluate()
    assert {a.rule: a.state for a in site.alerts() if a.rule.startswith("ticket_sla")} == {
        "ticket_sla_warning": "resolved", "ticket_sla_breached": "resolved"}


def test_staff_without_device_rights_see_no_tickets(site):
    site.login("drli", "doctor")
    assert site.client.get("/staff/ops/tickets", follow_redirects=False).status_code == 403
    assert site.client.get("/staff/ops/consumables", follow_redirects=False).status_code == 403


# --- consumables ------------------------------------------------------------------------------------------
def test_a_replacement_lowers_stock_and_low_stock_and_running_out_before_the_inspection_warn(site):
    consumables = site.ops.consumables
    move_to(site, 9, 0)
    site.enroll("K001")
    site.beat("K001")
    with site.container.uow() as uow:  # a week of 30 transactions an hour, 08:00–17:00
        day0 = site.clock.now().astimezone(SHANGHAI).replace(hour=0) - timedelta(days=7)
        uow.session.add_all(TelemetryHour(device_id="K001", bucket=(day0 + timedelta(days=d, hours=h)).astimezone(
            ZoneInfo("UTC")), beats=720, transactions=30, failures=0, peripheral_faults=0)
            for d in range(7) for h in range(8, 17))
        uow.commit()
    with pytest.raises(ConsumableError, match="库存不足"):
        consumables.replace("liwei", "K001", "receipt_paper")
    consumables.receive("admin1", "receipt_paper", 21, note="送货单 123")
    assert "receipt_paper" not in {i.code for i in consumables.low_stock()}
    consumables.replace("liwei", "K001", "receipt_paper")
    stock = {i.code: i.stock for i in consumables.items()}
    assert stock["receipt_paper"] == 20 and "receipt_paper" in {i.code for i in consumables.low_stock()}
    site.clock.advance(minutes=1)
    site.beat("K001", transactions=200)  # 200 receipts since the roll went in: 50 left, 1 h 40 min at 30/h
    next_inspection = site.ops.inspections.next_time()
    assert next_inspection.astimezone(SHANGHAI).strftime("%H:%M") == "12:30"
    [forecast] = consumables.forecasts(site.ops.monitoring.fleet(), next_inspection)
    assert forecast.remaining == 50 and forecast.before_next_inspection
    assert forecast.runs_out_at.astimezone(SHANGHAI).strftime("%H:%M") == "10:41"
    # The inspection that opens now says so.
    opened = site.ops.inspections.open_round("liwei")
    assert [f["code"] for f in site.ops.inspections.get(opened.id).items[0].findings] == ["runs_out"]
    site.login("liwei", "engineer")
    page = site.client.get("/staff/ops/consumables")
    assert 'data-warning="runs_out"' in page.text and 'data-warning="low_stock"' in page.text
    low = site.client.get("/api/ops/consumables").json()
    assert next(i for i in low["items"] if i["code"] == "receipt_paper")["low"] is True


def test_replacements_through_the_page_need_the_engineers_role_and_csrf(site):
    site.enroll("K001")
    site.ops.consumables.receive("admin1", "a4_paper", 3)
    csrf = site.login("liwei", "engineer")
    assert site.client.post("/staff/ops/consumables/replace", data={"device_id": "K001", "item": "a4_paper"},
                            follow_redirects=False).status_code == 403
    assert site.client.post("/staff/ops/consumables/replace", data={"device_id": "K001", "item": "a4_paper",
                                                                    "csrf_token": csrf},
                            follow_redirects=False).status_code == 303
    assert site.client.post("/staff/ops/consumables/receive", data={"item": "a4_paper", "quantity": "5",
                                                                    "csrf_token": csrf},
                            follow_redirects=False).status_code == 403  # deliveries are booked by the IT centre
    assert {i.code: i.stock for i in site.ops.consumables.items()}["a4_paper"] == 2


# --- major-event mode ----------------------------------------------------------------------------------------
def test_a_major_event_fires_offline_alerts_sooner_and_paper_low_at_night(site):
    move_to(site, 23, 0)  # out of business hours
    site.enroll("K001")
    site.enroll("K002", "本部 / 门诊楼 / 2F / 缴费区")
    site.beat("K001")
    site.beat("K002", paper="low")
    site.ops.alerts.evaluate()
    [low] = site.alerts("paper_low")
    assert low.severity == "warning" and site.ops.alerts.muted()[low.fingerprint] == "out_of_hours"
    MajorEventService.from_container(site.container).create(
        name="春节保障", starts_at=site.clock.now(), ends_at=site.clock.now() + timedelta(days=7), actor="admin1",
        thresholds={"offline_for_seconds": 10, "escalate_after_minutes": 5})
    site.clock.advance(seconds=16)  # K001 quiet 16 s: overdue, and past the tightened 10 s `for`
    site.beat("K002", paper="low")
    site.ops.alerts.evaluate()
    assert [a.state for a in site.alerts("device_offline")] == ["firing"]  # usually pending until 30 s
    assert low.fingerprint not in site.ops.alerts.muted()  # paper low notifies at night during the event
    force = site.ops.alerts.in_force()
    assert force.period == "春节保障" and force.route.repeat_interval == timedelta(minutes=5)
    assert force.rules["paper_low"].severity.value == "critical"
