"""The national insurance platform's wire format: envelopes, transaction bodies and message ids.

Field names are the spec's own (``infno``, ``mdtrt_cert_type``, ``balc`` …) so a model can be read
side by side with the platform's interface document; the port translates them to readable names.
Replies are parsed tolerantly where real platforms differ (``infcode`` as number or string,
``output`` as an object or a JSON string) and strictly everywhere else. JSON numbers are read as
``Decimal`` so an account balance never passes through a float.
"""

from __future__ import annotations

import json
import random
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medkiosk.domain.money import Money

CHINA_TZ = timezone(timedelta(hours=8), "CST")
"""The platform's clock: China has one time zone and no daylight saving, so a fixed offset is exact."""

INFVER = "V1.0"
OPTER_TYPE_SELF_SERVICE = "2"  # 经办人类别: 1 staff, 2 self-service terminal, 3 mobile
MSGID_TIME_FORMAT = "%Y%m%d%H%M%S"
INF_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
EC_BUSINESS_TYPE_OUTPATIENT = "01101"  # e-certificate use: outpatient person query (门诊)


# -- message ids --------------------------------------------------------------------------------
def new_msgid(hospital_code: str, now: datetime, seq: int) -> str:
    """A msgid: the hospital's 12-character code, ``now`` as yyyyMMddHHmmss, a 4-digit sequence."""
    if len(hospital_code) != 12:
        raise ValueError(f"a fixmedins_code is 12 characters, got {len(hospital_code)}")
    if not 0 <= seq <= 9999:
        raise ValueError(f"a msgid sequence is 0–9999, got {seq}")
    return f"{hospital_code}{now:{MSGID_TIME_FORMAT}}{seq:04d}"


class MsgidSequence:
    """Thread-safe 4-digit counter for msgids, wrapping after 9999.

    A msgid is unique as long as one process sends fewer than 10,000 messages a second. The
    counter starts at a random point so two service copies started together are unlikely to
    collide; where msgids must be unique across copies (payments persist them before sending),
    the caller journals them under a unique key and, when another copy already holds one,
    calls :meth:`jump`: two copies whose counters run close together would otherwise collide
    draw after draw, each stepping through the numbers the other is stepping through.
    """

    def __init__(self, start: int | None = None, *, rng: random.Random | None = None) -> None:
        self._rng = rng or random.SystemRandom()
        self._next = self._rng.randrange(10_000) if start is None else start
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            value = self._next % 10_000
            self._next = value + 1
            return value

    def jump(self) -> None:
        """Go on from a fresh random point, away from the numbers another copy is drawing now.

        It may land on numbers this copy drew earlier in the same second: a journalled msgid's
        unique key refuses such a one too, and the caller jumps again.
        """
        with self._lock:
            self._next = self._rng.randrange(10_000)


# -- envelopes ----------------------------------------------------------------------------------
class RequestEnvelope(BaseModel):
    """The envelope every transaction is sent in (all fields present, empty where unused)."""

    infno: str = Field(pattern=r"^\d{4}$")
    msgid: str = Field(pattern=r"^.{12}\d{18}$")
    mdtrtarea_admvs: str = Field(pattern=r"^\d{6}$")
    insuplc_admdvs: str = ""
    recer_sys_code: str
    dev_no: str = ""
    dev_safe_info: str = ""
    cainfo: str = ""
    signtype: str = ""
    infver: str = INFVER
    opter_type: str = OPTER_TYPE_SELF_SERVICE
    opter: str
    opter_name: str
    inf_time: str
    fixmedins_code: str
    fixmedins_name: str
    sign_no: str = ""
    input: dict[str, Any]


def _loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


class ResponseEnvelope(BaseModel):
    """A reply. ``infcode`` 0 is success, anything else a refusal whose reason is ``err_msg``."""

    model_config = ConfigDict(extra="ignore")

    infcode: int
    inf_refmsgid: str | None = None
    refmsg_time: str | None = None
    respond_time: str | None = None
    err_msg: str | None = None
    warn_msg: str | None = None
    output: dict[str, Any] | None = None

    @field_validator("infcode", mode="before")
    @classmethod
    def _infcode_number_or_string(cls, value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("infcode is not a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        raise ValueError(f"infcode must be an integer, got {value!r}")

    @field_validator("output", mode="before")
    @classmethod
    def _output_object_or_json_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return None
            value = _loads(value)
        return value

    @property
    def ok(self) -> bool:
        return self.infcode == 0


def parse_response(text: str | bytes) -> ResponseEnvelope:
    """Parse a reply body; raises ``ValueError`` (incl. pydantic's) when it is not a reply."""
    data = _loads(text)
    if not isinstance(data, dict):
        raise ValueError("a reply is a JSON object")
    return ResponseEnvelope.model_validate(data)


def dump_json(payload: Any) -> bytes:
    """Serialise a request: UTF-8 Chinese as is, ``Decimal`` as a JSON number."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=_json_default).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # The platform wants JSON numbers. A float prints the shortest digits that round-trip,
        # which are the Decimal's own digits for any value of at most 15 significant digits.
        if len(value.as_tuple().digits) > 15:
            raise ValueError(f"{value} has too many digits to send as a JSON number exactly")
        return float(value)
    if isinstance(value, datetime):
        return value.strftime(INF_TIME_FORMAT)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


# -- 9001 sign-in -------------------------------------------------------------------------------
class SignInData(BaseModel):
    opter_no: str
    mac: str = ""
    ip: str = ""


class SignInInput(BaseModel):
    signIn: SignInData


class SignInOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sign_time: str
    sign_no: str = Field(min_length=1)


class SignInOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    signinoutb: SignInOut


# -- 1101 person info ---------------------------------------------------------------------------
class PersonInfoData(BaseModel):
    mdtrt_cert_type: str  # 01 e-certificate token, 02 ID number, 03 social-security card
    mdtrt_cert_no: str
    card_sn: str = ""
    begntime: str = ""
    psn_cert_type: str = ""  # 01 resident ID card, when certno is given
    certno: str = ""
    psn_name: str = ""


class PersonInfoInput(BaseModel):
    data: PersonInfoData


class BaseInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    psn_no: str
    psn_cert_type: str | None = None
    certno: str
    psn_name: str
    gend: str | None = None  # 1 male, 2 female
    naty: str | None = None
    brdy: date | None = None
    age: Decimal | None = None


class InsuInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    balc: Decimal = Decimal("0")
    insutype: str
    psn_type: str | None = None
    psn_insu_stas: str | None = None  # 1 insured, 2 suspended, 4 terminated
    psn_insu_date: date | None = None
    paus_insu_date: date | None = None
    cvlserv_flag: str | None = None
    insuplc_admdvs: str | None = None
    emp_name: str | None = None

    @field_validator("psn_insu_date", "paus_insu_date", mode="before")
    @classmethod
    def _empty_date_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class IdetInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    psn_idet_type: str | None = None
    psn_type_lv: str | None = None
    memo: str | None = None
    begntime: str | None = None
    endtime: str | None = None


class PersonInfoOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    baseinfo: BaseInfo
    insuinfo: list[InsuInfo] = []
    idetinfo: list[IdetInfo] = []

    @field_validator("insuinfo", "idetinfo", mode="before")
    @classmethod
    def _null_list_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


# -- 5301 special-disease filing query ----------------------------------------------------------
class SpecialDiseaseQueryData(BaseModel):
    psn_no: str


class SpecialDiseaseQueryInput(BaseModel):
    data: SpecialDiseaseQueryData


class SpecialDiseaseFiling(BaseModel):
    model_config = ConfigDict(extra="ignore")

    opsp_dise_code: str
    opsp_dise_name: str
    begndate: date | None = None
    enddate: date | None = None

    @field_validator("begndate", "enddate", mode="before")
    @classmethod
    def _empty_date_is_none(cls, value: Any) -> Any:
        if value in ("", None):
            return None
        if isinstance(value, str) and len(value) > 10:
            return value[:10]  # some platforms send "yyyy-MM-dd HH:mm:ss"
        return value


class SpecialDiseaseQueryOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    feedetail: list[SpecialDiseaseFiling] = []

    @field_validator("feedetail", mode="before")
    @classmethod
    def _single_or_null(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, dict) else value


# -- e-certificate QR resolution (ec.query) -----------------------------------------------------
class EcQueryRequest(BaseModel):
    qrcode: str
    orgId: str
    businessType: str = EC_BUSINESS_TYPE_OUTPATIENT


class EcQueryData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ecToken: str = Field(min_length=1)
    idNo: str
    userName: str
    idType: str = "01"
    insuOrg: str
    expiresIn: int | None = None


class EcQueryResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: int
    message: str = ""
    data: EcQueryData | None = None

    @field_validator("code", mode="before")
    @classmethod
    def _code_number_or_string(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        return value


def parse_ec_response(text: str | bytes) -> EcQueryResponse:
    data = _loads(text)
    if not isinstance(data, dict):
        raise ValueError("an ec.query reply is a JSON object")
    return EcQueryResponse.model_validate(data)


# -- outpatient settlement: shared pieces -------------------------------------------------------
def _none_is_empty_list(value: Any) -> Any:
    if value is None:
        return []
    return [value] if isinstance(value, dict) else value


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- 2201 / 2202 registration -------------------------------------------------------------------
class RegisterData(BaseModel):
    psn_no: str
    insutype: str
    begntime: str  # yyyy-MM-dd HH:mm:ss
    mdtrt_cert_type: str
    mdtrt_cert_no: str
    ipt_otp_no: str  # the hospital's visit number
    atddr_no: str = ""  # attending doctor's code
    dr_name: str = ""
    dept_code: str = ""
    dept_name: str = ""
    caty: str = ""  # department category (科别)


class RegisterInput(BaseModel):
    data: RegisterData


class RegisterOut(_Out):
    mdtrt_id: str = Field(min_length=1)
    psn_no: str
    ipt_otp_no: str | None = None


class RegisterOutput(_Out):
    data: RegisterOut


class CancelRegistrationData(BaseModel):
    psn_no: str
    mdtrt_id: str
    ipt_otp_no: str


class CancelRegistrationInput(BaseModel):
    data: CancelRegistrationData


# -- 2203 visit info ----------------------------------------------------------------------------
class MdtrtInfo(BaseModel):
    mdtrt_id: str
    psn_no: str
    med_type: str  # 11 ordinary outpatient, 14 special-disease outpatient
    begntime: str
    main_cond_dscr: str = ""
    dise_codg: str = ""
    dise_name: str = ""
    birctrl_type: str = ""
    birctrl_matn_date: str = ""


class DiseInfo(BaseModel):
    diag_type: str  # 1 western, 2 TCM main, 3 TCM syndrome
    diag_srt_no: int
    diag_code: str
    diag_name: str
    diag_dept: str = ""
    dise_dor_no: str = ""
    dise_dor_name: str = ""
    diag_time: str = ""
    vali_flag: str = "1"


class VisitInfoInput(BaseModel):
    mdtrtinfo: MdtrtInfo
    diseinfo: list[DiseInfo] = []


# -- 2204 / 2205 fee details --------------------------------------------------------------------
class FeeDetail(BaseModel):
    feedetl_sn: str
    mdtrt_id: str
    psn_no: str
    chrg_bchno: str
    dise_codg: str = ""
    rxno: str = ""
    rx_circ_flag: str = "0"
    fee_ocur_time: str
    med_list_codg: str  # the insurance code; "" for an item that has none
    medins_list_codg: str  # the hospital's own item code
    det_item_fee_sumamt: Money
    cnt: Decimal
    pric: Decimal
    sin_dos_dscr: str = ""
    used_frqu_dscr: str = ""
    prd_days: Decimal = Decimal("0")
    medc_way_dscr: str = ""
    bilg_dept_codg: str = ""
    bilg_dept_name: str = ""
    bilg_dr_codg: str = ""
    bilg_dr_name: str = ""
    hosp_appr_flag: str = ""


class FeeUploadInput(BaseModel):
    feedetail: list[FeeDetail]


class FeeResultOut(_Out):
    feedetl_sn: str
    det_item_fee_sumamt: Money
    cnt: Decimal | None = None
    pric: Decimal | None = None
    pric_uplmt_amt: Money | None = None
    selfpay_prop: Decimal = Decimal("0")
    fulamt_ownpay_amt: Money = Decimal("0.00")
    overlmt_amt: Money = Decimal("0.00")
    preselfpay_amt: Money = Decimal("0.00")
    inscp_scp_amt: Money = Decimal("0.00")
    chrgitm_lv: str = ""
    med_chrgitm_type: str = ""
    memo: str | None = None


class FeeUploadOutput(_Out):
    result: list[FeeResultOut] = []

    @field_validator("result", mode="before")
    @classmethod
    def _list_of_result(cls, value: Any) -> Any:
        return _none_is_empty_list(value)


class CancelFeesData(BaseModel):
    mdtrt_id: str
    chrg_bchno: str  # "0000": every unsettled batch of the visit
    psn_no: str


class CancelFeesInput(BaseModel):
    data: CancelFeesData


# -- 2206 / 2207 / 2208 settlement --------------------------------------------------------------
class SettleData(BaseModel):
    psn_no: str
    mdtrt_cert_type: str
    mdtrt_cert_no: str
    med_type: str
    medfee_sumamt: Money
    psn_setlway: str = "01"  # settle by item
    mdtrt_id: str
    chrg_bchno: str
    insutype: str
    acct_used_flag: str  # 1: the personal account pays the patient's part
    insuplc_admdvs: str
    card_sn: str = ""
    invono: str = ""


class SettleInput(BaseModel):
    data: SettleData


class SetlInfo(_Out):
    setl_id: str | None = None
    mdtrt_id: str
    psn_no: str
    medfee_sumamt: Money
    fulamt_ownpay_amt: Money = Decimal("0.00")
    overlmt_selfpay: Money = Decimal("0.00")
    preselfpay_amt: Money = Decimal("0.00")
    inscp_scp_amt: Money = Decimal("0.00")
    act_pay_dedc: Money = Decimal("0.00")
    hifp_pay: Money = Decimal("0.00")
    pool_prop_selfpay: Decimal | None = None
    fund_pay_sumamt: Money
    psn_part_amt: Money | None = None
    acct_pay: Money
    psn_cash_pay: Money
    balc: Money | None = None
    setl_time: str | None = None
    clr_optins: str | None = None
    clr_type: str | None = None


class SetlDetail(_Out):
    fund_pay_type: str
    fund_pay_type_name: str | None = None
    fund_payamt: Money


class SettleOutput(_Out):
    setlinfo: SetlInfo
    setldetail: list[SetlDetail] = []

    @field_validator("setldetail", mode="before")
    @classmethod
    def _list_of_setldetail(cls, value: Any) -> Any:
        return _none_is_empty_list(value)


class CancelSettlementData(BaseModel):
    setl_id: str
    mdtrt_id: str
    psn_no: str


class CancelSettlementInput(BaseModel):
    data: CancelSettlementData


class CancelSetlInfo(_Out):
    setl_id: str  # the cancellation's own id
    init_setl_id: str | None = None  # the settlement cancelled
    mdtrt_id: str | None = None
    medfee_sumamt: Money
    fund_pay_sumamt: Money
    acct_pay: Money
    psn_cash_pay: Money
    balc: Money | None = None


class CancelSettlementOutput(_Out):
    setlinfo: CancelSetlInfo


# -- 2601 reversal ------------------------------------------------------------------------------
class ReversalData(BaseModel):
    omsgid: str
    oinfno: str
    psn_no: str


class ReversalInput(BaseModel):
    data: ReversalData


class ReversalOut(_Out):
    omsgid: str
    oinfno: str
    rvs_stas: str
    rvs_dscr: str = ""
    setl_id: str | None = None
    mdtrt_id: str | None = None
    balc: Money | None = None


class ReversalOutput(_Out):
    data: ReversalOut


# -- 3201 / 3202 reconciliation -----------------------------------------------------------------
class TotalsReconciliationData(BaseModel):
    insutype: str = ""
    clr_type: str = ""
    setl_optins: str
    stmt_begndate: str  # yyyy-MM-dd
    stmt_enddate: str
    medfee_sumamt: Money
    fund_pay_sumamt: Money
    acct_pay: Money
    fixmedins_setl_cnt: int


class TotalsReconciliationInput(BaseModel):
    data: TotalsReconciliationData


class StmtInfo(_Out):
    setl_optins: str | None = None
    stmt_rslt: str  # 0 consistent, 1 not
    stmt_rslt_dscr: str = ""
    medfee_sumamt: Money | None = None
    fund_pay_sumamt: Money | None = None
    acct_pay: Money | None = None
    fixmedins_setl_cnt: int | None = None


class TotalsReconciliationOutput(_Out):
    stmtinfo: StmtInfo


class DetailLine(BaseModel):
    setl_id: str
    mdtrt_id: str = ""
    psn_no: str = ""
    medfee_sumamt: Money
    fund_pay_sumamt: Money
    acct_pay: Money
    psn_cash_pay: Money


class DetailsReconciliationData(BaseModel):
    setl_optins: str
    stmt_begndate: str
    stmt_enddate: str
    setl_list: list[DetailLine]


class DetailsReconciliationInput(BaseModel):
    data: DetailsReconciliationData


class DiffField(_Out):
    field: str
    hosp_value: Money | None = None
    platform_value: Money | None = None


class Diff(_Out):
    setl_id: str
    mdtrt_id: str | None = None
    psn_no: str | None = None
    diff_type: str  # hospital_only, platform_only, amount_mismatch
    platform_state: str = ""
    memo: str = ""
    fields: list[DiffField] = []


class DetailsStmtInfo(_Out):
    stmt_rslt: str
    hosp_setl_cnt: int | None = None
    platform_setl_cnt: int | None = None
    matched_cnt: int | None = None


class DetailsReconciliationOutput(_Out):
    stmtinfo: DetailsStmtInfo
    diffs: list[Diff] = []

    @field_validator("diffs", mode="before")
    @classmethod
    def _list_of_diffs(cls, value: Any) -> Any:
        return _none_is_empty_list(value)
