"""Signed-in sessions (table `auth_sessions`): one per login or registration.

A token names its session (`sid`); the bearer check and the folded account reads
(models.permissions) join the session row into the account statement they already run, so a
session that ended (its row deleted) fails its token's next request in every process, with no
statement added. Every place a session ends is a function here:
- end_one: DELETE /api/auth/sessions/{id} and POST /api/auth/logout;
- end_others: POST /api/auth/logout-others and a password change (the caller's session stays);
- end_all: an account blocked by an admin, an admin promoted or reset from the command line
  (a deleted account's rows go with it by the foreign key's cascade).
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextvars import Context
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.storage import sql
from models.tables import AuthSession, User, utcnow

log = logging.getLogger("projectvoice")

USER_AGENT_MAX = 512
IP_MAX = 64


async def create(s: AsyncSession, user_id: int, password_hash: str | None, user_agent: str | None,
                 ip: str | None) -> tuple[AuthSession | None, User | None]:
    """A new session for the account, inside the caller's transaction, only while the account
    is active and (when given) its password hash is still the one the caller verified: the
    account row is locked first (FOR UPDATE on PostgreSQL; SQLite has one writer), so a login
    that raced a password change or a block either ends before it (and that change ends this
    session) or sees it and makes none (None)."""
    res = await s.exec(select(User).where(User.id == user_id).with_for_update()
                       .execution_options(populate_existing=True))
    user = res.first()
    if user is None or not user.is_active:
        return None, user
    if password_hash is not None and user.password_hash != password_hash:
        return None, user
    now = utcnow()
    session = AuthSession(user_id=user_id, user_agent=(user_agent or None) and user_agent[:USER_AGENT_MAX],
                          ip=(ip or None) and ip[:IP_MAX], created_at=now, last_seen_at=now)
    s.add(session)
    await s.flush()
    return session, user


async def list_for(s: AsyncSession, user_id: int) -> list[AuthSession]:
    res = await s.exec(select(AuthSession).where(AuthSession.user_id == user_id)
                       .order_by(col(AuthSession.id).desc()))  # the most recently started first
    return list(res.all())


async def end_one(s: AsyncSession, user_id: int, session_id: int) -> bool:
    """End one of the user's sessions; False when the user has no such session."""
    res = await s.exec(sa.delete(AuthSession).where(col(AuthSession.id) == session_id,
                                                    col(AuthSession.user_id) == user_id))
    return res.rowcount == 1


async def end_others(s: AsyncSession, user_id: int, keep_session_id: int) -> int:
    """End every session of the user but one; how many ended."""
    res = await s.exec(sa.delete(AuthSession).where(col(AuthSession.user_id) == user_id,
                                                    col(AuthSession.id) != keep_session_id))
    return res.rowcount


async def end_all(s: AsyncSession, user_id: int) -> int:
    res = await s.exec(sa.delete(AuthSession).where(col(AuthSession.user_id) == user_id))
    return res.rowcount


# ---------------------------------------------------------------- last seen, throttled
# The bearer check reads the session's last_seen_at with the account; when it is older than
# SEEN_EVERY seconds the write happens in the background, outside the request (and outside its
# statement count), at most once per SEEN_EVERY per session and process, and the UPDATE itself
# is conditional on the stored value being old, so several processes write it about once a minute.
SEEN_EVERY = 60.0
_last_write: dict[int, float] = {}
_pending: set[asyncio.Task[None]] = set()

TOUCH_SQL = ("UPDATE auth_sessions SET last_seen_at = %(now)s WHERE id = %(id)s AND last_seen_at < %(before)s "
             "RETURNING id")


def seen(session_id: int, last_seen_at: datetime | None) -> None:
    """Called with a session's stored last_seen_at on each authenticated request."""
    if last_seen_at is None:
        return
    now = time.time()
    if last_seen_at.timestamp() > now - SEEN_EVERY:
        return
    mono = time.monotonic()
    if _last_write.get(session_id, -SEEN_EVERY) > mono - SEEN_EVERY:
        return
    _last_write[session_id] = mono
    if len(_last_write) > 100_000:
        _last_write.clear()
    try:
        # A fresh context: the request's statement counter and unchecked-claims state stay behind.
        task = Context().run(asyncio.get_running_loop().create_task, _touch(session_id))
    except RuntimeError:
        return
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _touch(session_id: int) -> None:
    now = utcnow()
    try:
        await sql.one(TOUCH_SQL, id=session_id, now=now, before=now - timedelta(seconds=SEEN_EVERY / 2))
    except Exception:  # a database hiccup costs a last-seen time, never a request
        log.debug("last-seen update of session %s failed", session_id, exc_info=True)
