"""How an envelope travels to a province's platform: plain JSON or JSON behind a signing gateway.

Provinces front the same envelopes differently. A :class:`WireTransport` turns the envelope into
the HTTP body and headers and turns the HTTP reply back into the envelope's JSON text; the
adapter does the rest, so adding a province means adding a transport.

Implemented here:

* :class:`PlainJsonTransport` — the envelope as UTF-8 JSON, nothing else (the default).
* :class:`GatewayHeaderTransport` — the same body plus the ``x-tif-*`` headers of the provincial
  API gateways (``x-tif-paasid``, ``x-tif-timestamp``, ``x-tif-nonce``, ``x-tif-signature``).

Not implemented — the extension point for it: the SM4-encrypted, SM2-signed wrapper some
provinces require (``{"data": {"encData": …, "signData": …, "encType": "SM4", "signType": "SM2",
"appCode": …, "timestamp": …}}``). Such a transport encrypts the serialised envelope with the
province's SM4 key in ``encode``, signs it with the hospital's SM2 key, and in ``decode`` verifies
the platform's SM2 signature and decrypts ``encData`` back to the envelope's JSON text. It needs an
SM2/SM4 library (e.g. ``gmssl``) and the keys the province issues, so it is left to the first
deployment that needs it rather than faked here.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from medkiosk.adapters.insurance.wire import dump_json


@dataclass(frozen=True)
class EncodedRequest:
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)


class WireTransport(Protocol):
    def encode(self, path: str, payload: dict[str, Any]) -> EncodedRequest:
        """The HTTP body and headers that carry ``payload`` to ``path``."""
        ...

    def decode(self, response: httpx.Response) -> str:
        """The reply's JSON text; raise ``ValueError`` when the body cannot be unwrapped."""
        ...


_JSON_HEADERS = {"Content-Type": "application/json;charset=utf-8", "Accept": "application/json"}


class PlainJsonTransport:
    """The envelope as UTF-8 JSON."""

    def encode(self, path: str, payload: dict[str, Any]) -> EncodedRequest:
        return EncodedRequest(dump_json(payload), dict(_JSON_HEADERS))

    def decode(self, response: httpx.Response) -> str:
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError("the reply is not UTF-8") from exc

    def __repr__(self) -> str:
        return "PlainJsonTransport()"


def gateway_signature(timestamp: str, paas_token: str, nonce: str) -> str:
    """``x-tif-signature``: SHA-256 hex of timestamp + token + nonce + timestamp.

    This is the formula the public client implementations of the provincial gateways use (the
    timestamp in Unix seconds appears twice, the token is never sent).
    """
    return hashlib.sha256(f"{timestamp}{paas_token}{nonce}{timestamp}".encode()).hexdigest()


def _default_nonce() -> str:
    # The public clients use "<ms since epoch, hex>-<random 24 bits, hex>"; any unique string works.
    return f"{time.time_ns() // 1_000_000:x}-{secrets.randbits(24):x}"


class GatewayHeaderTransport(PlainJsonTransport):
    """Plain JSON plus the ``x-tif-*`` headers of a provincial API gateway.

    ``paas_id`` and ``paas_token`` are issued by the province; the token only enters the signature.
    ``service_id``, when the gateway routes by it, is sent as ``x-tif-serviceid``.
    """

    def __init__(self, paas_id: str, paas_token: str, *, service_id: str | None = None,
                 clock: Callable[[], float] = time.time,
                 nonce_factory: Callable[[], str] = _default_nonce) -> None:
        if not paas_id or not paas_token:
            raise ValueError("a gateway transport needs paas_id and paas_token")
        self.paas_id = paas_id
        self._paas_token = paas_token
        self.service_id = service_id
        self._clock = clock
        self._nonce = nonce_factory

    def encode(self, path: str, payload: dict[str, Any]) -> EncodedRequest:
        request = super().encode(path, payload)
        timestamp = str(int(self._clock()))
        nonce = self._nonce()
        headers = {
            **request.headers,
            "x-tif-paasid": self.paas_id,
            "x-tif-timestamp": timestamp,
            "x-tif-nonce": nonce,
            "x-tif-signature": gateway_signature(timestamp, self._paas_token, nonce),
        }
        if self.service_id:
            headers["x-tif-serviceid"] = self.service_id
        return EncodedRequest(request.content, headers)

    def __repr__(self) -> str:
        return f"GatewayHeaderTransport(paas_id={self.paas_id!r}, paas_token=<redacted>)"
