"""A4 paper from the HIS: exam requisitions and prescription copies reprinted (补打), lab and exam reports.

Every print is logged (document_prints) with its number for that document. Requisitions and
prescriptions are always copies (the original was issued on paper at the clinic) and carry
复印件/补打 on every page; a report's first print is the original, every later one a copy. Each
document has a limit of prints at the kiosks; past it, and when the HIS cannot supply a document,
the patient is told where to go. The PDF is drawn here (ReportLab, the project's CJK font) from
the HIS's data and printed by the kiosk's agent.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic_settings import BaseSettings, SettingsConfigDict
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from medkiosk.adapters.errors import UpstreamError, UpstreamRefused
from medkiosk.adapters.his.port import DocumentKind, HisDocument, HisPort, Report, ReportKind, ReportStatus
from medkiosk.documents.pdf import cjk_font, render_a4, ruled_table, styles
from medkiosk.domain.masking import mask_card, mask_id_number
from medkiosk.logging import get_logger
from medkiosk.services.clock import Clock, as_utc
from medkiosk.services.devices import AuthenticatedDevice
from medkiosk.services.sessions import SessionService
from medkiosk.store.models_exams import DocumentPrint

log = get_logger(__name__)

SERVICE_DESK = "门诊服务中心（门诊楼1层大厅）"
KIND_LABELS = {"requisition": "检查申请单", "prescription": "处方底方", "report": "报告"}
ISSUED, PRINTED, FAILED = "issued", "printed", "failed"
COUNTED = (ISSUED, PRINTED)  # an issued print whose outcome never came back counts as printed


@dataclass(frozen=True)
class PrintLimits:
    """How many prints of one document the kiosks give (a report: its original and its copies)."""

    requisition: int = 3
    prescription: int = 3
    report: int = 4

    def of(self, kind: str) -> int:
        return getattr(self, kind)


class DocumentSettings(BaseSettings):
    """``MEDKIOSK_DOCUMENT_LIMIT_REQUISITION`` …: prints per document at the kiosks."""

    model_config = SettingsConfigDict(env_prefix="MEDKIOSK_DOCUMENT_", env_file=None, extra="ignore")

    limit_requisition: int = 3
    limit_prescription: int = 3
    limit_report: int = 4

    def limits(self) -> PrintLimits:
        return PrintLimits(self.limit_requisition, self.limit_prescription, self.limit_report)


class DocumentRefused(Exception):
    """What the patient is told when a document cannot be printed here, and where to go instead."""

    def __init__(self, message: str, next_step: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.next_step = next_step
        self.status = status


T = TypeVar("T")


class DocumentService:
    def __init__(self, uow_factory, clock: Clock, sessions: SessionService, his: HisPort, *, tz: ZoneInfo,
                 hospital_name: str, limits: PrintLimits = PrintLimits()) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._sessions = sessions
        self._his = his
        self._tz = tz
        self._hospital_name = hospital_name
        self.limits = limits

    # -- lists -----------------------------------------------------------------------------------
    def documents(self, device: AuthenticatedDevice) -> dict[str, Any]:
        """Requisitions and prescriptions to reprint, with how many prints are left of each."""
        found, counts = self._listed(device, self._his.documents, "单据")
        listed = []
        for d in found:
            kind = d.kind.value
            used = counts.get(f"{kind}:{d.doc_no}", 0)
            listed.append({
                "doc_no": d.doc_no, "kind": kind, "kind_label": KIND_LABELS[kind], "title": d.title,
                "subject": d.subject, "issued_on": d.issued_on.isoformat(), "department_name": d.department_name,
                "doctor_name": d.doctor_name, "available": d.available, "prints": used,
                "prints_left": max(self.limits.of(kind) - used, 0),
                "unavailable_reason": d.unavailable_reason,
                "where_to_go": self._where(kind, d.department_name) if not d.available else "",
            })
        return {"documents": listed, "limit_note": f"每份单据在自助机最多补打{self.limits.requisition}次"}

    def reports(self, device: AuthenticatedDevice) -> dict[str, Any]:
        """Lab and exam reports: ready ones to print (the first print is the original), pending ones with when."""
        found, counts = self._listed(device, self._his.reports, "报告")
        listed = []
        for r in found:
            used = counts.get(f"report:{r.report_no}", 0)
            printed = used > 0 or r.print_count > 0
            listed.append({
                "report_no": r.report_no, "kind": r.kind.value, "kind_label": "检验报告" if r.kind is ReportKind.LAB
                else "检查报告", "title": r.title, "department": r.department, "status": r.status.value,
                "ready_at": self._local(r.ready_at), "expected_at": self._local(r.expected_at),
                "printed": printed, "prints_left": max(self.limits.report - used, 0),
            })
        return {"reports": listed}

    # -- printing ---------------------------------------------------------------------------------
    def issue(self, device: AuthenticatedDevice, kind: str, doc_no: str) -> dict[str, Any]:
        """Reserve the next print of a document (checked against its limit); the PDF follows from ``pdf``."""
        payer = self._sessions.payer(device)
        title, his_printed = self._check_supply(payer.his_patient_id, kind, doc_no)
        doc_key = f"{kind}:{doc_no}"
        limit = self.limits.of(kind)
        for _attempt in range(5):
            with self._uow() as uow:
                rows = list(uow.session.scalars(select(DocumentPrint).where(DocumentPrint.doc_key == doc_key)))
                counted = [r for r in rows if r.state in COUNTED]
                if len(counted) >= limit:
                    raise DocumentRefused(
                        f"该{KIND_LABELS[kind]}已在自助机打印{len(counted)}次，已达到打印上限。",
                        f"如还需要，请到{SERVICE_DESK}办理")
                # Requisitions and prescriptions are always copies; a report's first print is its original.
                copy = kind != "report" or bool(counted) or his_printed
                row = DocumentPrint(doc_key=doc_key, seq=max((r.seq for r in rows), default=0) + 1, kind=kind,
                                    doc_no=doc_no, title=title[:60], patient_id=payer.patient_row_id, copy=copy,
                                    state=ISSUED, device_id=device.id, created_at=self._clock.now())
                uow.session.add(row)
                try:
                    uow.commit()
                except IntegrityError:
                    continue  # another kiosk took this number at the same moment: look again
                print_no = len(counted) + 1
                log.info("document.issued", kind=kind, doc_no=doc_no, seq=row.seq, copy=copy, device_id=device.id)
                return {"print_id": row.id, "kind": kind, "doc_no": doc_no, "title": row.title, "copy": copy,
                        "print_no": print_no, "prints_left": limit - print_no,
                        "job_id": f"doc-{row.id}", "pdf": f"documents/prints/{row.id}.pdf"}
        raise DocumentRefused("打印繁忙，请稍后再试。", "请稍后重试", status=503)

    def pdf(self, device: AuthenticatedDevice, print_id: int) -> bytes:
        """The PDF of a reserved print, drawn from the HIS's data with its copy marking."""
        payer = self._sessions.payer(device)
        with self._uow() as uow:
            row = uow.session.get(DocumentPrint, print_id)
            if row is None or row.patient_id != payer.patient_row_id or row.state == FAILED:
                raise DocumentRefused("没有找到这份打印任务。", "请返回重新选择", status=404)
            counted_before = uow.session.scalar(select(func.count()).select_from(DocumentPrint).where(
                DocumentPrint.doc_key == row.doc_key, DocumentPrint.seq < row.seq,
                DocumentPrint.state.in_(COUNTED))) or 0
        printed_at = self._clock.now().astimezone(self._tz)
        mark = CopyMark(row.copy, counted_before + 1, printed_at, device.id)
        try:
            if row.kind == "report":
                return render_report(self._his.report(row.doc_no), hospital_name=self._hospital_name, mark=mark,
                                     local=self._local_dt)
            return render_document(self._his.document(row.doc_no), hospital_name=self._hospital_name, mark=mark)
        except UpstreamError as exc:
            self.finish(device, print_id, printed=False, detail=f"his: {type(exc).__name__}")
            raise self._unsupplied(exc, row.kind, "") from exc

    def finish(self, device: AuthenticatedDevice, print_id: int, *, printed: bool, detail: str = "") -> dict[str, Any]:
        """The agent's answer: printed (counted; the HIS hears of a report's print) or failed (not counted)."""
        payer = self._sessions.payer(device)
        with self._uow() as uow:
            row = uow.session.get(DocumentPrint, print_id, with_for_update=True)
            if row is None or row.patient_id != payer.patient_row_id:
                raise DocumentRefused("没有找到这份打印任务。", "请返回重新选择", status=404)
            first_time = row.state == ISSUED
            if first_time:
                row.state = PRINTED if printed else FAILED
                row.detail = detail[:500]
                row.finished_at = self._clock.now()
                uow.commit()
            kind, doc_no, state = row.kind, row.doc_no, row.state
        log.info("document.finished", kind=kind, doc_no=doc_no, print_id=print_id, state=state, device_id=device.id)
        if first_time and state == PRINTED and kind == "report":
            try:
                self._his.report_printed(doc_no)
            except UpstreamError as exc:  # the print is ours to count; the HIS count is for other desks
                log.warning("document.his_print_count_failed", doc_no=doc_no, error=type(exc).__name__)
        return {"print_id": print_id, "state": state}

    # -- internals -------------------------------------------------------------------------------
    def _listed(self, device: AuthenticatedDevice, fetch: Callable[[str], list[T]],
                what: str) -> tuple[list[T], dict[str, int]]:
        """The patient's papers as the HIS lists them (``what``, to name them in a refusal), and how
        many times each has been printed here."""
        payer = self._sessions.payer(device)
        try:
            found = fetch(payer.his_patient_id)
        except UpstreamError as exc:
            raise DocumentRefused(f"医院系统暂时无法查询您的{what}。", f"请稍后再试，或到{SERVICE_DESK}打印",
                                  status=503) from exc
        return found, self._counts(payer.patient_row_id)

    def _check_supply(self, his_patient_id: str, kind: str, doc_no: str) -> tuple[str, bool]:
        """The document's title and whether the HIS counted a print already; refused when it cannot be had."""
        if kind not in KIND_LABELS:
            raise DocumentRefused("不支持的单据类型。", "请返回重新选择", status=422)
        try:
            if kind == "report":
                found = next((r for r in self._his.reports(his_patient_id) if r.report_no == doc_no), None)
                if found is None:
                    raise DocumentRefused("没有找到这份报告。", "请返回重新选择", status=404)
                if found.status is not ReportStatus.READY:
                    when = self._local(found.expected_at)
                    raise DocumentRefused("报告尚未出具，暂时不能打印。",
                                          f"预计{when}可取，届时请再来打印" if when else "请稍后再来打印")
                return found.title, found.print_count > 0
            found_doc = next((d for d in self._his.documents(his_patient_id) if d.doc_no == doc_no
                              and d.kind.value == kind), None)
        except UpstreamError as exc:
            raise self._unsupplied(exc, kind, "") from exc
        if found_doc is None:
            raise DocumentRefused("没有找到这份单据。", "请返回重新选择", status=404)
        if not found_doc.available:
            raise DocumentRefused(f"医院系统无法提供这份单据：{found_doc.unavailable_reason or '没有电子底档'}。",
                                  self._where(kind, found_doc.department_name))
        return found_doc.title, False

    def _unsupplied(self, exc: UpstreamError, kind: str, department: str) -> DocumentRefused:
        if isinstance(exc, UpstreamRefused):
            return DocumentRefused(f"医院系统无法提供这份单据：{exc.message}", self._where(kind, department))
        return DocumentRefused("医院系统暂时无法提供这份单据。", f"请稍后再试，或到{SERVICE_DESK}打印", status=503)

    @staticmethod
    def _where(kind: str, department: str) -> str:
        if kind == "requisition":
            return f"请到开单科室{('（' + department + '）') if department else ''}或{SERVICE_DESK}补开"
        if kind == "prescription":
            return f"请到{SERVICE_DESK}或门诊药房咨询"
        return f"请到{SERVICE_DESK}打印"

    def _counts(self, patient_row_id: int) -> dict[str, int]:
        with self._uow() as uow:
            rows = uow.session.execute(select(DocumentPrint.doc_key, func.count()).where(
                DocumentPrint.patient_id == patient_row_id, DocumentPrint.state.in_(COUNTED)
            ).group_by(DocumentPrint.doc_key))
            return {key: count for key, count in rows}

    def _local_dt(self, value: dt.datetime | None) -> dt.datetime | None:
        return as_utc(value).astimezone(self._tz) if value else None

    def _local(self, value: dt.datetime | None) -> str:
        local = self._local_dt(value)
        return f"{local.month}月{local.day}日 {local:%H:%M}" if local else ""


# ---- drawing -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CopyMark:
    copy: bool
    print_no: int
    printed_at: dt.datetime
    device_id: str

    @property
    def banner(self) -> str:
        return f"复印件 · 补打（第{self.print_no}次打印）" if self.copy else "原件"

    @property
    def footer(self) -> str:
        what = f"本件为自助机补打的复印件，第{self.print_no}次打印" if self.copy else "本件为自助机首次打印"
        return f"{what}  打印时间：{self.printed_at:%Y-%m-%d %H:%M}  终端：{self.device_id}"


def _stamp(mark: CopyMark, font_name: str) -> Callable:
    """Every page: a 复印件/补打 banner and a diagonal watermark on copies; the footer on all."""

    def draw(canvas, document) -> None:
        width, height = document.pagesize
        canvas.saveState()
        canvas.setFont(font_name, 8)
        canvas.setFillColor(colors.HexColor("#444444"))
        canvas.drawString(18 * mm, 10 * mm, mark.footer)
        if mark.copy:
            canvas.setFillColor(colors.HexColor("#c00000"))
            canvas.setFont(font_name, 12)
            canvas.drawRightString(width - 18 * mm, height - 12 * mm, mark.banner)
            canvas.setFillColor(colors.Color(0.8, 0, 0, alpha=0.12))
            canvas.setFont(font_name, 72)
            canvas.translate(width / 2, height / 2)
            canvas.rotate(35)
            canvas.drawCentredString(0, 0, "补打 复印件")
        canvas.restoreState()

    return draw


def _age(birth: dt.date, on: dt.date) -> str:
    return f"{on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))}岁"


def _patient_rows(patient, on: dt.date) -> list[list[str]]:
    return [["姓名", patient.name, "性别", {"M": "男", "F": "女"}.get(patient.gender.value, ""),
             "年龄", _age(patient.birth_date, on)],
            ["患者ID", patient.patient_id, "就诊卡号", mask_card(patient.visit_card_no) if patient.visit_card_no
             else "", "身份证号", mask_id_number(patient.id_number) if patient.id_number else ""]]


def render_document(doc: HisDocument, *, hospital_name: str, mark: CopyMark) -> bytes:
    """A requisition (检查申请单) or a prescription copy (处方底方) on A4, marked as a copy."""
    font = cjk_font()
    s = styles(font)
    on = mark.printed_at.date()
    story: list = [Paragraph(hospital_name, s["title"]), Paragraph(doc.title, s["subtitle"])]
    if mark.copy:
        story.append(Paragraph(mark.banner, s["stamp"]))
    info = _patient_rows(doc.patient, on)
    info.append(["开单科室", doc.department_name, "开单医生", doc.doctor_name, "开单日期", doc.issued_on.isoformat()])
    widths = [20 * mm, 38 * mm, 20 * mm, 38 * mm, 20 * mm, 38 * mm]
    story += [ruled_table(info, widths, font, header_rows=0), Spacer(1, 5 * mm)]
    if doc.kind is DocumentKind.REQUISITION:
        rows = [["单号", doc.doc_no], ["检查项目", doc.exam_name], ["检查部位", doc.body_part],
                ["临床诊断", doc.diagnosis or "—"], ["执行科室", doc.performing_department],
                ["检查地点", doc.location], ["检查前准备", Paragraph(doc.preparation or "无", s["cell"])],
                ["费用", f"¥{doc.amount}" if doc.amount is not None else ""],
                ["缴费状态", "已缴费" if doc.status and doc.status.value == "paid" else "未缴费"]]
        story.append(ruled_table(rows, [30 * mm, 144 * mm], font, header_rows=0))
    else:
        story.append(Paragraph("Rp.", s["heading"]))
        rows = [["药品名称", "数量", "用法用量", "金额"]]
        rows += [[Paragraph(i.name, s["cell"]), f"{i.quantity}{i.unit}", Paragraph(i.usage, s["cell"]),
                  f"¥{i.amount}"] for i in doc.items]
        rows.append(["合计", "", "", f"¥{doc.amount}" if doc.amount is not None else ""])
        story.append(ruled_table(rows, [70 * mm, 20 * mm, 60 * mm, 24 * mm], font, right_columns=[3]))
        story.append(Spacer(1, 4 * mm))
        story.append(Paragraph(f"处方号：{doc.doc_no}    医师：{doc.doctor_name}    就诊号：{doc.visit_no}", s["body"]))
    story += [Spacer(1, 6 * mm), Paragraph("本件由医院信息系统（HIS）数据生成，仅供检查登记、取药核对使用。", s["small"])]
    return render_a4(story, title=f"{doc.title}（{'补打' if mark.copy else '原件'}）", subject=doc.doc_no,
                     on_page=_stamp(mark, font.name))


def render_report(report: Report, *, hospital_name: str, mark: CopyMark,
                  local: Callable[[dt.datetime | None], dt.datetime | None]) -> bytes:
    """A lab report (results against reference ranges) or an exam report (findings, impression)."""
    font = cjk_font()
    s = styles(font)
    on = mark.printed_at.date()
    kind_title = "检验报告单" if report.kind is ReportKind.LAB else "检查报告单"
    story: list = [Paragraph(hospital_name, s["title"]), Paragraph(f"{kind_title}：{report.title}", s["subtitle"])]
    if mark.copy:
        story.append(Paragraph(mark.banner, s["stamp"]))
    info = _patient_rows(report.patient, on)[:1]
    ready = local(report.ready_at)
    collected = local(report.collected_at)
    info.append(["送检科室", report.requested_by, "报告科室", report.department, "报告号", report.report_no])
    info.append(["标本", report.specimen or "—", "采样时间", f"{collected:%Y-%m-%d %H:%M}" if collected else "—",
                 "报告时间", f"{ready:%Y-%m-%d %H:%M}" if ready else "—"])
    story += [ruled_table(info, [20 * mm, 38 * mm, 20 * mm, 38 * mm, 20 * mm, 38 * mm], font, header_rows=0),
              Spacer(1, 5 * mm)]
    if report.kind is ReportKind.LAB:
        arrows = {"H": "↑", "L": "↓"}
        rows = [["项目", "代号", "结果", "", "单位", "参考范围"]]
        rows += [[i.name, i.code, i.result, arrows.get(i.flag, ""), i.unit, i.reference] for i in report.items]
        story.append(ruled_table(rows, [50 * mm, 22 * mm, 24 * mm, 10 * mm, 28 * mm, 40 * mm], font))
    else:
        story += [Paragraph("检查所见", s["heading"]), Paragraph(report.findings, s["body"]), Spacer(1, 4 * mm),
                  Paragraph("诊断意见", s["heading"]), Paragraph(report.impression, s["body"])]
    story += [Spacer(1, 6 * mm),
              Paragraph(f"报告医师：{report.reported_by}    审核医师：{report.reviewed_by}", s["body"]),
              Paragraph("本报告仅对所检标本/本次检查负责，如有疑问请咨询开单医生。", s["small"])]
    return render_a4(story, title=f"{report.title}（{'补打' if mark.copy else '原件'}）", subject=report.report_no,
                     on_page=_stamp(mark, font.name))


_lock = threading.Lock()


def documents_of(container) -> DocumentService:
    """The container's document service, built once on first use."""
    service = getattr(container, "_documents", None)
    if service is None:
        with _lock:
            service = getattr(container, "_documents", None)
            if service is None:
                service = DocumentService(container.uow, container.clock, container.sessions, container.his,
                                          tz=container.settings.tz, hospital_name=container.settings.hospital_name,
                                          limits=DocumentSettings().limits())
                container._documents = service
    return service
