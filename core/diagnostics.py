"""Diagnostics, off by default: QUERY_COUNT_HEADER=1 adds `X-Query-Count` to every HTTP response,
the number of SQL statements the request sent to the database (the bearer check's account
lookup included). tests/test_query_counts.py uses it to hold list/read costs constant whatever
the size of a server. Counting is a `before_cursor_execute` listener on every engine and a
per-request counter in a context variable; with the setting off nothing is installed.
"""
from __future__ import annotations

from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import Settings

_count: ContextVar[list[int] | None] = ContextVar("pv_query_count", default=None)
_installed = False


def count_statement() -> None:
    """One statement sent; models/storage/sql.py calls this for the statements it sends itself."""
    counter = _count.get()
    if counter is not None:
        counter[0] += 1


def _before_cursor_execute(*_args: object, **_kw: object) -> None:
    count_statement()


def _install_listener() -> None:
    global _installed
    if not _installed:
        event.listen(Engine, "before_cursor_execute", _before_cursor_execute)
        _installed = True


class QueryCountMiddleware:
    """Counts the statements of one HTTP request and reports them in `X-Query-Count`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        _install_listener()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counter = [0]
        token = _count.set(counter)

        async def send_with_count(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()),
                                      (b"x-query-count", str(counter[0]).encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_count)
        finally:
            _count.reset(token)


def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
    """The app, counting queries per request when QUERY_COUNT_HEADER is on."""
    return QueryCountMiddleware(app) if settings.query_count_header else app
