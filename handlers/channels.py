"""Channels of a server: always scoped to the server in the path."""
from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import select

from models import caps, db, views
from models.permissions import Perm, server_access
from models.tables import Channel, utcnow
from core.errors import NotFound
from realtime import hooks


async def _channel_in(s, server_id: int, channel_id: int) -> Channel:
    channel = await s.get(Channel, channel_id)
    if channel is None or channel.server_id != server_id:
        raise NotFound("Channel not found", "channel_not_found")
    return channel


async def list_channels(user: int, serverId: int):
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.VIEW_CHANNEL)
        res = await s.exec(select(Channel).where(Channel.server_id == serverId)
                           .order_by(Channel.position, Channel.id))
        return [views.channel_view(c) for c in res.all()], 200


async def create_channel(user: int, serverId: int, body: dict):
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.MANAGE_CHANNELS)
        await caps.require_channel_room(s, serverId)
        position = body.get("position")
        if position is None:
            res = await s.exec(select(sa.func.coalesce(sa.func.max(Channel.position) + 1, 0))
                               .where(Channel.server_id == serverId))
            position = res.one()
        channel = Channel(server_id=serverId, name=body["name"].strip() or body["name"],
                          type=body.get("type") or "text",
                          description=(body.get("description") or "").strip() or None, position=position)
        s.add(channel)
        await s.flush()
        return views.channel_view(channel), 201


async def get_channel(user: int, serverId: int, channelId: int):
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.VIEW_CHANNEL)
        channel = await _channel_in(s, serverId, channelId)
        return views.channel_view(channel), 200


async def update_channel(user: int, serverId: int, channelId: int, body: dict | None = None):
    body = body or {}
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.MANAGE_CHANNELS)
        channel = await _channel_in(s, serverId, channelId)
        if body.get("name") is not None:
            channel.name = body["name"].strip() or body["name"]
        old_type = channel.type
        if body.get("type") is not None:
            channel.type = body["type"]
        if "description" in body:
            channel.description = (body["description"] or "").strip() or None
        if body.get("position") is not None:
            channel.position = body["position"]
        channel.updated_at = utcnow()
        s.add(channel)
        await s.flush()
        out = views.channel_view(channel)
    if channel.type != old_type:
        await hooks.channel_type_changed(channelId, channel.type)
    return out, 200


async def delete_channel(user: int, serverId: int, channelId: int):
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.MANAGE_CHANNELS)
        channel = await _channel_in(s, serverId, channelId)
        await s.delete(channel)
    await hooks.channel_deleted(channelId)
    return None, 204
