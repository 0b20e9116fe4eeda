"""Prometheus instruments counted as things happen: HTTP requests by route template, upstream calls.

Labels are closed vocabularies only — a route template (``/api/kiosk/orders/{order_no}``, never the
order number), a method, a status, an upstream system and its operation name (``payments.post``,
``2207``). Nothing a patient typed or carries (name, ID number, card number) can become a label.

With ``PROMETHEUS_MULTIPROC_DIR`` set before the process starts, prometheus-client keeps these values
in files in that directory so every uvicorn worker's counts add up on ``/metrics`` (api/metrics.py).
What is read from the database at scrape time (payments, kiosks, alerts) is in services/metrics.py.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram, disable_created_metrics

# The *_created series double every series and Grafana has no use for them.
disable_created_metrics()

HTTP_REQUESTS = Counter("medkiosk_http_requests", "HTTP requests answered by the service",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("medkiosk_http_request_duration_seconds", "Time to answer an HTTP request",
                         ["method", "route"])
UPSTREAM_CALLS = Counter("medkiosk_upstream_calls", "Calls to an upstream system, by how they ended",
                         ["system", "operation", "outcome"])
UPSTREAM_ERRORS = Counter("medkiosk_upstream_errors", "Upstream calls that failed, by kind of failure",
                          ["system", "operation", "kind"])
UPSTREAM_LATENCY = Histogram("medkiosk_upstream_call_duration_seconds", "Time an upstream call took",
                             ["system", "operation"])

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Outcome:
    """How an upstream call ended (the ``outcome`` label)."""

    OK = "ok"
    NOT_FOUND = "not_found"  # an everyday answer ("no such patient"), not an error
    REFUSED = "refused"  # a permanent "no" from the upstream
    UNKNOWN = "unknown"  # timeout, broken connection, 5xx, unusable reply: the outcome is not known


def record_upstream(system: str, operation: str, outcome: str, started: float, *, kind: str = "") -> None:
    """Count one upstream call; ``started`` is its ``time.monotonic()``; ``kind`` names a failure
    (``timeout``, ``transport``, ``http_503``, ``unparsable``, ``refused``)."""
    operation = operation[:40]
    UPSTREAM_CALLS.labels(system, operation, outcome).inc()
    UPSTREAM_LATENCY.labels(system, operation).observe(time.monotonic() - started)
    if outcome in (Outcome.REFUSED, Outcome.UNKNOWN):
        UPSTREAM_ERRORS.labels(system, operation, kind or outcome).inc()


class HttpMetricsMiddleware:
    """ASGI middleware: counts and times every HTTP request under the template of the route it matched.

    The router writes the matched route into the request's scope; a path that matched nothing is
    ``unmatched`` (so a scanner walking random URLs adds no series).
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = [500]
        root_path = scope.get("root_path", "")

        async def send_and_note(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            template = _template(scope, root_path)
            method = scope.get("method", "GET")
            method = method if method in _METHODS else "OTHER"
            HTTP_REQUESTS.labels(method, template, str(status[0])).inc()
            HTTP_LATENCY.labels(method, template).observe(time.monotonic() - started)


def _template(scope, root_path: str) -> str:
    route = scope.get("route")
    if getattr(route, "path", None):
        return route.path
    # A mount (static files) does not name its route, but it moves the scope's root_path.
    mounted = scope.get("root_path", "")
    if mounted != root_path and mounted.startswith(root_path):
        return mounted[len(root_path):] + "/{path}"
    return UNMATCHED
