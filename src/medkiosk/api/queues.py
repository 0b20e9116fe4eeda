"""Queues: the doctor's calling API and page (staff sessions, role 医生), queue rules for the IT
centre, and the waiting-room boards (a page updated live by server-sent events).

Doctors sign in as staff with the ``doctor`` role rather than with a per-room token: each call is
then tied to a person (who called whom, when), and the login, lockout and CSRF checks are the
staff pages' own. Boards show only queue numbers and masked names, on the hospital's intranet, so
they need no login (a board is a screen on a wall).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from medkiosk.api.staff import _PageRoute, require, templates
from medkiosk.bootstrap import Container
from medkiosk.services.queues import QueueRefused, QueueService
from medkiosk.services.staff import Permission, StaffPrincipal

BOARD_DIR = FilePath(__file__).resolve().parent.parent / "web" / "board"
BOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
SSE_POLL_SECONDS = 1.0
SSE_MAX_SECONDS = 600  # the browser reconnects by itself; no stream lives forever
Code = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")]
EntryId = Annotated[int, Path(ge=1, le=2**31 - 1)]

Doctor = Annotated[StaffPrincipal, Depends(require(Permission.CALL_PATIENTS))]
QueueAdmin = Annotated[StaffPrincipal, Depends(require(Permission.MANAGE_QUEUES))]


def _queues(request: Request) -> QueueService:
    container: Container = request.app.state.container
    return container.queues


Queues = Annotated[QueueService, Depends(_queues)]


def _refused(exc: QueueRefused) -> HTTPException:
    return HTTPException(exc.status, {"message": exc.message, "next_step": exc.next_step})


def _guard(call):
    try:
        return call()
    except QueueRefused as exc:
        raise _refused(exc) from exc


class CallNext(BaseModel):
    room: str = Field(min_length=1, max_length=40)
    doctor_code: str | None = Field(default=None, max_length=40)


class Recall(BaseModel):
    room: str | None = Field(default=None, max_length=40)


# --- the doctor's JSON API ---------------------------------------------------------------------------------
api = APIRouter(prefix="/api/queues", tags=["queues"])


@api.get("/{department_code}")
def doctor_view(department_code: Code, _doctor: Doctor, queues: Queues, doctor_code: str | None = None,
                room: str | None = None) -> dict[str, Any]:
    """Today's queue of a department as a doctor sees it: waiting in order, called, missed (masked)."""
    return queues.doctor_view(department_code, queues.today(), doctor_code=doctor_code or None, room=room or None)


@api.post("/{department_code}/call-next")
def call_next(department_code: Code, body: CallNext, doctor: Doctor, queues: Queues) -> dict[str, Any]:
    """Call the next patient to the room (an expert's own patients wait for them)."""
    call = _guard(lambda: queues.call_next(department_code, queues.today(), room=body.room,
                                           doctor_code=body.doctor_code or None, actor=doctor.username))
    return {"call": call, "message": "" if call else "暂无候诊患者"}


@api.post("/entries/{entry_id}/recall")
def recall(entry_id: EntryId, body: Recall, doctor: Doctor, queues: Queues) -> dict[str, Any]:
    return {"call": _guard(lambda: queues.recall(entry_id, room=body.room, actor=doctor.username))}


@api.post("/entries/{entry_id}/missed")
def missed(entry_id: EntryId, doctor: Doctor, queues: Queues) -> dict[str, Any]:
    return {"entry": _guard(lambda: queues.mark_missed(entry_id, actor=doctor.username))}


@api.post("/entries/{entry_id}/done")
def done(entry_id: EntryId, doctor: Doctor, queues: Queues) -> dict[str, Any]:
    return {"entry": _guard(lambda: queues.mark_done(entry_id, actor=doctor.username))}


@api.post("/entries/{entry_id}/requeue")
def requeue(entry_id: EntryId, doctor: Doctor, queues: Queues) -> dict[str, Any]:
    """Put a missed (or returning) patient back in line by the department's rules."""
    return {"entry": _guard(lambda: queues.requeue(entry_id, actor=doctor.username))}


@api.get("/departments/{department_code}/rules")
def get_rules(department_code: Code, _admin: QueueAdmin, queues: Queues) -> dict[str, Any]:
    return {"department_code": department_code, "rules": queues.rules(department_code).to_json()}


class RulesChange(BaseModel):
    rules: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, max_length=100)
    zone: str | None = Field(default=None, max_length=100)


@api.put("/departments/{department_code}/rules")
def put_rules(department_code: Code, body: RulesChange, admin: QueueAdmin, queues: Queues) -> dict[str, Any]:
    """Change a department's rules (only the ones named), its board name and zone; applies at once."""
    try:
        return queues.set_rules(department_code, body.rules, name=body.name, zone=body.zone, actor=admin.username)
    except (ValueError, TypeError) as exc:
        raise HTTPException(422, {"message": f"规则不正确：{exc}", "next_step": "请检查后重新提交"}) from exc


# --- the doctor's page (server-rendered forms, no script) ------------------------------------------------------
pages = APIRouter(prefix="/staff/queues", route_class=_PageRoute, include_in_schema=False)


def _doctor_url(department: str, room: str, doctor_code: str, message: str = "") -> str:
    query = {k: v for k, v in {"department": department, "room": room, "doctor_code": doctor_code,
                               "message": message}.items() if v}
    return "/staff/queues/doctor" + (f"?{urlencode(query)}" if query else "")


@pages.get("/doctor")
def doctor_page(request: Request, doctor: Doctor, queues: Queues, department: str = "", room: str = "",
                doctor_code: str = "", message: str = "") -> Response:
    view = queues.doctor_view(department, queues.today(), doctor_code=doctor_code or None) if department else None
    return templates.TemplateResponse(request, "queues/doctor.html", {
        "staff": doctor, "department": department, "room": room, "doctor_code": doctor_code, "view": view,
        "message": message[:200], "departments": queues.departments()})


@pages.post("/doctor/{action}")
def doctor_action(action: Annotated[str, Path(pattern=r"^(call-next|recall|missed|done|requeue)$")],
                  doctor: Doctor, queues: Queues,
                  department: Annotated[str, Form(max_length=40)] = "", room: Annotated[str, Form(max_length=40)] = "",
                  doctor_code: Annotated[str, Form(max_length=40)] = "", entry_id: Annotated[int, Form()] = 0,
                  ) -> Response:
    message = ""
    try:
        if action == "call-next":
            call = queues.call_next(department, queues.today(), room=room, doctor_code=doctor_code or None,
                                    actor=doctor.username)
            message = call["text"] if call else "暂无候诊患者"
        elif action == "recall":
            message = queues.recall(entry_id, room=room or None, actor=doctor.username)["text"]
        elif action == "missed":
            message = f"{queues.mark_missed(entry_id, actor=doctor.username)['queue_no']} 号已标记过号"
        elif action == "done":
            message = f"{queues.mark_done(entry_id, actor=doctor.username)['queue_no']} 号已完成就诊"
        else:
            message = f"{queues.requeue(entry_id, actor=doctor.username)['queue_no']} 号已重新排队"
    except QueueRefused as exc:
        message = f"{exc.message}（{exc.next_step}）"
    return RedirectResponse(_doctor_url(department, room, doctor_code, message), status_code=303)


# --- queue rules page for the IT centre (manage_queues; CSRF by the staff session; changes audited) ---------------
RULE_LABELS = {
    "slot_minutes": "时段长度（分钟）", "late_grace_minutes": "迟到宽限（分钟）", "priority_flags": "优先类别",
    "priority_age": "高龄优先年龄", "returning_after": "回诊患者排在第几人之后", "missed_after": "过号重排在第几人之后",
    "missed_auto_requeue": "过号后自动重新排队", "max_missed": "最多过号次数（超过须到分诊台）",
    "am_closes": "上午报到截止", "pm_closes": "下午报到截止", "result_seconds": "报到结果显示秒数（3–10）",
    "name": "候诊屏显示名称", "zone": "候诊区",
}
FLAG_LABELS = {"aged": "高龄", "disabled": "残疾人", "veteran": "军人、退役军人"}
INT_RULES = ("slot_minutes", "late_grace_minutes", "priority_age", "returning_after", "missed_after", "max_missed",
             "result_seconds")


def _his_departments(request: Request) -> dict[str, str]:
    """The HIS's clinical departments by code (for names); none when the HIS does not answer."""
    container: Container = request.app.state.container
    try:
        groups = container.his.list_departments()
    except Exception:  # noqa: BLE001 - the page still works from the stored departments
        return {}
    return {d.code: d.name for g in groups for d in (g.children or [g])}


def _rules_page(request: Request, admin: StaffPrincipal, queues: QueueService, code: str, *, message: str = "",
                error: str = "", form: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    stored = {d["department_code"]: d for d in queues.departments()}
    his = _his_departments(request)
    current = stored.get(code) if code else None
    values = form or ({**current["rules"], "name": current["name"], "zone": current["zone"]} if current
                      else {**queues.rules(code).to_json(), "name": his.get(code, ""), "zone": ""} if code else None)
    listed = [{"department_code": c, "name": (stored.get(c) or {}).get("name") or his.get(c, ""),
               "custom": c in stored, "rules": (stored.get(c) or {}).get("rules")}
              for c in sorted(set(stored) | set(his))]
    return templates.TemplateResponse(request, "queues/rules.html", {
        "staff": admin, "code": code, "values": values, "departments": listed, "labels": RULE_LABELS,
        "flag_labels": FLAG_LABELS, "message": message, "error": error,
        "his_name": his.get(code, "") if code else ""}, status_code=status_code)


@pages.get("/rules")
def rules_page(request: Request, admin: QueueAdmin, queues: Queues,
               department: Annotated[str, Query(max_length=40, pattern=r"^[A-Za-z0-9_.-]*$")] = "",
               saved: str = "") -> Response:
    """Each department's queue rules; with ``department``, the form to change its rules."""
    return _rules_page(request, admin, queues, department, message="已保存，规则立即生效。" if saved else "")


@pages.post("/rules/{department_code}")
async def rules_save(request: Request, department_code: Code, admin: QueueAdmin, queues: Queues) -> Response:
    form = await request.form()
    values: dict[str, Any] = {"priority_flags": [f for f in form.getlist("priority_flags") if f in FLAG_LABELS],
                              "missed_auto_requeue": form.get("missed_auto_requeue") == "on"}
    problems = []
    for name in INT_RULES:
        raw = str(form.get(name, "")).strip()
        try:
            values[name] = int(raw)
        except ValueError:
            problems.append(f"{RULE_LABELS[name]}须为整数")
            values[name] = raw
    for name in ("am_closes", "pm_closes"):
        values[name] = str(form.get(name, "")).strip()[:5]
    name, zone = str(form.get("name", "")).strip()[:100], str(form.get("zone", "")).strip()[:100]
    if not problems:
        try:
            await run_in_threadpool(queues.set_rules, department_code, values, name=name, zone=zone,
                                    actor=admin.username)
        except (ValueError, TypeError) as exc:
            text = str(exc)
            for key, label in RULE_LABELS.items():
                text = text.replace(key, label)
            problems.append(text.replace(" must be ", "须在 ").replace("Invalid isoformat string", "时间格式应为 HH:MM"))
    if problems:
        return _rules_page(request, admin, queues, department_code, error="；".join(problems),
                           form={**values, "name": name, "zone": zone}, status_code=422)
    return RedirectResponse(f"/staff/queues/rules?{urlencode({'department': department_code, 'saved': 1})}",
                            status_code=303)


# --- boards ------------------------------------------------------------------------------------------------------
board = APIRouter(tags=["queue boards"])


def _board_departments(queues: QueueService, department: str, zone: str) -> list[str]:
    codes = [c for c in department.split(",") if c.strip()] if department else []
    if zone:
        codes += [c for c in queues.zone_departments(zone) if c not in codes]
    if not codes or len(codes) > 20 or any(len(c) > 40 for c in codes):
        raise HTTPException(422, {"message": "请在地址中指定科室（department=0101）或候诊区（zone=…）",
                                  "next_step": "请联系信息中心配置候诊屏"})
    return [c.strip() for c in codes]


@board.get("/board/", include_in_schema=False)
def board_page() -> Response:
    return FileResponse(BOARD_DIR / "board.html", headers=BOARD_HEADERS)


@board.get("/api/board")
def board_json(queues: Queues, department: str = Query("", max_length=400),
               zone: str = Query("", max_length=100)) -> dict[str, Any]:
    """What a board shows now: per department who is called to which room and who is next (masked)."""
    codes = _board_departments(queues, department, zone)
    return queues.board(codes, queues.today())


@board.get("/api/board/stream")
async def board_stream(request: Request, queues: Queues, department: str = Query("", max_length=400),
                       zone: str = Query("", max_length=100)) -> StreamingResponse:
    """Server-sent events: ``board`` with the whole board whenever it changes (and on connect)."""
    codes = _board_departments(queues, department, zone)

    async def events():
        yield "retry: 2000\n\n"
        seen = None
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < SSE_MAX_SECONDS:
            if await request.is_disconnected():
                return
            day = queues.today()
            signature = await run_in_threadpool(queues.board_signature, codes, day)
            if signature != seen:
                seen = signature
                data = await run_in_threadpool(queues.board, codes, day)
                yield f"event: board\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            else:
                yield ": keep-alive\n\n"
            await asyncio.sleep(SSE_POLL_SECONDS)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def board_static() -> StaticFiles:
    return StaticFiles(directory=str(BOARD_DIR))


router = APIRouter()
router.include_router(api)
router.include_router(pages)
router.include_router(board)
