"""Identify a patient at a kiosk from what the agent's drivers read, and open a kiosk session.

Media (tender 3.2.4): insurance card (1101 type 03 with card_sn), ID card (1101 type 02 when
insured, else self-pay), insurance e-certificate QR (resolved to a token, then 1101 type 01) and
the hospital's visit card (HIS only). A patient HIS does not know yet is created after they
enter a phone number. An outpatient kiosk refuses a patient who is currently admitted (门住分离).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from medkiosk.adapters.errors import UpstreamError, UpstreamNotFound, UpstreamRefused
from medkiosk.adapters.his.port import HisPatient, HisPort, NewPatient
from medkiosk.adapters.insurance.port import Certificate, InsurancePort, InsuredPerson
from medkiosk.domain.identity import birth_date_from_id, gender_from_id, is_valid_id_number
from medkiosk.domain.masking import mask_name
from medkiosk.domain.regions import classify
from medkiosk.logging import get_logger
from medkiosk.security.crypto import DecryptionError, FieldCipher
from medkiosk.services.clock import Clock
from medkiosk.services.devices import AuthenticatedDevice
from medkiosk.services.events import record_event
from medkiosk.services.sessions import (
    SessionService,
    SessionView,
    certificate_from_json,
    certificate_to_json,
    insured_from_json,
    insured_to_json,
)
from medkiosk.settings import TerminalType

log = get_logger(__name__)

TO_WINDOW = "请到人工窗口办理"
PENDING_TTL = timedelta(minutes=5)


class Medium(StrEnum):
    INSURANCE_CARD = "insurance_card"
    """Social-security card in the card reader (医保卡/社保卡)."""
    ID_CARD = "id_card"
    """Resident ID card in the ID reader (身份证)."""
    E_CERTIFICATE = "e_certificate"
    """National insurance e-certificate QR under the scanner (医保电子凭证)."""
    VISIT_CARD = "visit_card"
    """The hospital's own visit card (就诊卡)."""


MEDIUM_LABELS = {
    Medium.INSURANCE_CARD: "医保卡",
    Medium.ID_CARD: "身份证",
    Medium.E_CERTIFICATE: "医保电子凭证",
    Medium.VISIT_CARD: "就诊卡",
}


class MediumRead(BaseModel):
    """What a reader delivered, as the agent sends it. Identity comes only from here."""

    medium: Medium
    card_no: str | None = Field(default=None, max_length=40)
    card_sn: str | None = Field(default=None, max_length=64)
    id_number: str | None = Field(default=None, max_length=18)
    name: str | None = Field(default=None, max_length=40)
    gender: str | None = Field(default=None, max_length=2)
    birth_date: date | None = None
    address: str | None = Field(default=None, max_length=200)
    qrcode: str | None = Field(default=None, max_length=512)
    visit_card_no: str | None = Field(default=None, max_length=40)

    @field_validator("id_number")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.strip().upper() if value else value


class Outcome(StrEnum):
    IDENTIFIED = "identified"
    REFUSED = "refused"
    NEEDS_PHONE = "needs_phone"


@dataclass
class IdentifyResult:
    outcome: Outcome
    session: SessionView | None = None
    message: str = ""
    next_step: str = ""
    masked_name: str = ""
    pending: str = ""
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"outcome": self.outcome.value}
        if self.session:
            body["session"] = self.session.to_json()
        if self.outcome is not Outcome.IDENTIFIED:
            body.update(message=self.message, next_step=self.next_step)
        if self.outcome is Outcome.NEEDS_PHONE:
            body.update(masked_name=self.masked_name, pending=self.pending)
        return body


class Refusal(Exception):
    def __init__(self, reason: str, message: str, next_step: str = TO_WINDOW) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.next_step = next_step


@dataclass
class Identity:
    """Who the media say the patient is, before HIS is consulted."""

    medium: Medium
    id_number: str | None
    name: str | None
    gender: str | None = None
    birth_date: date | None = None
    insured: InsuredPerson | None = None
    insurance_card_no: str | None = None
    notices: list[str] = field(default_factory=list)
    certificate: Certificate | None = None  # what settles with insurance later (mdtrt_cert_type/no)

    def to_pending(self) -> dict[str, Any]:
        return {
            "medium": self.medium.value, "id_number": self.id_number, "name": self.name, "gender": self.gender,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "insured": insured_to_json(self.insured) if self.insured else None,
            "insurance_card_no": self.insurance_card_no, "notices": self.notices,
            "certificate": certificate_to_json(self.certificate) if self.certificate else None,
        }

    @classmethod
    def from_pending(cls, data: dict[str, Any]) -> "Identity":
        return cls(
            medium=Medium(data["medium"]), id_number=data["id_number"], name=data["name"], gender=data["gender"],
            birth_date=date.fromisoformat(data["birth_date"]) if data["birth_date"] else None,
            insured=insured_from_json(data["insured"]) if data["insured"] else None,
            insurance_card_no=data["insurance_card_no"], notices=list(data["notices"]),
            certificate=certificate_from_json(data["certificate"]) if data["certificate"] else None,
        )


class IdentifyService:
    def __init__(self, uow_factory, clock: Clock, his: HisPort, insurance: InsurancePort, cipher: FieldCipher,
                 sessions: SessionService, *, hospital_region: str, executor: ThreadPoolExecutor) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._his = his
        self._insurance = insurance
        self._cipher = cipher
        self._sessions = sessions
        self._hospital_region = hospital_region
        self._executor = executor

    # -- entry points ---------------------------------------------------------------------------
    def identify(self, device: AuthenticatedDevice, read: MediumRead) -> IdentifyResult:
        try:
            identity, patient = self._resolve(read)
            if patient is None:
                if not identity.id_number or not identity.name:
                    raise Refusal("no_his_record", "未找到您的就诊档案。", TO_WINDOW)
                pending = self._cipher.encrypt(f"pending:{device.id}", json.dumps(
                    {"identity": identity.to_pending(), "expires": (self._clock.now() + PENDING_TTL).isoformat()}))
                return IdentifyResult(Outcome.NEEDS_PHONE, masked_name=mask_name(identity.name), pending=pending,
                                      message="首次就诊需要建档，请输入您的手机号码。",
                                      next_step="输入手机号后点“确定”")
            return self._admit(device, identity, patient)
        except Refusal as refusal:
            return self._refuse(device, read.medium, refusal)

    def complete_first_visit(self, device: AuthenticatedDevice, pending: str, phone: str) -> IdentifyResult:
        """Create the HIS patient for a first visit, then identify them as usual."""
        try:
            try:
                data = json.loads(self._cipher.decrypt(f"pending:{device.id}", pending) or "{}")
            except (DecryptionError, ValueError) as exc:
                raise Refusal("pending_invalid", "建档信息已失效，请重新读卡。", "请重新插卡或扫码") from exc
            if self._clock.now().isoformat() > data["expires"]:
                raise Refusal("pending_expired", "建档等待超时，请重新读卡。", "请重新插卡或扫码")
            identity = Identity.from_pending(data["identity"])
            if not (len(phone) == 11 and phone.isdigit() and phone[0] == "1"):
                raise Refusal("bad_phone", "手机号码应为以 1 开头的 11 位数字，请重新输入。", "重新输入手机号")
            try:
                patient = self._his.create_patient(NewPatient(
                    name=identity.name, id_number=identity.id_number,
                    gender=identity.gender or gender_from_id(identity.id_number),
                    birth_date=identity.birth_date or birth_date_from_id(identity.id_number), phone=phone,
                    insurance_card_no=identity.insurance_card_no))
            except UpstreamRefused as exc:
                # Created meanwhile (another kiosk, a window): find it rather than fail the patient.
                patient = self._his.find_patient(id_number=identity.id_number)
                if patient is None:
                    raise Refusal("his_refused", f"建档未成功：{exc.message}") from exc
            return self._admit(device, identity, patient)
        except Refusal as refusal:
            return self._refuse(device, None, refusal)
        except UpstreamError as exc:
            return self._refuse(device, None, _unavailable(exc))

    # -- steps ----------------------------------------------------------------------------------
    def _resolve(self, read: MediumRead) -> tuple[Identity, HisPatient | None]:
        try:
            if read.medium is Medium.VISIT_CARD:
                if not read.visit_card_no:
                    raise Refusal("unreadable", "未能读取就诊卡，请重新刷卡。", "重新刷卡")
                patient = self._his.find_patient(visit_card_no=read.visit_card_no)
                if patient is None:
                    raise Refusal("unknown_visit_card", "未找到该就诊卡的档案。")
                return Identity(Medium.VISIT_CARD, patient.id_number, patient.name, patient.gender,
                                patient.birth_date), patient
            if read.medium is Medium.ID_CARD:
                return self._resolve_id_card(read)
            if read.medium is Medium.INSURANCE_CARD:
                if not read.card_no:
                    raise Refusal("unreadable", "未能读取医保卡，请重新插卡。", "重新插卡")
                # HIS usually knows the card: ask it while the platform answers 1101.
                his_future = self._executor.submit(self._his.find_patient, insurance_card_no=read.card_no)
                presented = Certificate(kind="03", number=read.card_no, card_sn=read.card_sn)
                insured = self._insurance.person_info(presented)
                patient = his_future.result()
            else:
                if not read.qrcode:
                    raise Refusal("unreadable", "未能识别二维码，请重新出示医保电子凭证。", "重新扫码")
                certificate = self._insurance.resolve_e_certificate(read.qrcode)
                his_future = self._executor.submit(self._his.find_patient, id_number=certificate.id_number)
                presented = certificate.as_certificate()
                insured = self._insurance.person_info(presented)
                patient = his_future.result()
            if patient is None or (patient.id_number or "").upper() != insured.id_number.upper():
                patient = self._his.find_patient(id_number=insured.id_number)
            return Identity(read.medium, insured.id_number, insured.name, insured.gender, insured.birth_date,
                            insured, insurance_card_no=read.card_no, certificate=presented), patient
        except UpstreamNotFound as exc:
            raise Refusal("not_found", exc.message) from exc
        except UpstreamRefused as exc:
            raise Refusal("upstream_refused", exc.message) from exc
        except UpstreamError as exc:
            raise _unavailable(exc) from exc

    def _resolve_id_card(self, read: MediumRead) -> tuple[Identity, HisPatient | None]:
        if not read.id_number or not is_valid_id_number(read.id_number):
            raise Refusal("unreadable", "未能读取身份证，请将身份证放在感应区重新读取。", "重新放置身份证")
        # HIS and the insurance platform are independent: ask both at once.
        his_future = self._executor.submit(self._his.find_patient, id_number=read.id_number)
        insured_future = self._executor.submit(
            self._insurance.person_info, Certificate(kind="02", number=read.id_number))
        patient = his_future.result()
        notices: list[str] = []
        try:
            insured: InsuredPerson | None = insured_future.result()
        except UpstreamNotFound:
            insured = None
        except UpstreamRefused as exc:
            insured = None
            notices.append(f"医保信息未能确认（{exc.message}），本次按自费身份办理。")
        except UpstreamError:
            insured = None
            notices.append("医保平台暂时无法查询，本次按自费身份办理；如需医保结算，请稍后再试或到人工窗口办理。")
        return Identity(Medium.ID_CARD, read.id_number, read.name or (insured.name if insured else None),
                        read.gender or gender_from_id(read.id_number),
                        read.birth_date or birth_date_from_id(read.id_number), insured, notices=notices,
                        certificate=Certificate(kind="02", number=read.id_number) if insured else None), patient

    def _admit(self, device: AuthenticatedDevice, identity: Identity, patient: HisPatient) -> IdentifyResult:
        admission = patient.admission  # current as of the look-up that found the patient
        if admission is not None and device.terminal_type is TerminalType.OUTPATIENT:
            raise Refusal(
                "inpatient",
                f"您目前正在住院（{admission.ward}），门诊自助机不能为住院患者办理业务。",
                f"请到{admission.ward}的住院病区终端或住院处办理。")
        category = classify(identity.insured.insured_region if identity.insured else None, self._hospital_region)
        notices = list(identity.notices)
        if identity.medium is Medium.VISIT_CARD:
            notices.append("使用就诊卡时按自费身份办理；医保结算请使用医保卡、身份证或医保电子凭证。")
        session = self._sessions.open(device, patient=patient, medium=identity.medium.value,
                                      medium_label=MEDIUM_LABELS[identity.medium], category=category,
                                      insured=identity.insured, certificate=identity.certificate,
                                      notices=notices, admission=admission)
        log.info("identify.ok", device_id=device.id, medium=identity.medium.value, category=category.value,
                 session_id=session.session_id)
        return IdentifyResult(Outcome.IDENTIFIED, session=session)

    def _refuse(self, device: AuthenticatedDevice, medium: Medium | None, refusal: Refusal) -> IdentifyResult:
        log.info("identify.refused", device_id=device.id, medium=medium.value if medium else "",
                 reason=refusal.reason, message=refusal.message)
        with self._uow() as uow:
            record_event(uow, self._clock, "identify_refused", refusal.message,
                         severity="warning" if refusal.reason in ("upstream_unavailable",) else "info",
                         device_id=device.id,
                         details={"reason": refusal.reason, "medium": medium.value if medium else "",
                                  "location": device.location})
            uow.commit()
        return IdentifyResult(Outcome.REFUSED, message=refusal.message, next_step=refusal.next_step)


def _unavailable(exc: UpstreamError) -> Refusal:
    system = {"his": "医院信息系统", "insurance": "医保平台"}.get(exc.system, "上游系统")
    return Refusal("upstream_unavailable", f"{system}暂时无法连接，请稍后再试。", TO_WINDOW)
