"""The demo people, defined once: the HIS and insurance simulators and the tests all read them.

Each persona is someone a hospital meets every day. Tests refer to them by key
(``PERSONAS["local_employee"]``) so a test reads as a sentence about a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from medkiosk.domain.identity import make_id_number

HOSPITAL_ADMDVS = "320100"  # 南京市: the demo hospital's treatment region (就医地)
HOSPITAL_CODE = "H32010600001"  # fixmedins_code, 12 characters
HOSPITAL_NAME = "示范市第一人民医院"


@dataclass(frozen=True)
class Insurance:
    psn_no: str
    insutype: str  # 310 employee basic, 390 resident basic
    insuplc_admdvs: str  # insured region (参保地)
    card_no: str  # social-security card number (社保卡号)
    card_sn: str  # card identification code (卡识别码), needed for cross-province cards
    balance: Decimal  # personal account balance
    psn_type: str = "11"  # 11 in-service employee, 12 retired, 1501 resident …
    filing: bool = False  # cross-region filing (异地备案) on record
    special_diseases: tuple[tuple[str, str], ...] = ()  # (code, name) of 门诊慢特病 the person holds
    lost_card: bool = False  # card reported lost: 1101 with this card is refused
    ec_qr: str = ""  # what the national app's QR code carries for this person


@dataclass(frozen=True)
class Admission:
    admission_no: str
    ward: str
    bed: str
    department: str
    admitted_on: date


@dataclass(frozen=True)
class Persona:
    key: str
    name: str
    id_number: str
    phone: str
    insurance: Insurance | None = None
    patient_id: str | None = None  # HIS patient id; None = first visit (no record in HIS yet)
    visit_card_no: str | None = None
    admission: Admission | None = None
    notes: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


def _id(region: str, born: date, seq: int) -> str:
    return make_id_number(region, born, seq)


PERSONAS: dict[str, Persona] = {
    p.key: p
    for p in [
        Persona(
            "local_employee", "王建国", _id("320102", date(1958, 3, 15), 421), "13905150001",
            Insurance("32010000000000000001", "310", "320100", "A32010001", "320100D15600000500A1B2C3D4E5F6A7B8",
                      Decimal("1520.35"), psn_type="12", ec_qr="ECQR-320100-0001"),
            patient_id="P000001", visit_card_no="V10000001", notes="本地职工医保，退休",
        ),
        Persona(
            "local_resident", "李秀英", _id("320104", date(1946, 11, 2), 262), "13905150002",
            Insurance("32010000000000000002", "390", "320100", "A32010002", "320100D15600000500A1B2C3D4E5F6A7B9",
                      Decimal("0.00"), psn_type="1501", ec_qr="ECQR-320100-0002"),
            patient_id="P000002", visit_card_no="V10000002", notes="本地城乡居民医保，79岁",
        ),
        Persona(
            "same_province", "张伟", _id("320211", date(1985, 6, 20), 317), "13905150003",
            Insurance("32020000000000000003", "310", "320200", "A32020003", "320200D15600000500A1B2C3D4E5F6A7C0",
                      Decimal("860.00"), ec_qr="ECQR-320200-0003"),
            patient_id="P000003", visit_card_no="V10000003", notes="省内异地（无锡）职工医保",
        ),
        Persona(
            "cross_province_filed", "陈静", _id("340104", date(1952, 9, 8), 148), "13905150004",
            Insurance("34010000000000000004", "310", "340100", "B34010004", "340100D15600000500F1E2D3C4B5A69788",
                      Decimal("2310.50"), psn_type="12", filing=True, ec_qr="ECQR-340100-0004"),
            patient_id="P000004", visit_card_no="V10000004", notes="跨省异地（合肥）职工医保，已备案",
        ),
        Persona(
            "cross_province_unfiled", "刘洋", _id("420106", date(1990, 1, 25), 553), "13905150005",
            Insurance("42010000000000000005", "390", "420100", "C42010005", "420100D15600000500F1E2D3C4B5A69799",
                      Decimal("0.00"), psn_type="1501", filing=False, ec_qr="ECQR-420100-0005"),
            patient_id="P000005", visit_card_no="V10000005", notes="跨省异地（武汉）居民医保，未备案",
        ),
        Persona(
            "special_disease", "赵敏", _id("320105", date(1963, 4, 30), 286), "13905150006",
            Insurance("32010000000000000006", "310", "320100", "A32010006", "320100D15600000500A1B2C3D4E5F6A7D1",
                      Decimal("3045.80"), psn_type="12", special_diseases=(("M03900", "糖尿病"), ("M01600", "高血压")),
                      ec_qr="ECQR-320100-0006"),
            patient_id="P000006", visit_card_no="V10000006", notes="门诊慢特病：糖尿病、高血压",
        ),
        Persona(
            "lost_card", "孙丽", _id("320106", date(1977, 12, 12), 324), "13905150007",
            Insurance("32010000000000000007", "310", "320100", "A32010007", "320100D15600000500A1B2C3D4E5F6A7E2",
                      Decimal("412.00"), lost_card=True, ec_qr="ECQR-320100-0007"),
            patient_id="P000007", visit_card_no="V10000007", notes="社保卡已挂失",
        ),
        Persona(
            "inpatient", "周强", _id("320113", date(1960, 7, 7), 415), "13905150008",
            Insurance("32010000000000000008", "310", "320100", "A32010008", "320100D15600000500A1B2C3D4E5F6A7F3",
                      Decimal("980.00"), psn_type="12", ec_qr="ECQR-320100-0008"),
            patient_id="P000008", visit_card_no="V10000008",
            admission=Admission("ZY20261120001", "心内科一病区", "12床", "心血管内科", date(2026, 11, 20)),
            notes="正在住院（心内科一病区）",
        ),
        Persona(
            "inpatient_self_pay", "吴芳", _id("320114", date(1988, 2, 14), 246), "13905150009",
            None, patient_id="P000009", visit_card_no="V10000009",
            admission=Admission("ZY20261122003", "骨科二病区", "5床", "骨科", date(2026, 11, 22)),
            notes="正在住院，自费",
        ),
        Persona(
            "self_pay", "郑浩", _id("320115", date(1995, 10, 1), 137), "13905150010",
            None, patient_id="P000010", visit_card_no="V10000010", notes="自费患者，有就诊卡",
        ),
        Persona(
            "first_visit_insured", "钱明", _id("320102", date(1972, 5, 18), 595), "13905150011",
            Insurance("32010000000000000011", "310", "320100", "A32010011", "320100D15600000500A1B2C3D4E5F6A7G4",
                      Decimal("655.40"), ec_qr="ECQR-320100-0011"),
            patient_id=None, notes="初诊，医保，HIS 无档案",
        ),
        Persona(
            "first_visit_self_pay", "冯雪", _id("320102", date(2001, 8, 9), 268), "13905150012",
            None, patient_id=None, notes="初诊，自费，HIS 无档案",
        ),
    ]
}
