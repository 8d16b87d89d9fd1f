"""The one connection pool, its idle-ping rule, sessions, and migrations run at start-up.

SQLite (aiosqlite) by default, PostgreSQL (psycopg) when DATABASE_URL says so. Every connection
comes from this engine's pool: SQLModel sessions (`session()`) and the hand-written statements of
models/storage/sql.py (`sql.connection()`, which borrows a pooled connection's driver connection).
On SQLite the pool is one connection, so writes are serialised by the pool rather than failing
with "database is locked"; PostgreSQL gets DB_POOL_SIZE connections, opened as needed and kept,
handed out first come first served, and settles races with constraints. Where the two databases differ: models/storage/dialect.py.
"""
from __future__ import annotations

import asyncio
import collections
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast
from collections.abc import AsyncIterator, Callable

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.pool.base import _ConnectionRecord
from sqlalchemy.util import await_
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty, Full
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings, get_settings
from models.storage import dialect

# Where the database-specific tests moved (models/storage/dialect.py); callers import them here.
is_integrity_error = dialect.is_integrity_error
is_value_out_of_range = dialect.is_value_out_of_range
is_database_unavailable = dialect.is_database_unavailable
is_connection_killed = dialect.is_connection_killed

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_engine: AsyncEngine | None = None
_sessionmaker: async_sessionmaker[AsyncSession] | None = None


# The idle-ping rule, for every connection of the pool: a connection is pinged before use when it
# sat idle (since it was opened or last returned) for longer than PING_AFTER_IDLE, which is where
# a database restart leaves dead ones, or when it was idle as another was found killed under a
# statement (a restart kills them all). SQLAlchemy's pool_pre_ping pings on every checkout (a
# third of a read's round trips); this pings only those. A dead one is replaced by a new
# connection before the checkout returns. A connection that dies while busy fails its statement:
# a read on sql.connection() runs once more on a fresh connection, a GET handler reading through
# sessions runs once more (projectvoice/readretry.py), anything else answers 503.
PING_AFTER_IDLE = 1.0

_killed_at = 0.0  # monotonic time a connection was last found killed under a statement
_last_failure = 0.0  # monotonic time the database last failed to give a new connection


def connection_killed() -> None:
    """A statement found its connection killed: the others that sat idle meanwhile get pinged."""
    global _killed_at
    _killed_at = time.monotonic()


def _connect_failed() -> None:
    global _last_failure
    _last_failure = time.monotonic()


def _mark_idle(_dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    record.info["pv_idle_since"] = time.monotonic()


def _ping_if_idle(engine: AsyncEngine) -> Callable[[DBAPIConnection, ConnectionPoolEntry, PoolProxiedConnection], None]:
    sa_dialect = engine.dialect

    def on_checkout(dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
        since = record.info.pop("pv_idle_since", None)
        if since is None or (time.monotonic() - since < PING_AFTER_IDLE and since > _killed_at):
            return
        try:
            sa_dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool reconnects this entry before handing it out
            raise sa.exc.DisconnectionError() from exc

    return on_checkout


def _on_error(ctx: ExceptionContext) -> None:
    if ctx.is_disconnect or is_connection_killed(ctx.original_exception):
        connection_killed()


class _FairQueue(AsyncAdaptedQueue[ConnectionPoolEntry]):
    """The pool's idle connections, handed out first come, first served.

    SQLAlchemy's queue (an asyncio.Queue) lets a new checkout take a connection that was just
    returned for a request already waiting, which then waits again at the back: under load some
    requests waited over and over (the p99s of the bench doubled with the one pool; the
    semaphore of the psycopg pool before it was fair). Here a returned connection goes straight
    to the longest waiter, and connections sit in the queue only while nobody waits."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False):
        super().__init__(maxsize, use_lifo)
        self._items: collections.deque[ConnectionPoolEntry] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[ConnectionPoolEntry]] = collections.deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return bool(self.maxsize) and len(self._items) >= self.maxsize

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: ConnectionPoolEntry) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # one that gave up (DB_POOL_WAIT, a cancelled request) is skipped
                waiter.set_result(item)
                return
        if self.full():
            raise Full()
        self._items.append(item)

    def put(self, item: ConnectionPoolEntry, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)  # the pool never blocks on a put: its queue holds every connection

    def unget(self, item: ConnectionPoolEntry) -> None:
        """Back where get_nowait took it from (nobody waits while items sit here)."""
        if self.use_lifo:
            self._items.append(item)
        else:
            self._items.appendleft(item)

    def get_nowait(self) -> ConnectionPoolEntry:
        if not self._items:
            raise Empty()
        return self._items.pop() if self.use_lifo else self._items.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> ConnectionPoolEntry:
        if self._items or not block:  # items wait here only while no request does
            return self.get_nowait()
        waiter: asyncio.Future[ConnectionPoolEntry] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await_(_wait(waiter, timeout))
        except TimeoutError:
            raise Empty() from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed one as it was cancelled
                self.put_nowait(waiter.result())
            raise


async def _wait(waiter: asyncio.Future[ConnectionPoolEntry], timeout: float | None) -> ConnectionPoolEntry:
    async with asyncio.timeout(timeout):  # in the request's own task (wait_for starts one)
        return await waiter


class Pool(AsyncAdaptedQueuePool):
    """The pool's queue is the overload wait: with every connection busy a checkout waits up to
    DB_POOL_WAIT for one (a full pool is not a dead database), in the order they came. The
    outage wait is DB_TIMEOUT per connection attempt (dialect.pg_connect_args). A checkout that
    queued while the database stopped giving connections answers at once (503) rather than wait
    DB_TIMEOUT again behind every request ahead of it."""

    _queue_class = _FairQueue

    def _do_get(self) -> ConnectionPoolEntry:
        queued_at = time.monotonic()
        record = super()._do_get()
        if _last_failure > queued_at:
            self._do_return_conn(record)
            raise PoolTimeout("the database did not answer")
        return record


def take_idle() -> ConnectionPoolEntry | None:
    """An idle connection's pool entry when the pool's checkout would hand it out as it is: one
    sits idle (so nobody waits), it needs no ping (above) and no recycling. The checkout events
    run (the ping rule finds nothing to do, the gauges count it); SQLAlchemy's checkout wrapper,
    its weak reference and the greenlet round trip are skipped: models/storage/sql.py's borrow
    for a request's statements (half its CPU, measured). None otherwise: borrow through the
    engine (raw_connection), which pings, reconnects or waits. Give it back with give_back_idle."""
    pool = engine().sync_engine.pool
    queue = getattr(pool, "_pool", None)
    if not isinstance(queue, _FairQueue) or not queue._items:
        return None
    # The pool's own entries (SQLAlchemy's _ConnectionRecord, pinned release): their start and
    # invalidation times are what the engine's checkout compares, read here the same way.
    record = cast(_ConnectionRecord, queue.get_nowait())
    since = record.info.get("pv_idle_since")
    if (record.dbapi_connection is None or since is None
            or time.monotonic() - since >= PING_AFTER_IDLE or since <= _killed_at
            or (pool._recycle > -1 and time.time() - record.starttime > pool._recycle)
            or pool._invalidate_time > record.starttime
            or record._soft_invalidate_time > record.starttime):
        queue.unget(record)
        return None
    if pool.dispatch.checkout:
        pool.dispatch.checkout(record.dbapi_connection, record, None)
    return record


def give_back_idle(record: ConnectionPoolEntry) -> None:
    """A take_idle() entry back to the pool (its checkin events run); invalidate a dead one first
    (record.invalidate(), in a greenlet: closing it awaits the driver)."""
    # The entry's own checkin, as SQLAlchemy calls it for an entry no wrapper was made for.
    record.checkin(_fairy_was_created=False)  # type: ignore[attr-defined]


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.async_database_url
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60,
                                     connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", dialect.sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", dialect.sqlite_begin)
        return engine
    engine = create_async_engine(
        url,
        poolclass=Pool,
        # DB_POOL_SIZE connections, opened as the load needs them and then kept (until
        # pool_recycle). SQLAlchemy's overflow (as many again, closed at every return to a full
        # queue) opened and closed ten connections a second under bench load (a new backend's
        # start, cold caches, unprepared statements each time), and twice the connections on
        # the shared 2 cores made search slower (alternating rounds: 0.47 -> 0.85 of the floor
        # at 10 instead of 20); the psycopg pool before the one pool held DB_POOL_SIZE too.
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_wait,
        pool_recycle=1800,
        # A dead database surfaces as a failed connection attempt (refused at once, or given up
        # after DB_TIMEOUT), a dead pooled connection is found by the idle ping and replaced, a
        # silent peer by TCP keepalives; each answers 503 (is_database_unavailable). Connections
        # only stay checked out while they work, so a dead database never leaves requests
        # waiting on the pool's queue for long.
        connect_args=dialect.pg_connect_args(settings.db_timeout, _connect_failed),
    )
    event.listen(engine.sync_engine, "connect", _mark_idle)
    event.listen(engine.sync_engine, "checkin", _mark_idle)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle(engine))
    event.listen(engine.sync_engine, "handle_error", _on_error)
    return engine


def init(settings: Settings | None = None) -> AsyncEngine:
    global _engine, _sessionmaker
    settings = settings or get_settings()
    _engine = make_engine(settings)
    dialect.use(_engine.dialect.name)
    _sessionmaker = async_sessionmaker(_engine, class_=AsyncSession, expire_on_commit=False)
    return _engine


def engine() -> AsyncEngine:
    if _engine is None:
        init()
    assert _engine is not None
    return _engine


def is_postgres() -> bool:
    engine()
    return dialect.is_postgres()


@asynccontextmanager
async def session() -> AsyncIterator[AsyncSession]:
    """A session in a transaction: committed when the block ends, rolled back on error."""
    if _sessionmaker is None:
        init()
    assert _sessionmaker is not None
    async with _sessionmaker() as s:
        async with s.begin():
            yield s


async def dispose() -> None:
    if _engine is not None:
        await _engine.dispose()


def _upgrade(sync_conn: sa.Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


async def migrate() -> None:
    """Bring the schema to the newest migration; several processes may start at once."""
    async with engine().begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(740522)"))
        await conn.run_sync(_upgrade)


async def ping(timeout: float = 2.0) -> bool:
    try:
        async def _ping() -> None:
            async with engine().connect() as conn:
                await conn.execute(sa.text("SELECT 1"))

        await asyncio.wait_for(_ping(), timeout)
        return True
    except Exception:
        return False
