"""E-invoices: the adapter against the e-invoice simulator over real HTTP, the PDFs read back with pypdf."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from pypdf import PdfReader
from reportlab.platypus import Paragraph

from medkiosk.adapters.einvoice.http import EInvoiceHttpAdapter
from medkiosk.adapters.einvoice.port import InvoiceKind, InvoiceRequest, InvoiceStatus
from medkiosk.adapters.errors import UpstreamNotFound, UpstreamRefused, UpstreamUnknown
from medkiosk.documents.pdf import (
    FALLBACK_CID_FONT,
    cjk_font,
    find_cjk_font_files,
    render_a4,
    styles,
)
from medkiosk.simulators.einvoice.app import create_app
from medkiosk.simulators.einvoice.document import amount_in_words

from simulator_fixtures import simulator_fixtures

PAID_AT = dt.datetime(2026, 11, 25, 9, 30, 12, tzinfo=dt.timezone(dt.timedelta(hours=8)))
PAYER = "王建国"


server, sim = simulator_fixtures(create_app, name="einvoice-sim")


@pytest.fixture
def einvoice(server, sim):
    with EInvoiceHttpAdapter(server.url, timeout=5) as adapter:
        yield adapter


def bill(key: str = "PO20261125093000AB12-invoice", bill_no: str = "PO20261125093000AB12",
         **overrides) -> InvoiceRequest:
    """A local employee's outpatient bill: a CT, a drug and a blood test, split by insurance."""
    fields = {
        "idempotency_key": key, "bill_no": bill_no, "payer_name": PAYER, "payer_id_type": "resident_id",
        "total": "231.60", "fund": "120.00", "account": "50.00", "cash": "61.60",
        "items": [{"name": "胸部CT平扫", "amount": "180.00", "category": "exam"},
                  {"name": "阿司匹林肠溶片 100mg×30片", "amount": "31.60", "category": "drug"},
                  {"name": "血常规（五分类）", "amount": "20.00", "category": "化验费"}],
        "insurance_type": "职工基本医疗保险", "issued_at": PAID_AT,
    } | overrides
    return InvoiceRequest(**fields)


def text_of(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF-")
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def fault(sim, **spec) -> None:
    sim.post("/__sim__/faults", json=spec).raise_for_status()


# -- issuing ----------------------------------------------------------------------------------------------

def test_issuing_gives_an_invoice_code_number_and_check_code(einvoice, server):
    invoice = einvoice.issue(bill())
    assert len(invoice.invoice_code) == 8 and invoice.invoice_code.isdigit()
    assert len(invoice.invoice_no) == 10 and invoice.invoice_no.isdigit()
    assert len(invoice.check_code) == 6
    assert (invoice.kind, invoice.status) == (InvoiceKind.BLUE, InvoiceStatus.ISSUED)
    assert (invoice.total, invoice.fund, invoice.account, invoice.cash) == \
        (Decimal("231.60"), Decimal("120.00"), Decimal("50.00"), Decimal("61.60"))
    assert invoice.issued_at == PAID_AT
    assert invoice.pdf_url == f"{server.url}/einvoice/v1/invoices/{invoice.invoice_no}/pdf"
    assert [i.category for i in invoice.items] == ["检查费", "西药费", "化验费"]


def test_issuing_again_with_the_same_key_returns_the_same_invoice(einvoice, sim):
    first = einvoice.issue(bill())
    later = einvoice.issue(bill(issued_at=PAID_AT + dt.timedelta(minutes=3)))  # a retry stamped later
    assert later == first
    assert einvoice.find(first.bill_no) == [first]
    raw = sim.post("/einvoice/v1/invoices", json=bill().model_dump(mode="json"))
    assert raw.status_code == 201 and raw.headers["idempotent-replayed"] == "true"


def test_the_same_key_for_another_bill_is_refused(einvoice):
    einvoice.issue(bill())
    with pytest.raises(UpstreamRefused) as refused:
        einvoice.issue(bill(bill_no="PO-ANOTHER"))
    assert refused.value.code == "IDEMPOTENCY_CONFLICT"


def test_a_second_invoice_for_an_invoiced_bill_is_refused(einvoice):
    first = einvoice.issue(bill())
    with pytest.raises(UpstreamRefused) as refused:
        einvoice.issue(bill(key="another-key"))
    assert refused.value.code == "BILL_INVOICED" and first.invoice_no in refused.value.message


@pytest.mark.parametrize("change, words", [
    ({"cash": "61.59"}, "之和不等于合计"),
    ({"total": "231.00", "cash": "61.00"}, "明细合计231.60元"),
    ({"total": "0.00", "fund": "0.00", "account": "0.00", "cash": "0.00",
      "items": [{"name": "免费项目", "amount": "0.00", "category": "其他费用"}]}, "大于零"),
], ids=["split", "items", "zero"])
def test_amounts_that_do_not_add_up_are_refused(einvoice, change, words):
    with pytest.raises(UpstreamRefused) as refused:
        einvoice.issue(bill(**change))
    assert words in refused.value.message
    assert einvoice.find(bill().bill_no) == []


def test_an_unknown_category_travels_as_it_is_and_a_float_amount_is_refused_on_the_wire(einvoice, sim):
    invoice = einvoice.issue(bill(items=[{"name": "胸部CT平扫", "amount": "231.60", "category": "放射检查费"}]))
    assert invoice.items[0].category == "放射检查费"
    wire = bill(key="k2", bill_no="b2").model_dump(mode="json") | {"total": 231.6}
    reply = sim.post("/einvoice/v1/invoices", json=wire)
    assert reply.status_code == 422 and reply.json()["code"] == "INVALID" and "total" in reply.json()["message"]


# -- the PDF ---------------------------------------------------------------------------------------------

def test_the_pdf_shows_the_title_numbers_payer_items_and_amounts(einvoice):
    invoice = einvoice.issue(bill())
    text = text_of(einvoice.pdf(invoice.invoice_no))
    for expected in ("医疗收费电子票据", invoice.invoice_code, invoice.invoice_no, invoice.check_code, PAYER,
                     "胸部CT平扫", "检查费", "180.00", "231.60", "贰佰叁拾壹元陆角整",
                     "医保统筹基金支付", "120.00", "个人账户支付", "50.00", "个人现金支付", "61.60",
                     "职工基本医疗保险", "2026-11-25 09:30:12"):
        assert expected in text, expected
    assert "异地医保结算" not in text and "红冲" not in text


def test_a_cross_region_settlement_says_so_on_the_pdf(einvoice):
    invoice = einvoice.issue(bill(cross_region_note="参保地：安徽省合肥市（340100）"))
    text = text_of(einvoice.pdf(invoice.invoice_no))
    assert "异地医保结算" in text and "安徽省合肥市" in text


def test_a_note_that_already_names_the_cross_region_settlement_is_not_doubled(einvoice):
    invoice = einvoice.issue(bill(cross_region_note="异地医保结算"))
    assert text_of(einvoice.pdf(invoice.invoice_no)).count("异地医保结算") == 1


def test_the_same_invoice_renders_the_same_bytes(einvoice):
    invoice = einvoice.issue(bill())
    assert einvoice.pdf(invoice.invoice_no) == einvoice.pdf(invoice.invoice_no)


# -- voiding (红冲) ----------------------------------------------------------------------------------------

def test_voiding_issues_a_red_letter_invoice_whose_pdf_says_so(einvoice):
    blue = einvoice.issue(bill())

    voided = einvoice.void(blue.invoice_no, "PO20261125093000AB12-void", "退费")

    assert voided.original_invoice_no == blue.invoice_no
    assert voided.red_invoice_no != blue.invoice_no and voided.total == blue.total and voided.reason == "退费"
    assert voided.pdf_url.endswith(f"/invoices/{voided.red_invoice_no}/pdf")
    red_text = text_of(einvoice.pdf(voided.red_invoice_no))
    for expected in ("医疗收费电子票据", "红冲", voided.red_invoice_no, blue.invoice_no, "-231.60", "退费",
                     "负贰佰叁拾壹元陆角整"):
        assert expected in red_text, expected
    blue_text = text_of(einvoice.pdf(blue.invoice_no))
    assert "已红冲" in blue_text and voided.red_invoice_no in blue_text

    both = einvoice.find(blue.bill_no)
    assert [(i.invoice_no, i.kind, i.status) for i in both] == [
        (blue.invoice_no, InvoiceKind.BLUE, InvoiceStatus.VOIDED),
        (voided.red_invoice_no, InvoiceKind.RED, InvoiceStatus.ISSUED)]
    assert both[0].red_invoice_no == voided.red_invoice_no and both[1].original_invoice_no == blue.invoice_no


def test_voiding_twice_with_the_same_key_returns_the_same_red_invoice(einvoice, sim):
    blue = einvoice.issue(bill())
    first = einvoice.void(blue.invoice_no, "void-1", "退费")
    assert einvoice.void(blue.invoice_no, "void-1", "退费") == first
    assert len(einvoice.find(blue.bill_no)) == 2
    raw = sim.post(f"/einvoice/v1/invoices/{blue.invoice_no}/void", json={"idempotency_key": "void-1",
                                                                           "reason": "退费"})
    assert raw.status_code == 200 and raw.headers["idempotent-replayed"] == "true"


def test_voiding_a_voided_invoice_anew_is_refused_naming_its_red_invoice(einvoice):
    blue = einvoice.issue(bill())
    first = einvoice.void(blue.invoice_no, "void-1", "退费")
    with pytest.raises(UpstreamRefused) as refused:
        einvoice.void(blue.invoice_no, "void-2", "再次退费")
    assert refused.value.code == "ALREADY_VOIDED"
    assert "已" in refused.value.message and first.red_invoice_no in refused.value.message
    with pytest.raises(UpstreamRefused) as red:
        einvoice.void(first.red_invoice_no, "void-3", "冲红字票据")
    assert red.value.code == "RED_INVOICE"


def test_a_bill_voided_can_be_invoiced_again(einvoice):
    blue = einvoice.issue(bill())
    einvoice.void(blue.invoice_no, "void-1", "金额更正")
    again = einvoice.issue(bill(key="reissue-1"))
    assert again.invoice_no not in (blue.invoice_no,) and again.status is InvoiceStatus.ISSUED


def test_unknown_invoices_are_not_found(einvoice):
    with pytest.raises(UpstreamNotFound):
        einvoice.void("0000000001", "void-1", "退费")
    with pytest.raises(UpstreamNotFound):
        einvoice.pdf("0000000001")
    assert einvoice.find("PO-NONE") == []


# -- faults ---------------------------------------------------------------------------------------------

def test_a_lost_reply_on_issue_then_a_retry_returns_the_same_invoice(server, sim):
    fault(sim, operation="einvoice.issue", kind="lost_reply", hang_seconds=1.0, count=1)
    with EInvoiceHttpAdapter(server.url, timeout=0.3) as impatient:
        with pytest.raises(UpstreamUnknown) as unknown:
            impatient.issue(bill())
        assert unknown.value.code == "TIMEOUT"
        retried = impatient.issue(bill())
        assert impatient.find(bill().bill_no) == [retried]
    assert len(sim.get("/__sim__/calls", params={"operation": "einvoice.issue"}).json()) == 2


def test_a_lost_reply_on_void_then_a_retry_returns_the_same_red_invoice(server, sim, einvoice):
    blue = einvoice.issue(bill())
    fault(sim, operation="einvoice.void", kind="lost_reply", hang_seconds=1.0, count=1)
    with EInvoiceHttpAdapter(server.url, timeout=0.3) as impatient:
        with pytest.raises(UpstreamUnknown):
            impatient.void(blue.invoice_no, "void-1", "退费")
        retried = impatient.void(blue.invoice_no, "void-1", "退费")
    assert [i.invoice_no for i in einvoice.find(blue.bill_no)] == [blue.invoice_no, retried.red_invoice_no]


def test_an_outage_is_an_unknown_outcome_and_an_injected_refusal_a_refusal(einvoice, sim):
    fault(sim, operation="einvoice.issue", kind="error", count=1, message="票据平台维护中")
    with pytest.raises(UpstreamUnknown) as unknown:
        einvoice.issue(bill())
    assert unknown.value.message == "票据平台维护中"
    fault(sim, operation="einvoice.issue", kind="error", code="REFUSED", count=1, message="票据库存不足，请联系财务")
    with pytest.raises(UpstreamRefused) as refused:
        einvoice.issue(bill())
    assert refused.value.message == "票据库存不足，请联系财务"
    invoice = einvoice.issue(bill())
    fault(sim, operation="einvoice.pdf", kind="error", count=1)
    with pytest.raises(UpstreamUnknown):
        einvoice.pdf(invoice.invoice_no)
    assert einvoice.pdf(invoice.invoice_no).startswith(b"%PDF-")


def test_the_payer_name_stays_out_of_logs_journal_and_repr(einvoice, sim, caplog):
    caplog.set_level(logging.DEBUG, logger="medkiosk.adapters.einvoice")
    invoice = einvoice.issue(bill())
    with pytest.raises(UpstreamRefused):
        einvoice.issue(bill(key="another-key"))
    lines = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("medkiosk.adapters.einvoice"))
    assert lines and PAYER not in lines
    assert PAYER not in repr(invoice) and PAYER not in repr(bill())
    journal = json.dumps(sim.get("/__sim__/calls").json(), ensure_ascii=False)
    assert PAYER not in journal and "王*国" in journal


def test_loaded_invoices_must_hang_together(sim, einvoice):
    blue = einvoice.issue(bill())
    einvoice.void(blue.invoice_no, "void-1", "退费")
    invoices = sim.get("/__sim__/state/invoices").json()
    reply = sim.post("/__sim__/load", json={"invoices": [invoices[1]]})  # a red invoice without its blue one
    assert reply.status_code == 422 and "does not exist" in reply.json()["detail"]
    assert len(sim.get("/__sim__/state/invoices").json()) == 2
    sim.post("/__sim__/reset").raise_for_status()
    assert einvoice.find(blue.bill_no) == []


# -- the adapter's reading of replies the simulator does not send --------------------------------------

def adapter_answering(handler) -> EInvoiceHttpAdapter:
    return EInvoiceHttpAdapter("http://einvoice.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("reply, error", [
    (httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"}), UpstreamUnknown),
    (httpx.Response(502, json={"code": "GATEWAY", "message": "网关错误"}), UpstreamUnknown),
    (httpx.Response(409, json={"code": "ALREADY_VOIDED", "message": "已红冲"}), UpstreamRefused),
    (httpx.Response(404, json={"code": "NOT_FOUND", "message": "无此票据"}), UpstreamNotFound),
])
def test_the_adapter_maps_every_pdf_reply_to_a_refusal_or_an_unknown_outcome(reply, error):
    with adapter_answering(lambda request: reply) as adapter, pytest.raises(error) as raised:
        adapter.pdf("0000000001")
    assert type(raised.value) is error and raised.value.system == "einvoice" and raised.value.message


def test_the_adapter_sends_amounts_as_strings_and_categories_in_chinese():
    seen = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, text="{not json")

    with adapter_answering(record) as adapter, pytest.raises(UpstreamUnknown) as unknown:
        adapter.issue(bill())
    assert unknown.value.code == "UNPARSABLE"
    [body] = seen
    assert (body["total"], body["fund"], body["account"], body["cash"]) == ("231.60", "120.00", "50.00", "61.60")
    assert [i["category"] for i in body["items"]] == ["检查费", "西药费", "化验费"]
    assert body["payer_name"] == PAYER and body["issued_at"] == "2026-11-25T09:30:12+08:00"


# -- amounts in words and the shared PDF helper ------------------------------------------------------------

@pytest.mark.parametrize("amount, words", [
    ("0.00", "零元整"), ("0.50", "伍角整"), ("0.05", "伍分"), ("10.00", "壹拾元整"), ("23.45", "贰拾叁元肆角伍分"),
    ("180.00", "壹佰捌拾元整"), ("1005.07", "壹仟零伍元零柒分"), ("10005.00", "壹万零伍元整"),
    ("101000.00", "壹拾万壹仟元整"), ("100000005.10", "壹亿零伍元壹角整"), ("-231.60", "负贰佰叁拾壹元陆角整"),
])
def test_amounts_are_written_in_capital_numerals(amount, words):
    assert amount_in_words(Decimal(amount)) == words


def test_without_a_usable_font_file_chinese_is_drawn_with_the_standard_cid_font():
    font = cjk_font([])
    assert font.name == FALLBACK_CID_FONT and not font.embedded
    pdf = render_a4([Paragraph("检查申请单：头颅MRI平扫 ￥450.00", styles(font)["body"])], title="检查申请单")
    assert "检查申请单：头颅MRI平扫" in text_of(pdf) and "450.00" in text_of(pdf)


def test_a_font_reportlab_cannot_embed_or_without_chinese_is_passed_over(tmp_path):
    cannot = [p for p in find_cjk_font_files() if p.suffix in (".ttc", ".otf") and "Noto" in p.name]
    not_chinese = [p for p in Path("/usr/share/fonts").rglob("DejaVuSans.ttf")]
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    font = cjk_font([broken, *not_chinese[:1]])
    assert font.name == FALLBACK_CID_FONT
    if cannot:  # Debian's Noto CJK has PostScript outlines, which ReportLab cannot embed
        chosen = cjk_font(cannot[:1])
        assert chosen.embedded or chosen.name == FALLBACK_CID_FONT


def test_the_default_font_draws_text_that_reads_back():
    font = cjk_font()
    s = styles(font)
    pdf = render_a4([Paragraph("医疗收费电子票据", s["title"]), Paragraph("<b>处方</b>底方", s["body"])],
                    title="测试")
    assert "医疗收费电子票据" in text_of(pdf) and "处方底方" in text_of(pdf).replace("\n", "")
