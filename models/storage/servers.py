"""Servers (communities), the ORM side, in the caller's models.db session. Deleting a server
takes its channels, messages, members, roles, invites and bans with it (foreign keys cascade
inside the same transaction)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from models.storage import rows
from models.tables import Role, Server


async def get(s: AsyncSession, server_id: int) -> Server | None:
    return await s.get(Server, server_id)


async def create(s: AsyncSession, owner_id: int, name: str, description: str | None, icon: str | None) -> Server:
    """A new server row (its id assigned); its roles and the owner's membership follow."""
    server = Server(name=name, description=description, icon=icon, owner_id=owner_id)
    s.add(server)
    await s.flush()
    return server


async def add_roles(s: AsyncSession, roles: Iterable[Role]) -> None:
    """A new server's default roles (models.permissions.default_roles)."""
    for role in roles:
        s.add(role)
    await s.flush()


async def update(s: AsyncSession, server: Server, changes: dict[str, Any]) -> Server:
    """Write `changes` (column name -> new value: name, description, icon) and a new
    updated_at, in one UPDATE."""
    return await rows.update(s, server, changes)


async def delete(s: AsyncSession, server_id: int) -> None:
    await s.exec(sa.delete(Server).where(col(Server.id) == server_id))
