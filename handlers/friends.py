"""Friends, friend requests and blocks between users.

One friendship row per pair of users (models/storage/friends.py): a pending request or an
accepted friendship. Every change to a pair first locks both user rows, so a block, a request
and an accept between the same two people never interleave; the unique pair key still settles
anything that slips through (a request that loses that race is answered from the winner's row).
"""
from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from generated import rest
from models import db, views
from models.storage import friends
from models.tables import Friendship, stored_id
from core.errors import BadRequest, Forbidden, NotFound
from realtime.presence import statuses

SENT = "Запрос в друзья отправлен."
ACCEPTED = "Запрос в друзья принят."


async def list_friends(user: int) -> tuple[list[rest.PublicUser], int]:
    async with db.session() as s:
        found = await friends.friends_of(s, user)
    seen = await statuses(user, [u.id for u in found if u.id is not None])  # (a stored row's id is always set)
    return [views.user_public(u, seen) for u in found], 200


async def list_requests(user: int) -> tuple[rest.FriendRequests, int]:
    async with db.session() as s:
        incoming = [views.friend_request_view(f, u) for f, u in await friends.requests_to(s, user)]
        outgoing = [views.friend_request_view(f, u) for f, u in await friends.requests_from(s, user)]
    return {"incoming": incoming, "outgoing": outgoing}, 200


async def _answer_existing(s: AsyncSession, user: int, row: Friendship) -> tuple[rest.FriendRequestCreated, int]:
    """A row already exists for the pair: accept the other side's request, or say why not."""
    if row.status == "accepted":
        raise BadRequest("You are already friends", "already_friends")
    if row.user_id == user:
        raise BadRequest("Friend request already sent", "request_exists")
    # They asked first: the caller's request accepts theirs.
    if not await friends.accept(s, stored_id(row)):
        raise BadRequest("You are already friends", "already_friends")
    await friends.refresh(s, row)
    return {"message": ACCEPTED, "request": views.friendship_record(row)}, 201


async def send_request(user: int, body: dict[str, Any]) -> tuple[rest.FriendRequestCreated, int]:
    target = body["friendId"]
    if target == user:
        raise BadRequest("You cannot send a friend request to yourself", "self_request")
    async with db.session() as s:
        users = await friends.lock_pair(s, user, target)
        # An account blocked by the admins takes no requests; it looks like nobody there.
        if target not in users or not users[target].is_active:
            raise NotFound("User not found", "user_not_found")
        if await friends.blocked_between(s, user, target):
            raise Forbidden("This user is blocked", "blocked")
        row = await friends.for_pair(s, user, target)
        if row is not None:
            return await _answer_existing(s, user, row)
        row = await friends.add_request(s, user, target)
        if row is not None:
            return {"message": SENT, "request": views.friendship_record(row)}, 201
    # The other side's request (or the same request twice) won the race for the pair's row.
    async with db.session() as s:
        await friends.lock_pair(s, user, target)
        if await friends.blocked_between(s, user, target):
            raise Forbidden("This user is blocked", "blocked")
        row = await friends.for_pair(s, user, target)
        if row is None:
            raise BadRequest("The request changed at the same moment; try again", "request_conflict")
        return await _answer_existing(s, user, row)


async def accept_request(user: int, requestId: int) -> tuple[rest.MessageResponse, int]:
    async with db.session() as s:
        row = await friends.get(s, requestId)
        if row is None or user not in (row.user_id, row.friend_id):
            raise NotFound("Friend request not found", "request_not_found")
        await friends.lock_pair(s, row.user_id, row.friend_id)
        await friends.refresh(s, row)
        if row.status == "accepted":
            raise BadRequest("You are already friends", "already_friends")
        if row.friend_id != user:
            raise Forbidden("Only the person the request was sent to can accept it", "not_addressee")
        if await friends.blocked_between(s, row.user_id, row.friend_id):
            raise Forbidden("This user is blocked", "blocked")
        if not await friends.accept(s, requestId, addressee=user):
            raise BadRequest("You are already friends", "already_friends")
    return {"message": ACCEPTED}, 200


async def remove_friend(user: int, id: int) -> tuple[rest.MessageResponse, int]:
    """`id` is a friendship id the caller is a party of; failing that, the other user's id."""
    async with db.session() as s:
        removed = await friends.delete_of(s, user, id)
        if not removed and id != user:
            removed = await friends.delete_pair(s, user, id)
        if not removed:
            raise NotFound("No friendship or friend request found", "friendship_not_found")
    return {"message": "Друг удален или запрос отклонен."}, 200


async def block_user(user: int, targetUserId: int) -> tuple[rest.MessageResponse, int]:
    target = targetUserId
    if target == user:
        raise BadRequest("You cannot block yourself", "self_block")
    async with db.session() as s:
        users = await friends.lock_pair(s, user, target)
        if target not in users:
            raise NotFound("User not found", "user_not_found")
        await friends.delete_pair(s, user, target)  # a block ends the friendship or request
        await friends.add_block(s, user, target)  # blocking twice is harmless
    return {"message": "Пользователь заблокирован."}, 200


async def unblock_user(user: int, targetUserId: int) -> tuple[rest.MessageResponse, int]:
    async with db.session() as s:
        if not await friends.remove_block(s, user, targetUserId):
            raise NotFound("You have not blocked this user", "block_not_found")
    return {"message": "Пользователь разблокирован."}, 200


async def list_blocked(user: int) -> tuple[list[rest.PublicUser], int]:
    async with db.session() as s:
        blocked = [views.user_public(u) for u in await friends.blocked_by(s, user)]
    return blocked, 200
