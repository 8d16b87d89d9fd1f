"""The permission engine: bits, default roles, effective permissions and hierarchy.

Every handler asks one question here ("may user U do P on server S / channel C?") and gets a
context back or a 404 (no such server or channel) / 403 (not a member, blocked, missing a bit).
Bits follow Discord's layout (CONTRACT-NOTES.md). The owner (`Server.owner_id`) and
ADMINISTRATOR holders have every bit.

One check: models.storage.members' one statement (the server, the caller's membership and
roles; with the channel for a channel) on a read's connection (`read_*_access(conn, ...)`) or
inside a write's transaction (`server_access(s, ...)`, `channel_access(s, ...)`), and one
`Access` whichever made it.
"""
from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from models import auth
from models.storage import members, sql
from models.tables import Role, ServerMember, User, stored_id
from core.errors import BadRequest, Forbidden, NotFound


class Perm:
    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    PRIORITY_SPEAKER = 1 << 8
    STREAM = 1 << 9
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    VIEW_GUILD_INSIGHTS = 1 << 19
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    MUTE_MEMBERS = 1 << 22
    DEAFEN_MEMBERS = 1 << 23
    MOVE_MEMBERS = 1 << 24
    USE_VAD = 1 << 25
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    MANAGE_EMOJIS_AND_STICKERS = 1 << 30
    MODERATE_MEMBERS = 1 << 40


BIT_NAMES = {v: k for k, v in vars(Perm).items() if k.isupper()}
ALL_BITS = 0
for _bit in BIT_NAMES:
    ALL_BITS |= _bit
MAX_BITS = (1 << 63) - 1  # stored in a signed 64-bit column

EVERYONE_BITS = (Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES | Perm.READ_MESSAGE_HISTORY
                 | Perm.ADD_REACTIONS | Perm.CONNECT | Perm.SPEAK)
assert EVERYONE_BITS == 3214400

# (name, position, colour, bits, hoisted, preset); position 0 is @everyone.
DEFAULT_ROLES = [
    ("@everyone", 0, "#99AAB5", EVERYONE_BITS, False, None),
    ("Member", 1, "#57F287", EVERYONE_BITS | Perm.CHANGE_NICKNAME, False, "member"),
    ("Moderator", 2, "#5865F2", EVERYONE_BITS | Perm.MANAGE_CHANNELS | Perm.MANAGE_MESSAGES
     | Perm.KICK_MEMBERS | Perm.BAN_MEMBERS | Perm.MUTE_MEMBERS | Perm.DEAFEN_MEMBERS
     | Perm.MOVE_MEMBERS | Perm.CREATE_INSTANT_INVITE, True, "moderator"),
    ("Admin", 3, "#E67E22", Perm.ADMINISTRATOR | Perm.MANAGE_GUILD | Perm.MANAGE_CHANNELS
     | Perm.MANAGE_ROLES | Perm.VIEW_AUDIT_LOG, True, "admin"),
    ("Owner", 4, "#F1C40F", Perm.ADMINISTRATOR, True, "owner"),
]
PRESET_RANK = {"member": 1, "moderator": 2, "admin": 3, "owner": 4}
OWNER_POSITION = 1 << 30  # above any role


def default_roles(server_id: int) -> list[Role]:
    return [
        Role(server_id=server_id, name=name, position=pos, color=color, permissions=bits,
             is_hoisted=hoisted, is_mentionable=False, is_everyone=preset is None, preset=preset)
        for name, pos, color, bits, hoisted, preset in DEFAULT_ROLES
    ]


def parse_bits(value: object) -> int:
    """A permission bitfield from a number or a decimal string; 400 when it is not one."""
    if isinstance(value, bool):
        raise BadRequest("permissions must be a non-negative integer or decimal string", "invalid_permissions")
    if isinstance(value, str):
        # str.isdigit() also accepts non-ASCII digits ("²", "１"), which int() then rejects
        # or reads: only ASCII 0-9 are a decimal string here.
        if not (value.isascii() and value.isdigit()) or len(value) > 20:
            raise BadRequest("permissions must be a decimal string of digits", "invalid_permissions")
        value = int(value)
    if not isinstance(value, int) or value < 0 or value > MAX_BITS:
        raise BadRequest("permissions must be between 0 and 2^63-1", "invalid_permissions")
    if value & ~ALL_BITS:
        raise BadRequest("permissions contain unknown bits", "invalid_permissions")
    return value


def bit_names(bits: int) -> str:
    return ", ".join(name for bit, name in sorted(BIT_NAMES.items()) if bits & bit) or "none"


# The staff of the whole site (User.role), as opposed to a server's roles: they moderate every
# server's messages and use the admin area's moderation operations.
STAFF_ROLES = ("moderator", "admin")


def is_staff(role: str | None) -> bool:
    return role in STAFF_ROLES


def is_global_moderator(user: User) -> bool:
    return is_staff(user.role)


MemberRow = namedtuple("MemberRow", "id user_id server_id role is_muted is_deafened joined_at")
RoleRow = namedtuple("RoleRow", "id name color permissions position is_hoisted is_mentionable is_everyone server_id")
# What channel_access() gives with the Access (the read path gives the statement's row).
ChannelRef = namedtuple("ChannelRef", "id server_id type name message_count")


@dataclass
class Access:
    """What one user may do in one server.

    `server` has the server's columns, `member` is a MemberRow (the caller's membership) and
    `roles` the RoleRows the caller holds (@everyone included). server_access() hands over the
    server as its session's Server (the same columns, updatable in that session)."""

    server: Any
    member: MemberRow
    user_id: int
    is_owner: bool
    permissions: int  # effective bits, before ADMINISTRATOR/owner expansion
    top_position: int  # highest role position (OWNER_POSITION for the owner)
    roles: list[RoleRow] = field(default_factory=list)

    @property
    def is_admin(self) -> bool:
        return self.is_owner or bool(self.permissions & Perm.ADMINISTRATOR)

    @property
    def total(self) -> int:
        return ALL_BITS if self.is_admin else self.permissions

    def has(self, bits: int) -> bool:
        return self.is_admin or (self.permissions & bits) == bits

    def require(self, bits: int) -> None:
        if not self.has(bits):
            raise Forbidden(f"Missing permission: {bit_names(bits & ~self.total)}", "missing_permission")

    # Hierarchy --------------------------------------------------------------------------
    def can_manage_role(self, role: Role | RoleRow) -> bool:
        return self.is_owner or role.position < self.top_position

    def require_manage_role(self, role: Role | RoleRow) -> None:
        if not self.can_manage_role(role):
            raise Forbidden("You cannot manage a role at or above your highest role", "role_hierarchy")

    def require_position(self, position: int) -> None:
        if not self.is_owner and position >= self.top_position:
            raise Forbidden("You cannot move a role to or above your highest role", "role_hierarchy")

    def require_grantable(self, bits: int) -> None:
        if self.is_admin:
            return
        missing = bits & ~self.permissions
        if missing:
            raise Forbidden(f"You cannot grant permissions you do not have: {bit_names(missing)}",
                            "permission_escalation")

    def require_outranks(self, target: Access) -> None:
        if target.is_owner or (not self.is_owner and target.top_position >= self.top_position):
            raise Forbidden("You cannot act on a member whose highest role is at or above yours",
                            "member_hierarchy")


def _roles(rows: list[sql.Row]) -> list[RoleRow]:
    """The RoleRows in rows of the permission statement (a member with no role row: none)."""
    return [RoleRow(r.role_id, r.role_name, r.role_color, r.role_bits, r.role_position, r.is_role_hoisted,
                    r.is_role_mentionable, r.is_everyone_role, r.id) for r in rows if r.role_id is not None]


def _access(server: Any, member: MemberRow, owner_id: int, roles: list[RoleRow]) -> Access:
    """Effective bits (OR of every role held, @everyone included) and the highest position."""
    bits = 0
    top = 0
    for role in roles:
        bits |= role.permissions
        if not role.is_everyone:
            top = max(top, role.position)
    is_owner = owner_id == member.user_id
    return Access(server=server, member=member, user_id=member.user_id, is_owner=is_owner, permissions=bits,
                  top_position=OWNER_POSITION if is_owner else top, roles=roles)


def _require_member(is_member: bool, server: Any, allow_blocked: bool = False) -> None:
    """403 for a caller who is not a member, then for a blocked server (the order clients see)."""
    if not is_member:
        raise Forbidden("You are not a member of this server", "not_a_member")
    if server.is_blocked and not allow_blocked:
        reason = f": {server.block_reason}" if server.block_reason else ""
        raise Forbidden(f"This server is blocked{reason}", "server_blocked")


def _check(rows: list[sql.Row], user_id: int, need: int, allow_blocked: bool) -> Access:
    """The check itself, on the permission statement's rows of one existing server."""
    first = rows[0]
    _require_member(first.member_id is not None, first, allow_blocked)
    member = MemberRow(first.member_id, user_id, first.id, first.member_role, first.is_member_muted,
                       first.is_member_deafened, first.member_joined_at)
    access = _access(first, member, first.owner_id, _roles(rows))
    if need:
        access.require(need)
    return access


async def _rows(conn: sql.Connection, read: Callable[..., Awaitable[list[sql.Row]]], user_id: int,
                *target: int) -> list[sql.Row]:
    """The statement's rows; with the caller's account when the bearer check left it to us
    (models.auth.account_checked_in_query: then a missing server or channel is id NULL)."""
    claims = auth.take_unchecked_account(user_id)
    if claims is None:
        return await read(conn, user_id, *target)
    rows = await read(conn, user_id, *target, sid=claims["sid"])
    auth.check_account(rows[0] if rows else None, claims)
    return [] if rows[0].id is None else rows


async def read_server_access(conn: sql.Connection, user_id: int, server_id: int, need: int = 0, *,
                             allow_blocked: bool = False) -> Access:
    """404 when the server does not exist, 403 when the caller is not a member, the server is
    blocked, or a needed bit is missing. `conn`: a models.storage.sql connection."""
    rows = await _rows(conn, members.server_access_rows, user_id, server_id)
    if not rows:
        raise NotFound("Server not found", "server_not_found")
    return _check(rows, user_id, need, allow_blocked)


async def read_channel_access(conn: sql.Connection, user_id: int, channel_id: int,
                              need: int = 0) -> tuple[Access, sql.Row]:
    """The caller's access to the channel's server, VIEW_CHANNEL always needed, and the
    statement's row (channel_id, channel_type, channel_name, channel_message_count and the
    server's columns)."""
    return channel_access_from_rows(await _rows(conn, members.channel_access_rows, user_id, channel_id),
                                    user_id, need)


def channel_access_from_rows(rows: list[sql.Row], user_id: int, need: int = 0) -> tuple[Access, sql.Row]:
    """read_channel_access() on rows with the permission statement's columns that a storage
    function read (models/storage/voice.py join_rights): 404 without rows, else (Access, first row)."""
    if not rows:
        raise NotFound("Channel not found", "channel_not_found")
    return _check(rows, user_id, Perm.VIEW_CHANNEL | need, False), rows[0]


async def read_my_servers(conn: sql.Connection, user_id: int) -> list[sql.Row]:
    """The rows (the server's columns) of the servers the user belongs to, blocked ones left out."""
    return await _rows(conn, members.my_servers_rows, user_id)


async def server_access(s: AsyncSession, user_id: int, server_id: int, need: int = 0, *,
                        allow_blocked: bool = False) -> Access:
    """read_server_access() inside the session's transaction (the same statement)."""
    access = await read_server_access(await sql.of_session(s), user_id, server_id, need,
                                      allow_blocked=allow_blocked)
    access.server = members.adopt_server(s, access.server)
    return access


async def channel_access(s: AsyncSession, user_id: int, channel_id: int, need: int = 0) -> tuple[Access, ChannelRef]:
    """read_channel_access() inside the session's transaction; the channel as a ChannelRef."""
    access, row = await read_channel_access(await sql.of_session(s), user_id, channel_id, need)
    return access, ChannelRef(row.channel_id, row.id, row.channel_type, row.channel_name, row.channel_message_count)


async def access_for_member(s: AsyncSession, access: Access, member: ServerMember) -> Access:
    """Another member's access in the caller's server, against the server's owner as it is now
    (read after the caller locked the member: an owner transfer that committed meanwhile is
    seen). 404 when the server went away meanwhile."""
    rows = await members.held_roles(await sql.of_session(s), access.server.id, stored_id(member))
    if not rows:
        raise NotFound("Server not found", "server_not_found")
    target = MemberRow(member.id, member.user_id, member.server_id, member.role, member.is_muted,
                       member.is_deafened, member.joined_at)
    return _access(access.server, target, rows[0].owner_id, _roles(rows))


async def member_in_server(s: AsyncSession, server_id: int, member_id: int) -> ServerMember:
    """A member row by id, scoped to the server in the path (another server's member is 404)."""
    member = await members.get(s, member_id)
    if member is None or member.server_id != server_id:
        raise NotFound("Member not found", "member_not_found")
    return member
