"""Registering at the kiosk (挂号), over real HTTP against every simulator, on SQLite and PostgreSQL.

Numbers are taken for the HIS's tomorrow: its morning has not started on the hospital's clock at
any hour this suite may run (the hospital's today is at most the HIS's tomorrow), so no test here
depends on the time of day.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from kiosk_client import Kiosk
from simulator_fixtures import service_container, serving, simulators_fixture
from sqlalchemy import select

from medkiosk.agent.documents import Receipt, render_text
from medkiosk.domain.identity import make_id_number
from medkiosk.services.clock import FrozenClock
from medkiosk.services.registrations import registrations_of
from medkiosk.settings import TerminalType
from medkiosk.simulators.personas import PERSONAS
from medkiosk.store.models_exams import DocumentPrint
from medkiosk.store.models_registrations import KioskRegistration

simulators = simulators_fixture()


@pytest.fixture
def world(database_url, simulators):
    container = service_container(database_url, simulators, upstream_timeout_seconds=3)
    with serving(container) as url:
        yield World(container, url, simulators)


class World:
    def __init__(self, container, url, simulators) -> None:
        self.container = container
        self.url = url
        self.sims = {name: server.url for name, server in simulators.items()}
        self.kiosk = self.new_kiosk("K001")

    def new_kiosk(self, device_id: str) -> Kiosk:
        return Kiosk(self.url, device_id, self.container.devices.enroll(device_id, TerminalType.OUTPATIENT,
                                                                       location="门诊楼 1F"))

    def his(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.sims["his"] + path, timeout=10, **kwargs)

    def his_tomorrow(self) -> dt.date:
        now = dt.datetime.fromisoformat(self.his("GET", "/__sim__/clock").json()["now"])
        return now.date() + dt.timedelta(days=1)

    def his_registration(self, registration_no: str) -> dict:
        return self.his("GET", f"/his/v1/registrations/{registration_no}").json()

    def remaining(self, schedule_id: str, day: dt.date) -> int:
        slots = self.his("GET", "/his/v1/schedules", params={"date": day.isoformat()}).json()["schedules"]
        return next(s["remaining"] for s in slots if s["schedule_id"] == schedule_id)

    def phone_pays(self, order: dict) -> None:
        reply = httpx.post(f"{self.sims['payment']}/__sim__/pay/{order['order_no']}P1", json={"channel": "wechat"})
        assert reply.status_code == 200, reply.text

    def rows(self) -> list[KioskRegistration]:
        with self.container.uow() as uow:
            return list(uow.session.scalars(select(KioskRegistration).order_by(KioskRegistration.id)))


def a_department_with_numbers(kiosk: Kiosk, day: dt.date) -> tuple[dict, dict, dict]:
    """The first kiosk department (as configured) with a doctor whose morning has numbers left."""
    tree = kiosk.get("/api/kiosk/registration/departments")
    for group in tree["groups"]:
        for department in group["departments"]:
            query = "&".join(f"department_code={c}" for c in department["his_codes"])
            doctors = kiosk.get(f"/api/kiosk/registrations/schedules?date={day.isoformat()}&{query}")["doctors"]
            for doctor in doctors:
                for slot in doctor["slots"]:
                    if slot["half_day"] == "am" and slot["open"] and slot["remaining"] >= 3:
                        return department, doctor, slot
    raise AssertionError("no department with numbers in the demo hospital")


def hold(kiosk: Kiosk, slot: dict, day: dt.date, *, expect: int = 200, **extra) -> dict:
    return kiosk.post("/api/kiosk/registrations", {"schedule_id": slot["schedule_id"], "date": day.isoformat(),
                                                   **extra}, expect=expect)


def slip_text(kiosk: Kiosk, registration_no: str) -> tuple[str, Receipt]:
    slip = Receipt.model_validate(kiosk.get(f"/api/kiosk/registrations/{registration_no}/slip"))
    return render_text(slip) + "\n".join(getattr(line, "text", "") for line in slip.lines), slip


def test_an_insured_patient_registers_pays_the_cash_part_and_the_slip_says_where_to_go(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    kiosk.insert_insurance_card("local_resident")
    assert day.isoformat() in [d["date"] for d in kiosk.get("/api/kiosk/registrations/dates")["dates"]]
    _department, doctor, slot = a_department_with_numbers(kiosk, day)
    before = world.remaining(slot["schedule_id"], day)

    held = hold(kiosk, slot, day)
    registration, order = held["registration"], held["payment"]
    assert registration["state"] == "held" and registration["doctor_name"] == doctor["doctor_name"]
    assert world.remaining(slot["schedule_id"], day) == before - 1  # the number is out of sale while paid for
    assert order["state"] == "presettled" and order["mode"] == "insurance"
    split = {k: Decimal(v) for k, v in order["split"].items()}
    assert split["fund"] + split["account"] + split["cash"] == Decimal(slot["fee"]) == split["total"]
    assert world.his_registration(registration["registration_no"])["status"] == "pending_payment"

    if split["cash"] > 0:
        kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
        world.phone_pays(order)
    assert kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "completed"
    done = kiosk.get(f"/api/kiosk/registrations/{registration['registration_no']}")["registration"]
    assert done["state"] == "registered" and done["queue_no"] == registration["queue_no"]
    assert world.his_registration(registration["registration_no"])["status"] == "registered"

    text, slip = slip_text(kiosk, registration["registration_no"])
    for expected in ("挂号条", f"序号：{registration['queue_no']}", done["department_name"], doctor["doctor_name"],
                     f"{day.month}月{day.day}日 上午", f"地点：{done['location']}", "李*英", f"挂号费：￥{slot['fee']}",
                     f"医保统筹支付：￥{order['split']['fund']}", f"现金支付：￥{order['split']['cash']}"):
        assert expected in text, expected
    assert done["location"] and "李秀英" not in text and "补打" not in text
    assert slip.qr_payloads == [world.his_registration(registration["registration_no"])["visit_no"]]


def test_a_self_pay_patient_pays_the_whole_fee_by_qr(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    kiosk.place_id_card("self_pay")
    _, _, slot = a_department_with_numbers(kiosk, day)
    held = hold(kiosk, slot, day)
    order = held["payment"]
    assert order["mode"] == "self_pay" and order["split"]["cash"] == slot["fee"]
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.phone_pays(order)
    assert kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "completed"
    text, _ = slip_text(kiosk, held["registration"]["registration_no"])
    assert f"现金支付：￥{slot['fee']}" in text and "医保" not in text.replace("医保统筹支付：￥0.00", "")


def test_the_same_tap_twice_holds_one_number(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    kiosk.place_id_card("self_pay")
    _, _, slot = a_department_with_numbers(kiosk, day)
    before = world.remaining(slot["schedule_id"], day)
    first = hold(kiosk, slot, day)
    again = hold(kiosk, slot, day)
    assert again["registration"]["registration_no"] == first["registration"]["registration_no"]
    assert again["payment"]["order_no"] == first["payment"]["order_no"]
    assert world.remaining(slot["schedule_id"], day) == before - 1 and len(world.rows()) == 1


def test_backing_out_before_paying_gives_the_number_back_and_charges_nothing(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    kiosk.place_id_card("self_pay")
    _, _, slot = a_department_with_numbers(kiosk, day)
    before = world.remaining(slot["schedule_id"], day)
    held = hold(kiosk, slot, day)
    order = held["payment"]
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    released = kiosk.post(f"/api/kiosk/registrations/{held['registration']['registration_no']}/release")
    assert released["registration"]["state"] == "released"
    assert world.remaining(slot["schedule_id"], day) == before
    assert world.his_registration(held["registration"]["registration_no"])["status"] == "released"
    payment = kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert payment["state"] == "closed" and payment["paid_amount"] == "0.00"
    kiosk.get(f"/api/kiosk/registrations/{held['registration']['registration_no']}/slip", expect=409)


def test_after_backing_out_the_same_number_can_be_taken_again_in_the_same_session(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    kiosk.place_id_card("self_pay")
    _, _, slot = a_department_with_numbers(kiosk, day)
    before = world.remaining(slot["schedule_id"], day)
    first = hold(kiosk, slot, day)
    kiosk.post(f"/api/kiosk/registrations/{first['registration']['registration_no']}/release")
    again = hold(kiosk, slot, day)
    assert again["registration"]["state"] == "held" and again["payment"]["state"] == "presettled"
    assert again["payment"]["order_no"] != first["payment"]["order_no"]
    assert world.remaining(slot["schedule_id"], day) == before - 1
    assert [r.state for r in world.rows()] == ["released", "held"]


def test_a_payment_left_unfinished_has_its_number_given_back_by_the_sweep(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    kiosk.place_id_card("self_pay")
    _, _, slot = a_department_with_numbers(kiosk, day)
    before = world.remaining(slot["schedule_id"], day)
    held = hold(kiosk, slot, day)
    # The patient walks away; the payment ends unpaid (here: the kiosk's session cancels it).
    kiosk.post(f"/api/kiosk/payments/{held['payment']['order_no']}/cancel")
    assert world.remaining(slot["schedule_id"], day) == before - 1  # nobody has looked yet
    assert registrations_of(world.container).release_abandoned() == 1
    assert world.remaining(slot["schedule_id"], day) == before
    assert [r.state for r in world.rows()] == ["released"]
    assert registrations_of(world.container).release_abandoned() == 0


def test_a_payment_landing_after_the_hold_lapsed_is_refunded_and_the_number_stays_free(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    kiosk.place_id_card("self_pay")
    _, _, slot = a_department_with_numbers(kiosk, day)
    before = world.remaining(slot["schedule_id"], day)
    held = hold(kiosk, slot, day)
    order = held["payment"]
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.his("POST", "/__sim__/clock", json={"advance_seconds": 16 * 60})  # the HIS lets the hold lapse
    world.phone_pays(order)
    after = kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert after["state"] == "refunded", after
    assert after["refunded_amount"] == after["paid_amount"] == slot["fee"]
    status = kiosk.get(f"/api/kiosk/registrations/{held['registration']['registration_no']}")["registration"]
    assert status["state"] == "released"
    assert world.remaining(slot["schedule_id"], day) == before


def test_a_second_number_with_the_same_doctor_and_half_day_is_refused_plainly(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    kiosk.place_id_card("self_pay")
    _, _, slot = a_department_with_numbers(kiosk, day)
    held = hold(kiosk, slot, day)
    kiosk.post(f"/api/kiosk/payments/{held['payment']['order_no']}/pay", {"method": "qr"})
    world.phone_pays(held["payment"])
    assert kiosk.get(f"/api/kiosk/payments/{held['payment']['order_no']}")["state"] == "completed"
    kiosk.post("/api/kiosk/session/logout", {})
    kiosk.place_id_card("self_pay")  # a new session: the same patient tries again
    refused = hold(kiosk, slot, day, expect=409)
    assert "重复挂号" in refused["message"] and refused["next_step"]


def test_a_day_beyond_the_horizon_says_when_it_can_be_registered(world):
    kiosk = world.kiosk
    kiosk.place_id_card("self_pay")
    dates = [dt.date.fromisoformat(d["date"]) for d in kiosk.get("/api/kiosk/registrations/dates")["dates"]]
    assert len(dates) == 8 and dates == sorted(dates)  # today and the 7 days ahead (the default horizon)
    too_far = dates[-1] + dt.timedelta(days=1)
    refused = kiosk.get(f"/api/kiosk/registrations/schedules?date={too_far.isoformat()}&department_code=0101",
                        expect=422)
    assert f"{too_far.month}月{too_far.day}日" in refused["message"] or "天" in refused["message"]


def test_the_last_three_numbers_go_to_three_of_twenty_kiosks_racing_for_them(world):
    day = world.his_tomorrow()
    department = world.his("GET", "/his/v1/departments").json()["departments"][0]["children"][0]["code"]
    assert world.his("POST", "/__sim__/data/doctors", json=[{
        "code": "D099901", "name": "抢号医生", "title": "主任医师", "department_code": department,
        "level": "expert"}]).status_code == 200
    schedule_id = f"S{day:%Y%m%d}D099901AM"
    assert world.his("POST", "/__sim__/data/schedules", json=[{
        "schedule_id": schedule_id, "date": day.isoformat(), "half_day": "am", "department_code": department,
        "doctor_code": "D099901", "level": "expert", "fee": "30.00", "total": 20, "remaining": 3}]).status_code == 200
    patients = [{"patient_id": f"P09{n:04d}", "name": f"患者{n}", "phone": f"1390000{n:04d}",
                 "id_number": make_id_number("320102", dt.date(1960, 1, 1) + dt.timedelta(days=n), n),
                 "visit_card_no": f"V09{n:06d}"} for n in range(20)]
    assert world.his("POST", "/__sim__/data/patients", json=patients).status_code == 200
    kiosks = [world.new_kiosk(f"K1{n:02d}") for n in range(20)]
    for kiosk, patient in zip(kiosks, patients, strict=True):
        kiosk.post("/api/device/identify", {"medium": "visit_card", "visit_card_no": patient["visit_card_no"]})

    start, answers = threading.Barrier(len(kiosks)), [None] * len(kiosks)

    def race(n: int) -> None:
        start.wait()
        reply = kiosks[n].request("POST", "/api/kiosk/registrations",
                                  {"schedule_id": schedule_id, "date": day.isoformat()})
        answers[n] = (reply.status_code, reply.json())

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(kiosks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    won = [(n, body) for n, (status, body) in enumerate(answers) if status == 200]
    lost = [body for status, body in answers if status != 200]
    assert len(won) == 3, answers
    assert all(body["message"] in ("这个号刚刚被挂完了。", "这个号已经挂满了。") for body in lost), lost
    assert all(body["next_step"] == "请选择其他医生或其他时间" for body in lost)
    assert sorted(body["registration"]["queue_no"] for _, body in won) == [18, 19, 20]
    for n, body in won:  # each winner pays; exactly three registrations stand
        kiosks[n].post(f"/api/kiosk/payments/{body['payment']['order_no']}/pay", {"method": "qr"})
        world.phone_pays(body["payment"])
        assert kiosks[n].get(f"/api/kiosk/payments/{body['payment']['order_no']}")["state"] == "completed"
        kiosks[n].get(f"/api/kiosk/registrations/{body['registration']['registration_no']}")
    states = [r.state for r in world.rows()]  # a loser that saw the schedule already full held nothing
    assert states.count("registered") == 3 and set(states) <= {"registered", "refused"}
    assert world.remaining(schedule_id, day) == 0


# -- appointments made in the app or by phone (预约取号), and today's slip again (补打) -------------------
HOSPITAL = ZoneInfo("Asia/Shanghai")


def rules_at(world, day: dt.date, at: dt.time) -> FrozenClock:
    """The registration rules' clock (pick-up window, reprint day) at ``at`` hospital time on ``day``."""
    clock = FrozenClock(dt.datetime.combine(day, at, tzinfo=HOSPITAL).astimezone(dt.UTC))
    registrations_of(world.container)._clock = clock
    return clock


def an_appointment(world, persona: str, day: dt.date, *, paid_in_app: bool) -> dict:
    """An appointment for ``persona`` booked in the app for ``day``'s morning (a number of an open schedule)."""
    slots = world.his("GET", "/his/v1/schedules", params={"date": day.isoformat()}).json()["schedules"]
    slot = next(s for s in slots if s["half_day"] == "am" and s["remaining"] >= 3)
    number = slot["total"] - slot["remaining"] + 1
    record = {"registration_no": f"GHAPP{persona.upper()[:6]}{int(paid_in_app)}", "patient_id": PERSONAS[persona].patient_id,
              "date": day.isoformat(), "half_day": "am", "department_code": slot["department_code"],
              "doctor_code": slot["doctor_code"], "level": slot["level"], "queue_no": number, "fee": slot["fee"],
              "status": "booked", "source": "app", "schedule_id": slot["schedule_id"],
              "app_trade_no": f"APPT{number:06d}" if paid_in_app else None,
              "app_paid_amount": slot["fee"] if paid_in_app else None}
    assert world.his("POST", "/__sim__/data/registrations", json=[record]).status_code == 200
    return record


def test_an_appointment_paid_in_the_app_is_picked_up_in_its_window_and_its_slip_prints(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    appointment = an_appointment(world, "local_employee", day, paid_in_app=True)
    rules_at(world, day, dt.time(7, 30))  # the window opens an hour before the morning: 07:00
    kiosk.insert_insurance_card("local_employee")
    listed = next(a for a in kiosk.get("/api/kiosk/registrations/appointments")["appointments"]
                  if a["registration_no"] == appointment["registration_no"])
    assert listed["can_pick_up"] and listed["paid_in_app"] and listed["note"] == ""
    picked = kiosk.post(f"/api/kiosk/registrations/appointments/{appointment['registration_no']}/pick-up")
    assert picked["payment"] is None and picked["registration"]["state"] == "registered"
    assert world.his_registration(appointment["registration_no"])["status"] == "registered"
    text, _ = slip_text(kiosk, appointment["registration_no"])
    assert f"序号：{appointment['queue_no']}" in text and f"已在医院App支付：￥{appointment['fee']}" in text
    assert "现金支付" not in text  # nothing was paid at the kiosk


def test_an_unpaid_appointment_is_paid_when_picked_up(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    appointment = an_appointment(world, "self_pay", day, paid_in_app=False)
    rules_at(world, day, dt.time(11, 0))
    kiosk.place_id_card("self_pay")
    picked = kiosk.post(f"/api/kiosk/registrations/appointments/{appointment['registration_no']}/pick-up")
    order = picked["payment"]
    assert picked["registration"]["state"] == "held" and order["split"]["cash"] == appointment["fee"]
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    world.phone_pays(order)
    assert kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "completed"
    done = kiosk.get(f"/api/kiosk/registrations/{appointment['registration_no']}")["registration"]
    assert done["state"] == "registered" and done["queue_no"] == appointment["queue_no"]


def test_picking_up_outside_its_window_says_from_when_until_when(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    appointment = an_appointment(world, "self_pay", day, paid_in_app=False)
    rules_at(world, day - dt.timedelta(days=1), dt.time(15, 0))  # the afternoon before
    kiosk.place_id_card("self_pay")
    listed = next(a for a in kiosk.get("/api/kiosk/registrations/appointments")["appointments"]
                  if a["registration_no"] == appointment["registration_no"])
    window = f"{day.month}月{day.day}日 07:00"
    assert not listed["can_pick_up"] and window in listed["note"] and f"{day.month}月{day.day}日 12:00" in listed["note"]
    refused = kiosk.post(f"/api/kiosk/registrations/appointments/{appointment['registration_no']}/pick-up",
                         expect=422)
    assert refused["message"] == listed["note"] and refused["next_step"]
    assert world.his_registration(appointment["registration_no"])["status"] == "booked"  # nothing changed
    assert world.rows() == []


def test_todays_slip_is_reprinted_marked_as_such_until_the_limit(world):
    kiosk = world.kiosk
    his_today = world.his_tomorrow() - dt.timedelta(days=1)
    rules_at(world, his_today, dt.time(9, 0))
    kiosk.insert_insurance_card("local_employee")  # the demo gives her today's registrations made at a window
    today = kiosk.get("/api/kiosk/registrations/today")["registrations"]
    assert today and all(r["can_reprint"] and r["reprints_left"] == 2 for r in today)
    first = today[0]
    for left in (1, 0):
        slip = Receipt.model_validate(kiosk.post(f"/api/kiosk/registrations/today/{first['registration_no']}/reprint"))
        text = render_text(slip)
        assert "挂号条（补打）" in text and f"序号：{first['queue_no']}" in text and first["department_name"] in text
        assert "王*国" in text and "王建国" not in text
        assert next(r for r in kiosk.get("/api/kiosk/registrations/today")["registrations"]
                    if r["registration_no"] == first["registration_no"])["reprints_left"] == left
    refused = kiosk.post(f"/api/kiosk/registrations/today/{first['registration_no']}/reprint", expect=409)
    assert "2" in refused["message"] and refused["next_step"]
    with world.container.uow() as uow:
        prints = list(uow.session.scalars(select(DocumentPrint).where(
            DocumentPrint.doc_key == f"registration:{first['registration_no']}")))
    assert [(p.seq, p.copy, p.device_id) for p in prints] == [(1, True, "K001"), (2, True, "K001")]


# -- cancelling (退号) ---------------------------------------------------------------------------------
def a_paid_registration(world, persona: str, *, card: bool) -> tuple[dict, dict, dict, dt.date]:
    kiosk, day = world.kiosk, world.his_tomorrow()
    kiosk.insert_insurance_card(persona) if card else kiosk.place_id_card(persona)
    _, _, slot = a_department_with_numbers(kiosk, day)
    held = hold(kiosk, slot, day)
    order = held["payment"]
    if order["state"] != "completed":
        kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
        world.phone_pays(order)
    assert kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "completed"
    registered = kiosk.get(f"/api/kiosk/registrations/{held['registration']['registration_no']}")["registration"]
    assert registered["state"] == "registered"
    return registered, order, slot, day


def test_a_self_pay_patient_cancels_before_the_morning_and_gets_the_fee_back(world):
    registration, order, slot, day = a_paid_registration(world, "self_pay", card=False)
    before = world.remaining(slot["schedule_id"], day)
    cancelled = world.kiosk.post(f"/api/kiosk/registrations/{registration['registration_no']}/cancel")
    assert cancelled["registration"]["state"] == "cancelled"
    payment = cancelled["payment"]
    assert payment["state"] == "refunded" and payment["refunded_amount"] == payment["paid_amount"] == slot["fee"]
    assert world.his_registration(registration["registration_no"])["status"] == "cancelled"
    assert world.remaining(slot["schedule_id"], day) == before + 1  # the number is on sale again
    trade = world.container.channel.query(f"{order['order_no']}P1")
    assert trade.state in ("REFUND", "REFUNDED", "SUCCESS") and world.container.channel.query_refund(
        f"{order['order_no']}R1").state == "SUCCESS"
    invoices = httpx.get(f"{world.sims['einvoice']}/__sim__/state/invoices").json()
    rows = invoices.values() if isinstance(invoices, dict) else invoices
    assert [i["status"] for i in rows if i.get("invoice_no") == payment["invoice_no"]] == ["voided"]
    again = world.kiosk.post(f"/api/kiosk/registrations/{registration['registration_no']}/cancel")
    assert again["payment"]["refunded_amount"] == slot["fee"]  # asked twice: refunded once


def test_an_insured_patient_cancelling_has_the_settlement_cancelled_and_the_visit_withdrawn(world):
    registration, order, _slot, _day = a_paid_registration(world, "local_employee", card=True)
    cancelled = world.kiosk.post(f"/api/kiosk/registrations/{registration['registration_no']}/cancel")
    assert cancelled["payment"]["state"] == "refunded", cancelled["payment"]
    infnos = [c["operation"] for c in httpx.get(f"{world.sims['insurance']}/__sim__/calls").json()]
    assert "2208" in infnos and "2202" in infnos and infnos.index("2208") < infnos.index("2202")


def test_a_patient_sees_the_numbers_taken_here_and_which_can_still_be_cancelled(world):
    registration, _order, _slot, day = a_paid_registration(world, "self_pay", card=False)
    listed = world.kiosk.get("/api/kiosk/registrations/mine")["registrations"]
    assert [(r["registration_no"], r["can_cancel"], r["note"]) for r in listed] == [
        (registration["registration_no"], True, "")]
    rules_at(world, day, dt.time(8, 30))
    late = world.kiosk.get("/api/kiosk/registrations/mine")["registrations"][0]
    assert late["can_cancel"] is False and late["note"] and late["next_step"]
    world.kiosk.post(f"/api/kiosk/registrations/{registration['registration_no']}/cancel", expect=409)
    rules_at(world, day - dt.timedelta(days=1), dt.time(15, 0))
    world.kiosk.post(f"/api/kiosk/registrations/{registration['registration_no']}/cancel")
    assert world.kiosk.get("/api/kiosk/registrations/mine")["registrations"] == []  # cancelled: gone from the list


def test_cancelling_after_the_morning_started_is_refused_and_changes_nothing(world):
    registration, order, _slot, day = a_paid_registration(world, "self_pay", card=False)
    rules_at(world, day, dt.time(8, 30))
    refused = world.kiosk.post(f"/api/kiosk/registrations/{registration['registration_no']}/cancel", expect=409)
    assert refused["message"] and refused["next_step"]
    assert world.his_registration(registration["registration_no"])["status"] == "registered"
    assert world.kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "completed"


def test_a_cancellation_whose_refund_cannot_start_now_is_finished_by_the_sweep(world):
    registration, order, slot, _day = a_paid_registration(world, "self_pay", card=False)
    assert world.his("POST", "/__sim__/faults", json={"operation": "payments.cancel", "kind": "error",
                                                      "status": 503, "count": 1}).status_code == 200
    first = world.kiosk.post(f"/api/kiosk/registrations/{registration['registration_no']}/cancel")
    assert first["registration"]["state"] == "cancelling" and first["payment"]["state"] == "completed"
    assert world.his_registration(registration["registration_no"])["status"] == "cancelled"
    registrations_of(world.container).release_abandoned()  # the recovery round's sweep
    assert [r.state for r in world.rows()] == ["cancelled"]
    after = world.kiosk.get(f"/api/kiosk/payments/{order['order_no']}")
    assert after["state"] == "refunded" and after["refunded_amount"] == slot["fee"]


# -- the swap to insurance (换号) -------------------------------------------------------------------------
def swappable_tomorrow(world, persona: str) -> dict:
    tomorrow = world.his_tomorrow().isoformat()
    listed = world.kiosk.get("/api/kiosk/registrations/swappable")
    assert listed["insurance_available"]
    return next(r for r in listed["registrations"] if r["date"] == tomorrow)


def app_refund(world, registration_no: str):
    return world.container.channel.query_refund(f"{registration_no}SW")


def test_a_cross_province_patient_swaps_an_app_paid_registration_to_insurance_keeping_the_number(world):
    kiosk = world.kiosk
    kiosk.insert_insurance_card("cross_province_filed")
    app_paid = swappable_tomorrow(world, "cross_province_filed")
    before = world.his_registration(app_paid["registration_no"])
    swapped = kiosk.post(f"/api/kiosk/registrations/swappable/{app_paid['registration_no']}/swap")
    order = swapped["payment"]
    assert order["mode"] == "insurance" and order["cross_region_notice"].startswith("异地医保")
    if order["state"] != "completed":
        kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
        world.phone_pays(order)
    assert kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "completed"
    done = kiosk.get(f"/api/kiosk/registrations/{app_paid['registration_no']}")["registration"]
    assert done["state"] == "registered" and done["queue_no"] == app_paid["queue_no"] == before["queue_no"]
    after = world.his_registration(app_paid["registration_no"])
    assert (after["doctor_code"], after["schedule_id"], after["queue_no"]) == (
        before["doctor_code"], before["schedule_id"], before["queue_no"])
    assert after["swapped_at"] and after["app_refund_due"] is False and after["app_refund_no"]
    refund = app_refund(world, app_paid["registration_no"])
    assert refund.state == "SUCCESS" and refund.refund_amount == Decimal(app_paid["app_paid_amount"])
    assert refund.out_trade_no == before["app_trade_no"]
    text, _ = slip_text(kiosk, app_paid["registration_no"])
    assert f"序号：{app_paid['queue_no']}" in text and "异地医保" in text


def test_a_swap_given_up_leaves_the_app_paid_registration_as_it_was(world):
    kiosk, day = world.kiosk, world.his_tomorrow()
    booked = an_appointment(world, "local_resident", day, paid_in_app=True)  # no account balance: cash to pay
    assert world.his("POST", "/__sim__/data/registrations", json=[{
        **booked, "registration_no": "GHAPPSWAP1", "status": "registered", "queue_no": booked["queue_no"] + 1,
        "app_trade_no": "APPSWAP000001"}]).status_code == 200
    kiosk.insert_insurance_card("local_resident")
    app_paid = swappable_tomorrow(world, "local_resident")
    swapped = kiosk.post(f"/api/kiosk/registrations/swappable/{app_paid['registration_no']}/swap")
    assert swapped["payment"]["state"] == "presettled" and Decimal(swapped["payment"]["split"]["cash"]) > 0
    kiosk.post(f"/api/kiosk/payments/{swapped['payment']['order_no']}/pay", {"method": "qr"})
    released = kiosk.post(f"/api/kiosk/registrations/{app_paid['registration_no']}/release")
    assert released["registration"]["state"] == "released"
    after = world.his_registration(app_paid["registration_no"])
    assert after["status"] == "registered" and after["queue_no"] == app_paid["queue_no"]
    assert not after.get("swapped_at") and not after.get("swap_visit_no")
    assert app_refund(world, app_paid["registration_no"]) is None  # the app payment stands
    assert kiosk.get(f"/api/kiosk/payments/{swapped['payment']['order_no']}")["paid_amount"] == "0.00"


def test_an_app_refund_the_channel_fails_is_retried_by_the_sweep_until_it_is_done(world):
    kiosk = world.kiosk
    kiosk.insert_insurance_card("local_employee")
    app_paid = swappable_tomorrow(world, "local_employee")
    assert httpx.post(f"{world.sims['payment']}/__sim__/faults", json={
        "operation": "refund.create", "kind": "error", "status": 503, "count": 2}).status_code == 200
    swapped = kiosk.post(f"/api/kiosk/registrations/swappable/{app_paid['registration_no']}/swap")
    order = swapped["payment"]
    if order["state"] != "completed":
        kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
        world.phone_pays(order)
    assert kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "completed"
    waiting = kiosk.get(f"/api/kiosk/registrations/{app_paid['registration_no']}")["registration"]
    assert waiting["state"] == "refunding_app" and app_refund(world, app_paid["registration_no"]) is None
    registrations_of(world.container).release_abandoned()  # the sweep: the channel answers now
    assert [r.state for r in world.rows()] == ["registered"]
    assert app_refund(world, app_paid["registration_no"]).state == "SUCCESS"
    assert world.his_registration(app_paid["registration_no"])["app_refund_due"] is False


def test_a_patient_identified_without_insurance_is_told_how_to_swap(world):
    world.kiosk.place_id_card("self_pay")
    listed = world.kiosk.get("/api/kiosk/registrations/swappable")
    assert listed == {"registrations": [], "insurance_available": False,
                      "note": "换成医保挂号需要先用医保卡或医保电子凭证识别身份。"}
    refused = world.kiosk.post("/api/kiosk/registrations/swappable/GH1/swap", expect=422)
    assert refused["next_step"] == "请插医保卡或出示医保电子凭证后再试"
