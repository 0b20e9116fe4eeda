"""Inspections (巡检): rounds opened on schedule from telemetry, signed off by engineers, a daily report.

``open_due()`` runs every 30 s in the service's background loop: at each scheduled time (hospital
time) it opens one round (``slot_at`` is unique, so two service copies open it once) with every
enabled device checked from its telemetry (``domain.inspections.check``) and its consumables'
forecast. Engineers then sign each device off as fine, or as a problem with a note — which becomes
a ticket in the same transaction. The day's rounds export as a PDF (ReportLab, the project's CJK
font) or a spreadsheet (openpyxl).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from medkiosk.domain import inspections as domain
from medkiosk.domain.inspections import RoundState, Snapshot, Verdict
from medkiosk.logging import get_logger
from medkiosk.services import audit
from medkiosk.services.clock import Clock, as_utc
from medkiosk.services.consumables import ConsumableService
from medkiosk.services.monitoring import MonitoringService
from medkiosk.services.tickets import TicketService
from medkiosk.store.models_tickets import InspectionItem, InspectionRound, InspectionSlot, Ticket
from medkiosk.store.uow import UnitOfWork

log = get_logger(__name__)

SCHEDULE = "schedule"
VERDICT_NAMES = {"fine": "正常", "problem": "有问题"}


class InspectionError(ValueError):
    """Refused input; the message is Chinese and shown as is."""


class InspectionNotFound(LookupError):
    pass


@dataclass(frozen=True)
class RoundView:
    round: InspectionRound
    items: list[InspectionItem]

    @property
    def signed(self) -> int:
        return sum(1 for i in self.items if i.verdict)

    @property
    def problems(self) -> list[InspectionItem]:
        return [i for i in self.items if i.verdict == Verdict.PROBLEM.value]

    @property
    def flagged(self) -> int:
        return sum(1 for i in self.items if i.findings)


@dataclass(frozen=True)
class DailyReport:
    day: date
    rounds: list[RoundView]
    tickets: list[Ticket]
    generated_at: datetime


class InspectionService:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Clock, tz: tzinfo,
                 monitoring: MonitoringService, consumables: ConsumableService, tickets: TicketService) -> None:
        self._uow = uow_factory
        self._clock = clock
        self.tz = tz
        self._monitoring = monitoring
        self._consumables = consumables
        self._tickets = tickets

    # -- schedule ---------------------------------------------------------------------------------------
    def times(self) -> tuple[time, ...]:
        with self._uow() as uow:
            stored = list(uow.session.scalars(select(InspectionSlot.at)))
        return domain.parse_times(",".join(stored)) if stored else domain.DEFAULT_TIMES

    def set_times(self, actor: str, text: str, *, client: str = "") -> tuple[time, ...]:
        times = domain.parse_times(text)
        now = self._clock.now()
        with self._uow() as uow:
            before = sorted(uow.session.scalars(select(InspectionSlot.at)))
            uow.session.execute(delete(InspectionSlot))
            uow.session.add_all(InspectionSlot(at=t.strftime("%H:%M"), created_by=actor, created_at=now) for t in times)
            audit.append(uow, self._clock, actor, "inspection.schedule", "inspection:schedule",
                         {"before": before, "after": [t.strftime("%H:%M") for t in times], "client": client})
            uow.commit()
        return times

    def next_time(self) -> datetime:
        return domain.next_slot(self.times(), self._clock.now(), self.tz)

    # -- opening ----------------------------------------------------------------------------------------
    def open_due(self) -> InspectionRound | None:
        """Open the round whose scheduled time has come, once. Called every 30 s."""
        now = self._clock.now()
        times = self.times()
        local_midnight = now.astimezone(self.tz).replace(hour=0, minute=0, second=0, microsecond=0)
        with self._uow() as uow:
            opened = [as_utc(s) for s in uow.session.scalars(select(InspectionRound.slot_at).where(
                InspectionRound.slot_at >= local_midnight.astimezone(now.tzinfo)))]
        slot = domain.due_slot(times, now, self.tz, opened)
        if slot is None:
            return None
        return self.open_round(SCHEDULE, slot_at=slot)

    def open_round(self, actor: str, *, slot_at: datetime | None = None, client: str = "") -> InspectionRound | None:
        """A round of every enabled device, checked from telemetry now. ``None`` if that slot's round exists."""
        now = self._clock.now()
        slot_at = as_utc(slot_at or now).astimezone(now.tzinfo)  # stored in UTC: SQLite compares text
        fleet = [d for d in self._monitoring.fleet() if d.enabled]
        next_time = domain.next_slot(self.times(), now, self.tz)
        runs_out: dict[str, list[str]] = {}
        for forecast in self._consumables.forecasts(fleet, next_time):
            if forecast.before_next_inspection:
                runs_out.setdefault(forecast.device_id, []).append(forecast.item_name)
        with self._uow() as uow:
            row = InspectionRound(slot_at=slot_at, opened_at=now, opened_by=actor, state=RoundState.OPEN.value)
            uow.session.add(row)
            try:
                uow.session.flush()
            except IntegrityError:
                uow.rollback()
                return None
            for device in fleet:
                findings = domain.check(Snapshot(
                    device.id, device.online, device.last_seen_at, device.peripherals, device.cpu_percent,
                    device.memory_percent, device.disk_percent, device.transactions_today, device.failures_today,
                    tuple(runs_out.get(device.id, ()))))
                uow.session.add(InspectionItem(
                    round_id=row.id, device_id=device.id, device_name=device.name,
                    location=" ".join(p for p in (device.campus, device.building, device.floor, device.area) if p),
                    findings=[{"code": f.code, "text": f.text} for f in findings], note=""))
            if not fleet:
                row.state, row.signed_off_at = RoundState.SIGNED_OFF.value, now
            audit.append(uow, self._clock, actor, "inspection.opened", f"inspection:{row.id}",
                         {"slot_at": slot_at.isoformat(), "devices": len(fleet), "client": client})
            uow.commit()
            uow.session.expunge(row)
        log.info("inspection.opened", round=row.id, slot_at=slot_at.isoformat(), devices=len(fleet))
        return row

    # -- signing off ------------------------------------------------------------------------------------
    def sign_off(self, item_id: int, actor: str, verdict: str, note: str = "", *,
                 client: str = "") -> InspectionItem:
        """The engineer's word on one device. A problem needs a note and becomes a ticket, at once."""
        try:
            chosen = Verdict(verdict)
        except ValueError as exc:
            raise InspectionError("请选择“正常”或“有问题”") from exc
        note = note.strip()[:1000]
        if chosen is Verdict.PROBLEM and not note:
            raise InspectionError("发现问题时请写明问题")
        now = self._clock.now()
        with self._uow() as uow:
            item = uow.session.get(InspectionItem, item_id, with_for_update=True)
            if item is None:
                raise InspectionNotFound(item_id)
            if item.verdict:
                raise InspectionError(f"{item.device_id} 已由 {item.signed_by} 签核")
            item.verdict, item.note, item.signed_by, item.signed_at = chosen.value, note, actor, now
            if chosen is Verdict.PROBLEM:
                found = "；".join(f["text"] for f in item.findings or [])
                ticket = self._tickets.from_inspection(
                    uow, item.id, actor, device_id=item.device_id, title=f"巡检发现问题：{item.device_id} {note[:80]}",
                    description=f"巡检第 {item.round_id} 轮，{item.location}\n工程师记录：{note}"
                                + (f"\n自动检查：{found}" if found else ""), client=client)
                item.ticket_id = ticket.id
            audit.append(uow, self._clock, actor, "inspection.signed", f"inspection:{item.round_id}",
                         {"device": item.device_id, "verdict": chosen.value, "note": note, "ticket": item.ticket_id,
                          "client": client})
            uow.session.flush()
            round_ = uow.session.get(InspectionRound, item.round_id)
            left = uow.session.scalars(select(InspectionItem.id).where(InspectionItem.round_id == item.round_id,
                                                                       InspectionItem.verdict.is_(None))).first()
            if left is None and round_.state == RoundState.OPEN.value:
                round_.state, round_.signed_off_at = RoundState.SIGNED_OFF.value, now
            uow.commit()
            uow.session.expunge(item)
            return item

    # -- reading ----------------------------------------------------------------------------------------
    def _round_views(self, uow: UnitOfWork, rounds: list[InspectionRound]) -> list[RoundView]:
        if not rounds:
            return []
        items = list(uow.session.scalars(select(InspectionItem).where(
            InspectionItem.round_id.in_([r.id for r in rounds])).order_by(InspectionItem.device_id)))
        for row in [*rounds, *items]:
            uow.session.expunge(row)
        return [RoundView(r, [i for i in items if i.round_id == r.id]) for r in rounds]

    def rounds(self, limit: int = 30) -> list[RoundView]:
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(InspectionRound).order_by(InspectionRound.slot_at.desc())
                                            .limit(limit)))
            return self._round_views(uow, rows)

    def get(self, round_id: int) -> RoundView:
        with self._uow() as uow:
            row = uow.session.get(InspectionRound, round_id)
            if row is None:
                raise InspectionNotFound(round_id)
            return self._round_views(uow, [row])[0]

    def daily_report(self, day: date) -> DailyReport:
        start = datetime.combine(day, time(0), tzinfo=self.tz)
        now = self._clock.now()
        start_utc, end_utc = start.astimezone(now.tzinfo), (start + timedelta(days=1)).astimezone(now.tzinfo)
        with self._uow() as uow:
            rows = list(uow.session.scalars(select(InspectionRound).where(
                InspectionRound.slot_at >= start_utc, InspectionRound.slot_at < end_utc).order_by(InspectionRound.slot_at)))
            views = self._round_views(uow, rows)
            ticket_ids = [i.ticket_id for v in views for i in v.items if i.ticket_id]
            tickets = list(uow.session.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids)).order_by(Ticket.id))) \
                if ticket_ids else []
            for t in tickets:
                uow.session.expunge(t)
        return DailyReport(day, views, tickets, now)

    # -- exports ----------------------------------------------------------------------------------------
    def _local(self, at: datetime | None, fmt: str = "%H:%M") -> str:
        return as_utc(at).astimezone(self.tz).strftime(fmt) if at else ""

    def report_rows(self, report: DailyReport) -> list[list[str]]:
        """One row per device per round: the same table in the PDF and the spreadsheet."""
        rows = []
        for view in report.rounds:
            for item in view.items:
                rows.append([self._local(view.round.slot_at), item.device_id, item.device_name, item.location,
                             "；".join(f["text"] for f in item.findings or []) or "正常",
                             VERDICT_NAMES.get(item.verdict or "", "未签核"), item.note, item.signed_by or "",
                             f"#{item.ticket_id}" if item.ticket_id else ""])
        return rows

    HEADER = ["巡检时间", "设备", "名称", "位置", "自动检查", "签核结果", "问题说明", "签核人", "工单"]

    def report_pdf(self, report: DailyReport) -> bytes:
        from reportlab.lib.units import mm
        from reportlab.platypus import Paragraph, Spacer

        from medkiosk.documents.pdf import cjk_font, render_a4, ruled_table, styles

        font = cjk_font()
        s = styles(font)
        title = f"自助终端巡检日报 {report.day.isoformat()}"
        devices = {i.device_id for v in report.rounds for i in v.items}
        problems = [i for v in report.rounds for i in v.problems]
        story = [Paragraph(title, s["title"]),
                 Paragraph(f"共 {len(report.rounds)} 轮巡检，{len(devices)} 台设备；发现问题 {len(problems)} 项；"
                           f"生成于 {self._local(report.generated_at, '%Y-%m-%d %H:%M')}", s["subtitle"])]
        for view in report.rounds:
            story.append(Paragraph(f"{self._local(view.round.slot_at)} 巡检（{len(view.items)} 台，已签核 {view.signed} 台）",
                                   s["heading"]))
            rows = [["设备", "位置", "自动检查", "签核", "问题说明", "工单"]]
            for item in view.items:
                rows.append([Paragraph(f"{item.device_id}<br/>{item.device_name}", s["cell"]),
                             Paragraph(item.location or "—", s["cell"]),
                             Paragraph("；".join(f["text"] for f in item.findings or []) or "正常", s["cell"]),
                             f"{VERDICT_NAMES.get(item.verdict or '', '未签核')}\n{item.signed_by or ''}".strip(),
                             Paragraph(item.note or "", s["cell"]),
                             f"#{item.ticket_id}" if item.ticket_id else ""])
            story.append(ruled_table(rows, [30 * mm, 30 * mm, 40 * mm, 18 * mm, 40 * mm, 14 * mm], font))
            story.append(Spacer(1, 4 * mm))
        if not report.rounds:
            story.append(Paragraph("当天没有巡检记录。", s["body"]))
        if report.tickets:
            story.append(Paragraph("巡检产生的工单", s["heading"]))
            rows = [["工单", "设备", "标题", "状态", "处理人"]]
            from medkiosk.domain.tickets import STATE_NAMES, TicketState

            for t in report.tickets:
                rows.append([f"#{t.id}", t.device_id or "", Paragraph(t.title, s["cell"]),
                             STATE_NAMES[TicketState(t.state)], t.assignee or ""])
            story.append(ruled_table(rows, [16 * mm, 24 * mm, 90 * mm, 22 * mm, 22 * mm], font))
        return render_a4(story, title=title, subject="巡检日报")

    def report_xlsx(self, report: DailyReport) -> bytes:
        from openpyxl import Workbook
        from openpyxl.styles import Font

        book = Workbook()
        sheet = book.active
        sheet.title = f"巡检日报 {report.day.isoformat()}"[:31]
        sheet.append([f"自助终端巡检日报 {report.day.isoformat()}"])
        sheet["A1"].font = Font(bold=True, size=14)
        sheet.append(self.HEADER)
        for cell in sheet[2]:
            cell.font = Font(bold=True)
        for row in self.report_rows(report):
            sheet.append(row)
        for column, width in zip("ABCDEFGHI", (10, 10, 22, 30, 40, 10, 40, 12, 8)):
            sheet.column_dimensions[column].width = width
        buffer = io.BytesIO()
        book.save(buffer)
        return buffer.getvalue()
