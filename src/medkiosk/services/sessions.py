"""Kiosk sessions: server-side, bound to one device, ended by logout, idleness or the next patient."""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Callable, TypeVar

from sqlalchemy import Connection, bindparam, insert, select, update

from medkiosk.adapters.his.port import Admission, HisPatient
from medkiosk.adapters.insurance.port import Certificate, InsuredPerson, SpecialDisease
from medkiosk.domain.masking import mask_id_number, mask_name, mask_phone
from medkiosk.domain.regions import PatientCategory
from medkiosk.domain.session import SessionClock, SessionEnd
from medkiosk.logging import get_logger
from medkiosk.security.crypto import FieldCipher
from medkiosk.services.clock import Clock, as_utc
from medkiosk.services.devices import AuthenticatedDevice
from medkiosk.store.models import KioskSession, Patient

log = get_logger(__name__)
T = TypeVar("T")

_SESSIONS = KioskSession.__table__
_PATIENTS = Patient.__table__
# Built once (a prebuilt statement keeps its cache key): every payment request asks for its payer.
_PAYER_ROW = select(
    _SESSIONS.c.id, _SESSIONS.c.patient_id, _SESSIONS.c.category, _SESSIONS.c.medium, _SESSIONS.c.insurance_enc,
    _SESSIONS.c.started_at, _SESSIONS.c.last_activity_at, _PATIENTS.c.his_patient_id,
).join_from(_SESSIONS, _PATIENTS, _SESSIONS.c.patient_id == _PATIENTS.c.id).where(
    _SESSIONS.c.device_id == bindparam("b_device_id"), _SESSIONS.c.ended_at.is_(None),
).order_by(_SESSIONS.c.started_at.desc()).limit(1)
_SESSION_WRITE = update(_SESSIONS).where(_SESSIONS.c.id == bindparam("b_id"))
_SESSION_INSERT = insert(_SESSIONS)
_OPEN_SESSION_ID = select(_SESSIONS.c.id).where(
    _SESSIONS.c.device_id == bindparam("b_device_id"), _SESSIONS.c.ended_at.is_(None),
).order_by(_SESSIONS.c.started_at.desc()).limit(1)
_SESSIONS_REPLACED = update(_SESSIONS).where(_SESSIONS.c.device_id == bindparam("b_device_id"),
                                             _SESSIONS.c.ended_at.is_(None))
_PATIENT_ID = select(_PATIENTS.c.id).where(_PATIENTS.c.his_patient_id == bindparam("b_his_patient_id"))
_PATIENT_INSERT = insert(_PATIENTS)
_PATIENT_WRITE = update(_PATIENTS).where(_PATIENTS.c.id == bindparam("b_id"))

CATEGORY_LABELS = {
    PatientCategory.LOCAL: "本地医保",
    PatientCategory.SAME_PROVINCE: "省内异地医保",
    PatientCategory.CROSS_PROVINCE: "跨省异地医保",
    PatientCategory.SELF_PAY: "自费",
}
SCHEME_LABELS = {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险"}


def insured_to_json(person: InsuredPerson) -> dict[str, Any]:
    """An insured person as JSON (for the encrypted session record and pending first visits)."""
    data = dataclasses.asdict(person)
    data["balance"] = str(person.balance)
    data["birth_date"] = person.birth_date.isoformat() if person.birth_date else None
    data["special_diseases"] = [
        {"code": d.code, "name": d.name, "begins_on": d.begins_on.isoformat() if d.begins_on else None,
         "ends_on": d.ends_on.isoformat() if d.ends_on else None} for d in person.special_diseases]
    return data


def insured_from_json(data: dict[str, Any]) -> InsuredPerson:
    diseases = tuple(SpecialDisease(d["code"], d["name"],
                                    date.fromisoformat(d["begins_on"]) if d["begins_on"] else None,
                                    date.fromisoformat(d["ends_on"]) if d["ends_on"] else None)
                     for d in data.get("special_diseases", []))
    return InsuredPerson(**{**data, "balance": Decimal(data["balance"]), "special_diseases": diseases,
                            "birth_date": date.fromisoformat(data["birth_date"]) if data["birth_date"] else None})


def certificate_to_json(certificate: Certificate) -> dict[str, Any]:
    return {"kind": certificate.kind, "number": certificate.number, "card_sn": certificate.card_sn}


def certificate_from_json(data: dict[str, Any]) -> Certificate:
    return Certificate(kind=data["kind"], number=data["number"], card_sn=data.get("card_sn"))


@dataclass(frozen=True)
class Payer:
    """Who pays in a live session, with what the insurance platform needs to settle (never sent to the page)."""

    session_id: str
    device_id: str
    patient_row_id: int
    his_patient_id: str
    category: PatientCategory
    medium: str
    insured: InsuredPerson | None
    certificate: Certificate | None


def _age(born: date | None, today: date) -> int | None:
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass
class SessionView:
    """What the kiosk page may see of a session: masked, nothing it could reuse as an identity."""

    session_id: str
    patient: dict[str, Any]
    medium: str
    medium_label: str
    category: str
    category_label: str
    notices: list[str] = field(default_factory=list)
    seconds_left: int = 0
    idle_seconds: int = 0
    warn_seconds: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id, "patient": self.patient, "medium": self.medium,
            "medium_label": self.medium_label, "category": self.category, "category_label": self.category_label,
            "notices": self.notices, "seconds_left": self.seconds_left, "idle_seconds": self.idle_seconds,
            "warn_seconds": self.warn_seconds,
        }


class NoSession(Exception):
    """The device has no live session (never had one, logged out, or expired)."""

    def __init__(self, ended: SessionEnd | None = None) -> None:
        super().__init__(ended.value if ended else "none")
        self.ended = ended


class SessionService:
    def __init__(self, uow_factory, clock: Clock, cipher: FieldCipher, session_clock: SessionClock) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._cipher = cipher
        self.session_clock = session_clock

    # -- opening --------------------------------------------------------------------------------
    def open(self, device: AuthenticatedDevice, *, patient: HisPatient, medium: str, medium_label: str,
             category: PatientCategory, insured: InsuredPerson | None, notices: list[str],
             admission: Admission | None, certificate: Certificate | None = None) -> SessionView:
        now = self._clock.now()
        view_patient: dict[str, Any] = {
            "masked_name": mask_name(patient.name),
            "masked_id_number": mask_id_number(patient.id_number),
            "masked_phone": mask_phone(patient.phone),
            "gender": {"M": "男", "F": "女"}.get(patient.gender or "", ""),
            "age": _age(patient.birth_date, now.date()),
            "patient_no": patient.patient_id,
        }
        if insured is not None:
            view_patient["insurance"] = {"scheme_label": SCHEME_LABELS.get(insured.scheme, insured.scheme),
                                         "insured_region": insured.insured_region,
                                         "balance": f"{insured.balance:.2f}"}
        if admission is not None:
            view_patient["admission"] = {"ward": admission.ward, "bed": admission.bed,
                                         "department": admission.department}
        insurance = None
        if insured is not None:
            insurance = self._cipher.encrypt("session.insurance", json.dumps({
                "person": insured_to_json(insured),
                "certificate": certificate_to_json(certificate) if certificate else None}))
        patient_columns = self._patient_columns(patient, now)
        # One transaction of plain statements: the patient, the device's earlier session ended as
        # replaced, the new session.
        with self._uow().core() as conn:
            patient_id = conn.execute(_PATIENT_ID, {"b_his_patient_id": patient.patient_id}).scalar()
            if patient_id is None:
                patient_id = conn.execute(_PATIENT_INSERT, {**patient_columns, "created_at": now}).inserted_primary_key[0]
            else:
                conn.execute(_PATIENT_WRITE, {**patient_columns, "b_id": patient_id})
            conn.execute(_SESSIONS_REPLACED, {"ended_at": now, "end_reason": SessionEnd.REPLACED.value,
                                              "b_device_id": device.id})
            session = {
                "id": str(uuid.uuid4()), "device_id": device.id, "patient_id": patient_id, "medium": medium,
                "category": category.value, "insured_region": insured.insured_region if insured else "",
                "insurance_enc": insurance, "started_at": now, "last_activity_at": now,
                "view": {"patient": view_patient, "medium": medium, "medium_label": medium_label,
                         "category": category.value, "category_label": CATEGORY_LABELS[category],
                         "notices": notices},
                "ended_at": None, "end_reason": None}
            conn.execute(_SESSION_INSERT, session)
        return self._view(KioskSession(**session), now)

    # -- living ---------------------------------------------------------------------------------
    def current(self, device: AuthenticatedDevice, *, touch: bool = False) -> SessionView:
        """The device's live session (raising NoSession); an expired one is ended on the way."""
        now = self._clock.now()
        with self._uow() as uow:
            uow.without_flush_wait()  # a touch or an expiry lost in a database crash is redone next time
            row = self._live_row(uow, device, now)
            if touch:
                row.last_activity_at = now
                uow.commit()
            return self._view(row, now)

    def touch(self, device: AuthenticatedDevice) -> SessionView:
        """The patient did something (or asked for more time): restart the idle clock."""
        return self.current(device, touch=True)

    def _live_row(self, uow, device: AuthenticatedDevice, now) -> KioskSession:
        """The open row if it is still live; an expired one is ended (committed) and NoSession raised."""
        row = self._open_row(uow, device.id)
        if row is None:
            raise NoSession()
        ended = self.session_clock.ended_by(as_utc(row.started_at), as_utc(row.last_activity_at), now)
        if ended is not None:
            row.ended_at, row.end_reason = now, ended.value
            uow.commit()
            log.info("session.expired", device_id=device.id, session_id=row.id, reason=ended.value)
            raise NoSession(ended)
        return row

    def end(self, device: AuthenticatedDevice, reason: SessionEnd = SessionEnd.LOGOUT) -> bool:
        now = self._clock.now()
        with self._uow().core() as conn:
            session_id = conn.execute(_OPEN_SESSION_ID, {"b_device_id": device.id}).scalar()
            if session_id is None:
                return False
            conn.execute(_SESSION_WRITE, {"ended_at": now, "end_reason": reason.value, "b_id": session_id})
        log.info("session.ended", device_id=device.id, session_id=session_id, reason=reason.value)
        return True

    def payer(self, device: AuthenticatedDevice) -> Payer:
        """The live session's payer (raising NoSession); touches the session: paying is activity.

        One transaction of plain statements: the session row with the patient's HIS id, and its
        touch (every payment request asks, so this is on the hot path).
        """
        return self.payer_and(device, None)[0]

    def payer_and(self, device: AuthenticatedDevice, read: Callable[[Connection], T] | None) -> tuple[Payer, T | None]:
        """``payer``, and what ``read`` reads in the same transaction (a request's one other read)."""
        now = self._clock.now()
        found = None
        with self._uow().core(flush_wait=False) as conn:  # the touch is only the idle clock's start
            row = conn.execute(_PAYER_ROW, {"b_device_id": device.id}).first()
            if row is None:
                raise NoSession()
            ended = self.session_clock.ended_by(as_utc(row.started_at), as_utc(row.last_activity_at), now)
            if ended is not None:
                conn.execute(_SESSION_WRITE, {"ended_at": now, "end_reason": ended.value, "b_id": row.id})
            else:
                conn.execute(_SESSION_WRITE, {"last_activity_at": now, "b_id": row.id})
                if read is not None:
                    found = read(conn)
        if ended is not None:
            log.info("session.expired", device_id=device.id, session_id=row.id, reason=ended.value)
            raise NoSession(ended)
        insured = certificate = None
        if row.insurance_enc:
            data = json.loads(self._cipher.decrypt("session.insurance", row.insurance_enc))
            insured = insured_from_json(data["person"])
            certificate = certificate_from_json(data["certificate"]) if data["certificate"] else None
        return Payer(row.id, device.id, row.patient_id, row.his_patient_id, PatientCategory(row.category),
                     row.medium, insured, certificate), found

    @staticmethod
    def _open_row(uow, device_id: str) -> KioskSession | None:
        return uow.session.scalar(select(KioskSession).where(
            KioskSession.device_id == device_id, KioskSession.ended_at.is_(None)
        ).order_by(KioskSession.started_at.desc()).limit(1))

    def _view(self, row: KioskSession, now) -> SessionView:
        view = row.view
        clock = self.session_clock
        return SessionView(row.id, view["patient"], view["medium"], view["medium_label"], view["category"],
                           view["category_label"], list(view["notices"]),
                           clock.seconds_left(as_utc(row.started_at), as_utc(row.last_activity_at), now),
                           int(clock.idle.total_seconds()), int(clock.warn.total_seconds()))


    def _patient_columns(self, patient: HisPatient, now) -> dict[str, Any]:
        """The patient's row as identification writes it (identifiers encrypted, the ID number's lookup hash)."""
        return {
            "his_patient_id": patient.patient_id,
            "name_enc": self._cipher.encrypt("patient.name", patient.name),
            "id_number_enc": self._cipher.encrypt("patient.id_number", patient.id_number),
            "id_number_hash": self._cipher.lookup_hash("id_number", patient.id_number) if patient.id_number else None,
            "phone_enc": self._cipher.encrypt("patient.phone", patient.phone),
            "gender": patient.gender or "", "birth_date": patient.birth_date, "updated_at": now}
