"""Request dependencies: the container, and the device behind a signed request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from medkiosk.bootstrap import Container
from medkiosk.services.devices import AuthenticatedDevice, DeviceAuthError


async def container(request: Request) -> Container:
    """The service's container. ``async`` on purpose: FastAPI runs a plain ``def`` dependency in
    the thread pool, a hop per request for a mere attribute read."""
    return request.app.state.container


def signed_path(request: Request) -> str:
    """The path the agent signed: the raw path and query string exactly as they came on the wire."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return raw.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")


async def authenticated_device(request: Request) -> AuthenticatedDevice:
    """Refuse unsigned, unknown, disabled, expired, tampered and replayed requests with 401."""
    body = await request.body()
    services: Container = request.app.state.container
    client = request.client.host if request.client else ""
    try:
        return await run_in_threadpool(services.devices.authenticate, request.headers, request.method,
                                       signed_path(request), body, client=client)
    except DeviceAuthError as exc:
        raise HTTPException(401, {"message": "设备认证失败", "reason": exc.reason}) from exc


Device = Annotated[AuthenticatedDevice, Depends(authenticated_device)]
"""An endpoint's parameter for the signed device behind the request."""
Services = Annotated[Container, Depends(container)]
"""An endpoint's parameter for the service's container."""
