"""Hand-written SQL on the driver's own connection, for the statements every request runs.

Why (issue 9, measured with bench/ and py-spy): on these machines SQLAlchemy spends 0.25-0.5 ms
of CPU per statement (statement building, cache keys, result machinery), a pool checkout 0.4 ms
more, and the ORM an object per row on top; psycopg's own pool and cursor take 0.15 ms for the
whole round trip. So the bearer check, the permission check, the server list and read, message
pages, search and posting run here, and everything else stays on SQLModel (models/db.py), whose
migrations own the schema these statements read.

- SQL is written once in psycopg's `%(name)s` style; on SQLite the names become `:name`.
- Every statement runs in autocommit mode: each is atomic on its own, and under READ COMMITTED
  a statement sees its own snapshot anyway. Several statements that must commit together go
  through models/db.py's sessions instead.
- Rows are named tuples. SQLite hands back text and 0/1 where PostgreSQL hands back timestamps
  and booleans, so on SQLite result columns named `*_at` are parsed as UTC timestamps and
  `is_*` become booleans: name result columns that way.
- PostgreSQL: a psycopg_pool.AsyncConnectionPool beside SQLAlchemy's (each DB_POOL_SIZE at
  most), with the same libpq options and the same ping of connections that sat idle.
  SQLite: SQLAlchemy's single pooled aiosqlite connection, so writes stay serialised.
- Failures to reach the database surface as psycopg/sqlite3 OperationalError or a pool timeout,
  which core/errors.py answers with 503 like SQLAlchemy's (models.db.is_database_unavailable).
"""
from __future__ import annotations

import asyncio
import functools
import re
import time
import weakref
from collections import namedtuple
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from core import diagnostics
from core.settings import Settings

_pool = None  # psycopg_pool.AsyncConnectionPool on PostgreSQL, None on SQLite
_started = False
# Overload is not an outage: a request first queues (up to DB_POOL_WAIT) for one of the pool's
# max_size slots; holding one, a connection is idle in the pool or the pool may open one, so the
# pool's own wait (DB_TIMEOUT) runs out only when the database does not answer (503).
_slots: asyncio.Semaphore | None = None
_pool_wait = 30.0
_last_failure = 0.0  # monotonic time the pool last failed to produce a connection
_killed_at = 0.0  # monotonic time a connection was last found killed under a statement


def _libpq_url(url: str) -> str:
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


async def startup(settings: Settings) -> None:
    """Open the PostgreSQL pool (nothing to do on SQLite). Connections are made lazily, so a
    database that is down at start-up is a 503 per request, as with SQLAlchemy's pool."""
    global _pool, _started, _slots, _pool_wait
    _started = True
    if settings.async_database_url.startswith("sqlite"):
        _pool = None
        return
    from psycopg_pool import AsyncConnectionPool

    from models import db

    size = max(1, settings.db_pool_size)
    _slots, _pool_wait = asyncio.Semaphore(size), settings.db_pool_wait
    _pool = AsyncConnectionPool(
        _libpq_url(settings.async_database_url), min_size=1, max_size=size,
        timeout=settings.db_timeout, max_idle=300, max_lifetime=1800, open=False, configure=_opened,
        kwargs={"autocommit": True, "row_factory": _namedtuple_rows, **db.pg_connect_args(settings),
                # Timestamps come back in UTC, which views.iso() formats without converting.
                "options": "-c TimeZone=UTC"},
    )
    await _pool.open(wait=False)


# The same disconnect handling as models/db.py's engine: a connection that sat idle in the pool
# longer than db.PING_AFTER_IDLE (where a database restart leaves dead ones) is pinged before
# use, and a dead one goes back to the pool, which drops it, for another. (psycopg_pool's own
# `check` hook left a waiting request to time out after a restart: 3.3.3, measured.)
_idle_since: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def _opened(raw) -> None:
    """A connection the pool opened counts as idle from then on: one that waits unused in the
    pool (the pool opens them ahead of demand) is pinged like any other before its first use."""
    _idle_since[raw] = time.monotonic()


async def _getconn():
    """A slot, then a live connection: the slot's wait is DB_POOL_WAIT (overload), the pool's is
    DB_TIMEOUT (a database that does not answer)."""
    from psycopg_pool import PoolTimeout

    queued_at = time.monotonic()
    try:
        async with asyncio.timeout(_pool_wait):
            await _slots.acquire()
    except TimeoutError:
        raise PoolTimeout(f"no pooled connection free within DB_POOL_WAIT ({_pool_wait:g} s)") from None
    try:
        if _last_failure > queued_at:
            # The database stopped answering while this request queued: answer now rather than
            # wait DB_TIMEOUT again behind every request ahead of it.
            raise PoolTimeout("the database did not answer")
        return await _live_conn()
    except BaseException:
        _slots.release()
        raise


async def _live_conn():
    """A connection from the pool, pinged if it sat idle (the failures of the pool producing one,
    psycopg_pool.PoolTimeout included, are OperationalErrors: the outage signal)."""
    global _last_failure
    import psycopg

    from models import db

    try:
        return await _checked_conn(psycopg, db)
    except psycopg.OperationalError:
        _last_failure = time.monotonic()
        raise


async def _checked_conn(psycopg, db):
    for _ in range(_pool.max_size + 1):
        raw = await _pool.getconn()
        since = _idle_since.pop(raw, None)
        # Pinged: a connection idle for a while, or any that was idle when one was found killed
        # (a restart kills them all; SQLAlchemy's pool likewise renews itself on a disconnect).
        if since is None or (time.monotonic() - since < db.PING_AFTER_IDLE and since > _killed_at):
            return raw
        try:
            await raw.execute("SELECT 1")
            return raw
        except psycopg.OperationalError:
            await _pool.putconn(raw)
    return await _pool.getconn()


async def _putconn(raw) -> None:
    _idle_since[raw] = time.monotonic()
    try:
        await _pool.putconn(raw)
    finally:
        _slots.release()


async def shutdown() -> None:
    global _pool, _started
    _started = False
    if _pool is not None:
        await _pool.close()
        _pool = None


# ---------------------------------------------------------------- SQLite adaptation

_PARAM = re.compile(r"%\((\w+)\)s")


@lru_cache(maxsize=512)
def _sqlite_sql(sql: str) -> str:
    return _PARAM.sub(r":\1", sql).replace("%%", "%")


def _sqlite_param(value: Any) -> Any:
    # The storage format SQLAlchemy's SQLite DateTime writes and reads (naive UTC).
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _sqlite_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name.endswith("_at") and isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if name.startswith("is_"):
        return bool(value)
    return value


@lru_cache(maxsize=256)
def _row_type(names: tuple[str, ...]):
    return namedtuple("Row", names)


class _SqliteConnection:
    """The aiosqlite connection behind SQLAlchemy's pool, with psycopg's calling convention."""

    def __init__(self, raw):
        self.raw = raw

    async def fetch(self, sql: str, params: dict) -> list:
        async with self.raw.execute(_sqlite_sql(sql), {k: _sqlite_param(v) for k, v in params.items()}) as cur:
            rows = await cur.fetchall()
            if cur.description is None:
                return []
            names = tuple(d[0] for d in cur.description)
        row_type = _row_type(names)
        return [row_type(*(_sqlite_value(n, v) for n, v in zip(names, r, strict=True))) for r in rows]


def _namedtuple_rows(cursor):
    """psycopg's namedtuple_row with the per-row step in C: its class for these columns, each row
    made by tuple.__new__ (psycopg's `_make` is a Python call per row; a page has fifty)."""
    from psycopg.rows import namedtuple_row

    make = namedtuple_row(cursor)
    row_type = getattr(make, "__self__", None)  # the namedtuple class of the bound `_make`
    return functools.partial(tuple.__new__, row_type) if isinstance(row_type, type) else make


def _is_read(sql: str) -> bool:
    """A statement that only reads: safe to send again after its connection died under it."""
    text = sql.lstrip().upper()
    if not text.startswith(("SELECT", "WITH")):
        return False
    return not any(word in text for word in ("INSERT ", "UPDATE ", "DELETE ", "FOR UPDATE", "FOR SHARE"))


class _PgConnection:
    def __init__(self, raw, pooled: bool = False):
        self.raw = raw
        # A pool connection of its own (connection()), not a session's: a read that meets it
        # killed (a database restart, an administrator's terminate) is sent once more on a fresh
        # one, so a restart while idle costs no request. Writes are not resent (one might have
        # committed before the connection died), nor statements inside a session's transaction.
        self.pooled = pooled

    async def fetch(self, sql: str, params: dict) -> list:
        global _killed_at
        try:
            return await self._fetch(sql, params)
        except Exception as exc:
            killed = _killed(self.raw, exc)
            if killed:
                _killed_at = time.monotonic()
            if not (self.pooled and killed and _is_read(sql)):
                raise
        # The dead connection goes back (the pool drops it) and a live one takes its place,
        # under the same slot.
        dead, self.raw = self.raw, None
        await _pool.putconn(dead)
        self.raw = await _live_conn()
        return await self._fetch(sql, params)

    async def _fetch(self, sql: str, params: dict) -> list:
        # The row factory per cursor: a session's connection (of_session) keeps its own. Every
        # statement here returns rows (INSERT ... RETURNING included).
        async with self.raw.cursor(row_factory=_namedtuple_rows) as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()


def _killed(raw, exc: BaseException) -> bool:
    """The connection died under the statement (it was fine when the pool handed it out)."""
    import psycopg

    from models import db

    return isinstance(exc, psycopg.OperationalError) and (raw.broken or raw.closed or db.is_connection_killed(exc))


class Connection:
    """One connection for a few statements: `await conn.all(sql, **params)`, `await conn.one(...)`."""

    def __init__(self, inner):
        self._inner = inner

    async def all(self, sql: str, **params: Any) -> list:
        diagnostics.count_statement()
        return await self._inner.fetch(sql, params)

    async def one(self, sql: str, **params: Any):
        rows = await self.all(sql, **params)
        return rows[0] if rows else None


@asynccontextmanager
async def connection() -> AsyncIterator[Connection]:
    if not _started:  # used outside the app's lifespan (the CLI, a script)
        from core.settings import get_settings

        await startup(get_settings())
    if _pool is not None:
        inner = _PgConnection(await _getconn(), pooled=True)
        try:
            yield Connection(inner)
        finally:
            if inner.raw is not None:
                await _putconn(inner.raw)
            else:  # the retry found no live connection: the slot is freed all the same
                _slots.release()
        return
    from models import db

    async with db.engine().connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        yield Connection(_SqliteConnection(raw))


async def of_session(s) -> Connection:
    """The connection under a SQLModel session, inside its transaction: statements sent here
    see the session's flushed changes and commit or roll back with it."""
    conn = await s.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    return Connection(_PgConnection(raw) if conn.dialect.name == "postgresql" else _SqliteConnection(raw))


async def all(sql: str, **params: Any) -> list:  # noqa: A001 - reads as sql.all(...)
    async with connection() as conn:
        return await conn.all(sql, **params)


async def one(sql: str, **params: Any):
    async with connection() as conn:
        return await conn.one(sql, **params)


def in_list(prefix: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """`IN (...)` for a list, as placeholders both drivers take: ("%(p0)s, %(p1)s", {...})."""
    names = [f"{prefix}{i}" for i in range(len(values))]
    return ", ".join(f"%({n})s" for n in names), dict(zip(names, values, strict=True))
