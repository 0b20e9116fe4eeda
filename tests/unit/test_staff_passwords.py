"""Staff passwords, roles and the audit hash: pure rules, no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher

from medkiosk.security.passwords import (WeakPassword, check_password_policy, generate_password, hash_password,
                                         needs_rehash, verify_password)
from medkiosk.services.audit import GENESIS_HASH, canonical_details, entry_hash
from medkiosk.services.staff import (ROLE_PERMISSIONS, Permission, Role, csrf_token_matches, permissions_for)

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.mark.parametrize("password, message", [
    ("Ab1", "至少需要 10 个字符"),
    ("abcdefghijkl", "不能只由一类字符组成"),
    ("ABCDEFGHIJKL", "不能只由一类字符组成"),
    ("123456789012", "不能只由一类字符组成"),
    ("!!!!!!!!!!!!", "不能只由一类字符组成"),
    ("x" * 129 + "1", "不能超过 128 个字符"),
])
def test_a_weak_password_is_refused_with_a_chinese_reason(password, message):
    with pytest.raises(WeakPassword, match=message):
        check_password_policy(password)


@pytest.mark.parametrize("password", ["abcdefghi1", "Abcdefghij", "correct horse battery", "密码密码密码密码12"])
def test_ten_characters_of_two_kinds_pass_the_policy(password):
    check_password_policy(password)


def test_a_password_may_not_contain_the_username():
    with pytest.raises(WeakPassword, match="不能包含用户名"):
        check_password_policy("zhangwei2024!", username="zhangwei")


def test_an_argon2id_hash_verifies_and_is_not_the_password():
    hashed = hash_password("Kiosk-Staff-2024", hasher=FAST)
    assert hashed.startswith("$argon2id$")
    assert "Kiosk-Staff-2024" not in hashed
    assert verify_password(hashed, "Kiosk-Staff-2024", hasher=FAST)
    assert not verify_password(hashed, "kiosk-staff-2024", hasher=FAST)
    assert hash_password("Kiosk-Staff-2024", hasher=FAST) != hashed  # salted


def test_a_malformed_stored_hash_is_a_mismatch_not_an_error():
    assert not verify_password("not-a-hash", "whatever123", hasher=FAST)
    assert needs_rehash("not-a-hash", hasher=FAST)


def test_a_hash_made_with_other_parameters_needs_rehashing():
    old = hash_password("Kiosk-Staff-2024", hasher=FAST)
    assert not needs_rehash(old, hasher=FAST)
    assert needs_rehash(old, hasher=PasswordHasher())


def test_generated_passwords_pass_the_policy_and_differ():
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        check_password_policy(password)
        assert len(password) == 16


def test_every_role_and_permission_says_what_it_is():
    import ast
    import inspect

    for enum in (Role, Permission):
        body = ast.parse(inspect.getsource(enum)).body[0].body
        documented = {statement.targets[0].id for statement, following in zip(body, body[1:])
                      if isinstance(statement, ast.Assign) and isinstance(following, ast.Expr)
                      and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str)}
        assert documented == set(enum.__members__)
    assert set(ROLE_PERMISSIONS) == set(Role)


def test_permissions_follow_the_roles():
    assert Permission.MANAGE_STAFF in permissions_for([Role.IT_ADMIN])
    assert Permission.MANAGE_STAFF not in permissions_for([Role.ENGINEER])
    assert Permission.HANDLE_EVENTS in permissions_for(["engineer"])
    assert permissions_for([Role.AUDITOR]) == {Permission.READ_AUDIT, Permission.VIEW_RECONCILIATION}
    assert permissions_for([Role.FINANCE]) == {Permission.VIEW_PAYMENTS, Permission.VIEW_RECONCILIATION,
                                               Permission.RESOLVE_DISCREPANCIES}
    assert permissions_for(["engineer", "auditor"]) == ROLE_PERMISSIONS[Role.ENGINEER] | ROLE_PERMISSIONS[Role.AUDITOR]
    assert permissions_for(["retired_role"]) == frozenset()


def test_csrf_tokens_compare_exactly():
    assert csrf_token_matches("abc", "abc")
    assert not csrf_token_matches("abc", "abd")
    assert not csrf_token_matches("abc", "")
    assert not csrf_token_matches("abc", None)
    assert not csrf_token_matches("abc", "ábc")  # non-ASCII is a mismatch, not a TypeError


def test_the_audit_hash_covers_every_field_and_ignores_key_order():
    at = datetime(2026, 3, 1, 8, 30, tzinfo=timezone.utc)
    base = entry_hash(GENESIS_HASH, at, "admin", "staff.login", "staff:admin", {"a": 1, "b": "x"})
    assert base == entry_hash(GENESIS_HASH, at, "admin", "staff.login", "staff:admin", {"b": "x", "a": 1})
    assert base == entry_hash(GENESIS_HASH, at.astimezone(timezone(timedelta(hours=8))), "admin", "staff.login",
                              "staff:admin", {"a": 1, "b": "x"})
    changed = [
        entry_hash("1" * 64, at, "admin", "staff.login", "staff:admin", {"a": 1, "b": "x"}),
        entry_hash(GENESIS_HASH, at + timedelta(microseconds=1), "admin", "staff.login", "staff:admin",
                   {"a": 1, "b": "x"}),
        entry_hash(GENESIS_HASH, at, "admim", "staff.login", "staff:admin", {"a": 1, "b": "x"}),
        entry_hash(GENESIS_HASH, at, "admin", "staff.logout", "staff:admin", {"a": 1, "b": "x"}),
        entry_hash(GENESIS_HASH, at, "admin", "staff.login", "staff:other", {"a": 1, "b": "x"}),
        entry_hash(GENESIS_HASH, at, "admin", "staff.login", "staff:admin", {"a": 2, "b": "x"}),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_details_are_stored_as_they_read_back():
    from decimal import Decimal

    assert canonical_details({"amount": Decimal("12.50"), "nested": {"ok": True}}) == {
        "amount": "12.50", "nested": {"ok": True}}
    assert canonical_details(None) == {}
