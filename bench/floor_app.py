"""THE FLOOR: NOT PART OF THE PRODUCT. A benchmark yardstick only, never deployed or imported by it.

A minimal Starlette app on the same uvicorn settings (uvloop, httptools) and the same database
driver (psycopg 3, async, pooled like the product: 10 + 10 connections) that answers the requests
`bench/run_all.py` sends with the same JSON bodies, from hand-written SQL, with no request or
response validation, no ORM, no middleware, no access log, no metrics, no realtime hooks. It
checks only what it must to answer: the bearer token's signature (PyJWT) for the caller's id,
and membership inside the SQL. The ratio product/floor in the bench table is what Connexion,
validation, SQLModel/SQLAlchemy, our account and permission checks and our observability cost.

    DATABASE_URL=postgresql://... JWT_SECRET=... uvicorn bench.floor_app:app --loop uvloop --http httptools
"""
from __future__ import annotations

import os
from collections import defaultdict
from contextlib import asynccontextmanager
from datetime import UTC

import jwt
import orjson
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

URL = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
SECRET = os.environ["JWT_SECRET"]
pool = AsyncConnectionPool(URL, min_size=10, max_size=20, open=False)


def iso(dt):
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if dt else None


def out(data, status=200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def caller(request: Request) -> int | None:
    auth = request.headers.get("authorization", "")
    try:
        return int(jwt.decode(auth[7:], SECRET, algorithms=["HS256"])["sub"])
    except Exception:
        return None


DENIED = out({"error": "denied", "code": "forbidden"}, 403)
UNAUTH = out({"error": "no token", "code": "invalid_token"}, 401)


async def details(cur, servers: list[tuple]) -> list[dict]:
    ids = [s[0] for s in servers]
    channels, roles, members = defaultdict(list), defaultdict(list), defaultdict(list)
    await cur.execute("SELECT id, name, type, server_id, description, position, created_at, updated_at "
                      "FROM channels WHERE server_id = ANY(%s) ORDER BY server_id, position, id", (ids,))
    for c in await cur.fetchall():
        channels[c[3]].append({"id": c[0], "name": c[1], "type": c[2], "serverId": c[3], "description": c[4],
                               "position": c[5], "createdAt": iso(c[6]), "updatedAt": iso(c[7])})
    await cur.execute("SELECT id, name, color, permissions, position, is_hoisted, is_mentionable, is_everyone, "
                      "server_id FROM roles WHERE server_id = ANY(%s) ORDER BY server_id, position DESC, id", (ids,))
    for r in await cur.fetchall():
        roles[r[8]].append({"id": r[0], "name": r[1], "color": r[2], "permissions": str(r[3]), "position": r[4],
                            "isHoisted": r[5], "isMentionable": r[6], "isEveryone": r[7], "serverId": r[8]})
    await cur.execute(
        "SELECT m.id, m.user_id, m.server_id, m.role, m.is_muted, m.is_deafened, m.joined_at, "
        "u.username, u.profile_picture, u.tag, u.status, "
        "COALESCE((SELECT array_agg(role_id ORDER BY role_id) FROM member_roles WHERE member_id = m.id), '{}'), "
        "COALESCE((SELECT json_agg(json_build_object('id', r.id, 'name', r.name, 'color', r.color, "
        "'permissions', r.permissions::text, 'position', r.position) ORDER BY r.position DESC, r.id) "
        "FROM member_roles mr JOIN roles r ON r.id = mr.role_id WHERE mr.member_id = m.id), '[]') "
        "FROM server_members m JOIN users u ON u.id = m.user_id "
        "WHERE m.server_id = ANY(%s) ORDER BY m.server_id, m.id", (ids,))
    for m in await cur.fetchall():
        # Presence: nobody holds a socket during the REST rows, so everyone is offline; the
        # product's presence read (one lookup per page) is part of what the ratio measures.
        members[m[2]].append({"id": m[0], "userId": m[1], "serverId": m[2], "role": m[3], "isMuted": m[4],
                              "isDeafened": m[5], "joinedAt": iso(m[6]), "createdAt": iso(m[6]),
                              "roleIds": m[11], "roles": m[12],
                              "user": {"id": m[1], "username": m[7], "profilePicture": m[8], "tag": m[9],
                                       "status": "offline"}})
    return [{"id": s[0], "name": s[1], "description": s[2], "icon": s[3], "ownerId": s[4], "isBlocked": s[5],
             "blockReason": s[6], "createdAt": iso(s[7]), "updatedAt": iso(s[8]),
             "channels": channels[s[0]], "members": members[s[0]], "roles": roles[s[0]]} for s in servers]


SERVER_COLS = "s.id, s.name, s.description, s.icon, s.owner_id, s.is_blocked, s.block_reason, s.created_at, s.updated_at"


async def list_servers(request: Request):
    uid = caller(request)
    if uid is None:
        return UNAUTH
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(f"SELECT {SERVER_COLS} FROM servers s JOIN server_members m ON m.server_id = s.id "
                          "WHERE m.user_id = %s AND NOT s.is_blocked ORDER BY s.id", (uid,))
        servers = await cur.fetchall()
        return out(await details(cur, servers) if servers else [])


async def get_server(request: Request):
    uid = caller(request)
    if uid is None:
        return UNAUTH
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(f"SELECT {SERVER_COLS} FROM servers s JOIN server_members m ON m.server_id = s.id "
                          "WHERE s.id = %s AND m.user_id = %s", (int(request.path_params["id"]), uid))
        servers = await cur.fetchall()
        if not servers:
            return DENIED
        return out((await details(cur, servers))[0])


MEMBER_OF_CHANNEL = ("EXISTS (SELECT 1 FROM channels c JOIN server_members sm ON sm.server_id = c.server_id "
                     "WHERE c.id = %(cid)s AND sm.user_id = %(uid)s)")
MSG_COLS = ("m.id, m.content, m.user_id, m.channel_id, m.created_at, m.updated_at, m.is_edited, u.username, "
            "u.profile_picture, m.edited_by, e.username")
# The author, and the last editor when a moderator made the last edit (editedBy), as the product reads them.
PEOPLE = "JOIN users u ON u.id = m.user_id LEFT JOIN users e ON e.id = m.edited_by"


def message(r) -> dict:
    return {"id": r[0], "content": r[1], "userId": r[2], "channelId": r[3], "createdAt": iso(r[4]),
            "updatedAt": iso(r[5]), "isEdited": r[6],
            "editedBy": {"id": r[9], "username": r[10]} if r[10] is not None else None,
            "user": {"id": r[2], "username": r[7], "avatar": r[8], "profilePicture": r[8]}}


def page(rows, total, pg, limit) -> dict:
    return {"messages": [message(r) for r in rows], "total": total, "page": pg, "limit": limit,
            "totalPages": (total + limit - 1) // limit}


async def list_messages(request: Request):
    uid = caller(request)
    if uid is None:
        return UNAUTH
    q = request.query_params
    cid, pg, limit = int(q["channelId"]), int(q.get("page", 1)), int(q.get("limit", 50))
    args = {"cid": cid, "uid": uid, "limit": limit, "offset": (pg - 1) * limit}
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(f"SELECT message_count FROM channels WHERE id = %(cid)s AND {MEMBER_OF_CHANNEL}", args)
        row = await cur.fetchone()
        if row is None:
            return DENIED
        await cur.execute(f"SELECT {MSG_COLS} FROM messages m {PEOPLE} "
                          "WHERE m.channel_id BETWEEN %(cid)s AND %(cid)s ORDER BY m.channel_id DESC, m.id DESC "
                          "LIMIT %(limit)s OFFSET %(offset)s", args)
        rows = await cur.fetchall()
    rows.reverse()
    return out(page(rows, row[0], pg, limit))


async def search_messages(request: Request):
    uid = caller(request)
    if uid is None:
        return UNAUTH
    q = request.query_params
    cid, pg, limit = int(q["channelId"]), int(q.get("page", 1)), int(q.get("limit", 50))
    args = {"cid": cid, "uid": uid, "limit": limit, "offset": (pg - 1) * limit, "q": q["query"],
            "lexeme": f"'channel {cid}'"}  # the index of migration 0003_input (models/storage/search.py)
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(f"SELECT {MEMBER_OF_CHANNEL}", args)
        if not (await cur.fetchone())[0]:
            return DENIED
        await cur.execute(
            "WITH hits AS MATERIALIZED (SELECT id, content, user_id, channel_id, created_at, updated_at, "
            "is_edited, edited_by FROM messages WHERE channel_id + 0 = %(cid)s AND "
            "(to_tsvector('simple', content) || array_to_tsvector(ARRAY['channel ' || channel_id::text])) "
            "@@ (phraseto_tsquery('simple', %(q)s) && CAST(%(lexeme)s AS tsquery))), "
            "m AS (SELECT hits.*, count(*) OVER () AS total FROM hits ORDER BY id DESC "
            "LIMIT %(limit)s OFFSET %(offset)s) "
            f"SELECT {MSG_COLS}, m.total FROM m {PEOPLE} ORDER BY m.id", args)
        rows = await cur.fetchall()
    return out(page(rows, rows[0][-1] if rows else 0, pg, limit))


async def create_message(request: Request):
    uid = caller(request)
    if uid is None:
        return UNAUTH
    body = orjson.loads(await request.body())
    args = {"cid": body["channelId"], "uid": uid, "content": body["content"].strip()}
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(
            "WITH ok AS (SELECT 1 FROM channels c JOIN server_members sm ON sm.server_id = c.server_id "
            "WHERE c.id = %(cid)s AND sm.user_id = %(uid)s AND c.type = 'text'), "
            "m AS (INSERT INTO messages (channel_id, user_id, content, is_edited, created_at, updated_at) "
            "SELECT %(cid)s, %(uid)s, %(content)s, false, now(), now() FROM ok "
            "RETURNING id, content, user_id, channel_id, created_at, updated_at, is_edited, edited_by) "
            f"SELECT {MSG_COLS} FROM m {PEOPLE}", args)
        row = await cur.fetchone()
    if row is None:
        return DENIED
    return out(message(row), 201)


async def health(_request: Request):
    return out({"status": "ok"})


@asynccontextmanager
async def lifespan(_app):
    await pool.open(wait=True)
    yield
    await pool.close()


app = Starlette(routes=[
    Route("/api/health", health),
    Route("/api/servers", list_servers),
    Route("/api/servers/{id:int}", get_server),
    Route("/api/messages", list_messages),
    Route("/api/messages", create_message, methods=["POST"]),
    Route("/api/messages/search", search_messages),
], lifespan=lifespan)
