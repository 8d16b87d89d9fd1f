"""Per-server caps, as Discord has them: 500 channels and 250 roles (the @everyone and preset
roles count) per server. Over a cap the answer is 400 with its own code.

Settled by the database, not by a count that two requests read at once: the creating
transaction takes the server row's lock (models.membership.lock_server, exclusive) before it
counts, so two creates at the cap queue up and the second one counts the first one's row.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlmodel.ext.asyncio.session import AsyncSession

from models import membership
from models.storage import roles
from core.errors import BadRequest, NotFound

MAX_CHANNELS = 500
MAX_ROLES = 250


async def _require_room(s: AsyncSession, server_id: int, count: Callable[[AsyncSession, int], Awaitable[int]], cap: int,
                        what: str, code: str) -> None:
    if await membership.lock_server(s, server_id, exclusive=True) is None:
        raise NotFound("Server not found", "server_not_found")
    if await count(s, server_id) >= cap:
        raise BadRequest(f"Maximum number of {what} reached ({cap})", code)


async def require_channel_room(s: AsyncSession, server_id: int) -> None:
    """Before inserting a channel: 400 `channel_limit` when the server has MAX_CHANNELS."""
    await _require_room(s, server_id, roles.count_channels, MAX_CHANNELS, "channels", "channel_limit")


async def require_role_room(s: AsyncSession, server_id: int) -> None:
    """Before inserting a role: 400 `role_limit` when the server has MAX_ROLES."""
    await _require_room(s, server_id, roles.count, MAX_ROLES, "roles", "role_limit")
