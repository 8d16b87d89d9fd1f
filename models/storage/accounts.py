"""Accounts (table `users`): the lookups of sign-in and the bearer check, creation, the account's
own edits, and the reads a direct add to a server decides on. Session (`s`) first; the bearer
check's read opens its own models.storage.sql connection (outside any transaction)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.storage import rows, sql
from models.storage.members import insert_ignoring_duplicates
from models.tables import Friendship, User, UserBlock, utcnow

# The account and the token's session in one statement (the session is NULL columns when it ended).
ACCOUNT_SQL = ("SELECT a.id, a.role, a.username, a.profile_picture, a.is_active, a.token_version, "
               "sess.id AS session_id, sess.last_seen_at AS session_seen_at FROM users a "
               "LEFT JOIN auth_sessions sess ON sess.id = %(sid)s AND sess.user_id = a.id WHERE a.id = %(id)s")


async def with_session(user_id: int, session_id: int) -> sql.Row | None:
    """The account's row (id, role, username, profile_picture, is_active, token_version) with
    the session's id and last_seen_at (NULL when it ended); None: no such account."""
    return await sql.one(ACCOUNT_SQL, id=user_id, sid=session_id)


async def get(s: AsyncSession, user_id: int) -> User | None:
    return await s.get(User, user_id)


async def by_email(s: AsyncSession, email: str) -> User | None:
    """Case-insensitively, as the unique index compares them."""
    res = await s.exec(select(User).where(sa.func.lower(User.email) == email.strip().lower()))
    return res.first()


async def insert(s: AsyncSession, *, username: str, email: str, password_hash: str, role: str,
                 tag: str) -> rows.Returned | None:
    """A new account as the row the INSERT returned (the account's columns), or None when the
    username or email is taken (the unique indexes settle a race: ON CONFLICT DO NOTHING, and
    the transaction goes on)."""
    now = utcnow()
    res = await s.exec(insert_ignoring_duplicates(User)
                       .values(username=username, email=email, password_hash=password_hash, role=role, tag=tag,
                               is_active=True, status="online", token_version=0, created_at=now, updated_at=now)
                       .returning(*sa.inspect(User).local_table.columns))
    return res.first()


async def update(s: AsyncSession, user: User, values: dict[str, Any]) -> bool:
    """Set the columns in `values` (and updated_at); False when the username or email is taken
    (then the transaction must end)."""
    for key, value in values.items():
        setattr(user, key, value)
    if values:
        user.updated_at = utcnow()
    try:
        await s.flush()
    except IntegrityError:
        return False
    return True


async def replace_password(s: AsyncSession, user_id: int, old_hash: str | None, new_hash: str, *, touch: bool = True) -> bool:
    """Conditional on the hash the caller verified (None: unconditionally): of two changes at
    once, the second finds nothing to change. `touch`: updated_at too (not for a rehash of the
    same password). A copy the session holds follows."""
    q = sa.update(User).where(col(User.id) == user_id)
    if old_hash is not None:
        q = q.where(col(User.password_hash) == old_hash)
    values = {"password_hash": new_hash, **({"updated_at": utcnow()} if touch else {})}
    res = await s.exec(q.values(**values).execution_options(synchronize_session="evaluate"))
    return res.rowcount == 1


async def make_admin(s: AsyncSession, user: User, password_hash: str) -> None:
    """Admin, active, with a new password, every earlier token revoked."""
    user.role = "admin"
    user.is_active = True
    user.password_hash = password_hash
    user.token_version += 1
    s.add(user)
    await s.flush()


# ---------------------------------------------------------------- a direct add's facts

async def lock_pair(s: AsyncSession, a: int, b: int) -> dict[int, User]:
    """Both accounts, row-locked (FOR SHARE) in id order, as they are once the lock is granted."""
    q = (select(User).where(col(User.id).in_([a, b])).order_by(col(User.id))
         .with_for_update(read=True).execution_options(populate_existing=True))
    return {u.id: u for u in (await s.exec(q)).all() if u.id is not None}  # (always: a stored row's id)


async def blocked_either_way(s: AsyncSession, a: int, b: int) -> bool:
    res = await s.exec(select(UserBlock.id).where(sa.or_(
        sa.and_(col(UserBlock.blocker_id) == a, col(UserBlock.blocked_id) == b),
        sa.and_(col(UserBlock.blocker_id) == b, col(UserBlock.blocked_id) == a))))
    return res.first() is not None


async def are_friends(s: AsyncSession, a: int, b: int) -> bool:
    low, high = min(a, b), max(a, b)
    res = await s.exec(select(Friendship.id).where(Friendship.pair_low == low, Friendship.pair_high == high,
                                                   Friendship.status == "accepted"))
    return res.first() is not None
