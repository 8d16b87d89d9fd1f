"""A bare python-socketio relay (bench/signalling.py's floor; NOT part of the product): the same
events as bench/js/relay.mjs with none of the product's checks. Served like the product
(bench/signalling.py starts it on the product's ASGI server and settings); RELAY_JSON=orjson makes
orjson python-socketio's `json` module and RELAY_FASTPATH=1 adds realtime/fastpath.py, as the
product does (realtime/server.py); bench/signalling.py runs it plain (the floor of the stack as
shipped) and with both (the floor of the stack as the product runs it).
"""
from __future__ import annotations

import os

import socketio

kw = {}
if os.environ.get("RELAY_JSON") == "orjson":
    from realtime import codec

    kw["json"] = codec
if os.environ.get("RELAY_FASTPATH") == "1":
    from realtime import fastpath
    from realtime.server import FastManager

    fastpath.install()
    kw["client_manager"] = FastManager()
sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*", async_handlers=False, **kw)
NS = "/socket"


@sio.on("join-room", namespace=NS)
async def join_room(sid, room=None, *_):
    name = f"voice:{room}"
    await sio.enter_room(sid, name, namespace=NS)
    participants = [{"socketId": s} for s, _eio in sio.manager.get_participants(NS, name)]
    await sio.emit("created", {"roomId": room, "participants": participants}, to=sid, namespace=NS)
    await sio.emit("user-connected", {"socketId": sid}, room=name, skip_sid=sid, namespace=NS)


@sio.on("signal", namespace=NS)
async def signal(sid, payload=None, *_):
    if isinstance(payload, dict) and isinstance(payload.get("to"), str):
        await sio.emit("signal", {**payload, "from": sid}, to=payload["to"], namespace=NS)


app = socketio.ASGIApp(sio, socketio_path="socket.io")
