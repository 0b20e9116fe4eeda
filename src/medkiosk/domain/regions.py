"""Where a patient is insured relative to the hospital: local, same province, other province, self-pay.

Administrative codes (admdvs) are six digits: province (2) · city (2) · county (2). Basic medical
insurance pools at city level, so a patient insured in the hospital's city is local; in the four
municipalities (北京, 天津, 上海, 重庆) the whole municipality is one pool.
"""

from __future__ import annotations

from enum import StrEnum

MUNICIPALITIES = frozenset({"11", "12", "31", "50"})


class PatientCategory(StrEnum):
    LOCAL = "local"
    """Insured in the hospital's own pooling region (本地医保)."""
    SAME_PROVINCE = "same_province"
    """Insured in another city of the same province (省内异地)."""
    CROSS_PROVINCE = "cross_province"
    """Insured in another province (跨省异地): needs a filing, cards need card_sn."""
    SELF_PAY = "self_pay"
    """No insurance found, or identified by a medium that carries none (自费)."""

    @property
    def cross_region(self) -> bool:
        return self in (PatientCategory.SAME_PROVINCE, PatientCategory.CROSS_PROVINCE)


def _valid(code: str) -> bool:
    return len(code) == 6 and code.isdigit()


def pooling_region(admdvs: str) -> str:
    """The pooling area an admdvs belongs to: the province for municipalities, else the city."""
    if not _valid(admdvs):
        raise ValueError(f"not a 6-digit administrative code: {admdvs!r}")
    return admdvs[:2] if admdvs[:2] in MUNICIPALITIES else admdvs[:4]


def classify(insured_region: str | None, hospital_region: str) -> PatientCategory:
    """Classify an insured region against the hospital's treatment region."""
    if not insured_region:
        return PatientCategory.SELF_PAY
    if pooling_region(insured_region) == pooling_region(hospital_region):
        return PatientCategory.LOCAL
    if insured_region[:2] == hospital_region[:2]:
        return PatientCategory.SAME_PROVINCE
    return PatientCategory.CROSS_PROVINCE
