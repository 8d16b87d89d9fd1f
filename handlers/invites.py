"""Invites: create, preview (public), accept (atomic), list, delete."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, cast

from sqlmodel.ext.asyncio.session import AsyncSession

from generated import rest
from models.storage import invites, servers
from models.storage.invites import AlreadyMember
from models import db, membership, views
from models.permissions import Perm, server_access
from models.tables import Invite, utcnow
from core.errors import BadRequest, Forbidden, NotFound
from realtime import hooks


def parse_instant(value: str, field: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise BadRequest(f"{field} must be an ISO 8601 date-time", "validation_error")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


def _unusable_reason(invite: Invite) -> str | None:
    expires = _aware(invite.expires_at)
    if expires is not None and expires <= utcnow():
        return "This invite has expired"
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        return "This invite has reached its maximum number of uses"
    return None


async def _invite_by_token(s: AsyncSession, token: str) -> Invite:
    invite = await invites.by_token(s, token)
    if invite is None:
        raise NotFound("Invite not found", "invite_not_found")
    return invite


async def create_invite(user: int, serverId: int, body: dict[str, Any] | None = None) -> tuple[rest.InviteCreated, int]:
    body = body or {}
    expires_at = None
    if body.get("expiresAt"):
        expires_at = parse_instant(body["expiresAt"], "expiresAt")
        if expires_at <= utcnow():
            raise BadRequest("expiresAt must be in the future", "validation_error")
    max_uses = body.get("maxUses") or None  # 0 or null: unlimited
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.CREATE_INSTANT_INVITE)
        invite = await invites.create(s, serverId, user, max_uses, expires_at)
        return {"invite": views.invite_view(invite)}, 201


async def list_invites(user: int, serverId: int) -> tuple[list[rest.Invite], int]:
    async with db.session() as s:
        await server_access(s, user, serverId, Perm.CREATE_INSTANT_INVITE)
        return [views.invite_view(i) for i in await invites.list_for(s, serverId)], 200


async def get_invite(token: str) -> tuple[rest.InviteInfo, int]:
    """Public preview. Unknown token 404; expired or used up 400; blocked server 403."""
    async with db.session() as s:
        invite = await _invite_by_token(s, token)
        server = await servers.get(s, invite.server_id)
    if server is None:  # deleted with its invites since the read above
        raise NotFound("Invite not found", "invite_not_found")
    if server.is_blocked:
        raise Forbidden("The server of this invite is blocked", "server_blocked")
    reason = _unusable_reason(invite)
    if reason:
        raise BadRequest(reason, "invite_unusable")
    return views.invite_info_view(invite, server), 200


async def accept_invite(user: int, token: str, body: dict[str, Any] | None = None) -> tuple[rest.InviteAccepted, int]:
    """Exactly `maxUses` accepts succeed however many arrive at once: the use is taken by one
    conditional UPDATE, and the membership insert in the same transaction is guarded by the
    unique (server, user) constraint; a failed insert rolls the use back."""
    server_id = None
    try:
        async with db.session() as s:
            invite = await _invite_by_token(s, token)
            server_id = invite.server_id
            # Locked (shared) before the membership and ban reads: a ban being written either
            # committed first and is seen below, or waits for this accept (membership.lock_server).
            server = await membership.lock_server(s, server_id, exclusive=False)
            if server is None:  # deleted with its invites since the read above
                raise NotFound("Invite not found", "invite_not_found")
            if server.is_blocked:
                raise Forbidden("The server of this invite is blocked", "server_blocked")
            if await invites.is_member(s, server_id, user):
                raise AlreadyMember()
            if await membership.is_banned(s, server_id, user):
                raise Forbidden("You are banned from this server", "banned")
            assert invite.id is not None  # a stored row
            if not await invites.take_use(s, invite.id, utcnow()):
                raise BadRequest(_unusable_reason(invite) or "This invite can no longer be used",
                                 "invite_unusable")
            async with invites.joining():
                await membership.join(s, server_id, user)
    except AlreadyMember:
        # (server_id is set before AlreadyMember can be raised.)
        return {"message": "Already a member of this server", "serverId": cast(int, server_id)}, 200
    await hooks.member_joined(server_id, user)
    return {"message": "User added to server", "serverId": server_id}, 200


async def delete_invite(user: int, inviteId: int) -> tuple[None, int]:
    async with db.session() as s:
        invite = await invites.get(s, inviteId)
        if invite is None:
            raise NotFound("Invite not found", "invite_not_found")
        await server_access(s, user, invite.server_id, Perm.MANAGE_GUILD)
        await invites.delete(s, invite)
    return None, 204
