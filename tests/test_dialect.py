"""models/storage/dialect.py: a broken constraint is the same neutral exception on both databases,
so storage functions' callers name no driver (sqlite3 always; PostgreSQL with PV_TEST_DB=postgres)."""
from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from models.storage import dialect
from tests.support import PG_ADMIN_URL, backend

SCHEMA = ["CREATE TEMP TABLE parents (id INTEGER PRIMARY KEY, name TEXT UNIQUE)",
          "CREATE TEMP TABLE kids (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parents (id))",
          "INSERT INTO parents (id, name) VALUES (1, 'a')"]
DUPLICATE = "INSERT INTO parents (id, name) VALUES (2, 'a')"
ORPHAN = "INSERT INTO kids (id, parent_id) VALUES (1, 99)"


def _raised(run, statement: str) -> BaseException:
    with pytest.raises(dialect.IntegrityViolation) as info, dialect.integrity_errors():
        run(statement)
    return info.value


def _check(run) -> None:
    for statement in SCHEMA:
        run(statement)
    duplicate = _raised(run, DUPLICATE)
    assert type(duplicate) is dialect.UniqueViolation
    assert dialect.is_integrity_error(duplicate)
    assert type(_raised(run, ORPHAN)) is dialect.ForeignKeyViolation
    # SQLAlchemy's wrapping of the same error translates the same way.
    try:
        run(DUPLICATE)
    except dialect.DRIVER_INTEGRITY_ERRORS as exc:
        wrapped = sa.exc.IntegrityError(DUPLICATE, {}, exc)
    assert type(dialect.integrity_violation(wrapped)) is dialect.UniqueViolation
    assert dialect.integrity_violation(ValueError("no")) is None


def test_sqlite_integrity_errors_are_neutral():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    _check(conn.execute)


@pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL pass only (PV_TEST_DB=postgres)")
def test_postgres_integrity_errors_are_neutral():
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        _check(conn.execute)


def test_sqlite_sql_keeps_one_spelling():
    assert dialect.sqlite_sql("SELECT %(a)s, '100%%' WHERE x IN (%(b0)s)") == "SELECT :a, '100%' WHERE x IN (:b0)"
    placeholders, params = dialect.in_list("s", [4, 5])
    assert (placeholders, params) == ("%(s0)s, %(s1)s", {"s0": 4, "s1": 5})
