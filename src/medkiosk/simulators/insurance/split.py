"""Outpatient settlement rules: how one fee line is classed (2204) and how a bill splits (2206/2207).

Pure functions over ``Decimal``: no state, no I/O, no clock. The simulator feeds them the
treating region's catalog entry for each line and the insured region's policy for the person;
docs/simulators/insurance.md tabulates both so amounts can be predicted to the fen.

Rounding is half-up at the fen wherever a ratio is applied (the patient's first share of a
class B line, the fund's share of the bill); the cash part is what is left, so any rounding
remainder lands on cash and ``fund + account + cash == total`` holds exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
ONE = Decimal("1")


class ItemClass(StrEnum):
    """A catalog class (``chrgitm_lv``): how much of a line the insurance covers."""

    A = "01"
    """Class A (甲类): fully in scope; the patient pays nothing first."""
    B = "02"
    """Class B (乙类): in scope after the patient first pays ``self_pay_ratio`` of it (preselfpay)."""
    C = "03"
    """Class C (丙类), or not in the catalog: the patient pays all of it (fulamt_ownpay)."""


DEFAULT_SELF_PAY_RATIO = {ItemClass.A: Decimal("0"), ItemClass.B: Decimal("0.10"), ItemClass.C: ONE}
OTHER_CHARGES = "14"  # med_chrgitm_type 其他费: what an unlisted item is counted as


def fen(amount: Decimal) -> Decimal:
    """``amount`` rounded half-up to the fen."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class CatalogEntry:
    """What the treating region's catalog says about one insurance code."""

    item_class: ItemClass
    self_pay_ratio: Decimal  # selfpay_prop: 0 for class A, e.g. 0.10 for class B, 1 for class C
    charge_type: str = OTHER_CHARGES  # med_chrgitm_type
    price_cap: Decimal | None = None  # pric_uplmt_amt: above it, the difference is over-limit (self-paid)

    def __post_init__(self) -> None:
        if not ZERO <= self.self_pay_ratio <= ONE:
            raise ValueError("a self-pay ratio lies between 0 and 1")
        if self.price_cap is not None and self.price_cap < 0:
            raise ValueError("a price cap cannot be negative")


UNLISTED = CatalogEntry(ItemClass.C, ONE)
"""What an insurance code the catalog does not list counts as: class C, paid in full by the patient."""


@dataclass(frozen=True)
class ItemSplit:
    """One fee line's amount in its four parts (the 2204 result for that line).

    ``full_self_pay + over_limit + pre_self_pay + in_scope == amount``.
    """

    amount: Decimal  # det_item_fee_sumamt
    full_self_pay: Decimal  # fulamt_ownpay_amt: class C lines
    over_limit: Decimal  # overlmt_amt: above the price cap
    pre_self_pay: Decimal  # preselfpay_amt: the patient's first share of a class B line
    in_scope: Decimal  # inscp_scp_amt: what the policy (deductible, fund ratio) applies to
    item_class: ItemClass = ItemClass.C
    self_pay_ratio: Decimal = ONE
    charge_type: str = OTHER_CHARGES
    price_cap: Decimal | None = None


def line_amount(quantity: Decimal, unit_price: Decimal) -> Decimal:
    """What a line should cost: quantity × unit price, to the fen."""
    return fen(quantity * unit_price)


def split_item(quantity: Decimal, unit_price: Decimal, entry: CatalogEntry | None) -> ItemSplit:
    """Class one line of ``quantity`` × ``unit_price`` by its catalog entry (``None``: unlisted)."""
    if quantity <= 0:
        raise ValueError("a fee line's quantity is positive")
    if unit_price < 0:
        raise ValueError("a unit price cannot be negative")
    entry = entry or UNLISTED
    amount = line_amount(quantity, unit_price)
    common = {"item_class": entry.item_class, "self_pay_ratio": entry.self_pay_ratio,
              "charge_type": entry.charge_type, "price_cap": entry.price_cap}
    if entry.item_class is ItemClass.C:
        return ItemSplit(amount, full_self_pay=amount, over_limit=ZERO, pre_self_pay=ZERO, in_scope=ZERO, **common)
    over_limit = ZERO
    if entry.price_cap is not None and unit_price > entry.price_cap:
        over_limit = min(amount, fen(quantity * (unit_price - entry.price_cap)))
    within = amount - over_limit
    pre_self_pay = fen(within * entry.self_pay_ratio)
    return ItemSplit(amount, full_self_pay=ZERO, over_limit=over_limit, pre_self_pay=pre_self_pay,
                     in_scope=within - pre_self_pay, **common)


@dataclass(frozen=True)
class Policy:
    """The insured region's outpatient policy for one kind of insured person."""

    deductible: Decimal  # 起付线: per calendar year, paid by the patient out of the in-scope amount
    fund_ratio: Decimal  # the fund's share of the in-scope amount above the deductible
    visit_cap: Decimal  # the most the fund pays for one visit (mdtrt_id), over all its settlements

    def __post_init__(self) -> None:
        if self.deductible < 0 or self.visit_cap < 0:
            raise ValueError("a deductible and a visit cap cannot be negative")
        if not ZERO <= self.fund_ratio <= ONE:
            raise ValueError("a fund ratio lies between 0 and 1")


@dataclass(frozen=True)
class BillSplit:
    """A bill in its parts (2206/2207 ``setlinfo``): ``fund + account + cash == total``."""

    total: Decimal  # medfee_sumamt
    full_self_pay: Decimal  # fulamt_ownpay_amt
    over_limit: Decimal  # overlmt_selfpay
    pre_self_pay: Decimal  # preselfpay_amt
    in_scope: Decimal  # inscp_scp_amt
    deductible: Decimal  # act_pay_dedc: the part of the deductible this bill paid
    fund: Decimal  # hifp_pay = fund_pay_sumamt
    fund_ratio: Decimal  # pool_prop_selfpay (the spec's name for the fund's ratio)
    patient_part: Decimal  # psn_part_amt = total - fund
    account: Decimal  # acct_pay
    cash: Decimal  # psn_cash_pay
    balance_after: Decimal  # balc


def split_bill(items: Iterable[ItemSplit], policy: Policy, *, deductible_left: Decimal, fund_cap_left: Decimal,
               balance: Decimal, use_account: bool) -> BillSplit:
    """Split the lines of one bill between the fund, the personal account and cash.

    ``deductible_left`` is what remains of this year's deductible, ``fund_cap_left`` what the
    fund may still pay for this visit, ``balance`` the personal account's, and ``use_account``
    whether the account pays the patient's part (as far as the balance goes).
    """
    if deductible_left < 0 or fund_cap_left < 0 or balance < 0:
        raise ValueError("deductible_left, fund_cap_left and balance cannot be negative")
    lines = list(items)
    total = sum((line.amount for line in lines), ZERO)
    full_self_pay = sum((line.full_self_pay for line in lines), ZERO)
    over_limit = sum((line.over_limit for line in lines), ZERO)
    pre_self_pay = sum((line.pre_self_pay for line in lines), ZERO)
    in_scope = sum((line.in_scope for line in lines), ZERO)

    deductible = min(in_scope, deductible_left)
    fund = min(fen((in_scope - deductible) * policy.fund_ratio), fund_cap_left)
    patient_part = total - fund
    account = min(patient_part, balance) if use_account else ZERO
    cash = patient_part - account
    return BillSplit(total=total, full_self_pay=full_self_pay, over_limit=over_limit, pre_self_pay=pre_self_pay,
                     in_scope=in_scope, deductible=deductible, fund=fund, fund_ratio=policy.fund_ratio,
                     patient_part=patient_part, account=account, cash=cash, balance_after=balance - account)
