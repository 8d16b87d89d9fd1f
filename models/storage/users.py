"""Account rows as profiles: read one, change its profile fields, delete it."""
from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import User, utcnow

# The profile columns a user may change about themselves.
PROFILE_FIELDS = frozenset({"username", "profile_picture", "bio", "status"})


async def get(s: AsyncSession, user_id: int) -> User | None:
    """The account, from the session's identity map when it is already loaded."""
    return await s.get(User, user_id)


async def refresh(s: AsyncSession, user: User) -> None:
    """Re-read the account's row (after a statement that changed it behind the ORM's back)."""
    await s.refresh(user)


async def update_profile(s: AsyncSession, user: User, changes: dict[str, Any]) -> bool:
    """Write `changes` (PROFILE_FIELDS only) and updated_at to the account in one UPDATE.

    False when the new username is taken (case-insensitively, by the unique index): the
    session's transaction is then rolled back and nothing is written."""
    unknown = changes.keys() - PROFILE_FIELDS
    if unknown:
        raise ValueError(f"not profile fields: {sorted(unknown)}")
    for attr, value in changes.items():
        setattr(user, attr, value)
    user.updated_at = utcnow()
    try:
        await s.flush()
    except IntegrityError:
        await s.rollback()
        return False
    return True


async def delete(s: AsyncSession, user: User) -> None:
    """Delete the account; its servers, memberships, messages, friendships, blocks and sessions
    go with it through the foreign keys."""
    await s.delete(user)

