"""Per-message work python-socketio 5.18 and python-engineio 4.15 do that a relay does not need.

Found by profiling a bare python-socketio relay under the signalling benchmark (issue 15): for
every message a client sends, engine.io's websocket loop starts a task and a `wait_for` (one more
task) to read it; for every packet it sends, the writer's `poll()` starts another `wait_for` task;
and every emit, even to one socket, starts a task per recipient and waits on them with
`asyncio.wait`. None of that buys anything on this path: the send is a put on an unbounded queue
that never blocks. Here:

- `fast_emit`: an emit without a callback encodes the packet once (with orjson straight to the
  packet's text, skipping python-socketio's walk of the payload for bytes) and hands it to each
  recipient's queue in turn (no task per recipient); the manager subclasses in realtime/server.py
  and realtime/cluster.py use it for every local delivery.
- `AsyncSocket.poll` and the websocket loop time their waits with `asyncio.timeout()` (a timer,
  not a task); the same timeouts (ping interval + ping timeout) and the same behaviour otherwise.

They replace engine.io internals, so they apply only to the releases they were read from
(PATCHED, pinned exactly in pyproject.toml); any other release runs unpatched, correct and
slower, with a warning. SOCKET_FASTPATH=0 turns them off (tests/test_voice_fastpath.py runs the
voice exchange both ways).
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import logging

import orjson
from engineio import async_socket, exceptions
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from realtime import codec

log = logging.getLogger("projectvoice.realtime")

PATCHED = {"python-engineio": "4.15.1", "python-socketio": "5.18.1"}
_original = {"poll": async_socket.AsyncSocket.poll,
             "_websocket_handler": async_socket.AsyncSocket._websocket_handler}
_enabled = False


def enabled() -> bool:
    return _enabled


def releases_match() -> bool:
    return all(importlib.metadata.version(name) == version for name, version in PATCHED.items())


def install(on: bool = True) -> bool:
    """Patch engine.io (on) or put its own code back (off); True when the fast path is in use."""
    global _enabled
    if on and not releases_match():
        log.warning("socket fast path not installed: it was written for %s, found %s", PATCHED,
                    {n: importlib.metadata.version(n) for n in PATCHED})
        on = False
    if on:
        async_socket.AsyncSocket.poll = _poll
        async_socket.AsyncSocket._websocket_handler = _websocket_handler
    else:
        for name, fn in _original.items():
            setattr(async_socket.AsyncSocket, name, fn)
    _enabled = on
    return on


async def fast_emit(manager, event, data, namespace, room=None, skip_sid=None) -> None:
    """AsyncManager.emit without a callback, with no task per recipient."""
    if namespace not in manager.rooms:
        return
    if isinstance(data, tuple):
        data = list(data)
    elif data is not None:
        data = [data]
    else:
        data = []
    if not isinstance(skip_sid, list):
        skip_sid = [skip_sid]
    encoded = None
    if manager.server.packet_class is sio_packet.Packet and sio_packet.Packet.json is codec:
        # The EVENT packet's text as Packet.encode() writes it, without its walk of the whole
        # payload looking for bytes: orjson refuses bytes (TypeError), and then the packet class
        # does it its own way (binary attachments).
        try:
            body = orjson.dumps([event] + data).decode()
        except TypeError:
            pass
        else:
            encoded = [f"2{namespace}," + body if namespace and namespace != "/" else "2" + body]
    if encoded is None:
        encoded = manager.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event] + data).encode()
        if not isinstance(encoded, list):
            encoded = [encoded]
    pkts = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]
    send = manager.server._send_eio_packet
    for sid, eio_sid in list(manager.get_participants(namespace, room)):
        if sid not in skip_sid:
            for p in pkts:
                await send(eio_sid, p)


async def _poll(self):
    """AsyncSocket.poll with a timer instead of a wait_for task."""
    try:
        async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
            packets = [await self.queue.get()]
        self.queue.task_done()
    except (TimeoutError, asyncio.CancelledError):
        raise exceptions.QueueEmpty()
    if packets == [None]:
        return []
    while True:
        try:
            pkt = self.queue.get_nowait()
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        except asyncio.QueueEmpty:
            break
    return packets


async def _websocket_handler(self, ws):
    """AsyncSocket._websocket_handler of python-engineio 4.15.1; the read loop awaits the next
    message under a timer instead of starting two tasks per message. The upgrade from polling
    (which happens once per socket) is the original code."""
    if self.connected:
        return await _original["_websocket_handler"](self, ws)
    self.connected = True
    self.upgraded = True
    max_size = self.server.max_http_buffer_size

    async def writer():
        while True:
            packets = None
            try:
                packets = await self.poll()
            except exceptions.QueueEmpty:
                break
            if not packets:
                break
            try:
                for pkt in packets:
                    await ws.send(pkt.encode())
            except:  # noqa: E722 (as the original: any failure ends the writer)
                break
        await ws.close()

    writer_task = asyncio.ensure_future(writer())
    self.server.logger.info('%s: Upgrade to websocket successful', self.sid)
    wait_for = self.server.ping_interval + self.server.ping_timeout
    while True:
        p = None
        try:
            async with asyncio.timeout(wait_for):
                p = await ws.wait()
            if p and len(p) > max_size:
                raise ValueError('packet is too large')
        except asyncio.CancelledError:  # pragma: no cover
            break
        except:  # noqa: E722 (as the original: timeout, close or a broken socket end the loop)
            break
        if p is None:
            break
        pkt = eio_packet.Packet(encoded_packet=p)
        try:
            await self.receive(pkt)
        except exceptions.UnknownPacketError:  # pragma: no cover
            pass
        except exceptions.SocketIsClosedError:  # pragma: no cover
            self.server.logger.info('Receive error -- socket is closed')
            break
        except:  # noqa: E722  # pragma: no cover
            self.server.logger.exception('Unknown receive error')

    await self.queue.put(None)  # unlock the writer task so it can exit
    await writer_task
    await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
