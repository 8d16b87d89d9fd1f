"""Channels of a server: always scoped to the server in the path."""
from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from generated import rest
from models.storage import channels
from models import caps, db, views
from models.permissions import Perm, server_access
from models.tables import Channel
from core.errors import NotFound
from realtime import hooks


async def _channel_in(s: AsyncSession, server_id: int, channel_id: int) -> Channel:
    channel = await channels.in_server(s, server_id, channel_id)
    if channel is None:
        raise NotFound("Channel not found", "channel_not_found")
    return channel


def _name(value: str) -> str:
    return value.strip() or value


def _description(value: str | None) -> str | None:
    """Empty or blank descriptions are stored as null."""
    return (value or "").strip() or None


async def list_channels(user: int, serverId: int) -> tuple[list[rest.Channel], int]:
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.VIEW_CHANNEL)
        return [views.channel_view(c) for c in await channels.list_for(s, serverId)], 200


async def create_channel(user: int, serverId: int, body: dict[str, Any]) -> tuple[rest.Channel, int]:
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.MANAGE_CHANNELS)
        await caps.require_channel_room(s, serverId)
        position = body.get("position")
        if position is None:
            position = await channels.next_position(s, serverId)
        channel = await channels.create(s, serverId, _name(body["name"]), body.get("type") or "text",
                                        _description(body.get("description")), position)
        return views.channel_view(channel), 201


async def get_channel(user: int, serverId: int, channelId: int) -> tuple[rest.Channel, int]:
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.VIEW_CHANNEL)
        channel = await _channel_in(s, serverId, channelId)
        return views.channel_view(channel), 200


async def update_channel(user: int, serverId: int, channelId: int,
                         body: dict[str, Any] | None = None) -> tuple[rest.Channel, int]:
    body = body or {}
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.MANAGE_CHANNELS)
        channel = await _channel_in(s, serverId, channelId)
        old_type = channel.type
        changes: dict[str, Any] = {}
        if body.get("name") is not None:
            changes["name"] = _name(body["name"])
        if body.get("type") is not None:
            changes["type"] = body["type"]
        if "description" in body:
            changes["description"] = _description(body["description"])
        if body.get("position") is not None:
            changes["position"] = body["position"]
        await channels.update(s, channel, changes)
        out = views.channel_view(channel)
    if channel.type != old_type:
        await hooks.channel_type_changed(channelId, channel.type)
    return out, 200


async def delete_channel(user: int, serverId: int, channelId: int) -> tuple[None, int]:
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.MANAGE_CHANNELS)
        channel = await _channel_in(s, serverId, channelId)
        await channels.delete(s, channel)
    await hooks.channel_deleted(channelId)
    return None, 204
