"""The reconciliation staff pages: who sees runs and fixes, who resolves a discrepancy, CSRF, the audit trail."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from medkiosk.services import audit
from medkiosk.store.models_reconciliation import ReconciliationDiscrepancy, ReconciliationRun

from staff_client import login
from test_staff_web import Site


@pytest.fixture
def site(database_url):
    site = Site(database_url)
    yield site
    site.container.close()


def seed(site: Site) -> tuple[int, int, int]:
    """A run of 2026-11-24 with a channel-only trade and an order HIS never got; returns the ids."""
    now = site.clock.now()
    with site.container.uow() as uow:
        run = ReconciliationRun(business_date=date(2026, 11, 24), status="succeeded", triggered_by="schedule",
                                started_at=now, finished_at=now, error="", discrepancy_count=2,
                                figures={"channel": {"trades": 3, "trade_amount": "120.50", "refunds": 0,
                                                     "refund_amount": "0.00"}})
        uow.session.add(run)
        uow.session.flush()
        stray = ReconciliationDiscrepancy(
            run_id=run.id, source="channel", kind="channel_only", severity="critical", reference="PO1STRAYP1",
            theirs=Decimal("12.34"), message="支付渠道收款 12.34 元，本系统没有这笔订单。",
            fix="在支付渠道商户平台按商户订单号核实后，原路全额退款给患者。", details={}, created_at=now)
        missing = ReconciliationDiscrepancy(
            run_id=run.id, source="his", kind="ours_only", severity="critical", reference="PO2:post", order_no="PO2",
            ours=Decimal("30.00"), message="本系统订单缴费成功（30.00 元），HIS没有对应的缴费登记。",
            fix="在HIS按该订单补登记缴费。", details={"state": "completed"}, created_at=now)
        uow.session.add_all([stray, missing])
        uow.commit()
        return run.id, stray.id, missing.id


def test_finance_and_auditors_see_runs_and_fixes_engineers_do_not(site):
    run_id, _, _ = seed(site)
    site.person("caiwu", "finance")
    site.person("shenji", "auditor")
    site.person("gongcheng", "engineer")
    with site.client() as client:
        login(client, "caiwu")
        listing = client.get("/staff/reconciliation")
        assert listing.status_code == 200 and "2026-11-24" in listing.text and "每日对账" in listing.text
        page = client.get(f"/staff/reconciliation/{run_id}")
        assert page.status_code == 200
        assert "渠道单边账" in page.text and "原路全额退款" in page.text and "PO1STRAYP1" in page.text
        assert "标记已处理" in page.text
    with site.client() as client:
        login(client, "shenji")
        page = client.get(f"/staff/reconciliation/{run_id}")
        assert page.status_code == 200 and "HIS没有对应的缴费登记" in page.text and "标记已处理" not in page.text
        assert client.get("/api/staff/reconciliation/runs").json()["runs"][0]["open_count"] == 2
    with site.client() as client:
        login(client, "gongcheng")
        assert client.get(f"/staff/reconciliation/{run_id}").status_code == 403
        assert client.get("/api/staff/reconciliation/runs").status_code == 403
    with site.client() as client:
        response = client.get("/staff/reconciliation", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/staff/login")


def test_finance_resolves_a_discrepancy_with_a_note_once_and_it_is_audited(site):
    run_id, stray_id, missing_id = seed(site)
    site.person("caiwu", "finance")
    with site.client() as client:
        token = login(client, "caiwu")
        path = f"/staff/reconciliation/discrepancies/{stray_id}/resolve"
        assert client.post(path, data={"run_id": run_id, "note": "已退款"}).status_code == 403  # no CSRF token
        empty = client.post(path, data={"csrf_token": token, "run_id": run_id, "note": "  "})
        assert empty.status_code == 400 and "请填写处理说明" in empty.text
        done = client.post(path, data={"csrf_token": token, "run_id": run_id,
                                       "note": "已在商户平台原路退款，患者电话13912345678已告知"},
                           follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"].startswith(f"/staff/reconciliation/{run_id}")
        again = client.post(path, data={"csrf_token": token, "run_id": run_id, "note": "再次处理"})
        assert again.status_code == 400 and "已由 caiwu 处理" in again.text
        by_json = client.post(f"/api/staff/reconciliation/discrepancies/{missing_id}/resolve",
                              headers={"X-CSRF-Token": token}, json={"note": "HIS已补登记"})
        assert by_json.status_code == 200 and by_json.json()["discrepancy"]["resolved_by"] == "caiwu"
        run = client.get(f"/api/staff/reconciliation/runs/{run_id}").json()
        assert run["run"]["open_count"] == 0
        assert client.get(f"/api/staff/reconciliation/runs/{run_id}?open=1").json()["discrepancies"] == []
    with site.container.uow() as uow:
        stray = uow.session.get(ReconciliationDiscrepancy, stray_id)
        assert stray.resolved_by == "caiwu" and "13912345678" not in stray.resolution_note  # phone scrubbed
        entries = [e for e in audit.recent(uow) if e.action == "reconciliation.resolved"]
        assert sorted(e.target for e in entries) == sorted([f"discrepancy:{stray_id}", f"discrepancy:{missing_id}"])
        assert audit.verify_chain(uow) == (True, None)


def test_auditors_cannot_resolve(site):
    run_id, stray_id, _ = seed(site)
    site.person("shenji", "auditor")
    with site.client() as client:
        token = login(client, "shenji")
        response = client.post(f"/api/staff/reconciliation/discrepancies/{stray_id}/resolve",
                               headers={"X-CSRF-Token": token}, json={"note": "x"})
        assert response.status_code == 403
    with site.container.uow() as uow:
        assert uow.session.get(ReconciliationDiscrepancy, stray_id).resolved_at is None
