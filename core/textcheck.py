"""What a client may send as text and JSON, checked once per request (projectvoice/middleware.py).

- A JSON body is parsed once, strictly (RFC 8259, by orjson): no NaN or Infinity, no number that
  overflows a double, no lone UTF-16 surrogate (`"\\ud800"`), valid UTF-8; nested at most
  MAX_DEPTH deep. The parsed value is kept in the request's scope and every later reader (the
  rate limits, Connexion's body validator, the handler's `body`) uses it, so no layer can see a
  body another layer refused or read differently.
- No string of the request (body strings and member names, the path, the query string) may hold
  NUL or a lone surrogate: PostgreSQL cannot store NUL, SQLite stores it (a near-copy of a
  username), and neither driver takes a lone surrogate.

Each failure is an InvalidInput (400) with a message that says what and where.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote_to_bytes

import connexion.lifecycle as lifecycle
import orjson
from connexion.exceptions import BadRequestProblem
from connexion.validators.json import JSONRequestBodyValidator
from starlette.types import Scope

from core.contract import USERNAME_MAX_LENGTH, USERNAME_MIN_LENGTH
from core.errors import ApiError, BadRequest

MAX_DEPTH = 64
SCOPE_KEY = "pv_json"  # scope["extensions"][SCOPE_KEY] = (body bytes, parsed value)

_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidInput(ApiError):
    status, code = 400, "invalid_body"


def text_problem(value: str) -> str | None:
    """What is wrong with a client's string, or None."""
    if "\x00" in value:
        return "must not contain NUL characters (\\u0000)"
    if _SURROGATE.search(value):
        return "must not contain lone UTF-16 surrogates"
    return None


def parse_json(body: bytes) -> Any:
    """The body as JSON, strictly; InvalidInput when it is not acceptable."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc).lower() or "recursion" in str(exc).lower():
            raise InvalidInput(f"Request body is nested deeper than {MAX_DEPTH} levels", "too_deep") from None
        raise InvalidInput(f"Request body is not valid JSON ({_reason(str(exc))})") from None
    _check_tree(value)
    return value


def _reason(message: str) -> str:
    """orjson's message in words a client understands."""
    lowered = message.lower()
    if "surrogate" in lowered:
        return "a string holds a lone UTF-16 surrogate: " + message
    if "infinity" in lowered:
        return "a number overflows a double: " + message
    if "nan" in lowered or "unexpected character" in lowered:
        return "NaN, Infinity and other non-JSON values are refused: " + message
    return message


def _check_tree(value: Any) -> None:
    """Depth and strings, without recursion (a deep body must not reach Python's limit)."""
    if isinstance(value, str):
        _check_string(value, None)
        return
    if not isinstance(value, (dict, list)):
        return
    stack: list[tuple[Any, int, str | None]] = [(value, 1, None)]
    while stack:
        node, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(f"Request body is nested deeper than {MAX_DEPTH} levels", "too_deep")
        if isinstance(node, dict):
            for key, item in node.items():
                _check_string(key, key)
                if isinstance(item, str):
                    _check_string(item, key)
                elif isinstance(item, (dict, list)):
                    stack.append((item, depth + 1, key))
        else:
            for item in node:
                if isinstance(item, str):
                    _check_string(item, where)
                elif isinstance(item, (dict, list)):
                    stack.append((item, depth + 1, where))


def _check_string(value: str, field: str | None) -> None:
    problem = text_problem(value)
    if problem:
        where = f"field '{_printable(field)}'" if field is not None else "the request body"
        raise InvalidInput(f"Text in {where} {problem}", "invalid_text")


def _printable(name: str) -> str:
    return _SURROGATE.sub("?", name.replace("\x00", "\\u0000"))[:64]


def url_problem(path: str, query_string: bytes) -> str | None:
    """What is wrong with the request's path or query string, or None."""
    problem = text_problem(path)
    if problem:
        return f"The request path {problem}"
    if query_string and (b"%00" in query_string or b"\x00" in query_string):
        return "The query string must not contain NUL characters (\\u0000)"
    if query_string and b"%" in query_string:
        # Percent-escapes of surrogates are not UTF-8 (the parser makes them U+FFFD), but say so
        # rather than search for replacement characters.
        try:
            unquote_to_bytes(query_string.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return "The query string is not valid UTF-8 once percent-decoded"
    return None


def _shared(scope: Scope, body: bytes) -> Any:
    """The value LimitsMiddleware parsed from these very bytes, or a strict parse of them."""
    kept = (scope.get("extensions") or {}).get(SCOPE_KEY)
    if kept is not None and (kept[0] is body or kept[0] == body):
        return kept[1]
    return parse_json(body)


_installed = False


def install() -> None:
    """Connexion's body validator and the handler's `body` read the value parsed once above,
    instead of parsing again with the standard library's json (which accepts NaN, Infinity and
    1e400, and recurses until Python's limit on a deep body)."""
    global _installed
    if _installed:
        return
    _installed = True

    async def validator_parse(self: Any, stream: AsyncIterator[bytes], scope: Scope) -> Any:
        body = b"".join([message async for message in stream])
        if not body:
            return None
        try:
            return _shared(scope, body)
        except InvalidInput as exc:
            raise BadRequestProblem(detail=exc.message) from None

    JSONRequestBodyValidator._parse = validator_parse

    async def request_json(self: Any) -> Any:
        request = self._starlette_request
        body = await request.body()
        if not body:
            return None
        try:
            return _shared(request.scope, body)
        except InvalidInput:
            return None

    lifecycle.ConnexionRequest.json = request_json


def username(value: str) -> str:
    """A username trimmed, within the document's length (register, account and profile edits)."""
    name = value.strip()
    if not USERNAME_MIN_LENGTH <= len(name) <= USERNAME_MAX_LENGTH:
        raise BadRequest(f"username must be {USERNAME_MIN_LENGTH} to {USERNAME_MAX_LENGTH} characters",
                         "validation_error")
    return name
