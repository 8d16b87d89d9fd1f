"""Profiles: the caller's own (/users/) and anybody's by id."""
from __future__ import annotations

from typing import Any

from generated import rest
from models import db, membership, views
from models.storage import presence, sql, users
from core import textcheck
from core.errors import BadRequest, NotFound
from realtime import hooks
from realtime.presence import statuses


async def get_profile(user: int) -> tuple[rest.UserProfile, int]:
    async with db.session() as s:
        u = await users.get(s, user)
    if u is None:
        raise NotFound("User not found", "user_not_found")
    return views.user_profile(u), 200


async def get_user(user: int, id: int) -> tuple[rest.UserPublicProfile, int]:
    async with db.session() as s:
        u = await users.get(s, id)
    if u is None:
        raise NotFound("User not found", "user_not_found")
    # Presence only for who may see it: oneself, co-members and friends, no block between.
    seen = None
    if id == user:
        seen = await statuses(user, [id])
    else:
        async with sql.connection() as conn:
            if await presence.shares_with(conn, user, id):
                seen = await statuses(user, [id])
    return views.user_by_id(u, seen), 200


async def update_profile(user: int, body: dict[str, Any] | None = None) -> tuple[rest.UserProfile, int]:
    body = body or {}
    name = body.get("username") if body.get("username") is not None else body.get("name")
    async with db.session() as s:
        u = await users.get(s, user)
        if u is None:
            raise NotFound("User not found", "user_not_found")
        changes: dict[str, Any] = {}
        if name is not None:
            changes["username"] = textcheck.username(name)
        for field, attr in (("profilePicture", "profile_picture"), ("bio", "bio")):
            if field in body:
                changes[attr] = body[field] or None
        if body.get("status") is not None:
            changes["status"] = body["status"]  # the chosen presence (the spec's StatusChoice enum)
        if not await users.update_profile(s, u, changes):
            raise BadRequest("Username already taken", "user_exists")
    if body.get("status") is not None:
        await hooks.presence_choice_changed(user, u.status)
    return views.user_profile(u), 200


async def delete_account(user: int) -> tuple[rest.MessageResponse, int]:
    """Deletes the account and, through the foreign keys, everything it owns."""
    async with db.session() as s:
        u = await users.get(s, user)
        if u is None:
            raise NotFound("User not found", "user_not_found")
        owned = await membership.owned_server_ids(s, user)
        await users.delete(s, u)
    await hooks.user_gone(user)
    for server_id in owned:  # their servers went with them: empty those voice rooms too
        await hooks.server_closed(server_id)
    return {"message": "User deleted successfully"}, 200
