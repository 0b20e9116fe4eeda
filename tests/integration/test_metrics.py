"""Prometheus /metrics on SQLite and PostgreSQL: what Grafana reads, and that no patient is in it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import httpx
import pytest
from fastapi.testclient import TestClient
from kiosk_client import Kiosk
from prometheus_client.parser import text_string_to_metric_families
from simulator_fixtures import service_container, serving, simulators_fixture
from test_operations import Site, site  # noqa: F401  (fixture)

from medkiosk.api.app import create_app
from medkiosk.settings import Settings, TerminalType
from medkiosk.simulators.personas import PERSONAS

TOKEN = "grafana-scrape-token-0123456789"

simulators = simulators_fixture()


@pytest.fixture
def kiosk(database_url, simulators):
    """K001 on a service wired to every simulator, over real HTTP."""
    container = service_container(database_url, simulators, upstream_timeout_seconds=2)
    pem = container.devices.enroll("K001", TerminalType.OUTPATIENT, location="门诊楼 1F")
    with serving(container) as url:
        kiosk = Kiosk(url, "K001", pem)
        kiosk.simulators = {name: server.url for name, server in simulators.items()}
        yield kiosk


def first_visit(bills: dict) -> dict:
    return next(v for v in bills["visits"] if v["items"])


def phone_pays(kiosk: Kiosk, order: dict) -> None:
    paid = httpx.post(f"{kiosk.simulators['payment']}/__sim__/pay/{order['order_no']}P1", json={"channel": "wechat"},
                      timeout=10)
    assert paid.status_code == 200, paid.text


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, keyed by name and its labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def test_a_payment_is_counted_by_outcome_with_its_upstream_calls_and_no_patient_in_any_label(kiosk):
    kiosk.insert_insurance_card("local_resident")
    bills = kiosk.get("/api/kiosk/payments/bills")
    order = kiosk.post("/api/kiosk/payments", {"visit_no": first_visit(bills)["visit_no"], "mode": "insurance"})
    kiosk.post(f"/api/kiosk/payments/{order['order_no']}/pay", {"method": "qr"})
    phone_pays(kiosk, order)
    assert kiosk.get(f"/api/kiosk/payments/{order['order_no']}")["state"] == "completed"
    kiosk.place_id_card("self_pay")
    bills = kiosk.get("/api/kiosk/payments/bills")
    other = kiosk.post("/api/kiosk/payments", {"visit_no": first_visit(bills)["visit_no"], "mode": "self_pay"})
    kiosk.post(f"/api/kiosk/payments/{other['order_no']}/pay", {"method": "qr"})
    assert kiosk.post(f"/api/kiosk/payments/{other['order_no']}/cancel")["state"] == "closed"

    response = httpx.get(kiosk.url + "/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    scraped = samples(response.text)
    assert value(scraped, "medkiosk_payment_flows_total", outcome="completed") == 1
    assert value(scraped, "medkiosk_payment_flows_total", outcome="closed") == 1
    assert value(scraped, "medkiosk_payment_flows_total", outcome="refunded") == 0
    # Upstream calls by system and operation: the insurance settlement (2207), the HIS posting, the QR order.
    assert value(scraped, "medkiosk_upstream_calls_total", system="insurance", operation="2207", outcome="ok") >= 1
    assert value(scraped, "medkiosk_upstream_calls_total", system="his", operation="payments.post", outcome="ok") >= 1
    assert value(scraped, "medkiosk_upstream_calls_total", system="payment", operation="qr.create", outcome="ok") >= 1
    assert value(scraped, "medkiosk_upstream_call_duration_seconds_count", system="insurance", operation="2207") >= 1
    # Requests by route template, never the raw path.
    route = "/api/kiosk/payments/{order_no}"
    assert value(scraped, "medkiosk_http_requests_total", method="GET", route=route, status="200") >= 1
    assert value(scraped, "medkiosk_http_request_duration_seconds_count", method="GET", route=route) >= 1
    for persona in (PERSONAS["local_resident"], PERSONAS["self_pay"]):
        for personal in (persona.name, persona.id_number, persona.patient_id, persona.visit_card_no):
            assert personal not in response.text
        if persona.insurance:
            assert persona.insurance.card_no not in response.text and persona.insurance.psn_no not in response.text
    assert order["order_no"] not in response.text and other["order_no"] not in response.text


def test_kiosks_online_and_offline_and_alerts_firing_by_rule_and_severity(site):  # noqa: F811
    site.enroll("K001")
    site.enroll("K002", "本部 / 门诊楼 / 2F / 缴费区")
    site.beat("K001")
    site.beat("K002", paper="out")
    site.clock.advance(seconds=45)  # K001 goes quiet past its period + grace and the offline rule's `for`
    site.beat("K002", paper="out")
    site.ops.alerts.evaluate()
    scraped = samples(site.client.get("/metrics").text)
    assert value(scraped, "medkiosk_kiosks", state="online") == 1
    assert value(scraped, "medkiosk_kiosks", state="offline") == 1
    assert value(scraped, "medkiosk_kiosk_online", device="K001") == 0
    assert value(scraped, "medkiosk_kiosk_online", device="K002") == 1
    assert value(scraped, "medkiosk_alerts", rule="device_offline", severity="critical", state="firing") == 1
    assert value(scraped, "medkiosk_alerts", rule="paper_out", severity="critical", state="firing") == 1
    assert value(scraped, "medkiosk_alerts", rule="upstream_down", severity="critical", state="firing") == 0


def test_with_a_token_set_a_scrape_without_it_is_refused(sqlite_url):
    settings = Settings(database_url=sqlite_url, metrics_token=TOKEN, ops_evaluation_seconds=0, ops_probe_seconds=0,
                        recovery_seconds=0)
    with TestClient(create_app(settings)) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        scraped = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200 and "medkiosk_kiosks" in scraped.text
    with pytest.raises(ValueError, match="at least 16"):
        Settings(database_url=sqlite_url, metrics_token="short")
    assert Settings(database_url=sqlite_url, metrics_token="").metrics_token is None


_WORKER = textwrap.dedent("""
    import sys
    from fastapi.testclient import TestClient
    from medkiosk.api.app import create_app
    from medkiosk.settings import Settings

    settings = Settings(database_url=sys.argv[1], ops_evaluation_seconds=0, ops_probe_seconds=0, recovery_seconds=0)
    with TestClient(create_app(settings)) as client:
        for _ in range(int(sys.argv[2])):
            assert client.get("/healthz").status_code == 200
        if sys.argv[3] == "scrape":
            print(client.get("/metrics").text)
""")


def test_several_worker_processes_add_up_in_multiprocess_mode(sqlite_url, tmp_path):
    """Like `serve --workers`: each process writes its counts under PROMETHEUS_MULTIPROC_DIR."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}

    def worker(requests: int, scrape: bool) -> str:
        done = subprocess.run([sys.executable, "-c", _WORKER, sqlite_url, str(requests), "scrape" if scrape else "-"],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    worker(2, False)
    scraped = samples(worker(3, True))
    assert value(scraped, "medkiosk_http_requests_total", method="GET", route="/healthz", status="200") == 5
    assert value(scraped, "medkiosk_kiosks", state="online") == 0  # the store's figures are there too
