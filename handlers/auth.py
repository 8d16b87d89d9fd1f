"""Accounts: register, login, me, the desktop client's account edits, and sessions."""
from __future__ import annotations

from typing import Any

from connexion.context import scope
from sqlmodel.ext.asyncio.session import AsyncSession

from generated import rest
from models import db, views
from models.storage import accounts, sessions
from models.tables import AuthSession, User, stored_id
from models import auth
from core import textcheck
from core.errors import BadRequest, Forbidden, NotFound
from realtime import hooks
from realtime.presence import statuses


def _client() -> tuple[str | None, str | None]:
    """(user agent, IP as the rate limits see it: the peer address, or the proxy's forwarded one
    when the proxy is trusted) of the request being handled."""
    agent = None
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            agent = value.decode("latin-1")
            break
    client = scope.get("client")
    return agent, (client[0] if client else None)


async def _new_session(s: AsyncSession, user: views.Row, password_hash: str | None) -> tuple[AuthSession, User]:
    """A session for the account, unless it changed since the password was verified: deleted
    (404), blocked (403) or its password changed (400, the password given is no longer it)."""
    agent, ip = _client()
    session, locked = await sessions.create(s, user.id, password_hash, agent, ip)
    if locked is None:
        raise NotFound("User not found", "user_not_found")
    if not locked.is_active:
        raise Forbidden("This account is blocked", "account_blocked")
    if session is None:
        raise BadRequest("Wrong password", "wrong_password")
    return session, locked


async def register(body: dict[str, Any]) -> tuple[rest.AuthResponse, int]:
    username = textcheck.username(body["username"])
    password_hash = await auth.hash_password(body["password"])
    async with db.session() as s:
        user: views.Row = await auth.create_user(s, username, body["email"], password_hash)  # (then the locked User)
        if user is None:
            raise BadRequest("User already exists (username or email taken)", "user_exists")
        session, user = await _new_session(s, user, None)
    return views.auth_answer(auth.issue_token(user, stored_id(session)), user, stored_id(session)), 201


async def login(body: dict[str, Any]) -> tuple[rest.AuthResponse, int]:
    async with db.session() as s:
        user = await auth.find_by_email(s, body["email"])
    if user is None:
        raise NotFound("User not found", "user_not_found")
    ok, needs_rehash = await auth.verify_password(user.password_hash, body["password"])
    if not ok:
        raise BadRequest("Wrong password", "wrong_password")
    if not user.is_active:
        raise Forbidden("This account is blocked", "account_blocked")
    new_hash = await auth.hash_password(body["password"]) if needs_rehash else None
    async with db.session() as s:
        # Made only if the password verified is still the account's and it is still active.
        session, user = await _new_session(s, user, user.password_hash)
        if new_hash is not None:
            await accounts.replace_password(s, stored_id(user), None, new_hash, touch=False)
    return views.auth_answer(auth.issue_token(user, stored_id(session)), user, stored_id(session),
                             await statuses(stored_id(user), [stored_id(user)])), 200


async def me(user: int) -> tuple[rest.User, int]:
    async with db.session() as s:
        u = await accounts.get(s, user)
    if u is None:
        raise NotFound("User not found", "user_not_found")
    return views.user_private(u, await statuses(user, [user])), 200


def _only_self(user: int, target: int) -> None:
    if user != target:
        raise Forbidden("You can only change your own account", "not_your_account")


async def update_account(user: int, id: int, body: dict[str, Any] | None = None) -> tuple[rest.User, int]:
    _only_self(user, id)
    body = body or {}
    values: dict[str, Any] = {}
    if body.get("username") is not None:
        values["username"] = textcheck.username(body["username"])
    if body.get("email") is not None:
        values["email"] = body["email"].strip().lower()
    async with db.session() as s:
        u = await accounts.get(s, id)
        if u is None:
            raise NotFound("User not found", "user_not_found")
        if not await accounts.update(s, u, values):
            raise BadRequest("Username or email already taken", "user_exists")
    return views.user_private(u, await statuses(user, [user])), 200


async def change_password(user: int, id: int, body: dict[str, Any],
                          token_info: dict[str, Any]) -> tuple[rest.PasswordChanged, int]:
    """Keeps the caller's session (its token keeps working) and ends every other one."""
    _only_self(user, id)
    async with db.session() as s:
        u = await accounts.get(s, id)
    if u is None:
        raise NotFound("User not found", "user_not_found")
    ok, _ = await auth.verify_password(u.password_hash, body["oldPassword"])
    if not ok:
        raise BadRequest("Old password is incorrect", "wrong_password")
    new_hash = await auth.hash_password(body["newPassword"])
    async with db.session() as s:
        # Conditional on the hash just verified: of two changes at once, the second is a 400.
        if not await accounts.replace_password(s, id, u.password_hash, new_hash):
            raise BadRequest("Old password is incorrect", "wrong_password")
        ended = await sessions.end_others(s, id, token_info["sid"])
        u = await accounts.get(s, id)
    assert u is not None  # its row was updated (and so locked) in this transaction
    # The other sessions' sockets end now, not at their next event.
    await hooks.revalidate_user_sockets(id)
    return views.password_changed_view(auth.issue_token(u, token_info["sid"]), ended), 200


# ---------------------------------------------------------------- sessions

async def list_sessions(user: int, token_info: dict[str, Any]) -> tuple[list[rest.Session], int]:
    async with db.session() as s:
        rows = await sessions.list_for(s, user)
    return [views.session_view(r, r.id == token_info["sid"]) for r in rows], 200


async def end_session(user: int, id: int) -> tuple[None, int]:
    async with db.session() as s:
        if not await sessions.end_one(s, user, id):
            raise NotFound("Session not found", "session_not_found")
    await hooks.revalidate_user_sockets(user)
    return None, 204


async def logout(user: int, token_info: dict[str, Any]) -> tuple[None, int]:
    async with db.session() as s:
        await sessions.end_one(s, user, token_info["sid"])
    await hooks.revalidate_user_sockets(user)
    return None, 204


async def logout_others(user: int, token_info: dict[str, Any]) -> tuple[rest.SessionsEnded, int]:
    async with db.session() as s:
        ended = await sessions.end_others(s, user, token_info["sid"])
    await hooks.revalidate_user_sockets(user)
    return views.sessions_ended_view(ended), 200
