"""The benchmarks' process rig: the simulators and the kiosk service each in a process of their own.

Nothing of a benchmark then shares an interpreter lock with the service it times: the simulators'
own work (building a HIS bill, an insurance split) and the load generator cannot delay a request
from inside the service's process, as they would on a real site where each is another machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from medkiosk.serving import KEEP_ALIVE_SECONDS, free_port

SIMULATORS = {"his": "medkiosk.simulators.his.app", "insurance": "medkiosk.simulators.insurance.app",
              "payment": "medkiosk.simulators.payment.app", "einvoice": "medkiosk.simulators.einvoice.app"}
LAUNCH = ("import sys, uvicorn; from {module} import create_app; "
          "from medkiosk.serving import KEEP_ALIVE_SECONDS; "
          "uvicorn.run(create_app(), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning', "
          "access_log=False, timeout_keep_alive=KEEP_ALIVE_SECONDS)")


def service_app():
    """The uvicorn factory of each worker: production's JSON logging, then the kiosk service."""
    from medkiosk.api.app import create_app
    from medkiosk.logging import configure_logging

    configure_logging(os.environ.get("BENCH_LOG_LEVEL", "INFO"))
    return create_app()


# -- processes ----------------------------------------------------------------------------------
def spawn(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    with open(log, "w", encoding="utf-8") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def reference_loop_ms() -> float:
    """How fast this machine runs plain Python: the best of three runs of a fixed loop, in ms.

    CPU figures (ms a flow) move with the machine — the same code measured 54 ms a flow on one
    machine and 110 ms on a slower one. Dividing by this figure lets runs on different machines be
    compared; side-by-side runs on one machine remain the better comparison.
    """
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.process_time() - started)
    return 1000 * best


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (uvicorn workers), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def postgres_cpu_seconds() -> float:
    """CPU of the PostgreSQL server: live postgres processes, plus backends already gone (their time is
    in the postmaster's children's times once it has reaped them)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if "(postgres)" in stat:
            stats[int(entry.name)] = stat.rsplit(")", 1)[1].split()
    for pid, fields in stats.items():
        total += (int(fields[11]) + int(fields[12])) / tick
        if int(fields[1]) not in stats:  # the postmaster: add its reaped children
            total += (int(fields[13]) + int(fields[14])) / tick
    return total


# -- the hospital's patients --------------------------------------------------------------------


def start_simulators(logs: Path, processes: dict[str, subprocess.Popen]) -> dict[str, str]:
    """Start the four simulators (added to ``processes`` as they start); their URLs once all answer."""
    urls = {}
    for sim, module in SIMULATORS.items():
        port = free_port()
        processes[sim] = spawn([sys.executable, "-c", LAUNCH.format(module=module), str(port)], logs / f"{sim}.log")
        urls[sim] = f"http://127.0.0.1:{port}"
    for sim, url in urls.items():
        wait_until_up(url + "/__sim__/", processes[sim])
    return urls


def start_service(logs: Path, processes: dict[str, subprocess.Popen], *, database_url: str, urls: dict[str, str],
                  workers: int = 1, log_level: str = "INFO", settings: dict[str, str] | None = None) -> str:
    """Start the kiosk service under uvicorn with ``workers`` processes; its URL once every worker is up.
    ``settings`` are more ``MEDKIOSK_*`` variables."""
    port = free_port()
    env = {**os.environ, "MEDKIOSK_DATABASE_URL": database_url, "BENCH_LOG_LEVEL": log_level,
           **{f"MEDKIOSK_{sim.upper()}_URL": url for sim, url in urls.items()}, **(settings or {})}
    processes["service"] = spawn(
        [sys.executable, "-m", "uvicorn", "--factory", "rig:service_app", "--app-dir",
         str(Path(__file__).parent), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning", "--no-access-log", "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS),
         "--backlog", "4096"],
        logs / "service.log", env)
    service = f"http://127.0.0.1:{port}"
    wait_until_up(service + "/readyz", processes["service"])
    time.sleep(1.0 * workers)  # every worker up
    return service
