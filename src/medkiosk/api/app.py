"""The kiosk service's FastAPI application."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from medkiosk import __version__
from medkiosk.api import reconciliation as reconciliation_api
from medkiosk.api import documents as documents_api
from medkiosk.api import checkin as checkin_api
from medkiosk.api import departments as departments_api
from medkiosk.api import exams as exams_api
from medkiosk.api import queues as queues_api
from medkiosk.api import registrations as registrations_api
from medkiosk.api import metrics as metrics_api
from medkiosk.api import operations_releases
from medkiosk.api import operations_tickets
from medkiosk.api import device, kiosk, operations, payments, staff
from medkiosk.bootstrap import Container, build_container
from medkiosk.logging import get_logger
from medkiosk.metrics import HttpMetricsMiddleware
from medkiosk.services.operations import operations_of
from medkiosk.services.registrations import registrations_of
from medkiosk.settings import Settings, get_settings

log = get_logger(__name__)


HOUSEKEEPING_SECONDS = 60


async def _every(seconds: float, name: str, work) -> None:
    """Run ``work`` in a thread every ``seconds``; an error is logged and the next round retries."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(work)
        except Exception as exc:  # keep the loop alive
            log.warning(f"{name}.failed", error=type(exc).__name__)


def _background_tasks(container: Container) -> list[asyncio.Task]:
    settings = container.settings
    tasks = [
        # Forget device nonces whose timestamps alone now refuse a replay.
        asyncio.create_task(_every(HOUSEKEEPING_SECONDS, "housekeeping", container.devices.purge_nonces)),
    ]
    tasks += operations_releases.background_tasks(container, _every)
    # Inspection rounds at their scheduled times; ticket clocks reaching 75 % / 100 %.
    tasks += operations_tickets.background_tasks(container, _every)
    if settings.reconcile_at:
        # Reconcile yesterday every day at MEDKIOSK_RECONCILE_AT, hospital time (docs/reconciliation.md).
        from medkiosk.services.reconciliation import run_daily

        tasks.append(asyncio.create_task(run_daily(container)))
    # Tell the HIS of check-ins it did not confirm (slow or down when the patient checked in).
    tasks.append(asyncio.create_task(_every(HOUSEKEEPING_SECONDS / 2, "checkin_his_retry",
                                            container.checkin.tell_his_again)))
    if settings.recovery_seconds > 0:
        # Resume or unwind payments nobody is driving (crash, timeout, restart, abandoned QR).
        tasks.append(asyncio.create_task(_every(
            settings.recovery_seconds, "payment_recovery",
            lambda: container.payments.recover(older_than=timedelta(seconds=settings.recovery_seconds)))))
        # Give back the numbers held for registrations whose payment ended unpaid (abandoned, expired).
        tasks.append(asyncio.create_task(_every(settings.recovery_seconds, "registration_release",
                                                registrations_of(container).release_abandoned)))
    ops = operations_of(container)
    # Alerts: evaluate rules, notify; upstream probes; telemetry history retention.
    if settings.ops_evaluation_seconds > 0:
        tasks.append(asyncio.create_task(_every(settings.ops_evaluation_seconds, "alert_evaluation",
                                                ops.alerts.evaluate)))
    if settings.ops_probe_seconds > 0:
        tasks.append(asyncio.create_task(_every(settings.ops_probe_seconds, "upstream_probe", ops.probe)))
    tasks.append(asyncio.create_task(_every(HOUSEKEEPING_SECONDS * 10, "telemetry_retention", ops.housekeeping)))
    return tasks


def create_app(settings: Settings | None = None, *, container: Container | None = None) -> FastAPI:
    settings = settings or (container.settings if container else get_settings())
    owns_container = container is None
    container = container or build_container(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        tasks = _background_tasks(container)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if owns_container:
                container.close()

    # FastAPI's own OpenTelemetry hooks stay off: the service's metrics are its Prometheus
    # /metrics (medkiosk.metrics), and asking on every request whether a provider has appeared
    # since cost ≈ 4 % of the service's CPU under load (benchmarks/README.md).
    app = FastAPI(title="medkiosk kiosk service", version=__version__, lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.container = container
    app.include_router(device.router)
    app.include_router(kiosk.router)
    app.include_router(payments.router)
    app.include_router(payments.pos_router)
    app.include_router(exams_api.router)
    app.include_router(documents_api.router)
    app.include_router(checkin_api.router)
    app.include_router(queues_api.router)
    app.include_router(departments_api.router)
    app.include_router(registrations_api.router)
    app.include_router(reconciliation_api.router)
    app.include_router(staff.router)
    app.include_router(operations.router)
    app.include_router(operations_releases.router)
    app.include_router(operations_tickets.router)
    app.include_router(metrics_api.router)
    # Requests counted and timed by route template (never the raw path: no order numbers in labels).
    app.add_middleware(HttpMetricsMiddleware)
    app.mount("/static/staff", staff.static_files(), name="staff-static")
    app.mount("/static/board", queues_api.board_static(), name="board-static")

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        return JSONResponse(detail, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [".".join(str(p) for p in e["loc"][1:]) for e in exc.errors()]
        return JSONResponse({"message": "请求内容不正确", "next_step": "请重试，或到人工窗口办理", "fields": fields},
                            status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error=type(exc).__name__)
        return JSONResponse({"message": "系统繁忙，请稍后再试", "next_step": "请到人工窗口办理"}, status_code=500)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        try:
            with container.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # the point is to report any failure
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app
