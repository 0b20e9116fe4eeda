"""Release artifacts and their Ed25519 signatures: build, sign, verify, unpack safely.

An artifact is a gzipped tar of the agent's page/config bundle with ``manifest.json`` first:
``{"format": 1, "version": "1.4.0", "files": {"web/index.html": "<sha256>", …}, "requires": {…}}``.
Tars are built deterministically (sorted names, zero times and owners) so the same folder gives
the same bytes.

What is signed is the *release statement* ``medkiosk-release/1\\n<version>\\n<sha256 of the artifact>``:
the signature binds the version name to exactly these bytes, so a validly signed old artifact
cannot be passed off as a newer version. The private release key stays on the release manager's
workstation (``medkiosk release sign``); the service and the kiosks hold only public keys, and a
kiosk refuses anything not signed by one of the keys it was configured to trust.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MANIFEST = "manifest.json"
FORMAT = 1
STATEMENT_PREFIX = "medkiosk-release/1"
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,39}$")
BUILTIN = "builtin"
"""Not a release: the page that ships inside the agent package; what a first rollout falls back to."""
MAX_ARTIFACT_BYTES = 50 << 20
MAX_FILES = 5000


class ReleaseRefused(Exception):
    """An artifact or a signature that must not be installed; ``reason`` is one short word:
    unsigned, unknown_key, bad_signature, tampered, version_mismatch, bad_artifact, too_large."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ReleaseSignature:
    """What ``medkiosk release sign`` writes next to an artifact (``<artifact>.sig``, JSON)."""

    version: str
    sha256: str
    size: int
    key_id: str
    signature: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes | Mapping[str, Any]) -> "ReleaseSignature":
        try:
            data = dict(text) if isinstance(text, Mapping) else json.loads(text)
            return cls(version=str(data["version"]), sha256=str(data["sha256"]), size=int(data["size"]),
                       key_id=str(data["key_id"]), signature=str(data["signature"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ReleaseRefused("unsigned", "the signature file is not readable") from exc


@dataclass(frozen=True)
class Manifest:
    version: str
    files: dict[str, str]
    requires: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body = {"format": FORMAT, "version": self.version, "files": self.files, "requires": self.requires}
        return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"

    @property
    def required_peripherals(self) -> list[str]:
        value = self.requires.get("peripherals", [])
        return [str(v) for v in value] if isinstance(value, list) else []


# --- keys ---------------------------------------------------------------------------------------------
def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """16 hex characters of the SHA-256 of the raw public key: names a key without showing it."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def trusted_keys(texts: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """Public keys as base64 of their 32 raw bytes (comma- or line-separated in settings) by key id."""
    keys: dict[str, Ed25519PublicKey] = {}
    for text in texts:
        text = text.strip()
        if not text:
            continue
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
        except ValueError as exc:
            raise ValueError(f"not an Ed25519 public key (base64 of 32 bytes): {text[:12]}…") from exc
        keys[key_id(key)] = key
    return keys


def parse_key_list(value: str) -> dict[str, Ed25519PublicKey]:
    return trusted_keys(re.split(r"[,\s]+", value or ""))


# --- statements and signatures ------------------------------------------------------------------------
def statement(version: str, sha256: str) -> bytes:
    return f"{STATEMENT_PREFIX}\n{version}\n{sha256}".encode()


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def sign_artifact(content: bytes, key: Ed25519PrivateKey) -> ReleaseSignature:
    """Sign an artifact (the version comes from its own manifest)."""
    manifest = read_manifest(content)
    sha = digest(content)
    signature = base64.b64encode(key.sign(statement(manifest.version, sha))).decode()
    return ReleaseSignature(manifest.version, sha, len(content), key_id(key), signature)


def verify_signature(signed: ReleaseSignature | None, trusted: Mapping[str, Ed25519PublicKey]) -> None:
    """The statement (version, sha256) is signed by a trusted key; raises :class:`ReleaseRefused`."""
    if signed is None or not signed.signature:
        raise ReleaseRefused("unsigned", "no signature")
    key = trusted.get(signed.key_id)
    if key is None:
        raise ReleaseRefused("unknown_key", f"key {signed.key_id} is not trusted here")
    try:
        key.verify(base64.b64decode(signed.signature, validate=True), statement(signed.version, signed.sha256))
    except (InvalidSignature, ValueError) as exc:
        raise ReleaseRefused("bad_signature", "the signature does not match the version and digest") from exc


def verify_artifact(content: bytes, signed: ReleaseSignature | None,
                    trusted: Mapping[str, Ed25519PublicKey]) -> Manifest:
    """Everything a kiosk checks before unpacking: signature, digest, manifest and its version."""
    verify_signature(signed, trusted)
    assert signed is not None
    if len(content) != signed.size or digest(content) != signed.sha256:
        raise ReleaseRefused("tampered", "the artifact's digest is not the signed one")
    manifest = read_manifest(content)
    if manifest.version != signed.version:
        raise ReleaseRefused("version_mismatch", f"manifest says {manifest.version}, signature {signed.version}")
    return manifest


# --- building and reading -----------------------------------------------------------------------------
def _safe_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(part in ("", ".", "..") for part in path.parts) or "\\" in name:
        raise ReleaseRefused("bad_artifact", f"unsafe path {name!r}")
    return str(path)


def build_artifact(folder: Path, version: str, *, requires: Mapping[str, Any] | None = None) -> bytes:
    """Pack ``folder`` (``web/…`` the page, ``config/…`` anything else) with a manifest."""
    if not VERSION_RE.match(version) or version == BUILTIN:
        raise ValueError("a version is 1–40 of letters, digits, . _ + - (and not 'builtin')")
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"links are not allowed in a release: {path}")
        if path.is_file():
            name = _safe_name(path.relative_to(folder).as_posix())
            if name == MANIFEST:
                continue
            files[name] = path.read_bytes()
    manifest = Manifest(version, {name: digest(data) for name, data in files.items()}, dict(requires or {}))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=9) as tar:
        for name, data in [(MANIFEST, manifest.to_bytes()), *files.items()]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
            tar.addfile(info, io.BytesIO(data))
    raw = out.getvalue()
    # gzip writes the time into its header; zero it so equal folders give equal bytes.
    return raw[:4] + b"\x00\x00\x00\x00" + raw[8:]


def _open(content: bytes) -> tarfile.TarFile:
    if len(content) > MAX_ARTIFACT_BYTES:
        raise ReleaseRefused("too_large", f"{len(content)} bytes")
    try:
        return tarfile.open(fileobj=io.BytesIO(content), mode="r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ReleaseRefused("bad_artifact", "not a gzipped tar") from exc


def read_manifest(content: bytes) -> Manifest:
    with _open(content) as tar:
        try:
            member = tar.getmember(MANIFEST)
            extracted = tar.extractfile(member)
            data = json.loads(extracted.read() if extracted else b"")
        except (KeyError, ValueError, tarfile.TarError, OSError, EOFError) as exc:
            raise ReleaseRefused("bad_artifact", "no readable manifest.json") from exc
    try:
        if data.get("format") != FORMAT:
            raise ReleaseRefused("bad_artifact", f"unknown manifest format {data.get('format')!r}")
        version = str(data["version"])
        files = {_safe_name(str(k)): str(v) for k, v in dict(data["files"]).items()}
        requires = dict(data.get("requires") or {})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReleaseRefused("bad_artifact", "manifest.json is malformed") from exc
    if not VERSION_RE.match(version) or version == BUILTIN:
        raise ReleaseRefused("bad_artifact", f"bad version {version!r}")
    return Manifest(version, files, requires)


def unpack(content: bytes, manifest: Manifest, dest: Path) -> None:
    """Write exactly the manifest's files under ``dest``, each checked against its digest.

    Only regular files and folders are accepted (no links, devices or paths outside ``dest``), and
    a file the manifest does not list, or one it lists that is missing, refuses the artifact.
    """
    seen: set[str] = set()
    with _open(content) as tar:
        members = tar.getmembers()
        if len(members) > MAX_FILES:
            raise ReleaseRefused("bad_artifact", "too many files")
        for member in members:
            name = _safe_name(member.name)
            if member.isdir():
                continue
            if not member.isfile():
                raise ReleaseRefused("bad_artifact", f"{name} is not a regular file")
            extracted = tar.extractfile(member)
            data = extracted.read() if extracted else b""
            if name == MANIFEST:
                (dest / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
                (dest / MANIFEST).write_bytes(data)
                continue
            expected = manifest.files.get(name)
            if expected is None:
                raise ReleaseRefused("bad_artifact", f"{name} is not in the manifest")
            if digest(data) != expected:
                raise ReleaseRefused("tampered", f"{name} does not match the manifest")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            seen.add(name)
    missing = set(manifest.files) - seen
    if missing:
        raise ReleaseRefused("bad_artifact", f"missing {sorted(missing)[0]}")


def check_unpacked(folder: Path, manifest: Manifest) -> str | None:
    """``None`` when every file of the manifest is in ``folder`` with its digest, else what is wrong."""
    for name, expected in manifest.files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if digest(path.read_bytes()) != expected:
            return f"{name} was changed"
    return None
