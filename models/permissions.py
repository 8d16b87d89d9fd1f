"""The permission engine: bits, default roles, effective permissions and hierarchy.

Every handler asks one question here ("may user U do P on server S / channel C?") and gets a
context back or a 404 (no such server or channel) / 403 (not a member, blocked, missing a bit).
Bits follow Discord's layout (CONTRACT-NOTES.md). The owner (`Server.owner_id`) and
ADMINISTRATOR holders have every bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import select

from models.tables import Channel, MemberRole, Role, Server, ServerMember, User
from projectvoice import auth
from projectvoice.errors import BadRequest, Forbidden, NotFound


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


def parse_bits(value) -> int:
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


@dataclass
class Access:
    """What one user may do in one server."""

    server: Server
    member: ServerMember
    user_id: int
    is_owner: bool
    permissions: int  # effective bits, before ADMINISTRATOR/owner expansion
    top_position: int  # highest role position (OWNER_POSITION for the owner)
    roles: list[Role] = field(default_factory=list)

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
    def can_manage_role(self, role: Role) -> bool:
        return self.is_owner or role.position < self.top_position

    def require_manage_role(self, role: Role) -> None:
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


async def _roles_of(s, server_id: int, member_id: int) -> list[Role]:
    mine = select(MemberRole.role_id).where(MemberRole.member_id == member_id)
    res = await s.exec(
        select(Role).where(Role.server_id == server_id, sa.or_(Role.is_everyone, Role.id.in_(mine)))
    )
    return list(res.all())


async def access_for_member(s, server: Server, member: ServerMember) -> Access:
    return _access(server, member, await _roles_of(s, server.id, member.id))


def _access(server: Server, member: ServerMember, roles: list[Role]) -> Access:
    return _combine(server, member, member.user_id, [(r.permissions, r.position, r.is_everyone) for r in roles], roles)


def _combine(server, member, user_id: int, roles: list[tuple[int, int, bool]], role_objects: list) -> Access:
    """Effective bits (OR of every role held, @everyone included) and the highest position."""
    bits = 0
    top = 0
    for permissions, position, is_everyone in roles:
        bits |= permissions
        if not is_everyone:
            top = max(top, position)
    is_owner = server.owner_id == user_id
    return Access(server=server, member=member, user_id=user_id, is_owner=is_owner, permissions=bits,
                  top_position=OWNER_POSITION if is_owner else top, roles=role_objects)


def _access_query(user_id: int):
    """Server, the caller's membership and the caller's roles (@everyone plus assigned), one
    row per role, in one statement: a permission check is one round trip however many
    members, channels or roles the server has."""
    assigned = select(MemberRole.role_id).where(MemberRole.member_id == ServerMember.id)
    return (select(Server, ServerMember, Role)
            .outerjoin(ServerMember, sa.and_(ServerMember.server_id == Server.id,
                                             ServerMember.user_id == user_id))
            .outerjoin(Role, sa.and_(Role.server_id == Server.id,
                                     sa.or_(Role.is_everyone, Role.id.in_(assigned)))))


def _require_member(is_member: bool, server, allow_blocked: bool = False) -> None:
    """403 for a caller who is not a member, then for a blocked server (the order clients see)."""
    if not is_member:
        raise Forbidden("You are not a member of this server", "not_a_member")
    if server.is_blocked and not allow_blocked:
        reason = f": {server.block_reason}" if server.block_reason else ""
        raise Forbidden(f"This server is blocked{reason}", "server_blocked")


def _access_from_rows(rows, need: int, allow_blocked: bool) -> Access:
    server, member = rows[0][0], rows[0][1]
    _require_member(member is not None, server, allow_blocked)
    access = _access(server, member, [row[2] for row in rows if row[2] is not None])
    if need:
        access.require(need)
    return access


async def server_access(s, user_id: int, server_id: int, need: int = 0, *,
                        allow_blocked: bool = False) -> Access:
    """404 when the server does not exist, 403 when the caller is not a member, the server is
    blocked, or a needed bit is missing."""
    rows = (await s.exec(_access_query(user_id).where(Server.id == server_id))).all()
    if not rows:
        raise NotFound("Server not found", "server_not_found")
    return _access_from_rows(rows, need, allow_blocked)


async def channel_access(s, user_id: int, channel_id: int, need: int = 0) -> tuple[Access, Channel]:
    """The channel and the caller's access to its server (one statement); VIEW_CHANNEL is
    always needed."""
    q = (_access_query(user_id).add_columns(Channel)
         .join(Channel, Channel.server_id == Server.id).where(Channel.id == channel_id))
    rows = (await s.exec(q)).all()
    if not rows:
        raise NotFound("Channel not found", "channel_not_found")
    return _access_from_rows(rows, Perm.VIEW_CHANNEL | need, False), rows[0][3]


# ---------------------------------------------------------------- the same checks for read paths
# Hand-written SQL on models/sql.py's connections (the bearer check's, a message page's, a server
# read's): one statement, rows as named tuples. `Access.server` is then that row (the server's
# columns), `Access.member` a row with id/user_id/server_id, and `Access.roles` is empty.

_SERVER_COLUMNS = ("s.id, s.name, s.description, s.icon, s.owner_id, s.is_blocked, s.block_reason, "
                   "s.created_at, s.updated_at")
_ROLE_JOINS = """
LEFT JOIN server_members m ON m.server_id = s.id AND m.user_id = %(user)s
LEFT JOIN roles r ON r.server_id = s.id
     AND (r.is_everyone OR r.id IN (SELECT mr.role_id FROM member_roles mr WHERE mr.member_id = m.id))"""
_ROLE_COLUMNS = "m.id AS member_id, r.permissions AS role_bits, r.position AS role_position, r.is_everyone AS is_everyone_role"

SERVER_ACCESS_SQL = f"SELECT {_SERVER_COLUMNS}, {_ROLE_COLUMNS} FROM servers s {_ROLE_JOINS} WHERE s.id = %(server)s"
_CHANNEL_COLUMNS = "c.id AS channel_id, c.type AS channel_type, c.message_count AS channel_message_count"
CHANNEL_ACCESS_SQL = (
    f"SELECT {_CHANNEL_COLUMNS}, {_SERVER_COLUMNS}, {_ROLE_COLUMNS} FROM channels c JOIN servers s ON s.id = c.server_id "
    f"{_ROLE_JOINS} WHERE c.id = %(channel)s")
# The same with the caller's account (projectvoice.auth.account_checked_in_query): the account
# row leads, so a gone account is no row at all and a missing server or channel is NULL columns.
# The token's session is joined in too (models/sessions.py): NULL session columns when it ended.
_ACCOUNT = ("a.is_active AS is_active, a.token_version AS token_version, sess.id AS session_id, "
            "sess.last_seen_at AS session_seen_at")
_FROM_ACCOUNT = "FROM users a LEFT JOIN auth_sessions sess ON sess.id = %(sid)s AND sess.user_id = a.id"
SERVER_ACCESS_WITH_ACCOUNT_SQL = (
    f"SELECT {_ACCOUNT}, {_SERVER_COLUMNS}, {_ROLE_COLUMNS} {_FROM_ACCOUNT} "
    f"LEFT JOIN servers s ON s.id = %(server)s {_ROLE_JOINS} WHERE a.id = %(user)s")
CHANNEL_ACCESS_WITH_ACCOUNT_SQL = (
    f"SELECT {_ACCOUNT}, {_CHANNEL_COLUMNS}, {_SERVER_COLUMNS}, {_ROLE_COLUMNS} {_FROM_ACCOUNT} "
    f"LEFT JOIN channels c ON c.id = %(channel)s LEFT JOIN servers s ON s.id = c.server_id {_ROLE_JOINS} "
    f"WHERE a.id = %(user)s")


@dataclass
class _MemberRow:
    id: int
    user_id: int
    server_id: int


def _access_from_sql_rows(rows: list, user_id: int, need: int) -> Access:
    first = rows[0]
    _require_member(first.member_id is not None, first)
    held = [(r.role_bits, r.role_position, r.is_everyone_role) for r in rows if r.role_bits is not None]
    access = _combine(first, _MemberRow(first.member_id, user_id, first.id), user_id, held, [])
    if need:
        access.require(need)
    return access


async def _read_access(conn, plain: str, with_account: str, user_id: int, **params) -> list:
    """The access statement's rows; with the caller's account when the bearer check left it to
    us (then the rows of a missing server or channel have id NULL)."""
    claims = auth.take_unchecked_account(user_id)
    if claims is None:
        return await conn.all(plain, user=user_id, **params)
    rows = await conn.all(with_account, user=user_id, sid=claims["sid"], **params)
    auth.check_account(rows[0] if rows else None, claims)
    return [] if rows[0].id is None else rows


# The servers a user sees in their list: those they belong to, blocked ones hidden.
MY_SERVERS_SQL = (f"SELECT {_SERVER_COLUMNS} FROM servers s JOIN server_members m ON m.server_id = s.id "
                  "WHERE m.user_id = %(user)s AND NOT s.is_blocked ORDER BY s.id")
# (Named: SQLite names the columns of a parenthesized join "id:1" and the like otherwise.)
_SERVER_COLUMNS_NAMED = ", ".join(f"{c} AS {c.split('.')[1]}" for c in _SERVER_COLUMNS.split(", "))
MY_SERVERS_WITH_ACCOUNT_SQL = (
    f"SELECT {_ACCOUNT}, {_SERVER_COLUMNS_NAMED} {_FROM_ACCOUNT} LEFT JOIN (server_members m JOIN servers s "
    "ON s.id = m.server_id AND NOT s.is_blocked) ON m.user_id = a.id WHERE a.id = %(user)s ORDER BY s.id")


async def read_my_servers(conn, user_id: int) -> list:
    """The rows (the server's columns) of the servers the user belongs to, blocked ones left out."""
    return await _read_access(conn, MY_SERVERS_SQL, MY_SERVERS_WITH_ACCOUNT_SQL, user_id)


async def read_server_access(conn, user_id: int, server_id: int, need: int = 0) -> Access:
    """server_access() for read paths, on a models.sql connection."""
    rows = await _read_access(conn, SERVER_ACCESS_SQL, SERVER_ACCESS_WITH_ACCOUNT_SQL, user_id, server=server_id)
    if not rows:
        raise NotFound("Server not found", "server_not_found")
    return _access_from_sql_rows(rows, user_id, need)


async def read_channel_access(conn, user_id: int, channel_id: int, need: int = 0):
    """channel_access() for read paths: (Access, row with channel_id, channel_type,
    channel_message_count and the server's columns)."""
    rows = await _read_access(conn, CHANNEL_ACCESS_SQL, CHANNEL_ACCESS_WITH_ACCOUNT_SQL, user_id, channel=channel_id)
    return channel_access_from_rows(rows, user_id, need)


def channel_access_from_rows(rows: list, user_id: int, need: int = 0):
    """read_channel_access() on rows a statement of the storage layer read (the same columns):
    404 without rows, else (Access, first row)."""
    if not rows:
        raise NotFound("Channel not found", "channel_not_found")
    return _access_from_sql_rows(rows, user_id, Perm.VIEW_CHANNEL | need), rows[0]


async def member_in_server(s, server_id: int, member_id: int) -> ServerMember:
    """A member row by id, scoped to the server in the path (another server's member is 404)."""
    member = await s.get(ServerMember, member_id)
    if member is None or member.server_id != server_id:
        raise NotFound("Member not found", "member_not_found")
    return member


def is_global_moderator(user: User) -> bool:
    return user.role in ("moderator", "admin")
