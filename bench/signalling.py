"""Signalling benchmark (not a test).

Starts a server process (SQLite, in-memory rooms), connects 200 sockets in 100 voice rooms (two per
room), ping-pongs `signal` events inside every room for a fixed time, and prints relayed signals
per second and the round-trip p50/p99. Then connects 1,000 idle sockets and prints the server's
memory per idle socket (RSS before/after).

    .venv/bin/python bench/signalling.py [--seconds 10] [--rooms 100] [--idle 1000]

The clients run in this one Python process; on a small machine they, not the server, are often the
bottleneck, so read the figures as a lower bound.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import socketio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import Api, Database, ServerProcess, create_channel, create_server, join_server  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def connect(base: str, token: str) -> socketio.AsyncClient:
    c = socketio.AsyncClient(reconnection=False)
    await c.connect(base, namespaces=["/socket"], socketio_path="socket.io", auth={"token": token},
                    transports=["websocket"], wait_timeout=30)
    return c


async def join(c: socketio.AsyncClient, cid: int) -> None:
    done = asyncio.get_running_loop().create_future()
    c.on("created", lambda data: done.done() or done.set_result(data), namespace="/socket")
    c.on("error", lambda data: done.done() or done.set_exception(RuntimeError(str(data))), namespace="/socket")
    await c.emit("join-room", cid, namespace="/socket")
    await asyncio.wait_for(done, 30)


async def ping_pong(base: str, api: Api, rooms: int, seconds: float) -> None:
    owner, member = api.register(), api.register()
    sv = create_server(api, owner)
    join_server(api, owner, sv["id"], member)
    channels = [create_channel(api, owner, sv["id"], type="voice")["id"] for _ in range(rooms)]
    pairs = []
    for cid in channels:
        a, b = await connect(base, owner.token), await connect(base, member.token)
        await join(a, cid)
        await join(b, cid)
        pairs.append((a, b))
    print(f"{2 * rooms} sockets in {rooms} rooms connected and joined")

    rtts: list[float] = []
    relayed = 0
    stop_at = 0.0

    def wire(a: socketio.AsyncClient, b: socketio.AsyncClient):
        a_sid, b_sid = a.get_sid("/socket"), b.get_sid("/socket")
        sent = {}

        async def on_b(data):  # pong straight back
            nonlocal relayed
            relayed += 1
            await b.emit("signal", {"to": a_sid, "type": "answer", "sdp": data["sdp"]}, namespace="/socket")

        async def on_a(data):
            nonlocal relayed
            relayed += 1
            rtts.append(time.perf_counter() - sent.pop(data["sdp"]))
            await ping()

        async def ping():
            if time.perf_counter() >= stop_at:
                return
            key = f"{time.perf_counter_ns()}"
            sent[key] = time.perf_counter()
            await a.emit("signal", {"to": b_sid, "type": "offer", "sdp": key}, namespace="/socket")

        b.on("signal", on_b, namespace="/socket")
        a.on("signal", on_a, namespace="/socket")
        return ping

    pings = [wire(a, b) for a, b in pairs]
    await asyncio.sleep(0.5)
    relayed = 0
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(p() for p in pings))
    await asyncio.sleep(seconds + 0.5)
    elapsed = time.perf_counter() - started
    rtts.sort()
    print(f"relayed signals: {relayed} in {elapsed:.1f} s = {relayed / elapsed:,.0f}/s")
    if rtts:
        p50 = statistics.median(rtts) * 1000
        p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] * 1000
        print(f"round trips: {len(rtts)}, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    for a, b in pairs:
        await a.disconnect()
        await b.disconnect()


async def idle_memory(base: str, api: Api, pid: int, n: int) -> None:
    user = api.register()
    await asyncio.sleep(1.0)
    before = rss_kib(pid)
    clients = []
    for i in range(0, n, 50):
        clients += await asyncio.gather(*(connect(base, user.token) for _ in range(min(50, n - i))))
    await asyncio.sleep(2.0)
    after = rss_kib(pid)
    print(f"idle sockets: {len(clients)}; server RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB; "
          f"{(after - before) * 1024 / len(clients) / 1024:.1f} KiB per idle socket")
    for i in range(0, len(clients), 100):
        await asyncio.gather(*(c.disconnect() for c in clients[i:i + 100]))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rooms", type=int, default=100)
    ap.add_argument("--idle", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        proc = ServerProcess(database=Database.fresh(tmp), data_dir=tmp / "data",
                             extra_env={"VALIDATE_RESPONSES": "0"}).start()
        try:
            api = Api(proc.base)
            await ping_pong(proc.base, api, args.rooms, args.seconds)
            await idle_memory(proc.base, api, proc.proc.pid, args.idle)
        finally:
            proc.stop()


if __name__ == "__main__":
    asyncio.run(main())
