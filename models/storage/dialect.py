"""Where SQLite and PostgreSQL differ, in one module: every other module names neither driver.

- Which database runs: models/db.py's init() sets it from the engine (`use`); `is_postgres()`.
- Hand-written SQL is written once in psycopg's `%(name)s` style; on SQLite the names become
  `:name` (`sqlite_sql`), datetimes are sent in SQLAlchemy's SQLite storage format, and result
  columns named `*_at` come back as UTC datetimes and `is_*` as booleans (`sqlite_row`).
- Fragments of hand-written SQL that differ: `now()`, `for_update()`, `in_list()`; the ORM's
  upsert construct (`insert(table).on_conflict_do_nothing(...)`, the same on both).
- Driver errors in neutral terms: a broken constraint is an `IntegrityViolation`
  (`UniqueViolation`, `ForeignKeyViolation`) through `integrity_errors()`; the connection-level
  failures that answer 503 (`is_database_unavailable`), a connection killed under a statement
  (`is_connection_killed`), a value the column cannot hold (`is_value_out_of_range`).
"""
from __future__ import annotations

import asyncio
import re
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlmodel import SQLModel

POSTGRES = "postgresql"
SQLITE = "sqlite"

_name = SQLITE


def use(name: str) -> None:
    """The engine's dialect name (models/db.py's init); SQLite until then."""
    global _name
    if name not in (POSTGRES, SQLITE):
        raise ValueError(f"unsupported database: {name}")
    _name = name


def name() -> str:
    return _name


def is_postgres() -> bool:
    return _name == POSTGRES


# ---------------------------------------------------------------- connections


def sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    """Every new SQLite connection. The driver's implicit BEGIN is replaced by sqlite_begin."""
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def sqlite_begin(conn: sa.Connection) -> None:
    """Transactions take SQLite's write lock when they start, so a transaction that reads and
    then writes waits for another process's writer (busy_timeout) instead of failing with
    "database is locked" (SQLITE_BUSY_SNAPSHOT). Within the server one connection serialises
    everything anyway; this matters for other processes on the same file (the CLI, a second
    server started by mistake)."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def pg_connect_args(timeout: float, on_failure: Callable[[], None]) -> dict[str, Any]:
    """SQLAlchemy's connect_args of every PostgreSQL connection: libpq's options (a connection
    attempt gives up after DB_TIMEOUT, counted by libpq in whole seconds and at least 2: a
    shorter bound failed attempts that were merely slow on a busy machine), and `on_failure`
    told of every attempt that fails."""

    async def connect(*args: Any, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(*args, **kwargs)
        except Exception:
            on_failure()
            raise

    return {
        "async_creator_fn": connect,  # SQLAlchemy's psycopg dialect connects through this
        "connect_timeout": max(2, round(timeout)),
        # A silent peer (a host gone without a word) is found in about 20 s.
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 3,
        "keepalives_count": 3,
        # Timestamps come back in UTC, which views.iso() formats without converting.
        "options": "-c TimeZone=UTC",
    }


# ---------------------------------------------------------------- statements


def insert(table: type[SQLModel]) -> postgresql.Insert | sqlite.Insert:
    """INSERT for the ORM with `on_conflict_do_nothing` / `on_conflict_do_update` (same calls on both)."""
    return postgresql.insert(table) if _name == POSTGRES else sqlite.insert(table)


def now() -> str:
    """The current UTC time in hand-written SQL, comparable with the stored timestamps (SQLite
    stores SQLAlchemy's text format; `%%` is psycopg's `%`, which sqlite_sql turns back)."""
    return "now()" if _name == POSTGRES else "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')"


def for_update(strength: str = "UPDATE") -> str:
    """The row lock suffix of a SELECT (`FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`...):
    nothing on SQLite, where a write transaction (BEGIN IMMEDIATE) already holds the only lock."""
    return f" FOR {strength}" if _name == POSTGRES else ""


def in_list(prefix: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """`IN (...)` for a list, as placeholders both drivers take: ("%(p0)s, %(p1)s", {...})."""
    names = [f"{prefix}{i}" for i in range(len(values))]
    return ", ".join(f"%({n})s" for n in names), dict(zip(names, values, strict=True))


# ---------------------------------------------------------------- hand-written SQL on SQLite

_PARAM = re.compile(r"%\((\w+)\)s")


@lru_cache(maxsize=512)
def sqlite_sql(sql: str) -> str:
    """psycopg's `%(name)s` placeholders as SQLite's `:name` (and `%%` as `%`)."""
    return _PARAM.sub(r":\1", sql).replace("%%", "%")


def sqlite_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _sqlite_param(v) for k, v in params.items()}


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
def row_type(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    return namedtuple("Row", names)


def sqlite_rows(description: Sequence[Sequence[Any]] | None, rows: Iterable[Sequence[Any]]) -> list[Any]:
    """SQLite's rows as named tuples, with the types PostgreSQL would have given."""
    if description is None:
        return []
    names = tuple(d[0] for d in description)
    make = row_type(names)
    return [make(*(_sqlite_value(n, v) for n, v in zip(names, r, strict=True))) for r in rows]


# ---------------------------------------------------------------- errors


class IntegrityViolation(Exception):
    """A constraint the statement broke (the driver's error is the __cause__)."""

    def __init__(self, message: str, constraint: str | None = None):
        super().__init__(message)
        self.constraint = constraint


class UniqueViolation(IntegrityViolation):
    """A unique index or primary key already holds the value."""


class ForeignKeyViolation(IntegrityViolation):
    """A referenced row does not exist (or went away meanwhile)."""


# What each driver raises for a broken constraint (storage modules may catch these directly).
DRIVER_INTEGRITY_ERRORS = (sa.exc.IntegrityError, psycopg.IntegrityError, sqlite3.IntegrityError)


def integrity_violation(exc: BaseException) -> IntegrityViolation | None:
    """The neutral form of a driver's (or SQLAlchemy's) IntegrityError; None for anything else."""
    if not isinstance(exc, DRIVER_INTEGRITY_ERRORS):
        return None
    orig = getattr(exc, "orig", None) or exc
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if isinstance(orig, psycopg.Error):
        diag = orig.diag
        constraint = diag.constraint_name if diag is not None else None
        kind = {"23505": UniqueViolation, "23503": ForeignKeyViolation}.get(orig.sqlstate or "", IntegrityViolation)
        return kind(message, constraint)
    # SQLite: "UNIQUE constraint failed: users.email", "FOREIGN KEY constraint failed"; the
    # extended code (Python 3.11+) names it too.
    code = getattr(orig, "sqlite_errorname", "") or ""
    if "UNIQUE" in code or "PRIMARYKEY" in code or message.startswith("UNIQUE constraint failed"):
        return UniqueViolation(message, message.partition(": ")[2] or None)
    if "FOREIGNKEY" in code or message.startswith("FOREIGN KEY constraint failed"):
        return ForeignKeyViolation(message)
    return IntegrityViolation(message)


@contextmanager
def integrity_errors() -> Iterator[None]:
    """`with dialect.integrity_errors(): ...` raises IntegrityViolation (or its kinds) instead of
    the driver's IntegrityError, so the callers of a storage function name no driver. (Inside a
    session the transaction is aborted all the same: the session must end.)"""
    try:
        yield
    except DRIVER_INTEGRITY_ERRORS as exc:
        violation = integrity_violation(exc)
        assert violation is not None
        raise violation from exc


def is_integrity_error(exc: BaseException) -> bool:
    return isinstance(exc, (IntegrityViolation, *DRIVER_INTEGRITY_ERRORS))


def is_value_out_of_range(exc: BaseException) -> bool:
    """A value the validators let through but the database cannot store (a number too large)."""
    return isinstance(exc, (sa.exc.DataError, psycopg.DataError))


def is_database_unavailable(exc: BaseException) -> bool:
    """Connection-level failures (server down, pool wait over), not bad SQL: a 503."""
    if isinstance(exc, (PoolTimeout, ConnectionError, OSError, asyncio.TimeoutError)):
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    # The same failures raised by the driver itself (hand-written SQL, models/storage/sql.py).
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


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
    return isinstance(orig, psycopg.OperationalError) and "server closed the connection unexpectedly" in str(orig)


def is_disconnect(exc: BaseException, raw: psycopg.AsyncConnection[Any]) -> bool:
    """A hand-written statement's error that leaves its PostgreSQL connection unusable."""
    return isinstance(exc, psycopg.OperationalError) and (raw.broken or raw.closed or is_connection_killed(exc))
