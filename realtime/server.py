"""The Socket.IO server, served at engine.io path /socket (namespace /) and at the default path
/socket.io (namespace /socket), with identical handlers."""
from __future__ import annotations

import socketio

from projectvoice.settings import Settings

NAMESPACES = ("/", "/socket")


def build(settings: Settings) -> socketio.AsyncServer:
    manager = None
    if settings.redis_url:
        manager = socketio.AsyncRedisManager(settings.redis_url)
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        cors_allowed_origins=settings.cors_origin_list,
        max_http_buffer_size=1_000_000,
    )
    return sio


def wrap(sio: socketio.AsyncServer, http_app) -> socketio.ASGIApp:
    inner = socketio.ASGIApp(sio, other_asgi_app=http_app, socketio_path="socket.io")
    return socketio.ASGIApp(sio, other_asgi_app=inner, socketio_path="socket")
