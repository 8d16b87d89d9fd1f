"""Trailing slashes: a path written with one in the contract (`/api/users/`) also answers
without it, and a path written without one (`/api/servers`) also answers with it, with the same
status and body as the written form: the request is routed as if it had come in that form (no
redirect, which a client's fetch() may not follow for a PUT or DELETE with a body).

Only a path that matches no operation as sent and matches one once the slash is toggled is
rewritten, so nothing the document routes today changes meaning. The common case (no trailing
slash, and the path is not one of the few written with one) costs one small regex match.
"""
from __future__ import annotations

import re
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from core import contract


def _pattern(templates: list[str]) -> re.Pattern[str] | None:
    if not templates:
        return None
    return re.compile("|".join(f"(?:{contract.template_pattern(t)})" for t in sorted(templates)))


def _compile(base: str, paths: list[str]) -> dict[str, re.Pattern[str] | None]:
    full = [base + p for p in paths]
    with_slash = [p for p in full if p.endswith("/")]
    without = [p for p in full if not p.endswith("/")]
    return {
        "with_slash": _pattern(with_slash),  # the document's paths written with a slash
        "without": _pattern(without),
        # The forms a client may send instead.
        "with_slash_stripped": _pattern([p[:-1] for p in with_slash]),
        "without_plus_slash": _pattern([p + "/" for p in without]),
    }


class TrailingSlash:
    def __init__(self, app: ASGIApp, spec: Path = contract.SPEC) -> None:
        self.app = app
        doc = contract.document(spec)
        base, paths = contract.base_path(doc), list(doc.get("paths") or {})
        self.prefix = base + "/"
        p = _compile(base, paths)
        self._with_slash, self._without = p["with_slash"], p["without"]
        self._stripped, self._plus = p["with_slash_stripped"], p["without_plus_slash"]

    def canonical(self, path: str) -> str | None:
        """The document's form of `path` when it differs only by a trailing slash, else None."""
        if not path.startswith(self.prefix):
            return None
        if path.endswith("/"):
            if self._plus is not None and self._plus.fullmatch(path) \
                    and not (self._with_slash is not None and self._with_slash.fullmatch(path)):
                return path[:-1]
            return None
        if self._stripped is not None and self._stripped.fullmatch(path) \
                and not (self._without is not None and self._without.fullmatch(path)):
            return path + "/"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = self.canonical(scope["path"])
            if path is not None:
                scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)
