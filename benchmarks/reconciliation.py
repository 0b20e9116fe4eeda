"""Daily reconciliation: 1,000,000 orders against the channel's statement (DESIGN 11).

The bar: ≤ 20 s and ≤ 1 GiB of memory for the run.

Creates a throwaway PostgreSQL database at head, loads ``--orders`` paid orders of one business
day (1 % of them refunded, with their journal steps) by COPY, writes the channel's statement of
that day with the payment simulator's own renderer, and serves it over HTTP as the channel's
``GET /pay/v1/statements/{day}``. A few discrepancies are planted on purpose: trades only the
channel has, orders only we have, amounts that differ, refunds only we have, refund amounts that
differ. Then a fresh process runs the real ``ReconciliationService`` (channel check; HIS and
insurance are other systems' lists and are skipped here) and reports its wall time, its peak RSS
(``resource.getrusage``) and the discrepancies it found, against the planted ones.

Usage: python benchmarks/reconciliation.py [--orders 1000000] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]
       [--keep]   (keep the database and the statement file)
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from medkiosk.store.db import normalise_url
from medkiosk.store.scratch import create_database

CHINA = dt.timezone(dt.timedelta(hours=8))
BAR_SECONDS = 20
BAR_BYTES = 1 << 30
PLANTED = {"channel_only": 3, "ours_only": 3, "amount_mismatch": 3, "state_mismatch": 2, "refund_mismatch": 2}


def order_no(i: int) -> str:
    return f"PO20261120{i:014d}"


def amount_of(i: int) -> Decimal:
    return Decimal(i * 7919 % 99_999 + 100).scaleb(-2)


class CopyText:
    """Rows as a file of COPY's text format, made as ``copy_expert`` reads it (a million rows are
    never all in memory at once)."""

    _ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

    def __init__(self, rows) -> None:
        self._rows = iter(rows)
        self._buffer = ""

    def _line(self, row) -> str:
        return "\t".join("\\N" if v is None else (v.isoformat() if isinstance(v, dt.datetime) else str(v))
                         .translate(self._ESCAPES) for v in row) + "\n"

    def read(self, size: int = -1) -> str:
        while size < 0 or len(self._buffer) < size:
            row = next(self._rows, None)
            if row is None:
                break
            self._buffer += self._line(row)
        out, self._buffer = (self._buffer, "") if size < 0 else (self._buffer[:size], self._buffer[size:])
        return out

    readline = read


def generate(url: str, orders: int, day: dt.date, statement_path: Path) -> None:
    """The day's orders into the database and the day's statement into a file, with planted differences."""
    from medkiosk.simulators.payment.statement import StatementLine, fee_of, render_statement

    start = dt.datetime.combine(day, dt.time(), CHINA)
    span = 23 * 3600  # created before 23:00: none in the day's last pay window (those are asked about one by one)
    rate = Decimal("0.006")
    ours_only = set(range(10, 10 + PLANTED["ours_only"]))
    amount_off = set(range(100, 100 + PLANTED["amount_mismatch"]))
    refunded = {i for i in range(0, orders, 100)}  # 1 %
    refund_only_ours = set(sorted(refunded)[1:1 + PLANTED["state_mismatch"]])
    refund_amount_off = set(sorted(refunded)[10:10 + PLANTED["refund_mismatch"]])
    order_columns = ("order_no, patient_id, his_patient_id, device_id, session_id, visit_no, his_order_nos, mode, "
                     "category, state, pay_method, his_total, total, fund, account, cash, paid_amount, "
                     "refunded_amount, out_trade_no, transaction_id, channel, invoice_state, message, details, "
                     "attempts, created_at, updated_at")
    lines: list[StatementLine] = []
    t0 = time.perf_counter()
    def order_rows():
        for i in range(orders):
            number = order_no(i)
            amount = amount_of(i)
            fen = int(amount * 100)
            at = start + dt.timedelta(seconds=i * span // orders)
            state = "refunded" if i in refunded else "completed"
            yield (number, 1, "P-BENCH", "K001", "s", f"MZ{i}", "[]", "self_pay", "self_pay", state,
                   "qr", fen, fen, 0, 0, fen, fen, fen if i in refunded else 0, f"{number}P1",
                   f"4200{i:024d}", "wechat", "issued", "", "{}", 0, at, at)
            paid_at = at + dt.timedelta(seconds=30)
            if i not in ours_only:
                taken = amount + Decimal("0.01") if i in amount_off else amount
                lines.append(StatementLine(paid_at, "wechat", f"4200{i:024d}", f"{number}P1", "NATIVE",
                                           "SUCCESS", taken, "门诊缴费", fee_of(taken, rate)))
            if i in refunded and i not in refund_only_ours:
                back = amount - Decimal("0.01") if i in refund_amount_off else amount
                lines.append(StatementLine(paid_at + dt.timedelta(minutes=10), "wechat", f"4200{i:024d}",
                                           f"{number}P1", "NATIVE", "REFUND", amount, "门诊缴费",
                                           -fee_of(back, rate), f"5000{i:024d}", f"{number}R1", back,
                                           "SUCCESS"))

    def step_rows():
        for i in sorted(refunded):
            at = start + dt.timedelta(seconds=i * span // orders, minutes=10)
            yield (order_no(i), "refund", f"{order_no(i)}R1", "succeeded", json.dumps({"amount": str(amount_of(i))}),
                   at, at)

    engine = create_engine(normalise_url(url), poolclass=NullPool)
    conn = engine.raw_connection()  # the driver's own connection, for COPY
    try:
        with conn.cursor() as cursor:
            cursor.execute("INSERT INTO patients (id, his_patient_id, name_enc, gender, created_at, updated_at) "
                           "VALUES (1, 'P-BENCH', 'x', '', now(), now())")
            cursor.copy_expert(f"COPY payment_orders ({order_columns}) FROM STDIN", CopyText(order_rows()))
            cursor.copy_expert("COPY payment_steps (order_no, step, key, status, detail, started_at, finished_at) "
                               "FROM STDIN", CopyText(step_rows()))
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("ANALYZE payment_orders")
            cursor.execute("ANALYZE payment_steps")
    finally:
        conn.close()
        engine.dispose()
    for n in range(PLANTED["channel_only"]):  # paid at the channel under numbers we never issued
        lines.append(StatementLine(start + dt.timedelta(hours=12, seconds=n), "alipay", f"2026{n:024d}",
                                   f"PO20261120STRAY{n:05d}P1", "MICROPAY", "SUCCESS", Decimal("88.00"), "门诊缴费",
                                   fee_of(Decimal("88.00"), rate)))
    lines.sort(key=lambda line: (line.time, line.state != "SUCCESS", line.out_trade_no))
    statement_path.write_text(render_statement("1900000109", lines), encoding="utf-8", newline="")
    print(f"generated {orders:,} orders, {len(refunded):,} refunds and a {statement_path.stat().st_size / 1e6:.0f} MB "
          f"statement of {len(lines):,} lines in {time.perf_counter() - t0:.1f} s", flush=True)


def serve_statement(path: Path, day: dt.date) -> http.server.ThreadingHTTPServer:
    """The channel's statement endpoint, answering with the file (chunked from disk, like a gateway would)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path != f"/pay/v1/statements/{day:%Y-%m-%d}":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with path.open("rb") as body:
                while chunk := body.read(1 << 20):
                    self.wfile.write(chunk)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_child() -> None:
    """In its own process, so its peak RSS is the run's alone: the reconciliation as the service does it.

    Started before the data is generated (a child forked from a big parent would inherit its peak
    in ``ru_maxrss``), it waits for ``url channel_url day`` on stdin.
    """
    from medkiosk.adapters.payment.http import PaymentChannelHttpAdapter
    from medkiosk.services.clock import Clock
    from medkiosk.services.reconciliation import ReconciliationService
    from medkiosk.store.db import make_engine, make_session_factory
    from medkiosk.store.uow import UnitOfWork
    from zoneinfo import ZoneInfo

    url, channel_url, day_text = sys.stdin.readline().split()
    day = dt.date.fromisoformat(day_text)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    channel = PaymentChannelHttpAdapter(channel_url, merchant_id="1900000109", timeout=60)
    service = ReconciliationService(lambda: UnitOfWork(sessions), Clock(), channel=channel, his=None,
                                    insurance=None, tz=ZoneInfo("Asia/Shanghai"), hospital_admdvs="320100")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    view = service.run(day, triggered_by="benchmark")
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    _, rows = service.run_detail(view.id)
    hwm = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    print(json.dumps({"elapsed": elapsed, "peak_rss": peak, "vm_hwm": hwm, "rss_before_run": baseline,
                      "figures": view.figures, "found": dict(Counter(d.kind for d in rows))}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child()
        return
    child = subprocess.Popen([sys.executable, __file__, "--child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "MEDKIOSK_LOG_LEVEL": "warning"})

    from medkiosk.store.migrate import upgrade

    day = dt.datetime.now(CHINA).date() - dt.timedelta(days=2)
    url, drop = create_database(args.postgres_url, "medkiosk_bench_recon")
    statement = Path(tempfile.gettempdir()) / f"{make_url(url).database}-statement.csv"
    server = None
    try:
        upgrade(url)
        generate(url, args.orders, day, statement)
        server = serve_statement(statement, day)
        channel_url = f"http://127.0.0.1:{server.server_address[1]}"
        out, err = child.communicate(f"{url} {channel_url} {day.isoformat()}\n")
        if child.returncode != 0:
            sys.exit(f"the run failed:\n{err[-4000:]}")
        result = json.loads(out.strip().splitlines()[-1])
    finally:
        if child.poll() is None:
            child.kill()
        if server is not None:
            server.shutdown()
        if not args.keep:
            statement.unlink(missing_ok=True)
            drop()
    found = result["found"]
    channel = result["figures"]["channel"]
    print(f"orders {channel['our_orders']:,} · statement {channel['trades']:,} trades + {channel['refunds']:,} refunds "
          f"({channel['statement_bytes'] / 1e6:.0f} MB) · matched {channel['matched_trades']:,} + "
          f"{channel['matched_refunds']:,}")
    print(f"elapsed   {result['elapsed']:6.1f} s    bar ≤ {BAR_SECONDS} s   "
          f"{'met' if result['elapsed'] <= BAR_SECONDS else 'NOT MET'}")
    print(f"peak RSS  {result['peak_rss'] / 2**20:6.0f} MiB  bar ≤ 1024 MiB  "
          f"{'met' if result['peak_rss'] <= BAR_BYTES else 'NOT MET'}  "
          f"(the process before the run: {result['rss_before_run'] / 2**20:.0f} MiB; VmHWM "
          f"{result['vm_hwm'] / 2**20:.0f} MiB)")
    print(f"discrepancies found {sum(found.values())}: {found}")
    print(f"planted             {sum(PLANTED.values())}: {PLANTED}   {'exact' if found == PLANTED else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
