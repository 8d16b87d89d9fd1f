"""Server roles: list, create, edit, delete, assign, unassign, under the hierarchy rules.

Every decision about who may do what is made by `models.permissions` (MANAGE_ROLES, the
caller's highest role, the bits the caller holds); this module only applies them in order:
the server (404/403), the ids in the path, scoped to that server (404), the shape of the
request (400), then the hierarchy (403).

Decisions:
- A new role's default position is 1 (just above @everyone); nothing is shifted, equal
  positions are allowed and ties are broken by id (lower id ranks higher in listings).
- Editing bits checks only the bits being added: nobody can add a bit they do not hold
  (ADMINISTRATOR and the owner hold every bit).
- @everyone (recognised by its flag) keeps its name and position 0, cannot be deleted,
  assigned or unassigned; its bits, colour and flags can be edited.
- The preset roles (Member, Moderator, Admin, Owner) cannot be deleted (400 `preset_role`):
  the member `role` field (member/moderator/admin/owner) is defined by them, and joining, re-roling
  and owner transfer set it through them. They can be renamed and edited like any role (subject
  to the hierarchy) and keep their meaning.
"""
from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from generated import rest
from models.storage import audit, members, roles
from models import caps, db, membership, views
from models.permissions import Access, Perm, access_for_member, parse_bits, server_access
from models.tables import Role, ServerMember
from core.errors import BadRequest, NotFound
from realtime import hooks


async def _role_in(s: AsyncSession, server_id: int, role_id: int) -> Role:
    """A role by id, scoped to the server in the path (another server's role is 404)."""
    role = await roles.get(s, role_id)
    if role is None or role.server_id != server_id:
        raise NotFound("Role not found", "role_not_found")
    return role


def _name(value: str) -> str:
    name = value.strip()
    if not name:
        raise BadRequest("name must not be blank", "invalid_name")
    return name


async def list_roles(user: int, serverId: int) -> tuple[list[rest.Role], int]:
    async with db.session() as s:
        await server_access(s, user, serverId)
        found = await roles.of_server(s, serverId)
    return [views.role_view(r) for r in found], 200


async def create_role(user: int, serverId: int, body: dict[str, Any]) -> tuple[rest.Role, int]:
    name = _name(body["name"])
    bits = parse_bits(body.get("permissions", 0))
    position = body.get("position")
    position = 1 if position is None else position
    async with db.session() as s:
        access = await server_access(s, user, serverId, Perm.MANAGE_ROLES)
        access.require_position(position)
        access.require_grantable(bits)
        await caps.require_role_room(s, serverId)
        role = await roles.insert(s, serverId, name=name, color=body.get("color") or "#99AAB5",
                                  permissions=bits, position=position,
                                  is_hoisted=bool(body.get("isHoisted", False)),
                                  is_mentionable=bool(body.get("isMentionable", False)))
        audit.record(s, user, "role.create", "role", role.id, server_id=serverId,
                     details={"name": role.name, "permissions": str(bits), "position": position})
        return views.role_view(role), 201


async def update_role(user: int, serverId: int, roleId: int, body: dict[str, Any] | None = None) -> tuple[rest.Role, int]:
    body = body or {}
    name = _name(body["name"]) if body.get("name") is not None else None
    bits = parse_bits(body["permissions"]) if body.get("permissions") is not None else None
    position = body.get("position")
    async with db.session() as s:
        access = await server_access(s, user, serverId, Perm.MANAGE_ROLES)
        role = await _role_in(s, serverId, roleId)
        if role.is_everyone:
            if position is not None and position != role.position:
                raise BadRequest("The @everyone role always has position 0", "everyone_role")
            if name is not None and name != role.name:
                raise BadRequest("The @everyone role cannot be renamed", "everyone_role")
        access.require_manage_role(role)
        changes: dict[str, Any] = {}
        if position is not None and position != role.position:
            access.require_position(position)
            changes["position"] = [role.position, position]
            role.position = position
        if bits is not None and bits != role.permissions:
            access.require_grantable(bits & ~role.permissions)
            changes["permissions"] = [str(role.permissions), str(bits)]
            role.permissions = bits
        if name is not None and name != role.name:
            changes["name"] = [role.name, name]
            role.name = name
        if body.get("color") is not None and body["color"] != role.color:
            changes["color"] = [role.color, body["color"]]
            role.color = body["color"]
        for key, attr in (("isHoisted", "is_hoisted"), ("isMentionable", "is_mentionable")):
            if body.get(key) is not None and bool(body[key]) != getattr(role, attr):
                changes[key] = [getattr(role, attr), bool(body[key])]
                setattr(role, attr, bool(body[key]))
        await roles.save(s, role)
        if changes:
            audit.record(s, user, "role.update", "role", role.id, server_id=serverId, details=changes)
        view = views.role_view(role)
    if "permissions" in changes:
        await hooks.permissions_changed(serverId)
    return view, 200


async def delete_role(user: int, serverId: int, roleId: int) -> tuple[None, int]:
    async with db.session() as s:
        access = await server_access(s, user, serverId, Perm.MANAGE_ROLES)
        role = await _role_in(s, serverId, roleId)
        if role.is_everyone:
            raise BadRequest("The @everyone role cannot be deleted", "everyone_role")
        access.require_manage_role(role)
        if role.preset is not None:
            raise BadRequest(f"The {role.name} role is one of the default member/moderator/admin/owner "
                             "roles and cannot be deleted; edit it instead", "preset_role")
        audit.record(s, user, "role.delete", "role", role.id, server_id=serverId,
                     details={"name": role.name})
        await roles.delete(s, roleId)
    await hooks.permissions_changed(serverId)
    return None, 204


async def _assignment(s: AsyncSession, user: int, serverId: int, memberId: int, roleId: int,
                      verb: str) -> tuple[Access, ServerMember, Role]:
    """The checks shared by assign and unassign, in order: server and MANAGE_ROLES, the member
    and the role in this server (404), @everyone (400), then the hierarchy (403)."""
    access = await server_access(s, user, serverId, Perm.MANAGE_ROLES)
    # Row-locked until commit: role changes on one member queue up (with the members area's
    # re-role, replace, kick and ban), so the coarse `role` is recomputed from what is committed.
    member = await membership.lock_member(s, serverId, memberId)
    role = await _role_in(s, serverId, roleId)
    if role.is_everyone:
        raise BadRequest(f"The @everyone role cannot be {verb}; every member has it", "everyone_role")
    access.require_manage_role(role)
    if member.id != access.member.id:
        access.require_outranks(await access_for_member(s, access, member))
    return access, member, role


async def assign_role(user: int, serverId: int, memberId: int, roleId: int,
                      body: dict[str, Any] | None = None) -> tuple[rest.MessageResponse, int]:
    async with db.session() as s:
        access, member, role = await _assignment(s, user, serverId, memberId, roleId, "assigned")
        assigned = await members.give_role(s, memberId, roleId)
        if assigned is None:  # the member or role went away meanwhile
            raise NotFound("Member or role not found", "not_found")
        if assigned:
            await membership.recompute_coarse_role(s, member, access.server.owner_id == member.user_id)
            audit.record(s, user, "role.assign", "member", member.id, server_id=serverId,
                         details={"roleId": role.id, "role": role.name, "userId": member.user_id})
    return {"message": "Роль успешно назначена."}, 201


async def unassign_role(user: int, serverId: int, memberId: int, roleId: int) -> tuple[None, int]:
    async with db.session() as s:
        access, member, role = await _assignment(s, user, serverId, memberId, roleId, "unassigned")
        unassigned = await members.drop_roles(s, memberId, [roleId])
        if unassigned:
            await membership.recompute_coarse_role(s, member, access.server.owner_id == member.user_id)
            audit.record(s, user, "role.unassign", "member", member.id, server_id=serverId,
                         details={"roleId": role.id, "role": role.name, "userId": member.user_id})
    if unassigned:
        await hooks.permissions_changed(serverId, member.user_id)
    return None, 204
