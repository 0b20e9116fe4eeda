"""The insurance port: what the kiosk asks the national insurance platform, in readable names.

Use cases depend on :class:`InsurancePort`; the HTTP adapter and any test double implement it.
Names and ID numbers are kept out of ``repr`` so a model that reaches a log line does not leak
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
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
