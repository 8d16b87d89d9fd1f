"""Invites, the ORM side, in the caller's models.db session. An invite's uses are taken by one
conditional UPDATE, so exactly `max_uses` accepts succeed however many arrive at once."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import Invite, ServerMember


class AlreadyMember(Exception):
    """The accepting user is a member of the invite's server already."""


async def create(s: AsyncSession, server_id: int, created_by: int, max_uses: int | None, expires_at: datetime | None) -> Invite:
    """A new invite with a fresh random token (max_uses None: unlimited; expires_at None: never)."""
    invite = Invite(token=str(uuid.uuid4()), server_id=server_id, created_by=created_by,
                    max_uses=max_uses, expires_at=expires_at)
    s.add(invite)
    await s.flush()
    return invite


async def list_for(s: AsyncSession, server_id: int) -> list[Invite]:
    res = await s.exec(select(Invite).where(Invite.server_id == server_id).order_by(col(Invite.id)))
    return list(res.all())


async def get(s: AsyncSession, invite_id: int) -> Invite | None:
    return await s.get(Invite, invite_id)


async def by_token(s: AsyncSession, token: str) -> Invite | None:
    res = await s.exec(select(Invite).where(Invite.token == token))
    return res.first()


async def delete(s: AsyncSession, invite: Invite) -> None:
    await s.delete(invite)


async def is_member(s: AsyncSession, server_id: int, user_id: int) -> bool:
    res = await s.exec(select(ServerMember.id).where(ServerMember.server_id == server_id,
                                                     ServerMember.user_id == user_id))
    return res.first() is not None


async def take_use(s: AsyncSession, invite_id: int, now: datetime) -> bool:
    """Count one use, only while the invite is neither used up nor expired at `now`; False when
    it is (one conditional UPDATE: concurrent accepts of the last use cannot both get it)."""
    taken = await s.exec(
        sa.update(Invite)
        .where(col(Invite.id) == invite_id,
               sa.or_(col(Invite.max_uses).is_(None), col(Invite.uses) < col(Invite.max_uses)),
               sa.or_(col(Invite.expires_at).is_(None), col(Invite.expires_at) > now))
        .values(uses=col(Invite.uses) + 1)
        .execution_options(synchronize_session=False)
    )
    return taken.rowcount == 1


@asynccontextmanager
async def joining() -> AsyncIterator[None]:
    """Around the membership insert of an accept: a duplicate (the unique (server_id, user_id)
    constraint, a concurrent accept or add that won) raises AlreadyMember; the session's
    transaction, taken use included, then rolls back."""
    try:
        yield
    except sa.exc.IntegrityError:
        raise AlreadyMember() from None
