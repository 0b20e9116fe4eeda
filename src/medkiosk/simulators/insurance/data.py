"""The insurance simulator's records and its starting data: every demo persona that has insurance.

Records are Pydantic models so anything loaded at run time (``/__sim__/data/people``) is checked
the same way as the built-in people. A person carries what later transactions need too (filing,
personal-account balance), not only what 1101 shows.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medkiosk.domain.identity import birth_date_from_id, gender_from_id, is_valid_id_number
from medkiosk.simulators.personas import PERSONAS, Persona

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
