"""Staff accounts: roles and permissions, password logins with lockout, cookie sessions with CSRF
tokens, and what the staff console reads and does (devices, events, handling an event)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from medkiosk.domain.masking import scrub_text
from medkiosk.logging import get_logger
from medkiosk.security.passwords import (WeakPassword, burn_verification, check_password_policy, default_hasher,
                                         generate_password, hash_password, needs_rehash, verify_password)
from medkiosk.services import audit
from medkiosk.services.clock import Clock, as_utc
from medkiosk.store.models import Device, DeviceState, Event, StaffSession, StaffUser
from medkiosk.store.uow import UnitOfWork

if TYPE_CHECKING:
    from medkiosk.bootstrap import Container

log = get_logger(__name__)

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
HEARTBEAT_PERIOD = timedelta(seconds=5)  # the agent's default heartbeat_seconds
ONLINE_WITHIN = 3 * HEARTBEAT_PERIOD
STAFF_CALL = "staff_call"

# One message for an unknown user, a wrong password, a locked and a disabled account: a login page
# must not tell a stranger which usernames exist (OWASP authentication cheat sheet).
LOGIN_REFUSED_MESSAGE = "用户名或密码错误。连续输错 5 次账号将锁定 15 分钟；如需帮助请联系信息中心。"

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,59}$")


class Role(StrEnum):
    ENGINEER = "engineer"
    """驻场工程师: the on-site engineer; watches the kiosks and answers calls and faults."""
    IT_ADMIN = "it_admin"
    """信息中心管理员: the IT centre; manages staff accounts and devices, reads the audit trail."""
    FINANCE = "finance"
    """财务: the finance office; payments and reconciliation (their pages come with payments)."""
    AUDITOR = "auditor"
    """审计: reads the audit trail and changes nothing."""
    DOCTOR = "doctor"
    """医生: calls patients from their department's waiting queue to a consulting room."""


class Permission(StrEnum):
    MANAGE_STAFF = "manage_staff"
    """Create staff accounts and give them roles."""
    MANAGE_DEVICES = "manage_devices"
    """Enrol, re-key, enable and disable kiosks."""
    VIEW_DEVICES = "view_devices"
    """See the kiosks and their last heartbeat."""
    VIEW_EVENTS = "view_events"
    """See events: calls for help, refused identifications, refused device requests."""
    HANDLE_EVENTS = "handle_events"
    """Mark an event as handled."""
    VIEW_PAYMENTS = "view_payments"
    """See payments and reconciliation reports."""
    VIEW_RECONCILIATION = "view_reconciliation"
    """See the daily reconciliation runs and their discrepancies."""
    RESOLVE_DISCREPANCIES = "resolve_discrepancies"
    """Mark a reconciliation discrepancy resolved, with a note of what was done."""
    READ_AUDIT = "read_audit"
    """Read and verify the audit trail."""
    CALL_PATIENTS = "call_patients"
    """Call the next patient, recall, mark missed or done (the doctor's queue page)."""
    MANAGE_QUEUES = "manage_queues"
    """Set a department's queue rules and the waiting area (zone) its board belongs to."""


# A person with two jobs gets two roles; a role never grows to cover someone's second job.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ENGINEER: frozenset({Permission.VIEW_DEVICES, Permission.VIEW_EVENTS, Permission.HANDLE_EVENTS}),
    Role.IT_ADMIN: frozenset({Permission.MANAGE_STAFF, Permission.MANAGE_DEVICES, Permission.VIEW_DEVICES,
                              Permission.VIEW_EVENTS, Permission.READ_AUDIT, Permission.MANAGE_QUEUES}),
    Role.DOCTOR: frozenset({Permission.CALL_PATIENTS}),
    Role.FINANCE: frozenset({Permission.VIEW_PAYMENTS, Permission.VIEW_RECONCILIATION,
                             Permission.RESOLVE_DISCREPANCIES}),
    Role.AUDITOR: frozenset({Permission.READ_AUDIT, Permission.VIEW_RECONCILIATION}),
}


def permissions_for(roles: Iterable[Role | str]) -> frozenset[Permission]:
    """The union of the roles' permissions; names that are no longer roles grant nothing."""
    granted: set[Permission] = set()
    for name in roles:
        try:
            granted |= ROLE_PERMISSIONS[Role(name)]
        except ValueError:
            continue
    return frozenset(granted)


# --- errors -----------------------------------------------------------------------------------------
class StaffError(ValueError):
    """A staff account request refused; the message is Chinese and shown as is."""


class DuplicateUser(StaffError):
    """The username is taken."""


class LoginRefused(Exception):
    """Login failed. ``message`` is the same whatever the cause; ``reason`` is only for the audit trail:
    unknown_user, bad_password, locked or inactive."""

    def __init__(self, reason: str) -> None:
        super().__init__(LOGIN_REFUSED_MESSAGE)
        self.reason = reason
        self.message = LOGIN_REFUSED_MESSAGE


class EventNotFound(LookupError):
    """No event with that id."""


# --- what the service hands out ----------------------------------------------------------------------
def _roles_of(values: Iterable[str]) -> tuple[Role, ...]:
    return tuple(Role(value) for value in values if value in Role._value2member_map_)


@dataclass(frozen=True)
class StaffAccount:
    id: int
    username: str
    display_name: str
    roles: tuple[Role, ...]
    active: bool
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: StaffUser) -> "StaffAccount":
        return cls(user.id, user.username, user.display_name, _roles_of(user.roles or []), user.active,
                   as_utc(user.locked_until) if user.locked_until else None, as_utc(user.created_at),
                   as_utc(user.last_login_at) if user.last_login_at else None)

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_for(self.roles)


@dataclass(frozen=True)
class StaffPrincipal:
    """The person behind a request's session cookie."""

    session_id: int
    user_id: int
    username: str
    display_name: str
    roles: tuple[Role, ...]
    csrf_token: str
    expires_at: datetime

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_for(self.roles)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class NewSession:
    """A session just opened: ``token`` goes into the cookie and is never stored, only its hash."""

    token: str
    principal: StaffPrincipal


@dataclass(frozen=True)
class DeviceStatus:
    id: str
    name: str
    location: str
    terminal_type: str
    enabled: bool
    online: bool
    last_seen_at: datetime | None
    software_version: str
    screen: str
    peripherals: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "location": self.location, "terminal_type": self.terminal_type,
                "enabled": self.enabled, "online": self.online,
                "last_seen_at": self.last_seen_at.isoformat() if self.last_seen_at else None,
                "software_version": self.software_version, "screen": self.screen, "peripherals": self.peripherals}


@dataclass(frozen=True)
class EventView:
    id: int
    kind: str
    severity: str
    device_id: str | None
    message: str
    details: dict[str, Any]
    created_at: datetime
    handled_at: datetime | None
    handled_by: str | None

    @property
    def is_staff_call(self) -> bool:
        return self.kind == STAFF_CALL

    @property
    def handled(self) -> bool:
        return self.handled_at is not None

    @classmethod
    def of(cls, event: Event) -> "EventView":
        # Events hold masked data only; scrubbing again costs nothing and catches a careless writer.
        return cls(event.id, event.kind, event.severity, event.device_id, scrub_text(event.message),
                   _scrub(event.details or {}), as_utc(event.created_at),
                   as_utc(event.handled_at) if event.handled_at else None, event.handled_by)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "severity": self.severity, "device_id": self.device_id,
                "message": self.message, "details": self.details, "created_at": self.created_at.isoformat(),
                "handled_at": self.handled_at.isoformat() if self.handled_at else None,
                "handled_by": self.handled_by, "staff_call": self.is_staff_call}


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return scrub_text(value) if isinstance(value, str) else value


# --- tokens ---------------------------------------------------------------------------------------------
def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token_matches(expected: str, supplied: str | None) -> bool:
    """Constant-time comparison; bytes so that a non-ASCII forgery is a mismatch, not a TypeError."""
    if not supplied:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), supplied.encode("utf-8"))


def normalise_username(username: str) -> str:
    return (username or "").strip().lower()


# --- the service ------------------------------------------------------------------------------------------
class StaffService:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Clock, *, session_hours: int = 8,
                 hasher: PasswordHasher | None = None) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._session_lifetime = timedelta(hours=session_hours)
        self._hasher = hasher or default_hasher()

    @classmethod
    def from_container(cls, container: "Container") -> "StaffService":
        return cls(container.uow, container.clock, session_hours=container.settings.staff_session_hours)

    # -- accounts ---------------------------------------------------------------------------------------
    def create_user(self, username: str, display_name: str, roles: Iterable[Role | str], password: str, *,
                    actor: str = "system") -> StaffAccount:
        """Create an account; refuses a taken or malformed username, no or unknown roles, a weak password."""
        username = normalise_username(username)
        if not USERNAME_RE.match(username):
            raise StaffError("用户名须为 3–60 位小写字母、数字、点、下划线或连字符，并以字母或数字开头")
        if isinstance(roles, str):
            roles = [roles]
        try:
            wanted = {Role(role) for role in roles}
            granted = [role for role in Role if role in wanted]  # declaration order, whatever order given
        except ValueError as exc:
            raise StaffError("包含未知的角色") from exc
        if not granted:
            raise StaffError("请至少选择一个角色")
        display_name = (display_name or "").strip() or username
        if len(display_name) > 60:
            raise StaffError("显示名称不能超过 60 个字符")
        check_password_policy(password, username=username)
        password_hash = hash_password(password, hasher=self._hasher)  # slow: outside the transaction
        with self._uow() as uow:
            if uow.session.scalars(select(StaffUser.id).where(StaffUser.username == username)).first():
                raise DuplicateUser(f"用户名 {username} 已存在")
            user = StaffUser(username=username, display_name=display_name, password_hash=password_hash,
                             roles=[role.value for role in granted], active=True, failed_logins=0,
                             created_at=self._clock.now())
            uow.session.add(user)
            try:
                uow.session.flush()
            except IntegrityError as exc:  # the same name created at the same moment elsewhere
                raise DuplicateUser(f"用户名 {username} 已存在") from exc
            audit.append(uow, self._clock, actor, "staff.user_created", f"staff:{username}",
                         {"roles": [role.value for role in granted], "display_name": display_name})
            account = StaffAccount.of(user)
            uow.commit()
        log.info("staff.user_created", username=username, roles=[role.value for role in granted], actor=actor)
        return account

    def list_users(self) -> list[StaffAccount]:
        """Every account; ``locked_until`` only while the lock still holds."""
        now = self._clock.now()
        with self._uow() as uow:
            users = uow.session.scalars(select(StaffUser).order_by(StaffUser.username))
            accounts = [StaffAccount.of(user) for user in users]
        return [replace(a, locked_until=None) if a.locked_until and a.locked_until <= now else a for a in accounts]

    def change_password(self, principal: StaffPrincipal, current: str, new: str, *, client: str = "") -> None:
        """Change one's own password; every other session of the account is revoked."""
        check_password_policy(new, username=principal.username)
        with self._uow() as uow:
            user = uow.session.get(StaffUser, principal.user_id, with_for_update=True)
            if user is None or not verify_password(user.password_hash, current, hasher=self._hasher):
                raise StaffError("当前密码不正确")
            user.password_hash = hash_password(new, hasher=self._hasher)
            uow.session.execute(update(StaffSession)
                                .where(StaffSession.user_id == user.id, StaffSession.id != principal.session_id,
                                       StaffSession.revoked_at.is_(None))
                                .values(revoked_at=self._clock.now()))
            audit.append(uow, self._clock, principal.username, "staff.password_changed",
                         f"staff:{principal.username}", {"client": client})
            uow.commit()

    # -- logging in ----------------------------------------------------------------------------------------
    def authenticate(self, username: str, password: str, *, client: str = "") -> StaffAccount:
        """Check a username and password (with lockout); raises ``LoginRefused``."""
        with self._uow() as uow:
            user = self._check_password(uow, username, password, client)
            account = StaffAccount.of(user)
            uow.commit()
            return account

    def login(self, username: str, password: str, *, client: str = "") -> NewSession:
        """Authenticate and open a session in one transaction; raises ``LoginRefused``."""
        with self._uow() as uow:
            user = self._check_password(uow, username, password, client)
            opened = self._open_session(uow, user)
            audit.append(uow, self._clock, user.username, "staff.login", f"staff:{user.username}", {"client": client})
            uow.commit()
        log.info("staff.login", username=user.username, client=client)
        return opened

    def _check_password(self, uow: UnitOfWork, username: str, password: str, client: str) -> StaffUser:
        """On success the user row is updated in ``uow`` (not committed); on failure the counters and the
        audit entry are committed before ``LoginRefused`` is raised."""
        now = self._clock.now()
        name = normalise_username(username)[:60]
        # The row lock makes parallel guesses queue up, so each one is counted before the next is judged.
        user = uow.session.scalars(
            select(StaffUser).where(StaffUser.username == name).with_for_update()).first() if name else None
        if user is None:
            burn_verification(password, hasher=self._hasher)
            self._refuse(uow, name, "unknown_user", client)
        matches = verify_password(user.password_hash, password, hasher=self._hasher)
        if not user.active:
            self._refuse(uow, name, "inactive", client)
        if user.locked_until is not None and as_utc(user.locked_until) > now:
            self._refuse(uow, name, "locked", client)
        if not matches:
            # An atomic increment: on SQLite, where FOR UPDATE does nothing, parallel guesses still all count.
            failures = uow.session.execute(
                update(StaffUser).where(StaffUser.id == user.id)
                .values(failed_logins=StaffUser.failed_logins + 1).returning(StaffUser.failed_logins)).scalar_one()
            if failures >= MAX_FAILED_LOGINS:
                user.failed_logins = 0
                user.locked_until = now + LOCKOUT
                audit.append(uow, self._clock, "system", "staff.locked", f"staff:{name}",
                             {"until": user.locked_until.isoformat(), "client": client})
                log.warning("staff.locked", username=name, client=client)
            self._refuse(uow, name, "bad_password", client)
        user.failed_logins = 0
        user.locked_until = None
        user.last_login_at = now
        if needs_rehash(user.password_hash, hasher=self._hasher):
            user.password_hash = hash_password(password, hasher=self._hasher)
        return user

    def _refuse(self, uow: UnitOfWork, name: str, reason: str, client: str) -> None:
        audit.append(uow, self._clock, "anonymous", "staff.login_failed", f"staff:{name}",
                     {"reason": reason, "client": client})
        uow.commit()
        log.warning("staff.login_failed", username=name, reason=reason, client=client)
        raise LoginRefused(reason)

    # -- sessions -------------------------------------------------------------------------------------------
    def _open_session(self, uow: UnitOfWork, user: StaffUser) -> NewSession:
        now = self._clock.now()
        token = secrets.token_urlsafe(32)
        row = StaffSession(token_hash=token_hash(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                           created_at=now, expires_at=now + self._session_lifetime)
        uow.session.add(row)
        uow.session.flush()
        return NewSession(token, self._principal(row, user))

    @staticmethod
    def _principal(row: StaffSession, user: StaffUser) -> StaffPrincipal:
        return StaffPrincipal(row.id, user.id, user.username, user.display_name, _roles_of(user.roles or []),
                              row.csrf_token, as_utc(row.expires_at))

    def resolve(self, token: str | None) -> StaffPrincipal | None:
        """The principal behind a session cookie, or None when it is unknown, revoked, expired or its
        account disabled."""
        if not token or len(token) > 200:
            return None
        with self._uow() as uow:
            found = uow.session.execute(
                select(StaffSession, StaffUser).join(StaffUser, StaffUser.id == StaffSession.user_id)
                .where(StaffSession.token_hash == token_hash(token))).first()
            if found is None:
                return None
            row, user = found
            if row.revoked_at is not None or as_utc(row.expires_at) <= self._clock.now() or not user.active:
                return None
            return self._principal(row, user)

    def logout(self, principal: StaffPrincipal, *, client: str = "") -> None:
        with self._uow() as uow:
            row = uow.session.get(StaffSession, principal.session_id)
            if row is None or row.revoked_at is not None:
                return
            row.revoked_at = self._clock.now()
            audit.append(uow, self._clock, principal.username, "staff.logout", f"staff:{principal.username}",
                         {"client": client})
            uow.commit()
        log.info("staff.logout", username=principal.username)

    # -- the console ----------------------------------------------------------------------------------------
    def devices(self) -> list[DeviceStatus]:
        """Every device with its last heartbeat; online when heard from within three heartbeat periods."""
        now = self._clock.now()
        with self._uow() as uow:
            rows = uow.session.execute(select(Device, DeviceState)
                                       .outerjoin(DeviceState, DeviceState.device_id == Device.id)
                                       .order_by(Device.id)).all()
            statuses = []
            for device, state in rows:
                seen = as_utc(state.last_seen_at) if state else None
                statuses.append(DeviceStatus(
                    device.id, device.name, device.location, device.terminal_type, device.enabled,
                    online=bool(device.enabled and seen and now - seen <= ONLINE_WITHIN), last_seen_at=seen,
                    software_version=state.software_version if state else "", screen=state.screen if state else "",
                    peripherals=dict(state.peripherals or {}) if state else {}))
            return statuses

    def events(self, *, kind: str | None = None, unhandled: bool = False, limit: int = 100) -> list[EventView]:
        """Latest events, newest first."""
        query = select(Event).order_by(Event.created_at.desc(), Event.id.desc()).limit(limit)
        if kind:
            query = query.where(Event.kind == kind)
        if unhandled:
            query = query.where(Event.handled_at.is_(None))
        with self._uow() as uow:
            return [EventView.of(event) for event in uow.session.scalars(query)]

    def handle_event(self, principal: StaffPrincipal, event_id: int, *, client: str = "") -> EventView:
        """Mark an event handled by this person; handling it again changes nothing."""
        with self._uow() as uow:
            event = uow.session.get(Event, event_id, with_for_update=True)
            if event is None:
                raise EventNotFound(event_id)
            if event.handled_at is None:
                event.handled_at = self._clock.now()
                event.handled_by = principal.username
                audit.append(uow, self._clock, principal.username, "event.handled", f"event:{event.id}",
                             {"kind": event.kind, "device_id": event.device_id, "client": client})
                uow.commit()
            return EventView.of(event)


def create_user(container: "Container", *, username: str, display_name: str, roles: Iterable[Role | str],
                password: str, actor: str = "cli") -> StaffAccount:
    """``StaffService.create_user`` for callers holding a container (the ``medkiosk staff create`` command).
    Every refusal is a ``ValueError`` with a Chinese message."""
    return StaffService.from_container(container).create_user(username, display_name, roles, password, actor=actor)


def create_first_admin(container: "Container", username: str, password: str | None = None, *,
                       display_name: str = "", actor: str = "cli") -> tuple[StaffAccount, str]:
    """Create an it_admin account from outside the web pages (``medkiosk staff create``, the demo).

    With no password, a strong one is generated; either way the password is returned so the caller
    can show it once. Also the break-glass way back in when every administrator is locked out:
    it needs the server's configuration, which is already more than an administrator account gives.
    """
    password = password or generate_password()
    account = StaffService.from_container(container).create_user(
        username, display_name, [Role.IT_ADMIN], password, actor=actor)
    return account, password


def ensure_demo_admin(container: "Container", username: str = "admin") -> tuple[str, str | None]:
    """The demo's administrator: created with a generated password on the first run, which is returned
    to be printed; on later runs the account exists and the password is None (shown once, never kept)."""
    with container.uow() as uow:
        exists = uow.session.scalars(select(StaffUser.id).where(StaffUser.username == username)).first()
    if exists:
        return username, None
    account, password = create_first_admin(container, username, display_name="演示管理员", actor="demo")
    return account.username, password


__all__ = [
    "DeviceStatus", "DuplicateUser", "EventNotFound", "EventView", "LOGIN_REFUSED_MESSAGE", "LoginRefused",
    "NewSession", "Permission", "ROLE_PERMISSIONS", "Role", "StaffAccount", "StaffError", "StaffPrincipal",
    "StaffService", "WeakPassword", "create_first_admin", "create_user", "csrf_token_matches", "ensure_demo_admin",
    "generate_password", "permissions_for",
]
