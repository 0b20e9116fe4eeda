"""The bank POS's settlement batch: the simulated terminal's batches, the agent's daily settlement and
give-backs around it, and the reconciliation's comparison of batch lines with our card payments."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from medkiosk.agent.client import ServiceClient
from medkiosk.agent.drivers.base import PosKind, PosSaleSettled
from medkiosk.agent.drivers.simulated import SimulatedPos
from medkiosk.agent.pos import BATCHES, REPORTS, TASKS, Outbox, PosTerminal, settlement_day
from medkiosk.domain.reconciliation import (
    BatchFigures,
    DiscrepancyKind,
    OurCardTrade,
    PosLine,
    Severity,
    batch_totals_mismatch,
    classify_pos_line,
    match_pos_lines,
    missing_batch,
)
from medkiosk.security.signing import DeviceSigner, generate_key

SHANGHAI = ZoneInfo("Asia/Shanghai")
SALE_KEY, GIVE_BACK_KEY = "PO20261126000000000001P1", "PO20261126000000000001R1"


# -- the simulated terminal ----------------------------------------------------------------------------
def test_a_settled_batch_lists_its_lines_with_totals_and_the_next_batch_starts_empty():
    pos = SimulatedPos(terminal_id="00000009")
    kept = pos.sale(Decimal("30.00"), SALE_KEY)
    voided = pos.sale(Decimal("12.50"), "PO20261126000000000002P1")
    pos.void(voided.reference, "PO20261126000000000002R1")

    batch = pos.settle()

    assert (batch.batch_no, batch.terminal_id) == ("000001", "00000009")
    assert [(line.kind, line.amount, line.key) for line in batch.lines] == [
        (PosKind.SALE, Decimal("30.00"), SALE_KEY), (PosKind.SALE, Decimal("12.50"), "PO20261126000000000002P1"),
        (PosKind.VOID, Decimal("12.50"), "PO20261126000000000002R1")]
    assert batch.lines[2].original_reference == voided.reference
    assert (batch.sale_count, batch.sale_amount, batch.void_count, batch.void_amount, batch.refund_count) == \
        (2, Decimal("42.50"), 1, Decimal("12.50"), 0)
    assert batch.net_amount == kept.amount
    following = pos.settle()
    assert following.batch_no == "000002" and following.lines == [] and following.net_amount == 0


def test_a_settled_sale_cannot_be_voided_only_refunded():
    pos = SimulatedPos()
    sale = pos.sale(Decimal("30.00"), SALE_KEY)
    pos.settle()

    with pytest.raises(PosSaleSettled) as refused:
        pos.void(sale.reference, GIVE_BACK_KEY)
    assert "已结算" in refused.value.message

    refund = pos.refund(Decimal("30.00"), sale.reference, GIVE_BACK_KEY)
    assert refund.kind is PosKind.REFUND and pos.open_batch[0].kind is PosKind.REFUND


def test_a_void_repeated_after_settlement_returns_the_first_answer():
    pos = SimulatedPos()
    sale = pos.sale(Decimal("30.00"), SALE_KEY)
    void = pos.void(sale.reference, GIVE_BACK_KEY)
    pos.settle()
    assert pos.void(sale.reference, GIVE_BACK_KEY) == void


# -- the agent's settlement ------------------------------------------------------------------------------
def test_the_settlement_day_is_the_last_one_whose_settlement_time_has_passed():
    at = "23:30"
    assert settlement_day(datetime(2026, 11, 26, 15, 29, tzinfo=timezone.utc), at, SHANGHAI) == date(2026, 11, 25)
    assert settlement_day(datetime(2026, 11, 26, 15, 30, tzinfo=timezone.utc), at, SHANGHAI) == date(2026, 11, 26)
    assert settlement_day(datetime(2026, 11, 26, 17, 0, tzinfo=timezone.utc), at, SHANGHAI) == date(2026, 11, 26)


class FakeService:
    """The service's POS endpoints, answering 200 and recording what the agent sent."""

    def __init__(self, tasks: list[dict] | None = None) -> None:
        self.tasks = tasks or []
        self.sent: list[tuple[str, dict]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == TASKS:
            tasks, self.tasks = self.tasks, []
            return httpx.Response(200, json={"tasks": tasks})
        self.sent.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"stored": True})


def terminal(tmp_path, service: FakeService, pos: SimulatedPos, clock: list[datetime]) -> PosTerminal:
    client = ServiceClient("http://service.test", DeviceSigner("K001", generate_key()),
                           transport=httpx.MockTransport(service.handler))
    return PosTerminal(pos, client, Outbox(tmp_path / "pos-outbox.json"), settle_at="23:30", tz=SHANGHAI,
                       now=lambda: clock[0])


def test_the_agent_settles_once_after_the_settlement_time_and_the_service_gets_the_batch(tmp_path):
    service, pos = FakeService(), SimulatedPos()
    clock = [datetime(2026, 11, 26, 2, 0, tzinfo=timezone.utc)]  # 10:00 in the hospital
    agent = terminal(tmp_path, service, pos, clock)
    agent.round()  # a new agent: starts counting, settles nothing yet
    pos.sale(Decimal("30.00"), SALE_KEY)
    agent.round()
    assert [path for path, _ in service.sent] == [] and pos.batches == []

    clock[0] = datetime(2026, 11, 26, 15, 31, tzinfo=timezone.utc)  # 23:31
    agent.round()
    agent.round()

    assert len(pos.batches) == 1
    assert [(path, body["business_date"], len(body["lines"])) for path, body in service.sent] == [
        (BATCHES, "2026-11-26", 1)]
    assert agent.outbox.pending() == []
    restarted = terminal(tmp_path, service, pos, clock)  # the day settled is on disk
    restarted.round()
    assert len(pos.batches) == 1


def test_a_batch_the_service_did_not_get_stays_in_the_outbox_and_is_sent_again(tmp_path):
    service, pos = FakeService(), SimulatedPos()
    clock = [datetime(2026, 11, 26, 15, 31, tzinfo=timezone.utc)]
    agent = terminal(tmp_path, service, pos, clock)
    agent._mark_settled(date(2026, 11, 25))
    down = True

    def flaky(request: httpx.Request) -> httpx.Response:
        if down and request.url.path == BATCHES:
            raise httpx.ConnectError("service down")
        return service.handler(request)

    agent.client = ServiceClient("http://service.test", DeviceSigner("K001", generate_key()),
                                 transport=httpx.MockTransport(flaky))
    agent.round()
    assert [entry["kind"] for entry in agent.outbox.pending()] == ["batch"]
    down = False
    agent.round()
    assert agent.outbox.pending() == [] and [path for path, _ in service.sent] == [BATCHES]
    assert len(pos.batches) == 1


def test_a_void_asked_after_the_settlement_is_made_as_a_refund(tmp_path):
    pos = SimulatedPos()
    sale = pos.sale(Decimal("30.00"), SALE_KEY)
    pos.settle()  # 23:30, and HIS refuses the posting before midnight: the service still asks for a void
    service = FakeService(tasks=[{"key": GIVE_BACK_KEY, "kind": "void", "amount": "30.00",
                                  "reference": sale.reference, "trade_no": SALE_KEY}])
    agent = terminal(tmp_path, service, pos, [datetime(2026, 11, 26, 15, 40, tzinfo=timezone.utc)])
    agent._mark_settled(date(2026, 11, 26))

    agent.round()

    assert [(path, body["kind"], body["status"], body["amount"]) for path, body in service.sent] == [
        (REPORTS, "refund", "approved", "30.00")]
    assert pos.query(GIVE_BACK_KEY).kind is PosKind.REFUND


# -- the reconciliation's comparison ------------------------------------------------------------------------
def line(key: str = SALE_KEY, kind: str = "sale", amount: int = 3000) -> PosLine:
    return PosLine(key, kind, amount, "A1B2C3D4E5F6", "K001", "00000001", "000001")


def ours(kind: str = "sale", amount: int = 3000, *, state: str = "completed", done: bool = True) -> OurCardTrade:
    return OurCardTrade("PO20261126000000000001", "K001", kind, state, done, amount)


def test_lines_that_agree_with_our_card_payments_are_no_discrepancy():
    index = {SALE_KEY: ours(), GIVE_BACK_KEY: ours("void", state="refunded")}
    found, clean = match_pos_lines([line(), line(GIVE_BACK_KEY, "void")], index, [SALE_KEY, GIVE_BACK_KEY])
    assert (found, clean) == ([], 2)


def test_a_refund_made_where_a_void_was_asked_is_no_discrepancy():
    assert classify_pos_line(line(GIVE_BACK_KEY, "refund"), ours("void", state="refunded")) is None


@pytest.mark.parametrize(("pos_line", "our_trade", "kind", "severity"), [
    (line(), None, DiscrepancyKind.POS_ONLY, Severity.CRITICAL),
    (line(), ours(amount=0, state="closed", done=False), DiscrepancyKind.POS_ONLY, Severity.CRITICAL),
    (line(), ours(amount=0, state="awaiting_payment", done=False), DiscrepancyKind.STATE_MISMATCH,
     Severity.WARNING),
    (line(amount=3100), ours(), DiscrepancyKind.AMOUNT_MISMATCH, Severity.CRITICAL),
    (line(GIVE_BACK_KEY, "refund"), None, DiscrepancyKind.REFUND_MISMATCH, Severity.CRITICAL),
    (line(GIVE_BACK_KEY, "void", 2000), ours("void"), DiscrepancyKind.REFUND_MISMATCH, Severity.CRITICAL),
    (line(GIVE_BACK_KEY, "void"), ours("void", state="refunding", done=False), DiscrepancyKind.STATE_MISMATCH,
     Severity.WARNING),
    (line(SALE_KEY, "refund"), ours(), DiscrepancyKind.REFUND_MISMATCH, Severity.CRITICAL),
])
def test_each_difference_of_a_pos_line_is_classified(pos_line, our_trade, kind, severity):
    found = classify_pos_line(pos_line, our_trade)
    assert (found.kind, found.severity, found.reference) == (kind, severity, pos_line.key)
    assert found.theirs == Decimal(pos_line.amount) / 100 and found.details["device_id"] == "K001"
    assert found.fix


def test_our_payments_and_give_backs_missing_from_the_batch_are_found():
    index = {SALE_KEY: ours(), GIVE_BACK_KEY: ours("refund", state="refunded")}
    found, clean = match_pos_lines([], index, [SALE_KEY, GIVE_BACK_KEY])
    assert clean == 0
    assert [(d.kind, d.severity, d.ours) for d in found] == [
        (DiscrepancyKind.OURS_ONLY, Severity.CRITICAL, Decimal("30.00")),
        (DiscrepancyKind.STATE_MISMATCH, Severity.CRITICAL, Decimal("30.00"))]
    assert "没有这笔交易" in found[0].message and "没有收到退款" in found[1].message


def test_a_batch_whose_totals_do_not_add_up_is_a_totals_mismatch():
    lines = (line(), line("PO20261126000000000002P1", amount=1250))
    agreed = BatchFigures("K001", "00000001", "000001", 2, 4250, 0, 0, 0, 0, 4250, lines)
    assert batch_totals_mismatch(agreed) is None
    short = BatchFigures("K001", "00000001", "000001", 1, 3000, 0, 0, 0, 0, 3000, lines)
    found = batch_totals_mismatch(short)
    assert found.kind is DiscrepancyKind.TOTALS_MISMATCH and found.reference == "K001/000001"
    assert "消费" in found.message


def test_a_missing_batch_is_critical_when_the_kiosk_took_cards_that_day():
    took_cards = missing_batch("K001", date(2026, 11, 26), 2, 4250)
    quiet = missing_batch("K002", date(2026, 11, 26), 0, 0)
    assert (took_cards.kind, took_cards.severity, took_cards.ours) == (
        DiscrepancyKind.BATCH_MISSING, Severity.CRITICAL, Decimal("42.50"))
    assert (quiet.severity, quiet.ours, quiet.reference) == (Severity.WARNING, None, "K002")
