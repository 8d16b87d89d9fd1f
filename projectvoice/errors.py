"""Our errors, and the one handler that turns every failure into {"error", "code"}.

Permission failures are 403 and never use the words the desktop client treats as
"log me out" ("unauthorized", "invalid token", "token expired").
"""
from __future__ import annotations

import logging

import orjson
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

log = logging.getLogger("projectvoice.errors")


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None, *, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.headers = headers or {}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TooManyRequests(ApiError):
    status, code = 429, "rate_limited"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"


class NotImplementedYet(ApiError):
    status, code = 501, "not_implemented"


def error_response(status: int, message: str, code: str, headers: dict | None = None) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=status,
        mimetype="application/json",
        content_type="application/json",
        body=orjson.dumps({"error": message, "code": code}),
        headers=headers or {},
    )


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
    return error_response(status, message, _FRAMEWORK_CODES.get(status, "error"))


async def handle_unexpected(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    from sqlalchemy.exc import DataError

    from models.db import is_database_unavailable

    # Input the validators let through but nothing can use: bytes that are not UTF-8 JSON,
    # numbers beyond what the database stores.
    if isinstance(exc, UnicodeDecodeError):
        return error_response(400, "Request body is not valid UTF-8 JSON", "invalid_body")
    if isinstance(exc, (OverflowError, DataError)):
        return error_response(400, "A value is out of range", "out_of_range")
    if is_database_unavailable(exc):
        from projectvoice.observability import DB_UNAVAILABLE

        DB_UNAVAILABLE.inc()
        log.warning("database unavailable: %r", exc)
        return error_response(503, "Database unavailable, try again shortly", "database_unavailable",
                              {"Retry-After": "2"})
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "Internal server error", "internal_error")
