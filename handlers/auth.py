"""Accounts: register, login, me, and the desktop client's account edits."""
from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from models import db, views
from models.tables import User, utcnow
from projectvoice import auth
from projectvoice.errors import BadRequest, Forbidden, NotFound
from realtime.presence import statuses


def _new_tag() -> str:
    return f"{secrets.randbelow(10000):04d}"


async def find_by_email(s, email: str) -> User | None:
    res = await s.exec(select(User).where(sa.func.lower(User.email) == email.strip().lower()))
    return res.first()


async def register(body: dict):
    username = body["username"].strip()
    email = body["email"].strip().lower()
    if len(username) < 3:
        raise BadRequest("username must be 3 to 32 characters", "validation_error")
    password_hash = await auth.hash_password(body["password"])
    try:
        async with db.session() as s:
            user = User(username=username, email=email, password_hash=password_hash, tag=_new_tag())
            s.add(user)
            await s.flush()
    except IntegrityError:
        raise BadRequest("User already exists (username or email taken)", "user_exists")
    return {"token": auth.issue_token(user), "user": views.user_private(user)}, 201


async def login(body: dict):
    async with db.session() as s:
        user = await find_by_email(s, body["email"])
    if user is None:
        raise NotFound("User not found", "user_not_found")
    ok, needs_rehash = await auth.verify_password(user.password_hash, body["password"])
    if not ok:
        raise BadRequest("Wrong password", "wrong_password")
    if not user.is_active:
        raise Forbidden("This account is blocked", "account_blocked")
    if needs_rehash:
        new_hash = await auth.hash_password(body["password"])
        async with db.session() as s:
            await s.exec(sa.update(User).where(User.id == user.id).values(password_hash=new_hash))
    return {"token": auth.issue_token(user), "user": views.user_private(user, await statuses(user.id, [user.id]))}, 200


async def me(user: int):
    async with db.session() as s:
        u = await s.get(User, user)
    if u is None:
        raise NotFound("User not found", "user_not_found")
    return views.user_private(u, await statuses(user, [user])), 200


def _only_self(user: int, target: int) -> None:
    if user != target:
        raise Forbidden("You can only change your own account", "not_your_account")


async def update_account(user: int, id: int, body: dict | None = None):
    _only_self(user, id)
    body = body or {}
    values: dict = {}
    if body.get("username") is not None:
        values["username"] = body["username"].strip()
        if not 3 <= len(values["username"]) <= 32:
            raise BadRequest("username must be 3 to 32 characters", "validation_error")
    if body.get("email") is not None:
        values["email"] = body["email"].strip().lower()
    try:
        async with db.session() as s:
            u = await s.get(User, id)
            if u is None:
                raise NotFound("User not found", "user_not_found")
            for k, v in values.items():
                setattr(u, k, v)
            if values:
                u.updated_at = utcnow()
            await s.flush()
    except IntegrityError:
        raise BadRequest("Username or email already taken", "user_exists")
    return views.user_private(u, await statuses(user, [user])), 200


async def change_password(user: int, id: int, body: dict):
    _only_self(user, id)
    async with db.session() as s:
        u = await s.get(User, id)
    if u is None:
        raise NotFound("User not found", "user_not_found")
    ok, _ = await auth.verify_password(u.password_hash, body["oldPassword"])
    if not ok:
        raise BadRequest("Old password is incorrect", "wrong_password")
    new_hash = await auth.hash_password(body["newPassword"])
    async with db.session() as s:
        u = await s.get(User, id)
        u.password_hash = new_hash
        # Every other session ends; the caller gets a fresh token.
        u.token_version += 1
        u.updated_at = utcnow()
        await s.flush()
    return {"message": "Password changed", "token": auth.issue_token(u)}, 200
