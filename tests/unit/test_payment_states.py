"""The money state machine: every allowed move, every illegal one refused, and split arithmetic."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medkiosk.domain.payment import (
    ALLOWED,
    AmountMismatch,
    IllegalTransition,
    PaymentState,
    Split,
    check_transition,
    out_refund_no,
    out_trade_no,
    pos_give_back_kind,
    refundable,
)

ALL = list(PaymentState)
MOVES = [(a, b) for a in ALL for b in ALL]


@pytest.mark.parametrize(("current", "target"), MOVES, ids=[f"{a.value}->{b.value}" for a, b in MOVES])
def test_only_the_moves_the_machine_allows_are_taken(current, target):
    if target in ALLOWED[current]:
        assert check_transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition):
            check_transition(current, target)


def test_finished_orders_never_move_again():
    for state in (PaymentState.COMPLETED, PaymentState.REFUNDED, PaymentState.CLOSED, PaymentState.FAILED):
        assert state.terminal and not ALLOWED[state]


def test_money_once_paid_can_only_end_completed_or_refunded():
    """From PAID, every path ends COMPLETED or REFUNDED: never CLOSED (that would keep the money)."""
    reachable, frontier = set(), [PaymentState.PAID]
    while frontier:
        state = frontier.pop()
        for nxt in ALLOWED[state]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert {s for s in reachable if s.terminal} == {PaymentState.COMPLETED, PaymentState.REFUNDED}


def test_every_unfinished_state_can_still_finish():
    for state in ALL:
        if state.terminal:
            continue
        seen, frontier = set(), [state]
        while frontier:
            for nxt in ALLOWED[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert any(s.terminal for s in seen), state


fen = st.integers(min_value=0, max_value=10_000_000).map(lambda n: Decimal(n) / 100)


@given(fund=fen, account=fen, cash=fen)
def test_a_split_always_sums_to_its_total_to_the_fen(fund, account, cash):
    split = Split(fund + account + cash, fund, account, cash)
    assert split.fund + split.account + split.cash == split.total


@given(total=fen, off=st.integers(min_value=1, max_value=100).map(lambda n: Decimal(n) / 100))
def test_a_split_that_does_not_add_up_is_refused(total, off):
    with pytest.raises(AmountMismatch):
        Split(total + off, total, Decimal("0.00"), Decimal("0.00"))


def test_negative_parts_and_fractions_of_a_fen_are_refused():
    with pytest.raises(ValueError):
        Split(Decimal("1.00"), Decimal("2.00"), Decimal("-1.00"), Decimal("0.00"))
    with pytest.raises(ValueError):
        Split(Decimal("1.005"), Decimal("1.005"), Decimal("0"), Decimal("0"))


@given(paid=fen, refunded=fen, asked=fen)
def test_refunds_never_exceed_what_was_paid(paid, refunded, asked):
    refunded = min(refunded, paid)
    allowed = refundable(paid, refunded, asked)
    assert Decimal("0") <= allowed <= asked
    assert refunded + allowed <= paid


def test_idempotency_keys_are_derived_from_the_order():
    assert out_trade_no("PO20261125000001") == out_trade_no("PO20261125000001")
    assert out_trade_no("PO20261125000001", 2) != out_trade_no("PO20261125000001")
    assert out_refund_no("PO20261125000001") != out_trade_no("PO20261125000001")


SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(("sold_at", "now", "kind"), [
    # 23:59 UTC is 07:59 in Shanghai: the sale and the give-back share the hospital's day.
    ("2026-11-25T23:59:23+00:00", "2026-11-25T23:59:24+00:00", "void"),
    ("2026-11-25T23:59:23+00:00", "2026-11-26T15:59:59+00:00", "void"),
    # Past midnight in Shanghai (16:00 UTC) the bank has settled the sale's batch: refund.
    ("2026-11-26T15:59:59+00:00", "2026-11-26T16:00:01+00:00", "refund"),
    ("2026-11-24T10:00:00+08:00", "2026-11-26T10:00:00+08:00", "refund"),
])
def test_a_card_sale_is_voided_on_the_hospitals_day_of_sale_and_refunded_after(sold_at, now, kind):
    assert pos_give_back_kind(datetime.fromisoformat(sold_at), datetime.fromisoformat(now), SHANGHAI) == kind


def test_a_completed_payment_moves_again_only_when_the_patient_asks_for_it_back():
    for target in PaymentState:
        with pytest.raises(IllegalTransition):
            check_transition(PaymentState.COMPLETED, target)  # never by itself
    assert check_transition(PaymentState.COMPLETED, PaymentState.UNWINDING, giving_back=True) is PaymentState.UNWINDING
    assert check_transition(PaymentState.COMPLETED, PaymentState.REFUNDING, giving_back=True) is PaymentState.REFUNDING
    for final in (PaymentState.REFUNDED, PaymentState.CLOSED, PaymentState.FAILED):
        for target in PaymentState:
            with pytest.raises(IllegalTransition):
                check_transition(final, target, giving_back=True)  # what is given back stays given back
