"""Payment throughput: 300 kiosks paying bills at once against zero-latency simulators (DESIGN 11).

The bar: ≥ 50 complete flows/s, p99 request latency ≤ 100 ms, no errors — on PostgreSQL, 2 cores.

Starts the four simulators (each its own process, no latency), the kiosk service under uvicorn with
``--workers`` processes on a fresh PostgreSQL database, enrols ``--kiosks`` devices and gives each
a queue of patients, each with today's one visit to pay (one in five with two). Each kiosk is an
asyncio task with its own signed httpx client playing patients one after another: identify → bills → start → pay by QR (or payment code)
→ the phone pays → poll until completed → logout. Insured patients (local, same-province,
cross-province by card) pay with insurance, the others self-pay. ``--rate`` paces the kiosks to
that many flows a second in all (0: each starts its next patient at once). Prints complete flows/s,
request latency p50/p95/p99 by endpoint, errors, and the CPU each process used per flow. The kiosks
run in ``--kiosk-processes`` processes of their own (default 2), so that the load generator's event
loop is not what delays the requests it times; nothing of the benchmark shares the service's
processes. On a machine shared with the simulators, PostgreSQL and the kiosks, the service's own CPU
per flow says what it would do with the cores to itself; that figure is printed too.

Usage: python benchmarks/payment_throughput.py [--kiosks 300] [--seconds 60] [--rate 60] [--workers 2]
       [--kiosk-processes 2] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] [--poll-ms 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import resource
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import httpx

from medkiosk.domain.identity import make_id_number
from medkiosk.security import signing
from medkiosk.simulators.his.data import CATALOG

from rig import cpu_seconds, postgres_cpu_seconds, reference_loop_ms, start_service, start_simulators, stop

# (insured region, ID-number region, scheme, person type, filing) of the insured kiosk patients.
INSURED = [("320100", "320102", "310", "11", False), ("320100", "320104", "390", "1501", False),
           ("320200", "320211", "310", "11", False), ("340100", "340104", "310", "12", True)]
ITEMS = ["Y0001", "Y0002", "Y0004", "J0001", "J0004", "E0003", "T0002", "C0002", "F0001"]
TERMINAL = {"completed", "refunded", "closed", "failed"}


def make_world(kiosks: int, patients_each: int, doctors: list[dict], seed: int = 7) -> tuple[list[list[dict]], dict]:
    """Every kiosk's queue of patients: each with today's one visit to pay (one in five with two).

    As at a real kiosk, a patient comes, pays one visit and leaves; the next is another patient,
    so the bills read, sent and parsed are a real patient's size, not a ledger of many visits.
    """
    rng = random.Random(seed)
    clinical = [d for d in doctors if not d["department_code"].startswith("07")]
    queues, orders, people = [], [], []
    today = date.today()
    for k in range(kiosks):
        queue = []
        for j in range(patients_each):
            n = k * patients_each + j
            born = date(1950, 1, 1) + timedelta(days=n % 18000)  # with n // 18000: unique ID numbers
            insured = k % 10 < 6
            pid = f"B{k:04d}{j:03d}"
            patient = {"patient_id": pid, "name": "测试患者", "phone": f"138{n:08d}", "visit_card_no": f"V{pid}"}
            if insured:
                region, id_region, scheme, person_type, filing = INSURED[k % len(INSURED)]
                patient["id_number"] = make_id_number(id_region, born, n // 18000)
                card = {"card_no": f"B{region[:2]}{n:07d}", "card_sn": f"{region}D156BENCH{n:012d}"}
                patient["insurance_card_no"] = card["card_no"]
                people.append({"psn_no": f"8{n:019d}", "name": "测试患者", "id_number": patient["id_number"],
                               "insutype": scheme, "psn_type": person_type, "insuplc_admdvs": region, **card,
                               "balance": "5000.00" if k % 10 == 5 else "0.00", "filing": filing})
                patient["_card"] = card
            else:
                patient["id_number"] = make_id_number("320115", born, n // 18000)
            queue.append(patient)
            for v in range(1 if rng.random() < 0.8 else 2):
                doctor = rng.choice(clinical)
                items = []
                for code in rng.sample(ITEMS, rng.randint(1, 3)):
                    item = CATALOG[code]
                    items.append({"item_code": code, "name": item.name, "kind": item.kind,
                                  "insurance_code": item.insurance_code, "self_pay_only": item.self_pay_only,
                                  "unit": item.unit, "unit_price": str(item.unit_price),
                                  "quantity": rng.randint(1, 2)})
                orders.append({"order_no": f"C{pid}{v}", "patient_id": pid, "visit_no": f"MZ{pid}{v}",
                               "visit_date": today.isoformat(), "department_code": doctor["department_code"],
                               "doctor_code": doctor["code"], "status": "unpaid", "items": items})
        queues.append(queue)
    return queues, {"orders": orders, "people": people}


# -- one kiosk ----------------------------------------------------------------------------------
class Stats:
    def __init__(self) -> None:
        self.millis: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.examples: list[str] = []
        self.completed: list[float] = []  # when each complete flow ended
        self.flow_seconds: list[float] = []
        self.outcomes: Counter[str] = Counter()
        self.measuring = False

    def error(self, what: str, detail: str = "") -> None:
        if self.measuring:
            self.errors[what] += 1
            if len(self.examples) < 10:
                self.examples.append(f"{what}: {detail[:200]}")


class Kiosk:
    def __init__(self, service: str, device_id: str, pem: bytes, patients: list[dict], payment_sim: str,
                 stats: Stats, poll: float) -> None:
        self.signer = signing.DeviceSigner(device_id, signing.private_key_from_pem(pem))
        self.client = httpx.AsyncClient(base_url=service, timeout=30)
        self.queue = patients  # one patient after another; an exhausted queue starts over
        self.served = 0
        self.payment_sim = payment_sim
        self.stats = stats
        self.poll = poll
        self.rng = random.Random(device_id)

    async def call(self, method: str, path: str, payload: dict | None = None, *, endpoint: str) -> dict | None:
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = self.signer.headers(method, path, body)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            reply = await self.client.request(method, path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self.stats.error(f"{endpoint} {type(exc).__name__}", str(exc))
            return None
        if self.stats.measuring:
            self.stats.millis[endpoint].append((time.perf_counter() - started) * 1000)
        if reply.status_code != 200:
            self.stats.error(f"{endpoint} {reply.status_code}", reply.text)
            return None
        return reply.json()

    def read(self) -> dict:
        p = self.queue[self.served % len(self.queue)]
        self.served += 1
        if "_card" in p:
            return {"medium": "insurance_card", **p["_card"]}
        if self.rng.random() < 0.5:
            return {"medium": "visit_card", "visit_card_no": p["visit_card_no"]}
        return {"medium": "id_card", "id_number": p["id_number"], "name": p["name"]}

    async def flow(self) -> str:
        started = time.perf_counter()
        identified = await self.call("POST", "/api/device/identify", self.read(), endpoint="POST identify")
        if not identified or identified.get("outcome") != "identified":
            return "not identified"
        try:
            bills = await self.call("GET", "/api/kiosk/payments/bills", endpoint="GET bills")
            if not bills or not bills["visits"]:
                return "no bills"
            mode = "insurance" if bills["insurance_available"] else "self_pay"
            order = await self.call("POST", "/api/kiosk/payments",
                                    {"visit_no": bills["visits"][-1]["visit_no"], "mode": mode},
                                    endpoint="POST payments")
            if not order:
                return "not started"
            path = f"/api/kiosk/payments/{order['order_no']}"
            if order["state"] == "presettled":
                code = self.rng.random() < 0.15
                method = {"method": "payment_code", "auth_code": "134567890123456789"} if code else {"method": "qr"}
                order = await self.call("POST", f"{path}/pay", method, endpoint="POST pay")
                if not order:
                    return "not paid"
                if not code:
                    try:
                        await self.client.post(f"{self.payment_sim}/__sim__/pay/{order['order_no']}P1",
                                               json={"channel": "wechat"})
                    except httpx.HTTPError as exc:
                        self.stats.error(f"phone pays {type(exc).__name__}", str(exc))
            deadline = time.monotonic() + 15
            while order["state"] not in TERMINAL and time.monotonic() < deadline:
                await asyncio.sleep(self.poll)
                order = await self.call("GET", path, endpoint="GET payment") or order
            if order["state"] != "completed":
                self.stats.error(f"flow ended {order['state']}", order.get("message", ""))
                return order["state"]
            if self.stats.measuring:
                self.stats.completed.append(time.monotonic())
                self.stats.flow_seconds.append(time.perf_counter() - started)
            return "completed"
        finally:
            await self.call("POST", "/api/kiosk/session/logout", {}, endpoint="POST logout")


async def run_load(kiosks: list[tuple[int, Kiosk]], total: int, stats: Stats, *, start: float, warmup: float,
                   seconds: float, rate: float) -> float:
    """Every kiosk plays patients until the time is up; returns the measured window's length.

    ``kiosks`` are (index among all ``total`` kiosks, kiosk): the pacing staggers kiosks by their
    index, so the kiosks of several processes together start ``rate`` flows a second.
    """
    measure_from, end = start + warmup, start + warmup + seconds
    interval = total / rate if rate > 0 else 0.0

    async def loop(n: int, kiosk: Kiosk) -> None:
        next_start = start + (interval * n / total if interval else 0)
        while True:
            now = time.monotonic()
            if next_start > now:
                await asyncio.sleep(next_start - now)
            if time.monotonic() >= end:
                return
            stats.measuring = time.monotonic() >= measure_from
            stats.outcomes[await kiosk.flow()] += 1
            next_start = max(next_start + interval, time.monotonic()) if interval else time.monotonic()

    await asyncio.gather(*(loop(n, k) for n, k in kiosks))
    return end - measure_from


def kiosk_process(channel, service: str, payment_sim: str, shard: list[tuple[int, str, bytes, dict]], total: int,
                  poll: float, start: float, warmup: float, seconds: float, rate: float) -> None:
    """One load-generating process: its share of the kiosks; sends back its Stats and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    stats = Stats()
    kiosks = [(n, Kiosk(service, device_id, pem, patient, payment_sim, stats, poll))
              for n, device_id, pem, patient in shard]
    measured = asyncio.run(run_load(kiosks, total, stats, start=start, warmup=warmup, seconds=seconds, rate=rate))
    after = resource.getrusage(resource.RUSAGE_SELF)
    stats_out = {k: v for k, v in vars(stats).items() if k != "measuring"}
    channel.send((measured, stats_out, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime))
    channel.close()


def run_kiosks(args, service: str, payment_sim: str, pems: list[bytes], patients: list[dict]) -> tuple[float, Stats, float]:
    """The kiosks in ``--kiosk-processes`` processes started together; their Stats merged, CPU added up."""
    processes = max(1, args.kiosk_processes)
    context = multiprocessing.get_context("fork")
    start = time.monotonic() + 1.0 + 0.2 * processes  # CLOCK_MONOTONIC is one clock for every process
    children = []
    for p in range(processes):
        shard = [(k, f"BENCH{k:03d}", pems[k], patients[k]) for k in range(p, args.kiosks, processes)]
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=kiosk_process, args=(
            send, service, payment_sim, shard, args.kiosks, args.poll_ms / 1000, start, args.warmup, args.seconds,
            args.rate), daemon=True)
        child.start()
        send.close()
        children.append((child, receive))
    stats, measured, cpu = Stats(), 0.0, 0.0
    for child, receive in children:
        part_measured, part, part_cpu = receive.recv()
        child.join()
        measured, cpu = max(measured, part_measured), cpu + part_cpu
        for endpoint, values in part["millis"].items():
            stats.millis[endpoint] += values
        stats.errors.update(part["errors"])
        stats.examples += part["examples"]
        stats.completed += part["completed"]
        stats.flow_seconds += part["flow_seconds"]
        stats.outcomes.update(part["outcomes"])
    return measured, stats, cpu


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kiosks", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--rate", type=float, default=60,
                        help="flows/s the kiosks aim at in all; 0 = as fast as they can")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes of the service")
    parser.add_argument("--kiosk-processes", type=int, default=2,
                        help="processes the kiosks are spread over (the load generator's own CPU)")
    parser.add_argument("--poll-ms", type=int, default=2000,
                        help="how often a kiosk asks whether the payment is done (the page: every 2 s)")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "MEDKIOSK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--log-level", default="INFO", help="the service's log level (production: INFO)")
    args = parser.parse_args()

    from medkiosk.bootstrap import build_container
    from medkiosk.logging import configure_logging
    from medkiosk.settings import Settings, TerminalType

    configure_logging("WARNING")  # not a line per enrolled kiosk
    from sqlalchemy.engine import make_url

    from medkiosk.store.migrate import upgrade
    from medkiosk.store.scratch import create_database, server_statement

    tmp = Path(tempfile.mkdtemp(prefix="medkiosk-throughput-"))
    database_url, drop = create_database(args.postgres_url, "medkiosk_bench")
    name = make_url(database_url).database
    processes: dict[str, subprocess.Popen] = {}
    try:
        upgrade(database_url)
        urls = start_simulators(tmp, processes)
        doctors = httpx.get(urls["his"] + "/his/v1/doctors").json()["doctors"]
        expected = (args.rate or 80) * (args.seconds + args.warmup) * 1.5
        patients_each = max(4, math.ceil(expected / args.kiosks))
        patients, data = make_world(args.kiosks, patients_each, doctors)
        for sim, collection, records in (("his", "patients", [{k: v for k, v in p.items() if k != "_card"}
                                                                for queue in patients for p in queue]),
                                         ("his", "orders", data["orders"]), ("insurance", "people", data["people"])):
            reply = httpx.post(f"{urls[sim]}/__sim__/data/{collection}", json=records, timeout=120)
            assert reply.status_code == 200, reply.text[:300]

        settings = Settings(database_url=database_url, **{f"{sim}_url": url for sim, url in urls.items()})
        container = build_container(settings)
        pems = [container.devices.enroll(f"BENCH{k:03d}", TerminalType.OUTPATIENT) for k in range(args.kiosks)]
        container.close()

        reference_ms = reference_loop_ms()  # before the service starts: the machine still quiet
        service = start_service(tmp, processes, database_url=database_url, urls=urls, workers=args.workers,
                                log_level=args.log_level)

        def transactions() -> tuple[int, int]:
            """Transactions and connections (sessions) the database has seen so far."""
            (row,) = server_statement(args.postgres_url, "SELECT xact_commit + xact_rollback, sessions "
                                      "FROM pg_stat_database WHERE datname = :name", {"name": name})
            return row

        xacts_before, sessions_before = transactions()
        cpu_before = {n: cpu_seconds(p.pid) for n, p in processes.items()}
        pg_before = postgres_cpu_seconds()
        wall_before = time.monotonic()
        measured, stats, kiosk_cpu = run_kiosks(args, service, urls["payment"], pems, patients)
        wall = time.monotonic() - wall_before
        cpu = {n: cpu_seconds(p.pid) - cpu_before[n] for n, p in processes.items()}
        cpu["postgres (the whole server)"] = postgres_cpu_seconds() - pg_before
        cpu[f"kiosks ({args.kiosk_processes} processes)"] = kiosk_cpu
        time.sleep(1)  # the statistics collector reports with a little delay
        xacts, sessions = transactions()
        xacts, sessions = xacts - xacts_before, sessions - sessions_before

        completed = len(stats.completed)
        requests = sum(len(v) for v in stats.millis.values())
        every = [ms for values in stats.millis.values() for ms in values]
        flows_total = sum(stats.outcomes.values())
        print(f"{args.kiosks} kiosks in {args.kiosk_processes} process(es), {args.workers} service worker(s), "
              f"PostgreSQL, zero-latency simulators, {os.cpu_count()} cores shared by all; "
              f"target {args.rate or 'unpaced'} flows/s, {args.seconds:.0f}s measured after {args.warmup:.0f}s warm-up")
        print(f"complete flows: {completed} in {measured:.1f}s = {completed / measured:.1f} flows/s   (bar ≥ 50)")
        if stats.flow_seconds:
            print(f"flow duration: p50 {statistics.median(stats.flow_seconds):.2f}s, "
                  f"p95 {percentile(stats.flow_seconds, 0.95):.2f}s (includes {args.poll_ms} ms polls)")
        print(f"requests: {requests} = {requests / measured:.0f}/s; all endpoints p50 {percentile(every, 0.5):.0f} ms, "
              f"p95 {percentile(every, 0.95):.0f} ms, p99 {percentile(every, 0.99):.0f} ms   (bar p99 ≤ 100 ms)")
        print(f"{'endpoint':<22}{'count':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for endpoint, values in sorted(stats.millis.items()):
            print(f"{endpoint:<22}{len(values):>8}{percentile(values, .5):>9.0f}{percentile(values, .95):>9.0f}"
                  f"{percentile(values, .99):>9.0f}{max(values):>9.0f}")
        errors = sum(stats.errors.values())
        print(f"errors: {errors}   (bar 0)" + ("".join(f"\n  {k}: {v}" for k, v in stats.errors.most_common())))
        for example in stats.examples[:5]:
            print(f"    e.g. {example}")
        print(f"flows by outcome (warm-up included): {dict(stats.outcomes)}")
        print(f"CPU over the whole run ({wall:.0f}s wall, {flows_total} flows): " + ", ".join(
            f"{n} {s:.1f}s ({1000 * s / max(flows_total, 1):.0f} ms/flow)" for n, s in cpu.items()))
        service_ms = 1000 * cpu["service"] / max(flows_total, 1)
        others_ms = 1000 * (sum(cpu.values()) - cpu["service"]) / max(flows_total, 1)
        print(f"the service alone: {service_ms:.0f} ms CPU a flow = at most {2000 / max(service_ms, 1e-9):.0f} flows/s "
              f"on 2 cores of its own; the rest of the rig takes {others_ms:.0f} ms a flow here "
              f"(load average {os.getloadavg()[0]:.1f} at the end)")
        print(f"this machine: the reference Python loop takes {reference_ms:.0f} ms (benchmarks/rig.py); "
              f"the service's CPU a flow is {service_ms / reference_ms:.2f} of it")
        print(f"database transactions: {xacts} = {xacts / max(flows_total, 1):.0f} per flow; "
              f"requests per flow {sum(len(v) for v in stats.millis.values()) / max(completed, 1):.1f}; "
              f"{sessions} database connections opened")
        print(f"logs: {tmp}")
    finally:
        for process in processes.values():
            stop(process)
        drop()


if __name__ == "__main__":
    main()
