"""Three server processes sharing PostgreSQL and Redis (realtime/cluster.py): a signal to a socket
of another process is decoded by that process only, a signal inside one process never goes through
Redis, the join fan-out reaches each other process once, room broadcasts still reach every process,
and a crashed process's directory entries expire. Each process counts the messages it takes from
Redis (GET /metrics, projectvoice_socket_cluster_messages_total). PostgreSQL runs only."""
from __future__ import annotations

import asyncio
import re
import secrets
import signal
import time

import httpx
import pytest

from tests.support import Api, ServerProcess, redis_cluster, create_channel, create_server
from tests.support_sockets import Client, add_members

pytestmark = [pytest.mark.timeout(180)]
REDIS_DB = 14
CHANNEL = f"pv-test-{secrets.token_hex(4)}"


@pytest.fixture(scope="module", params=["fastpath", "plain"])
def trio(request, tmp_path_factory):
    """Three processes, with realtime/fastpath.py on and (the libraries as shipped) off."""
    with redis_cluster(tmp_path_factory.mktemp("trio"), 3, REDIS_DB, VOICE_REDIS_CHANNEL=CHANNEL,
                       SOCKET_FASTPATH="1" if request.param == "fastpath" else "0") as made:
        yield made


def decoded(proc: ServerProcess) -> dict[str, float]:
    """This process's count of messages taken from Redis, by channel (own, shared)."""
    text = httpx.get(f"{proc.base}/metrics", timeout=10).text
    out = {"own": 0.0, "shared": 0.0}
    for kind, value in re.findall(r'^projectvoice_socket_cluster_messages_total\{channel="(\w+)"\} (\S+)$',
                                  text, re.M):
        out[kind] = float(value)
    return out


async def settled(procs, before, want, timeout=5.0):
    """Wait until every process's counters moved by `want` (process index -> {channel: delta});
    then check they stay there (nothing more arrives late)."""
    deadline = time.monotonic() + timeout
    while True:
        now = [decoded(p) for p in procs]
        delta = [{k: now[i][k] - before[i][k] for k in ("own", "shared")} for i in range(len(procs))]
        expected = [{"own": want.get(i, {}).get("own", 0), "shared": want.get(i, {}).get("shared", 0)}
                    for i in range(len(procs))]
        if delta == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    now = [decoded(p) for p in procs]
    delta = [{k: now[i][k] - before[i][k] for k in ("own", "shared")} for i in range(len(procs))]
    assert delta == expected
    return now


@pytest.mark.asyncio
async def test_a_signal_across_processes_is_decoded_by_exactly_one_other_process(trio):
    procs, _r = trio
    api = Api(procs[0].base)
    alice, bob, carol = api.register(), api.register(), api.register()
    sv = create_server(api, alice)
    add_members(api, alice, sv["id"], bob, carol)
    voice = create_channel(api, alice, sv["id"], type="voice")
    a = await Client(procs[0].base, "seed", alice.token).connect()
    a2 = await Client(procs[0].base, "seed", alice.token).connect()
    b = await Client(procs[1].base, "seed", bob.token).connect()
    c = await Client(procs[2].base, "seed", carol.token).connect()
    try:
        await a.join(voice["id"])
        await a2.join(voice["id"])
        await b.join(voice["id"])
        for who in (a, a2):
            await who.wait("user-connected", where=lambda d: d["socketId"] == b.sid)
        before = [decoded(p) for p in procs]

        # the join fan-out: carol (third process) is announced to the first process once (for its
        # two sockets, of one namespace) and to the second once
        await c.join(voice["id"])
        for who in (a, a2, b):
            await who.wait("user-connected", where=lambda d: d["socketId"] == c.sid)
        before = await settled(procs, before, {0: {"own": 1}, 1: {"own": 1}})

        # 20 offers from the first process to a socket of the second: the second decodes 20, the
        # third none, and the first takes nothing from Redis
        for i in range(20):
            await a.emit("signal", {"to": b.sid, "type": "offer", "sdp": f"v=0 {i}"})
        assert [(await b.wait("signal"))["sdp"] for _ in range(20)] == [f"v=0 {i}" for i in range(20)]
        before = await settled(procs, before, {1: {"own": 20}})

        # inside one process: no message through Redis at all
        for i in range(10):
            await a2.emit("signal", {"to": a.sid, "type": "candidate", "candidate": {"candidate": f"c{i}"}})
        assert [(await a.wait("signal"))["candidate"]["candidate"] for _ in range(10)] == \
            [f"c{i}" for i in range(10)]
        before = await settled(procs, before, {})

        # a room broadcast still reaches every process: through the shared channel, which every
        # process reads (the sender too, its own echo), once per namespace (the app broadcasts to a
        # voice room on both)
        await b.emit("toggle-mic", False)
        for who in (a, a2, c):
            assert await who.wait("mic-toggled") == {"socketId": b.sid, "micToggle": False}
        await settled(procs, before, {0: {"shared": 2}, 1: {"shared": 2}, 2: {"shared": 2}})
    finally:
        for who in (a, a2, b, c):
            await who.close()


@pytest.mark.asyncio
async def test_a_crashed_process_directory_entries_expire(trio):
    procs, r = trio
    api = Api(procs[0].base)
    dave = api.register()
    d = await Client(procs[2].base, "seed", dave.token).connect()
    key = f"pv:sio:{CHANNEL}:sid:{d.sid}"
    assert r.get(key) is not None
    ttl = r.ttl(key)
    assert 0 < ttl <= 3
    await asyncio.sleep(4.5)  # past the 3 s an entry lives without renewal
    assert r.get(key) is not None, "a live process renews its entries"
    procs[2].proc.send_signal(signal.SIGKILL)
    procs[2].proc.wait()
    deadline = time.monotonic() + 10
    while r.get(key) is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert r.get(key) is None, "the crashed process's entry outlived three heartbeats"
    try:
        await d.close()
    except Exception:
        pass
