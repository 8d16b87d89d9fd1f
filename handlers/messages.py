"""Channel messages: history pages, posting, editing, deleting, search.

Built to stay fast however large a channel grows:
- pages walk the (channel_id, id) index backwards: page 1 and a `before` cursor page read only
  `limit` index entries (offset pages read `offset + limit`, which is what `before` is for);
- `total` is `channels.message_count`, kept by triggers in the same transaction as every
  insert and delete (migration 0002), never a COUNT over the channel;
- search is a word search through an index restricted to the channel (PostgreSQL: GIN over
  (channel_id, to_tsvector('simple', content)); SQLite: FTS5). Each word of the query is matched
  as a quoted phrase, so user input is never query syntax: `OR`, `*`, `"`, `%`, `_` are plain
  text, and characters that are not part of a word match nothing.
"""
from __future__ import annotations

from functools import reduce

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from models import audit, db, views
from models.permissions import Perm, channel_access, is_global_moderator, server_access
from models.tables import Channel, Message, User, utcnow
from projectvoice.errors import BadRequest, NotFound
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


def _words(query: str) -> list[str]:
    """The query's whitespace-separated words, each later matched literally."""
    cleaned = query.replace("\x00", " ").encode("utf-8", "replace").decode("utf-8")
    return cleaned.split()


def _page_query(channel_id: int):
    return (select(Message, User).join(User, User.id == Message.user_id)
            .where(Message.channel_id == channel_id))


async def list_messages(user: int, channelId: int, page: int = 1, limit: int = 50,
                        before: int | None = None):
    async with db.session() as s:
        _, channel = await channel_access(s, user, channelId, Perm.READ_MESSAGE_HISTORY)
        q = _page_query(channelId)
        if before is not None:
            q = q.where(Message.id < before)
        else:
            q = q.offset((page - 1) * limit)
        rows = list((await s.exec(q.order_by(Message.id.desc()).limit(limit))).all())
        rows.reverse()
        return views.message_page_view(rows, max(channel.message_count, 0), page, limit), 200


def _hits(channel_id: int, words: list[str]):
    """The ids of the channel's messages containing every word (case-insensitive, whole words,
    literal), as a CTE read once for both the page and the number of matches."""
    if db.is_postgres():
        simple = sa.literal_column("'simple'")
        query = reduce(lambda a, b: a.op("&&")(b),
                       [sa.func.phraseto_tsquery(simple, w) for w in words])
        match = sa.func.to_tsvector(simple, Message.content).op("@@")(query)
        # MATERIALIZED: without it the planner, seeing ORDER BY id LIMIT n, walks the channel
        # newest-first testing every message; the GIN index on (channel_id, tsvector) finds
        # the matches directly, whatever the channel's size.
        return (select(Message.id).where(Message.channel_id == channel_id, match)
                .cte("hits").prefix_with("MATERIALIZED"))
    # FTS5: each word as a string ("..." with inner quotes doubled) is a phrase of its tokens;
    # phrases side by side are ANDed; a word with no token in it adds no condition. CROSS JOIN
    # makes SQLite start from the full-text matches, not from the channel's messages.
    fts = " ".join('"' + w.replace('"', '""') + '"' for w in words)
    return (sa.text("SELECT m.id AS id FROM messages_fts CROSS JOIN messages m ON m.id = messages_fts.rowid "
                    "WHERE messages_fts MATCH :fts AND m.channel_id = :cid")
            .bindparams(fts=fts, cid=channel_id).columns(sa.column("id", sa.Integer)).cte("hits"))


async def search_messages(user: int, query: str, channelId: int, page: int = 1, limit: int = 50):
    words = _words(query)
    async with db.session() as s:
        await channel_access(s, user, channelId, Perm.READ_MESSAGE_HISTORY)
        if not words:
            return views.message_page_view([], 0, page, limit), 200
        hits = _hits(channelId, words)
        # Newest matches first; the page's ids and the number of matches in one pass.
        found = (await s.exec(
            select(hits.c.id, sa.func.count().over().label("total"))
            .order_by(hits.c.id.desc()).offset((page - 1) * limit).limit(limit)
        )).all()
        if found:
            total = found[0][1]
            ids = [row[0] for row in found]
            rows = list((await s.exec(_page_query(channelId).where(Message.id.in_(ids))
                                      .order_by(Message.id))).all())
        else:
            rows = []
            total = 0 if page == 1 else (await s.exec(select(sa.func.count()).select_from(hits))).one()
        return views.message_page_view(rows, total, page, limit), 200


async def create_message(user: int, body: dict):
    content = _content(body.get("content"))
    channel_id = body["channelId"]
    async with db.session() as s:
        _, channel = await channel_access(s, user, channel_id, Perm.SEND_MESSAGES)
        if channel.type != "text":
            raise BadRequest("Messages can only be posted in text channels", "not_a_text_channel")
        message = Message(channel_id=channel_id, user_id=user, content=content)
        s.add(message)
        try:
            await s.flush()
        except IntegrityError:  # the channel went away meanwhile
            raise NotFound("Channel not found", "channel_not_found") from None
        author = await s.get(User, user)
        view = views.message_view(message, author)
    await hooks.message_event("message-created", channel_id, view)
    return view, 201


async def _moderation(s, user: int, message_id: int) -> tuple[Message, Channel, str]:
    """The message and how the caller may change it: "author", "moderator" (MANAGE_MESSAGES
    in the server) or "global_moderator"; 404 for no such message, 403 otherwise."""
    message = await s.get(Message, message_id)
    if message is None:
        raise NotFound("Message not found", "message_not_found")
    channel = await s.get(Channel, message.channel_id)
    if channel is None:
        raise NotFound("Message not found", "message_not_found")
    actor = await s.get(User, user)
    own = message.user_id == user
    if actor is not None and is_global_moderator(actor):
        return message, channel, "author" if own else "global_moderator"
    access = await server_access(s, user, channel.server_id, Perm.VIEW_CHANNEL)
    if own:
        return message, channel, "author"
    access.require(Perm.MANAGE_MESSAGES)
    return message, channel, "moderator"


async def update_message(user: int, id: int, body: dict):
    content = _content(body.get("content"))
    async with db.session() as s:
        message, channel, _how = await _moderation(s, user, id)
        res = await s.exec(sa.update(Message).where(Message.id == id)
                           .values(content=content, is_edited=True, updated_at=utcnow()))
        if res.rowcount != 1:  # deleted meanwhile
            raise NotFound("Message not found", "message_not_found")
        await s.refresh(message)
        author = await s.get(User, message.user_id)
        view = views.message_view(message, author)
    await hooks.message_event("message-updated", channel.id, view)
    return view, 200


async def delete_message(user: int, id: int):
    async with db.session() as s:
        message, channel, how = await _moderation(s, user, id)
        author_id = message.user_id
        res = await s.exec(sa.delete(Message).where(Message.id == id))
        if res.rowcount != 1:  # deleted meanwhile
            raise NotFound("Message not found", "message_not_found")
        if how != "author":
            audit.record(s, user, "message.delete", "message", id, server_id=channel.server_id,
                         details={"channelId": channel.id, "authorId": author_id, "as": how})
    await hooks.message_event("message-deleted", channel.id, {"id": id, "channelId": channel.id})
    return None, 204
