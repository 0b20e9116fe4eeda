"""Inspections and consumables: checks from telemetry, the schedule, run-out estimates (pure)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from medkiosk.domain.consumables import remaining_prints, run_out_at, runs_out_before, usual_use
from medkiosk.domain.inspections import Snapshot, check, due_slot, next_slot, parse_times

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 2, 8, 0, 30, tzinfo=SHANGHAI)
PRINTER_OK = {"state": "ok", "paper": "ok", "driver": "escpos"}


def snapshot(**changes) -> Snapshot:
    values = {"device_id": "K001", "online": True, "last_seen_at": NOW, "peripherals": {"receipt_printer": PRINTER_OK},
              "cpu_percent": 20.0, "memory_percent": 40.0, "disk_percent": 50.0}
    return Snapshot(**{**values, **changes})


def test_a_healthy_kiosk_has_no_findings():
    assert check(snapshot()) == []


def test_an_offline_kiosk_is_one_finding_not_its_stale_peripherals():
    found = check(snapshot(online=False, peripherals={"receipt_printer": {"state": "fault", "paper": "out"}}))
    assert [f.code for f in found] == ["offline"]


def test_paper_out_a_faulty_reader_a_full_disk_and_failures_are_each_found():
    found = check(snapshot(peripherals={"receipt_printer": {"state": "fault", "paper": "out"},
                                        "id_card_reader": {"state": "fault", "detail": "读卡超时"}},
                           disk_percent=95.0, transactions_today=40, failures_today=8,
                           runs_out=("凭条打印纸",)))
    codes = {f.code: f.text for f in found}
    assert set(codes) == {"paper_out", "peripheral_fault", "disk_high", "failures", "runs_out"}
    assert codes["peripheral_fault"] == "身份证读卡器故障：读卡超时"
    assert "20%" in codes["failures"] and "下次巡检前用完" in codes["runs_out"]


def test_the_default_schedule_opens_the_latest_slot_that_has_come_once():
    times = parse_times("08:00, 12:30,16:30")
    assert times == (time(8), time(12, 30), time(16, 30))
    assert due_slot(times, NOW - timedelta(minutes=1), SHANGHAI, []) is None  # 07:59:30
    slot = due_slot(times, NOW, SHANGHAI, [])
    assert slot == datetime(2026, 3, 2, 8, 0, tzinfo=SHANGHAI)
    assert due_slot(times, NOW + timedelta(minutes=5), SHANGHAI, [slot.astimezone(timezone.utc)]) is None
    # The service was down from 11:00 to 17:00: only the 16:30 round is opened, not the missed 12:30 one.
    assert due_slot(times, datetime(2026, 3, 2, 17, 0, tzinfo=SHANGHAI), SHANGHAI, [slot]).hour == 16


def test_next_slot_rolls_over_to_tomorrow_morning():
    times = parse_times("08:00,12:30,16:30")
    assert next_slot(times, datetime(2026, 3, 2, 17, 0, tzinfo=SHANGHAI), SHANGHAI) == \
        datetime(2026, 3, 3, 8, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("text", ["", "8点", "25:00"])
def test_a_bad_schedule_is_refused(text):
    with pytest.raises(ValueError):
        parse_times(text)


def test_a_receipt_roll_runs_out_during_the_afternoon_at_the_usual_use():
    # 250 receipts a roll; 190 transactions since it was loaded leaves 60.
    left = remaining_prints(250, 190, 1.0)
    assert left == 60
    # Usually 20 transactions an hour from 08:00 to 17:00 and none at night (7 days of history).
    hourly = {datetime(2026, 2, 23, h, tzinfo=SHANGHAI) + timedelta(days=d): 20 for d in range(7) for h in range(8, 17)}
    per_hour = usual_use(hourly, SHANGHAI, days=7)
    assert per_hour[9] == 20 and 3 not in per_hour
    at = run_out_at(left, per_hour, datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI), SHANGHAI, prints_per_transaction=1.0)
    assert at == datetime(2026, 3, 2, 13, 0, tzinfo=SHANGHAI)
    assert runs_out_before(at, datetime(2026, 3, 2, 12, 30, tzinfo=SHANGHAI)) is False
    assert runs_out_before(at, datetime(2026, 3, 2, 16, 30, tzinfo=SHANGHAI)) is True
    # In the evening the night uses nothing: the roll lasts into tomorrow morning.
    evening = run_out_at(left, per_hour, datetime(2026, 3, 2, 18, 0, tzinfo=SHANGHAI), SHANGHAI,
                         prints_per_transaction=1.0)
    assert evening == datetime(2026, 3, 3, 11, 0, tzinfo=SHANGHAI)


def test_without_use_nothing_runs_out_and_an_empty_item_is_out_now():
    assert run_out_at(10, {}, NOW, SHANGHAI, prints_per_transaction=1.0) is None
    assert run_out_at(0, {9: 5}, NOW, SHANGHAI, prints_per_transaction=1.0) == NOW
    assert remaining_prints(250, 400, 1.0) == 0
