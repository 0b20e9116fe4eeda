"""Staff accounts, sessions and the audit chain in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import delete, func, select, update

from medkiosk.bootstrap import build_container
from medkiosk.security.passwords import check_password_policy, verify_password
from medkiosk.services import audit
from medkiosk.services.clock import FrozenClock
from medkiosk.services.staff import (LOGIN_REFUSED_MESSAGE, DuplicateUser, LoginRefused, Role, StaffError,
                                     StaffService, WeakPassword, create_first_admin, create_user, ensure_demo_admin,
                                     token_hash)
from medkiosk.settings import Settings
from medkiosk.store.db import make_engine, make_session_factory
from medkiosk.store.models import AuditEntry, StaffSession, StaffUser
from medkiosk.store.uow import UnitOfWork

PASSWORD = "Ward-Round-0800"
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class Store:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.session_factory = make_session_factory(self.engine)
        self.clock = FrozenClock()

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    def service(self, *, hasher: PasswordHasher | None = FAST, session_hours: int = 8) -> StaffService:
        return StaffService(self.uow, self.clock, session_hours=session_hours, hasher=hasher)

    def user(self, username: str) -> StaffUser:
        with self.uow() as uow:
            user = uow.session.scalars(select(StaffUser).where(StaffUser.username == username)).one()
            uow.session.expunge(user)  # keep its loaded state past the unit of work's rollback
            return user

    def audit_actions(self) -> list[tuple[str, str, str, dict]]:
        with self.uow() as uow:
            return [(e.actor, e.action, e.target, e.details)
                    for e in uow.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]

    def verify(self) -> tuple[bool, int | None]:
        with self.uow() as uow:
            return audit.verify_chain(uow)


@pytest.fixture
def store(database_url):
    store = Store(database_url)
    yield store
    store.engine.dispose()


# --- accounts -----------------------------------------------------------------------------------------
def test_a_created_user_has_an_argon2id_hash_roles_and_an_audit_entry(store):
    account = store.service().create_user("Zhang.Wei", "张工", ["engineer"], PASSWORD, actor="admin")
    assert account.username == "zhang.wei" and account.roles == (Role.ENGINEER,)
    row = store.user("zhang.wei")
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    assert verify_password(row.password_hash, PASSWORD, hasher=FAST)
    assert row.roles == ["engineer"] and row.active and row.failed_logins == 0
    assert store.audit_actions() == [("admin", "staff.user_created", "staff:zhang.wei",
                                      {"roles": ["engineer"], "display_name": "张工"})]


def test_a_taken_username_is_refused_whatever_its_case(store):
    store.service().create_user("liwei", "", [Role.ENGINEER], PASSWORD)
    with pytest.raises(DuplicateUser, match="已存在"):
        store.service().create_user("LiWei", "", [Role.AUDITOR], PASSWORD)
    with store.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(StaffUser)) == 1


@pytest.mark.parametrize("username, roles, password, error", [
    ("wang", ["engineer"], "short1", WeakPassword),
    ("wang", ["engineer"], "onlyletters", WeakPassword),
    ("wang", [], PASSWORD, StaffError),
    ("wang", ["superuser"], PASSWORD, StaffError),
    ("x", ["engineer"], PASSWORD, StaffError),
    ("wang wei", ["engineer"], PASSWORD, StaffError),
])
def test_bad_accounts_are_refused_and_nothing_is_stored(store, username, roles, password, error):
    with pytest.raises(error):
        store.service().create_user(username, "", roles, password)
    with store.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(StaffUser)) == 0
        assert uow.session.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_the_first_admin_gets_a_generated_strong_password(database_url):
    container = build_container(Settings(database_url=database_url))
    try:
        account, password = create_first_admin(container, "admin")
        check_password_policy(password, username="admin")
        assert account.roles == (Role.IT_ADMIN,)
        opened = StaffService.from_container(container).login("admin", password)
        assert opened.principal.username == "admin"
        account, given = create_first_admin(container, "admin2", "Given-Password-1")
        assert given == "Given-Password-1"
        with pytest.raises(DuplicateUser):
            create_first_admin(container, "admin")
    finally:
        container.close()


def test_the_calls_the_cli_and_the_demo_make(database_url):
    container = build_container(Settings(database_url=database_url))
    try:
        account = create_user(container, username="ops1", display_name="运维一", roles=["engineer"],
                              password=PASSWORD)
        assert account.roles == (Role.ENGINEER,)
        with pytest.raises(ValueError, match="至少需要 10 个字符"):
            create_user(container, username="ops2", display_name="", roles=["engineer"], password="short")
        username, password = ensure_demo_admin(container)
        assert username == "admin" and password
        StaffService.from_container(container).login("admin", password)
        assert ensure_demo_admin(container) == ("admin", None)
    finally:
        container.close()


# --- logging in ---------------------------------------------------------------------------------------
def test_unknown_user_and_wrong_password_are_refused_alike_and_audited_without_the_password(store):
    store.service().create_user("liwei", "", ["engineer"], PASSWORD)
    with pytest.raises(LoginRefused) as wrong:
        store.service().login("liwei", "Wrong-Password-9", client="10.0.0.8")
    with pytest.raises(LoginRefused) as unknown:
        store.service().login("nobody", "Wrong-Password-9", client="10.0.0.8")
    assert str(wrong.value) == str(unknown.value) == LOGIN_REFUSED_MESSAGE
    assert (wrong.value.reason, unknown.value.reason) == ("bad_password", "unknown_user")
    entries = store.audit_actions()[1:]
    assert entries == [
        ("anonymous", "staff.login_failed", "staff:liwei", {"reason": "bad_password", "client": "10.0.0.8"}),
        ("anonymous", "staff.login_failed", "staff:nobody", {"reason": "unknown_user", "client": "10.0.0.8"}),
    ]
    assert "Wrong-Password-9" not in repr(store.audit_actions())
    assert store.user("liwei").failed_logins == 1


def test_five_failures_lock_the_account_for_fifteen_minutes(store):
    store.service().create_user("liwei", "", ["engineer"], PASSWORD)
    for _ in range(5):
        with pytest.raises(LoginRefused):
            store.service().login("liwei", "Wrong-Password-9")
    assert store.user("liwei").locked_until is not None
    with pytest.raises(LoginRefused) as locked:
        store.service().login("liwei", PASSWORD)
    assert locked.value.reason == "locked" and str(locked.value) == LOGIN_REFUSED_MESSAGE
    store.clock.advance(minutes=14, seconds=59)
    with pytest.raises(LoginRefused):
        store.service().login("liwei", PASSWORD)
    assert store.service().list_users()[0].locked_until is not None
    store.clock.advance(seconds=2)
    assert store.service().list_users()[0].locked_until is None
    assert store.service().login("liwei", PASSWORD).principal.username == "liwei"
    row = store.user("liwei")
    assert row.locked_until is None and row.failed_logins == 0
    assert [action for _, action, _, _ in store.audit_actions()].count("staff.locked") == 1


def test_parallel_guesses_are_each_counted(store):
    store.service().create_user("liwei", "", ["engineer"], PASSWORD)
    start = threading.Barrier(5)
    outcomes: list[str] = []

    def guess() -> None:
        start.wait()
        try:
            store.service().login("liwei", "Wrong-Password-9")
        except LoginRefused as refused:
            outcomes.append(refused.reason)

    guessers = [threading.Thread(target=guess) for _ in range(5)]
    for thread in guessers:
        thread.start()
    for thread in guessers:
        thread.join(timeout=60)
    assert outcomes == ["bad_password"] * 5
    assert store.user("liwei").locked_until is not None
    assert store.verify() == (True, None)


def test_a_success_resets_the_failure_count(store):
    store.service().create_user("liwei", "", ["engineer"], PASSWORD)
    for _ in range(4):
        with pytest.raises(LoginRefused):
            store.service().login("liwei", "Wrong-Password-9")
    store.service().login("liwei", PASSWORD)
    with pytest.raises(LoginRefused):
        store.service().login("liwei", "Wrong-Password-9")
    assert store.user("liwei").locked_until is None


def test_login_rehashes_a_password_hashed_with_old_parameters(store):
    store.service(hasher=FAST).create_user("liwei", "", ["engineer"], PASSWORD)
    old = store.user("liwei").password_hash
    assert "m=1024" in old
    store.service(hasher=PasswordHasher()).login("liwei", PASSWORD)
    new = store.user("liwei").password_hash
    assert new != old and "m=65536" in new and verify_password(new, PASSWORD)


def test_a_disabled_account_cannot_log_in(store):
    store.service().create_user("liwei", "", ["engineer"], PASSWORD)
    with store.uow() as uow:
        uow.session.execute(update(StaffUser).values(active=False))
        uow.commit()
    with pytest.raises(LoginRefused) as refused:
        store.service().login("liwei", PASSWORD)
    assert refused.value.reason == "inactive"


# --- sessions -------------------------------------------------------------------------------------------
def test_only_the_token_hash_is_stored_and_the_session_resolves_until_logout(store):
    store.service().create_user("liwei", "李伟", ["engineer", "auditor"], PASSWORD)
    opened = store.service().login("liwei", PASSWORD)
    with store.uow() as uow:
        row = uow.session.scalars(select(StaffSession)).one()
        assert row.token_hash == token_hash(opened.token) != opened.token
        assert row.csrf_token == opened.principal.csrf_token
    principal = store.service().resolve(opened.token)
    assert principal is not None and principal.display_name == "李伟"
    assert principal.roles == (Role.ENGINEER, Role.AUDITOR)
    assert store.service().resolve(opened.token + "x") is None
    store.service().logout(principal)
    assert store.service().resolve(opened.token) is None
    assert [action for _, action, _, _ in store.audit_actions()][-2:] == ["staff.login", "staff.logout"]


def test_a_session_expires_after_the_configured_hours(store):
    store.service().create_user("liwei", "", ["engineer"], PASSWORD)
    opened = store.service(session_hours=2).login("liwei", PASSWORD)
    assert opened.principal.expires_at == store.clock.now() + timedelta(hours=2)
    store.clock.advance(hours=1, minutes=59)
    assert store.service().resolve(opened.token) is not None
    store.clock.advance(minutes=1)
    assert store.service().resolve(opened.token) is None


def test_changing_the_password_revokes_the_other_sessions(store):
    store.service().create_user("liwei", "", ["engineer"], PASSWORD)
    here = store.service().login("liwei", PASSWORD)
    elsewhere = store.service().login("liwei", PASSWORD)
    with pytest.raises(StaffError):
        store.service().change_password(here.principal, "not-the-password", "New-Password-2")
    store.service().change_password(here.principal, PASSWORD, "New-Password-2")
    assert store.service().resolve(here.token) is not None
    assert store.service().resolve(elsewhere.token) is None
    store.service().login("liwei", "New-Password-2")


# --- the audit chain ------------------------------------------------------------------------------------
def _append(store: Store, n: int) -> None:
    for i in range(n):
        with store.uow() as uow:
            audit.append(uow, store.clock, "admin", "test.action", f"thing:{i}", {"i": i, "label": "检查"})
            uow.commit()
        store.clock.advance(seconds=1)


def test_an_untouched_chain_verifies(store):
    assert store.verify() == (True, None)
    _append(store, 5)
    assert store.verify() == (True, None)
    with store.uow() as uow:
        entries = list(uow.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        assert entries[0].prev_hash == audit.GENESIS_HASH
        assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
        assert audit.head(uow) == audit.ChainHead(entries[-1].id, entries[-1].hash)


def test_a_changed_entry_is_found(store):
    _append(store, 5)
    with store.uow() as uow:
        third = uow.session.scalars(select(AuditEntry.id).order_by(AuditEntry.id).offset(2)).first()
        uow.session.execute(update(AuditEntry).where(AuditEntry.id == third).values(details={"i": 99}))
        uow.commit()
    assert store.verify() == (False, third)


def test_a_changed_entry_with_a_recomputed_hash_breaks_the_next_link(store):
    _append(store, 5)
    with store.uow() as uow:
        second, third = uow.session.scalars(select(AuditEntry).order_by(AuditEntry.id).offset(1).limit(2)).all()
        second.actor = "someone-else"
        second.hash = audit.entry_hash(second.prev_hash, second.at, second.actor, second.action, second.target,
                                       second.details)
        uow.commit()
    assert store.verify() == (False, third.id)


def test_a_deleted_entry_is_found(store):
    _append(store, 5)
    with store.uow() as uow:
        ids = list(uow.session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)))
        uow.session.execute(delete(AuditEntry).where(AuditEntry.id == ids[1]))
        uow.commit()
    assert store.verify() == (False, ids[2])


def test_concurrent_appends_never_fork_the_chain(store):
    """PostgreSQL is the case that matters (several service copies); SQLite's lock is checked too."""
    threads, per_thread = 10, 5
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with store.uow() as uow:
                    audit.append(uow, store.clock, f"worker-{n}", "test.concurrent", f"thing:{n}:{i}", {"n": n})
                    uow.commit()
        except BaseException as exc:  # surfaced below, with the thread's own traceback
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    assert not errors, errors
    with store.uow() as uow:
        rows = list(uow.session.execute(select(AuditEntry.id, AuditEntry.prev_hash, AuditEntry.hash)
                                        .order_by(AuditEntry.id)))
    assert len(rows) == threads * per_thread
    prev_hashes = [row.prev_hash for row in rows]
    assert len(set(prev_hashes)) == len(prev_hashes), "two entries name the same predecessor: the chain forked"
    assert store.verify() == (True, None)
