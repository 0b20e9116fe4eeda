"""Heartbeat ingestion with alert evaluation, and time from a kiosk's last heartbeat to its offline alert.

    .venv/bin/python benchmarks/heartbeat_ingest.py [--kiosks 500] [--beats 20000] [--database-url URL]

1. Throughput: ``--beats`` heartbeats, pre-signed by ``--kiosks`` enrolled kiosks (Ed25519, like the
   agents), go through the service's ingestion path — signature and clock-skew check, nonce
   (replay) check in the store, current state, telemetry and per-minute/per-hour history — via
   the same group-commit queue the HTTP endpoint uses, while the alert evaluator runs every
   second in another thread. Bar (DESIGN 11): ≥ 2,000 heartbeats/s.
2. Offline latency: every kiosk keeps beating except one; the evaluator runs every second; we
   measure from that kiosk's last accepted heartbeat to its ``device_offline`` alert firing.
   Bar: ≤ the rule's ``for`` + 5 s.

SQLite in a temporary folder by default; pass a PostgreSQL URL to measure that instead (a fresh
database is expected: the schema is migrated in it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from medkiosk.bootstrap import build_container  # noqa: E402
from medkiosk.security import signing  # noqa: E402
from medkiosk.services.monitoring import SignedBeat  # noqa: E402
from medkiosk.services.operations import operations_of  # noqa: E402
from medkiosk.settings import Settings, TerminalType  # noqa: E402
from medkiosk.store.migrate import upgrade  # noqa: E402

PATH = "/api/device/heartbeat"
FLOORS = ["1F", "2F", "3F", "4F", "5F"]


def heartbeat_body(n: int) -> bytes:
    return json.dumps({"software_version": "1.4.2", "uptime_seconds": n, "screen": "home",
                       "peripherals": {"receipt_printer": {"state": "ok", "detail": "", "paper": "ok"},
                                       "insurance_card_reader": {"state": "ok", "detail": ""}},
                       "telemetry": {"cpu_percent": 17.0, "memory_percent": 41.0, "disk_percent": 63.0,
                                     "transactions": n, "failures": n // 50}}).encode()


def signed(signer: signing.DeviceSigner, n: int) -> SignedBeat:
    body = heartbeat_body(n)
    return SignedBeat(signer.headers("POST", PATH, body), "POST", PATH, body, json.loads(body))


class Evaluator(threading.Thread):
    def __init__(self, ops, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.ops, self.period, self.rounds = ops, period, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.period):
            self.ops.alerts.evaluate()
            self.rounds += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kiosks", type=int, default=500)
    parser.add_argument("--beats", type=int, default=20_000)
    parser.add_argument("--offline-for", type=int, default=15)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="medkiosk-bench-")
    url = args.database_url or f"sqlite:///{tmp}/bench.db"
    upgrade(url)
    settings = Settings(database_url=url, ops_offline_for_seconds=args.offline_for, ops_heartbeat_grace_seconds=5,
                        ops_evaluation_seconds=0, ops_probe_seconds=0, recovery_seconds=0)
    container = build_container(settings)
    ops = operations_of(container)
    signers = []
    for i in range(args.kiosks):
        device_id = f"B{i:04d}"
        pem = container.devices.enroll(device_id, TerminalType.OUTPATIENT,
                                       location=f"本部 / 门诊楼 / {FLOORS[i % len(FLOORS)]} / 区域{i % 7}")
        signers.append(signing.DeviceSigner(device_id, signing.private_key_from_pem(pem)))
    print(f"database: {url.split('@')[-1]}; {args.kiosks} kiosks enrolled", flush=True)

    beats = [signed(signers[i % len(signers)], i) for i in range(args.beats)]
    evaluator = Evaluator(ops)
    evaluator.start()
    started = time.perf_counter()
    futures = [ops.monitoring.submit(beat) for beat in beats]
    refused = 0
    for future in futures:
        try:
            future.result(timeout=120)
        except Exception:  # noqa: BLE001 - counted, not expected
            refused += 1
    elapsed = time.perf_counter() - started
    rate = args.beats / elapsed
    print(f"ingested {args.beats} signed heartbeats in {elapsed:.2f} s with alert evaluation every 1 s "
          f"({evaluator.rounds} rounds): {rate:,.0f} heartbeats/s, {refused} refused "
          f"[bar ≥ 2,000/s: {'PASS' if rate >= 2000 and refused == 0 else 'FAIL'}]", flush=True)

    # Offline latency: one kiosk falls silent, the rest beat every 5 s (staggered).
    quiet = signers[0]
    last_beat = ops.monitoring.submit(signed(quiet, 10**6)).result(timeout=30)
    last_beat_wall = time.time()
    n = 2 * 10**6
    fired_after = None
    deadline = time.time() + args.offline_for + 30
    others = signers[1:]
    while time.time() < deadline and fired_after is None:
        second_start = time.time()
        slice_ = [s for i, s in enumerate(others) if i % 5 == int(second_start) % 5]
        for s in slice_:
            n += 1
            ops.monitoring.submit(signed(s, n))
        for alert in ops.alerts.alerts():
            if alert.rule == "device_offline" and alert.labels.get("device") == quiet.device_id \
                    and alert.state == "firing":
                fired_after = time.time() - last_beat_wall
        time.sleep(max(0.0, 0.2 - (time.time() - second_start)))
    evaluator.stop.set()
    evaluator.join()
    bar = args.offline_for + 5
    if fired_after is None:
        print(f"offline alert: not raised within {args.offline_for + 30} s [bar ≤ {bar} s: FAIL]")
    else:
        print(f"offline alert: {fired_after:.1f} s after the kiosk's last heartbeat (rule for = {args.offline_for} s, "
              f"dead-man's switch 5 s period + 5 s grace, evaluation every 1 s) "
              f"[bar ≤ for + 5 s = {bar} s: {'PASS' if fired_after <= bar else 'FAIL'}]")
    del last_beat
    ops.close()
    container.close()


if __name__ == "__main__":
    main()
