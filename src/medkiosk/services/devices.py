"""Kiosk enrolment, signed-request authentication and heartbeats."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from medkiosk.logging import get_logger
from medkiosk.security import signing
from medkiosk.services.clock import Clock
from medkiosk.services.events import record_event
from medkiosk.settings import TerminalType
from medkiosk.store.models import Device, DeviceNonce, DeviceState

log = get_logger(__name__)

# Every signed request runs these two: built once, so each keeps its cache key.
_DEVICES = Device.__table__
_DEVICE_FOR_AUTH = select(
    _DEVICES.c.id, _DEVICES.c.enabled, _DEVICES.c.public_key, _DEVICES.c.terminal_type, _DEVICES.c.name,
    _DEVICES.c.location, _DEVICES.c.preview).where(_DEVICES.c.id == bindparam("b_device_id"))
_NONCE_INSERT = insert(DeviceNonce.__table__)

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,31}$")


class DeviceAuthError(Exception):
    """A device request refused; ``reason`` is one of unsigned, malformed, unknown, disabled,
    expired, bad_signature, replayed."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class AuthenticatedDevice:
    id: str
    terminal_type: TerminalType
    name: str
    location: str
    preview: bool


class DeviceService:
    def __init__(self, uow_factory, clock: Clock, *, max_skew: int = signing.DEFAULT_MAX_SKEW_SECONDS) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._max_skew = max_skew
        self._keys: dict[str, signing.Ed25519PublicKey] = {}

    # -- enrolment ------------------------------------------------------------------------------
    def enroll(self, device_id: str, terminal_type: TerminalType, *, name: str = "", location: str = "",
               preview: bool = False, replace_key: bool = False) -> bytes:
        """Enrol a device (or give an enrolled one a new key); returns its private key as PEM.

        The private key is shown once and never stored by the service: only its public half is.
        """
        if not DEVICE_ID_RE.match(device_id):
            raise ValueError("a device id is 2–32 letters, digits, '-' or '_'")
        key = signing.generate_key()
        now = self._clock.now()
        with self._uow() as uow:
            device = uow.session.get(Device, device_id)
            if device is not None and not replace_key:
                raise ValueError(f"device {device_id} is already enrolled (use --replace-key to re-key it)")
            if device is None:
                device = Device(id=device_id, enrolled_at=now)
                uow.session.add(device)
            device.terminal_type = TerminalType(terminal_type).value
            device.name = name or device.name or device_id
            device.location = location or device.location or ""
            device.preview = preview
            device.public_key = signing.public_key_text(key)
            device.enabled = True
            device.disabled_at = None
            uow.commit()
        log.info("device.enrolled", device_id=device_id, terminal_type=str(terminal_type))
        return signing.private_key_to_pem(key)

    def set_enabled(self, device_id: str, enabled: bool) -> None:
        with self._uow() as uow:
            device = uow.session.get(Device, device_id)
            if device is None:
                raise LookupError(f"no device {device_id}")
            device.enabled = enabled
            device.disabled_at = None if enabled else self._clock.now()
            uow.commit()

    # -- authentication -------------------------------------------------------------------------
    def authenticate(self, headers, method: str, path: str, body: bytes, *, client: str = "") -> AuthenticatedDevice:
        """Verify a signed request; a refusal is logged and recorded as an event before it is raised."""
        try:
            return self._authenticate(headers, method, path, body)
        except DeviceAuthError as exc:
            device_id = (headers.get(signing.HEADER_DEVICE) or "")[:32]
            log.warning("device.auth_refused", reason=exc.reason, detail=exc.detail, device_id=device_id,
                        path=path, client=client)
            with self._uow() as uow:
                record_event(uow, self._clock, "device_auth_refused", f"设备请求被拒绝：{exc.reason}",
                             severity="warning", device_id=device_id or None,
                             details={"reason": exc.reason, "path": path, "client": client})
                uow.commit()
            raise

    def _authenticate(self, headers, method: str, path: str, body: bytes) -> AuthenticatedDevice:
        try:
            signed = signing.read_signed_headers(headers)
        except signing.SignatureError as exc:
            raise DeviceAuthError(exc.reason, exc.detail) from exc
        now = self._clock.now()
        # Every kiosk request comes through here: one transaction, two plain statements (the device's
        # columns, the nonce) on a plain connection, no ORM session or objects. Its commit does not
        # wait for the disk flush: only a crash of the database server itself could lose a nonce,
        # and a replay would then still have to fall inside the skew window.
        try:
            with self._uow().core(flush_wait=False) as conn:
                device = conn.execute(_DEVICE_FOR_AUTH, {"b_device_id": signed.device_id}).first()
                if device is None:
                    raise DeviceAuthError("unknown", f"no enrolled device {signed.device_id!r}")
                if not device.enabled:
                    raise DeviceAuthError("disabled", f"device {device.id} is disabled")
                try:
                    signing.verify(self._public_key(device.public_key), signed, headers[signing.HEADER_SIGNATURE],
                                   method, path, body, now=now.timestamp(), max_skew=self._max_skew)
                except signing.SignatureError as exc:
                    raise DeviceAuthError(exc.reason, exc.detail) from exc
                conn.execute(_NONCE_INSERT, {"device_id": device.id, "nonce": signed.nonce, "seen_at": now})
        except IntegrityError as exc:
            raise DeviceAuthError("replayed", "nonce already used") from exc
        return AuthenticatedDevice(device.id, TerminalType(device.terminal_type), device.name,
                                   device.location, device.preview)

    def _public_key(self, text: str) -> signing.Ed25519PublicKey:
        """The parsed key for a stored key text (a re-keyed device has a new text, so a new entry)."""
        key = self._keys.get(text)
        if key is None:
            if len(self._keys) >= 10_000:
                self._keys.clear()
            key = self._keys[text] = signing.public_key_from_text(text)
        return key

    def purge_nonces(self) -> int:
        """Forget nonces older than twice the skew: their timestamps alone now refuse a replay."""
        cutoff = self._clock.now() - timedelta(seconds=2 * self._max_skew)
        with self._uow() as uow:
            result = uow.session.execute(delete(DeviceNonce).where(DeviceNonce.seen_at < cutoff))
            uow.commit()
            return result.rowcount or 0

    # -- heartbeats -----------------------------------------------------------------------------
    def record_heartbeat(self, device: AuthenticatedDevice, *, software_version: str, uptime_seconds: int,
                         screen: str, peripherals: dict[str, Any]) -> datetime:
        now = self._clock.now()
        with self._uow() as uow:
            state = uow.session.get(DeviceState, device.id)
            if state is None:
                state = DeviceState(device_id=device.id)
                uow.session.add(state)
            state.last_seen_at = now
            state.software_version = software_version
            state.uptime_seconds = uptime_seconds
            state.screen = screen
            state.peripherals = peripherals
            uow.commit()
        return now

    def states(self) -> list[tuple[Device, DeviceState | None]]:
        with self._uow() as uow:
            rows = uow.session.execute(
                select(Device, DeviceState).outerjoin(DeviceState, DeviceState.device_id == Device.id).order_by(Device.id)
            ).all()
            return [(d, s) for d, s in rows]
