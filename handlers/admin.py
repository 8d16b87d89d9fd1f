"""The admin panel: statistics, users, servers and the audit log.

Roles, as the seed states them: list/read users and servers need the global `moderator` or
`admin` role; stats, every change, and the logs need `admin`. Every change writes an audit
record in its own transaction and tells the realtime side after the commit.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from datetime import datetime, timedelta, UTC

import sqlalchemy as sa
from sqlmodel import select

from models.storage import audit, sessions, sql
from models import db, membership, views
from models.tables import AuditLog, Ban, Channel, Message, Server, ServerMember, User, utcnow
from core.errors import BadRequest, Forbidden, NotFound
from realtime import hooks
from realtime.presence import seen_for, statuses

STAFF = ("moderator", "admin")


# ---------------------------------------------------------------- error log summary
class _ErrorCounter(logging.Handler):
    """Counts ERROR-and-above log records of this process (the `errors` summary line)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.total = 0
        self.recent: deque[float] = deque(maxlen=10000)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "_pv_error_counted", False):
            return  # seen by both handlers when "projectvoice" propagates to the root
        record._pv_error_counted = True
        self.total += 1
        self.recent.append(record.created)
        self.last = f"{record.name}: {record.getMessage()[:120]}"

    def last_day(self) -> int:
        cutoff = time.time() - 86400
        return sum(1 for t in self.recent if t >= cutoff)


_errors = _ErrorCounter()
# The root for third-party loggers; "projectvoice" too, because its JSON logging setup stops
# propagation there.
logging.getLogger().addHandler(_errors)
logging.getLogger("projectvoice").addHandler(_errors)


def _request_counts() -> tuple[int, dict[str, int]] | None:
    """(requests, {status class: count}) handled by this process, from the HTTP metrics."""
    try:
        from core.observability import REQUESTS
    except ImportError:
        return None
    total, by_class = 0, {}
    for metric in REQUESTS.collect():
        for sample in metric.samples:
            if not sample.name.endswith("_total"):
                continue
            n = int(sample.value)
            total += n
            status = sample.labels.get("status", "")
            key = status if status in ("401", "403") else f"{status[:1]}xx"
            by_class[key] = by_class.get(key, 0) + n
    return total, by_class
_STARTED = time.time()


# ---------------------------------------------------------------- helpers
async def _require(s, user: int, roles: tuple[str, ...]) -> User:
    me = await s.get(User, user)
    if me is None or me.role not in roles:
        need = "an administrator" if roles == ("admin",) else "a moderator or administrator"
        raise Forbidden(f"Only {need} can do this", "admin_required")
    return me


def _like(text: str) -> str:
    """A case-insensitive LIKE pattern matching `text` literally (wildcards escaped)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def _count(s, q) -> int:
    res = await s.exec(select(sa.func.count()).select_from(q.subquery()))
    return int(res.one())


def _status_filter(column, status: str | None):
    if status == "active":
        return column
    if status == "blocked":
        return sa.not_(column)
    return None


# ---------------------------------------------------------------- stats
async def stats(user: int):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    async with db.session() as s:
        await _require(s, user, ("admin",))
        res = await s.exec(select(User.role, User.is_active, sa.func.count()).group_by(User.role, User.is_active))
        users = {"total": 0, "active": 0, "blocked": 0, "byRole": {}}
        for role, active, n in res.all():
            users["total"] += n
            users["active" if active else "blocked"] += n
            users["byRole"][role] = users["byRole"].get(role, 0) + n
        with_channels = sa.exists().where(Channel.server_id == Server.id)
        res = await s.exec(select(sa.func.count(),
                                  sa.func.coalesce(sa.func.sum(sa.case((Server.is_blocked, 1), else_=0)), 0),
                                  sa.func.coalesce(sa.func.sum(sa.case((with_channels, 1), else_=0)), 0))
                           .select_from(Server))
        total, blocked, channelled = res.one()
        total, blocked, channelled = int(total), int(blocked), int(channelled)
        servers = {"total": total, "active": total - blocked, "blocked": blocked, "withChannels": channelled}
        res = await s.exec(select(Channel.type, sa.func.count()).group_by(Channel.type))
        by_type = dict(res.all())
        channels = {"total": sum(by_type.values()), "text": by_type.get("text", 0), "voice": by_type.get("voice", 0)}
        res = await s.exec(select(sa.func.count(),
                                  sa.func.coalesce(sa.func.sum(sa.case((Message.created_at >= today, 1),
                                                                       else_=0)), 0))
                           .select_from(Message))
        total, today_n = res.one()
        messages = {"total": total, "today": today_n}
    return views.admin_stats_view(users, servers, channels, {k: int(v) for k, v in messages.items()}), 200


# ---------------------------------------------------------------- users
async def list_users(user: int, page: int = 1, limit: int = 20, search: str | None = None,
                     role: str | None = None, status: str | None = None):
    async with db.session() as s:
        await _require(s, user, STAFF)
        q = select(User)
        if search:
            pattern = _like(search)
            q = q.where(sa.or_(sa.func.lower(User.username).like(pattern, escape="\\"),
                               sa.func.lower(User.email).like(pattern, escape="\\")))
        if role:
            q = q.where(User.role == role)
        cond = _status_filter(User.is_active, status)
        if cond is not None:
            q = q.where(cond)
        total = await _count(s, q)
        res = await s.exec(q.order_by(User.created_at.desc(), User.id.desc())
                           .offset((page - 1) * limit).limit(limit))
        found = res.all()
        seen = await statuses(user, [u.id for u in found])
        items = [views.admin_user_view(u, seen) for u in found]
    return views.page_view("users", items, total, page, limit), 200


async def get_user(user: int, id: int):
    async with db.session() as s:
        await _require(s, user, STAFF)
        target = await s.get(User, id)
        if target is None:
            raise NotFound("User not found", "user_not_found")
    return views.admin_user_view(target, await statuses(user, [id])), 200


async def update_user(user: int, id: int, body: dict):
    role = body.get("role")
    is_active = body.get("isActive")
    if role is None and is_active is None:
        raise BadRequest("Nothing to change: give role and/or isActive", "validation_error")
    async with db.session() as s:
        await _require(s, user, ("admin",))
        target = await s.get(User, id)
        if target is None:
            raise NotFound("User not found", "user_not_found")
        if id == user and ((role is not None and role != "admin") or is_active is False):
            raise BadRequest("You cannot demote or block yourself", "cannot_modify_self")
        changes: dict = {}
        if role is not None and role != target.role:
            changes["role"] = [target.role, role]
        if is_active is not None and is_active != target.is_active:
            changes["isActive"] = [target.is_active, is_active]
        if changes and id != user and target.role == "admin":
            raise Forbidden("You cannot demote or block another administrator", "target_is_admin")
        if changes:
            values: dict = {"updated_at": utcnow()}
            if "role" in changes:
                values["role"] = role
            if "isActive" in changes:
                values["is_active"] = is_active
                if is_active is False:
                    values["token_version"] = User.token_version + 1  # every token stops at once
            # Conditional on the state just read: a concurrent change makes this a clean 400.
            res = await s.exec(sa.update(User).where(User.id == id, User.role == target.role,
                                                     User.is_active == target.is_active).values(**values))
            if res.rowcount != 1:
                raise BadRequest("The user changed at the same moment; try again", "concurrent_change")
            if changes.get("isActive") == [True, False]:
                await sessions.end_all(s, id)  # a blocked account's sessions all end
            audit.record(s, user, "user.update", "user", id,
                         details={"username": target.username, **changes})
            await s.refresh(target)
    if changes.get("isActive") == [True, False]:
        await hooks.user_gone(id)
    return views.admin_user_view(target, await statuses(user, [id])), 200


async def delete_user(user: int, id: int):
    async with db.session() as s:
        await _require(s, user, ("admin",))
        if id == user:
            raise BadRequest("You cannot delete your own account from the admin panel", "cannot_modify_self")
        target = await s.get(User, id)
        if target is None:
            raise NotFound("User not found", "user_not_found")
        if target.role == "admin":
            raise Forbidden("You cannot delete another administrator", "target_is_admin")
        res = await s.exec(select(Server.id).where(Server.owner_id == id))
        owned = list(res.all())
        audit.record(s, user, "user.delete", "user", id,
                     details={"username": target.username, "ownedServers": owned})
        # Their servers, memberships, messages, friendships and blocks go with them (foreign keys).
        res = await s.exec(sa.delete(User).where(User.id == id, User.role != "admin"))
        if res.rowcount != 1:
            raise Forbidden("You cannot delete another administrator", "target_is_admin")
    await hooks.user_gone(id)
    for server_id in owned:
        await hooks.server_closed(server_id)
    return {"message": f"User {target.username} deleted"}, 200


# ---------------------------------------------------------------- servers
def _member_counts():
    return (select(ServerMember.server_id.label("sid"), sa.func.count().label("n"))
            .group_by(ServerMember.server_id).subquery())


async def _channels_by_server(s, server_ids: list[int]) -> dict[int, list]:
    """server id -> its channels (id, name, type), in one statement for the whole page."""
    out: dict[int, list] = {sid: [] for sid in server_ids}
    if server_ids:
        res = await s.execute(select(Channel.id, Channel.name, Channel.type, Channel.server_id)
                              .where(Channel.server_id.in_(server_ids))
                              .order_by(Channel.server_id, Channel.position, Channel.id))
        for c in res.all():
            out[c.server_id].append(c)
    return out


async def _server_out(s, server: Server, count: int) -> dict:
    channels = await _channels_by_server(s, [server.id])
    return views.admin_server_view(server, count, channels[server.id])


async def _server_with_count(s, id: int) -> tuple[Server, int]:
    counts = _member_counts()
    res = await s.exec(select(Server, sa.func.coalesce(counts.c.n, 0))
                       .outerjoin(counts, counts.c.sid == Server.id).where(Server.id == id))
    row = res.first()
    if row is None:
        raise NotFound("Server not found", "server_not_found")
    return row[0], int(row[1])


async def list_servers(user: int, page: int = 1, limit: int = 20, search: str | None = None,
                       status: str | None = None):
    async with db.session() as s:
        await _require(s, user, STAFF)
        q = select(Server)
        if search:
            q = q.where(sa.func.lower(Server.name).like(_like(search), escape="\\"))
        cond = _status_filter(sa.not_(Server.is_blocked), status)
        if cond is not None:
            q = q.where(cond)
        total = await _count(s, q)
        counts = _member_counts()
        page_q = (q.add_columns(sa.func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.sid == Server.id)
                  .order_by(Server.created_at.desc(), Server.id.desc()).offset((page - 1) * limit).limit(limit))
        res = await s.execute(page_q)  # execute, not exec: rows of (Server, count), not scalars
        rows = res.all()
        channels = await _channels_by_server(s, [sv.id for sv, _n in rows])
        items = [views.admin_server_view(sv, int(n), channels[sv.id]) for sv, n in rows]
    return views.page_view("servers", items, total, page, limit), 200


async def get_server(user: int, id: int):
    async with db.session() as s:
        await _require(s, user, STAFF)
        server = await s.get(Server, id)
        if server is None:
            raise NotFound("Server not found", "server_not_found")
        (detail,) = await membership.server_details(await sql.of_session(s), [server], seen_for(user))
    return views.admin_server_detail_view(detail), 200


async def block_server(user: int, id: int, body: dict):
    reason = (body.get("reason") or "").strip()
    if len(reason) < 3:
        raise BadRequest("reason must be at least 3 characters", "validation_error")
    async with db.session() as s:
        await _require(s, user, ("admin",))
        if await s.get(Server, id) is None:
            raise NotFound("Server not found", "server_not_found")
        now = utcnow()
        res = await s.exec(sa.update(Server).where(Server.id == id, sa.not_(Server.is_blocked))
                           .values(is_blocked=True, block_reason=reason, blocked_at=now, updated_at=now))
        if res.rowcount != 1:
            raise BadRequest("The server is already blocked", "already_blocked")
        audit.record(s, user, "server.block", "server", id, server_id=id, details={"reason": reason})
        server, count = await _server_with_count(s, id)
        await s.refresh(server)
        out = await _server_out(s, server, count)
    await hooks.server_closed(id)
    return out, 200


async def unblock_server(user: int, id: int, body: dict | None = None):
    async with db.session() as s:
        await _require(s, user, ("admin",))
        server = await s.get(Server, id)
        if server is None:
            raise NotFound("Server not found", "server_not_found")
        reason = server.block_reason
        res = await s.exec(sa.update(Server).where(Server.id == id, Server.is_blocked)
                           .values(is_blocked=False, block_reason=None, blocked_at=None, updated_at=utcnow()))
        if res.rowcount != 1:
            raise BadRequest("The server is not blocked", "not_blocked")
        audit.record(s, user, "server.unblock", "server", id, server_id=id, details={"previousReason": reason})
        server, count = await _server_with_count(s, id)
        await s.refresh(server)
        out = await _server_out(s, server, count)
    return out, 200


async def delete_server(user: int, id: int):
    """Like the owner's delete: channels, messages, members, roles, invites and bans cascade."""
    async with db.session() as s:
        await _require(s, user, ("admin",))
        server = await s.get(Server, id)
        if server is None:
            raise NotFound("Server not found", "server_not_found")
        audit.record(s, user, "server.delete", "server", id, server_id=id,
                     details={"name": server.name, "ownerId": server.owner_id})
        res = await s.exec(sa.delete(Server).where(Server.id == id))
        if res.rowcount != 1:
            raise NotFound("Server not found", "server_not_found")
    await hooks.server_closed(id)
    return {"message": f"Server {server.name} deleted"}, 200


# ---------------------------------------------------------------- logs
def _ago(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return views.iso(dt)


async def logs(user: int, action: str | None = None, actorId: int | None = None, page: int = 1,
               limit: int = 50):
    day_ago = utcnow() - timedelta(days=1)
    async with db.session() as s:
        await _require(s, user, ("admin",))
        # system: the audit trail as a whole and its newest record.
        n_audit = int((await s.exec(select(sa.func.count()).select_from(AuditLog))).one())
        n_day = int((await s.exec(select(sa.func.count()).select_from(AuditLog)
                                  .where(AuditLog.created_at >= day_ago))).one())
        res = await s.exec(select(AuditLog, User).outerjoin(User, User.id == AuditLog.actor_id)
                           .order_by(AuditLog.id.desc()).limit(1))
        newest = res.first()
        uptime = int(time.time() - _STARTED)
        system = f"{n_audit} audit records, {n_day} in the last 24 h; process up {uptime} s"
        if newest is not None:
            entry, actor = newest
            who = actor.username if actor is not None else "a deleted account"
            system += f"; last: {entry.action} by {who} at {_ago(entry.created_at)}"
        # errors: error-level log records of this process.
        errors = f"{_errors.total} errors logged since start, {_errors.last_day()} in the last 24 h"
        if _errors.last:
            errors += f"; last: {_errors.last}"
        # access: what is currently locked out, and access changes in the last 24 h.
        blocked_users = int((await s.exec(select(sa.func.count()).select_from(User)
                                          .where(sa.not_(User.is_active)))).one())
        blocked_servers = int((await s.exec(select(sa.func.count()).select_from(Server)
                                            .where(Server.is_blocked))).one())
        bans = int((await s.exec(select(sa.func.count()).select_from(Ban))).one())
        res = await s.exec(select(AuditLog.action, sa.func.count())
                           .where(AuditLog.created_at >= day_ago,
                                  AuditLog.action.in_(["user.update", "user.delete", "server.block",
                                                       "server.unblock", "member.ban", "member.unban",
                                                       "member.kick"]))
                           .group_by(AuditLog.action).order_by(AuditLog.action))
        recent = ", ".join(f"{a} {n}" for a, n in res.all()) or "none"
        access = (f"{blocked_users} blocked accounts, {blocked_servers} blocked servers, {bans} server bans; "
                  f"access changes in the last 24 h: {recent}")
        counts = _request_counts()
        if counts is not None:
            n, by_class = counts
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(by_class.items()))
            access += f"; {n} requests handled by this process since start ({detail or 'none'})"
        q = select(AuditLog)
        if action:
            q = q.where(AuditLog.action == action)
        if actorId is not None:
            q = q.where(AuditLog.actor_id == actorId)
        total = await _count(s, q)
        res = await s.execute(q.add_columns(User).outerjoin(User, User.id == AuditLog.actor_id)
                           .order_by(AuditLog.id.desc()).offset((page - 1) * limit).limit(limit))
        entries = [views.audit_entry_view(e, a) for e, a in res.all()]
    return views.admin_logs_view(system, errors, access, entries, total, page, limit), 200
