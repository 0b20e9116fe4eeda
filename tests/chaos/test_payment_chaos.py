"""A thousand payments under random upstream faults and service crashes: no money is lost (DESIGN 5).

The kiosk service runs as its own processes (two uvicorn workers) on PostgreSQL. Two dozen
enrolled kiosks play patients of every kind — local employees, retirees and residents,
same-province and filed cross-province patients (by card, with its card_sn), special-disease
patients, self-pay patients, insured patients paying self-pay-only items first — who pay by QR or
payment code, cancel, walk away, or pay the wrong amount; some bills trip the simulators' magic
amounts (a settlement answering one fen more, a settlement reply lost as HTTP 502, a voided
prescription HIS will not post). Every upstream errs, times out, loses replies after committing
and slows down, at random but seeded. The service is killed with SIGKILL twice while flows are in
flight and started again. Once the flows end the upstreams recover, the service's recovery worker
finishes what it can, and one last recovery runs in this process as it would once every pay window
has closed. Then every order is checked against every side; the counts are printed at the end of
the run and every finding is written to ``problems.txt`` beside the service's log.

Each engine bug an earlier run found is reproduced on its own at the end of this file, so that it
stays fixed without waiting for the dice to find it again.

Run it alone: ``pytest tests/chaos -s`` (``MEDKIOSK_CHAOS_SEED``, ``MEDKIOSK_CHAOS_FLOWS``,
``MEDKIOSK_CHAOS_KIOSKS``, ``MEDKIOSK_CHAOS_WORKERS`` change the run, ``MEDKIOSK_CHAOS_MSGID_START`` starts
every worker's msgid counter at one number (see ``chaos_service``); the seed fixes the patients,
their choices and the fault dice, though which call a die falls on still depends on thread timing).
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from medkiosk.adapters.insurance import InsuranceHttpAdapter
from medkiosk.adapters.insurance.wire import CHINA_TZ, MsgidSequence, new_msgid
from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.serving import start_in_thread
from medkiosk.services.clock import FrozenClock
from medkiosk.settings import Settings, TerminalType
from medkiosk.simulators import registry
from medkiosk.store.migrate import upgrade
from medkiosk.store.scratch import create_database
from medkiosk.store.models import PaymentOrder, PaymentStep

from chaos_ledger import TERMINAL, Ledger
from chaos_rig import (
    ChaosConfig,
    ChaosKiosk,
    FlowDriver,
    FlowRecord,
    HttpStats,
    ServiceProcess,
    Simulators,
    fault_plan,
    load_world,
    plan_flows,
)
from kiosk_client import Kiosk

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]


@dataclass
class Restart:
    after_flows: int
    unfinished: Counter
    """Orders not in a final state when the service was killed, by state."""
    down_seconds: float


@dataclass
class ChaosRun:
    config: ChaosConfig
    records: list[FlowRecord]
    restarts: list[Restart]
    faults: dict[str, list[dict]]
    http: HttpStats
    final_recovery: list[dict]
    ledger: Ledger
    seconds: dict[str, float] = field(default_factory=dict)
    log: Path | None = None
    left_after_flows: Counter = field(default_factory=Counter)
    problems_file: Path | None = None
    problem_counts: dict[str, int] = field(default_factory=dict)

    def write_problems(self, path: Path) -> None:
        """Every check's findings in full, whatever the tests' markers: what to read when one fails."""
        ledger = self.ledger
        checks = {"money": ledger.money_disagreements(), "states": ledger.states_that_contradict_the_upstreams(),
                  "twice": ledger.double_charges(), "journal": ledger.journal_disagreements(),
                  "unfinished": ledger.unfinished(), "open insurance visits": ledger.open_insurance_visits(),
                  "invoices": ledger.invoice_problems(), "server errors": self.http.server_errors}
        with open(path, "w", encoding="utf-8") as out:
            out.writelines(f"== {name}: {len(problems)}\n" + "".join(f"{p}\n" for p in problems)
                           for name, problems in checks.items())
        self.problems_file = path
        self.problem_counts = {name: len(problems) for name, problems in checks.items()}

    def summary(self) -> str:
        c = self.config
        lines = [f"seed {c.seed}: {len(self.records)} flows on {c.kiosks} kiosks, {c.workers} service workers, "
                 f"{len(self.ledger.orders)} orders; service log {self.log}"]
        lines.append("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())
                     + f"; unfinished when the flows ended: {dict(self.left_after_flows)}")
        if self.log is not None and self.log.exists():
            text = self.log.read_text(encoding="utf-8", errors="replace")
            lines.append(f"service log: msgid conflicts {text.count('payment.msgid_conflict')}, "
                         f"unhandled errors {text.count('unhandled_error')}, tracebacks {text.count('Traceback')}")
        lines.append(f"findings ({self.problems_file}): "
                     + ", ".join(f"{k} {v}" for k, v in self.problem_counts.items()))
        for name, counts in self.ledger.counts().items():
            lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
        lines.append("money: " + ", ".join(f"{k} ¥{v}" for k, v in self.ledger.money().items()))
        for name, faults in self.faults.items():
            applied = Counter()
            for f in faults:
                applied[f"{f['kind']}:{f['operation']}"] += f["applied"]
            lines.append(f"faults at {name} ({sum(applied.values())}): "
                         + ", ".join(f"{k} {v}" for k, v in applied.most_common() if v))
        lines.append("restarts: " + "; ".join(
            f"SIGKILL after {r.after_flows} flows with {sum(r.unfinished.values())} orders unfinished "
            f"({dict(r.unfinished)}), down {r.down_seconds:.1f}s" for r in self.restarts))
        lines.append(f"final in-process recovery (pay windows closed) rounds: {self.final_recovery}")
        kinds = Counter(r.label for r in self.records)
        lines.append("flows by kind: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
        lines.append("flows by behaviour: " + ", ".join(
            f"{k} {v}" for k, v in Counter(r.behaviour for r in self.records).most_common()))
        lines.append("bills with a magic amount or visit: " + ", ".join(
            f"{k} {v}" for k, v in Counter(r.magic for r in self.records if r.magic).most_common()))
        lines.append("last state the kiosk showed: " + ", ".join(
            f"{k} {v}" for k, v in Counter(s for r in self.records for s in r.seen).most_common()))
        notes = Counter(n.split(":")[0] for r in self.records for n in r.notes)
        lines.append("flow notes: " + ", ".join(f"{k} {v}" for k, v in notes.most_common()))
        failures = Counter(m for r in self.records for m in r.failures)
        lines.append("refusals shown at start: " + ", ".join(f"{k[:40]} ×{v}" for k, v in failures.most_common(8)))
        replies = Counter()
        for (endpoint, status), n in self.http.replies.items():
            replies[status] += n
        lines.append(f"kiosk requests: {sum(replies.values())} by status {dict(sorted(replies.items()))}, "
                     f"transport errors (restarts) {self.http.transport_errors}, "
                     f"server errors {len(self.http.server_errors)}")
        for endpoint, millis in sorted(self.http.millis.items(), key=lambda kv: -len(kv[1]))[:8]:
            millis = sorted(millis)
            lines.append(f"  {endpoint}: {len(millis)} × p50 {millis[len(millis) // 2]:.0f} ms, "
                         f"p95 {millis[int(len(millis) * 0.95)]:.0f} ms")
        slow = sorted(r.seconds for r in self.records)
        if slow:
            lines.append(f"flow seconds: p50 {slow[len(slow) // 2]:.2f}, p95 {slow[int(len(slow) * 0.95)]:.2f}, "
                         f"max {slow[-1]:.2f}")
        return "\n".join(lines)


def _unfinished(container) -> Counter:
    with container.uow() as uow:
        rows = uow.session.execute(select(PaymentOrder.state, func.count()).where(
            PaymentOrder.state.not_in(TERMINAL)).group_by(PaymentOrder.state)).all()
    return Counter({state: n for state, n in rows})


def _run_flows(config: ChaosConfig, plans, kiosks: list[ChaosKiosk], sims: Simulators,
               service: ServiceProcess, container) -> tuple[list[FlowRecord], list[Restart]]:
    queue = deque(plans)
    lock = threading.Lock()
    records: list[FlowRecord] = []

    def work(kiosk: ChaosKiosk, seed: int) -> None:
        driver = FlowDriver(kiosk, sims, config, random.Random(seed))
        while True:
            with lock:
                if not queue:
                    return
                plan = queue.popleft()
            try:
                record = driver.run(plan)
            except Exception:  # the rig's own failure: recorded, and a test says so
                record = FlowRecord(plan.index, plan.label, plan.behaviour, plan.magic,
                                    notes=[f"rig_error: {traceback.format_exc()}"])
            with lock:
                records.append(record)

    threads = [threading.Thread(target=work, args=(kiosk, config.seed + n), name=kiosk.device_id, daemon=True)
               for n, kiosk in enumerate(kiosks)]
    for thread in threads:
        thread.start()
    restarts = []
    for share in config.restarts_at:
        while len(records) < share * len(plans) and any(t.is_alive() for t in threads):
            time.sleep(0.05)
        unfinished = _unfinished(container)
        after = len(records)
        down = time.monotonic()
        service.kill()
        service.start()
        restarts.append(Restart(after, unfinished, time.monotonic() - down))
    for thread in threads:
        thread.join()
    return sorted(records, key=lambda r: r.index), restarts


@pytest.fixture(scope="module")
def chaos(postgres_server_url, tmp_path_factory, chaos_summaries) -> ChaosRun:
    config = ChaosConfig()
    clock = time.monotonic()
    seconds: dict[str, float] = {}
    database_url, drop = create_database(postgres_server_url, "medkiosk_chaos")
    sims = service = container = None
    kiosks: list[ChaosKiosk] = []
    try:
        upgrade(database_url)
        logs = tmp_path_factory.mktemp("chaos")
        sims = Simulators(config.seed, logs)
        doctors = sims.call("his", "GET", "/his/v1/doctors").json()["doctors"]
        plans = plan_flows(config, doctors)
        load_world(sims, plans)
        settings = Settings(database_url=database_url, recovery_seconds=0,
                            upstream_timeout_seconds=config.upstream_timeout,
                            pay_window_seconds=config.pay_window_seconds,
                            **{f"{name}_url": url for name, url in sims.urls.items()})
        container = build_container(settings)
        log = logs / "service.log"
        service = ServiceProcess({
            "MEDKIOSK_DATABASE_URL": database_url, "MEDKIOSK_RECOVERY_SECONDS": str(config.recovery_seconds),
            "MEDKIOSK_UPSTREAM_TIMEOUT_SECONDS": str(config.upstream_timeout),
            "MEDKIOSK_PAY_WINDOW_SECONDS": str(config.pay_window_seconds),
            "MEDKIOSK_VAR_DIR": str(log.parent),
            **{f"MEDKIOSK_{name.upper()}_URL": url for name, url in sims.urls.items()}}, log, workers=config.workers)
        service.start()
        stats = HttpStats()
        for n in range(config.kiosks):
            device_id = f"CHAOS{n + 1:02d}"
            pem = container.devices.enroll(device_id, TerminalType.OUTPATIENT, location=f"门诊楼 {n % 4 + 1}F")
            kiosks.append(ChaosKiosk(service.url, device_id, pem, stats))
        seconds["setup"] = time.monotonic() - clock

        clock = time.monotonic()
        sims.inject(fault_plan(config.hang_seconds))
        records, restarts = _run_flows(config, plans, kiosks, sims, service, container)
        faults = sims.faults()
        sims.clear_faults()  # the upstreams recover
        seconds["flows"] = time.monotonic() - clock

        # The service's recovery worker finishes what it can: everything but the orders whose pay
        # window is still open (a patient may yet pay them) — and what it has no step for.
        clock = time.monotonic()
        left = _unfinished(container)
        deadline = time.monotonic() + config.settle_seconds
        while time.monotonic() < deadline and set(_unfinished(container)) - {"presettled", "awaiting_payment"}:
            time.sleep(1)
        seconds["service recovery"] = time.monotonic() - clock
        service.stop()
        # Then recovery as it runs once every pay window has closed: this engine, its clock moved on.
        clock = time.monotonic()
        later = build_container(settings, clock=FrozenClock(
            datetime.now(timezone.utc) + timedelta(seconds=config.pay_window_seconds + 60)))
        final_recovery = []
        try:
            for _ in range(5):
                counts = later.payments.recover()
                final_recovery.append(counts)
                if not set(counts) - {"completed", "refunded", "closed", "failed", "presettled"}:
                    break
        finally:
            later.close()
        seconds["final recovery"] = time.monotonic() - clock
        run = ChaosRun(config, records, restarts, faults, stats, final_recovery, Ledger.read(container, sims),
                       seconds, log, left)
        run.write_problems(logs / "problems.txt")
        summary = run.summary()
        print("\n" + summary)
        chaos_summaries.append(summary)
        yield run
    finally:
        for kiosk in kiosks:
            kiosk.close()
        if service is not None:
            service.stop()
        if container is not None:
            container.close()
        if sims is not None:
            sims.stop()
        drop()


def _report(problems: list[str], limit: int = 12) -> str:
    return f"{len(problems)} found:\n" + "\n".join(problems[:limit])


def test_the_run_really_was_chaotic(chaos):
    rig_errors = [n for r in chaos.records for n in r.notes if n.startswith("rig_error")]
    assert not rig_errors, rig_errors[:3]
    assert len(chaos.records) >= chaos.config.flows
    assert len(chaos.restarts) >= 1 and all(sum(r.unfinished.values()) for r in chaos.restarts)
    applied = {name: sum(f["applied"] for f in faults) for name, faults in chaos.faults.items()}
    assert all(n > 10 for n in applied.values()), applied
    counts = chaos.ledger.counts()
    assert counts["orders by state"]["completed"] > chaos.config.flows // 2, counts["orders by state"]
    assert counts["orders by state"]["refunded"] and counts["orders by state"]["closed"]
    assert counts["insurance settlements"]["reversed"] and counts["insurance settlements"]["cancelled"]


def test_every_order_ends_with_the_channel_his_and_insurance_agreeing_on_the_cash(chaos):
    problems = chaos.ledger.money_disagreements() + chaos.ledger.states_that_contradict_the_upstreams()
    assert not problems, _report(problems)


def test_nothing_is_charged_posted_settled_or_invoiced_twice(chaos):
    problems = chaos.ledger.double_charges()
    assert not problems, _report(problems)


def test_our_journal_agrees_with_the_channel_on_what_was_paid_and_refunded(chaos):
    problems = chaos.ledger.journal_disagreements()
    assert not problems, _report(problems)


def test_no_order_is_left_unfinished_after_recovery(chaos):
    problems = chaos.ledger.unfinished()
    assert not problems, _report(problems)


def test_no_insurance_visit_stays_registered_for_an_order_that_did_not_complete(chaos):
    problems = chaos.ledger.open_insurance_visits()
    assert not problems, _report(problems)


def test_every_completed_payment_has_its_one_e_invoice(chaos):
    problems = chaos.ledger.invoice_problems()
    assert not problems, _report(problems)


def test_no_kiosk_request_failed_with_a_server_error(chaos):
    assert not chaos.http.server_errors, _report(chaos.http.server_errors)


# ================================================================================================
# What the chaos found, one bug at a time (each now fixed): each a few seconds, the service in this process.
# ================================================================================================
@pytest.fixture(scope="module")
def bench(postgres_server_url):
    database_url, drop = create_database(postgres_server_url, "medkiosk_chaos")
    upgrade(database_url)
    servers = {name: start_in_thread(registry.create(name), name=f"{name}-sim") for name in registry.NAMES}
    settings = Settings(database_url=database_url, recovery_seconds=0, upstream_timeout_seconds=1,
                        **{f"{name}_url": server.url for name, server in servers.items()})
    container = build_container(settings)
    service = start_in_thread(create_app(container=container), name="service")
    bench = Bench(container, Kiosk(service.url, "K001", container.devices.enroll("K001", TerminalType.OUTPATIENT)),
                  {name: server.url for name, server in servers.items()})
    yield bench
    service.stop()
    container.close()
    for server in servers.values():
        server.stop()
    drop()


class Bench:
    def __init__(self, container, kiosk: Kiosk, sims: dict[str, str]) -> None:
        self.container = container
        self.kiosk = kiosk
        self.sims = sims

    def reset(self) -> None:
        for url in self.sims.values():
            assert httpx.post(url + "/__sim__/reset").status_code == 200

    def fault(self, name: str, **spec) -> None:
        assert httpx.post(self.sims[name] + "/__sim__/faults", json=spec).status_code == 200

    def state(self, name: str, collection: str) -> list[dict]:
        return httpx.get(f"{self.sims[name]}/__sim__/state/{collection}").json()

    def start(self, persona: str, mode: str) -> tuple[dict, dict]:
        if mode == "insurance":
            self.kiosk.insert_insurance_card(persona)
        else:
            self.kiosk.place_id_card(persona)
        visit = self.kiosk.get("/api/kiosk/payments/bills")["visits"][0]
        return visit, self.kiosk.post("/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": mode})

    def pay_by_phone(self, order: dict) -> dict:
        waiting = self.kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
        assert waiting["state"] == "awaiting_payment" and waiting["code_url"], waiting
        reply = httpx.post(f"{self.sims['payment']}/__sim__/pay/{order['order_no']}P1", json={"channel": "wechat"})
        assert reply.status_code == 200, reply.text
        return self.kiosk.get(f"/api/kiosk/payments/{order['order_no']}")

    def row(self, order_no: str) -> PaymentOrder:
        with self.container.uow() as uow:
            return uow.session.get(PaymentOrder, order_no)

    def later(self, **delta) -> object:
        """This service's engine as a recovery worker running ``delta`` from now sees it."""
        return build_container(self.container.settings, clock=FrozenClock(datetime.now(timezone.utc)
                                                                          + timedelta(**delta)))


@pytest.fixture
def scene(bench):
    bench.reset()
    return bench


def test_a_posting_refused_on_retry_after_its_reply_was_lost_is_not_refunded_while_his_keeps_it(scene):
    _, order = scene.start("self_pay", "self_pay")
    scene.fault("his", operation="payments.post", kind="lost_reply", hang_seconds=2, count=1)
    assert scene.pay_by_phone(order)["state"] == "posting"  # HIS posted; its reply never came
    scene.fault("his", operation="payments.post", kind="error", code="REFUSED", message="HIS 日结中，暂停收费", count=1)
    scene.container.payments.recover()
    row = scene.row(order["order_no"])
    posted = [p for p in scene.state("his", "payments")
              if p["idempotency_key"] == f"{order['order_no']}:post" and p["status"] == "posted"]
    assert (row.paid_amount - row.refunded_amount) == sum(Decimal(p["cash"]) for p in posted), (
        f"{row.state}: the patient got {row.refunded_amount} back of {row.paid_amount}, HIS keeps {posted}")


def test_a_2208_refusal_whose_message_mentions_already_is_not_taken_for_a_cancelled_settlement(scene):
    _, order = scene.start("local_resident", "insurance")
    scene.fault("his", operation="payments.post", kind="error", code="REFUSED", message="该处方已被医生作废", count=1)
    scene.fault("insurance", operation="2208", kind="error", message="医保结算服务已暂停，请稍后再试", count=1)
    scene.pay_by_phone(order)
    scene.container.payments.recover()
    row = scene.row(order["order_no"])
    valid = [s for s in scene.state("insurance", "settlements")
             if s["mdtrt_id"] == row.mdtrt_id and s["status"] == "valid"]
    assert not (row.state == "refunded" and valid), (
        f"refunded {row.refunded_amount} while settlement {valid[0]['setl_id']} stays valid "
        f"(fund {valid[0]['fund_pay_sumamt']}, cash {valid[0]['psn_cash_pay']})")


def test_an_order_abandoned_at_the_confirmation_screen_is_closed_and_its_insurance_visit_withdrawn(scene):
    _, order = scene.start("local_resident", "insurance")
    assert order["state"] == "presettled"
    scene.kiosk.post("/api/kiosk/session/logout")  # the patient walks away without tapping 支付
    later = scene.later(days=1)
    try:
        later.payments.recover()
    finally:
        later.close()
    row = scene.row(order["order_no"])
    visit = [v for v in scene.state("insurance", "registrations") if v["mdtrt_id"] == row.mdtrt_id]
    assert row.state == "closed" and visit[0]["status"] == "cancelled", (row.state, visit[0]["status"])


def test_an_insured_patient_refunded_after_a_refused_settlement_can_pay_the_visit_with_insurance_again(scene):
    visit, order = scene.start("local_resident", "insurance")
    scene.fault("insurance", operation="2207", kind="error", message="医保中心系统繁忙，请稍后再试", count=1)
    assert scene.pay_by_phone(order)["state"] == "refunded"
    again = scene.kiosk.post("/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": "insurance"})
    assert again["state"] == "presettled", again["message"]


def test_a_lost_2201_reply_does_not_stop_the_patient_paying_the_visit_with_insurance(scene):
    scene.fault("insurance", operation="2201", kind="lost_reply", hang_seconds=2, count=1)
    visit, order = scene.start("local_resident", "insurance")
    assert order["state"] == "failed" and "稍后再试" in order["message"]
    scene.container.payments.recover()
    again = scene.kiosk.post("/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": "insurance"})
    assert again["state"] == "presettled", again["message"]


def test_an_e_invoice_the_platform_could_not_issue_at_completion_is_issued_by_recovery(scene):
    _, order = scene.start("self_pay", "self_pay")
    scene.fault("einvoice", operation="einvoice.issue", kind="error", message="票据平台维护中", count=1)
    assert scene.pay_by_phone(order)["state"] == "completed"
    scene.container.payments.recover()
    row = scene.row(order["order_no"])
    assert row.invoice_state == "issued", row.invoice_state


def test_the_page_polling_while_the_patient_taps_cancel_gets_no_server_error(scene):
    _, order = scene.start("self_pay", "self_pay")
    scene.kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    assert httpx.post(f"{scene.sims['payment']}/__sim__/pay/{order['order_no']}P1").status_code == 200
    scene.fault("payment", operation="order.query", kind="latency", delay_ms=600, count=2)
    replies = {}
    poll = threading.Thread(target=lambda: replies.setdefault(
        "poll", scene.kiosk.request("GET", f"/api/kiosk/payments/{order['order_no']}")))
    poll.start()
    time.sleep(0.2)
    replies["cancel"] = scene.kiosk.request("POST", f"/api/kiosk/payments/{order['order_no']}/cancel", {})
    poll.join()
    assert {k: r.status_code for k, r in replies.items()} == {"poll": 200, "cancel": 200}, \
        {k: r.text[:120] for k, r in replies.items()}


def test_msgids_another_service_process_took_this_second_are_jumped_over_not_stepped_through(scene):
    # Two service processes' msgid counters ran through the same numbers in the same seconds: each
    # conflict stepped on to the next number, which the other had just taken too (13 in a row for
    # one order in a run; when 5 draws were allowed, a resettle ended in a 500).
    second = datetime.now(CHINA_TZ).replace(microsecond=0)
    start = 4200
    _, other = scene.start("self_pay", "self_pay")  # the other process's journal: 60 msgids this second
    with scene.container.uow() as uow:
        uow.session.add_all(PaymentStep(order_no=other["order_no"], step="2204", key=new_msgid(
            scene.container.settings.hospital_code, second, start + n), status="succeeded", detail={},
            started_at=datetime.now(timezone.utc)) for n in range(60))
        uow.commit()
    settings = scene.container.settings
    assert not start <= random.Random(1).randrange(10_000) < start + 64  # where the jump lands
    twin = build_container(settings, insurance=InsuranceHttpAdapter(
        settings.insurance_url, hospital_code=settings.hospital_code, hospital_name=settings.hospital_name,
        hospital_admdvs=settings.hospital_admdvs, device_no="medkiosk-service", timeout=1,
        clock=lambda: second, msgid_sequence=MsgidSequence(start, rng=random.Random(1))))
    service = start_in_thread(create_app(container=twin), name="twin-service")
    try:
        kiosk = Kiosk(service.url, "K002", twin.devices.enroll("K002", TerminalType.OUTPATIENT))
        kiosk.insert_insurance_card("local_employee")
        visit = kiosk.get("/api/kiosk/payments/bills")["visits"][0]
        reply = kiosk.request("POST", "/api/kiosk/payments", {"visit_no": visit["visit_no"], "mode": "insurance"})
        assert reply.status_code == 200, reply.text[:300]
        assert reply.json()["state"] in ("presettled", "completed"), reply.json()["message"]
        with twin.uow() as uow:
            sent = list(uow.session.scalars(select(PaymentStep.key).where(
                PaymentStep.order_no == reply.json()["order_no"], PaymentStep.step.in_(["2201", "2204", "2206"]))))
        assert len(sent) == 3 and not {int(m[-4:]) for m in sent} & set(range(start, start + 60)), sent
    finally:
        service.stop()
        twin.close()
