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
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import BadRequest, Forbidden, NotFound
from core.observability import REQUESTS
from generated import rest
from models import db, membership, views
from models.permissions import is_global_moderator
from models.storage import admin, audit, sessions, sql, users
from models.tables import User, utcnow
from realtime import hooks
from realtime.presence import seen_for, statuses

# Access changes the logs' `access` line counts over the last 24 hours.
ACCESS_ACTIONS = ["user.update", "user.delete", "server.block", "server.unblock", "member.ban",
                  "member.unban", "member.kick"]


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


def _request_counts() -> tuple[int, dict[str, int]]:
    """(requests, {status class: count}) handled by this process, from the HTTP metrics."""
    total = 0
    by_class: dict[str, int] = {}
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




# ---------------------------------------------------------------- who asks
async def _require_staff(s: AsyncSession, user: int) -> User:
    """The caller, when they hold the global moderator or admin role; else 403."""
    me = await users.get(s, user)
    if me is None or not is_global_moderator(me):
        raise Forbidden("Only a moderator or administrator can do this", "admin_required")
    return me


async def _require_admin(s: AsyncSession, user: int) -> User:
    """The caller, when they hold the global admin role; else 403."""
    me = await users.get(s, user)
    if me is None or me.role != "admin":
        raise Forbidden("Only an administrator can do this", "admin_required")
    return me


def _active(status: str | None) -> bool | None:
    """The list filters' `status`: active, blocked, or either."""
    return {"active": True, "blocked": False}.get(status or "")


# ---------------------------------------------------------------- stats
async def stats(user: int) -> tuple[rest.AdminStats, int]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    async with db.session() as s:
        await _require_admin(s, user)
        accounts: dict[str, Any] = {"total": 0, "active": 0, "blocked": 0, "byRole": {}}
        for role, active, n in await admin.user_counts(s):
            accounts["total"] += n
            accounts["active" if active else "blocked"] += n
            accounts["byRole"][role] = accounts["byRole"].get(role, 0) + n
        total, blocked, channelled = await admin.server_counts(s)
        servers = {"total": total, "active": total - blocked, "blocked": blocked, "withChannels": channelled}
        by_type = await admin.channel_counts(s)
        channels = {"total": sum(by_type.values()), "text": by_type.get("text", 0), "voice": by_type.get("voice", 0)}
        total, today_n = await admin.message_counts(s, today)
        messages = {"total": total, "today": today_n}
    return views.admin_stats_view(accounts, servers, channels, messages), 200


# ---------------------------------------------------------------- users
async def list_users(user: int, page: int = 1, limit: int = 20, search: str | None = None,
                     role: str | None = None, status: str | None = None) -> tuple[rest.AdminUserPage, int]:
    async with db.session() as s:
        await _require_staff(s, user)
        total, found = await admin.users_page(s, (page - 1) * limit, limit, search=search, role=role,
                                              active=_active(status))
        seen = await statuses(user, [u.id for u in found if u.id is not None])  # (a stored row's id is always set)
        items = [views.admin_user_view(u, seen) for u in found]
    return views.page_view("users", items, total, page, limit), 200


async def get_user(user: int, id: int) -> tuple[rest.User, int]:
    async with db.session() as s:
        await _require_staff(s, user)
        target = await users.get(s, id)
        if target is None:
            raise NotFound("User not found", "user_not_found")
    return views.admin_user_view(target, await statuses(user, [id])), 200


async def update_user(user: int, id: int, body: dict[str, Any]) -> tuple[rest.User, int]:
    role = body.get("role")
    is_active = body.get("isActive")
    if role is None and is_active is None:
        raise BadRequest("Nothing to change: give role and/or isActive", "validation_error")
    async with db.session() as s:
        await _require_admin(s, user)
        target = await users.get(s, id)
        if target is None:
            raise NotFound("User not found", "user_not_found")
        if id == user and ((role is not None and role != "admin") or is_active is False):
            raise BadRequest("You cannot demote or block yourself", "cannot_modify_self")
        changes: dict[str, Any] = {}
        if role is not None and role != target.role:
            changes["role"] = [target.role, role]
        if is_active is not None and is_active != target.is_active:
            changes["isActive"] = [target.is_active, is_active]
        if changes and id != user and target.role == "admin":
            raise Forbidden("You cannot demote or block another administrator", "target_is_admin")
        if changes:
            # Conditional on the state just read: a concurrent change makes this a clean 400.
            if not await admin.change_user(s, target, role=role if "role" in changes else None,
                                           is_active=is_active if "isActive" in changes else None):
                raise BadRequest("The user changed at the same moment; try again", "concurrent_change")
            if changes.get("isActive") == [True, False]:
                await sessions.end_all(s, id)  # a blocked account's sessions all end
            audit.record(s, user, "user.update", "user", id,
                         details={"username": target.username, **changes})
            await users.refresh(s, target)
    if changes.get("isActive") == [True, False]:
        await hooks.user_gone(id)
    return views.admin_user_view(target, await statuses(user, [id])), 200


async def delete_user(user: int, id: int) -> tuple[rest.MessageResponse, int]:
    async with db.session() as s:
        await _require_admin(s, user)
        if id == user:
            raise BadRequest("You cannot delete your own account from the admin panel", "cannot_modify_self")
        target = await users.get(s, id)
        if target is None:
            raise NotFound("User not found", "user_not_found")
        if target.role == "admin":
            raise Forbidden("You cannot delete another administrator", "target_is_admin")
        owned = await membership.owned_server_ids(s, id)
        audit.record(s, user, "user.delete", "user", id,
                     details={"username": target.username, "ownedServers": owned})
        # Their servers, memberships, messages, friendships and blocks go with them.
        if not await admin.delete_user(s, id):
            raise Forbidden("You cannot delete another administrator", "target_is_admin")
    await hooks.user_gone(id)
    for server_id in owned:
        await hooks.server_closed(server_id)
    return {"message": f"User {target.username} deleted"}, 200


# ---------------------------------------------------------------- servers
async def _server_out(s: AsyncSession, server_id: int) -> rest.AdminServer:
    """The admin view of a server changed in this transaction, re-read with its member count."""
    found = await admin.server_with_member_count(s, server_id)
    if found is None:
        raise NotFound("Server not found", "server_not_found")
    server, count = found
    channels = await admin.channels_by_server(s, [server_id])
    return views.admin_server_view(server, count, channels[server_id])


async def list_servers(user: int, page: int = 1, limit: int = 20, search: str | None = None,
                       status: str | None = None) -> tuple[rest.AdminServerPage, int]:
    async with db.session() as s:
        await _require_staff(s, user)
        total, rows = await admin.servers_page(s, (page - 1) * limit, limit, search=search,
                                               active=_active(status))
        # (A stored row's id is always set: the tests are for the type checker.)
        channels = await admin.channels_by_server(s, [sv.id for sv, _n in rows if sv.id is not None])
        items = [views.admin_server_view(sv, n, channels[sv.id]) for sv, n in rows if sv.id is not None]
    return views.page_view("servers", items, total, page, limit), 200


async def get_server(user: int, id: int) -> tuple[rest.AdminServerDetail, int]:
    async with db.session() as s:
        await _require_staff(s, user)
        server = await admin.get_server(s, id)
        if server is None:
            raise NotFound("Server not found", "server_not_found")
        (detail,) = await membership.server_details(await sql.of_session(s), [server], seen_for(user))
    return views.admin_server_detail_view(detail), 200


async def block_server(user: int, id: int, body: dict[str, Any]) -> tuple[rest.AdminServer, int]:
    reason = (body.get("reason") or "").strip()
    if len(reason) < 3:
        raise BadRequest("reason must be at least 3 characters", "validation_error")
    async with db.session() as s:
        await _require_admin(s, user)
        if await admin.get_server(s, id) is None:
            raise NotFound("Server not found", "server_not_found")
        if not await admin.block_server(s, id, reason):
            raise BadRequest("The server is already blocked", "already_blocked")
        audit.record(s, user, "server.block", "server", id, server_id=id, details={"reason": reason})
        out = await _server_out(s, id)
    await hooks.server_closed(id)
    return out, 200


async def unblock_server(user: int, id: int, body: dict[str, Any] | None = None) -> tuple[rest.AdminServer, int]:
    async with db.session() as s:
        await _require_admin(s, user)
        server = await admin.get_server(s, id)
        if server is None:
            raise NotFound("Server not found", "server_not_found")
        reason = server.block_reason
        if not await admin.unblock_server(s, id):
            raise BadRequest("The server is not blocked", "not_blocked")
        audit.record(s, user, "server.unblock", "server", id, server_id=id, details={"previousReason": reason})
        out = await _server_out(s, id)
    return out, 200


async def delete_server(user: int, id: int) -> tuple[rest.MessageResponse, int]:
    """Like the owner's delete: channels, messages, members, roles, invites and bans cascade."""
    async with db.session() as s:
        await _require_admin(s, user)
        server = await admin.get_server(s, id)
        if server is None:
            raise NotFound("Server not found", "server_not_found")
        audit.record(s, user, "server.delete", "server", id, server_id=id,
                     details={"name": server.name, "ownerId": server.owner_id})
        if not await admin.delete_server(s, id):
            raise NotFound("Server not found", "server_not_found")
    await hooks.server_closed(id)
    return {"message": f"Server {server.name} deleted"}, 200


# ---------------------------------------------------------------- logs
def _ago(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return views.iso(dt)


async def logs(user: int, action: str | None = None, actorId: int | None = None, page: int = 1,
               limit: int = 50) -> tuple[rest.AdminLogs, int]:
    day_ago = utcnow() - timedelta(days=1)
    async with db.session() as s:
        await _require_admin(s, user)
        # system: the audit trail as a whole and its newest record.
        n_audit, n_day = await admin.audit_counts(s, day_ago)
        newest = await admin.newest_audit(s)
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
        blocked_users, blocked_servers, bans = await admin.lockout_counts(s)
        recent = ", ".join(f"{a} {n}" for a, n in await admin.audit_actions_since(s, day_ago, ACCESS_ACTIONS))
        access = (f"{blocked_users} blocked accounts, {blocked_servers} blocked servers, {bans} server bans; "
                  f"access changes in the last 24 h: {recent or 'none'}")
        n, by_class = _request_counts()
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(by_class.items()))
        access += f"; {n} requests handled by this process since start ({detail or 'none'})"
        total, rows = await admin.audit_page(s, (page - 1) * limit, limit, action=action, actor_id=actorId)
        entries = [views.audit_entry_view(e, a) for e, a in rows]
    return views.admin_logs_view(system, errors, access, entries, total, page, limit), 200
