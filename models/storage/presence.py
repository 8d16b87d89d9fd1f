"""What presence needs from the database: whose status a user's changes concern.

One statement per question, whatever the size of the servers: the user's servers (their
Socket.IO rooms carry presence to co-members), friends (their personal rooms) and the users on
either side of a block with them (who get no presence from or about them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from models.storage.sql import Connection


@dataclass
class Audience:
    servers: list[int] = field(default_factory=list)
    friends: list[int] = field(default_factory=list)
    blocked: set[int] = field(default_factory=set)


async def audience(conn: Connection, user_id: int) -> Audience:
    """The servers the user belongs to (blocked servers left out), their accepted friends, and
    everyone they blocked or who blocked them; one statement."""
    out = Audience()
    for r in await conn.all(
            "SELECT 's' AS kind, m.server_id AS id FROM server_members m JOIN servers sv ON sv.id = m.server_id "
            "WHERE m.user_id = %(u)s AND NOT sv.is_blocked "
            "UNION ALL SELECT 'f', CASE WHEN f.user_id = %(u)s THEN f.friend_id ELSE f.user_id END "
            "FROM friendships f WHERE f.status = 'accepted' AND (f.user_id = %(u)s OR f.friend_id = %(u)s) "
            "UNION ALL SELECT 'b', b.blocked_id FROM user_blocks b WHERE b.blocker_id = %(u)s "
            "UNION ALL SELECT 'b', b.blocker_id FROM user_blocks b WHERE b.blocked_id = %(u)s",
            u=user_id):
        if r.kind == "s":
            out.servers.append(r.id)
        elif r.kind == "f":
            out.friends.append(r.id)
        else:
            out.blocked.add(r.id)
    out.friends = [f for f in out.friends if f not in out.blocked]
    return out


async def server_ids(conn: Connection, user_id: int) -> list[int]:
    """The servers whose presence rooms a newly authenticated socket of the user enters."""
    return [r.id for r in await conn.all(
        "SELECT m.server_id AS id FROM server_members m JOIN servers sv ON sv.id = m.server_id "
        "WHERE m.user_id = %(u)s AND NOT sv.is_blocked", u=user_id)]


async def shares_with(conn: Connection, viewer: int, user_id: int) -> bool:
    """Whether `viewer` may see `user_id`'s presence: they share a server or are friends, and
    neither blocked the other; one statement."""
    row = await conn.one(
        "SELECT (EXISTS (SELECT 1 FROM server_members a JOIN server_members b ON b.server_id = a.server_id "
        "  WHERE a.user_id = %(v)s AND b.user_id = %(u)s) "
        " OR EXISTS (SELECT 1 FROM friendships f WHERE f.status = 'accepted' AND f.pair_low = %(lo)s "
        "  AND f.pair_high = %(hi)s)) "
        "AND NOT EXISTS (SELECT 1 FROM user_blocks b WHERE (b.blocker_id = %(v)s AND b.blocked_id = %(u)s) "
        "  OR (b.blocker_id = %(u)s AND b.blocked_id = %(v)s)) AS is_visible",
        v=viewer, u=user_id, lo=min(viewer, user_id), hi=max(viewer, user_id))
    return bool(row and row.is_visible)
