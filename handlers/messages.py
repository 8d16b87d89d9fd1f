"""Channel messages: history pages, posting, editing, deleting, search.

Who may do what is asked of models.permissions; every statement is in models/storage/messages.py
(pages walk the (channel_id, id) index, `total` is the channel's trigger-kept message count, search
goes through a word index restricted to the channel). User input is never query syntax: `OR`,
`*`, `"`, `%`, `_` are plain text, and a term with such characters (`100%`, `:)`) must appear
literally.
"""
from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from generated import rest
from models.storage import audit, messages, sql
from models import db, views
from models.permissions import Perm, is_global_moderator, read_channel_access, server_access
from models.tables import Channel, Message, User, utcnow
from core.contract import MESSAGE_MAX_LENGTH
from core.errors import BadRequest, NotFound
from models.auth import account_checked_in_query
from realtime import hooks

# The contract's maxLength of a message's content, checked after trimming.
MAX_CONTENT = MESSAGE_MAX_LENGTH


def _content(value: object) -> str:
    """1..MAX_CONTENT characters after trimming; text PostgreSQL and SQLite can both store."""
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


@account_checked_in_query
async def list_messages(user: int, channelId: int, page: int = 1, limit: int = 50,
                        before: int | None = None) -> tuple[rest.MessagePage, int]:
    async with sql.connection() as conn:
        _, channel = await read_channel_access(conn, user, channelId, Perm.READ_MESSAGE_HISTORY)
        rows = await messages.page(conn, channelId, before, limit, offset=(page - 1) * limit)
    return views.message_page_view(rows, max(channel.channel_message_count, 0), page, limit), 200


@account_checked_in_query
async def search_messages(user: int, query: str, channelId: int, page: int = 1, limit: int = 50) -> tuple[rest.MessagePage, int]:
    async with sql.connection() as conn:
        await read_channel_access(conn, user, channelId, Perm.READ_MESSAGE_HISTORY)
        rows, total = await messages.search_page(conn, channelId, query, limit, offset=(page - 1) * limit)
    return views.message_page_view(rows, total, page, limit), 200


async def create_message(user: int, body: dict[str, Any], token_info: dict[str, Any]) -> tuple[rest.Message, int]:
    content = _content(body.get("content"))
    channel_id = body["channelId"]
    async with sql.connection() as conn:
        _, channel = await read_channel_access(conn, user, channel_id, Perm.SEND_MESSAGES)
        if channel.channel_type != "text":
            raise BadRequest("Messages can only be posted in text channels", "not_a_text_channel")
        now = utcnow()
        message_id = await messages.insert(conn, channel_id, user, content, now)
    if message_id is None:  # the channel went away meanwhile
        raise NotFound("Channel not found", "channel_not_found")
    # The author as the bearer check read the account a moment ago.
    view = views.message_fields(message_id, content, user, channel_id, now, now, False,
                                token_info["username"], token_info.get("profilePicture"))
    await hooks.message_event("message-created", channel_id, view)
    return view, 201


async def _moderation(s: AsyncSession, user: int, message_id: int) -> tuple[Message, Channel, str, User | None]:
    """The message, how the caller may change it: "author", "moderator" (MANAGE_MESSAGES
    in the server) or "global_moderator", and the caller's account (None: deleted meanwhile);
    404 for no such message, 403 otherwise."""
    found = await messages.for_change(s, message_id, user)
    if found is None:
        raise NotFound("Message not found", "message_not_found")
    message, channel, actor = found
    own = message.user_id == user
    if actor is not None and is_global_moderator(actor):
        return message, channel, "author" if own else "global_moderator", actor
    access = await server_access(s, user, channel.server_id, Perm.VIEW_CHANNEL)
    if own:
        return message, channel, "author", actor
    access.require(Perm.MANAGE_MESSAGES)
    return message, channel, "moderator", actor


async def update_message(user: int, id: int, body: dict[str, Any]) -> tuple[rest.Message, int]:
    content = _content(body.get("content"))
    async with db.session() as s:
        message, channel, how, actor = await _moderation(s, user, id)
        # Who wrote the words now shown: the author's own edit clears a moderator's name.
        editor = None if how == "author" else actor
        if not await messages.set_content(s, id, content, editor.id if editor is not None else None):
            raise NotFound("Message not found", "message_not_found")  # deleted meanwhile
        if editor is not None:
            audit.record(s, user, "message.edit", "message", id, server_id=channel.server_id,
                         details={"channelId": channel.id, "authorId": message.user_id, "as": how})
        author = await messages.reread_with_author(s, message)
        view = views.message_view(message, author, editor)
    await hooks.message_event("message-updated", message.channel_id, view)
    return view, 200


async def delete_message(user: int, id: int) -> tuple[None, int]:
    async with db.session() as s:
        message, channel, how, _actor = await _moderation(s, user, id)
        author_id, channel_id = message.user_id, message.channel_id
        if not await messages.delete(s, id):
            raise NotFound("Message not found", "message_not_found")  # deleted meanwhile
        if how != "author":
            audit.record(s, user, "message.delete", "message", id, server_id=channel.server_id,
                         details={"channelId": channel.id, "authorId": author_id, "as": how})
    await hooks.message_event("message-deleted", channel_id, {"id": id, "channelId": channel_id})
    return None, 204
