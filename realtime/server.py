"""The Socket.IO server, served at engine.io path /socket (namespace /) and at the default path
/socket.io (namespace /socket), with identical handlers (realtime/voice.py).

Without REDIS_URL one process keeps voice rooms in memory; with it, a Redis manager with a channel
per process (realtime/cluster.py) carries emits between processes and participants live in Redis
(realtime/store.py). orjson is the packet codec (realtime/codec.py) and realtime/fastpath.py trims
python-socketio's per-message work (SOCKET_FASTPATH).
"""
from __future__ import annotations

import logging
import os
from typing import Any

import socketio
from starlette.types import ASGIApp, Receive, Scope, Send

from core.settings import Settings
from realtime import codec, fastpath, running
from realtime.cluster import ClusterManager
from realtime.store import MemoryStore, RedisStore
from realtime.validation import GuardedPacket
from realtime.voice import NAMESPACES, Realtime

__all__ = ["NAMESPACES", "build", "wrap", "current", "startup", "shutdown"]

log = logging.getLogger("projectvoice.realtime")


def current() -> Realtime | None:
    rt: Realtime | None = running.current()
    return rt


class FastManager(socketio.AsyncManager):
    """One process: emits without a callback go through fastpath.fast_emit."""

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
                   callback: Any = None, to: Any = None, **kwargs: Any) -> Any:
        if callback is None and fastpath.enabled():
            return await fastpath.fast_emit(self, event, data, namespace, to or room, skip_sid)
        return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback,
                                  to=to, **kwargs)


def build(settings: Settings) -> socketio.AsyncServer:
    fastpath.install(settings.socket_fastpath)
    # Seconds between participant heartbeats in Redis; participants of a process that stops
    # renewing vanish after three missed beats.
    heartbeat = settings.voice_heartbeat_seconds
    manager = None
    if settings.redis_url:
        # Processes of one deployment share a pub/sub channel (pub/sub ignores the Redis db number).
        # An emit to a socket of this process stays here; one to a socket of another process goes
        # to that process's own channel (realtime/cluster.py).
        manager = ClusterManager(settings.redis_url, channel=settings.voice_redis_channel, ttl=3 * heartbeat,
                                 json=codec)
        store: RedisStore | MemoryStore = RedisStore(settings.redis_url, ttl=3 * heartbeat)
    else:
        manager = FastManager()
        store = MemoryStore()
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        # orjson encodes and decodes every packet (realtime/codec.py).
        json=codec,
        # The configured origins, and the server's own (the web client at / connects from it).
        cors_allowed_origins=lambda origin, environ: bool(origin) and (
            origin in settings.cors_origin_list or origin.partition("://")[2] == environ.get("HTTP_HOST")),
        max_http_buffer_size=1_000_000,
        # An event packet it cannot decode becomes an event answered with `error` (realtime/validation.py).
        serializer=GuardedPacket,
        # One client's events run one after the other: a sender's signals keep their order.
        async_handlers=False,
    )
    running.set_current(Realtime(sio, store, heartbeat=heartbeat))
    return sio


async def startup() -> None:
    rt = current()
    if rt is not None:
        await rt.start()


async def shutdown() -> None:
    rt = current()
    if rt is not None:
        await rt.stop()


class _ApiFirst:
    """HTTP requests under /api/ go straight to the API; python-socketio's ASGI app would first
    match them against the Socket.IO paths and the web client's files (a stat() per request)."""

    def __init__(self, api: ASGIApp, rest: ASGIApp) -> None:
        self.api, self.rest = api, rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            return await self.api(scope, receive, send)
        return await self.rest(scope, receive, send)


def wrap(sio: socketio.AsyncServer, http_app: ASGIApp) -> ASGIApp:
    inner = socketio.ASGIApp(sio, other_asgi_app=http_app, socketio_path="socket.io")
    # The reference web client: web/index.html at /, and each file under web/ at its own path
    # (exact files only; every other path goes on to the API).
    web = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "web")
    files = {"/": os.path.join(web, "index.html")}
    for folder, _dirs, names in os.walk(web):
        for name in names:
            path = os.path.join(folder, name)
            files["/" + os.path.relpath(path, web).replace(os.sep, "/")] = path
    return _ApiFirst(http_app, socketio.ASGIApp(sio, other_asgi_app=inner, socketio_path="socket", static_files=files))
