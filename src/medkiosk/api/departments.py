"""Departments configured by the hospital (科室配置): the kiosk's registration departments (signed) and the
IT centre's page to edit a draft, preview it on test kiosks, publish or discard it (manage_queues; CSRF
by the staff session; every change audited by the service)."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from medkiosk.adapters.errors import UpstreamError
from medkiosk.api.deps import Device, Services
from medkiosk.api.refusals import refusal_guard
from medkiosk.api.staff import _PageRoute, require, templates
from medkiosk.bootstrap import Container
from medkiosk.services.departments import (
    DepartmentService,
    DepartmentsRefused,
    HisUnavailable,
)
from medkiosk.services.staff import Permission, StaffPrincipal

CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
SPLIT_PARTS = 4
MESSAGES = {"saved": "已保存到草稿。预览终端上立即可见，其他终端在发布后可见。", "published": "已发布，所有终端立即生效。",
            "discarded": "已放弃草稿。", "preview": "已更新预览终端。"}

# --- the kiosk ------------------------------------------------------------------------------------------
kiosk = APIRouter(prefix="/api/kiosk/registration", tags=["kiosk registration"])
_guard = refusal_guard(HisUnavailable)


@kiosk.get("/departments")
def registration_departments(device: Device, services: Services) -> dict[str, Any]:
    """The departments this kiosk offers for registration, grouped and ordered: the draft on a preview
    (test) kiosk, the published configuration on every other. Each carries the HIS codes (and, for a
    split, the doctor codes) to ask for doctors and slots with."""
    return _guard(lambda: services.departments.for_kiosk(preview=device.preview))


# --- the IT centre's page -------------------------------------------------------------------------------------
Admin = Annotated[StaffPrincipal, Depends(require(Permission.MANAGE_QUEUES))]


def _departments(request: Request) -> DepartmentService:
    container: Container = request.app.state.container
    return container.departments


Departments = Annotated[DepartmentService, Depends(_departments)]
pages = APIRouter(prefix="/staff/departments", route_class=_PageRoute, include_in_schema=False)


def _codes(text: str) -> list[str]:
    codes = [c for c in re.split(r"[\s,，、;；]+", text or "") if c]
    bad = [c for c in codes if not CODE_RE.match(c)]
    if bad:
        raise DepartmentsRefused(f"代码 {'、'.join(bad[:5])} 不正确（只能包含字母、数字、“.”“-”“_”）")
    return codes


def _page(request: Request, admin: StaffPrincipal, departments: DepartmentService, *, edit: str = "",
          his: str = "", split: str = "", message: str = "", error: str = "", status_code: int = 200) -> Response:
    try:
        view = departments.overview()
    except HisUnavailable as exc:
        return templates.TemplateResponse(request, "staff/error.html", {
            "message": exc.message, "next_step": "HIS 恢复后再修改科室配置", "staff": admin}, status_code=503)
    draft_entries = view["draft"].entries if view["draft"].version is not None else view["published"].entries
    editing = next((e for e in draft_entries if e.key == edit), None) if edit else None
    his_by_code = {d.code: d for d in view["his"]}
    seeded = his_by_code.get(his) if his and not editing else None
    seeded_position = next((d.position for g in view["draft_tree"] for d in g.departments
                            if d.key is None and d.his_codes[0] == his), "") if seeded else ""
    doctors: list[dict[str, str]] = []
    if split in his_by_code:
        try:
            doctors = departments.his_doctors(split)
        except UpstreamError:  # the form says so instead of listing nobody silently
            error = error or "暂时无法从 HIS 读取该科室的医生，请稍后再试"
    return templates.TemplateResponse(request, "departments/config.html", {
        "staff": admin, **view, "editing": editing, "seeded": seeded, "seeded_position": seeded_position, "his_by_code": his_by_code,
        "split_code": split if split in his_by_code else "", "split_doctors": doctors, "split_parts": SPLIT_PARTS,
        "message": message, "error": error}, status_code=status_code)


@pages.get("")
def config_page(request: Request, admin: Admin, departments: Departments,
                edit: Annotated[str, Query(max_length=16)] = "", his: Annotated[str, Query(max_length=40)] = "",
                split: Annotated[str, Query(max_length=40)] = "", done: str = "") -> Response:
    """The draft beside the published configuration, the forms that change the draft, the preview kiosks."""
    return _page(request, admin, departments, edit=edit, his=his, split=split, message=MESSAGES.get(done, ""))


async def _act(request: Request, admin: StaffPrincipal, departments: DepartmentService, call, done: str,
               **again: str) -> Response:
    try:
        await run_in_threadpool(call)
    except DepartmentsRefused as exc:
        return _page(request, admin, departments, error=exc.message, status_code=422, **again)
    except HisUnavailable as exc:
        return _page(request, admin, departments, error=f"{exc.message}，{exc.next_step}", status_code=503)
    return RedirectResponse(f"/staff/departments?{urlencode({'done': done})}", status_code=303)


@pages.post("/save")
async def save(request: Request, admin: Admin, departments: Departments,
               key: Annotated[str, Form(max_length=16)] = "", his_code: Annotated[str, Form(max_length=40)] = "",
               name: Annotated[str, Form(max_length=200)] = "", group: Annotated[str, Form(max_length=200)] = "",
               position: Annotated[str, Form(max_length=9)] = "", hidden: Annotated[str, Form(max_length=3)] = "",
               his_codes: Annotated[str, Form(max_length=400)] = "",
               doctor_codes: Annotated[str, Form(max_length=2000)] = "",
               intro: Annotated[str, Form(max_length=2000)] = "",
               location: Annotated[str, Form(max_length=400)] = "") -> Response:
    """Rename, reorder, hide, regroup, map to HIS codes, limit to doctors, intro and location of one department."""
    def call() -> None:
        codes = _codes(his_codes) or ([his_code] if his_code else [])
        doctors = _codes(doctor_codes)
        fields: dict[str, Any] = {"name": name, "group": group, "hidden": hidden == "on", "his_codes": codes,
                                  "doctor_codes": doctors or None, "intro": intro, "location": location}
        if position.strip():  # empty: the department keeps its place
            try:
                fields["position"] = int(position.strip())
            except ValueError as exc:
                raise DepartmentsRefused("顺序须为整数（数字小的排在前面）") from exc
        departments.save_department(admin.username, fields, key=key)

    return await _act(request, admin, departments, call, "saved", edit=key, his=his_code)


@pages.post("/merge")
async def merge(request: Request, admin: Admin, departments: Departments) -> Response:
    """Several HIS departments shown as one kiosk department."""
    form = await request.form()
    codes = [str(c) for c in form.getlist("his_codes") if CODE_RE.match(str(c))]
    name, group = str(form.get("name", "")).strip()[:200], str(form.get("group", "")).strip()[:200]
    intro, location = str(form.get("intro", ""))[:2000], str(form.get("location", ""))[:400]
    return await _act(request, admin, departments,
                      lambda: departments.merge(admin.username, name, codes, intro=intro, location=location,
                                                group=group), "saved")


@pages.post("/split")
async def split(request: Request, admin: Admin, departments: Departments) -> Response:
    """One HIS department shown as several kiosk departments, each with the doctors put in it."""
    form = await request.form()
    his_code = str(form.get("his_code", ""))
    if not CODE_RE.match(his_code):
        return _page(request, admin, departments, error="请选择要拆分的 HIS 科室", status_code=422)
    parts: list[tuple[str, list[str]]] = [(str(form.get(f"name_{i}", "")).strip()[:200], [])
                                          for i in range(1, SPLIT_PARTS + 1)]
    for field, value in form.multi_items():
        if field.startswith("doctor_") and str(value).isdigit() and 1 <= int(value) <= SPLIT_PARTS:
            doctor = field.removeprefix("doctor_")
            if CODE_RE.match(doctor):
                parts[int(value) - 1][1].append(doctor)
    return await _act(request, admin, departments, lambda: departments.split(admin.username, his_code, parts),
                      "saved", split=his_code)


@pages.post("/restore")
async def restore(request: Request, admin: Admin, departments: Departments,
                  key: Annotated[str, Form(max_length=16)] = "") -> Response:
    """Take a department out of the draft: its HIS departments show again as the HIS names them."""
    return await _act(request, admin, departments, lambda: departments.restore(admin.username, key), "saved")


@pages.post("/publish")
async def publish(request: Request, admin: Admin, departments: Departments) -> Response:
    return await _act(request, admin, departments, lambda: departments.publish(admin.username), "published")


@pages.post("/discard")
async def discard(request: Request, admin: Admin, departments: Departments) -> Response:
    return await _act(request, admin, departments, lambda: departments.discard(admin.username), "discarded")


@pages.post("/preview")
async def preview(request: Request, admin: Admin, departments: Departments,
                  device_id: Annotated[str, Form(max_length=32)] = "",
                  preview: Annotated[str, Form(max_length=3)] = "") -> Response:
    """Make a kiosk a preview (test) kiosk (``preview=on``) or an ordinary one."""
    return await _act(request, admin, departments,
                      lambda: departments.set_preview(admin.username, device_id.strip(), preview == "on"), "preview")


router = APIRouter()
router.include_router(kiosk)
router.include_router(pages)
