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
- `AsyncSocket.poll` times its wait with `asyncio.timeout()` (a timer, not a task).
- The websocket loop (`_websocket_handler`) reads with one lazy timer per socket instead of a
  timeout per message (`_Watchdog`: the same limit, ping interval + ping timeout, per wait), hands
  each message straight to the Socket.IO server's handler, and `AsyncSocket.send` writes a packet
  directly on the websocket when the socket's writer task has nothing queued (`_send`): no task
  switch between the sender's handler and the write. Measured with py-spy under the benchmark,
  these took the bare relay from about 250 to about 210 us of CPU per relayed signal.
- `_sio_message`: the websocket loop hands a message to Socket.IO's usual case directly (an EVENT
  without ack id for a coroutine handler of that exact name: the lookup, connection check and
  log lines of _handle_event/_trigger_event without their three coroutines and inspect call), and
  `fast_emit` hands each packet to the recipient's engine.io socket itself (Socket.IO's
  _send_eio_packet and engine.io's send_packet inline, with the same warning for a gone socket).

They replace engine.io internals, so they apply only to the releases they were read from
(PATCHED, pinned exactly in pyproject.toml); any other release runs unpatched, correct and
slower, with a warning. SOCKET_FASTPATH=0 turns them off (tests/test_voice_plain.py runs the voice
exchange with them off; `make test-plain` the whole suite).
"""
from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import inspect
import logging

from typing import Any

import engineio
import orjson
import socketio
from engineio import async_socket, exceptions
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from realtime import codec

log = logging.getLogger("projectvoice.realtime")

PATCHED = {"python-engineio": "4.15.1", "python-socketio": "5.18.1"}
_original = {"poll": async_socket.AsyncSocket.poll, "send": async_socket.AsyncSocket.send,
             "_websocket_handler": async_socket.AsyncSocket._websocket_handler}
_enabled = False
_SIO_SEND_EIO_PACKET = socketio.AsyncServer._send_eio_packet
_EIO_SEND_PACKET = engineio.AsyncServer.send_packet
_SIO_HANDLE_EIO_MESSAGE = socketio.AsyncServer._handle_eio_message


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
        async_socket.AsyncSocket.send = _send
        async_socket.AsyncSocket._websocket_handler = _websocket_handler
    else:
        for name, fn in _original.items():
            setattr(async_socket.AsyncSocket, name, fn)
    _enabled = on
    return on


def _writes_like_packet(cls: Any) -> bool:
    """True when `cls` encodes an EVENT packet as python-socketio's Packet does with orjson as its
    `json`: the Packet itself or a subclass that changes only decoding (realtime/validation.py's
    GuardedPacket, the server's packet class: without this its emits took Packet.encode()'s walk
    of the payload, about 4 us of CPU per relayed signal)."""
    return (isinstance(cls, type) and issubclass(cls, sio_packet.Packet)
            and getattr(cls, "encode", None) is sio_packet.Packet.encode and getattr(cls, "json", None) is codec)


async def fast_emit(manager: socketio.AsyncManager, event: str, data: Any, namespace: str | None, room: Any = None,
                    skip_sid: Any = None) -> None:
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
    if _writes_like_packet(manager.server.packet_class):
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
    server = manager.server
    eio = server.eio
    if type(server)._send_eio_packet is not _SIO_SEND_EIO_PACKET or type(eio).send_packet is not _EIO_SEND_PACKET:
        send = server._send_eio_packet
        for sid, eio_sid in list(manager.get_participants(namespace, room)):
            if sid not in skip_sid:
                for p in pkts:
                    await send(eio_sid, p)
        return
    # Socket.IO's _send_eio_packet and engine.io's send_packet inline (two coroutines less per
    # recipient): the recipient's socket, or the same warning when it is gone.
    for sid, eio_sid in list(manager.get_participants(namespace, room)):
        if sid not in skip_sid:
            for p in pkts:
                try:
                    socket = eio._get_socket(eio_sid)
                except KeyError:
                    eio.logger.warning('Cannot send to sid %s', eio_sid)
                    continue
                await socket.send(p)


@functools.lru_cache(maxsize=1024)
def _is_coroutine_function(handler: Any) -> bool:
    return inspect.iscoroutinefunction(handler)


async def _sio_message(server: Any, eio_sid: str, data: Any) -> None:
    """python-socketio's AsyncServer._handle_eio_message for a websocket message, with its usual
    case, an EVENT without ack id for which the namespace has a coroutine handler of that exact
    name (not a reserved event), dispatched as _handle_event -> _handle_event_internal ->
    _trigger_event do (the same lookup, connection check and log lines) without their three
    coroutines and per-event inspect call. Anything else is handed to _handle_eio_message."""
    if eio_sid not in server._binary_packet:
        pkt = server.packet_class(encoded_packet=data)
        args = pkt.data
        if pkt.packet_type == sio_packet.EVENT and pkt.id is None and type(args) is list and args:
            namespace = pkt.namespace or '/'
            event = args[0]
            handlers = server.handlers.get(namespace)
            handler = handlers.get(event) if handlers is not None and type(event) is str else None
            if handler is not None and event not in server.reserved_events and _is_coroutine_function(handler):
                manager = server.manager
                sid = manager.sid_from_eio_sid(eio_sid, namespace)
                server.logger.info('received event "%s" from %s [%s]', event, sid, namespace)
                if not manager.is_connected(sid, namespace):
                    server.logger.warning('%s is not connected to namespace %s', sid, namespace)
                    return
                try:
                    await handler(sid, *args[1:])
                except asyncio.CancelledError:  # pragma: no cover (as _trigger_event)
                    pass
                return
    await server._handle_eio_message(eio_sid, data)  # (decodes again: rare packets only)


async def _poll(self: async_socket.AsyncSocket) -> list[eio_packet.Packet]:
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


class _Watchdog:
    """The read loop's timeout with one timer per socket instead of one per message: each wait for
    a client message may last `limit` seconds (as the original's wait_for); the timer is armed once
    and, when it fires early, re-armed for the current wait's deadline. An expired wait cancels the
    reading task, as asyncio.timeout() would."""

    __slots__ = ("loop", "task", "limit", "deadline", "fired", "handle")

    def __init__(self, limit: float):
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # made inside the socket's read loop
        self.task = task
        self.limit = limit
        self.deadline: float | None = None  # None while not waiting for a message
        self.fired = False
        self.handle = self.loop.call_at(self.loop.time() + limit, self._check)

    def _check(self) -> None:
        now = self.loop.time()
        if self.deadline is None:
            self.handle = self.loop.call_at(now + self.limit, self._check)
        elif now >= self.deadline - 0.001:  # the loop may run a timer up to its clock resolution early
            self.fired = True
            self.task.cancel()
        else:
            self.handle = self.loop.call_at(self.deadline, self._check)

    def stop(self) -> None:
        self.handle.cancel()


async def _send(self: async_socket.AsyncSocket, pkt: eio_packet.Packet) -> None:
    """AsyncSocket.send; to a websocket whose writer has nothing queued, the packet is written
    at once instead of waking the writer task (one task switch less per packet). The writer and
    these direct writes share a lock, so packets still leave in the order they were sent."""
    if not await self.check_ping_timeout():
        return
    ws = getattr(self, "_pv_ws", None)
    if ws is not None and not self._pv_lock.locked() and self.queue.empty():
        async with self._pv_lock:
            try:
                await ws.send(pkt.encode())
            except Exception:  # noqa: BLE001 (a broken socket: as when the writer's send fails)
                self._pv_ws = None
                self.queue.put_nowait(None)  # the writer ends and closes the websocket
    else:
        await self.queue.put(pkt)
    self.server.logger.info('%s: Sending packet %s data %s', self.sid, eio_packet.packet_names[pkt.packet_type],
                            pkt.data if not isinstance(pkt.data, bytes) else '<binary>')


async def _websocket_handler(self: async_socket.AsyncSocket, ws: Any) -> Any:
    """AsyncSocket._websocket_handler of python-engineio 4.15.1, with the same timeouts and
    endings, and less work per message: the read loop's timeout is a _Watchdog (no task, no timer
    per message), a message goes straight to the server's `message` handler, packets are written
    directly when the writer is idle (_send), and the writer
    waits on its queue without a timer of its own (a silent client ends the read loop, which ends
    the writer). The upgrade from polling (once per socket) is the original code."""
    if self.connected:
        return await _original["_websocket_handler"](self, ws)
    self.connected = True
    self.upgraded = True
    max_size = self.server.max_http_buffer_size
    lock = self._pv_lock = asyncio.Lock()
    queue = self.queue

    async def writer() -> None:
        while True:
            packets = [await queue.get()]
            queue.task_done()
            while packets[-1] is not None and not queue.empty():
                packets.append(queue.get_nowait())
                queue.task_done()
            try:
                async with lock:
                    for pkt in packets:
                        if pkt is None:
                            raise EOFError
                        await ws.send(pkt.encode())
            except:  # noqa: E722 (as the original: the end of the queue or any failure ends the writer)
                break
        self._pv_ws = None
        await ws.close()

    writer_task = asyncio.ensure_future(writer())
    self._pv_ws = ws
    self.server.logger.info('%s: Upgrade to websocket successful', self.sid)
    on_message = self.server.handlers.get('message')
    if self.server.async_handlers or not inspect.iscoroutinefunction(on_message):
        on_message = None  # the original dispatch (a task per message, or a plain function)
    elif getattr(on_message, "__func__", None) is _SIO_HANDLE_EIO_MESSAGE and not on_message.__self__.async_handlers:
        on_message = functools.partial(_sio_message, on_message.__self__)  # Socket.IO's, its usual case inline
    watchdog = _Watchdog(self.server.ping_interval + self.server.ping_timeout)
    loop = watchdog.loop
    try:
        while True:
            p = None
            watchdog.deadline = loop.time() + watchdog.limit
            try:
                p = await ws.wait()
                watchdog.deadline = None
                if p and len(p) > max_size:
                    raise ValueError('packet is too large')
            except asyncio.CancelledError:  # a timeout (the watchdog's) or the server stopping
                if watchdog.fired:
                    watchdog.task.uncancel()
                break
            except:  # noqa: E722 (as the original: a close or a broken socket ends the loop)
                break
            if p is None:
                break
            pkt = eio_packet.Packet(encoded_packet=p)
            if on_message is not None and pkt.packet_type == eio_packet.MESSAGE:
                # AsyncSocket.receive -> AsyncServer._trigger_event('message') with handlers run
                # inline, without their per-message closure, coroutine check and log line.
                try:
                    await on_message(self.sid, pkt.data)
                except asyncio.CancelledError:  # pragma: no cover (as the original)
                    pass
                except:  # noqa: E722 (as the original)
                    self.server.logger.exception('message async handler error')
                continue
            try:
                await self.receive(pkt)
            except exceptions.UnknownPacketError:  # pragma: no cover
                pass
            except exceptions.SocketIsClosedError:  # pragma: no cover
                self.server.logger.info('Receive error -- socket is closed')
                break
            except:  # noqa: E722  # pragma: no cover
                self.server.logger.exception('Unknown receive error')
    finally:
        watchdog.stop()
    self._pv_ws = None
    await self.queue.put(None)  # unlock the writer task so it can exit
    await writer_task
    await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
