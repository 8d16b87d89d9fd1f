"""Passwords, JWTs, and the bearer check Connexion runs before every secured operation."""
from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import bcrypt
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel.ext.asyncio.session import AsyncSession

from models import db
from models.storage import accounts, sessions, sql
from models.storage.rows import Returned
from models.tables import User
from core.errors import ApiError, Unauthorized
from core.settings import get_settings

if TYPE_CHECKING:
    from connexion.lifecycle import ConnexionRequest

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
_secret: str | None = None

# A token's claims (sub, sid, ver, iat, exp), `sub` as an int once verified.
Claims = dict[str, Any]
P = ParamSpec("P")
R = TypeVar("R")


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


def issue_token(user: User, session_id: int) -> str:
    """A token for one session of the account (`sid`): it works while that session lasts."""
    now = int(time.time())
    payload = {
        "sub": str(user.id),
        "ver": user.token_version,
        "sid": session_id,
        "iat": now,
        "exp": now + get_settings().jwt_ttl_seconds,
    }
    return jwt.encode(payload, _jwt_secret(), algorithm="HS256")


# ----------------------------------------------------------------------------- accounts
# Made here for registration and for the command line's create-admin alike.

def new_tag() -> str:
    """The four digits shown after a username (not unique: usernames are)."""
    return f"{secrets.randbelow(10000):04d}"


async def create_user(s: AsyncSession, username: str, email: str, password_hash: str,
                      role: str = "user") -> Returned | None:
    """A new account (the row of its columns) in the caller's transaction; None when the
    username or email is taken (compared case-insensitively; of two creations at once, the
    second gets None)."""
    return await accounts.insert(s, username=username.strip(), email=email.strip().lower(),
                                 password_hash=password_hash, role=role, tag=new_tag())


async def find_by_email(s: AsyncSession, email: str) -> User | None:
    return await accounts.by_email(s, email)


async def make_admin(s: AsyncSession, user: User, password_hash: str) -> None:
    """Promote an account to site admin with a new password: every earlier token and session
    of the account ends (the old password's holders are out)."""
    await accounts.make_admin(s, user, password_hash)
    assert user.id is not None  # a stored row
    await sessions.end_all(s, user.id)


_ID_MAX = 2**31 - 1  # ids are 32-bit integer columns


def _claim_int(value: object, low: int = 0) -> int | None:
    if type(value) is not int or not low <= value <= 2**62:  # bool and float are not claims we issue
        return None
    return value


def _valid_claims(claims: Claims) -> Claims | None:
    """The claims exactly as issue_token writes them, or None. A token signed with our secret
    but shaped otherwise (a string `exp`, a `sub` of " 1 ", no `ver` or `sid`) is refused like a
    bad signature: only the secret's holder can make one, but it must never reach a statement
    or the cache (a string `exp` there failed on the next use)."""
    sub = claims.get("sub")
    if not (isinstance(sub, str) and sub.isascii() and sub.isdigit() and not sub.startswith("0") and len(sub) <= 10):
        return None
    user_id = int(sub)
    sid = _claim_int(claims.get("sid"), 1)
    if user_id > _ID_MAX or sid is None or sid > _ID_MAX:
        return None
    if _claim_int(claims.get("ver")) is None or _claim_int(claims.get("exp")) is None \
            or _claim_int(claims.get("iat")) is None:
        return None
    return {**claims, "sub": user_id}


# Tokens whose signature and claims were verified, so a client's next requests skip the HMAC
# and JSON work (a tenth of a cheap request's CPU); expiry is still checked on every use.
# Bounded; what it holds came from our own signature, so nothing an attacker sends lands here.
_verified: OrderedDict[str, Claims] = OrderedDict()
_VERIFIED_MAX = 10_000


def decode_token(token: str) -> Claims | None:
    claims = _verified.get(token)
    if claims is not None:
        if claims["exp"] > time.time():
            return dict(claims)
        _verified.pop(token, None)
        return None
    try:
        claims = jwt.decode(token, _jwt_secret(), algorithms=["HS256"],
                            options={"require": ["sub", "exp", "iat"]})
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    claims = _valid_claims(claims)
    if claims is None:
        return None
    _verified[token] = claims
    if len(_verified) > _VERIFIED_MAX:
        _verified.popitem(last=False)
    return dict(claims)


async def user_for_token(token: str | None) -> User | None:
    """The active user a token belongs to, or None when it is missing, bad, expired or revoked,
    or its session has ended (the socket's check: the same account verdict as the bearer check)."""
    if not token:
        return None
    claims = decode_token(token)
    if claims is None:
        return None
    try:
        check_account(await _account(claims), claims)
    except Unauthorized:
        return None
    async with db.session() as s:
        user = await accounts.get(s, claims["sub"])
    return user if user is not None and user.is_active else None


async def _account(claims: Claims) -> sql.Row | None:
    """The account's row as it is now, with the token's session (never cached: a blocked or
    deleted account's token, or an ended session's, fails on the very next request), in one
    statement outside any transaction."""
    return await accounts.with_session(claims["sub"], claims["sid"])


def check_account(row: sql.Row | None, claims: Claims) -> None:
    """The token's account must exist, be active, not have revoked its tokens since this one
    was issued, and the token's session must still exist. `row` has is_active, token_version,
    session_id and session_seen_at (None: no such account)."""
    if row is None:
        raise Unauthorized("Unauthorized: account no longer exists", "invalid_token")
    if not row.is_active:
        raise Unauthorized("Unauthorized: account is blocked", "account_blocked")
    if row.token_version != claims["ver"]:
        raise Unauthorized("Unauthorized: token revoked", "invalid_token")
    if row.session_id is None:
        raise Unauthorized("Unauthorized: session ended", "session_ended")
    sessions.seen(row.session_id, row.session_seen_at)


# ----------------------------------------------------------- the account read, folded into a query
# The busiest reads (server list, server, members, message page, search) check their permission with one
# statement; reading the account in that same statement saves a query and a pool checkout per
# request (a fifth of a message page's cost). For those operations, and only for GETs (nothing
# is changed before the account is known), the bearer check leaves the account to the handler:
# models.permissions.read_*_access read it with the permission and call check_account, and the
# handler's wrapper settles it with the separate read if the handler did not get that far.
_DEFERRED: set[str] = set()
_unchecked: ContextVar[Claims | None] = ContextVar("pv_account_unchecked", default=None)


def account_checked_in_query(handler: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """For a GET handler whose first statement is models.permissions' read_channel_access,
    read_server_access or read_my_servers (tests/test_blocking.py lists every such handler)."""
    _DEFERRED.add(f"{handler.__module__}.{handler.__name__}")

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = await handler(*args, **kwargs)
        except ApiError:
            await settle_account()  # a 401 comes first, as it would from the bearer check
            raise
        await settle_account()
        return result

    return wrapper


def take_unchecked_account(user_id: int) -> Claims | None:
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
        check_account(await _account(claims), claims)


async def bearer_info(token: str, request: ConnexionRequest | None = None) -> dict[str, Any]:
    """Connexion's bearer check: the token must belong to an existing, active account."""
    claims = decode_token(token)
    if claims is None:
        raise Unauthorized("Invalid token or token expired", "invalid_token")
    if request is not None and request.method == "GET":
        routing = request.scope.get("extensions", {}).get("connexion_routing", {})
        if routing.get("operation_id") in _DEFERRED:
            _unchecked.set(claims)
            return {"sub": claims["sub"], "sid": claims["sid"]}
    user: sql.Row = await _account(claims)  # (not None once check_account passed)
    check_account(user, claims)
    # Handlers that accept `token_info` get this (create_message: the author without a query;
    # the session routes: the caller's session).
    return {"sub": user.id, "sid": claims["sid"], "role": user.role, "username": user.username,
            "profilePicture": user.profile_picture}
