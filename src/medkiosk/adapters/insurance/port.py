"""The insurance port: what the kiosk asks the national insurance platform, in readable names.

Use cases depend on :class:`InsurancePort`; the HTTP adapter and any test double implement it.
Names and ID numbers are kept out of ``repr`` so a model that reaches a log line does not leak
them. Every amount is a ``Decimal`` in yuan with two places.

Outpatient settlement runs: :meth:`~InsurancePort.register_visit` (2201) →
:meth:`~InsurancePort.upload_visit_info` (2203) → :meth:`~InsurancePort.upload_fees` (2204) →
:meth:`~InsurancePort.pre_settle` (2206) → :meth:`~InsurancePort.settle` (2207). Every call that
changes something takes the caller's ``msgid``: the payment engine persists it before sending, so
that after an unknown outcome it can send the same msgid again (the platform answers with the first
reply) or name it in a :meth:`~InsurancePort.reverse` (2601).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol

CertificateKind = Literal["01", "02", "03"]
"""How the person identified themselves: 01 e-certificate token, 02 ID number, 03 insurance card."""

E_CERTIFICATE: CertificateKind = "01"
ID_NUMBER: CertificateKind = "02"
INSURANCE_CARD: CertificateKind = "03"


@dataclass(frozen=True, slots=True)
class Certificate:
    """A medium presented at the kiosk (医保凭证). ``card_sn`` is the card's 卡识别码 (kind 03)."""

    kind: CertificateKind
    number: str = field(repr=False)
    card_sn: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("01", "02", "03"):
            raise ValueError(f"certificate kind is 01, 02 or 03, got {self.kind!r}")
        if not self.number.strip():
            raise ValueError("a certificate needs a number")


@dataclass(frozen=True, slots=True)
class SpecialDisease:
    """A special-disease outpatient filing (门诊慢特病备案) the person holds."""

    code: str
    name: str
    begins_on: date | None = None
    ends_on: date | None = None


@dataclass(frozen=True, slots=True)
class InsuredPerson:
    """A person as the platform knows them (1101), with the insurance they will settle under.

    ``insured_region`` is the person's own 参保地; it is what later transactions send as
    ``insuplc_admdvs`` and is never the hospital's region by default.
    """

    psn_no: str
    name: str = field(repr=False)
    id_number: str = field(repr=False)
    gender: Literal["M", "F"]
    birth_date: date | None
    insured_region: str
    scheme: str  # insutype: 310 employee basic, 390 resident basic
    person_type: str  # psn_type: 11 in-service employee, 12 retired, 1501 resident …
    balance: Decimal  # personal account (个人账户) balance, yuan
    special_diseases: tuple[SpecialDisease, ...] = ()

    def is_cross_province(self, treatment_region: str) -> bool:
        return self.insured_region[:2] != treatment_region[:2]


@dataclass(frozen=True, slots=True)
class ECertificate:
    """A scanned e-certificate QR resolved to a short-lived token for 1101 kind 01."""

    token: str = field(repr=False)
    id_number: str = field(repr=False)
    name: str = field(repr=False)
    insured_region: str
    expires_in_seconds: int | None = None

    def as_certificate(self) -> Certificate:
        return Certificate(E_CERTIFICATE, self.token)


@dataclass(frozen=True, slots=True)
class SignIn:
    """A 9001 sign-in: the ``sign_no`` every later transaction carries."""

    sign_no: str
    signed_in_at: datetime | None


MedType = Literal["11", "14"]
"""The kind of outpatient visit (``med_type``): 11 ordinary, 14 special disease."""

ORDINARY_OUTPATIENT: MedType = "11"
SPECIAL_DISEASE_OUTPATIENT: MedType = "14"


@dataclass(frozen=True, slots=True)
class VisitRegistration:
    """An outpatient visit the platform registered (2201); ``mdtrt_id`` names it from now on."""

    mdtrt_id: str
    psn_no: str
    visit_no: str  # ipt_otp_no: the hospital's own visit number


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """One diagnosis of a visit (2203 ``diseinfo``)."""

    code: str  # diag_code
    name: str  # diag_name
    rank: int = 1  # diag_srt_no: 1 is the main diagnosis
    kind: str = "1"  # diag_type: 1 western medicine, 2 TCM disease, 3 TCM syndrome
    department: str = ""  # diag_dept
    doctor_code: str = ""  # dise_dor_no
    doctor_name: str = ""  # dise_dor_name
    diagnosed_at: datetime | None = None  # diag_time


@dataclass(frozen=True, slots=True)
class FeeItem:
    """One fee line to upload (2204): the HIS's item with its insurance code and amount."""

    serial: str  # feedetl_sn: unique within the visit
    hospital_code: str  # medins_list_codg: the HIS's item code
    insurance_code: str  # med_list_codg: "" for an item without one (paid in full by the patient)
    quantity: Decimal  # cnt
    unit_price: Decimal  # pric
    amount: Decimal  # det_item_fee_sumamt: the platform refuses it unless it is quantity × unit price
    occurred_at: datetime  # fee_ocur_time
    department_code: str = ""  # bilg_dept_codg
    department_name: str = ""  # bilg_dept_name
    doctor_code: str = ""  # bilg_dr_codg
    doctor_name: str = ""  # bilg_dr_name
    prescription_no: str = ""  # rxno


@dataclass(frozen=True, slots=True)
class FeeResult:
    """How the platform classed one uploaded line (2204 ``result``).

    ``self_paid_in_full + over_limit + pre_self_paid + in_scope == amount``.
    """

    serial: str  # feedetl_sn
    amount: Decimal  # det_item_fee_sumamt
    item_class: str  # chrgitm_lv: 01 class A (甲), 02 class B (乙), 03 class C (丙, fully self-paid)
    charge_type: str  # med_chrgitm_type
    self_pay_ratio: Decimal  # selfpay_prop
    self_paid_in_full: Decimal  # fulamt_ownpay_amt
    over_limit: Decimal  # overlmt_amt
    pre_self_paid: Decimal  # preselfpay_amt
    in_scope: Decimal  # inscp_scp_amt
    price_cap: Decimal | None = None  # pric_uplmt_amt
    note: str = ""  # memo


@dataclass(frozen=True, slots=True)
class SettlementRequest:
    """What 2206 and 2207 settle: the uploaded lines of one charge batch of one visit."""

    psn_no: str
    insured_region: str  # insuplc_admdvs: the person's, from 1101
    scheme: str  # insutype
    certificate: Certificate  # the medium the person identified with
    mdtrt_id: str
    batch_no: str  # chrg_bchno: the batch the lines were uploaded under
    total: Decimal  # medfee_sumamt: must equal the uploaded lines' total, else refused
    med_type: MedType = ORDINARY_OUTPATIENT
    use_account: bool = True  # acct_used_flag: the personal account pays the patient's part (employees)


@dataclass(frozen=True, slots=True)
class FundPayment:
    """One fund's payment in a settlement (``setldetail``)."""

    fund_type: str  # fund_pay_type, e.g. 310100 employee pooled fund, 390100 resident fund
    amount: Decimal  # fund_payamt
    name: str = ""  # fund_pay_type_name


@dataclass(frozen=True, slots=True)
class SettlementResult:
    """A pre-settlement (2206, ``setl_id`` None) or a settlement (2207).

    ``fund + account + cash`` is what the platform says the parts are; :attr:`parts_add_up` tells
    whether they make ``total``. Comparing ``total`` with the HIS bill is the caller's job.
    """

    setl_id: str | None
    mdtrt_id: str
    psn_no: str
    total: Decimal  # medfee_sumamt
    fund: Decimal  # fund_pay_sumamt
    account: Decimal  # acct_pay
    cash: Decimal  # psn_cash_pay
    self_paid_in_full: Decimal  # fulamt_ownpay_amt
    pre_self_paid: Decimal  # preselfpay_amt
    over_limit: Decimal  # overlmt_selfpay
    in_scope: Decimal  # inscp_scp_amt
    deductible: Decimal  # act_pay_dedc: the part of the year's deductible this bill paid
    balance_after: Decimal | None  # balc: the personal account after it
    fund_ratio: Decimal | None = None  # pool_prop_selfpay
    details: tuple[FundPayment, ...] = ()  # setldetail
    settled_at: datetime | None = None  # setl_time
    clearing_agency: str | None = None  # clr_optins: what to reconcile it under (3201/3202)

    @property
    def parts_add_up(self) -> bool:
        return self.fund + self.account + self.cash == self.total


@dataclass(frozen=True, slots=True)
class SettlementCancellation:
    """A settlement cancelled (2208). Amounts are what was undone, as positive numbers."""

    setl_id: str  # the settlement cancelled
    cancellation_id: str  # the platform's id for the cancellation itself
    total: Decimal
    fund: Decimal
    account: Decimal  # returned to the personal account
    cash: Decimal  # the cash part, for the hospital to refund
    balance_after: Decimal | None


class ReversalOutcome(StrEnum):
    """What a reversal (2601) found. Every one of them means the original now has no effect."""

    REVERSED = "reversed"
    """The original had been processed and is now undone (a settlement: account restored)."""
    NOT_RECEIVED = "not_received"
    """The platform never processed the original; nothing undone, and it refuses the original if it arrives."""
    ALREADY_REVERSED = "already_reversed"
    """An earlier reversal undid it already."""
    ALREADY_CANCELLED = "already_cancelled"
    """It was cancelled before (2208 for a settlement, 2202/2205 for the rest); nothing undone."""
    NOTHING_TO_UNDO = "nothing_to_undo"
    """The original was processed but left nothing to undo."""


@dataclass(frozen=True, slots=True)
class Reversal:
    """The answer to a reversal (2601)."""

    original_msgid: str
    original_infno: str
    outcome: ReversalOutcome
    description: str = ""  # rvs_dscr, in Chinese
    setl_id: str | None = None  # the settlement concerned, when the original was a 2207
    mdtrt_id: str | None = None
    balance_after: Decimal | None = None  # the personal account after a settlement was reversed


@dataclass(frozen=True, slots=True)
class TotalsReconciliation:
    """3201: whether the hospital's totals match the platform's, and the platform's own figures."""

    consistent: bool
    description: str  # stmt_rslt_dscr, in Chinese
    total: Decimal | None  # the platform's medfee_sumamt
    fund: Decimal | None
    account: Decimal | None
    count: int | None  # fixmedins_setl_cnt


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """One settlement as the hospital's journal has it, for detail reconciliation (3202)."""

    setl_id: str
    total: Decimal
    fund: Decimal
    account: Decimal
    cash: Decimal
    mdtrt_id: str = ""
    psn_no: str = ""


class DifferenceKind(StrEnum):
    """How one settlement differs between the hospital and the platform."""

    HOSPITAL_ONLY = "hospital_only"
    """The hospital lists it; the platform has no valid settlement by that id in the window."""
    PLATFORM_ONLY = "platform_only"
    """The platform has a valid settlement in the window that the hospital did not list."""
    AMOUNT_MISMATCH = "amount_mismatch"
    """Both have it, with different amounts."""


@dataclass(frozen=True, slots=True)
class AmountDifference:
    field: str  # medfee_sumamt, fund_pay_sumamt, acct_pay or psn_cash_pay
    hospital: Decimal | None
    platform: Decimal | None


@dataclass(frozen=True, slots=True)
class ReconciliationDifference:
    setl_id: str
    kind: DifferenceKind
    platform_state: str  # valid, cancelled, reversed or unknown
    note: str = ""  # memo, in Chinese
    mdtrt_id: str | None = None
    psn_no: str | None = None
    amounts: tuple[AmountDifference, ...] = ()


@dataclass(frozen=True, slots=True)
class DetailsReconciliation:
    """3202: the settlements that differ, on either side."""

    consistent: bool
    differences: tuple[ReconciliationDifference, ...]
    hospital_count: int | None = None
    platform_count: int | None = None
    matched_count: int | None = None


class InsurancePort(Protocol):
    """The national medical-security platform, as the kiosk's use cases see it.

    Every method raises :class:`~medkiosk.adapters.errors.UpstreamRefused` when the platform
    says no (``UpstreamNotFound`` when it knows no such person) and
    :class:`~medkiosk.adapters.errors.UpstreamUnknown` when no usable answer came back.
    """

    def sign_in(self) -> SignIn: ...

    def resolve_e_certificate(self, qrcode: str) -> ECertificate: ...

    def person_info(self, certificate: Certificate, *, include_special_diseases: bool = False,
                    msgid: str | None = None) -> InsuredPerson: ...

    def special_diseases(self, psn_no: str, insured_region: str, *,
                         msgid: str | None = None) -> list[SpecialDisease]: ...

    # -- outpatient settlement ------------------------------------------------------------------
    def register_visit(self, *, psn_no: str, insured_region: str, scheme: str, certificate: Certificate,
                       visit_no: str, began_at: datetime, department_code: str, department_name: str,
                       doctor_code: str, doctor_name: str, department_kind: str = "",
                       msgid: str) -> VisitRegistration:
        """2201: open an outpatient visit; refused for a cross-province person without a filing."""
        ...

    def cancel_visit(self, *, psn_no: str, insured_region: str, mdtrt_id: str, visit_no: str, msgid: str) -> None:
        """2202: cancel a visit that has no valid settlement (its unsettled fee lines go with it)."""
        ...

    def upload_visit_info(self, *, psn_no: str, insured_region: str, mdtrt_id: str, began_at: datetime,
                          med_type: MedType = ORDINARY_OUTPATIENT, diagnoses: Sequence[Diagnosis] = (),
                          main_condition: str = "", disease_code: str = "", disease_name: str = "",
                          msgid: str) -> None:
        """2203: the visit's kind and diagnoses; med_type 14 needs a filed ``disease_code``."""
        ...

    def upload_fees(self, *, psn_no: str, insured_region: str, mdtrt_id: str, batch_no: str,
                    items: Sequence[FeeItem], msgid: str) -> list[FeeResult]:
        """2204: upload a batch of fee lines; the platform classes each one."""
        ...

    def cancel_fees(self, *, psn_no: str, insured_region: str, mdtrt_id: str, batch_no: str | None = None,
                    msgid: str) -> None:
        """2205: withdraw the unsettled lines of one batch (``None``: of every batch)."""
        ...

    def pre_settle(self, request: SettlementRequest, *, msgid: str | None = None) -> SettlementResult:
        """2206: what settling would give, committing nothing."""
        ...

    def settle(self, request: SettlementRequest, *, msgid: str) -> SettlementResult:
        """2207: settle. ``UpstreamUnknown`` here is an unknown outcome: resend or :meth:`reverse`."""
        ...

    def cancel_settlement(self, *, setl_id: str, mdtrt_id: str, psn_no: str, insured_region: str,
                          msgid: str) -> SettlementCancellation:
        """2208: cancel a valid settlement; the account is restored."""
        ...

    def reverse(self, original_msgid: str, original_infno: str, psn_no: str, insured_region: str, *,
                msgid: str) -> Reversal:
        """2601: undo whatever the message ``original_msgid`` did, if anything."""
        ...

    def reconcile_totals(self, *, clearing_agency: str, begins_on: date, ends_on: date, total: Decimal,
                         fund: Decimal, account: Decimal, count: int, scheme: str = "",
                         clearing_type: str = "", msgid: str | None = None) -> TotalsReconciliation:
        """3201: compare the hospital's totals for a period with the platform's."""
        ...

    def reconcile_details(self, *, clearing_agency: str, begins_on: date, ends_on: date,
                          settlements: Sequence[SettlementLine], msgid: str | None = None) -> DetailsReconciliation:
        """3202: compare settlement by settlement; the platform lists the differences."""
        ...
