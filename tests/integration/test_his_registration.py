"""Registration (挂号) at the HIS gateway: hold, confirm by posting, release, cancel, appointments to pick up."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.his.http import HisHttpAdapter
from medkiosk.adapters.his.port import (
    CheckInKind,
    CheckInNotice,
    PaymentChannel,
    PaymentPosting,
    Registration,
    RegistrationStatus,
)
from medkiosk.simulators.his.app import create_app
from medkiosk.simulators.personas import PERSONAS

from simulator_fixtures import advance_to, sim_now, simulator_fixtures

server, sim = simulator_fixtures(create_app, name="his-sim")

LOCAL = PERSONAS["local_employee"]
RESIDENT = PERSONAS["local_resident"]
SAME_PROVINCE = PERSONAS["same_province"]
CROSS = PERSONAS["cross_province_filed"]


@pytest.fixture
def his(server, sim):
    with HisHttpAdapter(server.url, timeout=5) as adapter:
        yield adapter


def tomorrow_morning(sim, at: dt.time) -> dt.datetime:
    now = sim_now(sim)
    return dt.datetime.combine(now.date() + dt.timedelta(days=1), at, tzinfo=now.tzinfo)


def open_slot(his, sim, *, other_than: str = ""):
    """A schedule of tomorrow morning with numbers left (tomorrow, so no test depends on the hour)."""
    tomorrow = sim_now(sim).date() + dt.timedelta(days=1)
    return next(s for s in his.list_schedules(tomorrow)
                if s.half_day.value == "am" and s.remaining >= 5 and s.schedule_id != other_than)


def remaining(his, slot) -> int:
    return next(s.remaining for s in his.list_schedules(slot.date, doctor_code=slot.doctor_code)
                if s.schedule_id == slot.schedule_id)


def fee_posting(registration: Registration, key: str = "") -> PaymentPosting:
    assert registration.fee is not None and registration.visit_no and registration.fee_order_no
    return PaymentPosting(
        idempotency_key=key or f"PO-{registration.registration_no}-post", patient_id=registration.patient_id,
        visit_no=registration.visit_no, order_nos=[registration.fee_order_no], total=registration.fee,
        fund=Decimal("0.00"), account=Decimal("0.00"), cash=registration.fee, channel=PaymentChannel.WECHAT,
        trade_no=f"4200{registration.registration_no}", paid_at=dt.datetime.now(dt.UTC).replace(microsecond=0))


def refusal_code(call) -> str:
    with pytest.raises(UpstreamRefused) as refused:
        call()
    assert refused.value.message
    return refused.value.code


def generated_patients(sim, count: int) -> list[str]:
    personas = {p.patient_id for p in PERSONAS.values()}
    return [p["patient_id"] for p in sim.get("/__sim__/state/patients").json()
            if p["patient_id"] not in personas][:count]


# -- holding and confirming ---------------------------------------------------------------------------
def test_a_held_number_waits_for_its_exact_fee_and_posting_the_fee_registers_the_patient(his, sim):
    slot = open_slot(his, sim)
    before = sim_now(sim)
    held = his.hold_registration(idempotency_key="RG-1", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    assert held.status is RegistrationStatus.PENDING_PAYMENT and held.source == "kiosk"
    assert (held.date, held.half_day, held.doctor_code, held.fee) == (slot.date, slot.half_day, slot.doctor_code,
                                                                      slot.fee)
    assert held.queue_no == slot.total - slot.remaining + 1  # the first number not given out yet
    assert held.window_start < held.window_end and held.department_name and held.doctor_name
    assert dt.timedelta(minutes=14) <= held.hold_until - before <= dt.timedelta(minutes=16)
    assert remaining(his, slot) == slot.remaining - 1

    [visit] = [v for v in his.unpaid_orders(LOCAL.patient_id) if v.visit_no == held.visit_no]
    assert visit.total_amount == slot.fee == sum(i.amount for i in visit.items)
    assert [i.name for i in visit.items] == ["挂号费", "门诊诊查费"]
    assert visit.items[1].insurance_code and not visit.items[1].self_pay_only

    payment = his.post_payment(fee_posting(held))
    registered = his.registration(held.registration_no)
    assert registered.status is RegistrationStatus.REGISTERED and registered.queue_no == held.queue_no
    assert registered.receipt_no == payment.receipt_no
    assert all(v.visit_no != held.visit_no for v in his.unpaid_orders(LOCAL.patient_id))


def test_holding_again_with_the_same_key_answers_the_first_hold_and_takes_no_second_number(his, sim):
    slot = open_slot(his, sim)
    first = his.hold_registration(idempotency_key="RG-2", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    again = his.hold_registration(idempotency_key="RG-2", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    assert (again.registration_no, again.queue_no, again.visit_no) == (first.registration_no, first.queue_no,
                                                                       first.visit_no)
    assert remaining(his, slot) == slot.remaining - 1
    other = open_slot(his, sim, other_than=slot.schedule_id)
    assert refusal_code(lambda: his.hold_registration(idempotency_key="RG-2", patient_id=LOCAL.patient_id,
                                                      schedule_id=other.schedule_id)) == "IDEMPOTENCY_CONFLICT"


def test_the_last_three_numbers_go_to_exactly_three_of_eight_patients_holding_at_once(his, sim, server):
    slot = open_slot(his, sim)
    schedules = sim.get("/__sim__/state/schedules").json()
    for record in schedules:
        if record["schedule_id"] == slot.schedule_id:
            record["remaining"] = 3
    sim.post("/__sim__/load", json={"schedules": schedules}).raise_for_status()
    patients = generated_patients(sim, 8)
    results: dict[str, Registration | str] = {}
    start = threading.Barrier(len(patients))

    def hold(patient_id: str) -> None:
        with HisHttpAdapter(server.url, timeout=10) as adapter:
            start.wait()
            try:
                results[patient_id] = adapter.hold_registration(idempotency_key=f"RG-race-{patient_id}",
                                                                patient_id=patient_id, schedule_id=slot.schedule_id)
            except UpstreamRefused as exc:
                results[patient_id] = exc.code

    threads = [threading.Thread(target=hold, args=(p,)) for p in patients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = [r for r in results.values() if isinstance(r, Registration)]
    assert len(held) == 3 and sorted(r for r in results.values() if isinstance(r, str)) == ["slot_full"] * 5
    assert len({r.queue_no for r in held}) == 3 and max(r.queue_no for r in held) <= slot.total
    assert remaining(his, slot) == 0


def test_a_full_schedule_an_unknown_one_and_a_second_number_of_the_same_half_day_are_refused(his, sim):
    tomorrow = sim_now(sim).date() + dt.timedelta(days=1)
    [full] = [s for s in his.list_schedules(tomorrow, doctor_code="D010102") if s.half_day.value == "am"]
    assert full.remaining == 0
    assert refusal_code(lambda: his.hold_registration(idempotency_key="RG-full", patient_id=LOCAL.patient_id,
                                                      schedule_id=full.schedule_id)) == "slot_full"
    with pytest.raises(UpstreamNotFound):
        his.hold_registration(idempotency_key="RG-none", patient_id=LOCAL.patient_id, schedule_id="S20990101X")
    slot = open_slot(his, sim)
    his.hold_registration(idempotency_key="RG-dup-1", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    assert refusal_code(lambda: his.hold_registration(idempotency_key="RG-dup-2", patient_id=LOCAL.patient_id,
                                                      schedule_id=slot.schedule_id)) == "duplicate"


def test_a_half_day_that_is_over_gives_no_number(his, sim):
    slot = open_slot(his, sim)
    advance_to(sim, tomorrow_morning(sim, dt.time(12, 5)))
    assert refusal_code(lambda: his.hold_registration(idempotency_key="RG-late", patient_id=LOCAL.patient_id,
                                                      schedule_id=slot.schedule_id)) == "half_day_over"


# -- releasing -----------------------------------------------------------------------------------------
def test_releasing_a_hold_gives_its_number_back_and_voids_its_fee(his, sim):
    slot = open_slot(his, sim)
    held = his.hold_registration(idempotency_key="RG-3", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    released = his.release_registration(held.registration_no, idempotency_key="RG-3-R")
    assert released.status is RegistrationStatus.RELEASED
    assert remaining(his, slot) == slot.remaining
    assert all(v.visit_no != held.visit_no for v in his.unpaid_orders(LOCAL.patient_id))
    assert his.release_registration(held.registration_no, idempotency_key="RG-3-R").status \
        is RegistrationStatus.RELEASED
    # The number given back is the next one given out.
    again = his.hold_registration(idempotency_key="RG-4", patient_id=RESIDENT.patient_id,
                                  schedule_id=slot.schedule_id)
    assert again.queue_no == held.queue_no


def test_a_paid_registration_cannot_be_released(his, sim):
    slot = open_slot(his, sim)
    held = his.hold_registration(idempotency_key="RG-5", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    his.post_payment(fee_posting(held))
    assert refusal_code(lambda: his.release_registration(held.registration_no, idempotency_key="RG-5-R")) \
        == "already_registered"


def test_a_hold_past_its_time_is_released_and_its_late_posting_refused_so_the_money_goes_back(his, sim):
    sim.post("/__sim__/settings", json={"hold_minutes": 5}).raise_for_status()
    slot = open_slot(his, sim)
    held = his.hold_registration(idempotency_key="RG-6", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    assert held.hold_until - sim_now(sim) <= dt.timedelta(minutes=5)
    sim.post("/__sim__/clock", json={"advance_seconds": 6 * 60}).raise_for_status()
    assert his.registration(held.registration_no).status is RegistrationStatus.RELEASED
    assert remaining(his, slot) == slot.remaining
    assert refusal_code(lambda: his.post_payment(fee_posting(held))) == "REGISTRATION_RELEASED"
    assert sim.get("/__sim__/state/payments").json() == []


# -- cancelling (退号) ----------------------------------------------------------------------------------
def test_a_paid_registration_is_cancelled_before_its_half_day_and_names_the_payment_to_refund(his, sim):
    slot = open_slot(his, sim)
    held = his.hold_registration(idempotency_key="RG-7", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    payment = his.post_payment(fee_posting(held))
    assert refusal_code(lambda: his.cancel_payment(payment.receipt_no, "PO-x-cancel", "退款")) == "REGISTRATION_ACTIVE"

    cancelled = his.cancel_registration(held.registration_no, idempotency_key="RG-7-C", reason="患者退号")
    assert cancelled.status is RegistrationStatus.CANCELLED and cancelled.receipt_no == payment.receipt_no
    assert cancelled.cancel_reason == "患者退号" and cancelled.cancelled_at is not None
    assert remaining(his, slot) == slot.remaining
    assert his.cancel_registration(held.registration_no, idempotency_key="RG-7-C", reason="患者退号").status \
        is RegistrationStatus.CANCELLED
    # The payment engine then cancels the posting and refunds; the fee is not owed again.
    his.cancel_payment(payment.receipt_no, "PO-x-cancel", "退号退款")
    assert all(v.visit_no != held.visit_no for v in his.unpaid_orders(LOCAL.patient_id))


def test_cancelling_is_refused_once_the_half_day_has_started(his, sim):
    slot = open_slot(his, sim)
    held = his.hold_registration(idempotency_key="RG-8", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    his.post_payment(fee_posting(held))
    advance_to(sim, tomorrow_morning(sim, dt.time(8, 1)))
    assert refusal_code(lambda: his.cancel_registration(held.registration_no, idempotency_key="RG-8-C",
                                                        reason="患者退号")) == "half_day_started"


def test_cancelling_is_refused_after_check_in_and_for_an_unpaid_hold(his, sim):
    registration = his.registrations_today(CROSS.patient_id)[0]
    his.check_in(CheckInNotice(idempotency_key="CI-1", kind=CheckInKind.REGISTRATION,
                               reference=registration.registration_no, patient_id=CROSS.patient_id,
                               department_code=registration.department_code, queue_no=str(registration.queue_no),
                               checked_in_at=dt.datetime.now(dt.UTC).replace(microsecond=0)))
    assert refusal_code(lambda: his.cancel_registration(registration.registration_no, idempotency_key="RG-9-C",
                                                        reason="患者退号")) == "checked_in"
    slot = open_slot(his, sim)
    held = his.hold_registration(idempotency_key="RG-9", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    assert refusal_code(lambda: his.cancel_registration(held.registration_no, idempotency_key="RG-9-C2",
                                                        reason="患者退号")) == "not_registered"


def test_a_registration_number_ending_in_refuse_cannot_be_cancelled_at_a_kiosk(his, sim):
    tomorrow = sim_now(sim).date() + dt.timedelta(days=1)
    sim.post("/__sim__/data/registrations", json=[{
        "registration_no": "GH20990101-REFUSE", "patient_id": LOCAL.patient_id, "date": tomorrow.isoformat(),
        "half_day": "pm", "department_code": "0101", "doctor_code": "D010102", "level": "ordinary", "queue_no": 99,
        "fee": "10.00", "status": "registered", "source": "window"}]).raise_for_status()
    with pytest.raises(UpstreamRefused) as refused:
        his.cancel_registration("GH20990101-REFUSE", idempotency_key="RG-10-C", reason="患者退号")
    assert refused.value.code == "cancel_refused" and "窗口" in refused.value.message


# -- appointments to pick up (预约取号) -------------------------------------------------------------------
def test_appointments_to_pick_up_are_the_patients_booked_ones_earliest_first(his, sim):
    [paid] = his.appointments(LOCAL.patient_id)
    assert paid.status is RegistrationStatus.BOOKED and paid.source == "app"
    assert paid.paid_in_app and paid.app_paid_amount == paid.fee
    [unpaid] = his.appointments(RESIDENT.patient_id)
    assert not unpaid.paid_in_app and unpaid.date == sim_now(sim).date()
    [later] = his.appointments(SAME_PROVINCE.patient_id)
    assert later.date == sim_now(sim).date() + dt.timedelta(days=1) and later.source == "phone"
    assert his.appointments(CROSS.patient_id) == []


def test_an_appointment_paid_in_the_app_is_registered_at_pick_up(his, sim):
    tomorrow = sim_now(sim).date() + dt.timedelta(days=1)
    sim.post("/__sim__/data/registrations", json=[{
        "registration_no": "GH20990101APP", "patient_id": CROSS.patient_id, "date": tomorrow.isoformat(),
        "half_day": "am", "department_code": "0101", "doctor_code": "D010102", "level": "ordinary", "queue_no": 40,
        "fee": "10.00", "status": "booked", "source": "app", "app_trade_no": "APP2099000001",
        "app_paid_amount": "10.00"}]).raise_for_status()
    [booked] = his.appointments(CROSS.patient_id)
    picked = his.pick_up_appointment(booked.registration_no, idempotency_key="PU-1")
    assert picked.status is RegistrationStatus.REGISTERED and picked.app_trade_no == "APP2099000001"
    assert picked.visit_no is None and his.appointments(CROSS.patient_id) == []
    assert his.pick_up_appointment(booked.registration_no, idempotency_key="PU-1").status \
        is RegistrationStatus.REGISTERED
    assert refusal_code(lambda: his.pick_up_appointment(booked.registration_no, idempotency_key="PU-2")) \
        == "already_picked_up"


def test_an_unpaid_appointment_picked_up_waits_for_its_fee_like_a_hold(his, sim):
    [booked] = his.appointments(SAME_PROVINCE.patient_id)
    picked = his.pick_up_appointment(booked.registration_no, idempotency_key="PU-3")
    assert picked.status is RegistrationStatus.PENDING_PAYMENT and picked.queue_no == booked.queue_no
    assert picked.hold_until is not None and picked.visit_no
    [visit] = [v for v in his.unpaid_orders(SAME_PROVINCE.patient_id) if v.visit_no == picked.visit_no]
    assert visit.total_amount == booked.fee
    his.post_payment(fee_posting(picked))
    assert his.registration(booked.registration_no).status is RegistrationStatus.REGISTERED


def test_a_picked_up_appointment_not_paid_in_time_is_booked_again(his, sim):
    [booked] = his.appointments(SAME_PROVINCE.patient_id)
    picked = his.pick_up_appointment(booked.registration_no, idempotency_key="PU-4")
    sim.post("/__sim__/clock", json={"advance_seconds": 16 * 60}).raise_for_status()
    [again] = his.appointments(SAME_PROVINCE.patient_id)
    assert again.registration_no == booked.registration_no and again.queue_no == booked.queue_no
    assert all(v.visit_no != picked.visit_no for v in his.unpaid_orders(SAME_PROVINCE.patient_id))
    assert refusal_code(lambda: his.post_payment(fee_posting(picked))) == "REGISTRATION_RELEASED"


# -- faults ---------------------------------------------------------------------------------------------
def test_a_hold_without_an_answer_is_an_unknown_outcome_and_holding_again_with_its_key_is_safe(his, sim):
    slot = open_slot(his, sim)
    sim.post("/__sim__/faults", json={"operation": "registrations.hold", "kind": "error",
                                      "count": 1}).raise_for_status()
    with pytest.raises(UpstreamUnknown):
        his.hold_registration(idempotency_key="RG-11", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    held = his.hold_registration(idempotency_key="RG-11", patient_id=LOCAL.patient_id, schedule_id=slot.schedule_id)
    assert held.status is RegistrationStatus.PENDING_PAYMENT and remaining(his, slot) == slot.remaining - 1
