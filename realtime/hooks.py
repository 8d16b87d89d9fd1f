"""What the REST side tells the realtime side after a database commit.

Handlers call these after their transaction has committed; each one is safe to call when no
Socket.IO server is running (tests of the REST side alone, command-line tools).
"""
from __future__ import annotations


async def user_gone(user_id: int) -> None:
    """An account was deleted or blocked: drop its sockets from voice rooms."""


async def member_removed(server_id: int, user_id: int) -> None:
    """A member was kicked, banned or left: drop their sockets from the server's voice rooms."""


async def server_closed(server_id: int) -> None:
    """A server was blocked or deleted: empty its voice rooms."""


async def channel_deleted(channel_id: int) -> None:
    """A channel was deleted: empty its voice room."""


async def message_event(event: str, channel_id: int, payload: dict) -> None:
    """message-created / message-updated / message-deleted for a text channel's subscribers."""


async def voice_state_changed(server_id: int, user_id: int, is_muted: bool, is_deafened: bool) -> None:
    """A server mute/deafen: force the member's mic state in their voice room."""
