"""The outpatient split rules: properties that hold for every bill, and worked examples to the fen."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medkiosk.simulators.his.data import CATALOG as HIS_CATALOG
from medkiosk.simulators.insurance.data import (
    ANY_REGION,
    DEFAULT_CATALOG,
    DEFAULT_POLICIES,
    CatalogEntryRecord,
    PolicyKind,
    PolicyRecord,
    policy_kind,
)
from medkiosk.simulators.insurance.split import (
    UNLISTED,
    CatalogEntry,
    ItemClass,
    ItemSplit,
    Policy,
    fen,
    line_amount,
    split_bill,
    split_item,
)
from medkiosk.simulators.personas import HOSPITAL_ADMDVS, PERSONAS

D = Decimal
ZERO = D("0.00")


def _catalog(region: str = HOSPITAL_ADMDVS) -> dict[str, CatalogEntry]:
    return {e.med_list_codg: e.entry() for e in DEFAULT_CATALOG if e.admdvs == region}


def _policy(region: str, kind: PolicyKind) -> Policy:
    rows = {(p.admdvs, p.kind): p for p in DEFAULT_POLICIES}
    return (rows.get((region, kind)) or rows[(ANY_REGION, kind)]).policy()


def _lines(*items: tuple[str, str, str], region: str = HOSPITAL_ADMDVS) -> list[ItemSplit]:
    """(HIS item code, quantity, unit price) → the lines as the treating region's catalog classes them."""
    catalog = _catalog(region)
    return [split_item(D(quantity), D(price), catalog.get(HIS_CATALOG[code].insurance_code or ""))
            for code, quantity, price in items]


# -- the tables ---------------------------------------------------------------------------------
def test_the_hospitals_catalog_covers_every_insurance_code_the_his_bills():
    catalog = _catalog()
    missing = [item.item_code for item in HIS_CATALOG.values()
               if item.insurance_code and item.insurance_code not in catalog]

    assert missing == []


def test_his_items_marked_self_pay_only_are_class_c_and_items_without_a_code_are_unlisted():
    catalog = _catalog()
    for item in HIS_CATALOG.values():
        if item.self_pay_only and item.insurance_code:
            assert catalog[item.insurance_code].item_class is ItemClass.C, item.item_code


def test_every_persona_with_insurance_has_a_policy_row_for_each_kind():
    regions = {p.insurance.insuplc_admdvs for p in PERSONAS.values() if p.insurance}
    rows = {(p.admdvs, p.kind) for p in DEFAULT_POLICIES}

    assert {(r, k) for r in regions for k in PolicyKind} <= rows


@pytest.mark.parametrize(("insutype", "psn_type", "med_type", "kind"), [
    ("310", "11", "11", PolicyKind.EMPLOYEE),
    ("310", "12", "11", PolicyKind.RETIRED),
    ("310", "1201", "11", PolicyKind.RETIRED),
    ("390", "1501", "11", PolicyKind.RESIDENT),
    ("310", "12", "14", PolicyKind.SPECIAL_DISEASE),
    ("390", "1501", "14", PolicyKind.SPECIAL_DISEASE),
])
def test_the_policy_row_follows_the_scheme_the_person_type_and_the_visit_kind(insutype, psn_type, med_type, kind):
    assert policy_kind(insutype, psn_type, med_type) is kind


def test_the_cross_province_region_has_a_policy_of_its_own():
    assert _policy("340100", PolicyKind.RETIRED) != _policy("320100", PolicyKind.RETIRED)


@pytest.mark.parametrize(("level", "ratio"), [("01", "0.10"), ("03", "0.50")])
def test_a_catalog_entry_whose_ratio_contradicts_its_class_is_refused(level, ratio):
    with pytest.raises(ValueError):
        CatalogEntryRecord(admdvs="320100", med_list_codg="X", name="x", chrgitm_lv=level, med_chrgitm_type="09",
                           selfpay_prop=D(ratio))


def test_a_policy_row_refuses_a_ratio_above_one():
    with pytest.raises(ValueError):
        PolicyRecord(admdvs="320100", kind="employee", deductible="1.00", fund_ratio=D("1.5"), visit_cap="1.00")


# -- one line -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("entry", "quantity", "price", "parts"), [
    (CatalogEntry(ItemClass.A, D("0")), "2", "15.80", ("31.60", "0.00", "0.00", "0.00", "31.60")),
    (CatalogEntry(ItemClass.B, D("0.10")), "1", "180.00", ("180.00", "0.00", "0.00", "18.00", "162.00")),
    (CatalogEntry(ItemClass.B, D("0.10")), "3", "18.60", ("55.80", "0.00", "0.00", "5.58", "50.22")),
    (CatalogEntry(ItemClass.C, D("1")), "1", "68.00", ("68.00", "68.00", "0.00", "0.00", "0.00")),
    (None, "6", "0.50", ("3.00", "3.00", "0.00", "0.00", "0.00")),
    (CatalogEntry(ItemClass.B, D("0.10"), price_cap=D("420.00")), "1", "450.00",
     ("450.00", "0.00", "30.00", "42.00", "378.00")),
    (CatalogEntry(ItemClass.B, D("0.10")), "1", "0.05", ("0.05", "0.00", "0.00", "0.01", "0.04")),  # half-up
])
def test_a_line_is_split_by_its_class_and_price_cap(entry, quantity, price, parts):
    line = split_item(D(quantity), D(price), entry)

    assert (line.amount, line.full_self_pay, line.over_limit, line.pre_self_pay, line.in_scope) == tuple(map(D, parts))


def test_an_unlisted_code_is_class_c():
    line = split_item(D("1"), D("32.00"), None)

    assert (line.item_class, line.self_pay_ratio, line.full_self_pay) == (ItemClass.C, D("1"), D("32.00"))
    assert UNLISTED.item_class is ItemClass.C


def test_a_line_amount_is_quantity_times_price_rounded_half_up_at_the_fen():
    assert line_amount(D("3"), D("0.0133")) == D("0.04")
    assert line_amount(D("0.5"), D("0.05")) == D("0.03")
    assert fen(D("7.105")) == D("7.11") and fen(D("84.762")) == D("84.76")


# -- worked examples, exactly as the docs' table shows them ---------------------------------------
EXAMPLES = {
    # name: (insured region, kind, lines, deductible already paid this year, balance, use account,
    #        expected (total, full self-pay, over limit, pre self-pay, in scope, deductible, fund, account, cash))
    "local retired employee, first bill of the year": (
        "320100", PolicyKind.RETIRED, [("E0001", "1", "180.00"), ("J0001", "1", "20.00"), ("Y0101", "1", "68.00")],
        "0.00", "1520.35", True,
        ("268.00", "68.00", "0.00", "18.00", "182.00", "100.00", "65.60", "202.40", "0.00")),
    "local resident: no personal account": (
        "320100", PolicyKind.RESIDENT, [("J0001", "1", "20.00"), ("J0002", "1", "60.00"), ("Y0004", "2", "9.80")],
        "0.00", "0.00", False,
        ("99.60", "0.00", "0.00", "0.00", "99.60", "50.00", "24.80", "0.00", "74.80")),
    "same province, other city: its own policy": (
        "320200", PolicyKind.EMPLOYEE, [("E0001", "1", "180.00"), ("E0003", "1", "25.00"), ("Y0003", "2", "18.60")],
        "0.00", "860.00", True,
        ("242.20", "0.00", "0.00", "21.72", "220.48", "150.00", "52.86", "189.34", "0.00")),
    "cross province, filed: treating catalog, insured policy (340100)": (
        "340100", PolicyKind.RETIRED, [("E0001", "1", "180.00"), ("E0003", "1", "25.00")],
        "0.00", "2310.50", True,
        ("205.00", "0.00", "0.00", "18.00", "187.00", "150.00", "27.75", "177.25", "0.00")),
    "special disease: no deductible, 0.85": (
        "320100", PolicyKind.SPECIAL_DISEASE, [("Y0003", "3", "18.60"), ("J0003", "1", "55.00")],
        "0.00", "3045.80", True,
        ("110.80", "0.00", "0.00", "11.08", "99.72", "0.00", "84.76", "26.04", "0.00")),
    "deductible crossed by the second bill of the year": (
        "320100", PolicyKind.RETIRED, [("J0001", "1", "20.00"), ("E0001", "1", "180.00")],
        "60.00", "1520.35", True,
        ("200.00", "0.00", "0.00", "18.00", "182.00", "40.00", "113.60", "86.40", "0.00")),
    "deductible not reached: all on the patient": (
        "320100", PolicyKind.EMPLOYEE, [("E0001", "1", "180.00"), ("J0001", "1", "20.00"), ("J0004", "1", "10.00")],
        "0.00", "655.40", True,
        ("210.00", "0.00", "0.00", "18.00", "192.00", "192.00", "0.00", "210.00", "0.00")),
    "visit cap and price cap: resident, MRI above its cap": (
        "320100", PolicyKind.RESIDENT, [("E0004", "1", "450.00"), ("E0001", "1", "180.00")],
        "0.00", "0.00", False,
        ("630.00", "0.00", "30.00", "60.00", "540.00", "50.00", "100.00", "0.00", "530.00")),
    "account smaller than the patient's part: cash pays the rest": (
        "320100", PolicyKind.RETIRED, [("E0001", "1", "180.00"), ("J0001", "1", "20.00"), ("Y0101", "1", "68.00")],
        "100.00", "50.00", True,
        ("268.00", "68.00", "0.00", "18.00", "182.00", "0.00", "145.60", "50.00", "72.40")),
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_worked_example(name):
    region, kind, items, paid, balance, use_account, expected = EXAMPLES[name]
    policy = _policy(region, kind)

    split = split_bill(_lines(*items), policy, deductible_left=max(ZERO, policy.deductible - D(paid)),
                       fund_cap_left=policy.visit_cap, balance=D(balance), use_account=use_account)

    assert (split.total, split.full_self_pay, split.over_limit, split.pre_self_pay, split.in_scope, split.deductible,
            split.fund, split.account, split.cash) == tuple(map(D, expected))
    assert split.balance_after == D(balance) - split.account
    assert split.fund_ratio == policy.fund_ratio


def test_the_treating_regions_catalog_not_the_insured_regions_classes_a_line():
    here, there = _lines(("E0001", "1", "180.00")), _lines(("E0001", "1", "180.00"), region="340100")

    assert (here[0].item_class, there[0].item_class) == (ItemClass.B, ItemClass.A)


def test_the_fund_share_is_rounded_half_up_and_the_remainder_is_cash():
    line = ItemSplit(D("10.15"), ZERO, ZERO, ZERO, D("10.15"), item_class=ItemClass.A, self_pay_ratio=D("0"))
    split = split_bill([line], Policy(ZERO, D("0.70"), D("100.00")), deductible_left=ZERO, fund_cap_left=D("100.00"),
                       balance=ZERO, use_account=False)

    assert (split.fund, split.cash) == (D("7.11"), D("3.04"))  # 10.15 × 0.70 = 7.105


def test_the_fund_pays_no_more_than_is_left_of_the_visit_cap():
    lines = _lines(("E0002", "1", "120.00"))
    split = split_bill(lines, Policy(ZERO, D("0.80"), D("400.00")), deductible_left=ZERO, fund_cap_left=D("30.00"),
                       balance=ZERO, use_account=False)

    assert (split.fund, split.cash) == (D("30.00"), D("90.00"))


# -- properties ---------------------------------------------------------------------------------
cents = st.integers(min_value=0, max_value=2_000_000).map(lambda n: D(n) / 100)
ratios = st.integers(min_value=0, max_value=100).map(lambda n: D(n) / 100)
quantities = st.one_of(st.integers(min_value=1, max_value=50).map(D),
                       st.integers(min_value=1, max_value=1000).map(lambda n: D(n) / 100))
prices = st.one_of(cents.filter(lambda d: d <= 5000),
                   st.integers(min_value=0, max_value=10_000_000).map(lambda n: D(n) / 10_000))
entries = st.one_of(
    st.none(),
    st.builds(lambda cap: CatalogEntry(ItemClass.A, D("0"), price_cap=cap), st.one_of(st.none(), cents)),
    st.builds(lambda ratio, cap: CatalogEntry(ItemClass.B, ratio, price_cap=cap), ratios, st.one_of(st.none(), cents)),
    st.just(CatalogEntry(ItemClass.C, D("1"))),
)
lines = st.lists(st.builds(split_item, quantities, prices, entries), min_size=1, max_size=12)
policies = st.builds(Policy, cents, ratios, cents)


@given(quantities, prices, entries)
def test_a_lines_parts_add_up_to_its_amount_and_none_is_negative(quantity, price, entry):
    line = split_item(quantity, price, entry)

    parts = (line.full_self_pay, line.over_limit, line.pre_self_pay, line.in_scope)
    assert sum(parts) == line.amount == line_amount(quantity, price)
    assert all(part >= 0 and part == fen(part) for part in parts)
    if entry is None or entry.item_class is ItemClass.C:
        assert line.full_self_pay == line.amount


@given(lines, policies, cents, cents, cents, st.booleans())
def test_a_bills_parts_add_up_exactly_and_respect_every_limit(items, policy, deductible_left, cap_left, balance,
                                                              use_account):
    split = split_bill(items, policy, deductible_left=deductible_left, fund_cap_left=cap_left, balance=balance,
                       use_account=use_account)

    assert split.fund + split.account + split.cash == split.total == sum(i.amount for i in items)
    assert (split.full_self_pay + split.over_limit + split.pre_self_pay + split.in_scope) == split.total
    for amount in (split.fund, split.account, split.cash, split.deductible, split.patient_part, split.balance_after):
        assert amount >= 0 and amount == fen(amount)
    assert split.account <= balance and split.balance_after == balance - split.account
    assert split.deductible <= min(deductible_left, split.in_scope)
    assert split.fund <= min(cap_left, split.in_scope - split.deductible)
    if not use_account:
        assert split.account == 0
    else:
        assert split.account == min(split.patient_part, balance)


@given(lines, policies)
def test_with_no_deductible_left_and_no_cap_the_fund_is_the_ratio_of_the_in_scope_amount(items, policy):
    split = split_bill(items, policy, deductible_left=ZERO, fund_cap_left=D("99999999.99"), balance=ZERO,
                       use_account=False)

    assert split.fund == fen(split.in_scope * policy.fund_ratio)
    assert split.cash == split.total - split.fund


@given(st.integers(min_value=-10_000, max_value=-1).map(lambda n: D(n) / 100))
def test_negative_limits_are_refused(negative):
    with pytest.raises(ValueError):
        split_bill([], Policy(ZERO, D("0.5"), ZERO), deductible_left=negative, fund_cap_left=ZERO, balance=ZERO,
                   use_account=False)
