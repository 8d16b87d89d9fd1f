"""What the admin panel reads and changes: site-wide counts, paged user and server lists, account
and server changes conditional on the state just read, and the audit trail's summaries.

A paged list is two statements (the count, then the page); a page of servers brings its
channels in one more, whatever the page size.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import AuditLog, Ban, Channel, Message, Server, ServerMember, User, utcnow


def _like(text: str) -> str:
    """A case-insensitive LIKE pattern matching `text` literally (wildcards escaped)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def _count(s: AsyncSession, q: sa.Select[*tuple[Any, ...]]) -> int:
    res = await s.exec(select(sa.func.count()).select_from(q.subquery()))
    return int(res.one())


# ---------------------------------------------------------------- stats
async def user_counts(s: AsyncSession) -> list[tuple[str, bool, int]]:
    """(role, is_active, accounts) for every combination present."""
    res = await s.exec(select(User.role, User.is_active, sa.func.count()).group_by(col(User.role), col(User.is_active)))
    return [(role, bool(active), int(n)) for role, active, n in res.all()]


async def server_counts(s: AsyncSession) -> tuple[int, int, int]:
    """(servers, blocked servers, servers with at least one channel), one statement."""
    with_channels = sa.exists().where(col(Channel.server_id) == Server.id)
    res = await s.exec(select(sa.func.count(),
                              sa.func.coalesce(sa.func.sum(sa.case((col(Server.is_blocked), 1), else_=0)), 0),
                              sa.func.coalesce(sa.func.sum(sa.case((with_channels, 1), else_=0)), 0))
                       .select_from(Server))
    total, blocked, channelled = res.one()
    return int(total), int(blocked), int(channelled)


async def channel_counts(s: AsyncSession) -> dict[str, int]:
    """Channels by type."""
    res = await s.exec(select(Channel.type, sa.func.count()).group_by(Channel.type))
    return {kind: int(n) for kind, n in res.all()}


async def message_counts(s: AsyncSession, since: datetime) -> tuple[int, int]:
    """(messages, messages created at or after `since`), one statement."""
    res = await s.exec(select(sa.func.count(),
                              sa.func.coalesce(sa.func.sum(sa.case((col(Message.created_at) >= since, 1),
                                                                   else_=0)), 0))
                       .select_from(Message))
    total, recent = res.one()
    return int(total), int(recent)


# ---------------------------------------------------------------- users
async def users_page(s: AsyncSession, offset: int, limit: int, search: str | None = None, role: str | None = None,
                     active: bool | None = None) -> tuple[int, list[User]]:
    """(matching accounts, one page of them, newest first). `search` matches a part of the
    username or email, case-insensitively and literally."""
    q = select(User)
    if search:
        pattern = _like(search)
        q = q.where(sa.or_(sa.func.lower(User.username).like(pattern, escape="\\"),
                           sa.func.lower(User.email).like(pattern, escape="\\")))
    if role:
        q = q.where(User.role == role)
    if active is not None:
        q = q.where(col(User.is_active) if active else sa.not_(col(User.is_active)))
    total = await _count(s, q)
    res = await s.exec(q.order_by(col(User.created_at).desc(), col(User.id).desc()).offset(offset).limit(limit))
    return total, list(res.all())


async def change_user(s: AsyncSession, user: User, role: str | None = None, is_active: bool | None = None) -> bool:
    """Set the account's role and/or active flag, only while they are still what `user` holds
    (as read in this transaction): False when a concurrent change got there first. Blocking an
    account also bumps its token version, so every token it holds stops at once."""
    values: dict[str, Any] = {"updated_at": utcnow()}
    if role is not None:
        values["role"] = role
    if is_active is not None:
        values["is_active"] = is_active
        if is_active is False:
            values["token_version"] = col(User.token_version) + 1
    res = await s.exec(sa.update(User).where(col(User.id) == user.id, col(User.role) == user.role,
                                             col(User.is_active) == user.is_active).values(**values))
    return res.rowcount == 1


async def delete_user(s: AsyncSession, user_id: int) -> bool:
    """Delete an account that is not an administrator (checked in the statement itself); its
    servers, memberships, messages, friendships and blocks go with it (foreign keys). False
    when no such non-admin account was deleted."""
    res = await s.exec(sa.delete(User).where(col(User.id) == user_id, col(User.role) != "admin"))
    return res.rowcount == 1


# ---------------------------------------------------------------- servers
def _member_counts() -> sa.Subquery:
    return (select(col(ServerMember.server_id).label("sid"), sa.func.count().label("n"))
            .group_by(col(ServerMember.server_id)).subquery())


async def get_server(s: AsyncSession, server_id: int) -> Server | None:
    return await s.get(Server, server_id)


async def servers_page(s: AsyncSession, offset: int, limit: int, search: str | None = None,
                       active: bool | None = None) -> tuple[int, list[tuple[Server, int]]]:
    """(matching servers, one page of (server, member count), newest first). `search` matches
    a part of the name, case-insensitively and literally; `active` False means blocked."""
    q = select(Server)
    if search:
        q = q.where(sa.func.lower(Server.name).like(_like(search), escape="\\"))
    if active is not None:
        q = q.where(sa.not_(col(Server.is_blocked)) if active else col(Server.is_blocked))
    total = await _count(s, q)
    counts = _member_counts()
    page_q = (q.add_columns(sa.func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.sid == Server.id)
              .order_by(col(Server.created_at).desc(), col(Server.id).desc()).offset(offset).limit(limit))
    res = await s.execute(page_q)  # execute, not exec: rows of (Server, count), not scalars
    return total, [(server, int(n)) for server, n in res.all()]


async def server_with_member_count(s: AsyncSession, server_id: int) -> tuple[Server, int] | None:
    """The server, re-read (a change earlier in this transaction shows), and its member count."""
    counts = _member_counts()
    res = await s.exec(select(Server, sa.func.coalesce(counts.c.n, 0))
                       .outerjoin(counts, counts.c.sid == Server.id).where(Server.id == server_id))
    row = res.first()
    if row is None:
        return None
    server, n = row
    await s.refresh(server)
    return server, int(n)


async def channels_by_server(s: AsyncSession, server_ids: list[int]) -> dict[int, list[sa.Row[*tuple[Any, ...]]]]:
    """server id -> its channels (rows with id, name, type, server_id) in position order, in one
    statement for all the servers."""
    out: dict[int, list[sa.Row[*tuple[Any, ...]]]] = {sid: [] for sid in server_ids}
    if server_ids:
        res = await s.execute(select(Channel.id, Channel.name, Channel.type, Channel.server_id)
                              .where(col(Channel.server_id).in_(server_ids))
                              .order_by(col(Channel.server_id), col(Channel.position), col(Channel.id)))
        for c in res.all():
            out[c.server_id].append(c)
    return out


async def block_server(s: AsyncSession, server_id: int, reason: str) -> bool:
    """Block the server with `reason`; False when it is already blocked (or gone)."""
    now = utcnow()
    res = await s.exec(sa.update(Server).where(col(Server.id) == server_id, sa.not_(col(Server.is_blocked)))
                       .values(is_blocked=True, block_reason=reason, blocked_at=now, updated_at=now))
    return res.rowcount == 1


async def unblock_server(s: AsyncSession, server_id: int) -> bool:
    """Lift the server's block; False when it is not blocked (or gone)."""
    res = await s.exec(sa.update(Server).where(col(Server.id) == server_id, col(Server.is_blocked))
                       .values(is_blocked=False, block_reason=None, blocked_at=None, updated_at=utcnow()))
    return res.rowcount == 1


async def delete_server(s: AsyncSession, server_id: int) -> bool:
    """Delete the server; channels, messages, members, roles, invites and bans cascade. False
    when it was already gone."""
    res = await s.exec(sa.delete(Server).where(col(Server.id) == server_id))
    return res.rowcount == 1


# ---------------------------------------------------------------- the audit trail and lockouts
async def audit_counts(s: AsyncSession, since: datetime) -> tuple[int, int]:
    """(audit records, records created at or after `since`)."""
    total = int((await s.exec(select(sa.func.count()).select_from(AuditLog))).one())
    recent = int((await s.exec(select(sa.func.count()).select_from(AuditLog)
                               .where(AuditLog.created_at >= since))).one())
    return total, recent


async def newest_audit(s: AsyncSession) -> tuple[AuditLog, User | None] | None:
    """The newest audit record and its actor (None when that account was deleted)."""
    res = await s.exec(select(AuditLog, User).outerjoin(User, col(User.id) == AuditLog.actor_id)
                       .order_by(col(AuditLog.id).desc()).limit(1))
    row = res.first()
    return None if row is None else (row[0], row[1])


async def lockout_counts(s: AsyncSession) -> tuple[int, int, int]:
    """(blocked accounts, blocked servers, server bans)."""
    users = int((await s.exec(select(sa.func.count()).select_from(User)
                              .where(sa.not_(col(User.is_active))))).one())
    servers = int((await s.exec(select(sa.func.count()).select_from(Server)
                                .where(col(Server.is_blocked)))).one())
    bans = int((await s.exec(select(sa.func.count()).select_from(Ban))).one())
    return users, servers, bans


async def audit_actions_since(s: AsyncSession, since: datetime, actions: list[str]) -> list[tuple[str, int]]:
    """(action, records) for the given actions recorded at or after `since`, by action name."""
    res = await s.exec(select(AuditLog.action, sa.func.count())
                       .where(col(AuditLog.created_at) >= since, col(AuditLog.action).in_(actions))
                       .group_by(col(AuditLog.action)).order_by(col(AuditLog.action)))
    return [(action, int(n)) for action, n in res.all()]


async def audit_page(s: AsyncSession, offset: int, limit: int, action: str | None = None,
                     actor_id: int | None = None) -> tuple[int, list[tuple[AuditLog, User | None]]]:
    """(matching audit records, one page of (record, actor or None), newest first)."""
    q = select(AuditLog)
    if action:
        q = q.where(AuditLog.action == action)
    if actor_id is not None:
        q = q.where(AuditLog.actor_id == actor_id)
    total = await _count(s, q)
    res = await s.execute(q.add_columns(User).outerjoin(User, col(User.id) == AuditLog.actor_id)
                          .order_by(col(AuditLog.id).desc()).offset(offset).limit(limit))
    return total, [(entry, actor) for entry, actor in res.all()]
