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
