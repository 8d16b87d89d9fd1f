"""Alembic environment: run on start-up with the app's connection, or from `make migration`."""
from __future__ import annotations

from typing import cast

from alembic import context
from alembic.runtime.environment import NameFilterParentNames, NameFilterType
from sqlalchemy import Connection, create_engine
from sqlmodel import SQLModel

import models.tables  # noqa: F401  (registers every table on the metadata)

config = context.config
target_metadata = SQLModel.metadata


# Database objects a migration creates by hand, outside the models (0002: message search).
UNMODELLED_TABLES = ("messages_fts",)  # and its FTS5 shadow tables messages_fts_*
UNMODELLED_INDEXES = ("ix_messages_search",)


def _include_name(name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames) -> bool:
    if type_ == "table":  # (a table always has a name: None is for a schema)
        return not any(name == t or cast(str, name).startswith(t + "_") for t in UNMODELLED_TABLES)
    if type_ == "index":
        return name not in UNMODELLED_INDEXES
    return True


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from core.settings import get_settings

    url = get_settings().async_database_url.replace("sqlite+aiosqlite", "sqlite")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
