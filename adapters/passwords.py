"""Argon2id password hashing (argon2-cffi's defaults are the RFC 9106 low-memory profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


def hasher() -> PasswordHasher:
    return PasswordHasher()  # Argon2id is argon2-cffi's default type


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
