"""Table rows -> API dictionaries. The only place response shapes are built."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from models.tables import User


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_private(u: User) -> dict[str, Any]:
    """The account as its owner (and admins) see it: /auth/me, login, register."""
    return {
        "id": u.id,
        "username": u.username,
        "email": u.email,
        "role": u.role,
        "isActive": u.is_active,
        "profilePicture": u.profile_picture,
        "status": u.status,
        "tag": u.tag,
        "bio": u.bio,
        "createdAt": iso(u.created_at),
        "updatedAt": iso(u.updated_at),
    }


def user_profile(u: User) -> dict[str, Any]:
    """GET/PUT /users/: the caller's profile."""
    return {
        "id": u.id,
        "username": u.username,
        "profilePicture": u.profile_picture,
        "bio": u.bio,
        "createdAt": iso(u.created_at),
        "updatedAt": iso(u.updated_at),
    }


def user_by_id(u: User) -> dict[str, Any]:
    """GET /users/{id}: `name` as the seed shows, `username` as the contract notes add."""
    return {
        "id": u.id,
        "name": u.username,
        "username": u.username,
        "profilePicture": u.profile_picture,
        "bio": u.bio,
        "status": u.status,
        "tag": u.tag,
        "createdAt": iso(u.created_at),
        "updatedAt": iso(u.updated_at),
    }


def user_public(u: User) -> dict[str, Any]:
    """A user as other people see them (members, friends, messages' authors)."""
    return {
        "id": u.id,
        "username": u.username,
        "profilePicture": u.profile_picture,
        "tag": u.tag,
        "status": u.status,
    }
