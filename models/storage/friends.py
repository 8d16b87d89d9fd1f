"""Friendships, friend requests and blocks between users (tables friendships, user_blocks).

One Friendship row per pair of users, keyed by (pair_low, pair_high) = the two ids in order and
unique on it: `pending` is a request from `user_id` to `friend_id`, `accepted` a friendship.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import db
from models.storage import dialect
from models.tables import Friendship, User, UserBlock, utcnow


def pair(a: int, b: int) -> tuple[int, int]:
    """The (pair_low, pair_high) key of two users."""
    return (a, b) if a < b else (b, a)


async def lock_pair(s: AsyncSession, a: int, b: int) -> dict[int, User]:
    """Both users by id, row-locked in id order so two changes to one pair never deadlock
    (FOR KEY SHARE on PostgreSQL; SQLite serialises transactions anyway). A user who does not
    exist is missing from the answer."""
    q = select(User).where(col(User.id).in_([a, b])).order_by(col(User.id))
    if db.is_postgres():
        q = q.with_for_update(key_share=True)
    res = await s.exec(q)
    return {u.id: u for u in res.all() if u.id is not None}  # (always: a stored row's id)


async def blocked_between(s: AsyncSession, a: int, b: int) -> bool:
    """Whether either user blocked the other."""
    res = await s.exec(select(UserBlock.id).where(sa.or_(
        sa.and_(col(UserBlock.blocker_id) == a, col(UserBlock.blocked_id) == b),
        sa.and_(col(UserBlock.blocker_id) == b, col(UserBlock.blocked_id) == a))))
    return res.first() is not None


async def get(s: AsyncSession, friendship_id: int) -> Friendship | None:
    return await s.get(Friendship, friendship_id)


async def refresh(s: AsyncSession, row: Friendship) -> None:
    """Re-read the row (after a lock was taken, or after an UPDATE changed it)."""
    await s.refresh(row)


async def for_pair(s: AsyncSession, a: int, b: int) -> Friendship | None:
    """The pair's request or friendship, whoever asked."""
    low, high = pair(a, b)
    res = await s.exec(select(Friendship).where(Friendship.pair_low == low, Friendship.pair_high == high))
    return res.first()


async def friends_of(s: AsyncSession, user_id: int) -> list[User]:
    """The user's accepted friends, by username (case-insensitively), then id."""
    other = sa.case((col(Friendship.user_id) == user_id, col(Friendship.friend_id)), else_=col(Friendship.user_id))
    res = await s.exec(select(User).join(Friendship, col(User.id) == other)
                       .where(col(Friendship.status) == "accepted",
                              sa.or_(col(Friendship.user_id) == user_id, col(Friendship.friend_id) == user_id))
                       .order_by(sa.func.lower(User.username), col(User.id)))
    return list(res.all())


async def requests_to(s: AsyncSession, user_id: int) -> list[tuple[Friendship, User]]:
    """Pending requests sent to the user, oldest first, each with its sender."""
    res = await s.exec(select(Friendship, User).join(User, col(User.id) == Friendship.user_id)
                       .where(col(Friendship.friend_id) == user_id, col(Friendship.status) == "pending")
                       .order_by(col(Friendship.id)))
    return list(res.all())


async def requests_from(s: AsyncSession, user_id: int) -> list[tuple[Friendship, User]]:
    """Pending requests the user sent, oldest first, each with its addressee."""
    res = await s.exec(select(Friendship, User).join(User, col(User.id) == Friendship.friend_id)
                       .where(col(Friendship.user_id) == user_id, col(Friendship.status) == "pending")
                       .order_by(col(Friendship.id)))
    return list(res.all())


async def add_request(s: AsyncSession, sender: int, addressee: int) -> Friendship | None:
    """A pending request from `sender` to `addressee`, written now (its id is set).

    None when the pair already has a row (a request or friendship that another transaction
    wrote since the caller looked): the session's transaction is then rolled back, and the
    caller starts a new one to see that row."""
    low, high = pair(sender, addressee)
    row = Friendship(user_id=sender, friend_id=addressee, pair_low=low, pair_high=high, status="pending")
    s.add(row)
    try:
        await s.flush()
    except IntegrityError:
        await s.rollback()
        return None
    return row


async def accept(s: AsyncSession, friendship_id: int, addressee: int | None = None) -> bool:
    """Turn a pending request into a friendship; with `addressee`, only a request sent to them.
    False when no such pending request is left (accepted meanwhile, or deleted)."""
    cond = [col(Friendship.id) == friendship_id, col(Friendship.status) == "pending"]
    if addressee is not None:
        cond.append(col(Friendship.friend_id) == addressee)
    res = await s.exec(sa.update(Friendship).where(*cond).values(status="accepted", updated_at=utcnow()))
    return res.rowcount == 1


async def delete_of(s: AsyncSession, user_id: int, friendship_id: int) -> bool:
    """Delete a request or friendship by its id, if the user is one of its two people."""
    res = await s.exec(sa.delete(Friendship).where(
        col(Friendship.id) == friendship_id,
        sa.or_(col(Friendship.user_id) == user_id, col(Friendship.friend_id) == user_id)))
    return res.rowcount > 0


async def delete_pair(s: AsyncSession, a: int, b: int) -> bool:
    """Delete the pair's request or friendship, whoever asked; False when there was none."""
    low, high = pair(a, b)
    res = await s.exec(sa.delete(Friendship).where(col(Friendship.pair_low) == low,
                                                   col(Friendship.pair_high) == high))
    return res.rowcount > 0


async def add_block(s: AsyncSession, blocker: int, blocked: int) -> None:
    """`blocker` blocks `blocked`; blocking twice is a no-op (unique blocker/blocked pair)."""
    await s.exec(dialect.insert(UserBlock).values(blocker_id=blocker, blocked_id=blocked, created_at=utcnow())
                 .on_conflict_do_nothing(index_elements=["blocker_id", "blocked_id"]))


async def remove_block(s: AsyncSession, blocker: int, blocked: int) -> bool:
    """Lift a block; False when `blocker` had not blocked `blocked`."""
    res = await s.exec(sa.delete(UserBlock).where(col(UserBlock.blocker_id) == blocker,
                                                  col(UserBlock.blocked_id) == blocked))
    return res.rowcount > 0


async def blocked_by(s: AsyncSession, user_id: int) -> list[User]:
    """The users the user blocked, in the order they were blocked."""
    res = await s.exec(select(User).join(UserBlock, col(UserBlock.blocked_id) == User.id)
                       .where(col(UserBlock.blocker_id) == user_id).order_by(col(UserBlock.id)))
    return list(res.all())
