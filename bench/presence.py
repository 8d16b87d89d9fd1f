"""Presence cost of connecting (not a test): a user in 10 servers of 1,000 members each against a
user in one server of 2, connecting and disconnecting in alternating rounds against one server
process. Reports, per side, the median time for the socket's connect to complete and for a
watcher sharing every server to receive `presence-updated` online, and the ratio big / small.

Connecting costs the token check, one statement for the user's server ids and one room entry per
server; announcing (after the connect answered) one statement for the audience and one emit to
the rooms. Neither walks the members, so the ratio should stay near 1.

    .venv/bin/python bench/presence.py [--servers 10] [--members 1000] [--rounds 20]
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

from tests.support import Api, Database, ServerProcess, create_server, join_server  # noqa: E402
from tests.test_query_counts import seed_members  # noqa: E402


class Watcher:
    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.seen: dict[tuple[int, str], asyncio.Event] = {}
        self.sio.on("presence-updated", self._on, namespace="/socket")

    async def _on(self, data) -> None:
        self.seen.setdefault((data["userId"], data["status"]), asyncio.Event()).set()

    def expect(self, user_id: int, status: str) -> asyncio.Event:
        ev = asyncio.Event()
        self.seen[(user_id, status)] = ev
        return ev


async def connect(base: str, token: str) -> socketio.AsyncClient:
    c = socketio.AsyncClient(reconnection=False)
    await c.connect(base, namespaces=["/socket"], socketio_path="socket.io", auth={"token": token},
                    transports=["websocket"], wait_timeout=30)
    return c


async def one_round(base: str, token: str, uid: int, watcher: Watcher) -> tuple[float, float]:
    online = watcher.expect(uid, "online")
    t0 = time.perf_counter()
    c = await connect(base, token)
    t1 = time.perf_counter()
    await asyncio.wait_for(online.wait(), 30)
    t2 = time.perf_counter()
    offline = watcher.expect(uid, "offline")
    await c.disconnect()
    await asyncio.wait_for(offline.wait(), 30)
    return (t1 - t0) * 1000, (t2 - t0) * 1000


async def run(servers: int, members: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        database = Database.fresh(tmp)
        proc = ServerProcess(database=database, data_dir=tmp / "data",
                             extra_env={"VALIDATE_RESPONSES": "0", "LOG_LEVEL": "warning"}).start()
        try:
            api = Api(proc.base)
            big, small, watch = api.register(), api.register(), api.register()
            for _ in range(servers):
                sv = create_server(api, big)
                join_server(api, big, sv["id"], watch)
                seed_members(database, sv["id"], members - 2)
            sv = create_server(api, small)
            join_server(api, small, sv["id"], watch)
            print(f"seeded: user {big.id} in {servers} servers of {members} members; user {small.id} in one of 2",
                  flush=True)
            watcher = Watcher()
            await watcher.sio.connect(proc.base, namespaces=["/socket"], socketio_path="socket.io",
                                      auth={"token": watch.token}, transports=["websocket"], wait_timeout=30)
            out: dict[str, list[tuple[float, float]]] = {"big": [], "small": []}
            for i in range(rounds + 2):  # two warm-up rounds
                for name, acct in (("big", big), ("small", small)):
                    r = await one_round(proc.base, acct.token, acct.id, watcher)
                    if i >= 2:
                        out[name].append(r)
            await watcher.sio.disconnect()
        finally:
            proc.stop()
            database.drop()
    res = {}
    for name, rs in out.items():
        res[name] = {"connect": statistics.median(r[0] for r in rs), "seen": statistics.median(r[1] for r in rs)}
    res["ratio_connect"] = res["big"]["connect"] / res["small"]["connect"]
    res["ratio_seen"] = res["big"]["seen"] / res["small"]["seen"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=10)
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    r = asyncio.run(run(args.servers, args.members, args.rounds))
    print(f"presence connect: {args.servers} servers x {args.members} members: connect {r['big']['connect']:.1f} ms, "
          f"watcher sees online {r['big']['seen']:.1f} ms; 1 server x 2 members: connect "
          f"{r['small']['connect']:.1f} ms, seen {r['small']['seen']:.1f} ms; ratio connect "
          f"{r['ratio_connect']:.2f}, seen {r['ratio_seen']:.2f} (medians of {args.rounds} alternating rounds)")


if __name__ == "__main__":
    main()
