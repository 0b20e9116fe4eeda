"""Releases, device logs and major-event mode: the agents' signed calls, the staff pages and their JSON twin.

Device side (signed by the kiosk): ``GET /api/device/release`` (what to run),
``GET /api/device/releases/{version}/artifact``, ``POST /api/device/release/report``,
``POST /api/device/logs``. Staff side: ``/staff/releases…``, ``/staff/logs``,
``/staff/major-events`` and ``/api/staff/…`` with the same permissions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from medkiosk.api.deps import Device, Services
from medkiosk.api.staff import HOSPITAL_TIME, Forbidden, _PageRoute, _render, current_staff
from medkiosk.bootstrap import Container
from medkiosk.domain.releases import AgentReleaseStatus, GateThresholds
from medkiosk.security.release_signing import VERSION_RE
from medkiosk.services.logs import LEVELS, LogQuery, LogService
from medkiosk.services.major_events import MajorEventError, MajorEventService
from medkiosk.services.releases import ReleaseError, ReleaseService
from medkiosk.services.staff import Permission, StaffPrincipal, StaffService

RolloutId = Annotated[int, Path(ge=1, le=2**31 - 1)]
VersionPath = Annotated[str, Path(max_length=40, pattern=VERSION_RE.pattern)]


def require_any(*permissions: Permission) -> Callable[..., StaffPrincipal]:
    """Signed in with at least one of ``permissions`` (CSRF-checked on writes, like ``require``)."""

    def dependency(principal: Annotated[StaffPrincipal, Depends(current_staff)]) -> StaffPrincipal:
        if not any(principal.can(p) for p in permissions):
            raise Forbidden()
        return principal

    return dependency


Viewer = Annotated[StaffPrincipal, Depends(require_any(Permission.VIEW_DEVICES))]
Manager = Annotated[StaffPrincipal, Depends(require_any(Permission.MANAGE_DEVICES))]
# The on-site engineer may pull the brake too: a rollback only returns to a release that ran before.
Braker = Annotated[StaffPrincipal, Depends(require_any(Permission.MANAGE_DEVICES, Permission.HANDLE_EVENTS))]


def _error(exc: ReleaseError | MajorEventError) -> HTTPException:
    return HTTPException(getattr(exc, "status", 400), {"message": str(exc)})


# --- the agents' calls ------------------------------------------------------------------------------------
device_router = APIRouter(prefix="/api/device", tags=["device"])


class ReleaseReport(BaseModel):
    version: str = Field(min_length=1, max_length=40)
    status: AgentReleaseStatus
    detail: str = Field(default="", max_length=1000)


class LogBatch(BaseModel):
    batch_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    lines: list[dict[str, Any]] = Field(max_length=1000)


@device_router.get("/release")
def release_target(device: Device, services: Services) -> dict[str, Any]:
    """The version this kiosk should run, with the signature to check its artifact against."""
    return ReleaseService.from_container(services).target_for(device.id)


@device_router.get("/releases/{version}/artifact")
def release_artifact(version: VersionPath, device: Device, services: Services) -> Response:
    found = ReleaseService.from_container(services).artifact(version)
    if found is None:
        raise HTTPException(404, {"message": f"没有版本 {version}"})
    release, content = found
    return Response(content, media_type="application/gzip",
                    headers={"X-Medkiosk-Release-Sha256": release.sha256, "Cache-Control": "no-store"})


@device_router.post("/release/report")
def release_report(body: ReleaseReport, device: Device, services: Services) -> dict[str, Any]:
    ReleaseService.from_container(services).record_report(device.id, body.version, body.status, body.detail)
    return {"ok": True}


@device_router.post("/logs")
def ship_logs(body: LogBatch, device: Device, services: Services) -> dict[str, Any]:
    return LogService.from_container(services).ingest(device.id, body.batch_id, body.lines)


# --- staff pages ------------------------------------------------------------------------------------------
pages = APIRouter(prefix="/staff", route_class=_PageRoute, include_in_schema=False)


def _local_input(value: str) -> datetime | None:
    """A ``datetime-local`` field, read as hospital time."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(400, {"message": f"时间格式不正确：{value[:30]}"}) from exc
    return parsed.replace(tzinfo=HOSPITAL_TIME) if parsed.tzinfo is None else parsed


def _releases_page(request: Request, staff: StaffPrincipal, services: Container, *, error: str = "",
                   status_code: int = 200) -> Response:
    releases = ReleaseService.from_container(services)
    return _render(request, "releases.html", {
        "staff": staff, "releases": releases.releases(), "rollouts": releases.rollouts(),
        "fleet_version": releases.fleet_version(), "defaults": GateThresholds(),
        "major_event": MajorEventService.from_container(services).active(), "error": error,
        "can_manage": staff.can(Permission.MANAGE_DEVICES)}, status_code=status_code)


@pages.get("/releases")
def releases_page(request: Request, staff: Viewer, services: Services) -> Response:
    return _releases_page(request, staff, services)


@pages.post("/releases/rollouts")
def start_rollout_form(request: Request, staff: Manager, services: Services,
                       version: Annotated[str, Form(max_length=40)] = "",
                       share_percent: Annotated[int, Form(ge=1, le=100)] = 25,
                       soak_minutes: Annotated[int, Form(ge=0, le=7 * 24 * 60)] = 10,
                       install_minutes: Annotated[int, Form(ge=1, le=7 * 24 * 60)] = 10,
                       min_success_percent: Annotated[int, Form(ge=0, le=100)] = 95,
                       force: Annotated[bool, Form()] = False) -> Response:
    thresholds = GateThresholds(soak_seconds=soak_minutes * 60, install_deadline_seconds=install_minutes * 60,
                                min_success_rate=min_success_percent / 100, share_percent=share_percent)
    try:
        rollout_id = ReleaseService.from_container(services).start_rollout(
            version, actor=staff.username, thresholds=thresholds, force=force)
    except ReleaseError as exc:
        return _releases_page(request, staff, services, error=str(exc), status_code=exc.status)
    return RedirectResponse(f"/staff/releases/rollouts/{rollout_id}", status_code=303)


@pages.get("/releases/rollouts/{rollout_id}")
def rollout_page(request: Request, rollout_id: RolloutId, staff: Viewer, services: Services,
                 done: Annotated[str, Query(max_length=20)] = "") -> Response:
    rollout = ReleaseService.from_container(services).rollout(rollout_id)
    if rollout is None:
        raise HTTPException(404, {"message": f"没有第 {rollout_id} 号发布计划"})
    return _render(request, "releases_rollout.html", {
        "staff": staff, "rollout": rollout, "done": done,
        "can_roll_back": staff.can(Permission.MANAGE_DEVICES) or staff.can(Permission.HANDLE_EVENTS)})


@pages.post("/releases/rollouts/{rollout_id}/rollback")
def rollback_form(rollout_id: RolloutId, staff: Braker, services: Services,
                  reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    try:
        ReleaseService.from_container(services).rollback(rollout_id, actor=staff.username,
                                                         reason=reason or f"{staff.username} 手动回退")
    except ReleaseError as exc:
        raise _error(exc) from exc
    return RedirectResponse(f"/staff/releases/rollouts/{rollout_id}?done=rolled_back", status_code=303)


def _major_page(request: Request, staff: StaffPrincipal, services: Container, *, error: str = "",
                status_code: int = 200) -> Response:
    major = MajorEventService.from_container(services)
    return _render(request, "releases_major_events.html", {
        "staff": staff, "active": major.active(), "periods": major.periods(), "error": error,
        "can_manage": staff.can(Permission.MANAGE_DEVICES)}, status_code=status_code)


@pages.get("/major-events")
def major_events_page(request: Request, staff: Viewer, services: Services) -> Response:
    return _major_page(request, staff, services)


@pages.post("/major-events")
def create_major_event(request: Request, staff: Manager, services: Services,
                       name: Annotated[str, Form(max_length=200)] = "",
                       starts_at: Annotated[str, Form(max_length=30)] = "",
                       ends_at: Annotated[str, Form(max_length=30)] = "",
                       offline_for_seconds: Annotated[int, Form(ge=5, le=3600)] = 30,
                       escalate_after_minutes: Annotated[int, Form(ge=1, le=240)] = 5,
                       freeze_releases: Annotated[bool, Form()] = False,
                       note: Annotated[str, Form(max_length=1000)] = "") -> Response:
    starts, ends = _local_input(starts_at), _local_input(ends_at)
    if starts is None or ends is None:
        return _major_page(request, staff, services, error="请填写开始和结束时间", status_code=400)
    try:
        MajorEventService.from_container(services).create(
            name=name, starts_at=starts, ends_at=ends, actor=staff.username, note=note,
            thresholds={"offline_for_seconds": offline_for_seconds, "escalate_after_minutes": escalate_after_minutes,
                        "freeze_releases": freeze_releases})
    except MajorEventError as exc:
        return _major_page(request, staff, services, error=str(exc), status_code=400)
    return RedirectResponse("/staff/major-events", status_code=303)


@pages.post("/major-events/{event_id}/cancel")
def cancel_major_event(event_id: RolloutId, staff: Manager, services: Services) -> Response:
    try:
        MajorEventService.from_container(services).cancel(event_id, actor=staff.username)
    except MajorEventError as exc:
        raise HTTPException(404, {"message": str(exc)}) from exc
    return RedirectResponse("/staff/major-events", status_code=303)


def _log_query(device: str, since: datetime | None, until: datetime | None, level: str, session: str, q: str,
               before: int | None, limit: int) -> LogQuery:
    return LogQuery(device_id=device or None, since=since, until=until, level=level or None,
                    session_id=session or None, text=q or None, before_id=before, limit=limit)


@pages.get("/logs")
def logs_page(request: Request, staff: Viewer, services: Services,
              device: Annotated[str, Query(max_length=32)] = "",
              since: Annotated[str, Query(max_length=30)] = "",
              until: Annotated[str, Query(max_length=30)] = "",
              level: Annotated[str, Query(max_length=10)] = "",
              session: Annotated[str, Query(max_length=64)] = "",
              q: Annotated[str, Query(max_length=200)] = "",
              before: Annotated[int | None, Query(ge=1)] = None) -> Response:
    now = services.clock.now()
    since_at = _local_input(since) or now - timedelta(days=1)
    lines = LogService.from_container(services).search(
        _log_query(device, since_at, _local_input(until), level, session, q, before, 200))
    form = {"device": device, "since": since or since_at.astimezone(HOSPITAL_TIME).strftime("%Y-%m-%dT%H:%M"),
            "until": until, "level": level, "session": session, "q": q}
    older = lines[-1].id if len(lines) == 200 else None
    return _render(request, "logs.html", {
        "staff": staff, "lines": lines, "form": form, "levels": LEVELS, "older": older,
        "devices": [d.id for d in StaffService.from_container(services).devices()]})


# --- staff JSON -------------------------------------------------------------------------------------------
api = APIRouter(prefix="/api/staff", tags=["staff"])


class RolloutIn(BaseModel):
    version: str = Field(max_length=40)
    device_ids: list[str] | None = Field(default=None, max_length=5000)
    thresholds: dict[str, Any] = Field(default_factory=dict)
    force: bool = False


class RollbackIn(BaseModel):
    reason: str = Field(default="", max_length=500)


@api.get("/releases")
def releases_json(_staff: Viewer, services: Services) -> dict[str, Any]:
    releases = ReleaseService.from_container(services)
    return {"fleet_version": releases.fleet_version(), "releases": [r.to_json() for r in releases.releases()]}


@api.get("/rollouts")
def rollouts_json(_staff: Viewer, services: Services) -> dict[str, Any]:
    return {"rollouts": [r.to_json() for r in ReleaseService.from_container(services).rollouts()]}


@api.get("/rollouts/{rollout_id}")
def rollout_json(rollout_id: RolloutId, _staff: Viewer, services: Services) -> dict[str, Any]:
    rollout = ReleaseService.from_container(services).rollout(rollout_id)
    if rollout is None:
        raise HTTPException(404, {"message": f"没有第 {rollout_id} 号发布计划"})
    return rollout.to_json()


@api.post("/rollouts")
def start_rollout_json(body: RolloutIn, staff: Manager, services: Services) -> JSONResponse:
    try:
        thresholds = GateThresholds.from_json(body.thresholds)
    except (TypeError, ValueError) as exc:
        raise HTTPException(422, {"message": f"门槛设置不正确：{exc}"}) from exc
    releases = ReleaseService.from_container(services)
    try:
        rollout_id = releases.start_rollout(body.version, actor=staff.username, thresholds=thresholds,
                                            device_ids=body.device_ids, force=body.force)
    except ReleaseError as exc:
        raise _error(exc) from exc
    return JSONResponse(releases.rollout(rollout_id).to_json(), status_code=201)


@api.post("/rollouts/{rollout_id}/rollback")
def rollback_json(rollout_id: RolloutId, body: RollbackIn, staff: Braker, services: Services) -> dict[str, Any]:
    releases = ReleaseService.from_container(services)
    try:
        releases.rollback(rollout_id, actor=staff.username, reason=body.reason or f"{staff.username} 手动回退")
    except ReleaseError as exc:
        raise _error(exc) from exc
    return releases.rollout(rollout_id).to_json()


@api.get("/logs")
def logs_json(_staff: Viewer, services: Services,
              device: Annotated[str, Query(max_length=32)] = "",
              since: datetime | None = None, until: datetime | None = None,
              level: Annotated[str, Query(max_length=10)] = "",
              session: Annotated[str, Query(max_length=64)] = "",
              q: Annotated[str, Query(max_length=200)] = "",
              before: Annotated[int | None, Query(ge=1)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    """Device log lines, newest first: by device, time (ISO-8601), lowest level, session and text."""
    lines = LogService.from_container(services).search(_log_query(device, since, until, level, session, q, before,
                                                                  limit))
    return {"lines": [line.to_json() for line in lines]}


@api.get("/major-events/active")
def active_major_event_json(_staff: Viewer, services: Services) -> dict[str, Any]:
    period = MajorEventService.from_container(services).active()
    if period is None:
        return {"active": None}
    return {"active": {"id": period.id, "name": period.name, "starts_at": period.starts_at.isoformat(),
                       "ends_at": period.ends_at.isoformat(), "thresholds": period.thresholds, "note": period.note}}


router = APIRouter()
router.include_router(device_router)
router.include_router(pages)
router.include_router(api)


def background_tasks(container: Container, every: Callable[..., Any]) -> list[Any]:
    """What ``create_app`` runs: the rollout gates, and the daily purge of old device logs."""
    import asyncio

    settings = container.settings
    tasks = []
    if settings.release_evaluate_seconds > 0:
        tasks.append(asyncio.create_task(every(settings.release_evaluate_seconds, "release_gates",
                                               ReleaseService.from_container(container).evaluate)))
    retention = timedelta(days=settings.log_retention_days)
    tasks.append(asyncio.create_task(every(3600, "device_log_retention",
                                           lambda: LogService.from_container(container).purge(retention))))
    return tasks
