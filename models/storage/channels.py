"""Channels of a server (the ORM side, in the caller's models.db session). A channel's messages
go with it by the foreign key's cascade; its message count is kept by triggers (migration 0002)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.storage import rows
from models.tables import Channel


async def in_server(s: AsyncSession, server_id: int, channel_id: int) -> Channel | None:
    """The channel, when it belongs to that server (another server's channel is None too)."""
    channel = await s.get(Channel, channel_id)
    if channel is None or channel.server_id != server_id:
        return None
    return channel


async def list_for(s: AsyncSession, server_id: int) -> list[Channel]:
    """The server's channels in their display order."""
    res = await s.exec(select(Channel).where(Channel.server_id == server_id)
                       .order_by(col(Channel.position), col(Channel.id)))
    return list(res.all())


async def next_position(s: AsyncSession, server_id: int) -> int:
    """One past the server's last position (0 for its first channel)."""
    res = await s.exec(select(sa.func.coalesce(sa.func.max(Channel.position) + 1, 0))
                       .where(Channel.server_id == server_id))
    return res.one()


async def create(s: AsyncSession, server_id: int, name: str, type: str, description: str | None, position: int) -> Channel:
    channel = Channel(server_id=server_id, name=name, type=type, description=description, position=position)
    s.add(channel)
    await s.flush()
    return channel


async def update(s: AsyncSession, channel: Channel, changes: dict[str, Any]) -> Channel:
    """Write `changes` (column name -> new value: name, type, description, position) and a new
    updated_at, in one UPDATE."""
    return await rows.update(s, channel, changes)


async def delete(s: AsyncSession, channel: Channel) -> None:
    """Deleted when the session commits (its messages by cascade)."""
    await s.delete(channel)
