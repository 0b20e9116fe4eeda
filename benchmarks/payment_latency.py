"""Payment latency against the upstream calls it cannot avoid (DESIGN 11: ≤ 1.05 ×).

Starts the simulators with realistic latency injected on every operation (HIS 50 ms, insurance
300 ms, payment channel 200 ms, e-invoice 100 ms by default), the kiosk service on a fresh
PostgreSQL database (or ``--database-url``), and one enrolled kiosk — each simulator and the
service in a process of its own (benchmarks/rig.py), as they are separate machines on a site. An insured patient with no
personal-account balance (so there is cash to pay) pays one visit after another; each phase is
timed as the kiosk sees it:

- pre-settlement: ``POST /api/kiosk/payments`` (insurance) until the split comes back;
- pay: ``POST …/pay`` (QR) until the code is shown;
- after payment: once the phone has paid, the one ``GET …/{order}`` that takes it to completed.

Separately, the chain of calls no implementation can skip is made directly through the same
adapters, concurrently where independent, on another visit of the same patient:

- pre-settlement: 2201 → (2203 ∥ 2204) → 2206 — each needs the visit id of the one before;
- pay: create the QR order;
- after payment: query the channel (it is how the payment is known) → 2207 → HIS posting (it
  names the settlement) → e-invoice (only for a posted bill).

Prints p50/p95 per phase and in total, the ratio, and which upstream calls the service made in
each phase (from the simulators' call journals), so extra or sequential calls show.
Usage: python benchmarks/payment_latency.py [--runs 20] [--his-ms 50] [--insurance-ms 300]
       [--channel-ms 200] [--einvoice-ms 100] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import httpx

from medkiosk.adapters.einvoice.http import EInvoiceHttpAdapter
from medkiosk.adapters.einvoice.port import InvoiceRequest
from medkiosk.adapters.his.http import HisHttpAdapter
from medkiosk.adapters.his.port import PaymentPosting
from medkiosk.adapters.insurance.http import InsuranceHttpAdapter
from medkiosk.adapters.insurance.port import Certificate, FeeItem, SettlementRequest
from medkiosk.adapters.payment.http import PaymentChannelHttpAdapter
from medkiosk.bootstrap import build_container
from medkiosk.logging import configure_logging
from medkiosk.security import signing
from medkiosk.settings import Settings, TerminalType
from medkiosk.simulators.his.data import CATALOG
from medkiosk.simulators.personas import PERSONAS
from medkiosk.store.migrate import upgrade
from medkiosk.store.scratch import create_database

from rig import start_service, start_simulators, stop

PHASES = ("pre-settlement", "pay", "after payment")
ITEMS = [("E0001", 1), ("J0001", 1), ("Y0002", 2), ("T0001", 1), ("C0001", 1)]


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


class Kiosk:
    def __init__(self, url: str, device_id: str, pem: bytes) -> None:
        self.signer = signing.DeviceSigner(device_id, signing.private_key_from_pem(pem))
        self.client = httpx.Client(base_url=url, timeout=60)

    def call(self, method: str, path: str, payload: dict | None = None) -> dict:
        import json

        body = json.dumps(payload).encode() if payload is not None else b""
        headers = self.signer.headers(method, path, body)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        reply = self.client.request(method, path, content=body, headers=headers)
        assert reply.status_code == 200, f"{method} {path}: {reply.status_code} {reply.text[:300]}"
        return reply.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--his-ms", type=int, default=50)
    parser.add_argument("--insurance-ms", type=int, default=300)
    parser.add_argument("--channel-ms", type=int, default=200)
    parser.add_argument("--einvoice-ms", type=int, default=100)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a server where a throwaway database is created")
    parser.add_argument("--database-url", default=None, help="use this database instead (e.g. sqlite:///…)")
    args = parser.parse_args()
    configure_logging("WARNING")

    drop = None
    database_url = args.database_url
    if database_url is None:
        database_url, drop = create_database(args.postgres_url, "medkiosk_latency")

    logs = Path(tempfile.mkdtemp(prefix="medkiosk-latency-"))
    processes: dict[str, subprocess.Popen] = {}
    try:
        upgrade(database_url)
        urls = start_simulators(logs, processes)
        persona = PERSONAS["local_resident"]  # resident scheme, no personal-account balance: cash to pay
        patient = persona.patient_id
        doctors = httpx.get(urls["his"] + "/his/v1/doctors").json()["doctors"]
        doctor = next(d for d in doctors if d["department_code"] == "0105")
        visits = [f"MZL{n:06d}" for n in range(2 * (args.runs + 1))]
        orders = [{"order_no": f"CL{n:06d}", "patient_id": patient, "visit_no": visit_no,
                   "visit_date": date.today().isoformat(), "department_code": doctor["department_code"],
                   "doctor_code": doctor["code"], "status": "unpaid",
                   "items": [{"item_code": code, "name": CATALOG[code].name, "kind": CATALOG[code].kind,
                              "insurance_code": CATALOG[code].insurance_code,
                              "self_pay_only": CATALOG[code].self_pay_only, "unit": CATALOG[code].unit,
                              "unit_price": str(CATALOG[code].unit_price), "quantity": quantity}
                             for code, quantity in ITEMS]}
                  for n, visit_no in enumerate(visits)]
        assert httpx.post(urls["his"] + "/__sim__/data/orders", json=orders).status_code == 200
        for name, delay in (("his", args.his_ms), ("insurance", args.insurance_ms), ("payment", args.channel_ms),
                            ("einvoice", args.einvoice_ms)):
            if delay:
                httpx.post(urls[name] + "/__sim__/faults", json={"kind": "latency", "delay_ms": delay})

        settings = Settings(database_url=database_url, **{f"{name}_url": url for name, url in urls.items()})
        container = build_container(settings)
        pem = container.devices.enroll("L001", TerminalType.OUTPATIENT)
        container.close()
        # The service in a process of its own, as deployed: the simulators' and this script's work
        # cannot hold its interpreter lock. No recovery rounds: they are not part of a payment.
        service_url = start_service(logs, processes, database_url=database_url, urls=urls, log_level="WARNING",
                                    settings={"MEDKIOSK_RECOVERY_SECONDS": "0"})
        kiosk = Kiosk(service_url, "L001", pem)
        card = {"medium": "insurance_card", "card_no": persona.insurance.card_no, "card_sn": persona.insurance.card_sn}

        his = HisHttpAdapter(urls["his"])
        insurance = InsuranceHttpAdapter(urls["insurance"], hospital_code=settings.hospital_code,
                                         hospital_name=settings.hospital_name,
                                         hospital_admdvs=settings.hospital_admdvs, device_no="bench")
        channel = PaymentChannelHttpAdapter(urls["payment"], merchant_id=settings.merchant_id)
        einvoice = EInvoiceHttpAdapter(urls["einvoice"])
        pool = ThreadPoolExecutor(4)
        certificate = Certificate("03", persona.insurance.card_no, persona.insurance.card_sn)
        ins = persona.insurance

        def forget_calls() -> None:
            for url in urls.values():
                httpx.delete(url + "/__sim__/calls")

        def calls() -> Counter:
            made = Counter()
            for name, url in urls.items():
                for call in httpx.get(url + "/__sim__/calls").json():
                    made[f"{name}:{call['operation']}"] += 1
            return made

        def through_service(visit_no: str, journal: dict[str, Counter]) -> dict[str, float]:
            kiosk.call("POST", "/api/device/identify", card)
            kiosk.call("GET", "/api/kiosk/payments/bills")
            times = {}
            forget_calls()
            started = time.perf_counter()
            order = kiosk.call("POST", "/api/kiosk/payments", {"visit_no": visit_no, "mode": "insurance"})
            times["pre-settlement"] = time.perf_counter() - started
            assert order["state"] == "presettled" and Decimal(order["split"]["cash"]) > 0, order
            journal["pre-settlement"] += calls()
            forget_calls()
            started = time.perf_counter()
            waiting = kiosk.call("POST", f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
            times["pay"] = time.perf_counter() - started
            assert waiting["state"] == "awaiting_payment" and waiting["code_url"], waiting
            journal["pay"] += calls()
            httpx.post(f"{urls['payment']}/__sim__/pay/{order['order_no']}P1", json={"channel": "wechat"})
            forget_calls()
            started = time.perf_counter()
            done = kiosk.call("GET", f"/api/kiosk/payments/{order['order_no']}")
            times["after payment"] = time.perf_counter() - started
            assert done["state"] == "completed" and done["invoice_no"], done
            journal["after payment"] += calls()
            kiosk.call("POST", "/api/kiosk/session/logout", {})
            return times

        def directly(visit_no: str) -> dict[str, float]:
            visit = next(v for v in his.unpaid_orders(patient) if v.visit_no == visit_no)
            now = datetime.now(timezone.utc)
            batch = f"B{uuid.uuid4().hex[:12]}"
            items = [FeeItem(serial=f"{n:04d}", hospital_code=i.item_code, insurance_code=i.insurance_code or "",
                             quantity=Decimal(i.quantity), unit_price=i.unit_price, amount=i.amount, occurred_at=now,
                             department_code=visit.department_code, doctor_code=visit.doctor_code,
                             prescription_no=i.order_no) for n, i in enumerate(visit.items, start=1)]
            total = sum((i.amount for i in visit.items), Decimal("0.00"))
            msgids = [insurance.new_msgid() for _ in range(4)]
            times = {}
            started = time.perf_counter()
            registration = insurance.register_visit(
                psn_no=ins.psn_no, insured_region=ins.insuplc_admdvs, scheme=ins.insutype, certificate=certificate,
                visit_no=visit_no, began_at=now, department_code=visit.department_code,
                department_name=visit.department_name, doctor_code=visit.doctor_code, doctor_name=visit.doctor_name,
                msgid=msgids[0])
            info = pool.submit(insurance.upload_visit_info, psn_no=ins.psn_no, insured_region=ins.insuplc_admdvs,
                               mdtrt_id=registration.mdtrt_id, began_at=now, msgid=msgids[1])
            insurance.upload_fees(psn_no=ins.psn_no, insured_region=ins.insuplc_admdvs, mdtrt_id=registration.mdtrt_id,
                                  batch_no=batch, items=items, msgid=msgids[2])
            info.result()
            request = SettlementRequest(psn_no=ins.psn_no, insured_region=ins.insuplc_admdvs, scheme=ins.insutype,
                                        certificate=certificate, mdtrt_id=registration.mdtrt_id, batch_no=batch,
                                        total=total)
            split = insurance.pre_settle(request)
            times["pre-settlement"] = time.perf_counter() - started
            trade_no = f"DL{uuid.uuid4().hex[:16].upper()}P1"
            started = time.perf_counter()
            channel.create_qr_order(trade_no, split.cash, "示范市第一人民医院门诊缴费", 300)
            times["pay"] = time.perf_counter() - started
            httpx.post(f"{urls['payment']}/__sim__/pay/{trade_no}", json={"channel": "wechat"})
            started = time.perf_counter()
            trade = channel.query(trade_no)
            settled = insurance.settle(request, msgid=msgids[3])
            posted = his.post_payment(PaymentPosting(
                idempotency_key=f"{trade_no}:post", patient_id=patient, visit_no=visit_no,
                order_nos=sorted({i.order_no for i in visit.items}), total=total, fund=settled.fund,
                account=settled.account, cash=settled.cash, insurance_settlement_id=settled.setl_id,
                channel=trade.channel, trade_no=trade.transaction_id, paid_at=now))
            einvoice.issue(InvoiceRequest(
                idempotency_key=f"{trade_no}:invoice", bill_no=trade_no, payer_name=persona.name,
                insurance_type="城乡居民基本医疗保险", total=total, fund=settled.fund, account=settled.account,
                cash=settled.cash, items=[{"name": i.name, "amount": i.amount, "category": str(i.kind)}
                                          for i in visit.items], issued_at=now))
            times["after payment"] = time.perf_counter() - started
            assert posted.receipt_no
            return times

        journal: dict[str, Counter] = {phase: Counter() for phase in PHASES}
        through_service(visits[0], {phase: Counter() for phase in PHASES})  # warm up: sign-in, connections
        directly(visits[1])
        service_times: dict[str, list[float]] = {phase: [] for phase in (*PHASES, "total")}
        direct_times: dict[str, list[float]] = {phase: [] for phase in (*PHASES, "total")}
        for run in range(args.runs):
            for times, target in ((through_service(visits[2 + 2 * run], journal), service_times),
                                  (directly(visits[3 + 2 * run]), direct_times)):
                for phase in PHASES:
                    target[phase].append(times[phase] * 1000)
                target["total"].append(sum(times.values()) * 1000)

        print(f"database: {database_url.split('@')[-1].split('?')[0]}")
        print(f"upstream latency injected on every operation: HIS {args.his_ms} ms, insurance {args.insurance_ms} ms, "
              f"channel {args.channel_ms} ms, e-invoice {args.einvoice_ms} ms; {args.runs} insured payments "
              f"(cash > 0, QR)")
        print(f"{'phase':<16}{'service p50':>12}{'p95':>9}{'unavoidable p50':>17}{'p95':>9}{'ratio p50':>11}"
              f"{'ratio p95':>11}")
        for phase in (*PHASES, "total"):
            s, u = service_times[phase], direct_times[phase]
            s50, u50 = statistics.median(s), statistics.median(u)
            print(f"{phase:<16}{s50:>10.0f}ms{p95(s):>7.0f}ms{u50:>15.0f}ms{p95(u):>7.0f}ms{s50 / u50:>10.3f}×"
                  f"{p95(s) / p95(u):>10.3f}×")
        print("bar: ≤ 1.050× (DESIGN 11)")
        print("upstream calls the service made per payment, by phase (from the simulators' journals):")
        for phase in PHASES:
            per_run = {op: n / args.runs for op, n in sorted(journal[phase].items())}
            print(f"  {phase:<15} " + ", ".join(f"{op} ×{n:g}" for op, n in per_run.items()))
        for adapter in (his, insurance, channel, einvoice):
            adapter.close()
    finally:
        for process in processes.values():
            stop(process)
        if drop:
            drop()


if __name__ == "__main__":
    main()
