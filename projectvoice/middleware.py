"""Request limits, as one plain ASGI middleware in front of the Connexion app.

- Bodies over MAX_BODY_BYTES (1 MiB) answer 413: at once when Content-Length says so, else as
  soon as the streamed bytes pass the limit (chunked uploads included).
- Rate limits (projectvoice/ratelimit.py) on the few routes that need them: login and register
  per client IP, login per account (email), message posting per user and channel, invite
  accepts per user. Over the limit: 429 with Retry-After and the usual error body.

Every other request passes with one header scan and a counting `receive` wrapper.
"""
from __future__ import annotations

import re

import orjson

from projectvoice.errors import ApiError
from projectvoice.ratelimit import Limiter, limiter
from projectvoice.settings import Settings

_INVITE_ACCEPT = re.compile(r"^/api/invite/invite/[^/]+/accept$")
_TOO_MANY = "Too many requests, try again later"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


def _json_response(status: int, body: dict, headers: list[tuple[bytes, bytes]] | None = None):
    payload = orjson.dumps(body)
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()), *(headers or [])],
    }, {"type": "http.response.body", "body": payload}


def _bearer(headers) -> str | None:
    for k, v in headers:
        if k == b"authorization":
            value = v.decode("latin-1")
            if value[:7].lower() == "bearer ":
                return value[7:].strip()
    return None


def _user_id(headers) -> int | None:
    from projectvoice.auth import decode_token

    token = _bearer(headers)
    claims = decode_token(token) if token else None
    return claims["sub"] if claims else None


def _json_body(body: bytes) -> dict:
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


class LimitsMiddleware:
    def __init__(self, app, settings: Settings, rate_limiter: Limiter = limiter):
        self.app = app
        self.max_body = settings.max_body_bytes
        self.limiter = rate_limiter.configure(settings)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope["headers"]
        method = scope["method"]
        if method in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = None
        for k, v in headers:
            if k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    length = None
                if length is not None and length > self.max_body:
                    return await self._too_large(send)
                break

        route = self._limited_route(method, scope["path"])
        if route is None and length is not None:
            # The common case: the declared length is checked; count the bytes all the same.
            max_body = self.max_body
            seen = 0

            async def counting_receive():
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > max_body:
                        raise PayloadTooLarge(_too_large_text(max_body))
                return message

            return await self.app(scope, counting_receive, send)

        # A streamed body of unknown length, or a rate-limited route (the body holds the keys):
        # read it first, up to the limit.
        chunks = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_body:
                return await self._too_large(send)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if length is None and body:
            # Declare the length we now know (Connexion only looks for a body when one is declared).
            scope["headers"] = [(k, v) for k, v in headers if k != b"transfer-encoding"] + [
                (b"content-length", str(len(body)).encode())]
        if route is not None:
            scope["pv.route"] = route
            retry_after = await self._check(route, scope, body)
            if retry_after is not None:
                start, end = _json_response(429, {"error": _TOO_MANY, "code": "rate_limited"},
                                            [(b"retry-after", str(retry_after).encode())])
                await send(start)
                return await send(end)

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    @staticmethod
    def _limited_route(method: str, path: str) -> str | None:
        if method != "POST":
            return None
        if path == "/api/auth/login" or path == "/api/auth/register" or path == "/api/messages":
            return path
        if path.startswith("/api/invite/invite/") and _INVITE_ACCEPT.match(path):
            return "/api/invite/invite/{token}/accept"
        return None

    async def _check(self, route: str, scope, body: bytes) -> int | None:
        hit = self.limiter.hit
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        if route == "/api/auth/login":
            retry = await hit("login_ip", ip)
            if retry is None:
                email = _json_body(body).get("email")
                if isinstance(email, str) and email.strip():
                    retry = await hit("login_account", email.strip().lower()[:320])
            return retry
        if route == "/api/auth/register":
            return await hit("register_ip", ip)
        user = _user_id(scope["headers"])
        if user is None:
            return None  # the bearer check answers 401
        scope["pv.user"] = user
        if route == "/api/messages":
            channel = _json_body(body).get("channelId")
            if isinstance(channel, int) and not isinstance(channel, bool):
                return await hit("message", user, channel)
            return None
        return await hit("invite_accept", user)

    async def _too_large(self, send):
        start, end = _json_response(413, {"error": _too_large_text(self.max_body), "code": "payload_too_large"},
                                    [(b"connection", b"close")])
        await send(start)
        await send(end)


def _too_large_text(limit: int) -> str:
    return f"Request body too large (limit {limit} bytes)"


class DefaultJsonContentType:
    """A POST/PUT/PATCH without a Content-Type is read as JSON.

    Clients (and generated SDKs) send body-less POSTs such as invite accept or ban with no
    Content-Type at all; Connexion would hand such a body to the handler as raw bytes. Treated as
    JSON, an empty body means "no fields" where the operation allows it, and is a 400 elsewhere.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = scope["headers"]
            if not any(name == b"content-type" for name, _ in headers):
                scope = dict(scope)
                scope["headers"] = [*headers, (b"content-type", b"application/json")]
        await self.app(scope, receive, send)
