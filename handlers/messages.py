"""Channel messages: history pages, posting, editing, deleting, search.

Built to stay fast however large a channel grows:
- pages walk the (channel_id, id) index backwards: page 1 and a `before` cursor page read only
  `limit` index entries (offset pages read `offset + limit`, which is what `before` is for);
- `total` is `channels.message_count`, kept by triggers in the same transaction as every
  insert and delete (migration 0002), never a COUNT over the channel;
- search is a word search through an index restricted to the channel (models/storage/search.py); user
  input is never query syntax: `OR`, `*`, `"`, `%`, `_` are plain text, and a term with such
  characters (`100%`, `:)`) must appear literally.
"""
from __future__ import annotations

import sqlite3

import psycopg
import sqlalchemy as sa

from models.storage import audit, search, sql
from models import db, views
from models.permissions import Perm, is_global_moderator, read_channel_access, server_access
from models.tables import Channel, Message, User, utcnow
from core.errors import BadRequest, NotFound
from models.auth import account_checked_in_query
from realtime import hooks

MAX_CONTENT = 2000


def _content(value) -> str:
    """1..2000 characters after trimming; text PostgreSQL and SQLite can both store."""
    if not isinstance(value, str):
        raise BadRequest("content must be a string", "validation_error")
    content = value.strip()
    if not 1 <= len(content) <= MAX_CONTENT:
        raise BadRequest(f"content must be 1 to {MAX_CONTENT} characters", "validation_error")
    if "\x00" in content:
        raise BadRequest("content must not contain NUL characters", "validation_error")
    try:
        content.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("content must be valid Unicode text", "validation_error") from None
    return content


def _columns(alias: str) -> str:
    """A message's columns, as views.message_row_view reads them."""
    return ", ".join(f"{alias}.{c}" for c in ("id", "content", "user_id", "channel_id", "created_at",
                                                "updated_at", "is_edited", "edited_by"))


# The author, and the last editor when a moderator made the last edit (a LEFT JOIN on a column
# that is NULL for nearly every message: no extra statement, editedBy comes with the page).
_AUTHOR_COLUMNS = "u.username AS author_username, u.profile_picture AS author_picture, e.username AS editor_username"
_MESSAGE_COLUMNS = f"{_columns('m')}, {_AUTHOR_COLUMNS}"
_HIT_COLUMNS = _columns("m")


def _people(alias: str) -> str:
    """The joins _AUTHOR_COLUMNS reads, for messages under `alias`."""
    return f"JOIN users u ON u.id = {alias}.user_id LEFT JOIN users e ON e.id = {alias}.edited_by"


@account_checked_in_query
async def list_messages(user: int, channelId: int, page: int = 1, limit: int = 50,
                        before: int | None = None):
    async with sql.connection() as conn:
        _, channel = await read_channel_access(conn, user, channelId, Perm.READ_MESSAGE_HISTORY)
        # A range, not `=`: PostgreSQL then orders by the (channel_id, id) index instead of walking
        # the primary key newest-first past every newer message of busier channels (a quiet
        # channel's page cost 3 ms instead of 0.2 once another channel had 15,000 newer messages).
        where, params = "m.channel_id BETWEEN %(channel)s AND %(channel)s", {"channel": channelId, "limit": limit}
        if before is not None:
            where += " AND m.id < %(before)s"
            params["before"] = before
            offset = ""
        else:
            offset, params["offset"] = " OFFSET %(offset)s", (page - 1) * limit
        rows = await conn.all(f"SELECT {_MESSAGE_COLUMNS} FROM messages m {_people('m')} "
                              f"WHERE {where} ORDER BY m.channel_id DESC, m.id DESC LIMIT %(limit)s{offset}", **params)
    rows.reverse()
    return views.message_page_view(rows, max(channel.channel_message_count, 0), page, limit), 200


@account_checked_in_query
async def search_messages(user: int, query: str, channelId: int, page: int = 1, limit: int = 50):
    async with sql.connection() as conn:
        await read_channel_access(conn, user, channelId, Perm.READ_MESSAGE_HISTORY)
        cte = search.hits_cte(_HIT_COLUMNS, query, channelId)
        if cte is None:
            return views.message_page_view([], 0, page, limit), 200
        hits, params = cte
        params.update(limit=limit, offset=(page - 1) * limit)
        # Newest matches first: the page's messages and the number of matches in one statement.
        rows = await conn.all(
            f"{hits}, page AS (SELECT hits.*, count(*) OVER () AS total FROM hits ORDER BY id DESC "
            f"LIMIT %(limit)s OFFSET %(offset)s) "
            f"SELECT page.total, {_columns('page')}, {_AUTHOR_COLUMNS} FROM page "
            f"{_people('page')} ORDER BY page.id", **params)
        if rows:
            total = rows[0].total
        elif page == 1:
            total = 0
        else:  # past the last page: the number of matches still
            params.pop("limit"), params.pop("offset")
            total = (await conn.one(f"{hits} SELECT count(*) AS total FROM hits", **params)).total
    return views.message_page_view(rows, total, page, limit), 200


async def create_message(user: int, body: dict, token_info: dict):
    content = _content(body.get("content"))
    channel_id = body["channelId"]
    async with sql.connection() as conn:
        _, channel = await read_channel_access(conn, user, channel_id, Perm.SEND_MESSAGES)
        if channel.channel_type != "text":
            raise BadRequest("Messages can only be posted in text channels", "not_a_text_channel")
        now = utcnow()
        try:
            # One statement; the channel's message_count follows by trigger (migration 0002).
            row = await conn.one(
                "INSERT INTO messages (channel_id, user_id, content, is_edited, created_at, updated_at) "
                "VALUES (%(channel)s, %(user)s, %(content)s, %(no)s, %(now)s, %(now)s) RETURNING id",
                channel=channel_id, user=user, content=content, no=False, now=now)
        except (psycopg.IntegrityError, sqlite3.IntegrityError):  # the channel went away meanwhile
            raise NotFound("Channel not found", "channel_not_found") from None
    # The author as the bearer check read the account a moment ago.
    view = views.message_fields(row.id, content, user, channel_id, now, now, False,
                                token_info["username"], token_info.get("profilePicture"))
    await hooks.message_event("message-created", channel_id, view)
    return view, 201


async def _moderation(s, user: int, message_id: int) -> tuple[Message, Channel, str, User]:
    """The message, how the caller may change it: "author", "moderator" (MANAGE_MESSAGES
    in the server) or "global_moderator", and the caller's account; 404 for no such message,
    403 otherwise."""
    message = await s.get(Message, message_id)
    if message is None:
        raise NotFound("Message not found", "message_not_found")
    channel = await s.get(Channel, message.channel_id)
    if channel is None:
        raise NotFound("Message not found", "message_not_found")
    actor = await s.get(User, user)
    own = message.user_id == user
    if actor is not None and is_global_moderator(actor):
        return message, channel, "author" if own else "global_moderator", actor
    access = await server_access(s, user, channel.server_id, Perm.VIEW_CHANNEL)
    if own:
        return message, channel, "author", actor
    access.require(Perm.MANAGE_MESSAGES)
    return message, channel, "moderator", actor


async def update_message(user: int, id: int, body: dict):
    content = _content(body.get("content"))
    async with db.session() as s:
        message, channel, how, actor = await _moderation(s, user, id)
        # Who wrote the words now shown: the author's own edit clears a moderator's name.
        editor = None if how == "author" else actor
        res = await s.exec(sa.update(Message).where(Message.id == id)
                           .values(content=content, is_edited=True, updated_at=utcnow(),
                                   edited_by=editor.id if editor is not None else None))
        if res.rowcount != 1:  # deleted meanwhile
            raise NotFound("Message not found", "message_not_found")
        if editor is not None:
            audit.record(s, user, "message.edit", "message", id, server_id=channel.server_id,
                         details={"channelId": channel.id, "authorId": message.user_id, "as": how})
        await s.refresh(message)
        author = await s.get(User, message.user_id)
        view = views.message_view(message, author, editor)
    await hooks.message_event("message-updated", channel.id, view)
    return view, 200


async def delete_message(user: int, id: int):
    async with db.session() as s:
        message, channel, how, _actor = await _moderation(s, user, id)
        author_id = message.user_id
        res = await s.exec(sa.delete(Message).where(Message.id == id))
        if res.rowcount != 1:  # deleted meanwhile
            raise NotFound("Message not found", "message_not_found")
        if how != "author":
            audit.record(s, user, "message.delete", "message", id, server_id=channel.server_id,
                         details={"channelId": channel.id, "authorId": author_id, "as": how})
    await hooks.message_event("message-deleted", channel.id, {"id": id, "channelId": channel.id})
    return None, 204
