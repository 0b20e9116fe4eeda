"""The agent's HTTP client to the kiosk service: every request signed with the device's key.

Signing happens in an ``httpx.Auth`` flow, after httpx has built the request, so what is signed
is exactly what goes on the wire: the method, the request target as sent (raw path, then ``?``
and the raw query string when there is one) and the body bytes.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

import httpx

from medkiosk.httpclient import send
from medkiosk.security.signing import DeviceSigner


class ServiceUnavailable(Exception):
    """No usable answer from the kiosk service.

    ``outcome_unknown`` is True when the request may have reached the service (a timeout, a
    connection dropped mid-reply): for anything that changes state, the caller must not assume
    it did not happen.
    """

    def __init__(self, message: str, *, outcome_unknown: bool) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class DeviceAuth(httpx.Auth):
    requires_request_body = True

    def __init__(self, signer: DeviceSigner) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("ascii")  # path plus "?query" when present
        request.headers.update(self.signer.headers(request.method, target, request.content))
        yield request


class ServiceClient:
    """A signed ``httpx.Client`` for one device. Thread-safe; the agent calls it from worker threads."""

    def __init__(self, service_url: str, signer: DeviceSigner, timeout: float = 10.0, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.service_url = service_url.rstrip("/")
        self.signer = signer
        self._http = httpx.Client(base_url=self.service_url, auth=DeviceAuth(signer), timeout=timeout,
                                  transport=transport, follow_redirects=False,
                                  headers={"User-Agent": f"medkiosk-agent/{signer.device_id}"})

    def request(self, method: str, path: str, *, json: Any = None, content: bytes | None = None,
                params: Mapping[str, Any] | str | None = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send a signed request; raises :class:`ServiceUnavailable` on any transport failure."""
        if not path.startswith("/"):
            raise ValueError("path must start with /")
        try:
            # A read dropped unanswered is asked once more, signed anew (medkiosk.httpclient).
            return send(self._http, method, path, json=json, content=content, params=params, headers=headers)
        except httpx.ConnectError as exc:
            raise ServiceUnavailable(f"cannot connect to {self.service_url}: {exc}", outcome_unknown=False) from exc
        except httpx.ConnectTimeout as exc:
            raise ServiceUnavailable(f"connecting to {self.service_url} timed out", outcome_unknown=False) from exc
        except httpx.TimeoutException as exc:
            raise ServiceUnavailable(f"{method} {path} timed out", outcome_unknown=True) from exc
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"{method} {path} failed: {exc!r}", outcome_unknown=True) from exc

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, json=json, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
