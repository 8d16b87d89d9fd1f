"""The audit trail: administrative and moderation actions, written in the action's transaction."""
from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import AuditLog


def record(s: AsyncSession, actor_id: int | None, action: str, target_type: str, target_id: int | None = None,
           server_id: int | None = None, details: dict[str, Any] | None = None) -> AuditLog:
    """Add an audit row to session `s`; it commits (or rolls back) with the action itself.

    Actions in use: user.update, user.delete, server.block, server.unblock, server.delete,
    member.kick, member.ban, member.unban, member.role, member.roles, member.voice,
    role.create, role.update, role.delete, role.assign, role.unassign, server.owner_transfer,
    message.delete (by a moderator).
    """
    entry = AuditLog(actor_id=actor_id, action=action, target_type=target_type, target_id=target_id,
                     server_id=server_id, details=details)
    s.add(entry)
    return entry
