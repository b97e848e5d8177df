"""Hash and check passwords with argon2id, and hold the password policy."""

from __future__ import annotations

import secrets
from functools import cache
from typing import TYPE_CHECKING

from stackhub.errors import Invalid

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 10
MAX_LENGTH = 1024
COMMON = frozenset({
    "password", "password1", "password12", "password123", "passw0rd", "1234567890",
    "12345678910", "0123456789", "qwertyuiop", "1q2w3e4r5t", "qwerty1234", "letmein123",
    "administrator", "admin12345", "adminadmin", "iloveyou12", "changeme12", "welcome123",
    "stackhub123", "stackhubadmin",
})


def check_policy(password: str, *, username: str) -> None:
    """Raise Invalid unless the password meets the minimum policy."""
    if len(password) < MIN_LENGTH:
        raise Invalid(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise Invalid(f"the password must have at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in COMMON or lowered == username.lower() or len(set(password)) < 4:
        raise Invalid("this password is too easy to guess; choose a longer, less common one")


@cache
def hasher() -> PasswordHasher:
    """The argon2id hasher, made (and argon2 imported: 0.4 MB) at the first password use.

    OWASP's argon2id baseline (19 MiB, 2 passes): about 20 ms here, cheap enough for a panel,
    costly for an offline attacker; hashes made with other parameters are upgraded at sign-in.
    """
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_password(password: str) -> str:
    """Return an argon2id hash of the password."""
    return hasher().hash(password)


def verify(stored: str, password: str) -> bool:
    """Say whether the password matches the stored hash."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Say whether a hash was made with weaker parameters than today's."""
    from argon2.exceptions import InvalidHashError

    try:
        return hasher().check_needs_rehash(stored)
    except InvalidHashError:
        return True


@cache
def _dummy_hash() -> str:
    return hasher().hash(secrets.token_urlsafe(16))


def burn(password: str) -> None:
    """Spend the time a real check takes, so unknown users answer as slowly as known ones."""
    verify(_dummy_hash(), password)
