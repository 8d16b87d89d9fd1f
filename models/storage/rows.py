"""Writes shared by the ORM-side storage modules."""
from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import utcnow

Row = TypeVar("Row")

# The row an INSERT ... RETURNING gave back: the table's columns by name, not the ORM object.
Returned = sa.Row[*tuple[Any, ...]]


async def update(s: AsyncSession, row: Row, changes: dict[str, Any]) -> Row:
    """Write `changes` (column name -> new value) and a new updated_at, in one UPDATE."""
    for column, value in changes.items():
        setattr(row, column, value)
    setattr(row, "updated_at", utcnow())  # noqa: B010 (every row passed here has the column)
    s.add(row)
    await s.flush()
    return row
