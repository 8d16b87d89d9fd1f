"""Our errors and their one answer shape, {"error", "code"} (projectvoice/error_handlers.py turns
every failure into it).

Permission failures are 403 and never use the words the desktop client treats as
"log me out" ("unauthorized", "invalid token", "token expired").
"""
from __future__ import annotations


import orjson
from connexion.lifecycle import ConnexionResponse

class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None, *, headers: dict[str, str] | None = None) -> None:
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


def error_response(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=status,
        mimetype="application/json",
        content_type="application/json",
        body=orjson.dumps({"error": message, "code": code}),
        headers=headers or {},
    )
