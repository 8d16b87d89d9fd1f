"""Passwords, JWTs, and the bearer check Connexion runs before every secured operation."""
from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from contextvars import ContextVar

import bcrypt
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from models import db, sql
from models.tables import User
from projectvoice.errors import ApiError, Unauthorized
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
    try:
        check_account(user, claims)
    except Unauthorized:
        return None
    return user


async def _account(user_id: int):
    """The account's row as it is now (never cached: a blocked or deleted account's token fails
    on the very next request), in one statement outside any transaction."""
    return await sql.one("SELECT id, role, username, profile_picture, is_active, token_version FROM users "
                         "WHERE id = %(id)s", id=user_id)


def check_account(row, claims: dict) -> None:
    """The token's account must exist, be active and not have revoked its tokens since this one
    was issued. `row` has is_active and token_version (None: no such account)."""
    if row is None:
        raise Unauthorized("Unauthorized: account no longer exists", "invalid_token")
    if not row.is_active:
        raise Unauthorized("Unauthorized: account is blocked", "account_blocked")
    if row.token_version != claims.get("ver", 0):
        raise Unauthorized("Unauthorized: token revoked", "invalid_token")


# ----------------------------------------------------------- the account read, folded into a query
# The busiest reads (server list, server, members, message page, search) check their permission with one
# statement; reading the account in that same statement saves a query and a pool checkout per
# request (a fifth of a message page's cost). For those operations, and only for GETs (nothing
# is changed before the account is known), the bearer check leaves the account to the handler:
# models.permissions.read_*_access read it with the permission and call check_account, and the
# handler's wrapper settles it with the separate read if the handler did not get that far.
_DEFERRED: set[str] = set()
_unchecked: ContextVar[dict | None] = ContextVar("pv_account_unchecked", default=None)


def account_checked_in_query(handler):
    """For a GET handler whose first statement is models.permissions' read_channel_access,
    read_server_access or read_my_servers (tests/test_blocking.py lists every such handler)."""
    _DEFERRED.add(f"{handler.__module__}.{handler.__name__}")

    @functools.wraps(handler)
    async def wrapper(*args, **kwargs):
        try:
            result = await handler(*args, **kwargs)
        except ApiError:
            await settle_account()  # a 401 comes first, as it would from the bearer check
            raise
        await settle_account()
        return result

    return wrapper


def take_unchecked_account(user_id: int) -> dict | None:
    """The claims whose account the caller's statement must check (and now owns), or None."""
    claims = _unchecked.get()
    if claims is None or claims["sub"] != user_id:
        return None
    _unchecked.set(None)
    return claims


async def settle_account() -> None:
    claims = _unchecked.get()
    if claims is not None:
        _unchecked.set(None)
        check_account(await _account(claims["sub"]), claims)


async def bearer_info(token: str, request=None) -> dict:
    """Connexion's bearer check: the token must belong to an existing, active account."""
    claims = decode_token(token)
    if claims is None:
        raise Unauthorized("Invalid token or token expired", "invalid_token")
    if request is not None and request.method == "GET":
        routing = request.scope.get("extensions", {}).get("connexion_routing", {})
        if routing.get("operation_id") in _DEFERRED:
            _unchecked.set(claims)
            return {"sub": claims["sub"]}
    user = await _account(claims["sub"])
    check_account(user, claims)
    # Handlers that accept `token_info` get this (create_message: the author without a query).
    return {"sub": user.id, "role": user.role, "username": user.username, "profilePicture": user.profile_picture}
