"""Which page requests may be forwarded to the service: only ``/api/kiosk/…``, and no path tricks.

The check runs on the raw request target, before any decoding, and refuses rather than
normalises: a segment that is empty, ``.`` or ``..``, any percent-encoding (so no encoded dot,
slash or backslash, no double encoding, and the raw path the agent signs is the same string as
the decoded path the service verifies), or anything outside RFC 3986's path characters.
Values that need encoding belong in the query string, which is forwarded as it came.
"""

from __future__ import annotations

import re

LOCAL_PREFIX = "/local/api/kiosk/"
SERVICE_PREFIX = "/api/kiosk/"

_PCHARS = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@]+$")

# The page's request headers that reach the service; all others (cookies, anything posing as the
# device signature) stay behind. Kiosk sessions are bound to the signed device, not to a header.
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "accept-language", "idempotency-key", "x-request-id")
FORWARDED_RESPONSE_HEADERS = ("content-type", "content-disposition", "retry-after")


def service_path(raw_path: str) -> str | None:
    """``/local/api/kiosk/<rest>`` → ``/api/kiosk/<rest>``; None when the path is not allowed."""
    if not raw_path.startswith(LOCAL_PREFIX):
        return None
    rest = raw_path[len(LOCAL_PREFIX):]
    if not rest:
        return None
    for segment in rest.split("/"):
        if not segment or not _PCHARS.match(segment) or segment in (".", ".."):
            return None
    return SERVICE_PREFIX + rest
