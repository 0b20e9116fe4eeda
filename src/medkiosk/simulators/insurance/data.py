"""The insurance simulator's records and its starting data: the insured personas, the catalog, the policies.

Records are Pydantic models so anything loaded at run time (``/__sim__/data/people``) is checked
the same way as the built-in data. A person carries what later transactions need too (filing,
personal-account balance), not only what 1101 shows. The outpatient records (registrations, fee
details, settlements, processed messages, year-to-date counters) start empty and fill as the
platform works.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medkiosk.domain.identity import (
    birth_date_from_id,
    gender_from_id,
    is_valid_id_number,
)
from medkiosk.domain.money import Money, NonNegativeMoney
from medkiosk.simulators.insurance.split import (
    DEFAULT_SELF_PAY_RATIO,
    CatalogEntry,
    ItemClass,
    Policy,
)
from medkiosk.simulators.personas import HOSPITAL_ADMDVS, PERSONAS, Persona

SPECIAL_DISEASE_FILED_ON = date(2024, 1, 1)
SPECIAL_DISEASE_VALID_UNTIL = date(2027, 12, 31)


class SpecialDiseaseRecord(BaseModel):
    """A special-disease filing (门诊慢特病备案)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=30)
    name: str = Field(min_length=1, max_length=300)
    begndate: date = SPECIAL_DISEASE_FILED_ON
    enddate: date | None = SPECIAL_DISEASE_VALID_UNTIL


class PersonRecord(BaseModel):
    """One insured person as the platform holds them."""

    model_config = ConfigDict(extra="forbid")

    psn_no: str = Field(pattern=r"^\d{1,30}$")
    name: str = Field(min_length=1, max_length=50)
    id_number: str
    naty: str = "01"
    insutype: str = Field(pattern=r"^\d{3}$", description="310 employee basic, 390 resident basic")
    psn_type: str = Field(default="11", pattern=r"^\d{2,6}$")
    insu_status: Literal["1", "2", "4"] = Field(default="1", description="1 insured, 2 suspended, 4 ended")
    insured_since: date = date(2005, 7, 1)
    insuplc_admdvs: str = Field(pattern=r"^\d{6}$", description="insured region (参保地)")
    emp_name: str = ""
    cvlserv: bool = False
    card_no: str | None = Field(default=None, min_length=1, max_length=50)
    card_sn: str = Field(default="", max_length=64)
    lost_card: bool = False
    balance: Decimal = Field(default=Decimal("0.00"), ge=0, max_digits=12, decimal_places=2)
    filing: bool = Field(default=False, description="cross-region filing (异地备案) on record")
    special_diseases: list[SpecialDiseaseRecord] = []
    ec_qr: str = Field(default="", max_length=200, description="what the person's e-certificate QR carries")

    @field_validator("id_number")
    @classmethod
    def _valid_id_number(cls, value: str) -> str:
        value = value.strip().upper()
        if not is_valid_id_number(value):
            raise ValueError("not a valid resident ID number (check digit or birth date)")
        return value

    @model_validator(mode="after")
    def _card_needs_sn(self) -> "PersonRecord":
        if self.card_no and not self.card_sn:
            raise ValueError("a person with a card_no needs its card_sn (卡识别码)")
        return self

    @property
    def gend(self) -> str:
        return "1" if gender_from_id(self.id_number) == "M" else "2"

    @property
    def birth_date(self) -> date:
        return birth_date_from_id(self.id_number)


class TokenRecord(BaseModel):
    """An e-certificate token issued by ec.query; good for 1101 kind 01 until ``expires_at``."""

    model_config = ConfigDict(extra="forbid")

    ec_token: str = Field(min_length=1)
    psn_no: str
    org_id: str = Field(description="the fixmedins_code the QR was resolved for")
    issued_at: float
    expires_at: float


class SigninRecord(BaseModel):
    """A 9001 sign-in: its ``sign_no`` admits the hospital's transactions until ``expires_at``."""

    model_config = ConfigDict(extra="forbid")

    sign_no: str = Field(min_length=1)
    fixmedins_code: str
    opter_no: str = ""
    mac: str = ""
    ip: str = ""
    sign_time: str
    expires_at: float


_EMPLOYERS = {
    "local_employee": "示范市机械厂（退休）",
    "same_province": "无锡市某科技有限公司",
    "cross_province_filed": "合肥市某中学（退休）",
    "special_disease": "示范市纺织公司（退休）",
    "lost_card": "示范市第三中学",
    "inpatient": "示范市运输公司（退休）",
    "first_visit_insured": "示范市建设银行",
}


def person_from_persona(persona: Persona) -> PersonRecord:
    insurance = persona.insurance
    if insurance is None:
        raise ValueError(f"{persona.key} has no insurance: the platform does not know them")
    return PersonRecord(
        psn_no=insurance.psn_no,
        name=persona.name,
        id_number=persona.id_number,
        insutype=insurance.insutype,
        psn_type=insurance.psn_type,
        insuplc_admdvs=insurance.insuplc_admdvs,
        emp_name=_EMPLOYERS.get(persona.key, ""),
        card_no=insurance.card_no,
        card_sn=insurance.card_sn,
        lost_card=insurance.lost_card,
        balance=insurance.balance,
        filing=insurance.filing,
        special_diseases=[SpecialDiseaseRecord(code=code, name=name) for code, name in insurance.special_diseases],
        ec_qr=insurance.ec_qr,
    )


def persona_people() -> list[PersonRecord]:
    """Everyone in :data:`PERSONAS` with insurance; people without it are unknown to the platform."""
    return [person_from_persona(p) for p in PERSONAS.values() if p.insurance is not None]


# -- catalog and policies -----------------------------------------------------------------------
class CatalogEntryRecord(BaseModel):
    """One insurance code in one treatment region's catalog (医保目录): its class and price cap."""

    model_config = ConfigDict(extra="forbid")

    admdvs: str = Field(pattern=r"^\d{6}$", description="the treatment region whose catalog lists it")
    med_list_codg: str = Field(min_length=1, max_length=50)
    name: str = Field(min_length=1, max_length=200)
    chrgitm_lv: ItemClass
    med_chrgitm_type: str = Field(pattern=r"^\d{2}$")
    selfpay_prop: Decimal | None = Field(default=None, ge=0, le=1, description="default: 0 / 0.10 / 1 by class")
    pric_uplmt_amt: NonNegativeMoney | None = None

    @model_validator(mode="after")
    def _ratio_fits_class(self) -> "CatalogEntryRecord":
        if self.selfpay_prop is None:
            self.selfpay_prop = DEFAULT_SELF_PAY_RATIO[self.chrgitm_lv]
        if self.chrgitm_lv is ItemClass.A and self.selfpay_prop != 0:
            raise ValueError("a class 01 (甲) item has selfpay_prop 0")
        if self.chrgitm_lv is ItemClass.C and self.selfpay_prop != 1:
            raise ValueError("a class 03 (丙) item has selfpay_prop 1")
        return self

    def entry(self) -> CatalogEntry:
        return CatalogEntry(self.chrgitm_lv, self.selfpay_prop or Decimal("0"), self.med_chrgitm_type,
                            self.pric_uplmt_amt)


class PolicyKind(StrEnum):
    """Which row of an insured region's policy a settlement uses."""

    EMPLOYEE = "employee"
    """Employee basic insurance (insutype 310), in service."""
    RETIRED = "retired"
    """Employee basic insurance (insutype 310), retired (psn_type 12…)."""
    RESIDENT = "resident"
    """Resident basic insurance (insutype 390)."""
    SPECIAL_DISEASE = "special_disease"
    """A special-disease outpatient visit (med_type 14), whatever the scheme."""


SUPPORTED_INSUTYPES = ("310", "390")


def policy_kind(insutype: str, psn_type: str, med_type: str) -> PolicyKind:
    if med_type == "14":
        return PolicyKind.SPECIAL_DISEASE
    if insutype == "390":
        return PolicyKind.RESIDENT
    return PolicyKind.RETIRED if psn_type.startswith("12") else PolicyKind.EMPLOYEE


ANY_REGION = "*"


class PolicyRecord(BaseModel):
    """An insured region's outpatient policy for one kind of person (``admdvs`` ``*``: any other region)."""

    model_config = ConfigDict(extra="forbid")

    admdvs: str = Field(pattern=r"^(\d{6}|\*)$", description="the insured region (参保地), or * for the rest")
    kind: PolicyKind
    deductible: NonNegativeMoney = Field(description="起付线: per calendar year")
    fund_ratio: Decimal = Field(ge=0, le=1, description="the fund's share above the deductible")
    visit_cap: NonNegativeMoney = Field(description="the most the fund pays for one visit")

    def policy(self) -> Policy:
        return Policy(self.deductible, self.fund_ratio, self.visit_cap)


def _entry(admdvs: str, code: str, name: str, level: str, charge_type: str,
           cap: str | None = None) -> CatalogEntryRecord:
    return CatalogEntryRecord(admdvs=admdvs, med_list_codg=code, name=name, chrgitm_lv=ItemClass(level),
                              med_chrgitm_type=charge_type, pric_uplmt_amt=Decimal(cap) if cap else None)


# med_chrgitm_type: 02 诊察费, 03 检查费, 04 化验费, 05 治疗费, 08 卫生材料费, 09 西药费, 11 中成药费, 14 其他费.
# The hospital's own catalog (320100) covers every insurance code of the HIS simulator's CATALOG.
DEFAULT_CATALOG: list[CatalogEntryRecord] = [
    _entry(HOSPITAL_ADMDVS, "XB01ACA056A001010101443", "阿司匹林肠溶片", "01", "09"),
    _entry(HOSPITAL_ADMDVS, "XC08CAA048A001010100581", "苯磺酸氨氯地平片", "02", "09"),
    _entry(HOSPITAL_ADMDVS, "XA10BAA085A010010101921", "盐酸二甲双胍缓释片", "02", "09"),
    _entry(HOSPITAL_ADMDVS, "XJ01CAA040E001010101336", "阿莫西林胶囊", "01", "09"),
    _entry(HOSPITAL_ADMDVS, "ZR05DAA001X001010100342", "复方甘草口服溶液", "02", "11"),
    _entry(HOSPITAL_ADMDVS, "XB05BBH121B002010101012", "氯化钠注射液", "01", "09"),
    _entry(HOSPITAL_ADMDVS, "XL03ABZ125R001010100115", "重组人干扰素α2b喷雾剂", "03", "09"),
    _entry(HOSPITAL_ADMDVS, "002501010150000", "血常规（五分类）", "01", "04"),
    _entry(HOSPITAL_ADMDVS, "002503020010000", "肝功能全套", "01", "04"),
    _entry(HOSPITAL_ADMDVS, "002503040340000", "糖化血红蛋白测定", "02", "04"),
    _entry(HOSPITAL_ADMDVS, "002501020010000", "尿常规", "01", "04"),
    _entry(HOSPITAL_ADMDVS, "002103000010000", "胸部CT平扫", "02", "03"),
    _entry(HOSPITAL_ADMDVS, "002203000010000", "腹部彩超", "01", "03"),
    _entry(HOSPITAL_ADMDVS, "002202010010000", "常规十二导联心电图", "01", "03"),
    _entry(HOSPITAL_ADMDVS, "002104000010000", "头颅MRI平扫", "02", "03", cap="420.00"),
    _entry(HOSPITAL_ADMDVS, "002203000050000", "泌尿系彩超", "01", "03"),
    _entry(HOSPITAL_ADMDVS, "002203000070000", "子宫附件彩超", "01", "03"),
    _entry(HOSPITAL_ADMDVS, "001204000010000", "静脉输液", "01", "05"),
    _entry(HOSPITAL_ADMDVS, "001206000020000", "雾化吸入", "01", "05"),
    _entry(HOSPITAL_ADMDVS, "C14040100100001234500000000", "一次性使用输液器", "02", "08"),
    _entry(HOSPITAL_ADMDVS, "C14030100200001234500000000", "一次性使用无菌注射器", "02", "08"),
    _entry(HOSPITAL_ADMDVS, "001101000010000", "门诊诊查费", "01", "02"),
    # Another region's catalog classes some of the same codes differently; a patient insured there
    # but treated here is classed by the catalog above (the treating region's), never by this one.
    _entry("340100", "002103000010000", "胸部CT平扫", "01", "03"),
    _entry("340100", "XL03ABZ125R001010100115", "重组人干扰素α2b喷雾剂", "02", "09"),
    _entry("340100", "002503040340000", "糖化血红蛋白测定", "01", "04"),
]


def _policy(admdvs: str, kind: PolicyKind, deductible: str, ratio: str, cap: str) -> PolicyRecord:
    return PolicyRecord(admdvs=admdvs, kind=kind, deductible=Decimal(deductible), fund_ratio=Decimal(ratio),
                        visit_cap=Decimal(cap))


_E, _R, _P, _S = PolicyKind.EMPLOYEE, PolicyKind.RETIRED, PolicyKind.RESIDENT, PolicyKind.SPECIAL_DISEASE

# (insured region, kind, deductible per year, fund ratio, per-visit fund cap); see the table in
# docs/simulators/insurance.md. Special-disease visits have no deductible.
DEFAULT_POLICIES: list[PolicyRecord] = [
    _policy("320100", _E, "200.00", "0.70", "300.00"),
    _policy("320100", _R, "100.00", "0.80", "400.00"),
    _policy("320100", _P, "50.00", "0.50", "100.00"),
    _policy("320100", _S, "0.00", "0.85", "1000.00"),
    _policy("320200", _E, "150.00", "0.75", "300.00"),
    _policy("320200", _R, "80.00", "0.85", "400.00"),
    _policy("320200", _P, "60.00", "0.55", "100.00"),
    _policy("320200", _S, "0.00", "0.85", "1000.00"),
    _policy("340100", _E, "300.00", "0.65", "250.00"),
    _policy("340100", _R, "150.00", "0.75", "350.00"),
    _policy("340100", _P, "80.00", "0.45", "80.00"),
    _policy("340100", _S, "0.00", "0.80", "800.00"),
    _policy("420100", _E, "250.00", "0.70", "300.00"),
    _policy("420100", _R, "120.00", "0.80", "400.00"),
    _policy("420100", _P, "100.00", "0.50", "100.00"),
    _policy("420100", _S, "0.00", "0.85", "1000.00"),
    _policy(ANY_REGION, _E, "200.00", "0.70", "300.00"),
    _policy(ANY_REGION, _R, "100.00", "0.80", "400.00"),
    _policy(ANY_REGION, _P, "50.00", "0.50", "100.00"),
    _policy(ANY_REGION, _S, "0.00", "0.85", "1000.00"),
]


# -- outpatient records -------------------------------------------------------------------------
class RegistrationStatus(StrEnum):
    REGISTERED = "registered"
    """Open (2201): visit info, fee details and settlements may follow."""
    CANCELLED = "cancelled"
    """Cancelled by 2202, or by a reversal of its 2201: nothing more may happen on it."""


class RegistrationRecord(BaseModel):
    """An outpatient visit registered with the platform (2201), with its visit info (2203)."""

    model_config = ConfigDict(extra="forbid")

    mdtrt_id: str = Field(min_length=1)
    psn_no: str
    insutype: str
    insuplc_admdvs: str
    mdtrtarea_admvs: str
    fixmedins_code: str
    ipt_otp_no: str = Field(min_length=1, description="the hospital's visit number")
    begntime: str
    mdtrt_cert_type: str
    mdtrt_cert_no: str
    atddr_no: str = ""
    dr_name: str = ""
    dept_code: str = ""
    dept_name: str = ""
    caty: str = ""
    med_type: Literal["11", "14"] = "11"
    main_cond_dscr: str = ""
    dise_codg: str = ""
    dise_name: str = ""
    diseinfo: list[dict[str, Any]] = []
    status: RegistrationStatus = RegistrationStatus.REGISTERED
    msgid: str = Field(description="the 2201 that opened it")
    registered_at: str


class FeeDetailRecord(BaseModel):
    """One uploaded fee line (2204) with the platform's classing of it."""

    model_config = ConfigDict(extra="forbid")

    mdtrt_id: str
    feedetl_sn: str = Field(min_length=1)
    psn_no: str
    chrg_bchno: str = Field(min_length=1)
    fee_ocur_time: str
    med_list_codg: str = ""
    medins_list_codg: str = ""
    cnt: Decimal = Field(gt=0)
    pric: Decimal = Field(ge=0)
    det_item_fee_sumamt: NonNegativeMoney
    bilg_dept_codg: str = ""
    bilg_dr_codg: str = ""
    chrgitm_lv: ItemClass
    med_chrgitm_type: str
    selfpay_prop: Decimal
    pric_uplmt_amt: Money | None = None
    fulamt_ownpay_amt: NonNegativeMoney
    overlmt_amt: NonNegativeMoney
    preselfpay_amt: NonNegativeMoney
    inscp_scp_amt: NonNegativeMoney
    msgid: str = Field(description="the 2204 that uploaded it")
    setl_id: str | None = Field(default=None, description="the valid settlement that holds it, if any")


class SettlementStatus(StrEnum):
    VALID = "valid"
    """Settled (2207): the fund and the account have paid."""
    CANCELLED = "cancelled"
    """Cancelled by 2208: account and year-to-date counters restored."""
    REVERSED = "reversed"
    """Undone by a 2601 naming its 2207: account and year-to-date counters restored."""


SETTLEMENT_TRANSITIONS: dict[SettlementStatus, frozenset[SettlementStatus]] = {
    SettlementStatus.VALID: frozenset({SettlementStatus.CANCELLED, SettlementStatus.REVERSED}),
    SettlementStatus.CANCELLED: frozenset(),
    SettlementStatus.REVERSED: frozenset(),
}


class SettlementRecord(BaseModel):
    """A settlement (2207) and what became of it."""

    model_config = ConfigDict(extra="forbid")

    setl_id: str = Field(min_length=1)
    mdtrt_id: str
    chrg_bchno: str
    psn_no: str
    insutype: str
    psn_type: str = ""
    med_type: str
    insuplc_admdvs: str
    mdtrtarea_admvs: str
    fixmedins_code: str
    clr_optins: str
    clr_type: str
    clr_way: str = "1"
    policy_kind: PolicyKind
    acct_used_flag: Literal["0", "1"]
    medfee_sumamt: NonNegativeMoney
    fulamt_ownpay_amt: NonNegativeMoney
    overlmt_selfpay: NonNegativeMoney
    preselfpay_amt: NonNegativeMoney
    inscp_scp_amt: NonNegativeMoney
    act_pay_dedc: NonNegativeMoney
    hifp_pay: NonNegativeMoney
    pool_prop_selfpay: Decimal
    fund_pay_sumamt: NonNegativeMoney
    psn_part_amt: NonNegativeMoney
    acct_pay: NonNegativeMoney
    psn_cash_pay: NonNegativeMoney
    balc: NonNegativeMoney = Field(description="account balance right after it settled")
    setl_time: str = Field(description="yyyy-MM-dd HH:mm:ss, the simulator's clock")
    year: int = Field(description="the year whose deductible counter it touched")
    status: SettlementStatus = SettlementStatus.VALID
    msgid: str = Field(description="the 2207 that made it")
    cancel_setl_id: str | None = None
    undone_by_msgid: str | None = Field(default=None, description="the 2208 or 2601 that undid it")
    undone_at: str | None = None


class MessageStatus(StrEnum):
    PROCESSED = "processed"
    """The platform processed this msgid; the same msgid again gets the same reply."""
    REVERSED = "reversed"
    """Processed, then named by a 2601: its effect is undone and the same msgid again is refused."""
    BLOCKED = "blocked"
    """A 2601 named this msgid before it arrived; if it arrives now it is refused."""


class MessageRecord(BaseModel):
    """A state-changing message the platform has seen, kept for idempotency and reversal."""

    model_config = ConfigDict(extra="forbid")

    msgid: str = Field(min_length=1)
    infno: str
    fixmedins_code: str
    psn_no: str = ""
    fingerprint: str = Field(default="", description="SHA-256 of the infno, insured region and input")
    status: MessageStatus = MessageStatus.PROCESSED
    received_at: str
    output: dict[str, Any] | None = None
    reversed_by: str | None = Field(default=None, description="the 2601 that named it (REVERSED, BLOCKED)")


class YearToDateRecord(BaseModel):
    """A person's running totals for one calendar year: how much of the deductible is paid."""

    model_config = ConfigDict(extra="forbid")

    psn_no: str
    year: int = Field(ge=2000, le=2100)
    deductible_paid: NonNegativeMoney = Decimal("0.00")
    fund_paid: NonNegativeMoney = Decimal("0.00")
    settlements: int = Field(default=0, ge=0)
