"""The insurance adapter: the national platform's envelopes over HTTP, behind :class:`InsurancePort`.

It signs in (9001) lazily and once, reuses the ``sign_no``, and signs in again and retries once
when the platform says the sign-in is gone. Replies become readable models or one of the two error
kinds of :mod:`medkiosk.adapters.errors`: ``infcode`` -1 is a refusal, anything that is not a
reply (timeout, connection failure, HTTP error, unparsable body) is an unknown outcome. Nothing
personal is logged: not the input, not the output, not ``err_msg`` (it may name the person).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.adapters.insurance import wire
from medkiosk.adapters.insurance.port import (
    ORDINARY_OUTPATIENT,
    AmountDifference,
    Certificate,
    DetailsReconciliation,
    Diagnosis,
    DifferenceKind,
    ECertificate,
    FeeItem,
    FeeResult,
    FundPayment,
    InsuredPerson,
    MedType,
    ReconciliationDifference,
    Reversal,
    ReversalOutcome,
    SettlementCancellation,
    SettlementLine,
    SettlementRequest,
    SettlementResult,
    SignIn,
    SpecialDisease,
    TotalsReconciliation,
    VisitRegistration,
)
from medkiosk.adapters.insurance.transport import PlainJsonTransport, WireTransport
from medkiosk.domain.identity import (
    birth_date_from_id,
    gender_from_id,
    is_valid_id_number,
)
from medkiosk.metrics import Outcome, record_upstream

log = logging.getLogger(__name__)

SYSTEM = "insurance"
SIGN_IN = "9001"
PERSON_INFO = "1101"
SPECIAL_DISEASES = "5301"
REGISTER, CANCEL_REGISTRATION, VISIT_INFO = "2201", "2202", "2203"
UPLOAD_FEES, CANCEL_FEES, PRE_SETTLE, SETTLE, CANCEL_SETTLEMENT = "2204", "2205", "2206", "2207", "2208"
REVERSAL, RECONCILE_TOTALS, RECONCILE_DETAILS = "2601", "3201", "3202"
EC_QUERY = "ec.query"
ALL_BATCHES = "0000"

# What a platform says when the sign_no is unknown or stale; then we sign in again once.
_SIGN_IN_GONE = ("未签到", "签到已失效", "签到失效", "签到信息不存在")
_NOT_FOUND = ("未查询到", "无参保信息", "查无此人")
_INSURED = "1"  # psn_insu_stas: currently insured (正常参保)

M = TypeVar("M", bound=BaseModel)


class InsuranceHttpAdapter:
    """:class:`~medkiosk.adapters.insurance.port.InsurancePort` over HTTP.

    ``transport`` is an httpx transport (``httpx.MockTransport`` in tests); ``wire_transport``
    chooses how envelopes are carried (plain JSON, gateway headers …).
    """

    def __init__(self, base_url: str, *, hospital_code: str, hospital_name: str, hospital_admdvs: str,
                 device_no: str, operator: str = "自助机", operator_code: str | None = None,
                 receiver_system: str = "FSI", timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None,
                 wire_transport: WireTransport | None = None,
                 api_path: str = "/fsi/api", ec_query_path: str = "/ec/query",
                 device_mac: str = "", device_ip: str = "",
                 clock: Callable[[], datetime] | None = None,
                 msgid_sequence: wire.MsgidSequence | None = None) -> None:
        if len(hospital_code) != 12:
            raise ValueError("hospital_code (fixmedins_code) is 12 characters")
        if len(hospital_admdvs) != 6 or not hospital_admdvs.isdigit():
            raise ValueError("hospital_admdvs is a 6-digit region code")
        self.hospital_code = hospital_code
        self.hospital_name = hospital_name
        self.hospital_admdvs = hospital_admdvs
        self.device_no = device_no
        self.operator = operator
        self.operator_code = operator_code or device_no
        self.receiver_system = receiver_system
        self.timeout = timeout
        self.api_path = api_path
        self.ec_query_path = ec_query_path
        self.device_mac = device_mac
        self.device_ip = device_ip
        self._wire = wire_transport if wire_transport is not None else PlainJsonTransport()
        self._clock = clock or (lambda: datetime.now(wire.CHINA_TZ))
        self._sequence = msgid_sequence or wire.MsgidSequence()
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self._sign_in_lock = threading.Lock()
        self._sign_no: str | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "InsuranceHttpAdapter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"InsuranceHttpAdapter({str(self._http.base_url)!r}, hospital_code={self.hospital_code!r})"

    # -- message ids ------------------------------------------------------------------------
    def new_msgid(self, *, after_conflict: bool = False) -> str:
        """A fresh msgid from this adapter's sequence.

        ``after_conflict``: the caller found the last one already journalled by another service
        process, whose sequence is running through the same numbers — go on from a fresh random
        point rather than draw the numbers it is about to draw.
        """
        if after_conflict:
            self._sequence.jump()
        return wire.new_msgid(self.hospital_code, self._clock(), self._sequence.next())

    def _given(self, msgid: str) -> str:
        """A state-changing call's msgid is the caller's, persisted before sending: never made up here."""
        if not msgid:
            raise ValueError("a call that changes something needs the caller's msgid")
        if len(msgid) != 30 or not msgid.startswith(self.hospital_code) or not msgid[12:].isdigit():
            raise ValueError("a msgid is this hospital's fixmedins_code + yyyyMMddHHmmss + a 4-digit sequence")
        return msgid

    # -- sign-in ----------------------------------------------------------------------------
    def sign_in(self) -> SignIn:
        """Sign in now (9001) and keep the ``sign_no`` for later transactions."""
        with self._sign_in_lock:
            return self._sign_in_locked()

    def _sign_in_locked(self) -> SignIn:
        body = wire.SignInInput(signIn=wire.SignInData(opter_no=self.operator_code, mac=self.device_mac,
                                                       ip=self.device_ip))
        reply = self._send(SIGN_IN, body.model_dump(), insuplc_admdvs="", msgid=self.new_msgid(), sign_no="")
        if not reply.ok:
            raise _refusal(SIGN_IN, reply)
        out = _read(wire.SignInOutput, reply.output, SIGN_IN).signinoutb
        self._sign_no = out.sign_no
        log.info("insurance sign-in done", extra={"infno": SIGN_IN})
        return SignIn(sign_no=out.sign_no, signed_in_at=_parse_time(out.sign_time))

    def _current_sign_no(self) -> str:
        with self._sign_in_lock:
            if self._sign_no is None:
                return self._sign_in_locked().sign_no
            return self._sign_no

    def _forget_sign_no(self, stale: str) -> None:
        with self._sign_in_lock:
            if self._sign_no == stale:  # another thread may already have signed in again
                self._sign_no = None

    # -- the generic call -------------------------------------------------------------------
    def call(self, infno: str, input: dict[str, Any], *, insuplc_admdvs: str = "",
             msgid: str | None = None) -> dict[str, Any]:
        """Send one transaction and return its ``output`` (``{}`` when the platform sent none).

        ``msgid`` is the caller's when it must be known before sending (a settlement persists it
        so a reversal can name it); a retry after a lost sign-in reuses it, since the platform
        refused the first attempt without processing it.
        """
        return self._call(infno, input, insuplc_admdvs=insuplc_admdvs, msgid=msgid).output or {}

    def _call(self, infno: str, input: dict[str, Any], *, insuplc_admdvs: str,
              msgid: str | None) -> wire.ResponseEnvelope:
        if infno == SIGN_IN:
            raise ValueError("use sign_in() for 9001")
        msgid = msgid or self.new_msgid()
        sign_no = self._current_sign_no()
        reply = self._send(infno, input, insuplc_admdvs=insuplc_admdvs, msgid=msgid, sign_no=sign_no)
        if not reply.ok and _says_sign_in_gone(reply.err_msg):
            log.info("insurance sign-in gone; signing in again", extra={"infno": infno, "msgid": msgid})
            self._forget_sign_no(sign_no)
            sign_no = self._current_sign_no()
            reply = self._send(infno, input, insuplc_admdvs=insuplc_admdvs, msgid=msgid, sign_no=sign_no)
        if not reply.ok:
            raise _refusal(infno, reply)
        return reply

    def _send(self, infno: str, input: dict[str, Any], *, insuplc_admdvs: str, msgid: str,
              sign_no: str) -> wire.ResponseEnvelope:
        envelope = wire.RequestEnvelope(
            infno=infno, msgid=msgid, mdtrtarea_admvs=self.hospital_admdvs, insuplc_admdvs=insuplc_admdvs,
            recer_sys_code=self.receiver_system, dev_no=self.device_no, infver=wire.INFVER,
            opter_type=wire.OPTER_TYPE_SELF_SERVICE, opter=self.operator_code, opter_name=self.operator,
            inf_time=self._clock().strftime(wire.INF_TIME_FORMAT), fixmedins_code=self.hospital_code,
            fixmedins_name=self.hospital_name, sign_no=sign_no, input=input,
        )
        started = time.monotonic()
        try:
            text = self._post(self.api_path, envelope.model_dump(), infno, msgid)
        except UpstreamUnknown as exc:
            record_upstream(SYSTEM, infno, Outcome.UNKNOWN, started, kind=exc.code.lower())
            raise
        try:
            reply = wire.parse_response(text)
        except ValueError as exc:
            record_upstream(SYSTEM, infno, Outcome.UNKNOWN, started, kind="unparsable")
            raise UpstreamUnknown(SYSTEM, f"unparsable reply: {_brief(exc)}", code="UNPARSABLE",
                                  operation=infno) from exc
        # A refusal is worth a line at INFO; an ordinary reply only when debugging (2–4 a payment).
        log.log(logging.DEBUG if reply.ok else logging.INFO, "insurance reply",
                extra={"infno": infno, "msgid": msgid, "infcode": reply.infcode})
        # The envelope's infcode, not HTTP, says whether the platform refused.
        record_upstream(SYSTEM, infno, Outcome.OK if reply.ok else Outcome.REFUSED, started,
                        kind="" if reply.ok else "refused")
        return reply

    def _post(self, path: str, payload: dict[str, Any], operation: str, msgid: str | None) -> str:
        request = self._wire.encode(path, payload)
        started = time.monotonic()
        try:
            response = self._http.post(path, content=request.content, headers=request.headers)
        except httpx.TimeoutException as exc:
            log.warning("insurance timeout", extra={"infno": operation, "msgid": msgid})
            raise UpstreamUnknown(SYSTEM, f"no reply within {self.timeout}s", code="TIMEOUT",
                                  operation=operation) from exc
        except httpx.HTTPError as exc:
            log.warning("insurance transport error", extra={"infno": operation, "msgid": msgid})
            raise UpstreamUnknown(SYSTEM, f"transport failure: {type(exc).__name__}", code="TRANSPORT",
                                  operation=operation) from exc
        elapsed_ms = round((time.monotonic() - started) * 1000)
        if response.status_code != 200:
            log.warning("insurance HTTP error", extra={"infno": operation, "msgid": msgid,
                                                       "status": response.status_code, "ms": elapsed_ms})
            raise UpstreamUnknown(SYSTEM, f"HTTP {response.status_code}", code=f"HTTP_{response.status_code}",
                                  operation=operation)
        try:
            return self._wire.decode(response)
        except ValueError as exc:
            raise UpstreamUnknown(SYSTEM, f"undecodable reply: {_brief(exc)}", code="UNPARSABLE",
                                  operation=operation) from exc

    # -- typed transactions -----------------------------------------------------------------
    def resolve_e_certificate(self, qrcode: str) -> ECertificate:
        """Resolve a scanned e-certificate QR to its token (``ec.query``)."""
        body = wire.EcQueryRequest(qrcode=qrcode, orgId=self.hospital_code)
        text = self._post(self.ec_query_path, body.model_dump(), EC_QUERY, None)
        try:
            reply = wire.parse_ec_response(text)
        except ValueError as exc:
            raise UpstreamUnknown(SYSTEM, f"unparsable reply: {_brief(exc)}", code="UNPARSABLE",
                                  operation=EC_QUERY) from exc
        if reply.code != 0:
            raise UpstreamRefused(SYSTEM, reply.message or "电子凭证查询失败", code=str(reply.code),
                                  operation=EC_QUERY)
        if reply.data is None:
            raise UpstreamUnknown(SYSTEM, "success without data", code="UNPARSABLE", operation=EC_QUERY)
        data = reply.data
        return ECertificate(token=data.ecToken, id_number=data.idNo, name=data.userName,
                            insured_region=data.insuOrg, expires_in_seconds=data.expiresIn)

    def person_info(self, certificate: Certificate, *, include_special_diseases: bool = False,
                    msgid: str | None = None) -> InsuredPerson:
        """1101: who presented ``certificate`` and the insurance they settle under."""
        by_id_number = certificate.kind == "02"
        data = wire.PersonInfoData(
            mdtrt_cert_type=certificate.kind, mdtrt_cert_no=certificate.number,
            card_sn=certificate.card_sn or "",
            psn_cert_type="01" if by_id_number else "", certno=certificate.number if by_id_number else "",
        )
        try:
            reply = self._call(PERSON_INFO, wire.PersonInfoInput(data=data).model_dump(),
                               insuplc_admdvs="", msgid=msgid)
        except UpstreamRefused as refusal:
            if any(marker in refusal.message for marker in _NOT_FOUND):
                raise UpstreamNotFound(SYSTEM, refusal.message, code=refusal.code,
                                       operation=PERSON_INFO) from None
            raise
        out = _read(wire.PersonInfoOutput, reply.output, PERSON_INFO)
        person = _person(out)
        if include_special_diseases:
            diseases = self.special_diseases(person.psn_no, person.insured_region)
            person = dataclasses.replace(person, special_diseases=tuple(diseases))
        return person

    def special_diseases(self, psn_no: str, insured_region: str, *,
                         msgid: str | None = None) -> list[SpecialDisease]:
        """5301: the special-disease filings the person holds (empty when none)."""
        if not insured_region:
            raise ValueError("5301 needs the person's insured region (from 1101)")
        body = wire.SpecialDiseaseQueryInput(data=wire.SpecialDiseaseQueryData(psn_no=psn_no))
        reply = self._call(SPECIAL_DISEASES, body.model_dump(), insuplc_admdvs=insured_region, msgid=msgid)
        out = _read(wire.SpecialDiseaseQueryOutput, reply.output, SPECIAL_DISEASES)
        return [SpecialDisease(code=f.opsp_dise_code, name=f.opsp_dise_name, begins_on=f.begndate,
                               ends_on=f.enddate) for f in out.feedetail]


    # -- outpatient settlement ------------------------------------------------------------------
    def register_visit(self, *, psn_no: str, insured_region: str, scheme: str, certificate: Certificate,
                       visit_no: str, began_at: datetime, department_code: str, department_name: str,
                       doctor_code: str, doctor_name: str, department_kind: str = "",
                       msgid: str) -> VisitRegistration:
        """2201: open an outpatient visit; ``mdtrt_id`` names it in every later transaction."""
        data = wire.RegisterData(
            psn_no=psn_no, insutype=scheme, begntime=_time(began_at), mdtrt_cert_type=certificate.kind,
            mdtrt_cert_no=certificate.number, ipt_otp_no=visit_no, atddr_no=doctor_code, dr_name=doctor_name,
            dept_code=department_code, dept_name=department_name, caty=department_kind,
        )
        reply = self._call(REGISTER, wire.RegisterInput(data=data).model_dump(),
                           insuplc_admdvs=_region(insured_region), msgid=self._given(msgid))
        out = _read(wire.RegisterOutput, reply.output, REGISTER).data
        return VisitRegistration(mdtrt_id=out.mdtrt_id, psn_no=out.psn_no, visit_no=out.ipt_otp_no or visit_no)

    def cancel_visit(self, *, psn_no: str, insured_region: str, mdtrt_id: str, visit_no: str, msgid: str) -> None:
        """2202: cancel a visit that has no valid settlement."""
        data = wire.CancelRegistrationData(psn_no=psn_no, mdtrt_id=mdtrt_id, ipt_otp_no=visit_no)
        self._call(CANCEL_REGISTRATION, wire.CancelRegistrationInput(data=data).model_dump(),
                   insuplc_admdvs=_region(insured_region), msgid=self._given(msgid))

    def upload_visit_info(self, *, psn_no: str, insured_region: str, mdtrt_id: str, began_at: datetime,
                          med_type: MedType = ORDINARY_OUTPATIENT, diagnoses: Sequence[Diagnosis] = (),
                          main_condition: str = "", disease_code: str = "", disease_name: str = "",
                          msgid: str) -> None:
        """2203: the visit's kind (11 ordinary, 14 special disease) and its diagnoses."""
        body = wire.VisitInfoInput(
            mdtrtinfo=wire.MdtrtInfo(mdtrt_id=mdtrt_id, psn_no=psn_no, med_type=med_type, begntime=_time(began_at),
                                     main_cond_dscr=main_condition, dise_codg=disease_code, dise_name=disease_name),
            diseinfo=[wire.DiseInfo(diag_type=d.kind, diag_srt_no=d.rank, diag_code=d.code, diag_name=d.name,
                                    diag_dept=d.department, dise_dor_no=d.doctor_code, dise_dor_name=d.doctor_name,
                                    diag_time=_time(d.diagnosed_at) if d.diagnosed_at else "")
                      for d in diagnoses],
        )
        self._call(VISIT_INFO, body.model_dump(), insuplc_admdvs=_region(insured_region), msgid=self._given(msgid))

    def upload_fees(self, *, psn_no: str, insured_region: str, mdtrt_id: str, batch_no: str,
                    items: Sequence[FeeItem], msgid: str) -> list[FeeResult]:
        """2204: upload one batch of fee lines; returns the platform's classing of each."""
        if not items:
            raise ValueError("upload_fees needs at least one item")
        body = wire.FeeUploadInput(feedetail=[
            wire.FeeDetail(
                feedetl_sn=item.serial, mdtrt_id=mdtrt_id, psn_no=psn_no, chrg_bchno=batch_no,
                rxno=item.prescription_no,
                fee_ocur_time=_time(item.occurred_at), med_list_codg=item.insurance_code,
                medins_list_codg=item.hospital_code, det_item_fee_sumamt=item.amount, cnt=item.quantity,
                pric=item.unit_price, bilg_dept_codg=item.department_code, bilg_dept_name=item.department_name,
                bilg_dr_codg=item.doctor_code, bilg_dr_name=item.doctor_name,
            ) for item in items
        ])
        reply = self._call(UPLOAD_FEES, body.model_dump(), insuplc_admdvs=_region(insured_region),
                           msgid=self._given(msgid))
        out = _read(wire.FeeUploadOutput, reply.output, UPLOAD_FEES)
        return [FeeResult(serial=r.feedetl_sn, amount=r.det_item_fee_sumamt, item_class=r.chrgitm_lv,
                          charge_type=r.med_chrgitm_type, self_pay_ratio=r.selfpay_prop,
                          self_paid_in_full=r.fulamt_ownpay_amt, over_limit=r.overlmt_amt,
                          pre_self_paid=r.preselfpay_amt, in_scope=r.inscp_scp_amt, price_cap=r.pric_uplmt_amt,
                          note=r.memo or "") for r in out.result]

    def cancel_fees(self, *, psn_no: str, insured_region: str, mdtrt_id: str, batch_no: str | None = None,
                    msgid: str) -> None:
        """2205: withdraw the unsettled lines of ``batch_no`` (``None``: of every batch)."""
        data = wire.CancelFeesData(mdtrt_id=mdtrt_id, chrg_bchno=batch_no or ALL_BATCHES, psn_no=psn_no)
        self._call(CANCEL_FEES, wire.CancelFeesInput(data=data).model_dump(),
                   insuplc_admdvs=_region(insured_region), msgid=self._given(msgid))

    def pre_settle(self, request: SettlementRequest, *, msgid: str | None = None) -> SettlementResult:
        """2206: the split settling would give; nothing is committed."""
        return self._settlement(PRE_SETTLE, request, msgid)

    def settle(self, request: SettlementRequest, *, msgid: str) -> SettlementResult:
        """2207: settle. An ``UpstreamUnknown`` is an unknown outcome: resend this msgid, or reverse it."""
        result = self._settlement(SETTLE, request, self._given(msgid))
        if not result.setl_id:
            raise UpstreamUnknown(SYSTEM, "settlement reply without setl_id", code="UNPARSABLE", operation=SETTLE)
        return result

    def _settlement(self, infno: str, request: SettlementRequest, msgid: str | None) -> SettlementResult:
        certificate = request.certificate
        data = wire.SettleData(
            psn_no=request.psn_no, mdtrt_cert_type=certificate.kind, mdtrt_cert_no=certificate.number,
            card_sn=certificate.card_sn or "", med_type=request.med_type, medfee_sumamt=request.total,
            mdtrt_id=request.mdtrt_id, chrg_bchno=request.batch_no, insutype=request.scheme,
            acct_used_flag="1" if request.use_account else "0", insuplc_admdvs=_region(request.insured_region),
        )
        reply = self._call(infno, wire.SettleInput(data=data).model_dump(),
                           insuplc_admdvs=request.insured_region, msgid=msgid)
        out = _read(wire.SettleOutput, reply.output, infno)
        info = out.setlinfo
        return SettlementResult(
            setl_id=info.setl_id or None, mdtrt_id=info.mdtrt_id, psn_no=info.psn_no, total=info.medfee_sumamt,
            fund=info.fund_pay_sumamt, account=info.acct_pay, cash=info.psn_cash_pay,
            self_paid_in_full=info.fulamt_ownpay_amt, pre_self_paid=info.preselfpay_amt,
            over_limit=info.overlmt_selfpay, in_scope=info.inscp_scp_amt, deductible=info.act_pay_dedc,
            balance_after=info.balc, fund_ratio=info.pool_prop_selfpay,
            details=tuple(FundPayment(fund_type=d.fund_pay_type, amount=d.fund_payamt, name=d.fund_pay_type_name or "")
                          for d in out.setldetail),
            settled_at=_parse_time(info.setl_time) if info.setl_time else None, clearing_agency=info.clr_optins,
        )

    def cancel_settlement(self, *, setl_id: str, mdtrt_id: str, psn_no: str, insured_region: str,
                          msgid: str) -> SettlementCancellation:
        """2208: cancel a valid settlement; the amounts returned are what was undone, as positive numbers."""
        data = wire.CancelSettlementData(setl_id=setl_id, mdtrt_id=mdtrt_id, psn_no=psn_no)
        reply = self._call(CANCEL_SETTLEMENT, wire.CancelSettlementInput(data=data).model_dump(),
                           insuplc_admdvs=_region(insured_region), msgid=self._given(msgid))
        info = _read(wire.CancelSettlementOutput, reply.output, CANCEL_SETTLEMENT).setlinfo
        # Platforms record a cancellation as a negative settlement; some send the amounts positive.
        return SettlementCancellation(setl_id=info.init_setl_id or setl_id, cancellation_id=info.setl_id,
                                      total=abs(info.medfee_sumamt), fund=abs(info.fund_pay_sumamt),
                                      account=abs(info.acct_pay), cash=abs(info.psn_cash_pay),
                                      balance_after=info.balc)

    def reverse(self, original_msgid: str, original_infno: str, psn_no: str, insured_region: str, *,
                msgid: str) -> Reversal:
        """2601: undo what ``original_msgid`` did. Safe to call whether or not the original arrived."""
        data = wire.ReversalData(omsgid=original_msgid, oinfno=original_infno, psn_no=psn_no)
        reply = self._call(REVERSAL, wire.ReversalInput(data=data).model_dump(),
                           insuplc_admdvs=_region(insured_region), msgid=self._given(msgid))
        out = _read(wire.ReversalOutput, reply.output, REVERSAL).data
        try:
            outcome = ReversalOutcome(out.rvs_stas)
        except ValueError:
            raise UpstreamUnknown(SYSTEM, f"unknown reversal status {out.rvs_stas!r}", code="UNPARSABLE",
                                  operation=REVERSAL) from None
        return Reversal(original_msgid=out.omsgid, original_infno=out.oinfno, outcome=outcome,
                        description=out.rvs_dscr, setl_id=out.setl_id or None, mdtrt_id=out.mdtrt_id or None,
                        balance_after=out.balc)

    def reconcile_totals(self, *, clearing_agency: str, begins_on: date, ends_on: date, total: Decimal,
                         fund: Decimal, account: Decimal, count: int, scheme: str = "",
                         clearing_type: str = "", msgid: str | None = None) -> TotalsReconciliation:
        """3201: the hospital's totals for ``begins_on``–``ends_on`` against the platform's."""
        data = wire.TotalsReconciliationData(
            insutype=scheme, clr_type=clearing_type, setl_optins=clearing_agency, stmt_begndate=begins_on.isoformat(),
            stmt_enddate=ends_on.isoformat(), medfee_sumamt=total, fund_pay_sumamt=fund, acct_pay=account,
            fixmedins_setl_cnt=count,
        )
        reply = self._call(RECONCILE_TOTALS, wire.TotalsReconciliationInput(data=data).model_dump(),
                           insuplc_admdvs="", msgid=msgid)
        info = _read(wire.TotalsReconciliationOutput, reply.output, RECONCILE_TOTALS).stmtinfo
        return TotalsReconciliation(consistent=_consistent(info.stmt_rslt, RECONCILE_TOTALS),
                                    description=info.stmt_rslt_dscr, total=info.medfee_sumamt,
                                    fund=info.fund_pay_sumamt, account=info.acct_pay, count=info.fixmedins_setl_cnt)

    def reconcile_details(self, *, clearing_agency: str, begins_on: date, ends_on: date,
                          settlements: Sequence[SettlementLine], msgid: str | None = None) -> DetailsReconciliation:
        """3202: settlement by settlement; every difference the platform finds, on either side."""
        data = wire.DetailsReconciliationData(
            setl_optins=clearing_agency, stmt_begndate=begins_on.isoformat(), stmt_enddate=ends_on.isoformat(),
            setl_list=[wire.DetailLine(setl_id=s.setl_id, mdtrt_id=s.mdtrt_id, psn_no=s.psn_no, medfee_sumamt=s.total,
                                       fund_pay_sumamt=s.fund, acct_pay=s.account, psn_cash_pay=s.cash)
                       for s in settlements],
        )
        reply = self._call(RECONCILE_DETAILS, wire.DetailsReconciliationInput(data=data).model_dump(),
                           insuplc_admdvs="", msgid=msgid)
        out = _read(wire.DetailsReconciliationOutput, reply.output, RECONCILE_DETAILS)
        differences = []
        for diff in out.diffs:
            try:
                kind = DifferenceKind(diff.diff_type)
            except ValueError:
                raise UpstreamUnknown(SYSTEM, f"unknown difference type {diff.diff_type!r}", code="UNPARSABLE",
                                      operation=RECONCILE_DETAILS) from None
            differences.append(ReconciliationDifference(
                setl_id=diff.setl_id, kind=kind, platform_state=diff.platform_state, note=diff.memo,
                mdtrt_id=diff.mdtrt_id or None, psn_no=diff.psn_no or None,
                amounts=tuple(AmountDifference(field=f.field, hospital=f.hosp_value, platform=f.platform_value)
                              for f in diff.fields),
            ))
        return DetailsReconciliation(consistent=_consistent(out.stmtinfo.stmt_rslt, RECONCILE_DETAILS),
                                     differences=tuple(differences), hospital_count=out.stmtinfo.hosp_setl_cnt,
                                     platform_count=out.stmtinfo.platform_setl_cnt,
                                     matched_count=out.stmtinfo.matched_cnt)


# -- helpers ------------------------------------------------------------------------------------


def _region(insured_region: str) -> str:
    if len(insured_region) != 6 or not insured_region.isdigit():
        raise ValueError("insured_region is the person's 6-digit insuplc_admdvs (from 1101)")
    return insured_region


def _time(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(wire.CHINA_TZ)
    return moment.strftime(wire.INF_TIME_FORMAT)


def _consistent(stmt_rslt: str, infno: str) -> bool:
    if stmt_rslt not in ("0", "1"):
        raise UpstreamUnknown(SYSTEM, f"unknown stmt_rslt {stmt_rslt!r}", code="UNPARSABLE", operation=infno)
    return stmt_rslt == "0"


def _says_sign_in_gone(err_msg: str | None) -> bool:
    return bool(err_msg) and any(marker in err_msg for marker in _SIGN_IN_GONE)


def _refusal(infno: str, reply: wire.ResponseEnvelope) -> UpstreamRefused:
    message = (reply.err_msg or "").strip() or f"医保平台拒绝了交易 {infno}"
    return UpstreamRefused(SYSTEM, message, code=str(reply.infcode), operation=infno)


def _read(model: type[M], output: dict[str, Any] | None, infno: str) -> M:
    try:
        return model.model_validate(output or {})
    except ValidationError as exc:
        raise UpstreamUnknown(SYSTEM, f"reply output does not match {model.__name__}: "
                              f"{exc.error_count()} error(s)", code="UNPARSABLE", operation=infno) from exc


def _brief(exc: Exception) -> str:
    # pydantic's messages echo the input, which may hold personal data: keep only the type.
    if isinstance(exc, ValidationError):
        return f"{exc.error_count()} validation error(s)"
    return type(exc).__name__


def _choose_insurance(insurances: list[wire.InsuInfo]) -> wire.InsuInfo | None:
    """The insurance to settle under: the first one currently in force, else the first listed."""
    for insurance in insurances:
        if insurance.psn_insu_stas in (None, "", _INSURED):
            return insurance
    return insurances[0] if insurances else None


def _person(out: wire.PersonInfoOutput) -> InsuredPerson:
    base = out.baseinfo
    insurance = _choose_insurance(out.insuinfo)
    if insurance is None:
        raise UpstreamNotFound(SYSTEM, "未查询到该人员参保信息", code="NO_INSUINFO", operation=PERSON_INFO)
    if not insurance.insuplc_admdvs:
        # Never fall back to the hospital's region: a wrong insured region settles under the wrong policy.
        raise UpstreamUnknown(SYSTEM, "reply lacks insuplc_admdvs", code="UNPARSABLE", operation=PERSON_INFO)
    return InsuredPerson(
        psn_no=base.psn_no,
        name=base.psn_name,
        id_number=base.certno,
        gender=_gender(base.gend, base.certno),
        birth_date=base.brdy or _birth_date(base.certno),
        insured_region=insurance.insuplc_admdvs,
        scheme=insurance.insutype,
        person_type=insurance.psn_type or "",
        balance=insurance.balc.quantize(Decimal("0.01")),
    )


def _gender(gend: str | None, certno: str) -> str:
    if gend == "1":
        return "M"
    if gend == "2":
        return "F"
    if is_valid_id_number(certno):
        return gender_from_id(certno)
    raise UpstreamUnknown(SYSTEM, f"unknown gend {gend!r}", code="UNPARSABLE", operation=PERSON_INFO)


def _birth_date(certno: str) -> date | None:
    return birth_date_from_id(certno) if is_valid_id_number(certno) else None


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, wire.INF_TIME_FORMAT).replace(tzinfo=wire.CHINA_TZ)
    except ValueError:
        return None
