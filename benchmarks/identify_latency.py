"""Identification latency against the upstream calls it cannot avoid (DESIGN 11: ≤ 1.05 ×).

Starts the HIS and insurance simulators with realistic latency injected on every call, the kiosk
service on a temporary SQLite file, and one enrolled kiosk. For each medium it times the kiosk's
signed identify request and, separately, the unavoidable upstream calls made directly through the
same adapters (concurrently where they are independent, as the service does). Prints medians, p95s
and the ratio. Usage: python benchmarks/identify_latency.py [--runs 30] [--his-ms 40] [--insurance-ms 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from medkiosk.adapters.his.http import HisHttpAdapter
from medkiosk.adapters.insurance.http import InsuranceHttpAdapter
from medkiosk.adapters.insurance.port import Certificate
from medkiosk.api.app import create_app
from medkiosk.bootstrap import build_container
from medkiosk.logging import configure_logging
from medkiosk.security import signing
from medkiosk.serving import start_in_thread
from medkiosk.settings import Settings, TerminalType
from medkiosk.simulators import registry
from medkiosk.simulators.personas import PERSONAS
from medkiosk.store.migrate import upgrade


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--his-ms", type=int, default=40)
    parser.add_argument("--insurance-ms", type=int, default=60)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    configure_logging("WARNING")

    his = start_in_thread(registry.create("his"), name="his-sim")
    insurance = start_in_thread(registry.create("insurance"), name="insurance-sim")
    httpx.post(his.url + "/__sim__/faults", json={"kind": "latency", "delay_ms": args.his_ms})
    httpx.post(insurance.url + "/__sim__/faults", json={"kind": "latency", "delay_ms": args.insurance_ms})
    tmp = Path(tempfile.mkdtemp(prefix="medkiosk-bench-"))
    settings = Settings(database_url=args.database_url or f"sqlite:///{tmp / 'bench.db'}", his_url=his.url, insurance_url=insurance.url)
    upgrade(settings.database_url)
    container = build_container(settings)
    service = start_in_thread(create_app(container=container), name="service")
    signer = signing.DeviceSigner("K001", signing.private_key_from_pem(
        container.devices.enroll("K001", TerminalType.OUTPATIENT)))
    client = httpx.Client(base_url=service.url, timeout=30)
    his_direct = HisHttpAdapter(his.url)
    insurance_direct = InsuranceHttpAdapter(insurance.url, hospital_code=settings.hospital_code,
                                            hospital_name=settings.hospital_name,
                                            hospital_admdvs=settings.hospital_admdvs, device_no="bench")
    insurance_direct.sign_in()
    pool = ThreadPoolExecutor(4)

    employee = PERSONAS["local_employee"]
    resident = PERSONAS["local_resident"]
    media = {
        "insurance_card": ({"medium": "insurance_card", "card_no": employee.insurance.card_no,
                            "card_sn": employee.insurance.card_sn}, employee),
        "id_card": ({"medium": "id_card", "id_number": resident.id_number, "name": resident.name}, resident),
    }

    def unavoidable(medium: str, persona) -> None:
        """The calls no implementation can skip, each pair concurrent as they are independent."""
        if medium == "insurance_card":
            found = pool.submit(his_direct.find_patient, insurance_card_no=persona.insurance.card_no)
            insurance_direct.person_info(Certificate("03", persona.insurance.card_no, persona.insurance.card_sn))
        else:
            found = pool.submit(his_direct.find_patient, id_number=persona.id_number)
            insurance_direct.person_info(Certificate("02", persona.id_number))
        assert found.result() is not None

    def identify(payload: dict) -> None:
        body = json.dumps(payload).encode()
        reply = client.post("/api/device/identify", content=body, headers={
            **signer.headers("POST", "/api/device/identify", body), "Content-Type": "application/json"})
        assert reply.status_code == 200 and reply.json()["outcome"] == "identified", reply.text

    print(f"database: {settings.database_url.split('@')[-1]}")
    print(f"upstream latency injected: HIS {args.his_ms} ms/call, insurance {args.insurance_ms} ms/call; "
          f"{args.runs} runs each")
    print(f"{'medium':<16}{'service p50':>12}{'p95':>9}{'upstream p50':>14}{'p95':>9}{'ratio p50':>11}")
    for medium, (payload, persona) in media.items():
        identify(payload)  # warm up: sign-in, connections
        unavoidable(medium, persona)
        service_times, upstream_times = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            identify(payload)
            service_times.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            unavoidable(medium, persona)
            upstream_times.append((time.perf_counter() - start) * 1000)
        s50, u50 = statistics.median(service_times), statistics.median(upstream_times)
        print(f"{medium:<16}{s50:>10.1f}ms{p95(service_times):>7.1f}ms{u50:>12.1f}ms{p95(upstream_times):>7.1f}ms"
              f"{s50 / u50:>10.3f}×")

    for server in (service, his, insurance):
        server.stop()
    container.close()


if __name__ == "__main__":
    main()
