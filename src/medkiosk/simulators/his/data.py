"""The demo hospital: departments, doctors, 15 days of slots, patients, orders, exam orders, admissions.

Built deterministically from a seed and relative to ``today``, so a test or a training session
sees the same hospital every time it starts. The personas of :mod:`medkiosk.simulators.personas`
that have a ``patient_id`` are its first patients; those without one are absent (first visit).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from medkiosk.domain.identity import make_id_number
from medkiosk.simulators.his.records import HALF_DAY_HOURS
from medkiosk.simulators.personas import PERSONAS, Persona

DEFAULT_SEED = 20261120
SCHEDULE_DAYS = 15  # today and the 14 days after it
GENERATED_PATIENTS = 22
HOSPITAL_TZ = ZoneInfo("Asia/Shanghai")  # the demo hospital's own time

EXPERT_FEES = {"主任医师": Decimal("50.00"), "副主任医师": Decimal("30.00")}
ORDINARY_FEE = Decimal("10.00")

# (code, name, location, intro); children follow their group.
DEPARTMENT_TREE: list[tuple[tuple[str, str, str, str], list[tuple[str, str, str, str]]]] = [
    (("01", "内科", "门诊楼2–3层", "内科系统疾病的诊断与药物治疗。"), [
        ("0101", "心血管内科", "门诊楼2层A区", "高血压、冠心病、心律失常、心力衰竭的诊治。"),
        ("0102", "呼吸与危重症医学科", "门诊楼2层B区", "慢阻肺、哮喘、肺部感染及肺结节的诊治。"),
        ("0103", "消化内科", "门诊楼2层C区", "胃炎、消化性溃疡、肝病及消化道内镜诊疗。"),
        ("0104", "内分泌科", "门诊楼3层A区", "糖尿病、甲状腺疾病、骨质疏松的诊治。"),
        ("0105", "神经内科", "门诊楼3层B区", "脑血管病、头痛、癫痫、帕金森病的诊治。"),
        ("0106", "肾内科", "门诊楼3层C区", "慢性肾病、肾炎及血液透析管理。"),
    ]),
    (("02", "外科", "门诊楼4层", "外科疾病的手术与非手术治疗。"), [
        ("0201", "普通外科", "门诊楼4层A区", "甲状腺、乳腺、胃肠、肝胆及疝的外科治疗。"),
        ("0202", "骨科", "门诊楼4层B区", "骨折、关节疾病、脊柱疾病及运动损伤。"),
        ("0203", "神经外科", "门诊楼4层C区", "颅脑外伤、脑肿瘤、脑出血的外科治疗。"),
        ("0204", "泌尿外科", "门诊楼4层D区", "泌尿系结石、前列腺疾病及泌尿系肿瘤。"),
        ("0205", "胸外科", "门诊楼4层E区", "肺部肿瘤、食管疾病及胸部外伤。"),
        ("0206", "皮肤科", "门诊楼1层D区", "湿疹、皮炎、痤疮、银屑病及性病诊治。"),
    ]),
    (("03", "妇产科", "门诊楼5层", "妇女保健、妇科疾病及孕产期管理。"), [
        ("0301", "妇科", "门诊楼5层A区", "妇科炎症、子宫肌瘤、月经失调的诊治。"),
        ("0302", "产科", "门诊楼5层B区", "产前检查、高危妊娠管理及产后随访。"),
    ]),
    (("04", "儿科", "门诊楼1层", "0–14岁儿童的疾病诊治与保健。"), [
        ("0401", "儿内科", "门诊楼1层A区", "儿童呼吸道、消化道疾病及发热的诊治。"),
        ("0402", "儿外科", "门诊楼1层B区", "小儿疝气、包皮、先天畸形的外科治疗。"),
    ]),
    (("05", "五官科", "门诊楼6层", "眼、耳鼻咽喉与口腔疾病。"), [
        ("0501", "眼科", "门诊楼6层A区", "白内障、青光眼、眼底病及屈光不正。"),
        ("0502", "耳鼻咽喉头颈外科", "门诊楼6层B区", "鼻炎、鼻窦炎、咽喉疾病及听力障碍。"),
        ("0503", "口腔科", "门诊楼6层C区", "龋齿、牙周病、口腔修复与正畸。"),
    ]),
    (("06", "中医科", "门诊楼7层", "中医辨证施治与传统疗法。"), [
        ("0601", "中医内科", "门诊楼7层A区", "慢性病的中医调理。"),
        ("0602", "针灸推拿科", "门诊楼7层B区", "颈肩腰腿痛的针灸、推拿治疗。"),
    ]),
    (("07", "医技", "医技楼", "检查与检验科室。"), [
        ("0701", "放射科", "医技楼1层", "X线、CT、MRI 检查。"),
        ("0702", "超声医学科", "医技楼2层", "腹部、泌尿、妇产、血管及心脏超声检查。"),
        ("0703", "心电图室", "医技楼2层东侧", "常规心电图、动态心电图检查。"),
        ("0704", "检验科", "门诊楼1层C区", "血液、尿液、生化、免疫检验。"),
    ]),
]
MEDICAL_TECH_GROUP = "07"
EXAM_DEPARTMENTS = {"ct": "0701", "mri": "0701", "ultrasound": "0702", "ecg": "0703"}
BIG_DEPARTMENTS = {"0101", "0103", "0202", "0301", "0401"}  # they get a third doctor

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志文斌鹏宇浩凯晨欣悦琳雪梅海波辉"
DISTRICTS = ["320102", "320104", "320105", "320106", "320111", "320113", "320114", "320115", "320116",
             "320117", "320118", "320211", "321002", "340104", "370102", "410105"]


@dataclass(frozen=True)
class CatalogItem:
    item_code: str
    name: str
    kind: str
    insurance_code: str | None
    unit: str
    unit_price: Decimal
    self_pay_only: bool = False


def _item(code: str, name: str, kind: str, insurance_code: str | None, unit: str, price: str,
          self_pay_only: bool = False) -> CatalogItem:
    return CatalogItem(code, name, kind, insurance_code, unit, Decimal(price), self_pay_only or insurance_code is None)


# The chargeable items the demo orders draw on. Insurance codes are shaped like the national
# catalogue's (drugs 23 characters, services 15 digits, materials 27 characters).
CATALOG: dict[str, CatalogItem] = {i.item_code: i for i in [
    _item("Y0001", "阿司匹林肠溶片 100mg×30片", "drug", "XB01ACA056A001010101443", "盒", "15.80"),
    _item("Y0002", "苯磺酸氨氯地平片 5mg×28片", "drug", "XC08CAA048A001010100581", "盒", "24.50"),
    _item("Y0003", "盐酸二甲双胍缓释片 0.5g×30片", "drug", "XA10BAA085A010010101921", "盒", "18.60"),
    _item("Y0004", "阿莫西林胶囊 0.25g×24粒", "drug", "XJ01CAA040E001010101336", "盒", "9.80"),
    _item("Y0005", "复方甘草口服溶液 100ml", "drug", "ZR05DAA001X001010100342", "瓶", "6.50"),
    _item("Y0006", "氯化钠注射液 0.9% 250ml", "drug", "XB05BBH121B002010101012", "袋", "4.20"),
    # Class-C (丙类) items: in the catalogue but paid wholly by the patient.
    _item("Y0101", "重组人干扰素α2b喷雾剂", "drug", "XL03ABZ125R001010100115", "瓶", "68.00", self_pay_only=True),
    _item("Y0102", "维生素C泡腾片 1g×10片", "drug", None, "盒", "32.00"),
    _item("J0001", "血常规（五分类）", "lab", "002501010150000", "次", "20.00"),
    _item("J0002", "肝功能全套", "lab", "002503020010000", "次", "60.00"),
    _item("J0003", "糖化血红蛋白测定", "lab", "002503040340000", "次", "55.00"),
    _item("J0004", "尿常规", "lab", "002501020010000", "次", "10.00"),
    _item("E0001", "胸部CT平扫", "exam", "002103000010000", "部位", "180.00"),
    _item("E0002", "腹部彩超（肝胆胰脾）", "exam", "002203000010000", "次", "120.00"),
    _item("E0003", "常规十二导联心电图", "exam", "002202010010000", "次", "25.00"),
    _item("E0004", "头颅MRI平扫", "exam", "002104000010000", "部位", "450.00"),
    _item("E0005", "泌尿系彩超（肾、输尿管、膀胱、前列腺）", "exam", "002203000050000", "次", "150.00"),
    _item("E0006", "子宫附件彩超（经腹）", "exam", "002203000070000", "次", "130.00"),
    _item("T0001", "静脉输液（第一组）", "treatment", "001204000010000", "次", "12.00"),
    _item("T0002", "雾化吸入", "treatment", "001206000020000", "次", "8.00"),
    _item("C0001", "一次性使用输液器 带针", "material", "C14040100100001234500000000", "支", "3.50"),
    _item("C0002", "一次性使用无菌注射器 5ml", "material", "C14030100200001234500000000", "支", "0.80"),
    _item("F0001", "病历复印费", "non_medical", None, "张", "0.50"),
    _item("F0002", "影像光盘刻录费", "non_medical", None, "张", "20.00"),
    _item("F0003", "病历本工本费", "non_medical", None, "本", "1.00"),
    # A registration's fee is these two; the examination fee's price is the schedule's fee less
    # the registration fee (see registration_fee_items).
    _item("G0001", "挂号费", "treatment", None, "次", "1.00"),
    _item("G0002", "门诊诊查费", "treatment", "001101000010000", "次", "9.00"),
]}
REGISTRATION_FEE_ITEM, EXAMINATION_FEE_ITEM = "G0001", "G0002"


def registration_fee_items(fee: Decimal) -> list[dict[str, Any]]:
    """The items of a registration's fee order, adding up to exactly ``fee``: 挂号费 (self-pay) and
    诊查费 (insured) for the rest; a fee no larger than the registration fee is that fee alone."""
    registration, examination = CATALOG[REGISTRATION_FEE_ITEM], CATALOG[EXAMINATION_FEE_ITEM]
    parts = [(registration, min(fee, registration.unit_price))]
    if fee > registration.unit_price:
        parts.append((examination, fee - registration.unit_price))
    return [{"item_code": item.item_code, "name": item.name, "kind": item.kind,
             "insurance_code": item.insurance_code, "self_pay_only": item.self_pay_only,
             "unit": item.unit, "unit_price": price, "quantity": 1} for item, price in parts]

# (exam type, item, name, body part, preparation, fee); gender-specific pelvic scans below.
EXAMS = {
    "ct": ("E0001", "胸部CT平扫", "胸部", "检查前取下项链、带金属的内衣等胸部金属物品。", "180.00"),
    "mri": ("E0004", "头颅MRI平扫", "头颅", "检查前取下所有金属物品；体内有心脏起搏器或金属植入物者请提前告知医生。", "450.00"),
    "ultrasound": ("E0002", "腹部彩超（肝胆胰脾）", "上腹部", "检查前空腹8小时以上，当日早晨禁食禁水。", "120.00"),
    "ecg": ("E0003", "常规十二导联心电图", "心脏", "检查前静息5分钟，穿宽松上衣，勿空腹剧烈运动。", "25.00"),
}
PELVIC_ULTRASOUND = {
    "M": ("E0005", "泌尿系彩超（肾、输尿管、膀胱、前列腺）", "泌尿系", "检查前1小时饮水500–800毫升并憋尿，膀胱充盈后检查。", "150.00"),
    "F": ("E0006", "子宫附件彩超（经腹）", "盆腔", "检查前1小时饮水500–800毫升并憋尿，膀胱充盈后检查。", "130.00"),
}

EXAM_LABELS = {"ct": "CT", "mri": "核磁共振（MRI）", "ultrasound": "超声", "ecg": "心电图"}
# How the demo drugs are taken, as a prescription copy (处方底方) prints it.
DRUG_USAGE = {
    "Y0001": "口服 每次100mg 每日一次", "Y0002": "口服 每次5mg 每日一次", "Y0003": "口服 每次0.5g 每日两次",
    "Y0004": "口服 每次0.5g 每日三次", "Y0005": "口服 每次10ml 每日三次", "Y0006": "静脉滴注 250ml 每日一次",
    "Y0101": "喷鼻 每次1喷 每日四次", "Y0102": "温水冲服 每次1片 每日一次",
}
# The diagnosis a demo requisition carries, by the ordering clinic.
DIAGNOSES = {"0101": "高血压病", "0102": "慢性支气管炎", "0103": "慢性胃炎", "0104": "2型糖尿病",
             "0105": "头痛待查", "0202": "腰椎间盘突出症", "0301": "盆腔炎性疾病", "0201": "腹痛待查"}

# Where each persona's outpatient visits took place.
PERSONA_DEPARTMENTS = {
    "local_employee": "0101", "local_resident": "0105", "same_province": "0103",
    "cross_province_filed": "0102", "cross_province_unfiled": "0202", "special_disease": "0104",
    "lost_card": "0301", "inpatient": "0101", "inpatient_self_pay": "0202", "self_pay": "0201",
}


def persona_patients() -> list[Persona]:
    """The personas HIS knows: those with a patient_id."""
    return [p for p in PERSONAS.values() if p.patient_id]


class _Numbers:
    """Running numbers for visits and orders, so every number in the demo hospital is unique."""

    def __init__(self) -> None:
        self.visit = 0
        self.order = 0

    def visit_no(self, on: dt.date) -> str:
        self.visit += 1
        return f"MZ{on:%Y%m%d}{self.visit:04d}"

    def order_no(self, on: dt.date) -> str:
        self.order += 1
        return f"CF{on:%Y%m%d}{self.order:05d}"


def build_demo_hospital(*, today: dt.date, seed: int = DEFAULT_SEED) -> dict[str, list[dict[str, Any]]]:
    """Every collection of the demo hospital as plain records (validated by the state on load)."""
    rng = random.Random(seed)
    departments = _departments()
    doctors = _doctors(rng)
    schedules = _schedules(rng, doctors, today)
    patients = _persona_patient_records() + _generated_patients(rng)
    numbers = _Numbers()
    orders: list[dict[str, Any]] = []
    exam_orders: list[dict[str, Any]] = []
    by_department: dict[str, list[dict[str, Any]]] = {}
    for doctor in doctors:
        by_department.setdefault(doctor["department_code"], []).append(doctor)
    for persona in persona_patients():
        department = PERSONA_DEPARTMENTS.get(persona.key, "0101")
        first = len(orders)
        _persona_orders(rng, numbers, persona.patient_id, persona.id_number, department, by_department,
                        today, orders, exam_orders)
        if persona.insurance is not None and persona.insurance.special_diseases:
            # Today's visit treats the first filed 门诊慢特病: it settles as med_type 14.
            code, name = persona.insurance.special_diseases[0]
            for order in orders[first:]:
                if order["visit_date"] == today:
                    order.update(special_disease_code=code, special_disease_name=name)
    for index, patient in enumerate(patients[len(persona_patients()):]):
        if index % 3 == 0:  # a third of the other patients have something to pay
            department = rng.choice([d for d in by_department if d not in BIG_DEPARTMENTS])
            doctor = rng.choice(by_department[department])
            visit_on = today - dt.timedelta(days=rng.randrange(0, 3))
            visit_no = numbers.visit_no(visit_on)
            codes = rng.sample(["Y0001", "Y0004", "Y0005", "J0001", "J0004", "T0002"], 3)
            orders.append(_order(numbers, patient["patient_id"], visit_no, visit_on, department, doctor,
                                 [(c, rng.randint(1, 3)) for c in codes]))
    admissions = _admissions(rng, patients, today)
    reports = _reports(today)
    _few_numbers_left(schedules, today)
    registrations = _registrations(today, seed, patients, doctors)
    registrations += _appointments(today, doctors, schedules, first_number=len(registrations) + 1)
    registrations += _swappable_registrations(today, doctors, schedules, first_number=len(registrations) + 1)
    return {
        "patients": patients,
        "departments": departments,
        "doctors": doctors,
        "schedules": schedules,
        "orders": orders,
        "exam_orders": exam_orders,
        "admissions": admissions,
        "registrations": registrations,
        "reports": reports,
    }


def _departments() -> list[dict[str, Any]]:
    records = []
    for (code, name, location, intro), children in DEPARTMENT_TREE:
        records.append({"code": code, "name": name, "parent_code": None, "location": location, "intro": intro})
        for child_code, child_name, child_location, child_intro in children:
            records.append({"code": child_code, "name": child_name, "parent_code": code,
                            "location": child_location, "intro": child_intro})
    return records


def clinical_department_codes() -> list[str]:
    """Departments that hold clinics (everything but the medical-technology group)."""
    return [child[0] for (code, *_), children in DEPARTMENT_TREE if code != MEDICAL_TECH_GROUP
            for child in children]


def _unique_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        if name not in taken:
            taken.add(name)
            return name


def _doctors(rng: random.Random) -> list[dict[str, Any]]:
    names = {p.name for p in PERSONAS.values()}
    intros = {child[0]: child[3] for _, children in DEPARTMENT_TREE for child in children}
    doctors = []
    for index, department in enumerate(clinical_department_codes()):
        titles = ["主任医师" if index % 2 == 0 else "副主任医师", "主治医师" if index % 3 else "住院医师"]
        if department in BIG_DEPARTMENTS:
            titles.append("副主任医师" if index % 2 == 0 else "主任医师")
        for number, title in enumerate(titles, start=1):
            expert = title in EXPERT_FEES
            doctors.append({
                "code": f"D{department}{number:02d}",
                "name": _unique_name(rng, names),
                "title": title,
                "department_code": department,
                "level": "expert" if expert else "ordinary",
                "intro": f"{title}，从医{rng.randint(15, 35) if expert else rng.randint(3, 14)}年。擅长：{intros[department]}",
            })
    return doctors


def _schedules(rng: random.Random, doctors: list[dict[str, Any]], today: dt.date) -> list[dict[str, Any]]:
    # Ordinary doctors hold clinics every morning and every weekday afternoon; each expert has
    # three fixed half-days a week (Monday–Saturday), as outpatient timetables usually read.
    expert_week = {
        d["code"]: set(rng.sample([(w, h) for w in range(6) for h in ("am", "pm")], 3))
        for d in doctors if d["level"] == "expert"
    }
    slots = []
    for offset in range(SCHEDULE_DAYS):
        day = today + dt.timedelta(days=offset)
        for doctor in doctors:
            for half_day in ("am", "pm"):
                if doctor["level"] == "expert":
                    works = (day.weekday(), half_day) in expert_week[doctor["code"]]
                    total = 15 if half_day == "am" else 12
                    fee = EXPERT_FEES[doctor["title"]]
                else:
                    works = half_day == "am" or day.weekday() < 5
                    total = 30 if half_day == "am" else 25
                    fee = ORDINARY_FEE
                if not works:
                    continue
                if offset == 0:
                    remaining = rng.randint(0, total // 3)
                elif rng.random() < 0.1:
                    remaining = 0  # booked out ahead
                else:
                    remaining = rng.randint(total // 3, total)
                slots.append({
                    "schedule_id": f"S{day:%Y%m%d}{doctor['code']}{half_day.upper()}",
                    "date": day,
                    "half_day": half_day,
                    "department_code": doctor["department_code"],
                    "doctor_code": doctor["code"],
                    "level": doctor["level"],
                    "fee": fee,
                    "total": total,
                    "remaining": remaining,
                })
    return slots


def _persona_patient_records() -> list[dict[str, Any]]:
    return [{
        "patient_id": p.patient_id,
        "name": p.name,
        "id_number": p.id_number,
        "phone": p.phone,
        "visit_card_no": p.visit_card_no,
        "insurance_card_no": p.insurance.card_no if p.insurance else None,
    } for p in persona_patients()]


def _generated_patients(rng: random.Random) -> list[dict[str, Any]]:
    taken_ids = {p.id_number for p in PERSONAS.values()}
    taken_names = {p.name for p in PERSONAS.values()}
    taken_phones = {p.phone for p in PERSONAS.values()}
    numbers = [int(p.patient_id[1:]) for p in persona_patients()]
    patients = []
    for offset in range(1, GENERATED_PATIENTS + 1):
        number = max(numbers) + offset
        while True:
            born = dt.date(1938, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 85))
            id_number = make_id_number(rng.choice(DISTRICTS), born, rng.randrange(0, 1000))
            if id_number not in taken_ids:
                taken_ids.add(id_number)
                break
        while True:
            phone = f"1{rng.choice('35789')}{rng.randrange(10**9):09d}"
            if phone not in taken_phones:
                taken_phones.add(phone)
                break
        insured = rng.random() < 0.7
        patients.append({
            "patient_id": f"P{number:06d}",
            "name": _unique_name(rng, taken_names),
            "id_number": id_number,
            "phone": phone,
            "visit_card_no": f"V1{number:07d}",
            # Ten characters, so never one of the personas' nine-character card numbers.
            "insurance_card_no": f"A{id_number[:4]}9{number:04d}" if insured else None,
        })
    return patients


def _order(numbers: _Numbers, patient_id: str, visit_no: str, visit_on: dt.date, department: str,
           doctor: dict[str, Any], lines: list[tuple[str, int]]) -> dict[str, Any]:
    items = []
    for code, quantity in lines:
        item = CATALOG[code]
        items.append({
            "item_code": item.item_code, "name": item.name, "kind": item.kind,
            "insurance_code": item.insurance_code, "self_pay_only": item.self_pay_only,
            "unit": item.unit, "unit_price": item.unit_price, "quantity": quantity,
        })
    return {
        "order_no": numbers.order_no(visit_on), "patient_id": patient_id, "visit_no": visit_no,
        "visit_date": visit_on, "department_code": department, "doctor_code": doctor["code"],
        "status": "unpaid", "items": items,
    }


def _persona_orders(rng: random.Random, numbers: _Numbers, patient_id: str, id_number: str, department: str,
                    by_department: dict[str, list[dict[str, Any]]], today: dt.date,
                    orders: list[dict[str, Any]], exam_orders: list[dict[str, Any]]) -> None:
    """Two unpaid visits (every kind of item between them) and paid CT, MRI, ultrasound and ECG orders."""
    doctor = rng.choice(by_department[department])
    visit_no = numbers.visit_no(today)
    drugs = rng.sample(["Y0001", "Y0002", "Y0003", "Y0004", "Y0005"], 2)
    orders.append(_order(numbers, patient_id, visit_no, today, department, doctor,
                         [(drugs[0], rng.randint(1, 3)), (drugs[1], rng.randint(1, 2)), ("Y0101", 1)]))
    orders.append(_order(numbers, patient_id, visit_no, today, department, doctor,
                         [("J0001", 1), (rng.choice(["J0002", "J0003", "J0004"]), 1)]))
    exam = _order(numbers, patient_id, visit_no, today, department, doctor, [("E0001", 1)])
    orders.append(exam)
    exam_orders.append(_exam_order(exam["order_no"], patient_id, visit_no, "ct", EXAMS["ct"], today, "unpaid",
                                   ordering=(department, doctor["code"])))
    orders.append(_order(numbers, patient_id, visit_no, today, department, doctor,
                         [("T0001", 1), ("Y0006", 1), ("C0001", 1), ("C0002", 2)]))

    # An earlier visit whose copies and image disc are still to be paid: self-pay only, no
    # insurance card needed (the tender's 自助结算 case), next to an ordinary drug.
    earlier = today - dt.timedelta(days=3)
    earlier_visit = numbers.visit_no(earlier)
    orders.append(_order(numbers, patient_id, earlier_visit, earlier, department, doctor,
                         [("Y0102", 1), ("F0001", rng.randint(4, 12)), ("F0002", 1), ("F0003", 1)]))

    paid_visit = numbers.visit_no(today - dt.timedelta(days=2))
    gender = "M" if int(id_number[16]) % 2 else "F"
    paid = [("ct", EXAMS["ct"]), ("mri", EXAMS["mri"]), ("ultrasound", EXAMS["ultrasound"]),
            ("ultrasound", PELVIC_ULTRASOUND[gender]), ("ecg", EXAMS["ecg"])]
    for exam_type, spec in paid:
        on = today - dt.timedelta(days=2)
        exam_orders.append(_exam_order(numbers.order_no(on), patient_id, paid_visit, exam_type, spec, on, "paid",
                                       booked=exam_type == "ecg", ordering=(department, doctor["code"])))


def _exam_order(order_no: str, patient_id: str, visit_no: str, exam_type: str, spec: tuple[str, ...],
                on: dt.date, status: str, *, booked: bool = False,
                ordering: tuple[str, str] | None = None) -> dict[str, Any]:
    _item_code, name, body_part, preparation, fee = spec
    department, doctor = ordering or (None, None)
    return {
        "order_no": order_no, "patient_id": patient_id, "visit_no": visit_no, "exam_type": exam_type,
        "exam_name": name, "body_part": body_part, "department_code": EXAM_DEPARTMENTS[exam_type],
        "preparation": preparation, "status": status, "booked": booked, "ordered_on": on,
        "amount": Decimal(fee), "ordering_department_code": department, "doctor_code": doctor,
        "diagnosis": DIAGNOSES.get(department or "", "待查"),
    }


def _reports(today: dt.date) -> list[dict[str, Any]]:
    """Every persona with a record: a ready blood count, a ready chest CT report, a lab report still pending."""
    tz = HOSPITAL_TZ
    yesterday = dt.datetime.combine(today - dt.timedelta(days=1), dt.time(15, 30), tzinfo=tz)
    records = []
    for number, persona in enumerate(persona_patients(), start=1):
        department = PERSONA_DEPARTMENTS.get(persona.key, "0101")
        requested = next(child[1] for _, children in DEPARTMENT_TREE for child in children if child[0] == department)
        records.append({
            "report_no": f"JY{today - dt.timedelta(days=1):%Y%m%d}{number:04d}", "patient_id": persona.patient_id,
            "kind": "lab", "title": "血常规（五分类）", "department": "检验科", "requested_by": requested,
            "specimen": "静脉血", "collected_at": yesterday - dt.timedelta(hours=6), "status": "ready",
            "ready_at": yesterday, "reported_by": "陈立新", "reviewed_by": "孙梅",
            "items": [
                {"name": "白细胞计数", "code": "WBC", "result": "11.2", "unit": "10^9/L", "reference": "3.5–9.5",
                 "flag": "H"},
                {"name": "红细胞计数", "code": "RBC", "result": "4.52", "unit": "10^12/L", "reference": "4.3–5.8"},
                {"name": "血红蛋白", "code": "HGB", "result": "128", "unit": "g/L", "reference": "130–175",
                 "flag": "L"},
                {"name": "血小板计数", "code": "PLT", "result": "236", "unit": "10^9/L", "reference": "125–350"},
                {"name": "中性粒细胞百分比", "code": "NEUT%", "result": "78.1", "unit": "%", "reference": "40–75",
                 "flag": "H"},
            ]})
        records.append({
            "report_no": f"YX{today - dt.timedelta(days=1):%Y%m%d}{number:04d}", "patient_id": persona.patient_id,
            "kind": "exam", "title": "胸部CT平扫", "department": "放射科", "requested_by": requested,
            "status": "ready", "ready_at": yesterday + dt.timedelta(hours=1), "reported_by": "刘振华",
            "reviewed_by": "周文斌",
            "findings": "双肺纹理清晰，右肺上叶见一直径约4mm磨玻璃结节，边界清。气管及主支气管通畅。纵隔未见肿大淋巴结。"
                        "心影大小正常。未见胸腔积液。",
            "impression": "右肺上叶微小磨玻璃结节，建议12个月后复查胸部CT。"})
        records.append({
            "report_no": f"JY{today:%Y%m%d}{number:04d}", "patient_id": persona.patient_id, "kind": "lab",
            "title": "肝功能全套", "department": "检验科", "requested_by": requested, "specimen": "静脉血",
            "status": "pending",
            "expected_at": dt.datetime.combine(today, dt.time(16, 0), tzinfo=tz)})
    return records


def _admissions(rng: random.Random, patients: list[dict[str, Any]], today: dt.date) -> list[dict[str, Any]]:
    records = []
    for persona in persona_patients():
        if persona.admission:
            a = persona.admission
            records.append({"admission_no": a.admission_no, "patient_id": persona.patient_id, "ward": a.ward,
                            "bed": a.bed, "department": a.department, "admitted_on": a.admitted_on,
                            "discharged_on": None})
    # A stay that ended last year: being discharged once must not make a patient an inpatient.
    local = PERSONAS["local_employee"]
    last_year = today - dt.timedelta(days=300)
    records.append({"admission_no": f"ZY{last_year:%Y%m%d}007", "patient_id": local.patient_id,
                    "ward": "心内科一病区", "bed": "3床", "department": "心血管内科",
                    "admitted_on": last_year, "discharged_on": last_year + dt.timedelta(days=6)})
    # Two of the generated patients are in hospital too.
    for number, patient in enumerate(patients[-2:], start=1):
        admitted = today - dt.timedelta(days=rng.randint(1, 10))
        records.append({"admission_no": f"ZY{admitted:%Y%m%d}1{number:02d}", "patient_id": patient["patient_id"],
                        "ward": "呼吸科一病区", "bed": f"{rng.randint(1, 40)}床", "department": "呼吸与危重症医学科",
                        "admitted_on": admitted, "discharged_on": None})
    return records


# Today's registrations (挂号) for check-in (报到): the personas who are not in hospital, and a
# few generated patients in the same clinics so a waiting room is never empty. Drawn from their
# own random stream, so adding them changes nothing else of the demo hospital.
REGISTRATION_WINDOWS = {half_day.value: (start, 30) for half_day, (start, _end) in HALF_DAY_HOURS.items()}
PATIENTS_PER_WINDOW = 3
PERSONA_REGISTRATIONS = {
    "local_employee": [("0101", "am")], "local_resident": [("0105", "am")],
    "same_province": [("0103", "pm")], "cross_province_filed": [("0102", "am"), ("0101", "pm")],
    "cross_province_unfiled": [("0202", "am")], "special_disease": [("0104", "am")],
    "lost_card": [("0301", "pm")], "self_pay": [("0201", "am")],
}


def registration_window(half_day: str, queue_no: int) -> tuple[dt.time, dt.time]:
    """The time window (分时段) of a half-day's number: three numbers a 30-minute window."""
    start, minutes = REGISTRATION_WINDOWS[half_day]
    begin = dt.datetime.combine(dt.date(2000, 1, 1), start) + dt.timedelta(
        minutes=minutes * ((queue_no - 1) // PATIENTS_PER_WINDOW))
    return begin.time(), (begin + dt.timedelta(minutes=minutes)).time()


def _registrations(today: dt.date, seed: int, patients: list[dict[str, Any]],
                   doctors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rng = random.Random(seed * 31 + 5)
    first_doctor = {}
    for doctor in doctors:
        first_doctor.setdefault(doctor["department_code"], doctor)
    numbers: dict[tuple[str, str], int] = {}
    records: list[dict[str, Any]] = []

    def register(patient_id: str, department: str, half_day: str, *, status: str = "registered",
                 source: str = "window") -> None:
        doctor = first_doctor[department]
        key = (doctor["code"], half_day)
        numbers[key] = numbers.get(key, 0) + 1
        start, end = registration_window(half_day, numbers[key])
        records.append({
            "registration_no": f"GH{today:%Y%m%d}{len(records) + 1:04d}", "patient_id": patient_id,
            "date": today, "half_day": half_day, "department_code": department, "doctor_code": doctor["code"],
            "level": doctor["level"], "queue_no": numbers[key], "window_start": start, "window_end": end,
            "fee": EXPERT_FEES.get(doctor["title"], ORDINARY_FEE), "status": status, "source": source,
        })

    generated = [p["patient_id"] for p in patients if p["patient_id"] not in {q.patient_id for q in persona_patients()}]
    others = iter(generated[:-2])  # the last two generated patients are in hospital
    for persona in persona_patients():
        for department, half_day in PERSONA_REGISTRATIONS.get(persona.key, []):
            for _ in range(rng.randint(1, 2)):  # someone booked earlier in the same clinic
                register(next(others), department, half_day)
            register(persona.patient_id, department, half_day, source=rng.choice(["kiosk", "window", "app"]))
    # An appointment not picked up yet, and a cancelled one: neither can check in.
    register(PERSONAS["self_pay"].patient_id, "0201", "pm", status="unpaid", source="app")
    register(PERSONAS["local_employee"].patient_id, "0105", "pm", status="cancelled", source="app")
    return records


# Tomorrow morning, deterministically: one ordinary clinic booked out and two with a number or two
# left, so a kiosk (and a test) meets the last number and a full clinic without searching.
TOMORROW_REMAINING = {"D010102": 0, "D010602": 2, "D020102": 1}

# Appointments to pick up (预约取号), booked earlier in the app or by phone: (persona, doctor, days
# from today, source, paid in the app). Mornings, since ordinary doctors hold a clinic every morning.
APPOINTMENTS = [
    ("local_employee", "D010102", 0, "app", True),
    ("local_resident", "D010502", 0, "app", False),
    ("same_province", "D010302", 1, "phone", False),
]


def _few_numbers_left(schedules: list[dict[str, Any]], today: dt.date) -> None:
    tomorrow = today + dt.timedelta(days=1)
    for slot in schedules:
        if slot["date"] == tomorrow and slot["half_day"] == "am" and slot["doctor_code"] in TOMORROW_REMAINING:
            slot["remaining"] = TOMORROW_REMAINING[slot["doctor_code"]]


def _appointments(today: dt.date, doctors: list[dict[str, Any]], schedules: list[dict[str, Any]], *,
                  first_number: int) -> list[dict[str, Any]]:
    """Each appointment took the last number given out of its schedule (one more is taken if none was)."""
    by_code = {d["code"]: d for d in doctors}
    records = []
    for number, (persona, doctor_code, days, source, paid) in enumerate(APPOINTMENTS, start=first_number):
        doctor = by_code[doctor_code]
        day = today + dt.timedelta(days=days)
        slot = next(s for s in schedules
                    if s["doctor_code"] == doctor_code and s["date"] == day and s["half_day"] == "am")
        queue_no = _last_number_given(slot)
        start, end = registration_window("am", queue_no)
        fee = EXPERT_FEES.get(doctor["title"], ORDINARY_FEE)
        records.append({
            "registration_no": f"GH{today:%Y%m%d}{number:04d}", "patient_id": PERSONAS[persona].patient_id,
            "date": day, "half_day": "am", "department_code": doctor["department_code"], "doctor_code": doctor_code,
            "level": doctor["level"], "queue_no": queue_no, "window_start": start, "window_end": end, "fee": fee,
            "status": "booked", "source": source, "schedule_id": slot["schedule_id"],
            "app_trade_no": f"APP{today:%Y%m%d}{number:06d}" if paid else None,
            "app_paid_amount": fee if paid else None,
        })
    return records


# Self-pay registrations paid in the hospital app that an insured patient may swap for insurance
# at a kiosk (换号): (persona, ordinary doctor, days from today). Today's is in the afternoon on a
# weekday (the morning at a weekend, when ordinary doctors hold no afternoon clinic); tomorrow's
# in the morning. Their doctors are taken by no other demo record. The cross-region persona's is
# tomorrow's only: its two registrations of today are the check-in (报到) demo's.
SWAPPABLE_REGISTRATIONS = [
    ("cross_province_filed", "D010202", 1), ("local_employee", "D010402", 0), ("local_employee", "D010402", 1),
]
APP_PAYMENT_HOUR = dt.time(20, 0)
"""The demo's app payments were made the evening before ``today`` (so today's statement holds none)."""


def _last_number_given(slot: dict[str, Any]) -> int:
    """The last number given out of a schedule (one is given out first if none was)."""
    if slot["remaining"] == slot["total"]:
        slot["remaining"] -= 1
    return slot["total"] - slot["remaining"]


def _swappable_registrations(today: dt.date, doctors: list[dict[str, Any]], schedules: list[dict[str, Any]], *,
                             first_number: int) -> list[dict[str, Any]]:
    by_code = {d["code"]: d for d in doctors}
    records = []
    for number, (persona, doctor_code, days) in enumerate(SWAPPABLE_REGISTRATIONS, start=first_number):
        doctor = by_code[doctor_code]
        day = today + dt.timedelta(days=days)
        slots = {s["half_day"]: s for s in schedules if s["doctor_code"] == doctor_code and s["date"] == day}
        half_day = "pm" if days == 0 and "pm" in slots else "am"
        slot = slots[half_day]
        queue_no = _last_number_given(slot)
        start, end = registration_window(half_day, queue_no)
        fee = EXPERT_FEES.get(doctor["title"], ORDINARY_FEE)
        records.append({
            "registration_no": f"GH{today:%Y%m%d}{number:04d}", "patient_id": PERSONAS[persona].patient_id,
            "date": day, "half_day": half_day, "department_code": doctor["department_code"],
            "doctor_code": doctor_code, "level": doctor["level"], "queue_no": queue_no, "window_start": start,
            "window_end": end, "fee": fee, "status": "registered", "source": "app",
            "schedule_id": slot["schedule_id"], "app_trade_no": f"APP{today:%Y%m%d}{number:06d}",
            "app_paid_amount": fee,
        })
    return records


@dataclass(frozen=True)
class AppPayment:
    """A registration paid in the hospital app: a trade at the hospital's own payment merchant."""

    out_trade_no: str
    amount: Decimal
    paid_at: dt.datetime
    registration_no: str
    patient_id: str


def app_payments(*, today: dt.date, seed: int = DEFAULT_SEED) -> list[AppPayment]:
    """Every app payment of the demo hospital built for ``today``: the payment simulator's demo
    trades come from here, so the two simulators agree on each trade number and amount."""
    registrations = build_demo_hospital(today=today, seed=seed)["registrations"]
    evening = dt.datetime.combine(today - dt.timedelta(days=1), APP_PAYMENT_HOUR, tzinfo=HOSPITAL_TZ)
    paid = [r for r in registrations if r.get("app_trade_no")]
    return [AppPayment(out_trade_no=r["app_trade_no"], amount=r["app_paid_amount"],
                       paid_at=evening + dt.timedelta(minutes=7 * index), registration_no=r["registration_no"],
                       patient_id=r["patient_id"]) for index, r in enumerate(paid)]
