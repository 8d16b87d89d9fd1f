"""What operators see: one JSON log line per request, an X-Request-ID header, Prometheus /metrics.

The access line (logger "projectvoice.access", level INFO) holds the request id, method, route
template, status, duration in ms, client IP and the caller's user id when known. It never holds
headers, query strings, bodies or concrete paths (invite tokens live in paths), so no token or
password can reach the log.

Metrics (prometheus-client), by route template, never by raw path:
  projectvoice_http_requests_total{method,route,status}
  projectvoice_http_request_duration_seconds{method,route,status}   (histogram)
  projectvoice_db_pool_capacity, projectvoice_db_pool_in_use, projectvoice_db_unavailable_total
  projectvoice_socket_connections, projectvoice_voice_rooms, projectvoice_voice_participants
The last three are set by the Socket.IO side: `observability.OPEN_SOCKETS.inc()` and so on.
With several worker processes set PROMETHEUS_MULTIPROC_DIR (see the README).
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event

from core import contract
from core.settings import Settings

access_log = logging.getLogger("projectvoice.access")

_MULTIPROC = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REQUESTS = Counter("projectvoice_http_requests", "HTTP requests handled", ["method", "route", "status"])
LATENCY = Histogram("projectvoice_http_request_duration_seconds", "HTTP request duration",
                    ["method", "route", "status"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
DB_POOL_CAPACITY = Gauge("projectvoice_db_pool_capacity", "Database connections a process may open "
                         "(pool size plus overflow)", multiprocess_mode="livesum")
DB_POOL_IN_USE = Gauge("projectvoice_db_pool_in_use", "Database connections checked out of the pool",
                       multiprocess_mode="livesum")
DB_UNAVAILABLE = Counter("projectvoice_db_unavailable", "Requests answered 503 because the database "
                         "was unreachable")
OPEN_SOCKETS = Gauge("projectvoice_socket_connections", "Open Socket.IO connections",
                     multiprocess_mode="livesum")
VOICE_ROOMS = Gauge("projectvoice_voice_rooms", "Voice rooms with at least one participant",
                    multiprocess_mode="livesum")
VOICE_PARTICIPANTS = Gauge("projectvoice_voice_participants", "Sockets in voice rooms",
                           multiprocess_mode="livesum")
CLUSTER_MESSAGES = Counter("projectvoice_socket_cluster_messages", "Socket.IO messages this process took "
                           "from Redis (REDIS_URL), by channel: shared (every process reads it) or own "
                           "(this process's channel: emits to its sockets from another process)", ["channel"])

_REQUEST_ID_OK = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


class JsonFormatter(logging.Formatter):
    """Log records as one JSON object per line; access records carry their fields as `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_logging(settings: Settings) -> None:
    """JSON lines on stdout for the projectvoice.* loggers; uvicorn's own access line is
    replaced by ours."""
    root = logging.getLogger("projectvoice")
    if not any(getattr(h, "_pv_json", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        handler._pv_json = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(settings.log_level.upper())
    access_log.setLevel(logging.INFO if settings.access_log else logging.CRITICAL + 1)
    if settings.access_log:
        logging.getLogger("uvicorn.access").disabled = True


def route_templates(spec_path: Path = contract.SPEC) -> dict[str, str]:
    """operationId -> "/api/<path template>", for the route label."""
    doc = contract.document(spec_path)
    base = contract.base_path(doc)
    return {op["operationId"]: base + template for template, _, op in contract.operations(doc)
            if op.get("operationId")}


def instrument_engine(engine: AsyncEngine) -> None:
    """Pool gauges from the pool's own events (works per process and in multi-process mode)."""
    pool: Any = engine.sync_engine.pool  # a QueuePool (size()) or, on SQLite, a pool without a size
    try:
        DB_POOL_CAPACITY.set(pool.size() + max(0, getattr(pool, "_max_overflow", 0)))
    except Exception:
        pass
    event.listen(engine.sync_engine, "checkout", lambda *_a: DB_POOL_IN_USE.inc())
    event.listen(engine.sync_engine, "checkin", lambda *_a: DB_POOL_IN_USE.dec())


def metrics_payload() -> bytes:
    if _MULTIPROC:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


class ObservabilityMiddleware:
    """Outermost HTTP layer: request id, timing, access line, metrics, and GET /metrics."""

    def __init__(self, app: ASGIApp, settings: Settings, routes: dict[str, str]) -> None:
        self.app = app
        self.routes = routes
        self.metrics_enabled = settings.metrics_enabled
        self.metrics_auth = f"Bearer {settings.metrics_token}".encode() if settings.metrics_token else None
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/metrics" and self.metrics_enabled:
            await self._metrics(scope, send)
            return
        start = time.perf_counter()
        request_id = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                if _REQUEST_ID_OK.match(v):
                    request_id = v
                break
        if request_id is None:
            request_id = uuid.uuid4().hex.encode()
        ext = scope.get("extensions")
        if ext is None:
            ext = scope["extensions"] = {}
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, ext, status, time.perf_counter() - start, request_id)

    def _record(self, scope: Scope, ext: dict[str, Any], status: int, elapsed: float, request_id: bytes) -> None:
        routing = ext.get("connexion_routing")
        op = routing.get("operation_id") if routing else None
        route = self.routes.get(op) if op else None
        if route is None:
            route = scope.get("pv.route") or _fallback_route(scope["path"])
        method = scope["method"]
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            s = str(status)
            children = (REQUESTS.labels(method, route, s), LATENCY.labels(method, route, s))
            if len(self._children) < 5000:
                self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
        if access_log.isEnabledFor(logging.INFO):
            context = ext.get("connexion_context")
            user = (context.get("user") if context else None) or scope.get("pv.user")
            client = scope.get("client")
            access_log.info("request", extra={"fields": {
                "requestId": request_id.decode(),
                "method": method,
                "route": route,
                "status": status,
                "durationMs": round(elapsed * 1000, 2),
                "userId": user,
                "ip": client[0] if client else None,
            }})

    async def _metrics(self, scope: Scope, send: Send) -> None:
        if self.metrics_auth is not None:
            auth = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            if auth != self.metrics_auth:
                body = b'{"error":"metrics need the operator\'s bearer token","code":"forbidden"}'
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
        payload = metrics_payload()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode()),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def _fallback_route(path: str) -> str:
    """A bounded label for requests no operation matched."""
    if path.startswith("/api/docs") or path.startswith("/api-docs"):
        return "/api/docs"
    if path == "/api/openapi.json" or path == "/api/openapi.yaml":
        return path
    return "unmatched"
