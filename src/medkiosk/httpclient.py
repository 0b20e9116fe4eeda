"""What every medkiosk HTTP client does the same way (the agent's, and the upstream adapters').

A pooled keep-alive connection can be closed by the server (or a balancer between) at the moment a
client reuses it: the request goes out and no reply comes back. For a read that is harmless and is
asked once more on a fresh connection; for a write the outcome stays unknown and its caller, who
holds the idempotency key, settles it. Our own servers keep idle connections longer than clients do
(``medkiosk.serving.KEEP_ALIVE_SECONDS``) so it should not happen between our own parts at all.
"""

from __future__ import annotations

from typing import Any

import httpx

SAFE_METHODS = frozenset({"GET", "HEAD"})


def send(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """``http.request(method, url, **kwargs)``, with a read dropped unanswered asked once more."""
    try:
        return http.request(method, url, **kwargs)
    except (httpx.RemoteProtocolError, httpx.ReadError):
        if method.upper() not in SAFE_METHODS:
            raise
        return http.request(method, url, **kwargs)
