"""Patient identifiers at rest: AES-256-GCM per field, and a keyed hash for look-ups.

Each value is stored as ``v1:`` + base64(nonce ‖ ciphertext+tag); the field's name is the
associated data, so a ciphertext moved to another column does not decrypt. Look-ups use an
HMAC-SHA-256 of the normalised value under a key derived from the data key (HKDF), so the
database never holds a plain ID number yet a patient can still be found by it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = "v1:"


class DecryptionError(Exception):
    """The value was not encrypted with this key for this field (or was tampered with)."""


def _derive(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"medkiosk/" + purpose).derive(key)


class FieldCipher:
    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != 32:
            raise ValueError("the data key must be 32 bytes")
        self._aead = AESGCM(_derive(data_key, b"field-encryption"))
        self._lookup_key = _derive(data_key, b"lookup-hash")

    def encrypt(self, field: str, value: str | None) -> str | None:
        if value is None:
            return None
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, value.encode(), field.encode())
        return _PREFIX + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, field: str, stored: str | None) -> str | None:
        if stored is None:
            return None
        if not stored.startswith(_PREFIX):
            raise DecryptionError(f"{field}: not an encrypted value")
        raw = base64.b64decode(stored[len(_PREFIX):])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], field.encode()).decode()
        except Exception as exc:  # cryptography raises InvalidTag
            raise DecryptionError(f"{field}: cannot decrypt") from exc

    def lookup_hash(self, kind: str, value: str) -> str:
        """Stable keyed hash of a normalised identifier (ID numbers compare upper-case)."""
        normalised = value.strip().upper()
        return hmac.new(self._lookup_key, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()
