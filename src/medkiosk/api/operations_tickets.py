"""Tickets, inspections and consumables pages (/staff/ops/tickets, /inspections, /consumables) and JSON.

Same rules as the other staff pages (api/staff.py): sessions, roles, CSRF on every change, no
scripts. Engineers (handle_events) open, work and resolve tickets, sign off inspections and record
replacements; the IT centre (manage_devices) verifies and closes tickets, sets the inspection
schedule and books deliveries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from medkiosk.api.operations import Handler, ItemId, Manager, Ops, Viewer, _render
from medkiosk.api.staff import HOSPITAL_TIME, Forbidden, _client, _PageRoute, require, templates
from medkiosk.domain.tickets import STATE_NAMES, Priority, TicketState, TransitionRefused
from medkiosk.services.clock import as_utc
from medkiosk.services.consumables import ConsumableError
from medkiosk.services.inspections import InspectionError, InspectionNotFound
from medkiosk.services.operations import Operations
from medkiosk.services.staff import Permission, StaffPrincipal
from medkiosk.services.tickets import TicketError, TicketNotFound, TicketView

INSPECTION_CHECK_SECONDS = 30
TICKET_CLOCK_SECONDS = 60
# Verifying and closing is the IT centre's word on an engineer's fix.
IT_CENTRE_STATES = {TicketState.VERIFIED, TicketState.CLOSED}
ACTION_NAMES = {TicketState.ASSIGNED: "指派", TicketState.IN_PROGRESS: "开始处理", TicketState.WAITING: "转为等待",
                TicketState.RESOLVED: "解决", TicketState.VERIFIED: "验证通过", TicketState.CLOSED: "关闭"}
PRIORITY_NAMES = {"p1": "P1 紧急", "p2": "P2 一般", "p3": "P3 低"}
SOURCE_NAMES = {"alert": "告警", "inspection": "巡检", "manual": "人工"}
CLOCK_NAMES = {"ok": "正常", "warning": "即将超时", "breached": "已超时"}


def _staff_any(*permissions: Permission):
    def dependency(principal: Annotated[StaffPrincipal, Depends(require())]) -> StaffPrincipal:
        if not any(principal.can(p) for p in permissions):
            raise Forbidden()
        return principal

    return dependency


Worker = Annotated[StaffPrincipal, Depends(_staff_any(Permission.HANDLE_EVENTS, Permission.MANAGE_DEVICES))]


def _duration(seconds: float) -> str:
    seconds = int(abs(seconds))
    hours, rest = divmod(seconds, 3600)
    if hours >= 48:
        return f"{hours // 24} 天 {hours % 24} 小时"
    return f"{hours} 小时 {rest // 60} 分" if hours else f"{rest // 60} 分"


def _when(text: str) -> str:
    try:
        return as_utc(datetime.fromisoformat(text)).astimezone(HOSPITAL_TIME).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return "—"


def _names() -> dict[str, Any]:
    return {"STATE_NAMES": {s.value: n for s, n in STATE_NAMES.items()}, "ACTION_NAMES": ACTION_NAMES,
            "PRIORITY_NAMES": PRIORITY_NAMES, "SOURCE_NAMES": SOURCE_NAMES, "CLOCK_NAMES": CLOCK_NAMES,
            "duration": _duration, "when": _when}


# The device page (api/operations.py) lists a device's tickets with the same names.
templates.env.globals.update(_names())


def _may(staff: StaffPrincipal, target: TicketState) -> bool:
    if target in IT_CENTRE_STATES:
        return staff.can(Permission.MANAGE_DEVICES)
    return staff.can(Permission.HANDLE_EVENTS) or (target is TicketState.ASSIGNED
                                                    and staff.can(Permission.MANAGE_DEVICES))


# --- tickets --------------------------------------------------------------------------------------------
pages = APIRouter(prefix="/staff/ops", route_class=_PageRoute, include_in_schema=False)


def _tickets_page(request: Request, staff: StaffPrincipal, ops: Operations, *, error: str = "",
                  status_code: int = 200, show: str = "open") -> Response:
    views = ops.tickets.tickets(open_only=show != "all")
    return _render(request, "ops_tickets.html", {"staff": staff, "tickets": views, "error": error, "show": show,
                                                 "priorities": list(Priority), }, status_code=status_code)


@pages.get("/tickets")
def tickets_page(request: Request, staff: Viewer, ops: Ops, show: Annotated[str, Query(max_length=4)] = "open") -> Response:
    return _tickets_page(request, staff, ops, show=show)


@pages.post("/tickets")
def ticket_create(request: Request, staff: Worker, ops: Ops, title: Annotated[str, Form(max_length=200)] = "",
                  description: Annotated[str, Form(max_length=4000)] = "",
                  device_id: Annotated[str, Form(max_length=32)] = "",
                  priority: Annotated[str, Form(max_length=4)] = "p2") -> Response:
    try:
        row = ops.tickets.create(staff.username, title=title, description=description, device_id=device_id,
                                 priority=priority, client=_client(request))
    except TicketError as exc:
        return _tickets_page(request, staff, ops, error=str(exc), status_code=400)
    return RedirectResponse(f"/staff/ops/tickets/{row.id}", status_code=303)


def _ticket_page(request: Request, staff: StaffPrincipal, ops: Operations, ticket_id: int, *, error: str = "",
                 status_code: int = 200) -> Response:
    try:
        view = ops.tickets.get(ticket_id)
    except TicketNotFound as exc:
        raise HTTPException(404, {"message": f"没有编号为 {ticket_id} 的工单"}) from exc
    actions = [s for s in view.allowed if _may(staff, s)]
    order = list(TicketState)
    return _render(request, "ops_ticket.html", {"staff": staff, "t": view, "error": error,
                                                "actions": sorted(actions, key=order.index), },
                   status_code=status_code)


@pages.get("/tickets/{ticket_id}")
def ticket_page(request: Request, ticket_id: ItemId, staff: Viewer, ops: Ops) -> Response:
    return _ticket_page(request, staff, ops, ticket_id)


@pages.post("/tickets/{ticket_id}/move")
async def ticket_move(request: Request, ticket_id: ItemId, staff: Worker, ops: Ops) -> Response:
    form = await request.form()
    target = str(form.get("to", ""))[:20]
    try:
        allowed = _may(staff, TicketState(target))
    except ValueError:
        allowed = False
    if not allowed:
        raise Forbidden()
    parts = [{"name": str(form.get(f"part{i}_name", "")), "quantity": str(form.get(f"part{i}_quantity", "") or 1)}
             for i in range(3)]
    try:
        await run_in_threadpool(
            ops.tickets.move, ticket_id, staff.username, target, note=str(form.get("note", ""))[:500],
            assignee=str(form.get("assignee", ""))[:60], cause=str(form.get("cause", ""))[:2000],
            action=str(form.get("action", ""))[:2000], parts=parts, client=_client(request))
    except TicketNotFound as exc:
        raise HTTPException(404, {"message": f"没有编号为 {ticket_id} 的工单"}) from exc
    except (TicketError, TransitionRefused) as exc:
        return _ticket_page(request, staff, ops, ticket_id, error=str(exc), status_code=400)
    return RedirectResponse(f"/staff/ops/tickets/{ticket_id}", status_code=303)


@pages.post("/alerts/{alert_id}/ticket")
def alert_ticket(request: Request, alert_id: ItemId, staff: Worker, ops: Ops) -> Response:
    """The alert page's 转工单 button: the alert's ticket, made once."""
    try:
        row, _made = ops.tickets.from_alert(alert_id, staff.username, client=_client(request))
    except TicketNotFound as exc:
        raise HTTPException(404, {"message": f"没有编号为 {alert_id} 的告警"}) from exc
    return RedirectResponse(f"/staff/ops/tickets/{row.id}", status_code=303)


# --- inspections ----------------------------------------------------------------------------------------
def _inspections_page(request: Request, staff: StaffPrincipal, ops: Operations, *, error: str = "",
                      status_code: int = 200) -> Response:
    times = ops.inspections.times()
    return _render(request, "ops_inspections.html", {
        "staff": staff, "rounds": ops.inspections.rounds(), "times": ", ".join(t.strftime("%H:%M") for t in times),
        "next_time": ops.inspections.next_time(), "today": ops.monitoring.now().astimezone(ops.inspections.tz).date(),
        "error": error}, status_code=status_code)


@pages.get("/inspections")
def inspections_page(request: Request, staff: Viewer, ops: Ops) -> Response:
    return _inspections_page(request, staff, ops)


@pages.post("/inspections/schedule")
def inspection_schedule(request: Request, staff: Manager, ops: Ops,
                        times: Annotated[str, Form(max_length=200)] = "") -> Response:
    try:
        ops.inspections.set_times(staff.username, times, client=_client(request))
    except ValueError as exc:
        return _inspections_page(request, staff, ops, error=str(exc), status_code=400)
    return RedirectResponse("/staff/ops/inspections", status_code=303)


@pages.post("/inspections")
def inspection_open(request: Request, staff: Handler, ops: Ops) -> Response:
    """A round opened by hand (an extra check before a major event, say)."""
    row = ops.inspections.open_round(staff.username, client=_client(request))
    if row is None:
        return _inspections_page(request, staff, ops, error="本轮巡检已开始，请稍后再试", status_code=409)
    return RedirectResponse(f"/staff/ops/inspections/{row.id}", status_code=303)


def _round_page(request: Request, staff: StaffPrincipal, ops: Operations, round_id: int, *, error: str = "",
                status_code: int = 200) -> Response:
    try:
        view = ops.inspections.get(round_id)
    except InspectionNotFound as exc:
        raise HTTPException(404, {"message": f"没有编号为 {round_id} 的巡检"}) from exc
    return _render(request, "ops_inspection.html", {"staff": staff, "r": view, "error": error},
                   status_code=status_code)


@pages.get("/inspections/{round_id}")
def inspection_page(request: Request, round_id: ItemId, staff: Viewer, ops: Ops) -> Response:
    return _round_page(request, staff, ops, round_id)


@pages.post("/inspections/{round_id}/items/{item_id}")
def inspection_sign(request: Request, round_id: ItemId, item_id: ItemId, staff: Handler, ops: Ops,
                    verdict: Annotated[str, Form(max_length=10)] = "",
                    note: Annotated[str, Form(max_length=1000)] = "") -> Response:
    try:
        ops.inspections.sign_off(item_id, staff.username, verdict, note, client=_client(request))
    except InspectionNotFound as exc:
        raise HTTPException(404, {"message": f"没有编号为 {item_id} 的巡检项"}) from exc
    except InspectionError as exc:
        return _round_page(request, staff, ops, round_id, error=str(exc), status_code=400)
    return RedirectResponse(f"/staff/ops/inspections/{round_id}#item-{item_id}", status_code=303)


@pages.get("/inspections/report/{day}")
def inspection_report(day: date, _staff: Viewer, ops: Ops,
                      format: Annotated[str, Query(pattern="^(pdf|xlsx)$")] = "pdf") -> Response:
    """巡检日报 as a PDF or an .xlsx spreadsheet."""
    report = ops.inspections.daily_report(day)
    name = f"inspection-{day.isoformat()}"
    if format == "xlsx":
        return Response(ops.inspections.report_xlsx(report),
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
    return Response(ops.inspections.report_pdf(report), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}.pdf"'})


# --- consumables ----------------------------------------------------------------------------------------
def _consumables_page(request: Request, staff: StaffPrincipal, ops: Operations, *, error: str = "",
                      notice: str = "", status_code: int = 200) -> Response:
    next_time = ops.inspections.next_time()
    fleet = [d for d in ops.monitoring.fleet() if d.enabled]
    return _render(request, "ops_consumables.html", {
        "staff": staff, "items": ops.consumables.items(), "forecasts": ops.consumables.forecasts(fleet, next_time),
        "movements": ops.consumables.movements(limit=30), "next_time": next_time, "fleet": fleet, "error": error,
        "notice": notice}, status_code=status_code)


def _consumable_change(request: Request, staff: StaffPrincipal, ops: Operations, change: Callable[[], Any]) -> Response:
    """A stock change: refused, the page again with why (400); done, back to the page."""
    try:
        change()
    except ConsumableError as exc:
        return _consumables_page(request, staff, ops, error=str(exc), status_code=400)
    return RedirectResponse("/staff/ops/consumables", status_code=303)


@pages.get("/consumables")
def consumables_page(request: Request, staff: Viewer, ops: Ops) -> Response:
    return _consumables_page(request, staff, ops)


@pages.post("/consumables/replace")
def consumable_replace(request: Request, staff: Handler, ops: Ops, device_id: Annotated[str, Form(max_length=32)] = "",
                       item: Annotated[str, Form(max_length=20)] = "",
                       note: Annotated[str, Form(max_length=300)] = "") -> Response:
    return _consumable_change(request, staff, ops, lambda: ops.consumables.replace(
        staff.username, device_id, item, note=note, client=_client(request)))


@pages.post("/consumables/receive")
def consumable_receive(request: Request, staff: Manager, ops: Ops, item: Annotated[str, Form(max_length=20)] = "",
                       quantity: Annotated[int, Form(ge=1, le=100_000)] = 1,
                       note: Annotated[str, Form(max_length=300)] = "") -> Response:
    return _consumable_change(request, staff, ops, lambda: ops.consumables.receive(
        staff.username, item, quantity, note=note, client=_client(request)))


@pages.post("/consumables/count")
def consumable_count(request: Request, staff: Manager, ops: Ops, item: Annotated[str, Form(max_length=20)] = "",
                     stock: Annotated[int, Form(ge=0, le=1_000_000)] = 0,
                     note: Annotated[str, Form(max_length=300)] = "") -> Response:
    return _consumable_change(request, staff, ops, lambda: ops.consumables.count(
        staff.username, item, stock, note=note, client=_client(request)))


# --- JSON -----------------------------------------------------------------------------------------------
api = APIRouter(prefix="/api/ops", tags=["operations"])


def ticket_json(view: TicketView) -> dict[str, Any]:
    row = view.row
    return {"id": row.id, "title": row.title, "device_id": row.device_id, "source": row.source,
            "source_ref": row.source_ref, "priority": row.priority, "state": row.state, "assignee": row.assignee,
            "created_at": as_utc(row.created_at).isoformat(), "cause": row.cause, "action": row.action,
            "parts": row.parts, "transitions": row.transitions,
            "clocks": {name: {"elapsed_seconds": int(r.elapsed.total_seconds()),
                              "target_seconds": int(r.target.total_seconds()), "running": r.running,
                              "paused": r.paused, "level": r.level.value}
                       for name, r in (("own", view.own), ("resolve", view.resolve))}}


@api.get("/tickets")
def tickets_json(_staff: Viewer, ops: Ops, open_only: bool = True, device_id: Annotated[str, Query(max_length=32)] = "") -> dict[str, Any]:
    """Tickets with their clocks, newest first."""
    views = ops.tickets.for_device(device_id) if device_id else ops.tickets.tickets(open_only=open_only)
    return {"tickets": [ticket_json(v) for v in views]}


@api.post("/alerts/{alert_id}/ticket")
def alert_ticket_json(request: Request, alert_id: ItemId, staff: Worker, ops: Ops) -> dict[str, Any]:
    """The alert's ticket (made once; a repeat returns the same). Send ``X-CSRF-Token``."""
    try:
        row, made = ops.tickets.from_alert(alert_id, staff.username, client=_client(request))
    except TicketNotFound as exc:
        raise HTTPException(404, {"message": f"没有编号为 {alert_id} 的告警"}) from exc
    return {"ticket": ticket_json(ops.tickets.get(row.id)), "created": made}


@api.get("/consumables")
def consumables_json(_staff: Viewer, ops: Ops) -> dict[str, Any]:
    """Stock per item (with the low-stock mark) and each device's forecast against the next inspection."""
    next_time = ops.inspections.next_time()
    fleet = [d for d in ops.monitoring.fleet() if d.enabled]
    return {"next_inspection": next_time.isoformat(),
            "items": [{"code": i.code, "name": i.name, "unit": i.unit, "stock": i.stock, "low_stock": i.low_stock,
                       "low": i.stock <= i.low_stock} for i in ops.consumables.items()],
            "forecasts": [{"device_id": f.device_id, "item": f.item_code, "remaining_prints": round(f.remaining),
                           "runs_out_at": f.runs_out_at.isoformat() if f.runs_out_at else None,
                           "before_next_inspection": f.before_next_inspection}
                          for f in ops.consumables.forecasts(fleet, next_time)]}


router = APIRouter()
router.include_router(pages)
router.include_router(api)


def background_tasks(container, every) -> list[asyncio.Task]:
    """Open inspection rounds on schedule; announce ticket clocks reaching 75 % / 100 %."""
    from medkiosk.services.operations import operations_of

    ops = operations_of(container)
    return [asyncio.create_task(every(INSPECTION_CHECK_SECONDS, "inspection_schedule", ops.inspections.open_due)),
            asyncio.create_task(every(TICKET_CLOCK_SECONDS, "ticket_clocks", ops.tickets.check_clocks))]
