"""Servers (communities): create, list, read, update, delete."""
from __future__ import annotations

from typing import Any

from generated import rest
from models.storage import audit, servers, sql
from models import db, membership
from models.permissions import Perm, default_roles, read_my_servers, read_server_access, server_access
from core.errors import Forbidden
from models.auth import account_checked_in_query
from realtime import hooks
from realtime.presence import seen_for


def _clean(value: str | None) -> str | None:
    """Optional text fields: empty strings are stored as null."""
    if value is None:
        return None
    value = value.strip()
    return value or None


async def create_server(user: int, body: dict[str, Any]) -> tuple[rest.ServerDetail, int]:
    async with db.session() as s:
        server = await servers.create(s, user, body["name"].strip() or body["name"],
                                      _clean(body.get("description")), _clean(body.get("icon")))
        server_id = server.id
        assert server_id is not None  # the INSERT (flushed) assigned it
        await servers.add_roles(s, default_roles(server_id))
        await membership.join(s, server_id, user, role="owner")
        (detail,) = await membership.server_details(await sql.of_session(s), [server], seen_for(user))
    await hooks.member_joined(server_id, user)
    return detail, 201


@account_checked_in_query
async def list_servers(user: int) -> tuple[list[rest.ServerDetail], int]:
    """Servers the caller belongs to; blocked servers are hidden."""
    async with sql.connection() as conn:
        mine = await read_my_servers(conn, user)
        details = await membership.server_details(conn, mine, seen_for(user))
    return details, 200


@account_checked_in_query
async def get_server(user: int, id: int) -> tuple[rest.ServerDetail, int]:
    async with sql.connection() as conn:
        access = await read_server_access(conn, user, id)
        (detail,) = await membership.server_details(conn, [access.server], seen_for(user))
    return detail, 200


async def update_server(user: int, id: int, body: dict[str, Any] | None = None) -> tuple[rest.ServerDetail, int]:
    body = body or {}
    async with db.session() as s:
        access = await server_access(s, user, id, Perm.MANAGE_GUILD)
        changes = {}
        if body.get("name") is not None:
            changes["name"] = body["name"].strip() or body["name"]
        for field in ("description", "icon"):
            if field in body:
                changes[field] = _clean(body[field])
        server = await servers.update(s, access.server, changes)
        (detail,) = await membership.server_details(await sql.of_session(s), [server], seen_for(user))
    return detail, 200


async def delete_server(user: int, id: int) -> tuple[None, int]:
    """Owner or ADMINISTRATOR; channels, messages, members, roles, invites and bans go with it
    (foreign keys cascade inside this one transaction)."""
    async with db.session() as s:
        access = await server_access(s, user, id)
        if not access.is_admin:
            raise Forbidden("Only the owner or an administrator can delete the server", "missing_permission")
        audit.record(s, user, "server.delete", "server", id, server_id=id, details={"name": access.server.name})
        await servers.delete(s, id)
    await hooks.server_closed(id)
    return None, 204
