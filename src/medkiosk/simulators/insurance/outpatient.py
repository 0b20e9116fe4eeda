"""The outpatient transactions of the simulated platform: register, upload, settle, cancel, reverse, reconcile.

Each handler takes the (already checked) envelope and returns the reply's ``output``, or raises
:class:`~medkiosk.simulators.insurance.state.Refusal`. The app runs a handler while holding the
state's lock, through :func:`once` for the transactions that change something, so that a msgid
is processed at most once: the same msgid again gets the first reply. Once a 2601 has named a
msgid, that msgid has no effect for good: whatever it did is undone, and if it arrives (again)
it is refused.

The amounts come from :mod:`medkiosk.simulators.insurance.split`; the tables they use and the
magic inputs are documented in docs/simulators/insurance.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from medkiosk.domain.money import Money, NonNegativeMoney
from medkiosk.simulators.insurance.data import (
    SETTLEMENT_TRANSITIONS,
    SUPPORTED_INSUTYPES,
    FeeDetailRecord,
    MessageRecord,
    MessageStatus,
    PersonRecord,
    PolicyKind,
    RegistrationRecord,
    RegistrationStatus,
    SettlementRecord,
    SettlementStatus,
    policy_kind,
)
from medkiosk.simulators.insurance.split import (
    ZERO,
    BillSplit,
    ItemClass,
    ItemSplit,
    line_amount,
    split_bill,
    split_item,
)
from medkiosk.simulators.insurance.state import (
    CARD_LOST,
    PERSON_NOT_FOUND,
    InsuranceState,
    Refusal,
)

REGISTER, CANCEL_REGISTRATION, VISIT_INFO = "2201", "2202", "2203"
UPLOAD_FEES, CANCEL_FEES, PRE_SETTLE, SETTLE, CANCEL_SETTLEMENT = "2204", "2205", "2206", "2207", "2208"
REVERSAL, RECONCILE_TOTALS, RECONCILE_DETAILS = "2601", "3201", "3202"

RECORDED = frozenset({REGISTER, CANCEL_REGISTRATION, VISIT_INFO, UPLOAD_FEES, CANCEL_FEES, SETTLE,
                      CANCEL_SETTLEMENT, REVERSAL})
"""Transactions that change something: processed once per msgid, replayed after that."""
REVERSIBLE = frozenset({REGISTER, UPLOAD_FEES, SETTLE})
ALL_BATCHES = "0000"  # chrg_bchno that 2205 reads as "every unsettled batch of the visit"

# Magic inputs (the fen of medfee_sumamt), saleor's dummy-gateway style: see the docs.
MAGIC_PRE_SETTLE_TOTAL_OFF = 36
MAGIC_SETTLE_TOTAL_OFF = 37
MAGIC_SETTLE_REPLY_LOST = 97

FILING_MISSING = "未办理异地就医备案，请先通过国家医保服务平台APP备案"
INSURED_REGION_EMPTY = "参保地医保区划(insuplc_admdvs)不能为空，请先通过1101获取"
INSURED_REGION_WRONG = "参保地医保区划(insuplc_admdvs)与该人员参保地不符"
INSURANCE_NOT_IN_FORCE = "该人员参保状态异常（暂停或终止参保），不能享受医保待遇"
CERTIFICATE_NOT_THE_PERSONS = "就诊凭证(mdtrt_cert_no)与人员编号(psn_no)不符"
VISIT_NOT_FOUND = "未查询到该就诊登记(mdtrt_id)"
VISIT_CANCELLED = "该就诊登记已撤销"
SETTLEMENT_NOT_FOUND = "未查询到该结算记录(setl_id)"
ALREADY_CANCELLED = "该结算已撤销，不能重复撤销"
ALREADY_REVERSED = "该结算已冲正，不能撤销"
MESSAGE_REVERSED = "该报文已被冲正，不予处理，请使用新的报文ID(msgid)"
MSGID_REUSED = "报文ID(msgid)已用于另一笔交易，请使用新的报文ID"

FUND_PAY_TYPES = {"310": ("310100", "职工基本医疗保险统筹基金"), "390": ("390100", "城乡居民基本医疗保险基金")}

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[InsuranceState, dict[str, Any]], dict[str, Any] | None]


# -- input parsing ------------------------------------------------------------------------------
def _time_text(value: str) -> str:
    datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    return value


def _date_text(value: str) -> date:
    """The date of ``yyyy-MM-dd`` or of ``yyyy-MM-dd HH:mm:ss``."""
    return datetime.strptime(value[:10], "%Y-%m-%d").date()


def _checked_date_text(value: str) -> str:
    _date_text(value)
    return value


Time = Annotated[str, AfterValidator(_time_text)]
Text = Annotated[str, Field(min_length=1)]
DateText = Annotated[str, AfterValidator(_checked_date_text)]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class RegisterIn(_In):
    psn_no: Text
    insutype: Text
    begntime: Time
    mdtrt_cert_type: Literal["01", "02", "03"]
    mdtrt_cert_no: Text
    ipt_otp_no: Text
    atddr_no: str = ""
    dr_name: str = ""
    dept_code: str = ""
    dept_name: str = ""
    caty: str = ""


class CancelRegistrationIn(_In):
    psn_no: Text
    mdtrt_id: Text
    ipt_otp_no: Text


class VisitInfo(_In):
    mdtrt_id: Text
    psn_no: Text
    med_type: Text
    begntime: Time
    main_cond_dscr: str = ""
    dise_codg: str = ""
    dise_name: str = ""


class Diagnosis(_In):
    diag_type: Text
    diag_srt_no: int = Field(ge=1)
    diag_code: Text
    diag_name: Text
    diag_dept: str = ""
    dise_dor_no: str = ""
    dise_dor_name: str = ""
    diag_time: str = ""
    vali_flag: str = "1"


class FeeLineIn(_In):
    feedetl_sn: Text
    mdtrt_id: Text
    psn_no: Text
    chrg_bchno: Text
    fee_ocur_time: Time
    med_list_codg: str = ""
    medins_list_codg: Text
    det_item_fee_sumamt: NonNegativeMoney
    cnt: Decimal = Field(gt=0)
    pric: Decimal = Field(ge=0)
    bilg_dept_codg: str = ""
    bilg_dr_codg: str = ""


class CancelFeesIn(_In):
    mdtrt_id: Text
    psn_no: Text
    chrg_bchno: str = ALL_BATCHES


class SettleIn(_In):
    psn_no: Text
    mdtrt_cert_type: Literal["01", "02", "03"]
    mdtrt_cert_no: Text
    med_type: Text
    medfee_sumamt: NonNegativeMoney
    psn_setlway: Text
    mdtrt_id: Text
    chrg_bchno: Text
    insutype: Text
    acct_used_flag: Literal["0", "1"]
    insuplc_admdvs: str = ""


class CancelSettlementIn(_In):
    setl_id: Text
    mdtrt_id: Text
    psn_no: Text


class ReversalIn(_In):
    omsgid: str = Field(min_length=30, max_length=30)
    oinfno: str = Field(pattern=r"^\d{4}$")
    psn_no: Text


class TotalsIn(_In):
    setl_optins: str = Field(pattern=r"^\d{6}$")
    stmt_begndate: DateText
    stmt_enddate: DateText
    medfee_sumamt: Money
    fund_pay_sumamt: Money
    acct_pay: Money
    fixmedins_setl_cnt: int = Field(ge=0)
    insutype: str = ""
    clr_type: str = ""


class DetailLineIn(_In):
    setl_id: Text
    mdtrt_id: str = ""
    psn_no: str = ""
    medfee_sumamt: Money
    fund_pay_sumamt: Money
    acct_pay: Money
    psn_cash_pay: Money


class DetailsIn(_In):
    setl_optins: str = Field(pattern=r"^\d{6}$")
    stmt_begndate: DateText
    stmt_enddate: DateText
    setl_list: list[DetailLineIn]


def _parsed(model: type[M], value: Any, node: str) -> M:
    if not isinstance(value, dict):
        raise Refusal(f"交易输入缺少{node}节点")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise Refusal(_describe(exc, node)) from None


def _parsed_list(model: type[M], value: Any, node: str) -> list[M]:
    if not isinstance(value, list) or not value:
        raise Refusal(f"交易输入的{node}节点应为非空数组")
    items = []
    for index, item in enumerate(value):
        items.append(_parsed(model, item, f"{node}[{index}]"))
    return items


def _describe(exc: ValidationError, node: str) -> str:
    missing = sorted({_loc(e["loc"]) for e in exc.errors() if e["type"] == "missing"})
    wrong = sorted({_loc(e["loc"]) for e in exc.errors() if e["type"] != "missing"})
    parts = []
    if missing:
        parts.append(f"缺少必填字段：{'、'.join(missing)}")
    if wrong:
        parts.append(f"字段值不合规：{'、'.join(wrong)}")
    return f"{node}节点{'；'.join(parts)}"


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _data(envelope: dict[str, Any], model: type[M]) -> M:
    return _parsed(model, envelope["input"].get("data"), "data")


def psn_no_of(envelope: dict[str, Any]) -> str:
    """The person a message is about, wherever its transaction puts the psn_no."""
    given = envelope["input"]
    for node in (given.get("data"), given.get("mdtrtinfo")):
        if isinstance(node, dict) and isinstance(node.get("psn_no"), str):
            return node["psn_no"]
    lines = given.get("feedetail")
    if isinstance(lines, list) and lines and isinstance(lines[0], dict) and isinstance(lines[0].get("psn_no"), str):
        return lines[0]["psn_no"]
    return ""


def fen_of(amount: Decimal) -> int:
    return int(amount * 100) % 100


# -- idempotency --------------------------------------------------------------------------------
def once(state: InsuranceState, envelope: dict[str, Any], handler: Handler) -> tuple[dict[str, Any] | None, bool]:
    """Run ``handler`` unless this msgid was processed: then return its first output. Caller holds the lock.

    Returns the output and whether it was produced now (False: a replay). A refusal records
    nothing, so the same msgid may be sent again once the cause is fixed.
    """
    msgid, infno = envelope["msgid"], envelope["infno"]
    fingerprint = hashlib.sha256(json.dumps([infno, envelope["insuplc_admdvs"], envelope["input"]],
                                            sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()
    seen: MessageRecord | None = state.get("messages", msgid)
    if seen is not None:
        if seen.status is not MessageStatus.PROCESSED:
            raise Refusal(MESSAGE_REVERSED)
        if seen.infno != infno or seen.fingerprint != fingerprint or seen.fixmedins_code != envelope["fixmedins_code"]:
            raise Refusal(MSGID_REUSED)
        return seen.output, False
    output = handler(state, envelope)
    state.put("messages", MessageRecord(msgid=msgid, infno=infno, fixmedins_code=envelope["fixmedins_code"],
                                        psn_no=psn_no_of(envelope), fingerprint=fingerprint,
                                        received_at=_stamp(state), output=output))
    return output, True


# -- shared checks ------------------------------------------------------------------------------
def _stamp(state: InsuranceState) -> str:
    return f"{state.now_local():%Y-%m-%d %H:%M:%S}"


def _person(state: InsuranceState, envelope: dict[str, Any], psn_no: str, *, undoing: bool = False) -> PersonRecord:
    """The person, checked against the envelope's insured region (and, unless undoing, in force)."""
    person = state.person(psn_no)
    if person is None:
        raise Refusal(PERSON_NOT_FOUND)
    if not envelope["insuplc_admdvs"]:
        raise Refusal(INSURED_REGION_EMPTY)
    if envelope["insuplc_admdvs"] != person.insuplc_admdvs:
        raise Refusal(INSURED_REGION_WRONG)
    if not undoing and person.insu_status != "1":
        raise Refusal(INSURANCE_NOT_IN_FORCE)
    return person


def _require_filing(person: PersonRecord, envelope: dict[str, Any]) -> None:
    if person.insuplc_admdvs[:2] != envelope["mdtrtarea_admvs"][:2] and not person.filing:
        raise Refusal(FILING_MISSING)


def _require_insutype(person: PersonRecord, insutype: str) -> None:
    if insutype != person.insutype:
        raise Refusal(f"险种类型(insutype){insutype}与该人员参保险种{person.insutype}不符")
    if insutype not in SUPPORTED_INSUTYPES:
        raise Refusal(f"险种类型(insutype){insutype}不支持门诊结算（支持310、390）")


def _check_certificate(state: InsuranceState, person: PersonRecord, kind: str, number: str) -> None:
    """The medium named in the input must be this person's (a token's age is not checked after 1101)."""
    if kind == "01":
        token = state.token(number)
        matches = token is not None and token.psn_no == person.psn_no
    elif kind == "02":
        matches = number.upper() == person.id_number
    else:
        matches = number == person.card_no
        if matches and person.lost_card:
            raise Refusal(CARD_LOST)
    if not matches:
        raise Refusal(CERTIFICATE_NOT_THE_PERSONS)


def _visit(state: InsuranceState, envelope: dict[str, Any], mdtrt_id: str, psn_no: str, *,
           open_only: bool = True) -> RegistrationRecord:
    visit: RegistrationRecord | None = state.get("registrations", mdtrt_id)
    if visit is None or visit.fixmedins_code != envelope["fixmedins_code"]:
        raise Refusal(VISIT_NOT_FOUND)
    if visit.psn_no != psn_no:
        raise Refusal("就诊ID(mdtrt_id)与人员编号(psn_no)不符")
    if open_only and visit.status is not RegistrationStatus.REGISTERED:
        raise Refusal(VISIT_CANCELLED)
    return visit


def _valid_settlements(state: InsuranceState, mdtrt_id: str, chrg_bchno: str | None = None) -> list[SettlementRecord]:
    return [s for s in state.values("settlements")
            if s.mdtrt_id == mdtrt_id and s.status is SettlementStatus.VALID
            and (chrg_bchno is None or s.chrg_bchno == chrg_bchno)]


def _fees(state: InsuranceState, mdtrt_id: str) -> list[FeeDetailRecord]:
    return [f for f in state.values("fee_details") if f.mdtrt_id == mdtrt_id]


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _neg(value: Decimal) -> Decimal:
    return ZERO - value


# -- 2201 / 2202 registration -------------------------------------------------------------------
def register(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    data = _data(envelope, RegisterIn)
    person = _person(state, envelope, data.psn_no)
    _require_filing(person, envelope)
    _require_insutype(person, data.insutype)
    _check_certificate(state, person, data.mdtrt_cert_type, data.mdtrt_cert_no)
    for visit in state.values("registrations"):
        if (visit.fixmedins_code == envelope["fixmedins_code"] and visit.ipt_otp_no == data.ipt_otp_no
                and visit.status is RegistrationStatus.REGISTERED):
            raise Refusal(f"门诊号(ipt_otp_no){data.ipt_otp_no}已登记就诊(mdtrt_id {visit.mdtrt_id})，请勿重复登记")
    visit = RegistrationRecord(
        mdtrt_id=state.new_id(1, envelope["mdtrtarea_admvs"]), psn_no=person.psn_no, insutype=data.insutype,
        insuplc_admdvs=person.insuplc_admdvs, mdtrtarea_admvs=envelope["mdtrtarea_admvs"],
        fixmedins_code=envelope["fixmedins_code"], ipt_otp_no=data.ipt_otp_no, begntime=data.begntime,
        mdtrt_cert_type=data.mdtrt_cert_type, mdtrt_cert_no=data.mdtrt_cert_no, atddr_no=data.atddr_no,
        dr_name=data.dr_name, dept_code=data.dept_code, dept_name=data.dept_name, caty=data.caty,
        msgid=envelope["msgid"], registered_at=_stamp(state),
    )
    state.put("registrations", visit)
    return {"data": {"mdtrt_id": visit.mdtrt_id, "psn_no": visit.psn_no, "ipt_otp_no": visit.ipt_otp_no}}


def cancel_registration(state: InsuranceState, envelope: dict[str, Any]) -> None:
    data = _data(envelope, CancelRegistrationIn)
    _person(state, envelope, data.psn_no, undoing=True)
    visit = _visit(state, envelope, data.mdtrt_id, data.psn_no, open_only=False)
    if visit.ipt_otp_no != data.ipt_otp_no:
        raise Refusal("门诊号(ipt_otp_no)与就诊登记不符")
    if visit.status is RegistrationStatus.CANCELLED:
        raise Refusal(VISIT_CANCELLED)
    _close_visit(state, visit)


def _close_visit(state: InsuranceState, visit: RegistrationRecord) -> None:
    settled = _valid_settlements(state, visit.mdtrt_id)
    if settled:
        raise Refusal(f"该就诊已有有效结算(setl_id {settled[0].setl_id})，请先撤销结算")
    for fee in _fees(state, visit.mdtrt_id):
        state.remove("fee_details", (fee.mdtrt_id, fee.feedetl_sn))
    state.put("registrations", visit.model_copy(update={"status": RegistrationStatus.CANCELLED}))


# -- 2203 visit info ----------------------------------------------------------------------------
def upload_visit_info(state: InsuranceState, envelope: dict[str, Any]) -> None:
    info = _parsed(VisitInfo, envelope["input"].get("mdtrtinfo"), "mdtrtinfo")
    raw_diagnoses = envelope["input"].get("diseinfo") or []
    diagnoses = _parsed_list(Diagnosis, raw_diagnoses, "diseinfo") if raw_diagnoses else []
    person = _person(state, envelope, info.psn_no)
    visit = _visit(state, envelope, info.mdtrt_id, info.psn_no)
    if _valid_settlements(state, visit.mdtrt_id):
        raise Refusal("该就诊已结算，不能修改就诊信息")
    if info.med_type not in ("11", "14"):
        raise Refusal(f"医疗类别(med_type){info.med_type}不支持：门诊仅支持11（普通门诊）、14（门诊慢特病）")
    if info.med_type == "14":
        if not info.dise_codg:
            raise Refusal("门诊慢特病(med_type=14)须上传病种编码(dise_codg)")
        today = state.today()
        filed = [d for d in person.special_diseases
                 if d.code == info.dise_codg and d.begndate <= today and (d.enddate is None or today <= d.enddate)]
        if not filed:
            raise Refusal(f"该人员未办理病种{info.dise_codg}的门诊慢特病备案或备案已过期，不能按门诊慢特病结算")
    state.put("registrations", visit.model_copy(update={
        "med_type": info.med_type, "main_cond_dscr": info.main_cond_dscr, "dise_codg": info.dise_codg,
        "dise_name": info.dise_name, "diseinfo": [d.model_dump() for d in diagnoses],
    }))


# -- 2204 / 2205 fee details --------------------------------------------------------------------
def upload_fees(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    lines = _parsed_list(FeeLineIn, envelope["input"].get("feedetail"), "feedetail")
    psn_no = lines[0].psn_no
    if any(line.psn_no != psn_no for line in lines):
        raise Refusal("同一次上传的费用明细须属于同一人员(psn_no)")
    _person(state, envelope, psn_no)
    seen: set[tuple[str, str]] = set()
    for line in lines:
        _visit(state, envelope, line.mdtrt_id, psn_no)
        key = (line.mdtrt_id, line.feedetl_sn)
        if key in seen or state.get("fee_details", key) is not None:
            raise Refusal(f"费用明细流水号(feedetl_sn){line.feedetl_sn}重复")
        seen.add(key)
        settled = _valid_settlements(state, line.mdtrt_id, line.chrg_bchno)
        if settled:
            raise Refusal(f"收费批次号(chrg_bchno){line.chrg_bchno}已结算(setl_id {settled[0].setl_id})，请使用新的收费批次号")
        expected = line_amount(line.cnt, line.pric)
        if line.det_item_fee_sumamt != expected:
            raise Refusal(f"费用明细{line.feedetl_sn}的明细项目费用总额(det_item_fee_sumamt){_money(line.det_item_fee_sumamt)}"
                          f"与数量×单价（{line.cnt}×{line.pric}={_money(expected)}）不符")
    results = []
    for line in lines:
        entry = state.catalog_entry(envelope["mdtrtarea_admvs"], line.med_list_codg)
        item = split_item(line.cnt, line.pric, entry.entry() if entry else None)
        state.put("fee_details", FeeDetailRecord(
            mdtrt_id=line.mdtrt_id, feedetl_sn=line.feedetl_sn, psn_no=psn_no, chrg_bchno=line.chrg_bchno,
            fee_ocur_time=line.fee_ocur_time, med_list_codg=line.med_list_codg,
            medins_list_codg=line.medins_list_codg, cnt=line.cnt, pric=line.pric,
            det_item_fee_sumamt=item.amount, bilg_dept_codg=line.bilg_dept_codg, bilg_dr_codg=line.bilg_dr_codg,
            chrgitm_lv=item.item_class, med_chrgitm_type=item.charge_type, selfpay_prop=item.self_pay_ratio,
            pric_uplmt_amt=item.price_cap, fulamt_ownpay_amt=item.full_self_pay, overlmt_amt=item.over_limit,
            preselfpay_amt=item.pre_self_pay, inscp_scp_amt=item.in_scope, msgid=envelope["msgid"],
        ))
        results.append({
            "feedetl_sn": line.feedetl_sn, "det_item_fee_sumamt": item.amount, "cnt": line.cnt, "pric": line.pric,
            "pric_uplmt_amt": item.price_cap, "selfpay_prop": item.self_pay_ratio,
            "fulamt_ownpay_amt": item.full_self_pay, "overlmt_amt": item.over_limit,
            "preselfpay_amt": item.pre_self_pay, "inscp_scp_amt": item.in_scope,
            "chrgitm_lv": item.item_class.value, "med_chrgitm_type": item.charge_type,
            "bas_medn_flag": "0", "hi_nego_drug_flag": "0", "chld_medc_flag": "0", "list_sp_item_flag": "0",
            "lmt_used_flag": "0", "drt_reim_flag": "0",
            "memo": "" if entry else "医保目录外项目，按丙类全自费",
        })
    return {"result": results}


def cancel_fees(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    data = _data(envelope, CancelFeesIn)
    _person(state, envelope, data.psn_no, undoing=True)
    _visit(state, envelope, data.mdtrt_id, data.psn_no, open_only=False)
    every_batch = data.chrg_bchno in ("", ALL_BATCHES)
    if not every_batch:
        settled = _valid_settlements(state, data.mdtrt_id, data.chrg_bchno)
        if settled:
            raise Refusal(f"收费批次号(chrg_bchno){data.chrg_bchno}已结算(setl_id {settled[0].setl_id})，"
                          "请先撤销结算(2208)再撤销费用明细")
    cancelled = [f for f in _fees(state, data.mdtrt_id)
                 if f.setl_id is None and (every_batch or f.chrg_bchno == data.chrg_bchno)]
    for fee in cancelled:
        state.remove("fee_details", (fee.mdtrt_id, fee.feedetl_sn))
    return {"data": {"mdtrt_id": data.mdtrt_id, "chrg_bchno": data.chrg_bchno or ALL_BATCHES,
                     "cancelled_cnt": len(cancelled)}}


# -- 2206 / 2207 settlement ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    data: SettleIn
    person: PersonRecord
    visit: RegistrationRecord
    fees: list[FeeDetailRecord]
    kind: PolicyKind
    visit_cap: Decimal
    split: BillSplit


def _item(fee: FeeDetailRecord) -> ItemSplit:
    return ItemSplit(amount=fee.det_item_fee_sumamt, full_self_pay=fee.fulamt_ownpay_amt, over_limit=fee.overlmt_amt,
                     pre_self_pay=fee.preselfpay_amt, in_scope=fee.inscp_scp_amt, item_class=ItemClass(fee.chrgitm_lv),
                     self_pay_ratio=fee.selfpay_prop, charge_type=fee.med_chrgitm_type, price_cap=fee.pric_uplmt_amt)


def _plan(state: InsuranceState, envelope: dict[str, Any]) -> _Plan:
    data = _data(envelope, SettleIn)
    person = _person(state, envelope, data.psn_no)
    _require_filing(person, envelope)
    if data.insuplc_admdvs and data.insuplc_admdvs != envelope["insuplc_admdvs"]:
        raise Refusal("输入的参保地医保区划(insuplc_admdvs)与报文头不一致")
    _require_insutype(person, data.insutype)
    _check_certificate(state, person, data.mdtrt_cert_type, data.mdtrt_cert_no)
    visit = _visit(state, envelope, data.mdtrt_id, data.psn_no)
    if data.med_type != visit.med_type:
        raise Refusal(f"医疗类别(med_type){data.med_type}与就诊信息的医疗类别{visit.med_type}不符")
    if data.psn_setlway != "01":
        raise Refusal("个人结算方式(psn_setlway)仅支持01（按项目结算）")
    settled = _valid_settlements(state, data.mdtrt_id, data.chrg_bchno)
    if settled:
        raise Refusal(f"收费批次号(chrg_bchno){data.chrg_bchno}已结算(setl_id {settled[0].setl_id})，不能重复结算")
    fees = [f for f in _fees(state, data.mdtrt_id) if f.chrg_bchno == data.chrg_bchno and f.setl_id is None]
    if not fees:
        raise Refusal(f"收费批次号(chrg_bchno){data.chrg_bchno}没有待结算的费用明细，请先上传费用明细(2204)")
    uploaded = sum((f.det_item_fee_sumamt for f in fees), ZERO)
    if data.medfee_sumamt != uploaded:
        raise Refusal(f"医疗费总额(medfee_sumamt){_money(data.medfee_sumamt)}与已上传费用明细合计{_money(uploaded)}不符")
    kind = policy_kind(person.insutype, person.psn_type, visit.med_type)
    rule = state.policy(person.insuplc_admdvs, kind)
    if rule is None:
        raise Refusal(f"参保地{person.insuplc_admdvs}未配置该类人员的门诊待遇政策")
    policy = rule.policy()
    year_to_date = state.year_to_date(person.psn_no, state.today().year)
    paid_this_visit = sum((s.hifp_pay for s in _valid_settlements(state, visit.mdtrt_id)), ZERO)
    split = split_bill(
        [_item(f) for f in fees], policy,
        deductible_left=max(ZERO, policy.deductible - year_to_date.deductible_paid),
        fund_cap_left=max(ZERO, policy.visit_cap - paid_this_visit),
        balance=person.balance,
        use_account=data.acct_used_flag == "1" and person.insutype == "310",
    )
    return _Plan(data, person, visit, fees, kind, policy.visit_cap, split)


def _setlinfo(envelope: dict[str, Any], plan: _Plan) -> dict[str, Any]:
    person, split = plan.person, plan.split
    return {
        "mdtrt_id": plan.visit.mdtrt_id, "psn_no": person.psn_no, "psn_name": person.name, "psn_cert_type": "01",
        "certno": person.id_number, "gend": person.gend, "naty": person.naty,
        "brdy": person.birth_date.isoformat(), "insutype": person.insutype, "psn_type": person.psn_type,
        "cvlserv_flag": "1" if person.cvlserv else "0", "mdtrt_cert_type": plan.data.mdtrt_cert_type,
        "med_type": plan.visit.med_type,
        "medfee_sumamt": split.total, "fulamt_ownpay_amt": split.full_self_pay, "overlmt_selfpay": split.over_limit,
        "preselfpay_amt": split.pre_self_pay, "inscp_scp_amt": split.in_scope, "act_pay_dedc": split.deductible,
        "hifp_pay": split.fund, "pool_prop_selfpay": split.fund_ratio, "cvlserv_pay": ZERO, "hifes_pay": ZERO,
        "hifmi_pay": ZERO, "hifob_pay": ZERO, "maf_pay": ZERO, "oth_pay": ZERO, "fund_pay_sumamt": split.fund,
        "psn_part_amt": split.patient_part, "acct_pay": split.account, "psn_cash_pay": split.cash,
        "hosp_part_amt": ZERO, "balc": split.balance_after, "acct_mulaid_pay": ZERO,
        "medins_setl_id": envelope["msgid"], "clr_optins": envelope["mdtrtarea_admvs"], "clr_way": "1",
        "clr_type": plan.visit.med_type,
    }


def _setldetail(person: PersonRecord, split: BillSplit, visit_cap: Decimal) -> list[dict[str, Any]]:
    if split.fund <= 0:
        return []
    code, name = FUND_PAY_TYPES[person.insutype]
    return [{"fund_pay_type": code, "fund_pay_type_name": name, "inscp_scp_amt": split.in_scope,
             "crt_payb_lmt_amt": visit_cap, "fund_payamt": split.fund,
             "setl_proc_info": f"起付线{_money(split.deductible)}，支付比例{split.fund_ratio}"}]


def pre_settle(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    plan = _plan(state, envelope)
    setlinfo = _setlinfo(envelope, plan)
    if fen_of(plan.data.medfee_sumamt) == MAGIC_PRE_SETTLE_TOTAL_OFF:
        setlinfo["medfee_sumamt"] = plan.split.total + Decimal("0.01")
    return {"setlinfo": setlinfo, "setldetail": _setldetail(plan.person, plan.split, plan.visit_cap)}


def settle(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    plan = _plan(state, envelope)
    split, person, visit = plan.split, plan.person, plan.visit
    now = state.now_local()
    setl_id = state.new_id(2, envelope["mdtrtarea_admvs"])
    state.put("settlements", SettlementRecord(
        setl_id=setl_id, mdtrt_id=visit.mdtrt_id, chrg_bchno=plan.data.chrg_bchno, psn_no=person.psn_no,
        insutype=person.insutype, psn_type=person.psn_type, med_type=visit.med_type,
        insuplc_admdvs=person.insuplc_admdvs, mdtrtarea_admvs=envelope["mdtrtarea_admvs"],
        fixmedins_code=envelope["fixmedins_code"], clr_optins=envelope["mdtrtarea_admvs"], clr_type=visit.med_type,
        policy_kind=plan.kind, acct_used_flag=plan.data.acct_used_flag, medfee_sumamt=split.total,
        fulamt_ownpay_amt=split.full_self_pay, overlmt_selfpay=split.over_limit, preselfpay_amt=split.pre_self_pay,
        inscp_scp_amt=split.in_scope, act_pay_dedc=split.deductible, hifp_pay=split.fund,
        pool_prop_selfpay=split.fund_ratio, fund_pay_sumamt=split.fund, psn_part_amt=split.patient_part,
        acct_pay=split.account, psn_cash_pay=split.cash, balc=split.balance_after,
        setl_time=f"{now:%Y-%m-%d %H:%M:%S}", year=now.year, msgid=envelope["msgid"],
    ))
    state.set_balance(person.psn_no, split.balance_after)
    counter = state.year_to_date(person.psn_no, now.year)
    state.put("year_to_date", counter.model_copy(update={
        "deductible_paid": counter.deductible_paid + split.deductible, "fund_paid": counter.fund_paid + split.fund,
        "settlements": counter.settlements + 1,
    }))
    for fee in plan.fees:
        state.put("fee_details", fee.model_copy(update={"setl_id": setl_id}))
    setlinfo = {"setl_id": setl_id, **_setlinfo(envelope, plan), "setl_time": f"{now:%Y-%m-%d %H:%M:%S}"}
    if fen_of(plan.data.medfee_sumamt) == MAGIC_SETTLE_TOTAL_OFF:
        setlinfo["medfee_sumamt"] = split.total + Decimal("0.01")
    return {"setlinfo": setlinfo, "setldetail": _setldetail(person, split, plan.visit_cap)}


def reply_lost_by_magic(envelope: dict[str, Any]) -> bool:
    """A 2207 whose medfee_sumamt ends in .97 commits, then its reply is lost (HTTP 502)."""
    data = envelope["input"].get("data")
    if envelope["infno"] != SETTLE or not isinstance(data, dict):
        return False
    try:
        return fen_of(Decimal(str(data.get("medfee_sumamt")))) == MAGIC_SETTLE_REPLY_LOST
    except ArithmeticError:
        return False


# -- 2208 cancel settlement ---------------------------------------------------------------------
def _undo(state: InsuranceState, settlement: SettlementRecord, to: SettlementStatus, by_msgid: str, *,
          cancel_setl_id: str | None = None) -> Decimal:
    """Move a valid settlement to ``to``: restore the account and the year's counters, free its fee lines."""
    if to not in SETTLEMENT_TRANSITIONS[settlement.status]:
        raise Refusal(f"结算状态不允许该操作：{settlement.status.value} → {to.value}")
    person = state.person(settlement.psn_no)
    balance = (person.balance if person else ZERO) + settlement.acct_pay
    if person is not None:
        state.set_balance(person.psn_no, balance)
    counter = state.year_to_date(settlement.psn_no, settlement.year)
    state.put("year_to_date", counter.model_copy(update={
        "deductible_paid": max(ZERO, counter.deductible_paid - settlement.act_pay_dedc),
        "fund_paid": max(ZERO, counter.fund_paid - settlement.fund_pay_sumamt),
        "settlements": max(0, counter.settlements - 1),
    }))
    for fee in _fees(state, settlement.mdtrt_id):
        if fee.setl_id == settlement.setl_id:
            state.put("fee_details", fee.model_copy(update={"setl_id": None}))
    state.put("settlements", settlement.model_copy(update={
        "status": to, "undone_by_msgid": by_msgid, "undone_at": _stamp(state), "cancel_setl_id": cancel_setl_id,
    }))
    return balance


def cancel_settlement(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    data = _data(envelope, CancelSettlementIn)
    _person(state, envelope, data.psn_no, undoing=True)
    settlement: SettlementRecord | None = state.get("settlements", data.setl_id)
    if settlement is None or settlement.fixmedins_code != envelope["fixmedins_code"]:
        raise Refusal(SETTLEMENT_NOT_FOUND)
    if settlement.mdtrt_id != data.mdtrt_id or settlement.psn_no != data.psn_no:
        raise Refusal("结算ID(setl_id)与就诊ID(mdtrt_id)或人员编号(psn_no)不符")
    if settlement.status is SettlementStatus.CANCELLED:
        raise Refusal(ALREADY_CANCELLED)
    if settlement.status is SettlementStatus.REVERSED:
        raise Refusal(ALREADY_REVERSED)
    cancel_id = state.new_id(3, envelope["mdtrtarea_admvs"])
    balance = _undo(state, settlement, SettlementStatus.CANCELLED, envelope["msgid"], cancel_setl_id=cancel_id)
    person = state.person(settlement.psn_no)
    return {
        "setlinfo": {
            "setl_id": cancel_id, "init_setl_id": settlement.setl_id, "mdtrt_id": settlement.mdtrt_id,
            "psn_no": settlement.psn_no, "medfee_sumamt": _neg(settlement.medfee_sumamt),
            "fulamt_ownpay_amt": _neg(settlement.fulamt_ownpay_amt),
            "overlmt_selfpay": _neg(settlement.overlmt_selfpay),
            "preselfpay_amt": _neg(settlement.preselfpay_amt), "inscp_scp_amt": _neg(settlement.inscp_scp_amt),
            "act_pay_dedc": _neg(settlement.act_pay_dedc), "hifp_pay": _neg(settlement.hifp_pay),
            "fund_pay_sumamt": _neg(settlement.fund_pay_sumamt), "psn_part_amt": _neg(settlement.psn_part_amt),
            "acct_pay": _neg(settlement.acct_pay), "psn_cash_pay": _neg(settlement.psn_cash_pay), "balc": balance,
            "setl_time": _stamp(state), "clr_optins": settlement.clr_optins, "clr_type": settlement.clr_type,
        },
        "setldetail": [] if settlement.fund_pay_sumamt <= 0 or person is None else [{
            "fund_pay_type": FUND_PAY_TYPES[settlement.insutype][0],
            "fund_pay_type_name": FUND_PAY_TYPES[settlement.insutype][1],
            "fund_payamt": _neg(settlement.fund_pay_sumamt),
        }],
    }


# -- 2601 reversal ------------------------------------------------------------------------------
def reverse(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    """Undo what the message ``omsgid`` did; answer success when there is nothing (left) to undo."""
    data = _data(envelope, ReversalIn)
    _person(state, envelope, data.psn_no, undoing=True)
    if data.oinfno not in REVERSIBLE:
        raise Refusal(f"原交易编号(oinfno){data.oinfno}不支持冲正（支持{'、'.join(sorted(REVERSIBLE))}）")
    if data.omsgid[:12] != envelope["fixmedins_code"]:
        raise Refusal("原报文ID(omsgid)不属于本定点医药机构")
    if data.omsgid == envelope["msgid"]:
        raise Refusal("冲正交易不能冲正自身")
    original: MessageRecord | None = state.get("messages", data.omsgid)
    if original is None or original.status is MessageStatus.BLOCKED:
        if original is None:
            state.put("messages", MessageRecord(
                msgid=data.omsgid, infno=data.oinfno, fixmedins_code=envelope["fixmedins_code"], psn_no=data.psn_no,
                status=MessageStatus.BLOCKED, received_at=_stamp(state), reversed_by=envelope["msgid"]))
        outcome, description, found = "not_received", "原交易未收到，无需冲正；原报文此后到达将不予处理", {}
    else:
        if original.infno != data.oinfno:
            raise Refusal(f"原交易编号(oinfno){data.oinfno}与原报文不符（原报文为{original.infno}交易）")
        if original.psn_no != data.psn_no:
            raise Refusal("人员编号(psn_no)与原报文不符")
        outcome, description, found = _undo_message(state, envelope, data)
        if original.status is MessageStatus.PROCESSED:
            state.put("messages", original.model_copy(update={"status": MessageStatus.REVERSED,
                                                              "reversed_by": envelope["msgid"]}))
    return {"data": {"omsgid": data.omsgid, "oinfno": data.oinfno, "psn_no": data.psn_no, "rvs_stas": outcome,
                     "rvs_dscr": description, "setl_id": found.get("setl_id", ""),
                     "mdtrt_id": found.get("mdtrt_id", ""), "balc": found.get("balc")}}


def _undo_message(state: InsuranceState, envelope: dict[str, Any],
                  data: ReversalIn) -> tuple[str, str, dict[str, Any]]:
    """Undo what a processed message did: (outcome, description, what it concerned). Refuses before any write."""
    if data.oinfno == SETTLE:
        settlement = next((s for s in state.values("settlements") if s.msgid == data.omsgid), None)
        if settlement is None:
            return "nothing_to_undo", "原交易未产生结算，无需冲正", {}
        found: dict[str, Any] = {"setl_id": settlement.setl_id, "mdtrt_id": settlement.mdtrt_id}
        if settlement.status is SettlementStatus.REVERSED:
            return "already_reversed", "原结算已冲正，无需重复冲正", found
        if settlement.status is SettlementStatus.CANCELLED:
            return "already_cancelled", "原结算已撤销(2208)，无需冲正", found
        found["balc"] = _undo(state, settlement, SettlementStatus.REVERSED, envelope["msgid"])
        return "reversed", "原结算已冲正，个人账户已退回", found

    if data.oinfno == REGISTER:
        visit = next((v for v in state.values("registrations") if v.msgid == data.omsgid), None)
        if visit is None:
            return "nothing_to_undo", "原交易未产生就诊登记，无需冲正", {}
        if visit.status is RegistrationStatus.CANCELLED:
            return "already_cancelled", "原就诊登记已撤销，无需冲正", {"mdtrt_id": visit.mdtrt_id}
        _close_visit(state, visit)
        return "reversed", "原就诊登记已冲正", {"mdtrt_id": visit.mdtrt_id}

    fees = [f for f in state.values("fee_details") if f.msgid == data.omsgid]
    settled = [f for f in fees if f.setl_id]
    if settled:
        raise Refusal(f"原报文上传的费用明细已结算(setl_id {settled[0].setl_id})，请先冲正或撤销结算")
    if not fees:
        return "already_cancelled", "原报文上传的费用明细已撤销，无需冲正", {}
    for fee in fees:
        state.remove("fee_details", (fee.mdtrt_id, fee.feedetl_sn))
    return "reversed", f"原报文上传的{len(fees)}条费用明细已冲正", {"mdtrt_id": fees[0].mdtrt_id}


# -- 3201 / 3202 reconciliation -----------------------------------------------------------------
def _in_window(state: InsuranceState, envelope: dict[str, Any], setl_optins: str, begins: str, ends: str, *,
               insutype: str = "", clr_type: str = "") -> list[SettlementRecord]:
    first, last = _date_text(begins), _date_text(ends)
    if first > last:
        raise Refusal("对账开始日期(stmt_begndate)不能晚于结束日期(stmt_enddate)")
    return [s for s in state.values("settlements")
            if s.status is SettlementStatus.VALID and s.fixmedins_code == envelope["fixmedins_code"]
            and s.clr_optins == setl_optins and first <= _date_text(s.setl_time) <= last
            and (not insutype or s.insutype == insutype) and (not clr_type or s.clr_type == clr_type)]


def reconcile_totals(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    data = _data(envelope, TotalsIn)
    settled = _in_window(state, envelope, data.setl_optins, data.stmt_begndate, data.stmt_enddate,
                         insutype=data.insutype, clr_type=data.clr_type)
    platform = {
        "medfee_sumamt": sum((s.medfee_sumamt for s in settled), ZERO),
        "fund_pay_sumamt": sum((s.fund_pay_sumamt for s in settled), ZERO),
        "acct_pay": sum((s.acct_pay for s in settled), ZERO),
        "fixmedins_setl_cnt": len(settled),
    }
    hospital = {"medfee_sumamt": data.medfee_sumamt, "fund_pay_sumamt": data.fund_pay_sumamt,
                "acct_pay": data.acct_pay, "fixmedins_setl_cnt": data.fixmedins_setl_cnt}
    labels = {"medfee_sumamt": "医疗费总额", "fund_pay_sumamt": "基金支付总额", "acct_pay": "个人账户支出",
              "fixmedins_setl_cnt": "结算笔数"}
    differences = [f"{labels[k]}：医院{_shown(hospital[k])}，平台{_shown(platform[k])}"
                   for k in labels if hospital[k] != platform[k]]
    return {"stmtinfo": {
        "setl_optins": data.setl_optins, "stmt_rslt": "1" if differences else "0",
        "stmt_rslt_dscr": "不一致：" + "；".join(differences) if differences else "对账一致",
        **platform,
    }}


def _shown(value: Decimal | int) -> str:
    return _money(value) if isinstance(value, Decimal) else str(value)


_COMPARED = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "psn_cash_pay")


def reconcile_details(state: InsuranceState, envelope: dict[str, Any]) -> dict[str, Any]:
    data = _data(envelope, DetailsIn)
    hospital: dict[str, DetailLineIn] = {}
    for line in data.setl_list:
        if line.setl_id in hospital:
            raise Refusal(f"对账明细中结算ID(setl_id){line.setl_id}重复")
        hospital[line.setl_id] = line
    platform = {s.setl_id: s for s in _in_window(state, envelope, data.setl_optins, data.stmt_begndate,
                                                  data.stmt_enddate)}
    diffs: list[dict[str, Any]] = []
    matched = 0
    for setl_id, line in hospital.items():
        ours = platform.get(setl_id)
        if ours is None:
            known: SettlementRecord | None = state.get("settlements", setl_id)
            if known is not None and known.fixmedins_code != envelope["fixmedins_code"]:
                known = None
            state_name = known.status.value if known else "unknown"
            memo = {"unknown": "平台无此结算", "cancelled": "平台该结算已撤销", "reversed": "平台该结算已冲正",
                    "valid": "平台该结算不在对账期间或清算机构内"}[state_name]
            diffs.append({"setl_id": setl_id, "mdtrt_id": line.mdtrt_id, "psn_no": line.psn_no,
                          "diff_type": "hospital_only", "platform_state": state_name, "memo": memo,
                          "fields": [{"field": f, "hosp_value": getattr(line, f), "platform_value": None}
                                     for f in _COMPARED]})
            continue
        fields = [{"field": f, "hosp_value": getattr(line, f), "platform_value": getattr(ours, f)}
                  for f in _COMPARED if getattr(line, f) != getattr(ours, f)]
        if fields:
            diffs.append({"setl_id": setl_id, "mdtrt_id": ours.mdtrt_id, "psn_no": ours.psn_no,
                          "diff_type": "amount_mismatch", "platform_state": ours.status.value, "memo": "金额不一致",
                          "fields": fields})
        else:
            matched += 1
    for setl_id, ours in platform.items():
        if setl_id not in hospital:
            diffs.append({"setl_id": setl_id, "mdtrt_id": ours.mdtrt_id, "psn_no": ours.psn_no,
                          "diff_type": "platform_only", "platform_state": ours.status.value, "memo": "医院无此结算",
                          "fields": [{"field": f, "hosp_value": None, "platform_value": getattr(ours, f)}
                                     for f in _COMPARED]})
    return {
        "stmtinfo": {"setl_optins": data.setl_optins, "stmt_begndate": _date_text(data.stmt_begndate).isoformat(),
                     "stmt_enddate": _date_text(data.stmt_enddate).isoformat(),
                     "stmt_rslt": "1" if diffs else "0", "hosp_setl_cnt": len(hospital),
                     "platform_setl_cnt": len(platform), "matched_cnt": matched},
        "diffs": diffs,
    }


HANDLERS: dict[str, Handler] = {
    REGISTER: register,
    CANCEL_REGISTRATION: cancel_registration,
    VISIT_INFO: upload_visit_info,
    UPLOAD_FEES: upload_fees,
    CANCEL_FEES: cancel_fees,
    PRE_SETTLE: pre_settle,
    SETTLE: settle,
    CANCEL_SETTLEMENT: cancel_settlement,
    REVERSAL: reverse,
    RECONCILE_TOTALS: reconcile_totals,
    RECONCILE_DETAILS: reconcile_details,
}
