"""The app's exception handlers: every failure, ours or the framework's, answers {"error", "code"}."""
from __future__ import annotations

import logging
from functools import lru_cache

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from core import contract
from core.errors import ApiError, error_response
from core.observability import DB_UNAVAILABLE
from models.db import is_database_unavailable, is_value_out_of_range

log = logging.getLogger("projectvoice.errors")


# Codes for framework failures, by status.
_FRAMEWORK_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    501: "not_implemented",
}


MAX_MESSAGE = 300


def _problem_message(exc: ProblemException) -> str:
    detail = exc.detail or exc.title or "Request failed"
    if exc.status == 401:
        # Keep the client's logout trigger words for real token problems only.
        return "Unauthorized: missing or invalid token"
    detail = str(detail)
    # Validation messages quote the offending value; never echo a huge one back.
    if len(detail) > MAX_MESSAGE:
        detail = detail[:MAX_MESSAGE] + "... (truncated)"
    return detail


async def handle_api_error(_request: ConnexionRequest, exc: ApiError) -> ConnexionResponse:
    return error_response(exc.status, exc.message, exc.code, exc.headers)


async def handle_problem(_request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
    status = exc.status or 500
    if status >= 500 and status != 501:
        log.error("problem %s: %s", status, exc.detail)
    return error_response(status, _problem_message(exc), _FRAMEWORK_CODES.get(status, "error"), exc.headers)


async def handle_http_exception(_request: ConnexionRequest, exc: HTTPException) -> ConnexionResponse:
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else "Request failed"
    if status == 404:
        message = "Not found"
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 405:
        # RFC 9110: a 405 lists the methods the path supports. The router's own list names only
        # the first matching route's methods, so take them from the OpenAPI document.
        allowed = _allowed_methods(_request.url.path)
        if allowed:
            headers["Allow"] = allowed
    return error_response(status, message, _FRAMEWORK_CODES.get(status, "error"), headers)


@lru_cache
def _paths() -> contract.Paths:
    return contract.Paths()


def _allowed_methods(path: str) -> str:
    """The methods of the templates matching `path`; literal segments win, as in the router."""
    templates = _paths().matching(path)
    fewest = templates[0].count("{") if templates else 0
    paths = contract.document()["paths"]
    methods = {m.upper() for t in templates if t.count("{") == fewest for m in paths[t] if m in contract.METHODS}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def handle_unexpected(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # Input the validators let through but nothing can use: bytes that are not UTF-8 JSON,
    # numbers beyond what the database stores.
    if isinstance(exc, UnicodeDecodeError):
        return error_response(400, "Request body is not valid UTF-8 JSON", "invalid_body")
    if isinstance(exc, OverflowError) or is_value_out_of_range(exc):
        return error_response(400, "A value is out of range", "out_of_range")
    if is_database_unavailable(exc):
        DB_UNAVAILABLE.inc()
        log.warning("database unavailable: %r", exc)
        return error_response(503, "Database unavailable, try again shortly", "database_unavailable",
                              {"Retry-After": "2"})
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "Internal server error", "internal_error")
