"""What the REST side tells the realtime side after a database commit.

Handlers call these after their transaction has committed; each one is safe to call when no
Socket.IO server is running (tests of the REST side alone, command-line tools), and none of them
raises: a realtime failure is logged and never turns a committed REST call into an error.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from generated.events import ChatMessage, MessageDeleted
from realtime import running

if TYPE_CHECKING:
    from realtime.presence import Presence

log = logging.getLogger("projectvoice.realtime")


async def _call(name: str, *args: object) -> None:
    rt = running.current()
    if rt is None:
        return
    try:
        await getattr(rt, name)(*args)
    except Exception:
        log.exception("realtime hook %s%r failed", name, args)


async def user_gone(user_id: int) -> None:
    """An account was deleted or blocked: its sockets, in every process, leave their voice rooms and
    live-message channels, get `error` (`account_unavailable`) and are disconnected."""
    await _call("user_gone", user_id)


async def member_removed(server_id: int, user_id: int) -> None:
    """A member was kicked, banned or left: drop their sockets from the server's voice rooms
    and from its channels' live message events."""
    await _call("member_removed", server_id, user_id)


async def permissions_changed(server_id: int, user_id: int | None = None) -> None:
    """A role's bits or a member's roles changed in a server: the sockets of its members (of one
    member when given) are checked again. Who lost CONNECT leaves their voice room; who lost
    READ_MESSAGE_HISTORY (or VIEW_CHANNEL) stops receiving a channel's live messages."""
    await _call("permissions_changed", server_id, user_id)


async def server_closed(server_id: int) -> None:
    """A server was blocked or deleted: empty its voice rooms."""
    await _call("server_closed", server_id)


async def channel_deleted(channel_id: int) -> None:
    """A channel was deleted: empty its voice room."""
    await _call("channel_deleted", channel_id)


async def message_event(event: str, channel_id: int, payload: ChatMessage | MessageDeleted) -> None:
    """message-created / message-updated / message-deleted for a text channel's subscribers."""
    await _call("message_event", event, channel_id, payload)


async def voice_state_changed(server_id: int, user_id: int, is_muted: bool, is_deafened: bool) -> None:
    """A server mute/deafen: force the member's mic state in their voice room."""
    await _call("voice_state_changed", server_id, user_id, is_muted, is_deafened)


async def revalidate_user_sockets(user_id: int) -> None:
    """The user's sessions changed (password changed, a session ended): every socket of theirs,
    in every process, is checked again with the token check that identified it
    (models.auth.user_for_token); those that fail leave their voice room (the room gets
    `user-disconnected`) and their live-message channels, get `error` (`session_ended`) and are
    disconnected."""
    await _call("revalidate_user_sockets", user_id)


async def channel_type_changed(channel_id: int, channel_type: str) -> None:
    """A channel's type changed: a former voice channel's room is emptied (`not_a_voice_channel`),
    a former text channel's live message events end."""
    await _call("channel_type_changed", channel_id, channel_type)
async def member_joined(server_id: int, user_id: int) -> None:
    """A user became a member of a server (created it, accepted an invite, was added): their
    sockets start receiving the presence of its members."""
    await _call("presence_rooms", server_id, user_id, True)


async def presence_choice_changed(user_id: int, status: str) -> None:
    """PUT /api/users/ changed the user's chosen status: tell who sees them, if they are online."""
    rt = _current_presence()
    if rt is None:
        return
    try:
        await rt.choice_changed(user_id, status)
    except Exception:
        log.exception("realtime hook presence_choice_changed failed")


def _current_presence() -> Presence | None:
    rt = running.current()
    return getattr(rt, "presence", None) if rt is not None else None
