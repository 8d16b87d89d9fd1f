"""realtime/fastpath.py's websocket loop on its own (no server process): the lazy read timeout
closes a silent socket, packets written directly keep their order with the ones the writer
sends, and a failed direct write ends the socket as a failed write of the writer does."""
from __future__ import annotations

import asyncio
import time

import engineio
import pytest
from engineio import async_socket
from engineio import packet as eio_packet

from realtime import fastpath


@pytest.fixture
def patched():
    names = ("poll", "send", "_websocket_handler")
    before = {n: getattr(async_socket.AsyncSocket, n) for n in names}
    assert fastpath.install(True)
    yield
    for n, fn in before.items():
        setattr(async_socket.AsyncSocket, n, fn)
    fastpath._enabled = False


class FakeWs:
    """The engine.io websocket adapter's interface: wait() returns what the client sent (None:
    closed), send() what goes out; `stall` holds every send until it is set."""

    def __init__(self):
        self.incoming: asyncio.Queue = asyncio.Queue()
        self.sent: list[str] = []
        self.closed = asyncio.Event()
        self.stall = asyncio.Event()
        self.stall.set()
        self.fail = False

    async def wait(self):
        return await self.incoming.get()

    async def send(self, data):
        await self.stall.wait()
        if self.fail:
            raise OSError("broken pipe")
        self.sent.append(data)

    async def close(self):
        self.closed.set()


def make_socket(ping_interval=25, ping_timeout=20):
    server = engineio.AsyncServer(async_mode="asgi", ping_interval=ping_interval, ping_timeout=ping_timeout)
    gone = []

    @server.on("disconnect")
    async def on_disconnect(sid, reason):
        gone.append(reason)

    sock = async_socket.AsyncSocket(server, "sid1")
    server.sockets["sid1"] = sock
    return server, sock, gone


def msg(text: str) -> eio_packet.Packet:
    return eio_packet.Packet(eio_packet.MESSAGE, text)


async def test_silent_client_is_closed_after_ping_interval_plus_timeout(patched):
    _server, sock, gone = make_socket(ping_interval=0.2, ping_timeout=0.2)
    ws = FakeWs()
    t0 = time.monotonic()
    handler = asyncio.create_task(sock._websocket_handler(ws))
    await asyncio.sleep(0.25)
    ws.incoming.put_nowait("3")  # a PONG resets the wait: the limit is per wait, not since connecting
    await asyncio.wait_for(handler, 5)
    took = time.monotonic() - t0
    assert 0.6 <= took < 2.0, took
    assert ws.closed.is_set() and sock.closed and gone == ["transport close"]
    assert not handler.cancelled() and handler.cancelling() == 0


async def test_messages_reach_the_server_handler(patched):
    server, sock, _gone = make_socket()
    got = []

    @server.on("message")
    async def on_message(sid, data):
        got.append((sid, data))

    ws = FakeWs()
    handler = asyncio.create_task(sock._websocket_handler(ws))
    for text in ("4a", "4b"):
        ws.incoming.put_nowait(text)
    ws.incoming.put_nowait(None)
    await asyncio.wait_for(handler, 5)
    assert got == [("sid1", "a"), ("sid1", "b")]


async def test_direct_writes_and_the_writer_keep_the_order_of_sends(patched):
    _server, sock, _gone = make_socket()
    ws = FakeWs()
    handler = asyncio.create_task(sock._websocket_handler(ws))
    await asyncio.sleep(0)
    ws.stall.clear()  # the first send is written directly and stalls (a full socket buffer)
    first = asyncio.create_task(sock.send(msg("1")))
    await asyncio.sleep(0.01)
    assert sock._pv_lock.locked()
    for i in range(2, 6):  # these queue up behind it for the writer
        await sock.send(msg(str(i)))
    ws.stall.set()
    await first
    for _ in range(50):
        if len(ws.sent) == 5:
            break
        await asyncio.sleep(0.01)
    await sock.send(msg("6"))  # the writer is idle again: direct
    assert ws.sent == [f"4{i}" for i in range(1, 7)]
    ws.incoming.put_nowait(None)
    await asyncio.wait_for(handler, 5)


async def test_failed_direct_write_ends_the_socket(patched):
    _server, sock, gone = make_socket()
    ws = FakeWs()
    handler = asyncio.create_task(sock._websocket_handler(ws))
    await asyncio.sleep(0)
    ws.fail = True
    await sock.send(msg("x"))  # the sender's handler sees no exception
    await asyncio.wait_for(ws.closed.wait(), 5)  # the writer ended and closed the websocket
    await sock.send(msg("y"))  # later sends go to the queue of a socket that is closing
    ws.incoming.put_nowait(None)
    await asyncio.wait_for(handler, 5)
    assert sock.closed and gone == ["transport close"]
