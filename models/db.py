"""The async engine, sessions, and migrations run at start-up.

SQLite (aiosqlite) by default, PostgreSQL (psycopg) when DATABASE_URL says so. On SQLite every
request shares one connection, so writes are serialised by the pool rather than failing with
"database is locked"; PostgreSQL gets a real pool and settles races with constraints.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from pathlib import Path
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_engine: AsyncEngine | None = None
_sessionmaker: async_sessionmaker[AsyncSession] | None = None


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # The driver's implicit BEGIN is replaced by our own BEGIN IMMEDIATE (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn) -> None:
    """Transactions take SQLite's write lock when they start, so a transaction that reads and
    then writes waits for another process's writer (busy_timeout) instead of failing with
    "database is locked" (SQLITE_BUSY_SNAPSHOT). Within the server one connection serialises
    everything anyway; this matters for other processes on the same file (the CLI, a second
    server started by mistake)."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


# A pooled connection idle for longer than this is pinged before use (see _ping_if_idle).
PING_AFTER_IDLE = 1.0


def _mark_idle(_dbapi_conn, record) -> None:
    record.info["pv_idle_since"] = time.monotonic()


def _ping_if_idle(engine: AsyncEngine):
    """Pessimistic disconnect handling without a round trip per request: SQLAlchemy's
    pool_pre_ping pings on every checkout (a third of a read's round trips); this pings only a
    connection that sat idle in the pool, which is where a database restart leaves dead ones. A
    connection that dies while busy fails its request (503) and SQLAlchemy then invalidates
    the whole pool, so the next checkouts get fresh connections either way."""
    dialect = engine.dialect

    def on_checkout(dbapi_conn, record, _proxy) -> None:
        since = record.info.pop("pv_idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool retries the checkout with a new connection
            raise sa.exc.DisconnectionError() from exc

    return on_checkout


def pg_connect_args(settings: Settings) -> dict:
    """libpq options of every PostgreSQL connection (this engine's and models/storage/sql.py's pool)."""
    return {
        "connect_timeout": max(2, round(settings.db_timeout)),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 3,
        "keepalives_count": 3,
    }


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.async_database_url
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60,
                                     connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        # Overload: with every connection busy a request queues up to DB_POOL_WAIT (a full pool is
        # not a dead database). Outages: a dead pooled connection is found by the idle ping and
        # replaced, a connection attempt gives up after DB_TIMEOUT (libpq counts whole seconds, at
        # least 2), a silent peer is found by TCP keepalives; each surfaces as a 503
        # (is_database_unavailable). Connections only stay checked out while they work, so a dead
        # database never leaves requests waiting on this queue for long.
        pool_timeout=settings.db_pool_wait,
        pool_recycle=1800,
        connect_args=pg_connect_args(settings),
    )
    event.listen(engine.sync_engine, "checkin", _mark_idle)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle(engine))
    return engine


def init(settings: Settings | None = None) -> AsyncEngine:
    global _engine, _sessionmaker
    settings = settings or get_settings()
    _engine = make_engine(settings)
    _sessionmaker = async_sessionmaker(_engine, class_=AsyncSession, expire_on_commit=False)
    return _engine


def engine() -> AsyncEngine:
    if _engine is None:
        init()
    assert _engine is not None
    return _engine


def is_postgres() -> bool:
    return engine().dialect.name == "postgresql"


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


def _upgrade(sync_conn) -> None:
    from alembic import command
    from alembic.config import Config

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


def is_integrity_error(exc: BaseException) -> bool:
    return isinstance(exc, sa.exc.IntegrityError)


def is_value_out_of_range(exc: BaseException) -> bool:
    """A value the validators let through but the database cannot store (a number too large)."""
    import psycopg

    return isinstance(exc, (sa.exc.DataError, psycopg.DataError))


def is_database_unavailable(exc: BaseException) -> bool:
    """Connection-level failures (server down, pool exhausted), not bad SQL."""
    if isinstance(exc, (PoolTimeout, ConnectionError, OSError, asyncio.TimeoutError)):
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    # The same failures from the driver's own connections (models/storage/sql.py).
    import sqlite3

    import psycopg
    from psycopg_pool import PoolTimeout as DriverPoolTimeout

    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, DriverPoolTimeout, sqlite3.OperationalError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return False


# SQLSTATEs of a connection the server ended: admin_shutdown (restart, pg_terminate_backend),
# crash_shutdown.
_KILLED_STATES = ("57P01", "57P02")


def is_connection_killed(exc: BaseException) -> bool:
    """An established connection died under a statement (not: the database refused a new one,
    the pool ran dry, or the SQL was wrong). A read that meets this may run again."""
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlstate", None) in _KILLED_STATES:
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    import psycopg

    return isinstance(orig, psycopg.OperationalError) and "server closed the connection unexpectedly" in str(orig)
