"""The statements the Socket.IO side runs (realtime/): voice joins, rights checked again once a
socket is in a room, live-message subscriptions, typing notices.

Each function takes a models.sql connection and returns rows or values; the rules applied to
them (the account verdict, permission bits) stay in projectvoice.auth and models.permissions.
"""
from __future__ import annotations

from models.permissions import Access, channel_access_from_rows, read_channel_access

# One statement for a join-room: the caller's account and the token's session (the bearer
# check's columns, for auth.check_account), the channel, its server, the caller's membership and
# roles (one row per role, the columns models.permissions reads access from), the member's
# server mute, and what the room shows of the user. The account row leads: a gone account is no
# row at all, a missing channel is NULL channel columns.
JOIN_RIGHTS_SQL = (
    "SELECT a.is_active AS is_active, a.token_version AS token_version, sess.id AS session_id, "
    "sess.last_seen_at AS session_seen_at, a.username AS username, a.profile_picture AS profile_picture, "
    "a.role AS user_role, a.status AS user_status, "
    "c.id AS channel_id, c.type AS channel_type, c.message_count AS channel_message_count, "
    "s.id, s.name, s.description, s.icon, s.owner_id, s.is_blocked, s.block_reason, s.created_at, s.updated_at, "
    "m.id AS member_id, m.is_muted AS is_muted, r.permissions AS role_bits, r.position AS role_position, "
    "r.is_everyone AS is_everyone_role "
    "FROM users a LEFT JOIN auth_sessions sess ON sess.id = %(sid)s AND sess.user_id = a.id "
    "LEFT JOIN channels c ON c.id = %(channel)s LEFT JOIN servers s ON s.id = c.server_id "
    "LEFT JOIN server_members m ON m.server_id = s.id AND m.user_id = %(user)s "
    "LEFT JOIN roles r ON r.server_id = s.id "
    "AND (r.is_everyone OR r.id IN (SELECT mr.role_id FROM member_roles mr WHERE mr.member_id = m.id)) "
    "WHERE a.id = %(user)s")


async def join_rights(conn, user_id: int, session_id, channel_id: int) -> list:
    """The rows of JOIN_RIGHTS_SQL: empty when the account does not exist."""
    return await conn.all(JOIN_RIGHTS_SQL, user=user_id, sid=session_id, channel=channel_id)


def join_access(rows: list, user_id: int, need: int) -> tuple[Access, object]:
    """The caller's access to the channel of join_rights' rows (not found / not a member /
    server blocked / missing permission, as the REST side answers)."""
    return channel_access_from_rows([] if rows[0].channel_id is None else rows, user_id, need)


async def channel_rights(conn, user_id: int, channel_id: int, need: int) -> tuple[Access, object]:
    """(Access, row with channel_type and the server's columns, `id` being the server's id): the
    check of a live-message subscription, and of a socket's rights once it is in a room."""
    return await read_channel_access(conn, user_id, channel_id, need)


async def channel_ids(conn, server_id: int) -> set[int]:
    """The ids of a server's channels."""
    return {r.id for r in await conn.all("SELECT id FROM channels WHERE server_id = %(server)s", server=server_id)}


async def username(conn, user_id: int) -> str | None:
    row = await conn.one("SELECT username FROM users WHERE id = %(id)s", id=user_id)
    return None if row is None else row.username
