"""补打单据 and 报告打印 in a real browser: what lands on the (simulated) A4 printer is read back with
pypdf — a reprint carries its copy mark, a report's first print does not — and a document the HIS
cannot supply is said plainly on the page with where to go instead."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from medkiosk.simulators.personas import PERSONAS

from kiosk_helpers import assert_targets_and_fit, identify, printed, shoot

pytestmark = pytest.mark.browser

WANG = PERSONAS["local_employee"]


@pytest.fixture(autouse=True)
def fresh_documents(stack):
    """The demo hospital's own documents and reports. The kiosk's print log is kept (its ids are the
    printer's job ids, never reused), so each test prints documents of its own."""
    httpx.post(f"{stack.his.url}/__sim__/reset", timeout=10).raise_for_status()
    httpx.delete(f"{stack.his.url}/__sim__/faults", timeout=10)
    yield
    httpx.delete(f"{stack.his.url}/__sim__/faults", timeout=10)


def his_documents(stack) -> list[dict]:
    return httpx.get(f"{stack.his.url}/his/v1/patients/{WANG.patient_id}/documents", timeout=10).json()["documents"]


def his_reports(stack) -> list[dict]:
    return httpx.get(f"{stack.his.url}/his/v1/patients/{WANG.patient_id}/reports", timeout=10).json()["reports"]


def a4_sheets(kiosk_url: str) -> list[dict]:
    return [p for p in printed(kiosk_url) if p["kind"] == "a4"]


def pdf_text(sheet: dict) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(Path(sheet["files"][0]).read_bytes()))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def print_and_read(page, kiosk_url: str, button: str, status: str, says: str) -> str:
    """Tap a print button, wait for the page to say the paper is out, and read the new sheet back."""
    seen = {p["job_id"] for p in a4_sheets(kiosk_url)}
    page.get_by_test_id(button).click()
    expect(page.get_by_test_id(status)).to_contain_text(says, timeout=15_000)
    new = [p for p in a4_sheets(kiosk_url) if p["job_id"] not in seen]
    assert len(new) == 1, new
    return pdf_text(new[0])


def open_screen(page, kiosk_url: str, tile: str, screen: str) -> None:
    identify(page, kiosk_url, "insurance-card", "local_employee", "王*国")
    page.get_by_test_id(f"tile-{tile}").click()
    expect(page.get_by_test_id(screen)).to_be_visible(timeout=15_000)


def test_a_ct_requisition_and_a_prescription_are_reprinted_marked_as_copies(page, kiosk_url, stack):
    docs = his_documents(stack)
    ct = next(d for d in docs if d["kind"] == "requisition" and d["title"] == "CT检查申请单")
    prescription = next(d for d in docs if d["kind"] == "prescription")
    open_screen(page, kiosk_url, "reprint", "doc-list")
    expect(page.get_by_test_id(f"doc-{ct['doc_no']}")).to_contain_text("还可补打 3 次")
    assert "异地" not in page.evaluate("document.body.innerText")
    assert_targets_and_fit(page)
    shoot(page, "doc-list")

    text = print_and_read(page, kiosk_url, f"doc-print-{ct['doc_no']}", f"doc-status-{ct['doc_no']}",
                          "已打印（复印件，第 1 次）")
    for expected in ("CT检查申请单", "复印件", "补打", "第1次打印", ct["doc_no"], "王建国"):
        assert expected in text, expected
    assert WANG.id_number not in text  # the ID number is masked even on A4
    # 再打一份: the second copy says so.
    again = print_and_read(page, kiosk_url, f"doc-print-{ct['doc_no']}", f"doc-status-{ct['doc_no']}",
                           "已打印（复印件，第 2 次）")
    assert "复印件" in again and "第2次打印" in again

    copy = print_and_read(page, kiosk_url, f"doc-print-{prescription['doc_no']}",
                          f"doc-status-{prescription['doc_no']}", "已打印（复印件，第 1 次）")
    for expected in ("处方笺", "复印件", "补打", "Rp."):
        assert expected in copy, expected
    shoot(page, "doc-printed")
    # The page shows the masked name only; the full one is on paper, where the departments need it.
    assert WANG.name not in page.evaluate("document.documentElement.textContent")


def test_a_report_prints_as_the_original_once_and_then_as_a_copy(page, kiosk_url, stack):
    blood = next(r for r in his_reports(stack) if r["title"].startswith("血常规"))
    open_screen(page, kiosk_url, "reports", "report-list")
    expect(page.get_by_test_id(f"report-{blood['report_no']}")).to_contain_text("尚未打印")
    shoot(page, "report-list")

    first = print_and_read(page, kiosk_url, f"report-print-{blood['report_no']}",
                           f"report-status-{blood['report_no']}", "报告已打印")
    assert "血常规" in first and "复印件" not in first and "补打" not in first
    copy = print_and_read(page, kiosk_url, f"report-print-{blood['report_no']}",
                          f"report-status-{blood['report_no']}", "已打印（复印件，第 2 次）")
    assert "复印件" in copy and "第2次打印" in copy and "血常规" in copy
    counted = next(r for r in his_reports(stack) if r["report_no"] == blood["report_no"])
    assert counted["print_count"] == 2  # the HIS heard of both prints


def test_a_requisition_the_his_holds_only_on_paper_is_greyed_with_where_to_go(page, kiosk_url, stack):
    paper = {"order_no": "CFPAPER0001", "patient_id": WANG.patient_id, "visit_no": "MZPAPER0001", "exam_type": "ecg",
             "exam_name": "常规十二导联心电图", "body_part": "心脏", "department_code": "0703", "status": "paid",
             "ordered_on": "2026-11-20", "amount": "25.00", "ordering_department_code": "0101", "paper_only": True}
    assert httpx.post(f"{stack.his.url}/__sim__/data/exam_orders", json=[paper], timeout=10).status_code == 200
    open_screen(page, kiosk_url, "reprint", "doc-list")
    note = page.get_by_test_id("doc-unavailable-CFPAPER0001")
    expect(note).to_contain_text("手写")
    expect(note).to_contain_text("请到开单科室（心血管内科）或门诊服务中心")
    expect(page.get_by_test_id("doc-print-CFPAPER0001")).to_have_count(0)  # nothing to tap
    shoot(page, "doc-paper-only")


def test_the_his_unable_to_list_or_supply_documents_says_where_to_print_instead(page, kiosk_url, stack, problems):
    requisition = next(d for d in his_documents(stack) if d["kind"] == "requisition" and d["title"] != "CT检查申请单")
    httpx.post(f"{stack.his.url}/__sim__/faults", json={"operation": "documents.list", "kind": "error"},
               timeout=10).raise_for_status()
    open_screen(page, kiosk_url, "reprint", "doc-error")
    error = page.get_by_test_id("doc-error")
    expect(error).to_contain_text("暂时无法")
    expect(error).to_contain_text("门诊服务中心")
    shoot(page, "doc-his-down")

    # Listed, but the HIS cannot give the document when it is printed: nothing comes out, said so.
    httpx.delete(f"{stack.his.url}/__sim__/faults", timeout=10)
    httpx.post(f"{stack.his.url}/__sim__/faults", json={"operation": "documents.get", "kind": "error"},
               timeout=10).raise_for_status()
    page.get_by_test_id("nav-back").click()
    page.get_by_test_id("tile-reprint").click()
    expect(page.get_by_test_id(f"doc-print-{requisition['doc_no']}")).to_be_visible(timeout=15_000)
    before = len(a4_sheets(kiosk_url))
    page.get_by_test_id(f"doc-print-{requisition['doc_no']}").click()
    status = page.get_by_test_id(f"doc-status-{requisition['doc_no']}")
    expect(status).to_contain_text("医院系统暂时无法提供这份单据", timeout=15_000)
    expect(status).to_contain_text("门诊服务中心")
    assert len(a4_sheets(kiosk_url)) == before
    # The failed print is not counted: all three reprints are still there.
    httpx.delete(f"{stack.his.url}/__sim__/faults", timeout=10)
    page.get_by_test_id("nav-back").click()
    page.get_by_test_id("tile-reprint").click()
    expect(page.get_by_test_id(f"doc-{requisition['doc_no']}")).to_contain_text("还可补打 3 次", timeout=15_000)
    problems.forgive("503")  # the HIS faults provoked above, as the browser logs them
