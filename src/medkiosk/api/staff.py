"""Staff pages (server-rendered, Chinese) and the staff JSON API, behind session cookies.

Every state-changing request (anything but GET/HEAD/OPTIONS) must carry the session's CSRF token,
as the form field ``csrf_token`` or the header ``X-CSRF-Token``, and, when the browser sends an
Origin or Referer, come from this host. ``current_staff`` checks both, so any route that depends on
it or on ``require(...)`` is protected without remembering to ask.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from medkiosk.bootstrap import Container
from medkiosk.security.passwords import WeakPassword
from medkiosk.services import audit
from medkiosk.services.clock import as_utc
from medkiosk.services.staff import (LOGIN_REFUSED_MESSAGE, DuplicateUser, EventNotFound, LoginRefused, NewSession,
                                     Permission, Role, StaffError, StaffPrincipal, StaffService, csrf_token_matches)

WEB_DIR = FilePath(__file__).resolve().parent.parent / "web"
STATIC_DIR = WEB_DIR / "static" / "staff"
COOKIE_NAME = "medkiosk_staff"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
EventId = Annotated[int, Path(ge=1, le=2**31 - 1)]
# China has one time zone and no daylight saving: a fixed offset needs no tz database on the server.
HOSPITAL_TIME = timezone(timedelta(hours=8))

templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
templates.env.filters["local"] = lambda value: (
    as_utc(value).astimezone(HOSPITAL_TIME).strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else "—")
templates.env.globals.update(Role=Role, Permission=Permission)

# Pages may load only our own CSS; no scripts at all, no framing, forms post only to us.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def static_files() -> StaticFiles:
    """What ``create_app`` mounts at /static/staff."""
    return StaticFiles(directory=str(STATIC_DIR))


# --- refusals ------------------------------------------------------------------------------------------
class NotAuthenticated(HTTPException):
    def __init__(self) -> None:
        super().__init__(401, {"message": "请先登录", "next_step": "请到 /staff/login 登录"})


class Forbidden(HTTPException):
    def __init__(self) -> None:
        super().__init__(403, {"message": "您的账号没有此项操作的权限", "next_step": "如需权限请联系信息中心"})


class CsrfRefused(HTTPException):
    def __init__(self, why: str) -> None:
        super().__init__(403, {"message": f"请求已拒绝：{why}", "next_step": "请刷新页面后重试"})


class _PageRoute(APIRoute):
    """Pages answer a browser: no session → the login page; a refusal → a readable page, not JSON."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except NotAuthenticated:
                response = _to_login(request)
            except HTTPException as exc:
                detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
                response = templates.TemplateResponse(request, "staff/error.html", {
                    "message": detail.get("message", ""), "next_step": detail.get("next_step", ""),
                    "staff": request.scope.get("medkiosk.staff")}, status_code=exc.status_code)
            response.headers.update(PAGE_HEADERS)
            return response

        return page_handler


def _to_login(request: Request) -> RedirectResponse:
    target = "/staff/login"
    if request.method == "GET" and request.url.path != "/staff/login":
        target += "?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(cookie_name(_container(request)), path="/")
    return response


# --- dependencies ------------------------------------------------------------------------------------
def _container(request: Request) -> Container:
    return request.app.state.container


def staff_service(request: Request) -> StaffService:
    return StaffService.from_container(_container(request))


Service = Annotated[StaffService, Depends(staff_service)]


def cookie_name(container: Container) -> str:
    # __Host- makes the browser refuse the cookie unless Secure, Path=/ and no Domain: it cannot be
    # planted by a sibling host. Plain http (the demo) cannot use it.
    return COOKIE_NAME if container.settings.demo else f"__Host-{COOKIE_NAME}"


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _same_origin(request: Request) -> bool:
    """When the browser says where the request came from, it must be this host. Absent headers are
    allowed (some privacy settings strip Referer); the CSRF token still has to match."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    if source == "null":
        return False
    return urlsplit(source).netloc.lower() == request.headers.get("host", "").lower()


async def current_staff(request: Request) -> StaffPrincipal:
    """The signed-in person; for a state-changing request, also the origin and CSRF checks."""
    container = _container(request)
    service = StaffService.from_container(container)
    principal = await run_in_threadpool(service.resolve, request.cookies.get(cookie_name(container)))
    if principal is None:
        raise NotAuthenticated()
    request.scope["medkiosk.staff"] = principal
    if request.method not in SAFE_METHODS:
        if not _same_origin(request):
            raise CsrfRefused("请求来源不是本系统页面")
        supplied = request.headers.get(CSRF_HEADER)
        if supplied is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            supplied = (await request.form()).get(CSRF_FIELD)
        if not csrf_token_matches(principal.csrf_token, supplied if isinstance(supplied, str) else None):
            raise CsrfRefused("缺少或错误的安全令牌（CSRF）")
    return principal


def require(permission: Permission | None = None) -> Callable[..., Any]:
    """A dependency: a signed-in person (with ``permission`` when given), CSRF-checked when the
    request changes something. Use as ``Depends(require(Permission.HANDLE_EVENTS))``."""

    def dependency(principal: Annotated[StaffPrincipal, Depends(current_staff)]) -> StaffPrincipal:
        if permission is not None and not principal.can(permission):
            raise Forbidden()
        return principal

    return dependency


Staff = Annotated[StaffPrincipal, Depends(require())]


def _render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    return templates.TemplateResponse(request, f"staff/{name}", context, status_code=status_code)


def _safe_next(value: str | None) -> str:
    """Only our own staff pages: never an absolute URL, never //host (an open redirect)."""
    if value and value.startswith("/staff") and not value.startswith("//") and "\\" not in value:
        return value
    return "/staff/"


# --- pages ---------------------------------------------------------------------------------------------
pages = APIRouter(prefix="/staff", route_class=_PageRoute, include_in_schema=False)


@pages.get("/login")
def login_page(request: Request, service: Service, next: str = "") -> Response:
    if service.resolve(request.cookies.get(cookie_name(_container(request)))):
        return RedirectResponse(_safe_next(next), status_code=303)
    return _render(request, "login.html", {"next": _safe_next(next), "username": "", "error": ""})


@pages.post("/login")
def login(request: Request, service: Service, username: Annotated[str, Form(max_length=200)] = "",
          password: Annotated[str, Form(max_length=1024)] = "", next: Annotated[str, Form()] = "") -> Response:
    if not _same_origin(request):
        raise CsrfRefused("请求来源不是本系统页面")
    try:
        opened: NewSession = service.login(username, password, client=_client(request))
    except LoginRefused:
        return _render(request, "login.html", {"next": _safe_next(next), "username": username[:60],
                                               "error": LOGIN_REFUSED_MESSAGE}, status_code=401)
    container = _container(request)
    response = RedirectResponse(_safe_next(next), status_code=303)
    # No Max-Age: the cookie ends with the browser (shared office PCs); the server's expiry is the limit.
    response.set_cookie(cookie_name(container), opened.token, path="/", secure=not container.settings.demo,
                        httponly=True, samesite="strict")
    return response


@pages.post("/logout")
def logout(request: Request, staff: Staff, service: Service) -> Response:
    service.logout(staff, client=_client(request))
    response = RedirectResponse("/staff/login", status_code=303)
    response.delete_cookie(cookie_name(_container(request)), path="/")
    return response


@pages.get("/")
def dashboard(request: Request, staff: Staff, service: Service,
              kind: Annotated[str, Query(max_length=40)] = "", unhandled: bool = False,
              handled: int | None = None) -> Response:
    devices = service.devices() if staff.can(Permission.VIEW_DEVICES) else None
    events = service.events(kind=kind or None, unhandled=unhandled) if staff.can(Permission.VIEW_EVENTS) else None
    return _render(request, "dashboard.html", {
        "staff": staff, "devices": devices, "events": events, "kind": kind, "unhandled": unhandled,
        "handled": handled, "online": sum(1 for d in devices or [] if d.online)})


@pages.post("/events/{event_id}/handle")
def handle_event(request: Request, event_id: EventId,
                 staff: Annotated[StaffPrincipal, Depends(require(Permission.HANDLE_EVENTS))],
                 service: Service) -> Response:
    try:
        service.handle_event(staff, event_id, client=_client(request))
    except EventNotFound as exc:
        raise HTTPException(404, {"message": f"没有编号为 {event_id} 的事件"}) from exc
    return RedirectResponse(f"/staff/?handled={event_id}", status_code=303)


def _users_page(request: Request, staff: StaffPrincipal, service: StaffService, *, error: str = "",
                created: str = "", form: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    return _render(request, "users.html", {
        "staff": staff, "users": service.list_users(), "error": error, "created": created,
        "form": form or {"username": "", "display_name": "", "roles": []}}, status_code=status_code)


@pages.get("/users")
def users(request: Request, staff: Annotated[StaffPrincipal, Depends(require(Permission.MANAGE_STAFF))],
          service: Service, created: Annotated[str, Query(max_length=60)] = "") -> Response:
    return _users_page(request, staff, service, created=created)


@pages.post("/users")
def create_user(request: Request, staff: Annotated[StaffPrincipal, Depends(require(Permission.MANAGE_STAFF))],
                service: Service, username: Annotated[str, Form(max_length=200)] = "",
                display_name: Annotated[str, Form(max_length=200)] = "",
                roles: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
                password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    try:
        account = service.create_user(username, display_name, roles, password, actor=staff.username)
    except (StaffError, WeakPassword) as exc:
        status = 409 if isinstance(exc, DuplicateUser) else 400
        return _users_page(request, staff, service, error=str(exc), status_code=status,
                           form={"username": username[:60], "display_name": display_name[:60], "roles": roles})
    return RedirectResponse(f"/staff/users?created={quote(account.username)}", status_code=303)


@pages.get("/audit")
def audit_log(request: Request, staff: Annotated[StaffPrincipal, Depends(require(Permission.READ_AUDIT))],
              container: Annotated[Container, Depends(_container)],
              before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
              verify: bool = False) -> Response:
    with container.uow() as uow:
        entries = audit.recent(uow, limit=100, before_id=before)
        verdict = audit.verify_chain(uow) if verify else None
        chain_head = audit.head(uow)
    return _render(request, "audit.html", {
        "staff": staff, "entries": entries, "verdict": verdict, "head": chain_head,
        "older": entries[-1].id if len(entries) == 100 else None})


@pages.get("/password")
def password_page(request: Request, staff: Staff) -> Response:
    return _render(request, "password.html", {"staff": staff, "error": "", "done": False})


@pages.post("/password")
def change_password(request: Request, staff: Staff, service: Service,
                    current: Annotated[str, Form(max_length=1024)] = "",
                    new: Annotated[str, Form(max_length=1024)] = "",
                    confirm: Annotated[str, Form(max_length=1024)] = "") -> Response:
    error = ""
    if new != confirm:
        error = "两次输入的新密码不一致"
    else:
        try:
            service.change_password(staff, current, new, client=_client(request))
        except (StaffError, WeakPassword) as exc:
            error = str(exc)
    return _render(request, "password.html", {"staff": staff, "error": error, "done": not error},
                   status_code=400 if error else 200)


# --- JSON ------------------------------------------------------------------------------------------------
api = APIRouter(prefix="/api/staff", tags=["staff"])


@api.get("/me")
def me(staff: Staff) -> dict[str, Any]:
    """Who is signed in, what they may do, and the CSRF token to send as ``X-CSRF-Token``."""
    return {"username": staff.username, "display_name": staff.display_name,
            "roles": [role.value for role in staff.roles],
            "permissions": sorted(permission.value for permission in staff.permissions),
            "csrf_token": staff.csrf_token, "expires_at": staff.expires_at.isoformat()}


@api.get("/events")
def events(_staff: Annotated[StaffPrincipal, Depends(require(Permission.VIEW_EVENTS))], service: Service,
           kind: Annotated[str, Query(max_length=40)] = "", unhandled: bool = False,
           limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """Latest events, newest first; ``kind=staff_call`` for calls for help, ``unhandled=1`` for open ones."""
    return {"events": [event.to_json() for event in service.events(kind=kind or None, unhandled=unhandled,
                                                                    limit=limit)]}


@api.get("/devices")
def devices(_staff: Annotated[StaffPrincipal, Depends(require(Permission.VIEW_DEVICES))],
            service: Service) -> dict[str, Any]:
    """Every device with its last heartbeat and whether it is online (heard from within 15 s)."""
    return {"devices": [device.to_json() for device in service.devices()]}


@api.post("/events/{event_id}/handle")
def handle_event_json(request: Request, event_id: EventId,
                      staff: Annotated[StaffPrincipal, Depends(require(Permission.HANDLE_EVENTS))],
                      service: Service) -> JSONResponse:
    """Mark an event handled (send the ``X-CSRF-Token`` header)."""
    try:
        event = service.handle_event(staff, event_id, client=_client(request))
    except EventNotFound as exc:
        raise HTTPException(404, {"message": f"没有编号为 {event_id} 的事件"}) from exc
    return JSONResponse({"event": event.to_json()})


router = APIRouter()
router.include_router(pages)
router.include_router(api)
