"""A GET that meets a database connection killed under it runs once more (issue 17 item 11).

A database restart (or an administrator's pg_terminate_backend) kills every pooled connection.
One that sat idle for over a second is pinged before use (models/db.py, models/storage/sql.py), but one
returned to the pool a moment before the kill is handed out unpinged and its first statement
fails. models/storage/sql.py resends such a read on a fresh connection itself; this covers the GET
handlers that read through SQLAlchemy's sessions: a GET changes nothing, so the whole handler
runs again, once, on fresh connections (SQLAlchemy has dropped the dead ones by then). Anything
else (a database that stays down, a second failure) answers as before (503).
"""
from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from connexion.resolver import Resolution, Resolver

from models import auth
from models.db import is_connection_killed

P = ParamSpec("P")
R = TypeVar("R")


def retry_once(handler: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        # The deferred account check (auth.account_checked_in_query) is taken by the first
        # statement that runs it; a rerun must run it again, so its claims are put back.
        unchecked = auth._unchecked.get()
        try:
            return await handler(*args, **kwargs)
        except Exception as exc:
            if not is_connection_killed(exc):
                raise
        auth._unchecked.set(unchecked)
        return await handler(*args, **kwargs)

    return wrapper


class ReadRetryResolver(Resolver):
    """Connexion's resolver, with every GET handler wrapped in retry_once."""

    def resolve(self, operation: Any) -> Resolution:  # (Connexion's operation objects)
        resolution = super().resolve(operation)
        if operation.method.lower() == "get":
            return Resolution(retry_once(resolution.function), resolution.operation_id)
        return resolution
