"""The device agent's web app: the kiosk page, the page's local API, and the agent's two loops.

The browser talks only to this app on loopback. The agent signs and forwards the page's business
calls to the kiosk service, so the page never holds the device key and never reaches the
service's device API; identity comes from the agent's own readers (identification.py).
See docs/kiosk-local-api.md for the contract with the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import segno
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from medkiosk import __version__
from medkiosk.agent.client import ServiceClient, ServiceUnavailable
from medkiosk.agent.config import AgentSettings
from medkiosk.agent.demo import demo_router
from medkiosk.agent.documents import Receipt
from medkiosk.agent.drivers import Drivers, build_drivers
from medkiosk.agent.errors import NO_STORE, AgentError, error_body, install_error_handlers
from medkiosk.agent.forwarding import FORWARDED_REQUEST_HEADERS, FORWARDED_RESPONSE_HEADERS, service_path
from medkiosk.agent.heartbeat import Heartbeat
from medkiosk.agent.identification import Identification
from medkiosk.agent.logship import LogShipper, ShipperContext, install_capture
from medkiosk.agent.updater import BundleStaticFiles, BundleStore, Updater
from medkiosk.domain.masking import mask_phone
from medkiosk.logging import configure_logging, get_logger
from medkiosk.agent.pos import Outbox, PosRefused, PosTerminal
from medkiosk.agent.printing import PrintQueue
from medkiosk.security.release_signing import parse_key_list

log = get_logger("medkiosk.agent")

DEFAULT_WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "kiosk"
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "font-src 'self'; connect-src 'self'; media-src 'self'; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
MAX_FORWARD_BODY = 1 << 20
MAX_PDF_BODY = 20 << 20
PHONE = re.compile(r"^1\d{10}$")
ORDER_NO = r"^[A-Za-z0-9_-]{1,40}$"
QR_MAX_DATA = 512  # a payment channel's code_url is well under 100 characters

PLACEHOLDER_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>自助机</title></head>
<body><h1>自助机页面尚未安装</h1><p>设备代理正在运行，请联系工作人员安装自助机页面。</p></body></html>
"""

UNREACHABLE = ("暂时无法连接医院服务", "请稍后再试，或到人工窗口办理")
UNKNOWN_OUTCOME = ("医院服务响应超时，操作结果未知", "请不要重复操作，稍后查询结果或到人工窗口咨询")


class LocalOnly:
    """ASGI middleware: answer only loopback ``Host`` names, refuse cross-origin writes, add security headers."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        refusal = None
        if hostname not in LOOPBACK_HOSTS:
            refusal = (421, "只接受本机访问", "请在自助机上使用")
        elif scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get("origin")
            if (origin is not None and origin != f"http://{host}") or headers.get("sec-fetch-site") == "cross-site":
                refusal = (403, "不允许的操作", "请在自助机页面上操作")
        if refusal is not None:
            response = JSONResponse(error_body(refusal[1], refusal[2]), refusal[0], headers=NO_STORE)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class AgentRuntime:
    """What the endpoints share; on ``app.state.agent`` for tests and the CLI."""

    settings: AgentSettings
    drivers: Drivers
    client: ServiceClient
    identification: Identification
    heartbeat: Heartbeat
    receipts: PrintQueue
    a4: PrintQueue
    updater: Updater
    logs: LogShipper
    pos: PosTerminal

    def web_dir(self) -> Path:
        """The page being served now: the current release's, else the configured or built-in one."""
        return self.updater.web_dir() or self.settings.web_dir or DEFAULT_WEB_DIR


class PhoneIn(BaseModel):
    phone: str = Field(max_length=20)


class ScreenIn(BaseModel):
    name: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.:/-]+$")


def _service_json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _note_refusal(response: Any, path: str) -> None:
    """A 401 means the service refused this device (key, clock skew, disabled): staff must know."""
    if response.status_code == 401:
        log.warning("service_refused_device", path=path, reply=response.text[:200])


def _unavailable(exc: ServiceUnavailable) -> AgentError:
    message, next_step = UNKNOWN_OUTCOME if exc.outcome_unknown else UNREACHABLE
    return AgentError(504 if exc.outcome_unknown else 502, message, next_step)


def create_agent_app(settings: AgentSettings, *, drivers: Drivers | None = None,
                     client: ServiceClient | None = None) -> FastAPI:
    own_client = client is None
    drivers = drivers or build_drivers(settings)
    client = client or ServiceClient(settings.service_url, settings.signer(), settings.request_timeout_seconds)
    runtime = AgentRuntime(
        settings=settings,
        drivers=drivers,
        client=client,
        identification=Identification(drivers.readers(), client),
        heartbeat=Heartbeat(client, drivers, period=settings.heartbeat_seconds,
                            software_version=settings.software_version),
        receipts=PrintQueue("receipt_printer", "小票打印机", drivers.receipt_printer),
        a4=PrintQueue("a4_printer", "A4打印机", drivers.a4_printer),
        updater=None,  # type: ignore[arg-type] - set just below: it reads the heartbeat
        logs=LogShipper(client, period=settings.log_ship_seconds, batch_lines=settings.log_batch_lines,
                        buffer_lines=settings.log_buffer_lines, level=settings.log_ship_level),
        pos=PosTerminal(drivers.bank_pos, client, Outbox(settings.printout_dir / "pos-outbox.json"),
                        period=settings.heartbeat_seconds, settle_at=settings.bank_pos_settle_at, tz=settings.tz),
    )
    runtime.updater = Updater(
        client, BundleStore(settings.release_root), parse_key_list(settings.release_public_keys), drivers=drivers,
        heartbeats=lambda: runtime.heartbeat.sent,
        on_version=lambda version: setattr(runtime.heartbeat, "software_version", version),
        builtin_version=settings.software_version, period=settings.release_check_seconds,
        default_deadline=settings.release_health_deadline_seconds)
    runtime.updater.announce()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.log_ship:  # before the loops start, so that their lines are shipped too
            install_capture()
            runtime.logs.bind()
        tasks = [asyncio.create_task(runtime.identification.run(), name="identification"),
                 asyncio.create_task(runtime.heartbeat.run(), name="heartbeat"),
                 asyncio.create_task(runtime.pos.run(), name="bank_pos")]
        if runtime.updater.trusted:
            tasks.append(asyncio.create_task(runtime.updater.run(), name="updater"))
        else:
            log.warning("releases_disabled", reason="MEDKIOSK_AGENT_RELEASE_PUBLIC_KEYS is empty")
        if settings.log_ship:
            tasks.append(asyncio.create_task(runtime.logs.run(), name="log_shipper"))
        log.info("agent_started", device_id=settings.device_id, demo=settings.demo, service_url=settings.service_url,
                 drivers={name: type(p).__name__ for name, p in drivers.all().items()})
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if settings.log_ship:
                await asyncio.to_thread(runtime.logs.flush, 5)
            if own_client:
                client.close()
            log.info("agent_stopped", device_id=settings.device_id)

    app = FastAPI(title="medkiosk device agent", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.agent = runtime
    app.add_middleware(LocalOnly)
    # Compressed over loopback too: the page's scripts and styles stay well under the 200 KB a
    # screen may transfer (DESIGN 11) as the flows grow. Long polls and PDFs are unaffected.
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    if settings.log_ship:
        app.add_middleware(ShipperContext, shipper=runtime.logs)
    install_error_handlers(app)

    # The page.

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        page = runtime.web_dir() / "index.html"
        html = page.read_text(encoding="utf-8") if page.is_file() else PLACEHOLDER_PAGE
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    app.mount("/static/kiosk", BundleStaticFiles(runtime.web_dir), name="kiosk-static")

    # Configuration and identification.

    @app.get("/local/config")
    async def config() -> JSONResponse:
        local = {"device_id": settings.device_id, "demo": settings.demo, "agent_version": __version__,
                 "page_version": runtime.updater.reported_version(), "long_poll_seconds": settings.long_poll_seconds,
                 "page_check_seconds": settings.page_check_seconds}
        try:
            response = await asyncio.to_thread(client.get, "/api/kiosk/home")
        except ServiceUnavailable as exc:
            log.warning("home_unreachable", error=str(exc))
            return JSONResponse({**local, **error_body(*UNREACHABLE)}, 503, headers=NO_STORE)
        _note_refusal(response, "/api/kiosk/home")
        home = _service_json(response)
        home = home if isinstance(home, dict) else {}
        if response.status_code >= 400 and "message" not in home:
            home.update(error_body(*UNREACHABLE))
        return JSONResponse({**home, **local}, response.status_code, headers=NO_STORE)

    @app.get("/local/identify/wait")
    async def identify_wait(request: Request, timeout: float | None = Query(default=None, ge=0),
                            expect: Literal["payment_code"] | None = Query(default=None),
                            order_no: str | None = Query(default=None, pattern=ORDER_NO)) -> JSONResponse:
        wait = min(settings.long_poll_seconds if timeout is None else timeout, settings.long_poll_seconds)
        identification = runtime.identification
        if expect is None:
            outcome = await identification.next_outcome(wait, gone=request.is_disconnected)
        else:
            if order_no is None:
                raise AgentError(422, "提交的内容有误", "等待付款码需要订单号", fields=["order_no"])
            # While this poll is open, a payment code at the scanner pays this order.
            with identification.expecting_payment_code(order_no):
                outcome = await identification.next_outcome(wait, gone=request.is_disconnected,
                                                            payment_order=order_no)
        runtime.logs.note_outcome(outcome)
        return JSONResponse(outcome or {"outcome": "waiting"}, headers=NO_STORE)

    @app.post("/local/identify/phone")
    async def identify_phone(body: PhoneIn) -> JSONResponse:
        phone = body.phone.strip()
        if not PHONE.match(phone):
            raise AgentError(422, "请输入正确的手机号码", "手机号码为1开头的11位数字")
        if not runtime.identification.has_pending:
            raise AgentError(409, "请先刷卡或扫码", "请将医保卡、身份证或电子凭证放到识别区")
        log.info("identify_phone", phone=mask_phone(phone))
        outcome = await runtime.identification.answer_phone(phone)
        runtime.logs.note_outcome(outcome)
        if outcome is None:  # the session ended while we waited
            raise AgentError(409, "请先刷卡或扫码", "请将医保卡、身份证或电子凭证放到识别区")
        return JSONResponse(outcome, headers=NO_STORE)

    @app.post("/local/session/ended")
    async def session_ended() -> JSONResponse:
        runtime.identification.session_ended()
        log.info("session_ended")
        runtime.logs.session_ended()
        return JSONResponse({"ok": True}, headers=NO_STORE)

    @app.post("/local/screen")
    async def screen(body: ScreenIn) -> JSONResponse:
        runtime.heartbeat.screen = body.name
        return JSONResponse({"ok": True}, headers=NO_STORE)

    # QR codes for the page to show (a payment's code_url): drawn here, so the page needs no QR code.

    @app.get("/local/qr")
    async def qr_code(data: str = Query(min_length=1, max_length=QR_MAX_DATA)) -> Response:
        return Response(await asyncio.to_thread(qr_svg, data), media_type="image/svg+xml", headers=NO_STORE)

    # Printing.

    @app.post("/local/print/receipt")
    async def print_receipt(receipt: Receipt) -> JSONResponse:
        result = await runtime.receipts.submit(receipt.job_id, receipt.title,
                                               lambda: drivers.receipt_printer.print_receipt(receipt))
        return JSONResponse(result, headers=NO_STORE)

    @app.post("/local/print/a4")
    async def print_a4(request: Request, title: str = Query(default="", max_length=60),
                       job_id: str | None = Query(default=None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
                       ) -> JSONResponse:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/pdf":
            raise AgentError(415, "打印内容格式不支持", "A4打印只接受PDF")
        pdf = await _read_body(request, MAX_PDF_BODY)
        if not pdf.startswith(b"%PDF-"):
            raise AgentError(422, "打印内容有误", "请返回重试，或到人工窗口办理")
        result = await runtime.a4.submit(job_id, title, lambda: drivers.a4_printer.print_pdf(pdf, title=title))
        return JSONResponse(result, headers=NO_STORE)

    # The bank POS: the patient's card sale for an order the service set to be paid by card.

    @app.post("/local/pos/sale/{order_no}")
    async def pos_sale(order_no: str = PathParam(pattern=ORDER_NO)) -> JSONResponse:
        try:
            status, body = await asyncio.to_thread(runtime.pos.sale, order_no)
        except PosRefused as exc:
            raise AgentError(exc.status, exc.message, exc.next_step) from exc
        runtime.heartbeat.counters.record(ok=status < 500)
        return JSONResponse(body, status, headers=NO_STORE)

    # The forwarder: the page's business calls, signed, to the service's kiosk API only.

    @app.api_route("/local/api/kiosk/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def forward(request: Request, rest: str) -> Response:
        raw_path = request.scope.get("raw_path")
        raw = raw_path.decode("latin-1") if raw_path else request.url.path
        target = service_path(raw)
        if target is None:
            log.warning("forward_refused", path=raw[:200])
            raise AgentError(404, "没有这个功能", "请返回首页")
        query = request.scope.get("query_string", b"").decode("latin-1")
        body = await _read_body(request, MAX_FORWARD_BODY)
        headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
        try:
            response = await asyncio.to_thread(client.request, request.method, target + (f"?{query}" if query else ""),
                                               content=body or None, headers=headers)
        except ServiceUnavailable as exc:
            log.warning("forward_failed", path=target, error=str(exc), outcome_unknown=exc.outcome_unknown)
            if request.method != "GET":
                runtime.heartbeat.counters.record(ok=False)
            raise _unavailable(exc) from exc
        if request.method != "GET":  # a business step the patient asked for: counted for monitoring
            runtime.heartbeat.counters.record(ok=response.status_code < 500)
        _note_refusal(response, target)
        passed = {name: response.headers[name] for name in FORWARDED_RESPONSE_HEADERS if name in response.headers}
        return Response(response.content, response.status_code, headers={**passed, **NO_STORE})

    if settings.demo:
        app.include_router(demo_router(drivers))

    return app


def qr_svg(data: str) -> bytes:
    """``data`` as a QR code in SVG: black on white, a four-module quiet zone, sized by the page."""
    code = segno.make(data, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind="svg", scale=1, border=4, dark="#000", light="#fff", xmldecl=False, omitsize=True,
              title="二维码")
    return out.getvalue()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise AgentError(413, "内容过大", "请到人工窗口办理")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise AgentError(413, "内容过大", "请到人工窗口办理")
        chunks.append(chunk)
    return b"".join(chunks)


def run_agent(settings: AgentSettings | None = None) -> None:
    """``medkiosk agent``: run this kiosk's agent in the foreground until stopped."""
    import structlog
    import uvicorn

    from medkiosk.serving import KEEP_ALIVE_SECONDS

    settings = settings or AgentSettings()
    if not structlog.is_configured():  # the CLI configures logging before it calls us
        configure_logging()
    app = create_agent_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=3, timeout_keep_alive=KEEP_ALIVE_SECONDS)
