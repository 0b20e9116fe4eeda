"""The HIS gateway's registrations of today and check-in (报到), simulator and adapter together."""

from __future__ import annotations

import datetime as dt

import pytest

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused
from medkiosk.adapters.his.http import HisHttpAdapter
from medkiosk.adapters.his.port import CheckInKind, CheckInNotice, RegistrationStatus
from medkiosk.simulators.his.app import create_app
from medkiosk.simulators.personas import PERSONAS

from simulator_fixtures import simulator_fixtures

server, sim = simulator_fixtures(create_app, name="his-sim")

CROSS = PERSONAS["cross_province_filed"]
SELF_PAY = PERSONAS["self_pay"]


@pytest.fixture
def his(server, sim):
    with HisHttpAdapter(server.url, timeout=5) as adapter:
        yield adapter


def notice(registration, **changes) -> CheckInNotice:
    fields = dict(idempotency_key=f"CI-{registration.registration_no}", kind=CheckInKind.REGISTRATION,
                  reference=registration.registration_no, patient_id=registration.patient_id,
                  department_code=registration.department_code, queue_no=str(registration.queue_no),
                  checked_in_at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0), device_id="K001")
    return CheckInNotice(**{**fields, **changes})


def test_a_cross_region_patient_has_a_morning_and_an_afternoon_registration_today(his):
    found = his.registrations_today(CROSS.patient_id)
    assert [(r.department_name, r.half_day.value) for r in found] == [("呼吸与危重症医学科", "am"), ("心血管内科", "pm")]
    first = found[0]
    assert first.status is RegistrationStatus.REGISTERED and first.checked_in_at is None
    assert first.window_start < first.window_end and first.location


def test_checking_in_is_recorded_once_and_a_repeat_answers_the_first_time(his, sim):
    registration = his.registrations_today(CROSS.patient_id)[0]
    first = his.check_in(notice(registration))
    again = his.check_in(notice(registration, checked_in_at=first.checked_in_at + dt.timedelta(minutes=1)))
    assert again.checked_in_at == first.checked_in_at and again.queue_no == str(registration.queue_no)
    assert his.registrations_today(CROSS.patient_id)[0].checked_in_at == first.checked_in_at
    assert len(sim.get("/__sim__/state/check_ins").json()) == 1


def test_unpaid_and_cancelled_registrations_and_strangers_are_refused(his):
    mine = his.registrations_today(SELF_PAY.patient_id)
    unpaid = next(r for r in mine if r.status is RegistrationStatus.UNPAID)
    with pytest.raises(UpstreamRefused) as refused:
        his.check_in(notice(unpaid))
    assert "取号" in refused.value.message
    cancelled = next(r for r in his.registrations_today(PERSONAS["local_employee"].patient_id)
                     if r.status is RegistrationStatus.CANCELLED)
    with pytest.raises(UpstreamRefused):
        his.check_in(notice(cancelled))
    with pytest.raises(UpstreamNotFound):
        his.check_in(notice(mine[0], patient_id=CROSS.patient_id, idempotency_key="CI-other"))


def test_a_check_in_fault_is_an_unknown_outcome_for_the_adapter(his, sim):
    from medkiosk.adapters.errors import UpstreamUnknown

    sim.post("/__sim__/faults", json={"operation": "check_ins.post", "kind": "error", "count": 1}).raise_for_status()
    registration = his.registrations_today(CROSS.patient_id)[0]
    with pytest.raises(UpstreamUnknown):
        his.check_in(notice(registration))
    assert his.check_in(notice(registration)).reference == registration.registration_no
