"""The statements the Socket.IO side runs (realtime/): voice joins, rights checked again once a
socket is in a room, live-message subscriptions, typing notices.

Each function takes a models.storage.sql connection and returns rows or values; the rules applied to
them (the account verdict, permission bits) stay in models.auth and models.permissions.
"""
from __future__ import annotations

from typing import Any

from models.storage.members import ACCESS_COLUMNS, ACCOUNT_COLUMNS, CHANNEL_COLUMNS, FROM_ACCOUNT, ROLE_JOINS
from models.storage.sql import Connection

# One statement for a join-room: the permission check's statement with the caller's account
# (models/storage/members.py CHANNEL_ACCESS_WITH_ACCOUNT_SQL: the bearer check's columns, the
# channel, its server, the caller's membership and roles, one row per role) and what the room
# shows of the user. The account row leads: a gone account is no row at all, a missing channel is
# NULL channel columns.
JOIN_RIGHTS_SQL = (
    f"SELECT {ACCOUNT_COLUMNS}, a.username AS username, a.profile_picture AS profile_picture, "
    f"a.role AS user_role, a.status AS user_status, {CHANNEL_COLUMNS}, {ACCESS_COLUMNS} {FROM_ACCOUNT} "
    f"LEFT JOIN channels c ON c.id = %(channel)s LEFT JOIN servers s ON s.id = c.server_id {ROLE_JOINS} "
    "WHERE a.id = %(user)s")


async def join_rights(conn: Connection, user_id: int, session_id: int | None, channel_id: int) -> list[Any]:
    """The rows of JOIN_RIGHTS_SQL: empty when the account does not exist."""
    return await conn.all(JOIN_RIGHTS_SQL, user=user_id, sid=session_id, channel=channel_id)


async def channel_ids(conn: Connection, server_id: int) -> set[int]:
    """The ids of a server's channels."""
    return {r.id for r in await conn.all("SELECT id FROM channels WHERE server_id = %(server)s", server=server_id)}


async def username(conn: Connection, user_id: int) -> str | None:
    row = await conn.one("SELECT username FROM users WHERE id = %(id)s", id=user_id)
    return None if row is None else row.username
