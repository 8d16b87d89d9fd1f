"""Request limits, as one plain ASGI middleware in front of the Connexion app.

- Bodies over MAX_BODY_BYTES (1 MiB) answer 413: at once when Content-Length says so, else as
  soon as the streamed bytes pass the limit (chunked uploads included).
- JSON bodies are parsed here, once, strictly, and every string of the request (body, path,
  query string) is checked for NUL and lone surrogates (core/textcheck.py): 400 before
  anything else reads them. The parsed body rides in the scope for the rate limits below,
  Connexion's validator and the handler (textcheck.install), so all of them
  see the same value.
- Rate limits (core/ratelimit.py) on the few routes that need them: login and register
  per client IP, login per account (email), message posting per user and channel, invite
  accepts per user. Over the limit: 429 with Retry-After and the usual error body.

A request without a JSON body passes with one header scan and a counting `receive` wrapper.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from generated import rest

from core import contract, textcheck
from core.errors import ApiError
from core.ratelimit import Limiter, limiter
from core.settings import Settings
from models.auth import decode_token

_INVITE_ACCEPT_ROUTE = contract.base_path() + "/invite/invite/{token}/accept"
_INVITE_ACCEPT = contract.template_regex(_INVITE_ACCEPT_ROUTE)
_TOO_MANY = "Too many requests, try again later"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


def _json_response(status: int, body: rest.Error,
                   headers: list[tuple[bytes, bytes]] | None = None) -> tuple[Message, Message]:
    payload = orjson.dumps(body)
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()), *(headers or [])],
    }, {"type": "http.response.body", "body": payload}


def _bearer(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for k, v in headers:
        if k == b"authorization":
            value = v.decode("latin-1")
            if value[:7].lower() == "bearer ":
                return value[7:].strip()
    return None


def _user_id(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    token = _bearer(headers)
    claims = decode_token(token) if token else None
    user: int | None = claims["sub"] if claims else None  # (an int once verified)
    return user


def _is_json(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """A body read as JSON: declared so, or with no Content-Type (DefaultJsonContentType)."""
    for k, v in headers:
        if k == b"content-type":
            mime = v.split(b";", 1)[0].strip().lower()
            return mime == b"application/json" or (mime.startswith(b"application/") and mime.endswith(b"+json"))
    return True


async def _refuse(send: Send, error: ApiError) -> None:
    start, end = _json_response(error.status, {"error": error.message, "code": error.code})
    await send(start)
    await send(end)


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, rate_limiter: Limiter = limiter) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.limiter = rate_limiter.configure(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        problem = textcheck.url_problem(scope["path"], scope.get("query_string", b""))
        if problem:
            return await _refuse(send, textcheck.InvalidInput(problem, "invalid_text"))
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
        is_json = _is_json(headers)
        if route is None and length is not None and not (is_json and length):
            # The common case: the declared length is checked; count the bytes all the same.
            max_body = self.max_body
            seen = 0

            async def counting_receive() -> Message:
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > max_body:
                        raise PayloadTooLarge(_too_large_text(max_body))
                return message

            return await self.app(scope, counting_receive, send)

        # A JSON body, a streamed body of unknown length, or a rate-limited route (the body holds
        # the keys): read it first, up to the limit.
        chunks: list[bytes] = []
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
        parsed = None
        if is_json and body:
            try:
                parsed = textcheck.parse_json(body)
            except textcheck.InvalidInput as error:
                return await _refuse(send, error)
            scope.setdefault("extensions", {})[textcheck.SCOPE_KEY] = (body, parsed)
        if route is not None:
            scope["pv.route"] = route
            retry_after = await self._check(route, scope, parsed if isinstance(parsed, dict) else {})
            if retry_after is not None:
                start, end = _json_response(429, {"error": _TOO_MANY, "code": "rate_limited"},
                                            [(b"retry-after", str(retry_after).encode())])
                await send(start)
                return await send(end)

        replayed = False

        async def replay() -> Message:
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
        if path.startswith("/api/invite/invite/") and _INVITE_ACCEPT.fullmatch(path):
            return _INVITE_ACCEPT_ROUTE
        return None

    async def _check(self, route: str, scope: Scope, body: dict[str, Any]) -> int | None:
        hit = self.limiter.hit
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        if route == "/api/auth/login":
            retry = await hit("login_ip", ip)
            if retry is None:
                email = body.get("email")
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
            channel = body.get("channelId")
            if isinstance(channel, int) and not isinstance(channel, bool):
                return await hit("message", user, channel)
            return None
        return await hit("invite_accept", user)

    async def _too_large(self, send: Send) -> None:
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

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = scope["headers"]
            if not any(name == b"content-type" for name, _ in headers):
                scope = dict(scope)
                scope["headers"] = [*headers, (b"content-type", b"application/json")]
        await self.app(scope, receive, send)


class HeadLimits:
    """Request heads over MAX_HEADER_BYTES (all names and values) or MAX_HEADER_COUNT headers
    answer 431 before any other layer, Socket.IO's included, looks at them. uvicorn's httptools
    parser has no limit of its own; behind nginx, its large_client_header_buffers refuses first."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_bytes = settings.max_header_bytes
        self.max_count = settings.max_header_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = scope["headers"]
            too_many = len(headers) > self.max_count
            if too_many or sum(len(k) + len(v) for k, v in headers) > self.max_bytes:
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                what = f"more than {self.max_count} headers" if too_many else f"over {self.max_bytes} bytes"
                start, end = _json_response(431, {"error": f"Request headers too large ({what})",
                                                  "code": "headers_too_large"}, [(b"connection", b"close")])
                await send(start)
                return await send(end)
        return await self.app(scope, receive, send)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's own websocket protocol (the one it picks by default), answering the upgrades the
    websockets library refuses before HeadLimits sees them: a header line over 8 KiB, more than
    128 headers (431) or an over-long request line (414). uvicorn 0.54 leaves the answer the
    library prepared unsent and the connection open and unanswered."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()
