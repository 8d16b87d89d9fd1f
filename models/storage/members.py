"""Server members, their roles and bans, the server row's lock, and the permission check's
statement (models.permissions decides from its rows).

Functions take the SQLModel session (`s`) or a models.storage.sql connection (`conn`, for the
hand-written statements) first. Rows of the permission statement are named tuples; members and
bans acted on inside a write come back as ORM objects of the caller's session.
"""
from __future__ import annotations

from collections import defaultdict, namedtuple
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.storage import dialect, rows, sql
from models.tables import Ban, MemberRole, Role, Server, ServerMember, User, utcnow

# ---------------------------------------------------------------- the permission check's statement
# One statement: the server, the caller's membership and the caller's roles (@everyone plus
# assigned), one row per role, so a check is one round trip however many members, channels or
# roles the server has. Every column a caller of models.permissions reads is here, so an Access
# is the same whether a read (models.storage.sql.connection()) or a write (sql.of_session(s)) made it.

_SERVER_COLUMNS = ("s.id, s.name, s.description, s.icon, s.owner_id, s.is_blocked, s.block_reason, "
                   "s.created_at, s.updated_at")
ROLE_JOINS = """
LEFT JOIN server_members m ON m.server_id = s.id AND m.user_id = %(user)s
LEFT JOIN roles r ON r.server_id = s.id
     AND (r.is_everyone OR r.id IN (SELECT mr.role_id FROM member_roles mr WHERE mr.member_id = m.id))"""
_MEMBER_COLUMNS = ("m.id AS member_id, m.role AS member_role, m.is_muted AS is_member_muted, "
                   "m.is_deafened AS is_member_deafened, m.joined_at AS member_joined_at")
# (Booleans named is_*, timestamps *_at: models/storage/sql.py converts them on SQLite.)
_ROLE_COLUMNS = ("r.id AS role_id, r.name AS role_name, r.color AS role_color, r.permissions AS role_bits, "
                 "r.position AS role_position, r.is_hoisted AS is_role_hoisted, "
                 "r.is_mentionable AS is_role_mentionable, r.is_everyone AS is_everyone_role")
ACCESS_COLUMNS = f"{_SERVER_COLUMNS}, {_MEMBER_COLUMNS}, {_ROLE_COLUMNS}"

SERVER_ACCESS_SQL = f"SELECT {ACCESS_COLUMNS} FROM servers s {ROLE_JOINS} WHERE s.id = %(server)s"
CHANNEL_COLUMNS = ("c.id AS channel_id, c.type AS channel_type, c.message_count AS channel_message_count, "
                    "c.name AS channel_name")
CHANNEL_ACCESS_SQL = (
    f"SELECT {CHANNEL_COLUMNS}, {ACCESS_COLUMNS} FROM channels c JOIN servers s ON s.id = c.server_id "
    f"{ROLE_JOINS} WHERE c.id = %(channel)s")
# The same with the caller's account (models.auth.account_checked_in_query): the account row
# leads, so a gone account is no row at all and a missing server or channel is NULL columns.
# The token's session is joined in too (models/storage/sessions.py): NULL session columns when it ended.
ACCOUNT_COLUMNS = ("a.is_active AS is_active, a.token_version AS token_version, sess.id AS session_id, "
            "sess.last_seen_at AS session_seen_at")
FROM_ACCOUNT = "FROM users a LEFT JOIN auth_sessions sess ON sess.id = %(sid)s AND sess.user_id = a.id"
SERVER_ACCESS_WITH_ACCOUNT_SQL = (
    f"SELECT {ACCOUNT_COLUMNS}, {ACCESS_COLUMNS} {FROM_ACCOUNT} "
    f"LEFT JOIN servers s ON s.id = %(server)s {ROLE_JOINS} WHERE a.id = %(user)s")
CHANNEL_ACCESS_WITH_ACCOUNT_SQL = (
    f"SELECT {ACCOUNT_COLUMNS}, {CHANNEL_COLUMNS}, {ACCESS_COLUMNS} {FROM_ACCOUNT} "
    f"LEFT JOIN channels c ON c.id = %(channel)s LEFT JOIN servers s ON s.id = c.server_id {ROLE_JOINS} "
    f"WHERE a.id = %(user)s")

# The servers a user sees in their list: those they belong to, blocked ones hidden.
MY_SERVERS_SQL = (f"SELECT {_SERVER_COLUMNS} FROM servers s JOIN server_members m ON m.server_id = s.id "
                  "WHERE m.user_id = %(user)s AND NOT s.is_blocked ORDER BY s.id")
# (Named: SQLite names the columns of a parenthesized join "id:1" and the like otherwise.)
_SERVER_COLUMNS_NAMED = ", ".join(f"{c} AS {c.split('.')[1]}" for c in _SERVER_COLUMNS.split(", "))
MY_SERVERS_WITH_ACCOUNT_SQL = (
    f"SELECT {ACCOUNT_COLUMNS}, {_SERVER_COLUMNS_NAMED} {FROM_ACCOUNT} LEFT JOIN (server_members m JOIN servers s "
    "ON s.id = m.server_id AND NOT s.is_blocked) ON m.user_id = a.id WHERE a.id = %(user)s ORDER BY s.id")

# The roles another member holds (@everyone plus assigned) with the server's owner as it is now.
HELD_ROLES_SQL = (f"SELECT s.id, s.owner_id AS owner_id, {_ROLE_COLUMNS} FROM servers s "
                  "LEFT JOIN roles r ON r.server_id = s.id AND (r.is_everyone OR r.id IN "
                  "(SELECT mr.role_id FROM member_roles mr WHERE mr.member_id = %(member)s)) WHERE s.id = %(server)s")


async def server_access_rows(conn: sql.Connection, user_id: int, server_id: int, sid: int | None = None) -> list[sql.Row]:
    """The permission statement's rows for a server (none: no such server). With `sid`, the
    caller's account and session lead (none: no such account; NULL server columns: no server)."""
    if sid is None:
        return await conn.all(SERVER_ACCESS_SQL, user=user_id, server=server_id)
    return await conn.all(SERVER_ACCESS_WITH_ACCOUNT_SQL, user=user_id, sid=sid, server=server_id)


async def channel_access_rows(conn: sql.Connection, user_id: int, channel_id: int, sid: int | None = None) -> list[sql.Row]:
    """server_access_rows() for a channel's server, with the channel's columns."""
    if sid is None:
        return await conn.all(CHANNEL_ACCESS_SQL, user=user_id, channel=channel_id)
    return await conn.all(CHANNEL_ACCESS_WITH_ACCOUNT_SQL, user=user_id, sid=sid, channel=channel_id)


async def my_servers_rows(conn: sql.Connection, user_id: int, sid: int | None = None) -> list[sql.Row]:
    """The servers (their columns) the user belongs to, blocked ones left out; with `sid` as above."""
    if sid is None:
        return await conn.all(MY_SERVERS_SQL, user=user_id)
    return await conn.all(MY_SERVERS_WITH_ACCOUNT_SQL, user=user_id, sid=sid)


async def held_roles(conn: sql.Connection, server_id: int, member_id: int) -> list[sql.Row]:
    """A member's roles (@everyone included), each row with the server's owner_id as it is now;
    none when the server is gone."""
    return await conn.all(HELD_ROLES_SQL, server=server_id, member=member_id)


_SERVER_KEYS = tuple(c.split(".")[1] for c in _SERVER_COLUMNS.split(", "))


def adopt_server(s: AsyncSession, row: Any) -> Server:
    """The session's Server for a row of the permission statement, without another statement:
    the one the session holds, or one made from the row's columns and attached to the session as
    persistent (so a write can change it in place, as after a read of it)."""
    held: Server | None = s.sync_session.identity_map.get(identity_key(Server, row.id))
    if held is not None:
        return held
    server = _new_server()
    for key in _SERVER_KEYS:
        set_committed_value(server, key, getattr(row, key))
    make_transient_to_detached(server)
    s.add(server)
    return server


def _new_server() -> Server:
    # The way the ORM makes a loaded row's object (no __init__, no validation); the mappers
    # are configured by the first ORM statement, which a process may not have run yet.
    sa.orm.configure_mappers()
    return cast(Server, sa.inspect(Server).class_manager.new_instance())  # typed Any: an instance of its class


# ---------------------------------------------------------------- members

def insert_ignoring_duplicates(table: type[SQLModel]) -> postgresql.Insert | sqlite.Insert:
    """INSERT ... ON CONFLICT DO NOTHING in the database's dialect (both take it without a target)."""
    return dialect.insert(table).on_conflict_do_nothing()


async def get(s: AsyncSession, member_id: int) -> ServerMember | None:
    return await s.get(ServerMember, member_id)


async def _lock_one(s: AsyncSession, *where: sa.ColumnElement[bool] | bool) -> ServerMember | None:
    res = await s.exec(select(ServerMember).where(*where).with_for_update()
                       .execution_options(populate_existing=True))
    return res.first()


async def lock(s: AsyncSession, server_id: int, member_id: int) -> ServerMember | None:
    """A member row by id in that server, locked until the transaction ends (FOR UPDATE on
    PostgreSQL; SQLite runs one writer at a time anyway), re-read even when the session holds it."""
    return await _lock_one(s, ServerMember.id == member_id, ServerMember.server_id == server_id)


async def lock_of_user(s: AsyncSession, server_id: int, user_id: int) -> ServerMember | None:
    """The user's membership of the server, locked as lock() does."""
    return await _lock_one(s, ServerMember.server_id == server_id, ServerMember.user_id == user_id)


async def lock_server(s: AsyncSession, server_id: int, *, exclusive: bool) -> Server | None:
    """The server row locked until the transaction ends: FOR NO KEY UPDATE (exclusive; rows
    inserted meanwhile that point at the server take FOR KEY SHARE, which it does not block) or
    FOR SHARE. The rule of who takes which is models.membership.lock_server's."""
    q = select(Server).where(Server.id == server_id).execution_options(populate_existing=True)
    q = q.with_for_update(key_share=True) if exclusive else q.with_for_update(read=True)
    return (await s.exec(q)).first()


async def server(s: AsyncSession, server_id: int) -> Server | None:
    """The server row as committed now (re-read even when the session holds it)."""
    q = select(Server).where(Server.id == server_id).execution_options(populate_existing=True)
    return (await s.exec(q)).first()


async def owned_server_ids(s: AsyncSession, user_id: int) -> list[int]:
    res = await s.exec(select(Server.id).where(Server.owner_id == user_id).order_by(col(Server.id)))
    # sqlmodel types the select of a column declared `int | None` as Sequence[int] | Sequence[None]; a stored id is set.
    return cast(list[int], list(res.all()))


async def insert(s: AsyncSession, server_id: int, user_id: int, role: str, preset_role_id: int | None) -> ServerMember:
    """A membership with its preset role. A duplicate raises the driver's IntegrityError (the
    unique (server_id, user_id)), which ends the transaction: see insert_new() for an answer instead."""
    member = ServerMember(server_id=server_id, user_id=user_id, role=role)
    s.add(member)
    await s.flush()
    if preset_role_id is not None:
        assert member.id is not None  # flushed: the INSERT assigned it
        s.add(MemberRole(member_id=member.id, role_id=preset_role_id))
        await s.flush()
    return member


async def insert_new(s: AsyncSession, server_id: int, user_id: int, role: str,
                     preset_role_id: int | None) -> rows.Returned | None:
    """insert(), or None when the user is a member already (ON CONFLICT DO NOTHING: the
    transaction goes on). The membership comes back as the row the INSERT returned (the
    member's columns), with no statement more than insert()."""
    res = await s.exec(insert_ignoring_duplicates(ServerMember)
                       .values(server_id=server_id, user_id=user_id, role=role, is_muted=False,
                               is_deafened=False, joined_at=utcnow())
                       .returning(*sa.inspect(ServerMember).local_table.columns))
    member = res.first()
    if member is None:
        return None
    if preset_role_id is not None:
        s.add(MemberRole(member_id=member.id, role_id=preset_role_id))
        await s.flush()
    return member


async def delete(s: AsyncSession, member: ServerMember) -> None:
    await s.delete(member)
    await s.flush()


async def set_role(s: AsyncSession, member_id: int, role: str) -> None:
    """The coarse `role` field; a copy the session holds follows."""
    await s.exec(sa.update(ServerMember).where(col(ServerMember.id) == member_id).values(role=role)
                 .execution_options(synchronize_session="evaluate"))


async def set_voice(s: AsyncSession, member: ServerMember, muted: bool | None, deafened: bool | None) -> None:
    if muted is not None:
        member.is_muted = muted
    if deafened is not None:
        member.is_deafened = deafened
    s.add(member)
    await s.flush()


async def transfer_owner(s: AsyncSession, server_id: int, from_user: int, to_user: int) -> bool:
    """A conditional update: of two transfers at once only one finds itself the owner."""
    moved = await s.exec(sa.update(Server).where(col(Server.id) == server_id, col(Server.owner_id) == from_user)
                         .values(owner_id=to_user).execution_options(synchronize_session=False))
    return moved.rowcount == 1


async def user_of(s: AsyncSession, member: ServerMember) -> User | None:
    return await s.get(User, member.user_id)


# ---------------------------------------------------------------- a member's roles

async def assigned_roles(s: AsyncSession, member_id: int) -> list[Role]:
    """The member's assigned roles (never @everyone), highest first."""
    res = await s.exec(select(Role).join(MemberRole, col(MemberRole.role_id) == Role.id)
                       .where(col(MemberRole.member_id) == member_id).order_by(col(Role.position).desc(), col(Role.id)))
    return list(res.all())


async def held_presets(s: AsyncSession, member_id: int) -> list[str]:
    """The presets (member/moderator/admin/owner) of the roles the member holds."""
    res = await s.exec(select(Role.preset).join(MemberRole, col(MemberRole.role_id) == Role.id)
                       .where(col(MemberRole.member_id) == member_id, col(Role.preset).is_not(None)))
    return cast(list[str], list(res.all()))  # Sequence[str] | Sequence[None] to sqlmodel; NULLs are filtered out


async def drop_roles(s: AsyncSession, member_id: int, role_ids: list[int] | None = None) -> int:
    """Take roles from the member (all of them when role_ids is None); how many went."""
    q = sa.delete(MemberRole).where(col(MemberRole.member_id) == member_id)
    if role_ids is not None:
        if not role_ids:
            return 0
        q = q.where(col(MemberRole.role_id).in_(role_ids))
    return (await s.exec(q)).rowcount


async def give_roles(s: AsyncSession, member_id: int, role_ids: list[int]) -> None:
    for rid in role_ids:
        s.add(MemberRole(member_id=member_id, role_id=rid))
    await s.flush()


async def give_role(s: AsyncSession, member_id: int, role_id: int) -> bool | None:
    """Assign one role: True if assigned now, False if the member held it, None if the member
    or the role went away meanwhile (the foreign key; the transaction must then end)."""
    try:
        res = await s.exec(insert_ignoring_duplicates(MemberRole).values(member_id=member_id, role_id=role_id))
    except IntegrityError:
        return None
    return bool(res.rowcount)


# ---------------------------------------------------------------- bans

async def is_banned(s: AsyncSession, server_id: int, user_id: int) -> bool:
    res = await s.exec(select(Ban.id).where(Ban.server_id == server_id, Ban.user_id == user_id))
    return res.first() is not None


async def ban(s: AsyncSession, server_id: int, user_id: int, reason: str | None, by: int) -> Ban | None:
    """The ban row, or None if the user is banned already (then the transaction must end)."""
    entry = Ban(server_id=server_id, user_id=user_id, reason=reason, banned_by=by)
    s.add(entry)
    try:
        await s.flush()
    except IntegrityError:
        return None
    return entry


async def bans(s: AsyncSession, server_id: int) -> list[tuple[Ban, User]]:
    res = await s.exec(select(Ban, User).join(User, col(User.id) == Ban.user_id)
                       .where(col(Ban.server_id) == server_id).order_by(col(Ban.id)))
    return list(res.all())


async def unban(s: AsyncSession, server_id: int, user_id: int) -> bool:
    gone = await s.exec(sa.delete(Ban).where(col(Ban.server_id) == server_id, col(Ban.user_id) == user_id))
    return gone.rowcount > 0


# ---------------------------------------------------------------- server details (reads)
# In hand-written SQL on a models.storage.sql connection (sql.connection() for a read,
# sql.of_session(s) inside a write's transaction): one statement each, whatever the number of
# servers, members, channels or roles.

RoleRef = namedtuple("RoleRef", "id name color permissions position")


async def member_rows(conn: sql.Connection, server_ids: list[int]) -> dict[int, list[tuple[sql.Row, list[RoleRef]]]]:
    """server id -> [(member row, roles)] in join order. A member row has the member's columns
    and its user's public ones (username, profile_picture, tag, status); roles are RoleRefs,
    highest first."""
    out: dict[int, list[tuple[sql.Row, list[RoleRef]]]] = defaultdict(list)
    if not server_ids:
        return out
    ids, params = sql.in_list("s", server_ids)
    last: tuple[sql.Row, list[RoleRef]] | None = None
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


async def channel_rows(conn: sql.Connection, server_ids: list[int]) -> dict[int, list[sql.Row]]:
    """server id -> its channels, by position."""
    out: dict[int, list[sql.Row]] = defaultdict(list)
    if not server_ids:
        return out
    ids, params = sql.in_list("s", server_ids)
    for c in await conn.all(
            "SELECT id, name, type, server_id, description, position, created_at, updated_at FROM channels "
            f"WHERE server_id IN ({ids}) ORDER BY server_id, position, id", **params):
        out[c.server_id].append(c)
    return out


async def role_rows(conn: sql.Connection, server_ids: list[int]) -> dict[int, list[sql.Row]]:
    """server id -> its roles, highest first."""
    out: dict[int, list[sql.Row]] = defaultdict(list)
    if not server_ids:
        return out
    ids, params = sql.in_list("s", server_ids)
    for r in await conn.all(
            "SELECT id, name, color, permissions, position, is_hoisted, is_mentionable, is_everyone, server_id "
            f"FROM roles WHERE server_id IN ({ids}) ORDER BY server_id, position DESC, id", **params):
        out[r.server_id].append(r)
    return out
