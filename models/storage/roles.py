"""Server roles: the statements behind the roles area, the preset roles the member `role` field
mirrors, and the per-server counts models.caps holds creates to. Session (`s`) first."""
from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import Channel, MemberRole, Role


async def of_server(s: AsyncSession, server_id: int) -> list[Role]:
    """Every role of the server, highest first (ties: lower id first)."""
    res = await s.exec(select(Role).where(Role.server_id == server_id).order_by(col(Role.position).desc(), col(Role.id)))
    return list(res.all())


async def by_id(s: AsyncSession, server_id: int) -> dict[int, Role]:
    # (A stored row always has its id: the test is for the type checker, the id column being Optional.)
    return {r.id: r for r in await of_server(s, server_id) if r.id is not None}


async def get(s: AsyncSession, role_id: int) -> Role | None:
    return await s.get(Role, role_id)


async def presets(s: AsyncSession, server_id: int) -> dict[str, Role]:
    """preset (member/moderator/admin/owner) -> the server's role of that preset."""
    res = await s.exec(select(Role).where(Role.server_id == server_id, col(Role.preset).is_not(None)))
    return {r.preset: r for r in res.all() if r.preset is not None}  # (all: the statement's condition)


async def insert(s: AsyncSession, server_id: int, *, name: str, color: str, permissions: int, position: int,
                 is_hoisted: bool, is_mentionable: bool) -> Role:
    role = Role(server_id=server_id, name=name, color=color, permissions=permissions, position=position,
                is_hoisted=is_hoisted, is_mentionable=is_mentionable, is_everyone=False, preset=None)
    s.add(role)
    await s.flush()
    return role


async def save(s: AsyncSession, role: Role) -> None:
    s.add(role)
    await s.flush()


async def delete(s: AsyncSession, role_id: int) -> None:
    """The role and every assignment of it."""
    await s.exec(sa.delete(MemberRole).where(col(MemberRole.role_id) == role_id))
    await s.exec(sa.delete(Role).where(col(Role.id) == role_id))


async def count(s: AsyncSession, server_id: int) -> int:
    return (await s.exec(select(sa.func.count()).select_from(Role).where(Role.server_id == server_id))).one()


async def count_channels(s: AsyncSession, server_id: int) -> int:
    """(Here beside count(): models.caps settles both caps the same way.)"""
    return (await s.exec(select(sa.func.count()).select_from(Channel).where(Channel.server_id == server_id))).one()
