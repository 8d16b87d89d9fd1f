"""Hand-written SQL on the driver's own connection, for the statements every request runs.

Why (issue 9, measured with bench/ and py-spy): on these machines SQLAlchemy spends 0.25-0.5 ms
of CPU per statement (statement building, cache keys, result machinery) and the ORM an object per
row on top; the driver's own cursor takes a fraction of that. So the bearer check, the permission
check, the server list and read, message pages, search and posting run here, and everything else
stays on SQLModel (models/db.py), whose migrations own the schema these statements read.

- One pool: `connection()` borrows a connection from models/db.py's engine pool (its idle-ping
  rule, its DB_POOL_WAIT queue, its DB_TIMEOUT connection attempts) and hands out the driver
  connection under it; `of_session(s)` the one under a session, inside its transaction.
- SQL is written once in psycopg's `%(name)s` style; models/storage/dialect.py adapts it to
  SQLite (placeholders, timestamps, booleans) and holds every other SQLite/PostgreSQL difference.
- Every statement on `connection()` runs in autocommit mode: each is atomic on its own, and
  under READ COMMITTED a statement sees its own snapshot anyway. Several statements that must
  commit together go through models/db.py's sessions instead.
- Rows are named tuples. SQLite hands back text and 0/1 where PostgreSQL hands back timestamps
  and booleans, so on SQLite result columns named `*_at` are parsed as UTC timestamps and
  `is_*` become booleans: name result columns that way.
- A broken constraint raises the driver's IntegrityError; storage functions wrap the statement
  in `dialect.integrity_errors()` to raise dialect.UniqueViolation / ForeignKeyViolation instead.
- Failures to reach the database surface as OperationalErrors or a pool timeout, which the app
  answers with 503 (dialect.is_database_unavailable).
"""
from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
import psycopg

from psycopg.rows import namedtuple_row
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn
from sqlmodel.ext.asyncio.session import AsyncSession

from core import diagnostics
from core.settings import Settings
from models import db
from models.storage import dialect

in_list = dialect.in_list  # `IN (...)` placeholders; callers import it from here too

# A result row: a named tuple of the statement's columns (not typed further: the SQL names them).
Row = Any


async def startup(_settings: Settings) -> None:
    """Nothing to open: the connections are models/db.py's pool's (kept for the app's lifespan)."""


async def shutdown() -> None:
    """Nothing to close: db.dispose() closes the one pool."""


# The driver connection under a pooled one: psycopg's on PostgreSQL, aiosqlite's on SQLite.
DriverConnection = Any
# A borrowed connection: the pool's own entry (db.take_idle) or the engine's checkout.
Pooled = ConnectionPoolEntry | PoolProxiedConnection


async def _borrow() -> tuple[Pooled, DriverConnection]:
    """A connection of the one pool (checked out: pinged if it sat idle, queued up to
    DB_POOL_WAIT if all are busy) and the driver connection under it, in autocommit mode:
    an idle one that needs nothing straight from the pool's queue (db.take_idle), else
    through the engine's checkout."""
    pooled: Pooled | None = db.take_idle() if dialect.is_postgres() else None
    if pooled is None:
        pooled = await db.engine().raw_connection()
    # Optional in SQLAlchemy's stubs: None only once a connection is detached, never while checked out.
    raw: DriverConnection = pooled.driver_connection
    if dialect.is_postgres():
        try:
            await raw.set_autocommit(True)
        except BaseException:
            await _give_back(pooled, raw)
            raise
    return pooled, raw


async def _give_back(pooled: Pooled, raw: DriverConnection) -> None:
    """Back to the pool as a session would find it (not autocommit); a dead one is dropped."""
    dead = False
    if dialect.is_postgres():
        dead = raw.broken or raw.closed
        if not dead:
            try:
                await raw.set_autocommit(False)
            except Exception:
                dead = True
    if dead:
        await greenlet_spawn(_checkin, pooled, True)  # closing it awaits the driver
    else:
        # Nothing here awaits (no reset, and the pool's queue holds every connection it may
        # open, so none is closed for want of room): called directly, without a greenlet's
        # round trip (a third of a borrow's cost, measured).
        _checkin(pooled, False)


def _checkin(pooled: Pooled, dead: bool) -> None:
    if isinstance(pooled, ConnectionPoolEntry):  # taken by db.take_idle
        if dead:
            pooled.invalidate()  # closed; the entry reconnects at its next checkout
        db.give_back_idle(pooled)
    elif dead:
        pooled.invalidate()  # closed, and its pool entry reconnects at its next checkout
    else:
        # Only autocommit statements ran, so there is no transaction to roll back: the pool's
        # reset (a rollback, a greenlet round trip) is skipped, as SQLAlchemy's own Connection
        # does after ending its transaction (half the cost of a borrow, measured).
        pooled._close_special(transaction_reset=True)


class _SqliteConnection:
    """The aiosqlite connection behind the pool, with psycopg's calling convention."""

    def __init__(self, raw: aiosqlite.Connection) -> None:
        self.raw = raw

    async def fetch(self, sql: str, params: dict[str, Any]) -> list[Any]:
        async with self.raw.execute(dialect.sqlite_sql(sql), dialect.sqlite_params(params)) as cur:
            rows = await cur.fetchall()
            return dialect.sqlite_rows(cur.description, rows)


def _namedtuple_rows(cursor: psycopg.AsyncCursor[Any]) -> Callable[[Sequence[Any]], Any]:
    """psycopg's namedtuple_row with the per-row step in C: its class for these columns, each row
    made by tuple.__new__ (psycopg's `_make` is a Python call per row; a page has fifty)."""
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
    def __init__(self, raw: psycopg.AsyncConnection[Any], pooled: Pooled | None = None) -> None:
        self.raw = raw
        # The pool's entry when the connection is borrowed (connection()), not a session's: a
        # read that meets it killed (a database restart, an administrator's terminate) is sent
        # once more on a fresh one, so a restart while idle costs no request. Writes are not
        # resent (one might have committed before the connection died), nor statements inside a
        # session's transaction.
        self.pooled = pooled

    async def fetch(self, sql: str, params: dict[str, Any]) -> list[Any]:
        try:
            return await self._fetch(sql, params)
        except Exception as exc:
            killed = dialect.is_disconnect(exc, self.raw)
            if killed:
                db.connection_killed()  # the others that sat idle meanwhile get pinged
            if not (self.pooled is not None and killed and _is_read(sql)):
                raise
        # The dead connection goes back (the pool drops it) and a live one takes its place.
        dead, self.pooled = self.pooled, None
        await _give_back(dead, self.raw)
        self.pooled, self.raw = await _borrow()
        return await self._fetch(sql, params)

    async def _fetch(self, sql: str, params: dict[str, Any]) -> list[Any]:
        # The row factory per cursor: the pool's connections keep the default one SQLAlchemy
        # reads. Every statement here returns rows (INSERT ... RETURNING included).
        async with self.raw.cursor(row_factory=_namedtuple_rows) as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()


class Connection:
    """One connection for a few statements: `await conn.all(sql, **params)`, `await conn.one(...)`."""

    def __init__(self, inner: _SqliteConnection | _PgConnection) -> None:
        self._inner = inner

    async def all(self, sql: str, **params: Any) -> list[Row]:
        diagnostics.count_statement()
        return await self._inner.fetch(sql, params)

    async def one(self, sql: str, **params: Any) -> Row | None:
        rows = await self.all(sql, **params)
        return rows[0] if rows else None


@asynccontextmanager
async def connection() -> AsyncIterator[Connection]:
    pooled, raw = await _borrow()
    if not dialect.is_postgres():
        try:
            yield Connection(_SqliteConnection(raw))
        finally:
            await _give_back(pooled, raw)
        return
    inner = _PgConnection(raw, pooled)
    try:
        yield Connection(inner)
    finally:
        if inner.pooled is not None:  # None: the retry found no live connection
            await _give_back(inner.pooled, inner.raw)


async def of_session(s: AsyncSession) -> Connection:
    """The connection under a SQLModel session, inside its transaction: statements sent here
    see the session's flushed changes and commit or roll back with it."""
    conn = await s.connection()
    raw: DriverConnection = (await conn.get_raw_connection()).driver_connection  # set while checked out
    return Connection(_PgConnection(raw) if dialect.is_postgres() else _SqliteConnection(raw))


async def all(sql: str, **params: Any) -> list[Row]:  # noqa: A001 - reads as sql.all(...)
    async with connection() as conn:
        return await conn.all(sql, **params)


async def one(sql: str, **params: Any) -> Row | None:
    async with connection() as conn:
        return await conn.one(sql, **params)
