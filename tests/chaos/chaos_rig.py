"""The chaos rig: seeded faulty simulators, the kiosk service as a real process, kiosks and their patients.

test_payment_chaos.py drives a thousand payment flows through it. Everything is said over real
HTTP — the kiosks sign their requests as the agent does, the patient's phone pays through the
payment simulator's control surface — and only our own database is read directly, to say where
each order ended. The simulators (their fault dice seeded) and the service run as processes of
their own; the service so that it can be killed with SIGKILL mid-flight and started again.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from medkiosk.domain.identity import make_id_number
from medkiosk.serving import KEEP_ALIVE_SECONDS, free_port
from medkiosk.simulators.his.data import CATALOG

from kiosk_client import Kiosk

TERMINAL = {"completed", "refunded", "closed", "failed"}
TODAY = date.today()


@dataclass(frozen=True)
class ChaosConfig:
    """What one run does; the seed makes the patients, their choices and the fault dice repeatable."""

    seed: int = int(os.environ.get("MEDKIOSK_CHAOS_SEED", "20261125"))
    flows: int = int(os.environ.get("MEDKIOSK_CHAOS_FLOWS", "1000"))
    kiosks: int = int(os.environ.get("MEDKIOSK_CHAOS_KIOSKS", "24"))
    workers: int = int(os.environ.get("MEDKIOSK_CHAOS_WORKERS", "2"))
    restarts_at: tuple[float, ...] = (0.3, 0.6)
    """SIGKILL the service once this share of the flows has finished (one restart each)."""
    upstream_timeout: float = 1.0
    hang_seconds: float = 1.5
    recovery_seconds: float = 2.0
    pay_window_seconds: int = 60
    walk_away_share: float = 0.5
    """Only the first half of the flows leave orders waiting, so the pay windows end mid-run, in the service."""
    poll_every: float = 0.5
    """The page polls every 2 s; the kiosks here a little more eagerly, to crowd the service."""
    poll_seconds: float = 20.0
    settle_seconds: float = 90.0
    """How long the service's recovery worker gets, after the last flow, to finish every order."""


# ================================================================================================
# simulators and their faults
# ================================================================================================
SIMULATOR_MODULES = {"his": "medkiosk.simulators.his.app", "insurance": "medkiosk.simulators.insurance.app",
                     "payment": "medkiosk.simulators.payment.app", "einvoice": "medkiosk.simulators.einvoice.app"}
SIMULATOR_LAUNCH = ("import sys, uvicorn; from {module} import create_app; "
                    "from medkiosk.serving import KEEP_ALIVE_SECONDS; "
                    "uvicorn.run(create_app(seed=int(sys.argv[2])), host='127.0.0.1', port=int(sys.argv[1]), "
                    "log_level='warning', access_log=False, timeout_keep_alive=KEEP_ALIVE_SECONDS)")


class Simulators:
    """The four upstreams, each a uvicorn process of its own (so they never wait on the kiosks' GIL), seeded."""

    def __init__(self, seed: int, log_dir: Path) -> None:
        self.processes: dict[str, subprocess.Popen] = {}
        self.urls: dict[str, str] = {}
        self.http = httpx.Client(timeout=60)
        try:
            for offset, (name, module) in enumerate(SIMULATOR_MODULES.items()):
                port = free_port()
                with open(log_dir / f"{name}-sim.log", "w", encoding="utf-8") as log:
                    self.processes[name] = subprocess.Popen(
                        [sys.executable, "-c", SIMULATOR_LAUNCH.format(module=module), str(port), str(seed + offset)],
                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                self.urls[name] = f"http://127.0.0.1:{port}"
            for name in self.urls:
                self._wait(name)
        except Exception:
            self.stop()
            raise

    def _wait(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"the {name} simulator exited with {self.processes[name].returncode}")
            try:
                if self.http.get(self.urls[name] + "/__sim__/", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {name} simulator did not start")
            time.sleep(0.1)

    def call(self, name: str, method: str, path: str, **kwargs) -> httpx.Response:
        return self.http.request(method, self.urls[name] + path, **kwargs)

    def add(self, name: str, collection: str, records: list[dict]) -> None:
        reply = self.call(name, "POST", f"/__sim__/data/{collection}", json=records)
        assert reply.status_code == 200, f"{name} {collection}: {reply.text[:500]}"

    def state(self, name: str, collection: str) -> list[dict]:
        reply = self.call(name, "GET", f"/__sim__/state/{collection}")
        reply.raise_for_status()
        return reply.json()

    def inject(self, plan: dict[str, list[dict]]) -> None:
        for name, faults in plan.items():
            for fault in faults:
                reply = self.call(name, "POST", "/__sim__/faults", json=fault)
                assert reply.status_code == 200, reply.text

    def faults(self) -> dict[str, list[dict]]:
        return {name: self.call(name, "GET", "/__sim__/faults").json() for name in self.urls}

    def clear_faults(self) -> None:
        for name in self.urls:
            self.call(name, "DELETE", "/__sim__/faults")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.http.close()


def fault_plan(hang: float) -> dict[str, list[dict]]:
    """Errors, timeouts, lost replies and latency at every upstream, each by probability.

    The simulators apply the first fault of each kind that matches an operation and wins its
    throw, so a specific fault listed before a ``*`` one is tried first. ``hang`` outlasts the
    service's upstream timeout: a timeout or lost reply is an unknown outcome to the engine. The
    money-moving operations (posting, settling, cancelling, reversing, refunding) get more than the
    rest, so that their rarer sequences — a lost reply, then a refusal of the retry — come up in
    every run of a thousand flows rather than in one run of ten.
    """
    latency = {"operation": "*", "kind": "latency", "delay_ms": 250, "probability": 0.02}

    def lost(operation: str, p: float) -> dict:
        return {"operation": operation, "kind": "lost_reply", "hang_seconds": hang, "probability": p}

    def timeout(operation: str, p: float) -> dict:
        return {"operation": operation, "kind": "timeout", "hang_seconds": hang, "probability": p}

    def error(operation: str, p: float, message: str, code: str = "SIM_FAULT") -> dict:
        return {"operation": operation, "kind": "error", "probability": p, "message": message, "code": code}

    return {
        "his": [
            latency,
            timeout("payments.post", 0.03), timeout("*", 0.01),
            error("payments.post", 0.04, "HIS 日结中，暂停收费", code="REFUSED"),
            error("*", 0.015, "HIS 数据库连接失败"),
            lost("payments.post", 0.08),
        ],
        "insurance": [
            latency,
            timeout("2207", 0.03), timeout("*", 0.01),
            # The platform's error replies are refusals (infcode -1), whatever the transaction; its
            # messages are the platform's own words, 已 and all.
            error("2208", 0.1, "医保结算服务已暂停，请稍后再试"),
            error("*", 0.01, "医保中心系统繁忙，请稍后再试"),
            lost("2201", 0.02), lost("2204", 0.02), lost("2207", 0.06), lost("2208", 0.08),
            lost("2601", 0.08), lost("2202", 0.03), lost("2205", 0.03),
        ],
        "payment": [
            latency,
            timeout("order.query", 0.02), timeout("*", 0.01),
            error("refund.create", 0.03, "退款通道繁忙，请稍后再试", code="REFUSED"),
            error("*", 0.015, "支付通道维护中"),
            lost("qr.create", 0.02), lost("code.charge", 0.06), lost("order.close", 0.05),
            lost("refund.create", 0.1),
        ],
        "einvoice": [
            latency,
            timeout("*", 0.02),
            error("*", 0.03, "票据平台维护中"),
            lost("einvoice.issue", 0.05),
        ],
    }


# ================================================================================================
# patients, visits and what each patient does
# ================================================================================================
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "建国秀英伟静敏丽强军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红娥玲芳燕"

# (insured region, ID-number region, scheme, person type, filing): the personas of personas.py, cloned.
KINDS: dict[str, tuple[str, str, str, str, bool]] = {
    "local_employee": ("320100", "320102", "310", "11", False),
    "local_retiree": ("320100", "320104", "310", "12", False),
    "local_resident": ("320100", "320105", "390", "1501", False),
    "same_province": ("320200", "320211", "310", "11", False),
    "cross_province_filed": ("340100", "340104", "310", "12", True),
    "cross_province_filed_resident": ("420100", "420106", "390", "1501", True),
    "special_disease": ("320100", "320106", "310", "12", False),
}
MEDICAL = ["Y0001", "Y0002", "Y0003", "Y0004", "Y0005", "J0001", "J0002", "J0003", "J0004", "E0002",
           "E0003", "T0001", "T0002", "C0001", "C0002", "E0001"]
SELF_PAY_ONLY = ["F0001", "F0002", "F0003", "Y0102", "Y0101"]


@dataclass
class ChaosPatient:
    kind: str
    patient_id: str
    name: str
    id_number: str
    phone: str
    visit_card_no: str
    insured: dict | None = None
    """The insurance platform's record of the person; None for a self-pay patient."""

    def his_record(self) -> dict:
        record = {"patient_id": self.patient_id, "name": self.name, "id_number": self.id_number,
                  "phone": self.phone, "visit_card_no": self.visit_card_no}
        if self.insured:
            record["insurance_card_no"] = self.insured["card_no"]
        return record


@dataclass
class Visit:
    visit_no: str
    orders: list[dict]
    medical: list[str]
    """Order numbers insurance may cover."""
    self_pay_only: list[str]
    """Order numbers of items the patient always pays in full (copies, a CD, class-C drugs)."""


@dataclass
class FlowPlan:
    index: int
    patient: ChaosPatient
    visit: Visit
    medium: str
    mode: str
    """insurance, self_pay, or mixed (self-pay-only items first, then the rest with insurance)."""
    behaviour: str
    auth_code: str | None = None
    magic: str | None = None

    @property
    def label(self) -> str:
        return self.patient.kind if self.mode != "mixed" else f"{self.patient.kind}+self_pay_items"


# What a patient does at the confirmation screen, with weights (out of 100).
BEHAVIOURS = [
    ("qr", 55), ("code_ok", 9), ("code_confirm_on_phone", 4), ("code_balance_too_low", 2),
    ("code_expired", 2), ("code_never_confirmed", 2), ("cancel_at_qr", 6), ("pay_then_cancel", 4),
    ("walk_away_at_qr", 6), ("walk_away_at_confirmation", 4), ("wrong_amount", 2),
    ("qr_and_reprint", 4),
]
WALK_AWAY = {"walk_away_at_qr", "walk_away_at_confirmation"}
CODES = {
    "code_ok": ["134567890123456789", "287654321098765432", "6226090000000048001", "130012345678901234"],
    "code_confirm_on_phone": ["130112345678901234"],
    "code_balance_too_low": ["130212345678901234"],
    "code_expired": ["130312345678901234"],
    "code_never_confirmed": ["130412345678901234"],
}


def plan_flows(config: ChaosConfig, doctors: list[dict]) -> list[FlowPlan]:
    """Every flow of the run, its patient, visit, identification medium and choices: all from the seed."""
    rng = random.Random(config.seed)
    clinical = [d for d in doctors if not d["department_code"].startswith("07")]
    kinds = [("local_employee", 13), ("local_retiree", 8), ("local_resident", 10), ("same_province", 10),
             ("cross_province_filed", 10), ("cross_province_filed_resident", 4), ("special_disease", 8),
             ("self_pay", 22), ("mixed", 15)]
    plans = []
    for index in range(config.flows):
        kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        mode = {"self_pay": "self_pay", "mixed": "mixed"}.get(kind, "insurance")
        if kind == "mixed":
            kind = rng.choice(["local_employee", "local_resident", "same_province", "cross_province_filed"])
        patient = _patient(rng, index, kind)
        behaviour = rng.choices([b for b, _ in BEHAVIOURS], [w for _, w in BEHAVIOURS])[0]
        if behaviour in WALK_AWAY and index >= config.walk_away_share * config.flows:
            behaviour = "qr"
        magic = None
        roll = rng.random()
        if mode == "insurance" and roll < 0.02:
            magic = "settlement_total_off"  # 2207 answers one fen more than the bill
        elif mode == "insurance" and roll < 0.04:
            magic = "settlement_reply_lost"  # 2207 commits, then answers HTTP 502
        elif roll < 0.05:
            magic = "his_refuses"  # the doctor voided the prescription: HIS refuses every posting
        if magic is not None or mode == "mixed":
            behaviour = "qr"
        visit = _visit(rng, index, patient, rng.choice(clinical), mixed=mode == "mixed", magic=magic)
        medium = _medium(rng, patient, mode)
        auth_code = rng.choice(CODES[behaviour]) if behaviour in CODES else None
        plans.append(FlowPlan(index, patient, visit, medium, mode, behaviour, auth_code, magic))
    return plans


def _patient(rng: random.Random, index: int, kind: str) -> ChaosPatient:
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 60 * 365))
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    patient_id, phone = f"C{index:06d}", f"139{index:08d}"
    if kind == "self_pay":
        return ChaosPatient(kind, patient_id, name, make_id_number("320115", born, index % 1000), phone,
                            f"VC{index:07d}")
    insured_region, id_region, scheme, person_type, filing = KINDS[kind]
    id_number = make_id_number(id_region, born, index % 1000)
    balance = rng.choice(["0.00", "0.00", "35.50", "120.00", "5000.00"])
    insured = {
        "psn_no": f"9{index:019d}", "name": name, "id_number": id_number, "insutype": scheme,
        "psn_type": person_type, "insuplc_admdvs": insured_region, "card_no": f"X{insured_region[:2]}{index:07d}",
        "card_sn": f"{insured_region}D156000005CHAOS{index:012d}", "balance": balance, "filing": filing,
        "ec_qr": f"ECQR-{insured_region}-C{index:06d}",
        "special_diseases": [{"code": "M03900", "name": "糖尿病"}] if kind == "special_disease" else [],
    }
    return ChaosPatient(kind, patient_id, name, id_number, phone, f"VC{index:07d}", insured)


def _item(code: str, quantity: int) -> dict:
    item = CATALOG[code]
    return {"item_code": item.item_code, "name": item.name, "kind": item.kind, "insurance_code": item.insurance_code,
            "self_pay_only": item.self_pay_only, "unit": item.unit, "unit_price": str(item.unit_price),
            "quantity": quantity}


def _visit(rng: random.Random, index: int, patient: ChaosPatient, doctor: dict, *, mixed: bool,
           magic: str | None) -> Visit:
    visit_no = f"MZC{index:07d}" + ("-REFUSE" if magic == "his_refuses" else "")
    base = {"patient_id": patient.patient_id, "visit_no": visit_no, "visit_date": TODAY.isoformat(),
            "department_code": doctor["department_code"], "doctor_code": doctor["code"], "status": "unpaid"}
    orders, medical, self_pay = [], [], []
    for n in range(rng.choice((1, 1, 2, 3))):
        codes = rng.sample(MEDICAL, rng.randint(1, 3))
        order_no = f"CC{index:07d}{n}"
        orders.append({**base, "order_no": order_no, "items": [_item(c, rng.randint(1, 3)) for c in codes]})
        medical.append(order_no)
    if patient.insured is None and rng.random() < 0.3 or mixed:
        codes = rng.sample(SELF_PAY_ONLY, rng.randint(1, 3))
        order_no = f"CC{index:07d}9"
        orders.append({**base, "order_no": order_no, "items": [_item(c, rng.randint(1, 6)) for c in codes]})
        self_pay.append(order_no)
    if magic in ("settlement_total_off", "settlement_reply_lost"):
        # The fen of the bill trigger the platform's magic: whole yuan so far, then .37 or .97.
        total = sum(Decimal(i["unit_price"]) * i["quantity"] for o in orders for i in o["items"])
        fen = Decimal("0.37") if magic == "settlement_total_off" else Decimal("0.97")
        price = (Decimal(1) - total % 1) % 1 + fen + 2
        orders[0]["items"].append({"item_code": "F0099", "name": "病历资料邮寄费", "kind": "non_medical",
                                   "insurance_code": None, "self_pay_only": True, "unit": "次",
                                   "unit_price": str(price), "quantity": 1})
    return Visit(visit_no, orders, medical, self_pay)


def _medium(rng: random.Random, patient: ChaosPatient, mode: str) -> str:
    if patient.insured is None:
        return rng.choice(["id_card", "visit_card"])
    if patient.kind.startswith("cross_province"):
        return "insurance_card"  # filed elsewhere: by card, with its card_sn
    return rng.choices(["insurance_card", "id_card", "e_certificate"], [6, 3, 1])[0]


def load_world(sims: Simulators, plans: list[FlowPlan]) -> None:
    """Give HIS the patients and their unpaid visits, and the insurance platform the insured."""
    sims.add("his", "patients", [p.patient.his_record() for p in plans])
    sims.add("his", "orders", [o for p in plans for o in p.visit.orders])
    sims.add("insurance", "people", [p.patient.insured for p in plans if p.patient.insured])


# ================================================================================================
# the service as a process of its own
# ================================================================================================
class ServiceProcess:
    """The kiosk service under uvicorn with ``workers`` processes (copies behind one port), JSON logs.

    ``kill`` sends SIGKILL to the whole process group — every worker dies mid-request, as in a crash
    of the machine — and ``start`` brings up a fresh group on the same port.
    """

    def __init__(self, env: dict[str, str], log_path: Path, *, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        here = str(Path(__file__).parent)
        self.env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(
            p for p in (here, os.environ.get("PYTHONPATH", "")) if p)}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"\n===== start {self.starts + 1} at {time.strftime('%H:%M:%S')} =====\n")
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "chaos_service:create_app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning",
                 "--no-access-log", "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the service did not answer within {timeout}s; see {self.log_path}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease released, no transaction finished."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()


# ================================================================================================
# kiosks
# ================================================================================================
_ORDER_IN_PATH = re.compile(r"PO[0-9A-F]+")


class HttpStats:
    """Every reply the kiosks got, by endpoint and status, and the transport errors of restarts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.replies: Counter[tuple[str, int]] = Counter()
        self.millis: dict[str, list[float]] = {}
        self.transport_errors = 0
        self.server_errors: list[str] = []

    def reply(self, method: str, path: str, response: httpx.Response) -> None:
        endpoint = f"{method} {_ORDER_IN_PATH.sub('{order}', path.split('?')[0])}"
        with self._lock:
            self.replies[(endpoint, response.status_code)] += 1
            self.millis.setdefault(endpoint, []).append(response.elapsed.total_seconds() * 1000)
            if response.status_code >= 500 and response.status_code != 503:
                self.server_errors.append(f"{endpoint} → {response.status_code} {response.text[:200]}")

    def transport_error(self) -> None:
        with self._lock:
            self.transport_errors += 1


class ChaosKiosk:
    """One enrolled kiosk. A request the dead service never answered is sent again once it is back."""

    def __init__(self, url: str, device_id: str, pem: bytes, stats: HttpStats) -> None:
        self.device_id = device_id
        self.kiosk = Kiosk(url, device_id, pem)
        self.stats = stats

    def call(self, method: str, path: str, payload: dict | None = None, *, resend: bool = True,
             patience: float = 90.0) -> httpx.Response | None:
        """The reply; ``None`` when the service died under a request that must not be sent twice blindly."""
        deadline = time.monotonic() + patience
        while True:
            try:
                response = self.kiosk.request(method, path, payload)
            except httpx.TransportError:
                self.stats.transport_error()
                if time.monotonic() > deadline:
                    raise
                if not resend:
                    self._wait_for_service(deadline)
                    return None
                time.sleep(0.25)
                continue
            self.stats.reply(method, path, response)
            return response

    def _wait_for_service(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                self.kiosk.client.get("/healthz", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.25)

    def close(self) -> None:
        self.kiosk.client.close()


@dataclass
class FlowRecord:
    index: int
    label: str
    behaviour: str
    magic: str | None
    order_nos: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    """The last state the kiosk showed for each order."""
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


class FlowDriver:
    """Plays one patient at one kiosk: identify, see the bills, start, pay (or not), wait, print, leave."""

    def __init__(self, kiosk: ChaosKiosk, sims: Simulators, config: ChaosConfig, rng: random.Random) -> None:
        self.kiosk = kiosk
        self.sims = sims
        self.config = config
        self.rng = rng

    def run(self, plan: FlowPlan) -> FlowRecord:
        record = FlowRecord(plan.index, plan.label, plan.behaviour, plan.magic)
        started = time.monotonic()
        try:
            if not self._identify(plan, record):
                record.notes.append("identification_failed")
                return record
            if plan.mode == "mixed":
                self._pay(plan, record, "self_pay", plan.visit.self_pay_only)
                self._pay(plan, record, "insurance", plan.visit.medical)
            else:
                self._pay(plan, record, plan.mode, None)
        finally:
            self.kiosk.call("POST", "/api/kiosk/session/logout", {})
            record.seconds = time.monotonic() - started
        return record

    # -- identification -------------------------------------------------------------------------
    def _read(self, plan: FlowPlan) -> dict:
        patient, insured = plan.patient, plan.patient.insured
        if plan.medium == "insurance_card":
            return {"medium": "insurance_card", "card_no": insured["card_no"], "card_sn": insured["card_sn"]}
        if plan.medium == "e_certificate":
            return {"medium": "e_certificate", "qrcode": insured["ec_qr"]}
        if plan.medium == "visit_card":
            return {"medium": "visit_card", "visit_card_no": patient.visit_card_no}
        return {"medium": "id_card", "id_number": patient.id_number, "name": patient.name}

    def _identify(self, plan: FlowPlan, record: FlowRecord) -> bool:
        for _ in range(5):
            reply = self.kiosk.call("POST", "/api/device/identify", self._read(plan))
            if reply.status_code == 200 and reply.json().get("outcome") == "identified":
                return True
            record.notes.append(f"identify_{reply.status_code}_{_body(reply).get('outcome', '')}")
            time.sleep(0.2)
        return False

    # -- paying -----------------------------------------------------------------------------------
    def _bills(self, record: FlowRecord) -> dict | None:
        for _ in range(6):
            reply = self.kiosk.call("GET", "/api/kiosk/payments/bills")
            if reply.status_code == 200:
                return reply.json()
            record.notes.append(f"bills_{reply.status_code}")
            time.sleep(0.3)
        return None

    def _start(self, plan: FlowPlan, record: FlowRecord, mode: str, order_nos: list[str] | None) -> dict | None:
        for attempt in range(4):
            bills = self._bills(record)
            if bills is None:
                return None
            visit = next((v for v in bills["visits"] if v["visit_no"] == plan.visit.visit_no), None)
            if visit is None:
                record.notes.append("visit_no_longer_unpaid")
                return None
            unpaid = {i["order_no"] for i in visit["items"]}
            chosen = [n for n in order_nos if n in unpaid] if order_nos else None
            if order_nos and not chosen:
                return None  # nothing of this part left to pay
            if mode == "insurance" and not bills["insurance_available"]:
                # The platform could not confirm the insurance when the card was read: read it again.
                record.notes.append("insurance_unconfirmed")
                if attempt < 2 and self._identify(plan, record):
                    continue
                mode = "self_pay"
            reply = self.kiosk.call("POST", "/api/kiosk/payments",
                                    {"visit_no": plan.visit.visit_no, "mode": mode, "order_nos": chosen},
                                    resend=False)
            if reply is None:
                record.notes.append("start_interrupted_by_restart")
                continue
            if reply.status_code != 200:
                record.notes.append(f"start_{reply.status_code}")
                time.sleep(0.3)
                continue
            order = reply.json()
            record.order_nos.append(order["order_no"])
            if order["state"] == "failed":
                record.failures.append(order["message"])
                if "稍后再试" in order["message"] and attempt < 3:
                    time.sleep(0.3)
                    continue  # the patient tries again, as the screen suggests
            return order
        return None

    def _pay(self, plan: FlowPlan, record: FlowRecord, mode: str, order_nos: list[str] | None) -> None:
        order = self._start(plan, record, mode, order_nos)
        if order is None:
            return
        order_no, behaviour = order["order_no"], plan.behaviour
        if order["state"] != "presettled":
            record.seen.append(self._wait(order_no, order))
            return
        if behaviour == "walk_away_at_confirmation":
            record.seen.append("presettled")
            return
        method = {"method": "payment_code", "auth_code": plan.auth_code} if plan.auth_code else {"method": "qr"}
        order = self._pay_request(order_no, method, record)
        if order is None:
            return
        if order["state"] == "awaiting_payment" and plan.auth_code is None and not order.get("code_url"):
            record.notes.append("no_qr_code_shown")
            self.kiosk.call("POST", f"/api/kiosk/payments/{order_no}/cancel", {})
        elif behaviour == "cancel_at_qr":
            order = self._json(self.kiosk.call("POST", f"/api/kiosk/payments/{order_no}/cancel", {})) or order
        elif behaviour == "walk_away_at_qr":
            record.seen.append(order["state"])
            return
        elif behaviour == "code_never_confirmed":
            for _ in range(3):
                time.sleep(0.3)
                self.kiosk.call("GET", f"/api/kiosk/payments/{order_no}")
            if plan.index % 2 and plan.index < self.config.walk_away_share * self.config.flows:
                record.seen.append("awaiting_payment")
                return  # the patient walks away; the pay window closes it
            self.kiosk.call("POST", f"/api/kiosk/payments/{order_no}/cancel", {})
        elif plan.auth_code is None and order["state"] == "awaiting_payment":
            self._phone_pays(order_no, record, wrong=behaviour == "wrong_amount")
            if behaviour == "pay_then_cancel":
                # The page's poll is on its way as the patient taps 取消: both reach the service at once.
                poll = threading.Thread(target=self.kiosk.call, args=("GET", f"/api/kiosk/payments/{order_no}"))
                poll.start()
                self.kiosk.call("POST", f"/api/kiosk/payments/{order_no}/cancel", {})
                poll.join()
        final = self._wait(order_no, order)
        record.seen.append(final)
        if final in TERMINAL:
            self.kiosk.call("GET", f"/api/kiosk/payments/{order_no}/receipt")
            if behaviour == "qr_and_reprint":
                self.kiosk.call("GET", f"/api/kiosk/payments/{order_no}/receipt?reprint=true")

    def _pay_request(self, order_no: str, method: dict, record: FlowRecord) -> dict | None:
        for _ in range(4):
            reply = self.kiosk.call("POST", f"/api/kiosk/payments/{order_no}/pay", method)
            body = self._json(reply)
            if body is not None and body["state"] != "presettled":
                return body
            record.notes.append(f"pay_{reply.status_code}")
            time.sleep(0.3)
        return None

    def _phone_pays(self, order_no: str, record: FlowRecord, *, wrong: bool) -> None:
        body: dict[str, Any] = {"channel": self.rng.choice(["wechat", "alipay", "unionpay"])}
        if wrong:
            status = self._json(self.kiosk.call("GET", f"/api/kiosk/payments/{order_no}")) or {}
            cash = Decimal((status.get("split") or {}).get("cash", "1.00"))
            body["amount"] = str(cash + Decimal("1.00"))
        reply = self.sims.call("payment", "POST", f"/__sim__/pay/{order_no}P1", json=body)
        if reply.status_code != 200:
            record.notes.append(f"phone_pay_{_body(reply).get('code', reply.status_code)}")

    def _wait(self, order_no: str, order: dict) -> str:
        """Poll as the page does until the order is final or the patient gives up."""
        deadline = time.monotonic() + self.config.poll_seconds
        state = order["state"]
        while state not in TERMINAL and time.monotonic() < deadline:
            time.sleep(self.config.poll_every)
            body = self._json(self.kiosk.call("GET", f"/api/kiosk/payments/{order_no}"))
            if body is not None:
                state = body["state"]
        return state

    @staticmethod
    def _json(reply: httpx.Response | None) -> dict | None:
        if reply is None or reply.status_code != 200:
            return None
        return reply.json()


def _body(reply: httpx.Response) -> dict:
    try:
        body = reply.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
