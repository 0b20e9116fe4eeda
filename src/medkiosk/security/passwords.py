"""Staff passwords: argon2id hashes (argon2-cffi), a password policy and generated passwords.

The hasher's parameters are argon2-cffi's defaults (RFC 9106 "low memory": t=3, m=64 MiB,
p=4). When they change, ``needs_rehash`` tells the login to store a fresh hash of the password
it has just verified, so old hashes upgrade themselves as people log in.
"""

from __future__ import annotations

import secrets
import string
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 128  # argon2 copes with more; a cap stops a megabyte "password" from being hashed

# Generated passwords avoid look-alikes (0/O, 1/l/I) because they are read off a terminal and typed.
_GENERATED_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
_GENERATED_LENGTH = 16


class WeakPassword(ValueError):
    """The password breaks the policy; the message is Chinese and shown to the person as is."""


def default_hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str, *, hasher: PasswordHasher | None = None) -> str:
    return (hasher or default_hasher()).hash(password)


def verify_password(password_hash: str, password: str, *, hasher: PasswordHasher | None = None) -> bool:
    """True when ``password`` matches; a malformed stored hash counts as a mismatch, never an error."""
    try:
        return (hasher or default_hasher()).verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, *, hasher: PasswordHasher | None = None) -> bool:
    try:
        return (hasher or default_hasher()).check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@lru_cache(maxsize=8)
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    return hasher.hash(secrets.token_urlsafe(16))


def burn_verification(password: str, *, hasher: PasswordHasher | None = None) -> None:
    """Spend as long as a real verification would: used when the user is unknown, so that the
    time a login takes does not tell whether a username exists."""
    hasher = hasher or default_hasher()
    verify_password(_dummy_hash(hasher.time_cost, hasher.memory_cost, hasher.parallelism), password,
                    hasher=hasher)


def _character_classes(password: str) -> int:
    classes = set()
    for char in password:
        if char.islower():
            classes.add("lower")
        elif char.isupper():
            classes.add("upper")
        elif char.isdigit():
            classes.add("digit")
        else:
            classes.add("other")  # punctuation, spaces, Chinese characters …
    return len(classes)


def check_password_policy(password: str, *, username: str = "") -> None:
    """Raise ``WeakPassword`` unless the password is 10–128 characters, mixes at least two kinds of
    character (lower case, upper case, digits, others) and is not the username."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"密码至少需要 {MIN_LENGTH} 个字符")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"密码不能超过 {MAX_LENGTH} 个字符")
    if _character_classes(password) < 2:
        raise WeakPassword("密码不能只由一类字符组成，请混合使用大写字母、小写字母、数字或符号中的至少两类")
    if len(username.strip()) >= 3 and username.strip().lower() in password.lower():
        raise WeakPassword("密码不能包含用户名")


def generate_password() -> str:
    """A random 16-character password that passes the policy (about 92 bits of entropy)."""
    while True:
        candidate = "".join(secrets.choice(_GENERATED_ALPHABET) for _ in range(_GENERATED_LENGTH))
        if _character_classes(candidate) >= 3:
            return candidate
