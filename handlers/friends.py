"""Friends, friend requests and blocks between users.

One Friendship row per pair of users (unique pair_low/pair_high): `pending` is a request from
`user_id` to `friend_id`, `accepted` a friendship. Every change to a pair first locks both user
rows (PostgreSQL; SQLite serialises transactions anyway), so a block, a request and an accept
between the same two people never interleave; the unique pair constraint still settles anything
that slips through.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from models import db, views
from models.tables import Friendship, User, UserBlock, utcnow
from core.errors import BadRequest, Forbidden, NotFound
from realtime.presence import statuses

SENT = "Запрос в друзья отправлен."
ACCEPTED = "Запрос в друзья принят."


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


async def _lock_pair(s, a: int, b: int) -> dict[int, User]:
    """Both users, row-locked in id order (no deadlock); 404 when the other one does not exist."""
    q = select(User).where(User.id.in_([a, b])).order_by(User.id)
    if db.is_postgres():
        q = q.with_for_update(key_share=True)
    res = await s.exec(q)
    return {u.id: u for u in res.all()}


async def _blocked_between(s, a: int, b: int) -> bool:
    res = await s.exec(select(UserBlock.id).where(sa.or_(
        sa.and_(UserBlock.blocker_id == a, UserBlock.blocked_id == b),
        sa.and_(UserBlock.blocker_id == b, UserBlock.blocked_id == a))))
    return res.first() is not None


async def _row_for_pair(s, a: int, b: int) -> Friendship | None:
    low, high = _pair(a, b)
    res = await s.exec(select(Friendship).where(Friendship.pair_low == low, Friendship.pair_high == high))
    return res.first()


async def list_friends(user: int):
    other = sa.case((Friendship.user_id == user, Friendship.friend_id), else_=Friendship.user_id)
    async with db.session() as s:
        res = await s.exec(select(User).join(Friendship, User.id == other)
                           .where(Friendship.status == "accepted",
                                  sa.or_(Friendship.user_id == user, Friendship.friend_id == user))
                           .order_by(sa.func.lower(User.username), User.id))
        found = res.all()
    seen = await statuses(user, [u.id for u in found])
    return [views.user_public(u, seen) for u in found], 200


async def list_requests(user: int):
    async with db.session() as s:
        incoming = await s.exec(select(Friendship, User).join(User, User.id == Friendship.user_id)
                                .where(Friendship.friend_id == user, Friendship.status == "pending")
                                .order_by(Friendship.id))
        incoming = [views.friend_request_view(f, u) for f, u in incoming.all()]
        outgoing = await s.exec(select(Friendship, User).join(User, User.id == Friendship.friend_id)
                                .where(Friendship.user_id == user, Friendship.status == "pending")
                                .order_by(Friendship.id))
        outgoing = [views.friend_request_view(f, u) for f, u in outgoing.all()]
    return {"incoming": incoming, "outgoing": outgoing}, 200


async def _answer_existing(s, user: int, row: Friendship):
    """A row already exists for the pair: accept the other side's request, or say why not."""
    if row.status == "accepted":
        raise BadRequest("You are already friends", "already_friends")
    if row.user_id == user:
        raise BadRequest("Friend request already sent", "request_exists")
    # They asked first: the caller's request accepts theirs.
    res = await s.exec(sa.update(Friendship)
                       .where(Friendship.id == row.id, Friendship.status == "pending")
                       .values(status="accepted", updated_at=utcnow()))
    if res.rowcount != 1:
        raise BadRequest("You are already friends", "already_friends")
    await s.refresh(row)
    return {"message": ACCEPTED, "request": views.friendship_record(row)}, 201


async def send_request(user: int, body: dict):
    target = body["friendId"]
    if target == user:
        raise BadRequest("You cannot send a friend request to yourself", "self_request")
    try:
        async with db.session() as s:
            users = await _lock_pair(s, user, target)
            # An account blocked by the admins takes no requests; it looks like nobody there.
            if target not in users or not users[target].is_active:
                raise NotFound("User not found", "user_not_found")
            if await _blocked_between(s, user, target):
                raise Forbidden("This user is blocked", "blocked")
            row = await _row_for_pair(s, user, target)
            if row is not None:
                return await _answer_existing(s, user, row)
            low, high = _pair(user, target)
            row = Friendship(user_id=user, friend_id=target, pair_low=low, pair_high=high, status="pending")
            s.add(row)
            await s.flush()
            return {"message": SENT, "request": views.friendship_record(row)}, 201
    except IntegrityError:
        pass
    # The other side's request (or the same request twice) won the race for the pair's row.
    async with db.session() as s:
        await _lock_pair(s, user, target)
        if await _blocked_between(s, user, target):
            raise Forbidden("This user is blocked", "blocked")
        row = await _row_for_pair(s, user, target)
        if row is None:
            raise BadRequest("The request changed at the same moment; try again", "request_conflict")
        return await _answer_existing(s, user, row)


async def accept_request(user: int, requestId: int):
    async with db.session() as s:
        row = await s.get(Friendship, requestId)
        if row is None or user not in (row.user_id, row.friend_id):
            raise NotFound("Friend request not found", "request_not_found")
        await _lock_pair(s, row.user_id, row.friend_id)
        await s.refresh(row)
        if row.status == "accepted":
            raise BadRequest("You are already friends", "already_friends")
        if row.friend_id != user:
            raise Forbidden("Only the person the request was sent to can accept it", "not_addressee")
        if await _blocked_between(s, row.user_id, row.friend_id):
            raise Forbidden("This user is blocked", "blocked")
        res = await s.exec(sa.update(Friendship)
                           .where(Friendship.id == row.id, Friendship.friend_id == user,
                                  Friendship.status == "pending")
                           .values(status="accepted", updated_at=utcnow()))
        if res.rowcount != 1:
            raise BadRequest("You are already friends", "already_friends")
    return {"message": ACCEPTED}, 200


async def remove_friend(user: int, id: int):
    """`id` is a friendship id the caller is a party of; failing that, the other user's id."""
    party = sa.or_(Friendship.user_id == user, Friendship.friend_id == user)
    async with db.session() as s:
        res = await s.exec(sa.delete(Friendship).where(Friendship.id == id, party))
        if res.rowcount == 0 and id != user:
            low, high = _pair(user, id)
            res = await s.exec(sa.delete(Friendship).where(Friendship.pair_low == low,
                                                           Friendship.pair_high == high, party))
        if res.rowcount == 0:
            raise NotFound("No friendship or friend request found", "friendship_not_found")
    return {"message": "Друг удален или запрос отклонен."}, 200


async def block_user(user: int, targetUserId: int):
    target = targetUserId
    if target == user:
        raise BadRequest("You cannot block yourself", "self_block")
    async with db.session() as s:
        users = await _lock_pair(s, user, target)
        if target not in users:
            raise NotFound("User not found", "user_not_found")
        low, high = _pair(user, target)
        await s.exec(sa.delete(Friendship).where(Friendship.pair_low == low, Friendship.pair_high == high))
        # Blocking twice is harmless: the unique (blocker, blocked) pair makes it a no-op.
        insert = pg_insert if db.is_postgres() else sqlite_insert
        await s.exec(insert(UserBlock).values(blocker_id=user, blocked_id=target, created_at=utcnow())
                     .on_conflict_do_nothing(index_elements=["blocker_id", "blocked_id"]))
    return {"message": "Пользователь заблокирован."}, 200


async def unblock_user(user: int, targetUserId: int):
    async with db.session() as s:
        res = await s.exec(sa.delete(UserBlock).where(UserBlock.blocker_id == user,
                                                      UserBlock.blocked_id == targetUserId))
        if res.rowcount == 0:
            raise NotFound("You have not blocked this user", "block_not_found")
    return {"message": "Пользователь разблокирован."}, 200


async def list_blocked(user: int):
    async with db.session() as s:
        res = await s.exec(select(User).join(UserBlock, UserBlock.blocked_id == User.id)
                           .where(UserBlock.blocker_id == user).order_by(UserBlock.id))
        blocked = [views.user_public(u) for u in res.all()]
    return blocked, 200
