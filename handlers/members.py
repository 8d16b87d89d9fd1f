"""Server members: list, me, add, re-role, replace roles, kick/leave, ban, voice state, owner
transfer, bans list and unban. Every rule is asked of models.permissions and models.membership;
every statement is models.storage's."""
from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from generated import rest
from models.storage import accounts, audit, members, roles, sql
from models import db, membership, views
from models.permissions import Access, Perm, access_for_member, read_server_access, server_access
from models.tables import ServerMember, stored_id
from core.errors import BadRequest, Forbidden, NotFound
from models.auth import account_checked_in_query
from realtime import hooks
from realtime.presence import seen_for, statuses


async def _member_out(s: AsyncSession, member: views.Row, viewer: int) -> rest.Member:
    return views.member_view(member, await members.user_of(s, member), await members.assigned_roles(s, member.id),
                             await statuses(viewer, [member.user_id]))


@account_checked_in_query
async def list_members(user: int, serverId: int) -> tuple[list[rest.Member], int]:
    async with sql.connection() as conn:
        await read_server_access(conn, user, serverId)
        rows = (await members.member_rows(conn, [serverId]))[serverId]
    seen = await statuses(user, [m.user_id for m, _ in rows])
    return [views.member_row_view(m, mroles, seen) for m, mroles in rows], 200


async def get_my_membership(user: int, serverId: int) -> tuple[rest.MyMembership, int]:
    async with db.session() as s:
        access = await server_access(s, user, serverId)
        me = await accounts.get(s, user)
    ordered = sorted(access.roles, key=lambda r: (-r.position, r.id))
    own = [r for r in ordered if not r.is_everyone]
    seen = await statuses(user, [user])
    return views.my_membership_view(access.member, me, own, ordered, access.total, seen), 200


async def add_member(user: int, serverId: int, body: dict[str, Any]) -> tuple[rest.Member, int]:
    role = body.get("role") or "member"
    async with db.session() as s:
        access = await server_access(s, user, serverId, Perm.CREATE_INSTANT_INVITE)
        if role != "member":
            access.require(Perm.MANAGE_ROLES)
            access.require_manage_role((await membership.preset_roles(s, serverId))[role])
        if body["userId"] == user:
            raise BadRequest("User is already a member of this server", "already_member")
        # The two accounts, then the server (the order an account deletion takes them in).
        await membership.require_add_consent(s, user, body["userId"])
        # Shared with other adds and invite accepts, exclusive against a ban: the ban check
        # in add() sees any ban that committed first (membership.lock_server).
        if await membership.lock_server(s, serverId, exclusive=False) is None:
            raise NotFound("Server not found", "server_not_found")  # deleted meanwhile
        member = await membership.add(s, serverId, body["userId"], role=role)
        out = await _member_out(s, member, user)
    await hooks.member_joined(serverId, body["userId"])
    return out, 201


async def _target(s: AsyncSession, access: Access, serverId: int, memberId: int) -> tuple[ServerMember, Access]:
    """The member acted on, row-locked until commit (membership.lock_member), and its access
    computed after the lock against the server's owner as it is now: an owner transfer that
    committed while we waited is seen, so the new owner is never kicked, banned or re-roled and
    never leaves."""
    member = await membership.lock_member(s, serverId, memberId)
    return member, await access_for_member(s, access, member)


async def update_member_role(user: int, serverId: int, memberId: int, body: dict[str, Any]) -> tuple[rest.Member, int]:
    async with db.session() as s:
        access = await server_access(s, user, serverId, Perm.MANAGE_ROLES)
        member, target = await _target(s, access, serverId, memberId)
        access.require_outranks(target)
        presets = await membership.preset_roles(s, serverId)
        access.require_manage_role(presets[body["role"]])
        before = member.role
        await membership.set_coarse_role(s, member, body["role"])
        audit.record(s, user, "member.role", "member", member.id, server_id=serverId,
                     details={"userId": member.user_id, "from": before, "to": body["role"]})
        out = await _member_out(s, member, user)
    await hooks.permissions_changed(serverId, member.user_id)
    return out, 200


async def replace_member_roles(user: int, serverId: int, memberId: int, body: dict[str, Any]) -> tuple[rest.Member, int]:
    wanted = set(body["roleIds"])
    async with db.session() as s:
        access = await server_access(s, user, serverId, Perm.MANAGE_ROLES)
        member, target = await _target(s, access, serverId, memberId)
        if member.user_id != user:
            access.require_outranks(target)
        server_roles = await roles.by_id(s, serverId)
        unknown = [rid for rid in wanted if rid not in server_roles]
        if unknown:
            raise BadRequest(f"Unknown role ids in this server: {sorted(unknown)}", "unknown_role")
        if any(server_roles[rid].is_everyone for rid in wanted):
            raise BadRequest("@everyone is implicit and cannot be assigned", "everyone_role")
        current = {r.id for r in target.roles if not r.is_everyone}
        for rid in wanted ^ current:
            access.require_manage_role(server_roles[rid])
        await members.drop_roles(s, stored_id(member))
        await members.give_roles(s, stored_id(member), sorted(wanted))
        await membership.recompute_coarse_role(s, member, target.is_owner)
        audit.record(s, user, "member.roles", "member", member.id, server_id=serverId,
                     details={"userId": member.user_id, "roleIds": sorted(wanted)})
        out = await _member_out(s, member, user)
    await hooks.permissions_changed(serverId, member.user_id)
    return out, 200


async def remove_member(user: int, serverId: int, memberId: int) -> tuple[None, int]:
    """Kick (KICK_MEMBERS, hierarchy) or, on one's own membership, leave (even a blocked server)."""
    async with db.session() as s:
        access = await server_access(s, user, serverId, allow_blocked=True)
        member, target = await _target(s, access, serverId, memberId)
        if member.user_id == user:
            if target.is_owner:
                raise BadRequest("The owner cannot leave the server; transfer ownership first",
                                 "owner_cannot_leave")
        else:
            if access.server.is_blocked:
                raise Forbidden("This server is blocked", "server_blocked")
            access.require(Perm.KICK_MEMBERS)
            access.require_outranks(target)
            audit.record(s, user, "member.kick", "member", member.id, server_id=serverId,
                         details={"userId": member.user_id})
        target_user = member.user_id
        await members.delete(s, member)
    await hooks.member_removed(serverId, target_user)
    return None, 204


async def ban_member(user: int, serverId: int, memberId: int, body: dict[str, Any] | None = None) -> tuple[rest.Ban, int]:
    reason = ((body or {}).get("reason") or "").strip() or None
    async with db.session() as s:
        access = await server_access(s, user, serverId, Perm.BAN_MEMBERS)
        # The server first, exclusively (then the member, as a server deletion and an owner
        # transfer take them): a direct add or invite accept of this user either committed
        # before (its membership is the one deleted here) or waits and then sees the ban.
        if await membership.lock_server(s, serverId, exclusive=True) is None:
            raise NotFound("Server not found", "server_not_found")  # deleted meanwhile
        member, target = await _target(s, access, serverId, memberId)
        if member.user_id == user:
            raise BadRequest("You cannot ban yourself", "cannot_ban_self")
        access.require_outranks(target)
        target_user = member.user_id
        await members.delete(s, member)
        ban = await members.ban(s, serverId, target_user, reason, user)
        if ban is None:
            raise BadRequest("This user is already banned", "already_banned")
        audit.record(s, user, "member.ban", "user", target_user, server_id=serverId,
                     details={"reason": reason})
        out = views.ban_view(ban, await accounts.get(s, target_user))
    await hooks.member_removed(serverId, target_user)
    return out, 200


async def update_voice_state(user: int, serverId: int, memberId: int, body: dict[str, Any]) -> tuple[rest.Member, int]:
    async with db.session() as s:
        access = await server_access(s, user, serverId)
        if "isMuted" not in body and "isDeafened" not in body:
            raise BadRequest("Give isMuted, isDeafened or both", "validation_error")
        if "isMuted" in body:
            access.require(Perm.MUTE_MEMBERS)
        if "isDeafened" in body:
            access.require(Perm.DEAFEN_MEMBERS)
        member, target = await _target(s, access, serverId, memberId)
        access.require_outranks(target)
        await members.set_voice(s, member, body.get("isMuted"), body.get("isDeafened"))
        audit.record(s, user, "member.voice", "member", member.id, server_id=serverId,
                     details={k: body[k] for k in ("isMuted", "isDeafened") if k in body})
        out = await _member_out(s, member, user)
    await hooks.voice_state_changed(serverId, member.user_id, member.is_muted, member.is_deafened)
    return out, 200


async def transfer_ownership(user: int, serverId: int, body: dict[str, Any]) -> tuple[rest.ServerDetail, int]:
    new_owner = body["userId"]
    async with db.session() as s:
        access = await server_access(s, user, serverId)
        if not access.is_owner:
            raise Forbidden("Only the owner can transfer ownership", "not_owner")
        if new_owner == user:
            raise BadRequest("You already own this server", "already_owner")
        # The server row first (the order a ban and a server deletion lock in: no deadlock with
        # either), then the successor: a leave or kick of the successor either ends first (then
        # this is a 400) or waits and then finds them owner.
        if await membership.lock_server(s, serverId, exclusive=True) is None:
            raise NotFound("Server not found", "server_not_found")
        successor = await membership.lock_membership_of(s, serverId, new_owner)
        if successor is None:
            raise BadRequest("The new owner must be a member of the server", "not_a_member")
        # Of two transfers at once only one wins.
        if not await members.transfer_owner(s, serverId, user, new_owner):
            raise Forbidden("Only the owner can transfer ownership", "not_owner")
        await membership.set_coarse_role(s, successor, "owner")
        await membership.set_coarse_role(s, access.member, "admin")
        audit.record(s, user, "server.owner_transfer", "server", serverId, server_id=serverId,
                     details={"from": user, "to": new_owner})
        server = await members.server(s, serverId)
        (detail,) = await membership.server_details(await sql.of_session(s), [server], seen_for(user))
    return detail, 200


async def list_bans(user: int, serverId: int) -> tuple[list[rest.Ban], int]:
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.BAN_MEMBERS)
        found = await members.bans(s, serverId)
    return [views.ban_view(b, u) for b, u in found], 200


async def unban(user: int, serverId: int, userId: int) -> tuple[rest.MessageResponse, int]:
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.BAN_MEMBERS)
        if not await members.unban(s, serverId, userId):
            raise NotFound("This user is not banned from the server", "not_banned")
        audit.record(s, user, "member.unban", "user", userId, server_id=serverId)
    return {"message": "User unbanned"}, 200
