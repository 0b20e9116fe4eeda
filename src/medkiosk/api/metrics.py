"""``GET /metrics``: Prometheus text for the hospital's own Grafana (docs/operations-platform.md).

Open on the intranet unless ``MEDKIOSK_METRICS_TOKEN`` is set; then a scrape must carry
``Authorization: Bearer <token>``. With ``PROMETHEUS_MULTIPROC_DIR`` set, the counts of every worker
process are gathered from that directory (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import hmac
import os

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool

from medkiosk.services.alerts import builtin_rules
from medkiosk.services.metrics import FleetCollector
from medkiosk.services.operations import operations_of

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ThisProcess:
    """The process's own instruments (and process/platform collectors) inside a per-scrape registry."""

    def collect(self):
        return REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def _scrape(container) -> bytes:
    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    ops = operations_of(container)
    rules = {name: rule.severity.value for name, rule in builtin_rules().items()}
    registry.register(FleetCollector(container.uow, ops.monitoring, rules))
    return generate_latest(registry)


def _authorised(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    container = request.app.state.container
    secret = container.settings.metrics_token
    if secret is not None and not _authorised(request, secret.get_secret_value()):
        return JSONResponse({"message": "需要 metrics 令牌"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    body = await run_in_threadpool(_scrape, container)
    return Response(body, media_type=CONTENT_TYPE)
