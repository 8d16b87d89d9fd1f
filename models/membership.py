"""Joining servers and the coarse member role (member/moderator/admin/owner).

The seed's member `role` field mirrors the default Member/Moderator/Admin/Owner roles (their
`preset`): setting one replaces the member's preset role, and replacing a member's roles
recomputes the field from the highest preset role they hold. Loading server details costs a
fixed number of queries whatever the number of members, channels or roles.
"""
from __future__ import annotations

from collections import defaultdict, namedtuple

import sqlalchemy as sa
from sqlmodel import select

from models.storage import sql
from models import views
from models.permissions import PRESET_RANK
from models.tables import Ban, Friendship, MemberRole, Role, Server, ServerMember, User, UserBlock
from core.errors import Forbidden, NotFound


async def preset_roles(s, server_id: int) -> dict[str, Role]:
    res = await s.exec(select(Role).where(Role.server_id == server_id, Role.preset.is_not(None)))
    return {r.preset: r for r in res.all()}


async def owned_server_ids(s, user_id: int) -> list[int]:
    """The servers the user owns (they go with the account when it is deleted)."""
    res = await s.exec(select(Server.id).where(Server.owner_id == user_id).order_by(Server.id))
    return list(res.all())


async def is_banned(s, server_id: int, user_id: int) -> bool:
    res = await s.exec(select(Ban.id).where(Ban.server_id == server_id, Ban.user_id == user_id))
    return res.first() is not None


async def _lock_one(s, *where) -> ServerMember | None:
    res = await s.exec(select(ServerMember).where(*where).with_for_update()
                       .execution_options(populate_existing=True))
    return res.first()


async def lock_member(s, server_id: int, member_id: int) -> ServerMember:
    """A member row by id, scoped to the server in the path (else 404, like
    permissions.member_in_server), locked until the transaction ends (SELECT ... FOR UPDATE on
    PostgreSQL; SQLite runs one writer at a time anyway). Concurrent kicks, bans, role and voice
    changes and owner transfers on one member queue up, and those after a removal answer 404
    instead of writing to a row that is gone. The row is re-read even when the session holds it."""
    member = await _lock_one(s, ServerMember.id == member_id, ServerMember.server_id == server_id)
    if member is None:
        raise NotFound("Member not found", "member_not_found")
    return member


async def lock_membership_of(s, server_id: int, user_id: int) -> ServerMember | None:
    """The user's membership of the server, locked as lock_member does; None if not a member."""
    return await _lock_one(s, ServerMember.server_id == server_id, ServerMember.user_id == user_id)


async def lock_server(s, server_id: int, *, exclusive: bool) -> Server | None:
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
    q = select(Server).where(Server.id == server_id).execution_options(populate_existing=True)
    q = q.with_for_update(key_share=True) if exclusive else q.with_for_update(read=True)
    return (await s.exec(q)).first()


async def require_add_consent(s, adder_id: int, target_id: int) -> None:
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
    q = (select(User).where(User.id.in_([adder_id, target_id])).order_by(User.id)
         .with_for_update(read=True).execution_options(populate_existing=True))
    target = {u.id: u for u in (await s.exec(q)).all()}.get(target_id)
    if target is None:
        raise NotFound("User not found", "user_not_found")
    if not target.is_active:
        raise Forbidden("This account is deactivated and cannot be added to a server", "user_inactive")
    blocks = await s.exec(select(UserBlock.id).where(sa.or_(
        sa.and_(UserBlock.blocker_id == target_id, UserBlock.blocked_id == adder_id),
        sa.and_(UserBlock.blocker_id == adder_id, UserBlock.blocked_id == target_id))))
    if blocks.first() is not None:
        raise Forbidden("This user is blocked; they can only join with an invite", "user_blocked")
    low, high = min(adder_id, target_id), max(adder_id, target_id)
    friends = await s.exec(select(Friendship.id).where(Friendship.pair_low == low, Friendship.pair_high == high,
                                                       Friendship.status == "accepted"))
    if friends.first() is None:
        raise Forbidden("You can add only your friends directly; send anyone else an invite", "not_friends")


async def join(s, server_id: int, user_id: int, role: str = "member") -> ServerMember:
    """Insert a membership with its preset role. A duplicate raises IntegrityError (the unique
    (server_id, user_id) constraint), which the caller turns into its own answer. A caller
    adding someone else's account holds lock_server (shared) first, so the ban check here
    cannot miss a ban being written."""
    if await is_banned(s, server_id, user_id):
        raise Forbidden("This user is banned from the server", "banned")
    member = ServerMember(server_id=server_id, user_id=user_id, role=role)
    s.add(member)
    await s.flush()
    presets = await preset_roles(s, server_id)
    if role in presets:
        s.add(MemberRole(member_id=member.id, role_id=presets[role].id))
        await s.flush()
    return member


async def set_coarse_role(s, member: ServerMember, role: str) -> None:
    """Make `role` the member's only preset role; other (custom) roles are kept."""
    presets = await preset_roles(s, member.server_id)
    preset_ids = [r.id for r in presets.values()]
    if preset_ids:
        await s.exec(sa.delete(MemberRole).where(MemberRole.member_id == member.id,
                                                 MemberRole.role_id.in_(preset_ids)))
    if role in presets:
        s.add(MemberRole(member_id=member.id, role_id=presets[role].id))
    member.role = role
    s.add(member)
    await s.flush()


async def recompute_coarse_role(s, member: ServerMember, is_owner: bool) -> None:
    """After roles were replaced: the field follows the highest preset role held."""
    if is_owner:
        member.role = "owner"
    else:
        res = await s.exec(select(Role.preset).join(MemberRole, MemberRole.role_id == Role.id)
                           .where(MemberRole.member_id == member.id, Role.preset.is_not(None)))
        held = [p for p in res.all() if p != "owner"]
        member.role = max(held, key=lambda p: PRESET_RANK[p]) if held else "member"
    s.add(member)
    await s.flush()


async def roles_of_member(s, member_id: int) -> list[Role]:
    """The member's assigned roles (never @everyone), highest first."""
    res = await s.exec(select(Role).join(MemberRole, MemberRole.role_id == Role.id)
                       .where(MemberRole.member_id == member_id).order_by(Role.position.desc(), Role.id))
    return list(res.all())


# The read side, in hand-written SQL on a models.storage.sql connection (sql.connection() for a read,
# sql.of_session(s) inside a write's transaction): a fixed number of statements whatever the
# number of servers, members, channels or roles.

RoleRef = namedtuple("RoleRef", "id name color permissions position")


async def member_rows(conn, server_ids: list[int]) -> dict[int, list[tuple]]:
    """server id -> [(member row, roles)] in join order, in one statement whatever the number of
    members and roles. A member row has the member's columns and its user's public ones
    (username, profile_picture, tag, status); roles are RoleRefs, highest first."""
    out: dict[int, list[tuple]] = defaultdict(list)
    if not server_ids:
        return out
    ids, params = sql.in_list("s", server_ids)
    last = None
    for m in await conn.all(
            "SELECT m.id, m.user_id, m.server_id, m.role, m.is_muted, m.is_deafened, m.joined_at, "
            "u.username, u.profile_picture, u.tag, u.status, r.id AS role_id, r.name AS role_name, "
            "r.color AS role_color, r.permissions AS role_permissions, r.position AS role_position "
            "FROM server_members m JOIN users u ON u.id = m.user_id "
            "LEFT JOIN member_roles mr ON mr.member_id = m.id LEFT JOIN roles r ON r.id = mr.role_id "
            f"WHERE m.server_id IN ({ids}) ORDER BY m.server_id, m.id, r.position DESC, r.id", **params):
        if last is None or last[0].id != m.id:
            last = (m, [])
            out[m.server_id].append(last)
        if m.role_id is not None:
            last[1].append(RoleRef(m.role_id, m.role_name, m.role_color, m.role_permissions, m.role_position))
    return out


async def server_details(conn, servers: list, seen_for=None) -> list[dict]:
    """Full server objects (channels, members, roles) in three statements, whatever their size.
    `servers` are anything with the server's attributes (rows or Server objects). `seen_for`:
    an async uids -> {uid: status} the members' presence comes from (one call; offline without)."""
    server_ids = [sv.id for sv in servers]
    if not server_ids:
        return []
    ids, params = sql.in_list("s", server_ids)
    channels: dict[int, list] = defaultdict(list)
    for c in await conn.all(
            "SELECT id, name, type, server_id, description, position, created_at, updated_at FROM channels "
            f"WHERE server_id IN ({ids}) ORDER BY server_id, position, id", **params):
        channels[c.server_id].append(c)
    roles: dict[int, list] = defaultdict(list)
    for r in await conn.all(
            "SELECT id, name, color, permissions, position, is_hoisted, is_mentionable, is_everyone, server_id "
            f"FROM roles WHERE server_id IN ({ids}) ORDER BY server_id, position DESC, id", **params):
        roles[r.server_id].append(r)
    members = await member_rows(conn, server_ids)
    seen = None
    if seen_for is not None:
        seen = await seen_for({m.user_id for rows in members.values() for m, _ in rows})
    return [views.server_detail_view(sv, channels[sv.id], members[sv.id], roles[sv.id], seen) for sv in servers]
