"""Device request signatures: each kiosk signs every request with its own Ed25519 key.

The agent signs ``method, path+query, timestamp, nonce, SHA-256 of the body, device id``; the
service checks the signature against the device's enrolled public key, refuses a timestamp
outside the allowed skew, and refuses a nonce it has already seen (replay). Asymmetric keys mean
a copy of the service's database cannot be used to impersonate a kiosk.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEADER_DEVICE = "X-Medkiosk-Device"
HEADER_TIMESTAMP = "X-Medkiosk-Timestamp"
HEADER_NONCE = "X-Medkiosk-Nonce"
HEADER_SIGNATURE = "X-Medkiosk-Signature"
SIGNED_HEADERS = (HEADER_DEVICE, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)

DEFAULT_MAX_SKEW_SECONDS = 60


class SignatureError(Exception):
    """A request whose signature does not hold; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def canonical_request(method: str, path: str, timestamp: str, nonce: str, body: bytes, device_id: str) -> bytes:
    body_hash = hashlib.sha256(body).hexdigest()
    return "\n".join([method.upper(), path, timestamp, nonce, body_hash, device_id]).encode()


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def private_key_from_pem(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("a device key must be an Ed25519 private key")
    return key


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as base64 of its 32 raw bytes: what the service stores for a device."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text))


@dataclass(frozen=True)
class DeviceSigner:
    """Signs requests for one device (used by the agent)."""

    device_id: str
    key: Ed25519PrivateKey

    def headers(self, method: str, path: str, body: bytes = b"", *, now: float | None = None,
                nonce: str | None = None) -> dict[str, str]:
        timestamp = str(int(now if now is not None else time.time()))
        nonce = nonce or secrets.token_hex(16)
        signature = self.key.sign(canonical_request(method, path, timestamp, nonce, body, self.device_id))
        return {
            HEADER_DEVICE: self.device_id,
            HEADER_TIMESTAMP: timestamp,
            HEADER_NONCE: nonce,
            HEADER_SIGNATURE: base64.b64encode(signature).decode(),
        }


@dataclass(frozen=True)
class SignedRequest:
    device_id: str
    timestamp: int
    nonce: str


def read_signed_headers(headers) -> SignedRequest:
    """Pull the signature headers out of a request, refusing a request without them."""
    missing = [h for h in SIGNED_HEADERS if not headers.get(h)]
    if missing:
        raise SignatureError("unsigned", "missing " + ", ".join(missing))
    try:
        timestamp = int(headers[HEADER_TIMESTAMP])
    except ValueError as exc:
        raise SignatureError("malformed", "timestamp is not an integer") from exc
    nonce = headers[HEADER_NONCE]
    if not (8 <= len(nonce) <= 64) or not nonce.isalnum():
        raise SignatureError("malformed", "nonce must be 8–64 letters or digits")
    return SignedRequest(headers[HEADER_DEVICE], timestamp, nonce)


def verify(public_key: Ed25519PublicKey, signed: SignedRequest, signature_b64: str, method: str, path: str,
           body: bytes, *, now: float | None = None, max_skew: int = DEFAULT_MAX_SKEW_SECONDS) -> None:
    """Check skew and signature; raises :class:`SignatureError`. Replays are the caller's store's job."""
    now = time.time() if now is None else now
    if abs(now - signed.timestamp) > max_skew:
        raise SignatureError("expired", f"timestamp {signed.timestamp} is more than {max_skew}s from now")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, canonical_request(method, path, str(signed.timestamp), signed.nonce, body,
                                                       signed.device_id))
    except (InvalidSignature, ValueError) as exc:
        raise SignatureError("bad_signature", "signature does not match the request") from exc
