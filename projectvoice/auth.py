"""Passwords, JWTs, and the bearer check Connexion runs before every secured operation."""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

import bcrypt
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from models import db, sql
from models.tables import User
from projectvoice.errors import Unauthorized
from projectvoice.settings import get_settings

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
_secret: str | None = None


def _jwt_secret() -> str:
    global _secret
    if _secret is None:
        _secret = get_settings().resolved_jwt_secret()
    return _secret


def reset_secret_cache() -> None:
    global _secret
    _secret = None
    _verified.clear()


def _hash_sync(password: str) -> str:
    return _hasher.hash(password)


def _verify_sync(stored: str, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). bcrypt hashes from the Node.js original verify too."""
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        try:
            ok = bcrypt.checkpw(password.encode()[:72], stored.encode())
        except ValueError:
            return False, False
        return ok, ok
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False, False
    return True, _hasher.check_needs_rehash(stored)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hash_sync, password)


async def verify_password(stored: str, password: str) -> tuple[bool, bool]:
    return await asyncio.to_thread(_verify_sync, stored, password)


def issue_token(user: User) -> str:
    now = int(time.time())
    payload = {
        "sub": str(user.id),
        "ver": user.token_version,
        "iat": now,
        "exp": now + get_settings().jwt_ttl_seconds,
    }
    return jwt.encode(payload, _jwt_secret(), algorithm="HS256")


# Tokens whose signature and claims were verified, so a client's next requests skip the HMAC
# and JSON work (a tenth of a cheap request's CPU); expiry is still checked on every use.
# Bounded; what it holds came from our own signature, so nothing an attacker sends lands here.
_verified: OrderedDict[str, dict] = OrderedDict()
_VERIFIED_MAX = 10_000


def decode_token(token: str) -> dict | None:
    claims = _verified.get(token)
    if claims is not None:
        if claims["exp"] > time.time():
            return dict(claims)
        _verified.pop(token, None)
        return None
    try:
        claims = jwt.decode(token, _jwt_secret(), algorithms=["HS256"],
                            options={"require": ["sub", "exp", "iat"]})
        claims["sub"] = int(claims["sub"])
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    _verified[token] = claims
    if len(_verified) > _VERIFIED_MAX:
        _verified.popitem(last=False)
    return dict(claims)


async def user_for_token(token: str | None) -> User | None:
    """The active user a token belongs to, or None when it is missing, bad, expired or revoked."""
    if not token:
        return None
    claims = decode_token(token)
    if claims is None:
        return None
    async with db.session() as s:
        user = await s.get(User, claims["sub"])
    if user is None or not user.is_active or user.token_version != claims.get("ver", 0):
        return None
    return user


async def _account(user_id: int):
    """The account's row as it is now (never cached: a blocked or deleted account's token fails
    on the very next request), in one statement outside any transaction."""
    return await sql.one("SELECT id, role, username, profile_picture, is_active, token_version FROM users "
                         "WHERE id = %(id)s", id=user_id)


async def bearer_info(token: str) -> dict:
    """Connexion's bearer check: the token must belong to an existing, active account."""
    claims = decode_token(token)
    if claims is None:
        raise Unauthorized("Invalid token or token expired", "invalid_token")
    user = await _account(claims["sub"])
    if user is None:
        raise Unauthorized("Unauthorized: account no longer exists", "invalid_token")
    if not user.is_active:
        raise Unauthorized("Unauthorized: account is blocked", "account_blocked")
    if user.token_version != claims.get("ver", 0):
        raise Unauthorized("Unauthorized: token revoked", "invalid_token")
    # Handlers that accept `token_info` get this (create_message: the author without a query).
    return {"sub": user.id, "role": user.role, "username": user.username, "profilePicture": user.profile_picture}
