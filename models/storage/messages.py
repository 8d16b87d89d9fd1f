"""Channel messages: history pages, search pages, posting, editing, deleting.

Built to stay fast however large a channel grows:
- pages walk the (channel_id, id) index backwards: page 1 and a `before` cursor page read only
  `limit` index entries (offset pages read `offset + limit`, which is what `before` is for);
- a channel's message count is `channels.message_count`, kept by triggers in the same
  transaction as every insert and delete (migration 0002), never a COUNT over the channel;
- search is a word search through an index restricted to the channel (models/storage/search.py).

Pages, search and posting are hand-written SQL on a models.storage.sql connection (one
statement each, the author joined in); editing and deleting run inside a models.db session, with
the moderation read and the audit row in the same transaction.
"""
from __future__ import annotations

from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from models.storage import dialect, search, sql
from models.tables import Channel, Message, User, utcnow


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


async def page(conn: sql.Connection, channel_id: int, before: int | None, limit: int, offset: int = 0) -> list[sql.Row]:
    """Up to `limit` of the channel's messages with their authors, oldest first: those before
    message id `before` (a cursor), or else the newest after skipping `offset`; one statement."""
    # A range, not `=`: PostgreSQL then orders by the (channel_id, id) index instead of walking
    # the primary key newest-first past every newer message of busier channels (a quiet
    # channel's page cost 3 ms instead of 0.2 once another channel had 15,000 newer messages).
    where, params = "m.channel_id BETWEEN %(channel)s AND %(channel)s", {"channel": channel_id, "limit": limit}
    if before is not None:
        where += " AND m.id < %(before)s"
        params["before"] = before
        skip = ""
    else:
        skip, params["offset"] = " OFFSET %(offset)s", offset
    rows = await conn.all(f"SELECT {_MESSAGE_COLUMNS} FROM messages m {_people('m')} "
                          f"WHERE {where} ORDER BY m.channel_id DESC, m.id DESC LIMIT %(limit)s{skip}", **params)
    rows.reverse()
    return rows


async def search_page(conn: sql.Connection, channel_id: int, query: str, limit: int,
                      offset: int = 0) -> tuple[list[sql.Row], int]:
    """(the matching messages with their authors, oldest first, the number of matches): the
    newest `limit` matches after skipping `offset`. One statement; none for a query with no
    term; a second (the count) only for a page past the last one."""
    cte = search.hits_cte(_HIT_COLUMNS, query, channel_id)
    if cte is None:
        return [], 0
    hits, params = cte
    # Newest matches first: the page's messages and the number of matches in one statement.
    rows = await conn.all(
        f"{hits}, page AS (SELECT hits.*, count(*) OVER () AS total FROM hits ORDER BY id DESC "
        f"LIMIT %(limit)s OFFSET %(offset)s) "
        f"SELECT page.total, {_columns('page')}, {_AUTHOR_COLUMNS} FROM page "
        f"{_people('page')} ORDER BY page.id", limit=limit, offset=offset, **params)
    if rows:
        return rows, rows[0].total
    if offset == 0:
        return rows, 0
    # Past the last page: the number of matches still.
    # (count(*) always answers one row.)
    return rows, cast(sql.Row, await conn.one(f"{hits} SELECT count(*) AS total FROM hits", **params)).total


async def insert(conn: sql.Connection, channel_id: int, user_id: int, content: str, now: datetime) -> int | None:
    """Post a message; its id, or None when the channel (or the author) went away meanwhile.
    One statement: the channel's message_count follows by trigger (migration 0002)."""
    try:
        with dialect.integrity_errors():
            row: sql.Row = await conn.one(  # (RETURNING: one row)
                "INSERT INTO messages (channel_id, user_id, content, is_edited, created_at, updated_at) "
                "VALUES (%(channel)s, %(user)s, %(content)s, %(no)s, %(now)s, %(now)s) RETURNING id",
                channel=channel_id, user=user_id, content=content, no=False, now=now)
    except dialect.IntegrityViolation:  # a foreign key: the row it names is gone
        return None
    return cast(int, row.id)


async def for_change(s: AsyncSession, message_id: int, actor_id: int) -> tuple[Message, Channel, User | None] | None:
    """The message, its channel and the account of the user who wants to change it, read in the
    session (up to three statements); None when there is no such message (or channel)."""
    message = await s.get(Message, message_id)
    if message is None:
        return None
    channel = await s.get(Channel, message.channel_id)
    if channel is None:
        return None
    return message, channel, await s.get(User, actor_id)


async def set_content(s: AsyncSession, message_id: int, content: str, editor_id: int | None) -> bool:
    """Replace the words and mark the message edited (by `editor_id`, None for the author's own
    edit); False when the message was deleted meanwhile."""
    res = await s.exec(sa.update(Message).where(col(Message.id) == message_id)
                       .values(content=content, is_edited=True, updated_at=utcnow(), edited_by=editor_id))
    return res.rowcount == 1


async def reread_with_author(s: AsyncSession, message: Message) -> User | None:
    """After set_content: the message's stored columns read back, and its author."""
    await s.refresh(message)
    return await s.get(User, message.user_id)


async def delete(s: AsyncSession, message_id: int) -> bool:
    """False when the message was deleted meanwhile (the channel's count follows by trigger)."""
    res = await s.exec(sa.delete(Message).where(col(Message.id) == message_id))
    return res.rowcount == 1
