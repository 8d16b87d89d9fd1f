"""Soak benchmark (not a test): mixed REST and socket load at a fixed rate against one server
process, for a long time, to see errors, tail latency and memory growth.

Starts its own server (SQLite by default, `--postgres` for a fresh PostgreSQL database; rate
limits lifted, access log off), sets up users, a server with text and voice channels, then
each second fires `--rate` REST requests on a fixed schedule (open loop: a slow server does not
slow the load down): reads of message pages, posts, /auth/me, server and member lists, and now
and then a login. Alongside, `--sockets` Socket.IO clients stay in voice rooms in pairs, relay
`signal` events to each other at `--signals` per second per pair, and every so often leave and
rejoin. Prints, per minute: requests, errors (any non-2xx or exception, REST or socket), REST p50
and p99 latency, signal round trips, and the server's RSS.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 50] [--sockets 20] [--signals 5] [--postgres]
                                   [--max-in-flight 100]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import socketio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import Database, ServerProcess, backend, unique  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Minute:
    def __init__(self):
        self.latencies: list[float] = []
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.signals = 0

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=int, default=50, help="REST requests per second")
    ap.add_argument("--sockets", type=int, default=20, help="socket clients (pairs share a voice room)")
    ap.add_argument("--signals", type=float, default=5, help="signals per second per pair")
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--max-in-flight", type=int, default=100,
                    help="REST requests in flight at most; a due request beyond it counts as an error")
    args = ap.parse_args()

    import os
    if args.postgres:
        os.environ["PV_TEST_DB"] = "postgres"
    tmp = Path(tempfile.mkdtemp(prefix="pv-soak-"))
    database = Database.fresh(tmp)
    server = ServerProcess(database=database, data_dir=tmp / "data", extra_env={
        "VALIDATE_RESPONSES": "0", "RATE_LIMITS_ENABLED": "0", "LOG_LEVEL": "warning"}).start()
    pid = server.proc.pid
    print(f"server pid {pid} on {server.base}, {backend()}; {args.rate} req/s, {args.sockets} sockets, "
          f"{args.signals} signals/s per pair, {args.minutes} min", flush=True)
    try:
        await run(server, pid, args)
    finally:
        server.stop()
        database.drop()


async def run(server: ServerProcess, pid: int, args) -> None:
    api = f"{server.base}/api"
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=api, timeout=30, limits=limits) as c:
        users = []
        for _ in range(max(2, args.sockets)):
            name = unique("soak")
            r = await c.post("/auth/register", json={"username": name, "email": f"{name}@example.com",
                                                     "password": "password123"})
            r.raise_for_status()
            users.append((r.json()["token"], f"{name}@example.com"))
        owner = users[0][0]
        h = {"Authorization": f"Bearer {owner}"}
        sv = (await c.post("/servers", headers=h, json={"name": "soak"})).json()
        texts = [(await c.post(f"/servers/{sv['id']}/channels", headers=h,
                               json={"name": f"t{i}", "type": "text"})).json()["id"] for i in range(3)]
        voices = [(await c.post(f"/servers/{sv['id']}/channels", headers=h,
                                json={"name": f"v{i}", "type": "voice"})).json()["id"]
                  for i in range(max(1, args.sockets // 2))]
        invite = (await c.post(f"/invite/{sv['id']}/invite", headers=h, json={})).json()["invite"]["token"]
        for token, _ in users[1:]:
            (await c.post(f"/invite/invite/{invite}/accept", headers={"Authorization": f"Bearer {token}"})).raise_for_status()

        minutes: list[Minute] = []
        start = time.monotonic()
        end = start + args.minutes * 60

        def current() -> Minute:
            idx = int((time.monotonic() - start) // 60)
            while len(minutes) <= idx:
                minutes.append(Minute())
            return minutes[idx]

        async def one_request() -> None:
            token, email = random.choice(users)
            hh = {"Authorization": f"Bearer {token}"}
            ch = random.choice(texts)
            roll = random.random()
            t0 = time.perf_counter()
            try:
                if roll < 0.35:
                    r = await c.get("/messages", params={"channelId": ch, "limit": 50}, headers=hh)
                elif roll < 0.60:
                    r = await c.post("/messages", headers=hh, json={"content": f"soak {random.random()}", "channelId": ch})
                elif roll < 0.75:
                    r = await c.get("/auth/me", headers=hh)
                elif roll < 0.85:
                    r = await c.get("/servers", headers=hh)
                elif roll < 0.97:
                    r = await c.get(f"/serverMembers/{sv['id']}/members", headers=hh)
                else:
                    r = await c.post("/auth/login", json={"email": email, "password": "password123"})
                ok = 200 <= r.status_code < 300
                kind = str(r.status_code)
            except Exception as exc:
                ok, kind = False, type(exc).__name__
            m = current()
            m.latencies.append(time.perf_counter() - t0)
            if not ok:
                m.error(kind)

        async def rest_load() -> None:
            interval = 1 / args.rate
            n = 0
            tasks = set()
            while True:
                due = start + n * interval
                if due >= end:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    await asyncio.sleep(0)  # catching up: still let responses be read
                if len(tasks) >= args.max_in_flight:
                    # Open loop, bounded: a request that cannot even start (the client would only
                    # queue it behind its own pool, which costs the client quadratic time) is an
                    # error of its minute, so a stall shows up instead of snowballing.
                    current().error("backlog")
                    n += 1
                    continue
                t = asyncio.create_task(one_request())
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                n += 1
            await asyncio.gather(*tasks)

        async def voice_pair(i: int) -> None:
            (ta, _), (tb, _) = users[(2 * i) % len(users)], users[(2 * i + 1) % len(users)]
            room = voices[i % len(voices)]
            while time.monotonic() < end:
                a = socketio.AsyncClient(reconnection=False)
                b = socketio.AsyncClient(reconnection=False)
                got: asyncio.Queue = asyncio.Queue()
                joined = {"a": asyncio.Event(), "b": asyncio.Event()}
                a.on("created", lambda *_, j=joined: j["a"].set())
                b.on("created", lambda *_, j=joined: j["b"].set())
                b.on("signal", lambda data, q=got: q.put_nowait(time.perf_counter()))
                a.on("error", lambda *x: current().error("socket-error"))
                b.on("error", lambda *x: current().error("socket-error"))
                try:
                    await a.connect(server.base, socketio_path="socket", transports=["websocket"], wait_timeout=10)
                    await b.connect(server.base, socketio_path="socket", transports=["websocket"], wait_timeout=10)
                    await a.emit("join-room", (room, ta))
                    await asyncio.wait_for(joined["a"].wait(), 10)
                    await b.emit("join-room", (room, tb))
                    await asyncio.wait_for(joined["b"].wait(), 10)
                    # Stay about a minute, signalling, then leave and rejoin.
                    stay_until = min(end, time.monotonic() + random.uniform(45, 75))
                    while time.monotonic() < stay_until:
                        await a.emit("signal", {"to": b.get_sid(), "type": "candidate",
                                                "candidate": {"candidate": "c"}})
                        try:
                            await asyncio.wait_for(got.get(), 5)
                            current().signals += 1
                        except TimeoutError:
                            current().error("signal-timeout")
                        await asyncio.sleep(1 / args.signals)
                    await a.emit("leave-room")
                except Exception as exc:
                    current().error(f"socket:{type(exc).__name__}")
                    await asyncio.sleep(1)
                finally:
                    for s in (a, b):
                        try:
                            await s.disconnect()
                        except Exception:
                            pass

        async def reporter() -> None:
            print("minute  requests  errors  p50_ms  p99_ms  signals  rss_mib", flush=True)
            reported = 0
            while True:
                await asyncio.sleep(1)
                done = int((time.monotonic() - start) // 60)
                finished = time.monotonic() >= end + 1
                while reported < min(done, len(minutes)) or (finished and reported < len(minutes)):
                    m = minutes[reported]
                    lat = sorted(m.latencies)
                    p50 = statistics.median(lat) * 1000 if lat else float("nan")
                    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
                    kinds = f"  {m.error_kinds}" if m.error_kinds else ""
                    print(f"{reported + 1:>6}  {len(lat):>8}  {m.errors:>6}  {p50:>6.1f}  {p99:>6.1f}  "
                          f"{m.signals:>7}  {rss_mib(pid):>7.1f}{kinds}", flush=True)
                    reported += 1
                if finished:
                    return

        rss0 = rss_mib(pid)
        await asyncio.gather(rest_load(), reporter(),
                             *(voice_pair(i) for i in range(max(1, args.sockets // 2))))
        total_errors = sum(m.errors for m in minutes)
        print(f"total: {sum(len(m.latencies) for m in minutes)} requests, {total_errors} errors, "
              f"{sum(m.signals for m in minutes)} signal round trips; RSS {rss0:.1f} -> {rss_mib(pid):.1f} MiB",
              flush=True)


if __name__ == "__main__":
    asyncio.run(main())
