"""Joining servers and the coarse member role (member/moderator/admin/owner).

The seed's member `role` field mirrors the default Member/Moderator/Admin/Owner roles (their
`preset`): setting one replaces the member's preset role, and replacing a member's roles
recomputes the field from the highest preset role they hold. Loading server details costs a
fixed number of queries whatever the number of members, channels or roles. The statements are
models.storage.members' and models.storage.roles'; the rules (who may be added, in which order
rows are locked) are here.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from generated import rest
from models import views
from models.permissions import PRESET_RANK
from models.storage import accounts, members, roles, sql
from models.storage.rows import Returned
from models.tables import Role, Server, ServerMember, stored_id
from core.errors import BadRequest, Forbidden, NotFound

# uids -> {uid: status}: where server_details' presence comes from (realtime.presence).
SeenFor = Callable[[set[int]], Awaitable[Mapping[int, str]]]

async def preset_roles(s: AsyncSession, server_id: int) -> dict[str, Role]:
    return await roles.presets(s, server_id)


async def owned_server_ids(s: AsyncSession, user_id: int) -> list[int]:
    """The servers the user owns (they go with the account when it is deleted)."""
    return await members.owned_server_ids(s, user_id)


async def is_banned(s: AsyncSession, server_id: int, user_id: int) -> bool:
    return await members.is_banned(s, server_id, user_id)


async def lock_member(s: AsyncSession, server_id: int, member_id: int) -> ServerMember:
    """A member row by id, scoped to the server in the path (else 404, like
    permissions.member_in_server), locked until the transaction ends (a row lock, FOR UPDATE, on
    PostgreSQL; SQLite runs one writer at a time anyway). Concurrent kicks, bans, role and voice
    changes and owner transfers on one member queue up, and those after a removal answer 404
    instead of writing to a row that is gone. The row is re-read even when the session holds it."""
    member = await members.lock(s, server_id, member_id)
    if member is None:
        raise NotFound("Member not found", "member_not_found")
    return member


async def lock_membership_of(s: AsyncSession, server_id: int, user_id: int) -> ServerMember | None:
    """The user's membership of the server, locked as lock_member does; None if not a member."""
    return await members.lock_of_user(s, server_id, user_id)


async def lock_server(s: AsyncSession, server_id: int, *, exclusive: bool) -> Server | None:
    """The server row, locked until the transaction ends; None if there is no such server.

    The one lock that orders who may be a member against who is banned, and the per-server caps:
    - a ban takes it exclusively (FOR NO KEY UPDATE) before locking the member, deleting the
      membership and writing the ban (server, then member: the order of a server deletion's
      cascade, and of an owner transfer, which takes it too);
    - a direct add and an invite accept take it shared (FOR SHARE: they do not wait for each
      other, their own races are settled by the unique membership and the invite's conditional
      update) before they read the ban list, so a ban that committed while they waited is seen
      (READ COMMITTED: each statement reads what has committed when it starts) and a ban that
      starts after them waits until their membership is committed, then removes it;
    - creating a channel or a role takes it exclusively before counting them.
    FOR NO KEY UPDATE, not FOR UPDATE: rows inserted meanwhile that point at the server (members,
    channels, messages' channels, roles, invites) take FOR KEY SHARE, which it does not block.
    SQLite runs one writer at a time (models/db.py), so the lock is implied there."""
    return await members.lock_server(s, server_id, exclusive=exclusive)


async def require_add_consent(s: AsyncSession, adder_id: int, target_id: int) -> None:
    """May `adder_id` put `target_id` into a server without an invite? Only a friend who has
    not blocked them, with an active account: nobody is pulled into a server by a stranger (the
    site's staff included), which is what a Discord user expects; everyone else gets an invite
    and decides. 404 no such user; 403 `user_inactive`, `user_blocked` (a block either way),
    `not_friends`.

    Both accounts are row-locked (FOR SHARE) before the answer is read, so a block (friends.py
    locks the pair) or an account block committing at the same moment is either seen here or
    waits until this transaction ends. (Unfriending takes no such lock: one that commits just
    after the friendship was read here is simply later than this add.)"""
    # A locked row comes back as it is once the lock is granted (PostgreSQL re-reads it), so
    # is_active is current; the block and friendship reads below are new statements.
    target = (await accounts.lock_pair(s, adder_id, target_id)).get(target_id)
    if target is None:
        raise NotFound("User not found", "user_not_found")
    if not target.is_active:
        raise Forbidden("This account is deactivated and cannot be added to a server", "user_inactive")
    if await accounts.blocked_either_way(s, adder_id, target_id):
        raise Forbidden("This user is blocked; they can only join with an invite", "user_blocked")
    if not await accounts.are_friends(s, adder_id, target_id):
        raise Forbidden("You can add only your friends directly; send anyone else an invite", "not_friends")


async def join(s: AsyncSession, server_id: int, user_id: int, role: str = "member") -> ServerMember:
    """Insert a membership with its preset role. A duplicate fails the statement (the unique
    (server_id, user_id)) and the transaction; add() answers None instead. A caller adding
    someone else's account holds lock_server (shared) first, so the ban check here cannot miss
    a ban being written."""
    if await members.is_banned(s, server_id, user_id):
        raise Forbidden("This user is banned from the server", "banned")
    preset = (await roles.presets(s, server_id)).get(role)
    return await members.insert(s, server_id, user_id, role, preset.id if preset else None)


async def add(s: AsyncSession, server_id: int, user_id: int, role: str = "member") -> Returned:
    """join(), with 400 `already_member` for a member (the transaction is not spoiled)."""
    if await members.is_banned(s, server_id, user_id):
        raise Forbidden("This user is banned from the server", "banned")
    preset = (await roles.presets(s, server_id)).get(role)
    member = await members.insert_new(s, server_id, user_id, role, preset.id if preset else None)
    if member is None:
        raise BadRequest("User is already a member of this server", "already_member")
    return member


async def set_coarse_role(s: AsyncSession, member: views.Row, role: str) -> None:
    """Make `role` the member's only preset role; other (custom) roles are kept. `member`: the
    member's row or object (a copy the session holds follows)."""
    presets = await roles.presets(s, member.server_id)
    # (Stored rows: every id is set; the test is for the type checker, the id column being Optional.)
    preset_ids = {preset: r.id for preset, r in presets.items() if r.id is not None}
    await members.drop_roles(s, member.id, list(preset_ids.values()))
    if role in preset_ids:
        await members.give_roles(s, member.id, [preset_ids[role]])
    await members.set_role(s, member.id, role)


async def recompute_coarse_role(s: AsyncSession, member: ServerMember, is_owner: bool) -> None:
    """After roles were replaced: the field follows the highest preset role held."""
    if is_owner:
        role = "owner"
    else:
        held = [p for p in await members.held_presets(s, stored_id(member)) if p != "owner"]
        role = max(held, key=lambda p: PRESET_RANK[p]) if held else "member"
    await members.set_role(s, stored_id(member), role)


async def roles_of_member(s: AsyncSession, member_id: int) -> list[Role]:
    """The member's assigned roles (never @everyone), highest first."""
    return await members.assigned_roles(s, member_id)


async def server_details(conn: sql.Connection, servers: Sequence[views.Row],
                         seen_for: SeenFor | None = None) -> list[rest.ServerDetail]:
    """Full server objects (channels, members, roles) in three statements, whatever their size.
    `servers` are anything with the server's attributes (rows or Server objects). `seen_for`:
    an async uids -> {uid: status} the members' presence comes from (one call; offline without).
    `conn`: a models.storage.sql connection (sql.of_session(s) inside a write)."""
    server_ids = [sv.id for sv in servers]
    if not server_ids:
        return []
    channels = await members.channel_rows(conn, server_ids)
    server_roles = await members.role_rows(conn, server_ids)
    rows = await members.member_rows(conn, server_ids)
    seen = None
    if seen_for is not None:
        seen = await seen_for({m.user_id for found in rows.values() for m, _ in found})
    return [views.server_detail_view(sv, channels[sv.id], rows[sv.id], server_roles[sv.id], seen) for sv in servers]
