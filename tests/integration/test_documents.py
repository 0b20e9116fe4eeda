"""A4 reprints (requisitions, prescription copies) and report printing, checked by the text in the PDFs."""

from __future__ import annotations

import io

import httpx
import pytest
from pypdf import PdfReader

from medkiosk.settings import TerminalType
from medkiosk.simulators.personas import PERSONAS

from kiosk_client import Kiosk
from simulator_fixtures import serving, service_container, simulators_fixture

WANG = PERSONAS["local_employee"]


simulators = simulators_fixture("his", "insurance")


@pytest.fixture
def world(database_url, simulators):
    container = service_container(database_url, simulators, upstream_timeout_seconds=3)
    with serving(container) as url:
        kiosk = Kiosk(url, "K001", container.devices.enroll("K001", TerminalType.OUTPATIENT))
        kiosk.his = simulators["his"].url
        kiosk.insert_insurance_card("local_employee")
        yield kiosk


def print_pdf(kiosk: Kiosk, kind: str, doc_no: str, *, printed: bool = True) -> tuple[dict, str]:
    job = kiosk.post(f"/api/kiosk/documents/{kind}/{doc_no}/print")
    response = kiosk.request("GET", f"/api/kiosk/{job['pdf']}")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf", response.text
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    kiosk.post(f"/api/kiosk/documents/prints/{job['print_id']}/result", {"printed": printed})
    return job, text


def test_a_ct_requisition_is_reprinted_as_a_marked_copy_up_to_its_limit(world):
    docs = world.get("/api/kiosk/documents")["documents"]
    ct = next(d for d in docs if d["kind"] == "requisition" and d["title"] == "CT检查申请单" and d["prints_left"])
    job, text = print_pdf(world, "requisition", ct["doc_no"])
    assert job["copy"] is True and job["print_no"] == 1
    for expected in ("CT检查申请单", "复印件", "补打", "胸部CT平扫", "放射科", "王建国", ct["doc_no"], "第1次打印"):
        assert expected in text, expected
    assert WANG.id_number not in text and "3201**********4210" in text  # the ID number masked
    print_pdf(world, "requisition", ct["doc_no"])
    print_pdf(world, "requisition", ct["doc_no"])
    refused = world.post(f"/api/kiosk/documents/requisition/{ct['doc_no']}/print", expect=409)
    assert "上限" in refused["message"] and "门诊服务中心" in refused["next_step"]
    listed = next(d for d in world.get("/api/kiosk/documents")["documents"] if d["doc_no"] == ct["doc_no"])
    assert listed["prints"] == 3 and listed["prints_left"] == 0


def test_a_prescription_copy_lists_its_drugs_and_how_to_take_them(world):
    docs = world.get("/api/kiosk/documents")["documents"]
    prescription = next(d for d in docs if d["kind"] == "prescription" and d["subject"].endswith("等"))
    _job, text = print_pdf(world, "prescription", prescription["doc_no"])
    for expected in ("处方笺", "复印件", "Rp.", "重组人干扰素α2b喷雾剂", "喷鼻", "合计"):
        assert expected in text, expected


def test_a_report_prints_once_as_the_original_and_then_as_copies(world):
    reports = world.get("/api/kiosk/documents/reports")["reports"]
    blood = next(r for r in reports if r["title"].startswith("血常规"))
    assert blood["status"] == "ready" and blood["printed"] is False
    job, text = print_pdf(world, "report", blood["report_no"])
    assert job["copy"] is False
    for expected in ("检验报告单", "血常规", "白细胞计数", "11.2", "↑", "3.5–9.5", "王建国"):
        assert expected in text, expected
    assert "复印件" not in text
    his = httpx.get(f"{world.his}/his/v1/patients/{WANG.patient_id}/reports").json()["reports"]
    assert next(r for r in his if r["report_no"] == blood["report_no"])["print_count"] == 1
    again, copy_text = print_pdf(world, "report", blood["report_no"])
    assert again["copy"] is True and "复印件" in copy_text and "第2次打印" in copy_text
    assert next(r for r in world.get("/api/kiosk/documents/reports")["reports"]
                if r["report_no"] == blood["report_no"])["printed"] is True


def test_a_print_the_printer_refused_is_not_counted_so_the_original_is_printed_again(world):
    ct_report = next(r for r in world.get("/api/kiosk/documents/reports")["reports"] if r["kind"] == "exam")
    failed, _ = print_pdf(world, "report", ct_report["report_no"], printed=False)
    retried, text = print_pdf(world, "report", ct_report["report_no"])
    assert failed["copy"] is False and retried["copy"] is False
    assert "检查所见" in text and "诊断意见" in text and "磨玻璃结节" in text


def test_a_pending_report_says_when_it_will_be_ready(world):
    pending = next(r for r in world.get("/api/kiosk/documents/reports")["reports"] if r["status"] == "pending")
    refused = world.post(f"/api/kiosk/documents/report/{pending['report_no']}/print", expect=409)
    assert "尚未出具" in refused["message"] and "16:00" in refused["next_step"]


def test_a_requisition_the_his_holds_only_on_paper_says_where_to_go(world):
    paper = {"order_no": "CFPAPER0001", "patient_id": WANG.patient_id, "visit_no": "MZPAPER0001", "exam_type": "ecg",
             "exam_name": "常规十二导联心电图", "body_part": "心脏", "department_code": "0703", "status": "paid",
             "ordered_on": "2026-11-20", "amount": "25.00", "ordering_department_code": "0101", "paper_only": True}
    assert httpx.post(f"{world.his}/__sim__/data/exam_orders", json=[paper]).status_code == 200
    listed = next(d for d in world.get("/api/kiosk/documents")["documents"] if d["doc_no"] == "CFPAPER0001")
    assert listed["available"] is False and "手写" in listed["unavailable_reason"]
    assert "心血管内科" in listed["where_to_go"]
    refused = world.post("/api/kiosk/documents/requisition/CFPAPER0001/print", expect=409)
    assert "无法提供" in refused["message"] and "开单科室" in refused["next_step"]


def test_the_his_unable_to_answer_is_said_with_where_to_print_instead(world):
    httpx.post(f"{world.his}/__sim__/faults", json={"operation": "documents.list", "kind": "error"})
    try:
        refused = world.get("/api/kiosk/documents", expect=503)
    finally:
        httpx.delete(f"{world.his}/__sim__/faults")
    assert "暂时无法" in refused["message"] and "门诊服务中心" in refused["next_step"]
