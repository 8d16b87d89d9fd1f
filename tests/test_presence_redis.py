"""Presence and typing across two server processes sharing PostgreSQL and Redis, and a crashed
process's users going offline. PostgreSQL runs only (PV_TEST_DB=postgres), like
tests/test_voice_redis.py."""
from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.support import Api, create_channel, create_server, join_server, redis_cluster, seed_members
from tests.support_sockets import (Client, eventually_status, member_status, node_presence, node_send,
                                   presence_about, presence_clients, presence_of, quiet_about, subscribe, wait_presence)

pytestmark = [pytest.mark.timeout(180)]
REDIS_DB = 12


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with redis_cluster(tmp_path_factory.mktemp("presence-cluster"), 2, REDIS_DB) as (procs, _r):
        yield procs


@pytest.fixture
async def made():
    clients: list[Client] = []

    async def make(base, token, form="seed") -> Client:
        c = Client(base, form, token)
        clients.append(c)
        return await c.connect()

    yield make
    for c in clients:
        await c.close()


def setup(api: Api):
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob)
    return alice, bob, sv


@pytest.mark.asyncio
async def test_presence_spans_processes(cluster, made):
    p1, p2 = cluster
    api1, api2 = Api(p1.base), Api(p2.base)
    alice, bob, sv = setup(api1)
    b = await made(p2.base, bob.token)
    a1 = await made(p1.base, alice.token)
    await wait_presence(b, alice.id, "online")
    assert member_status(api2, bob, sv["id"], alice.id) == "online"
    a2 = await made(p2.base, alice.token, "desktop")  # her second socket, on the other process
    await a1.close()
    await quiet_about(b, alice.id, 1.0)
    assert member_status(api1, bob, sv["id"], alice.id) == "online"
    r = api1.put("/users/", alice.token, json={"status": "dnd"})
    assert r.status_code == 200, r.text
    await wait_presence(b, alice.id, "dnd")
    assert member_status(api2, bob, sv["id"], alice.id) == "dnd"
    await a2.close()
    await wait_presence(b, alice.id, "offline")
    await eventually_status(api1, bob, sv["id"], alice.id, "offline")
    assert presence_of(b, alice.id) == ["online", "dnd", "offline"]


@pytest.mark.asyncio
async def test_presence_spans_processes_with_node_clients(cluster, node):
    """The same across processes with Node's socket.io-client (tests/js/presence_client.mjs):
    one online and one offline for two sockets on two processes, nothing to a stranger."""
    p1, p2 = cluster
    alice, bob, sv = setup(Api(p1.base))
    stranger = Api(p1.base).register()
    async with presence_clients(node) as start:
        b = await start(bob.token, p2.base)
        s = await start(stranger.token, p2.base)
        a1 = await start(alice.token, p1.base)
        await b.until(presence_about(alice.id, "online"))
        a2 = await start(alice.token, p2.base)  # her second socket, on the other process
        await node_send(a1, {"disconnect": True})
        await asyncio.sleep(1.0)
        await node_send(b, {"flush": True})
        assert node_presence(b, alice.id) == ["online"]
        await node_send(a2, {"disconnect": True})
        await b.until(presence_about(alice.id, "offline"))
        await asyncio.sleep(0.5)
        await node_send(s, {"flush": True})
        assert node_presence(b, alice.id) == ["online", "offline"]
        assert node_presence(s, alice.id) == []


@pytest.mark.asyncio
async def test_typing_throttle_holds_across_processes(cluster, made):
    p1, p2 = cluster
    api = Api(p1.base)
    alice, bob, sv = setup(api)
    b = await made(p1.base, bob.token)
    a1 = await made(p1.base, alice.token)
    a2 = await made(p2.base, alice.token)
    for _attempt in range(3):  # a fresh channel each time: a stall past the 3 s window retries
        text = create_channel(api, alice, sv["id"], "text")
        for c in (b, a1, a2):
            await subscribe(c, text["id"])
        started = time.monotonic()
        await a1.emit("typing", text["id"])
        assert (await b.wait("user-typing"))["userId"] == alice.id
        await a2.emit("typing", text["id"])  # same user, other process, inside the window
        await asyncio.sleep(1.0)
        if time.monotonic() - started < 2.5:
            break
        b.log = [e for e in b.log if e[0] != "user-typing"]  # the machine stalled: try again
    await b.quiet("user-typing", 0.01)
    await a1.quiet("user-typing", 0.01)
    await a2.quiet("user-typing", 0.01)
    await b.emit("typing", text["id"])  # bob's notice reaches alice's socket on the other process
    assert (await a2.wait("user-typing"))["userId"] == bob.id
    assert (await a1.wait("user-typing"))["userId"] == bob.id


@pytest.mark.asyncio
async def test_crashed_process_users_go_offline(cluster, made):
    p1, p2 = cluster
    api = Api(p1.base)
    alice, bob, sv = setup(api)
    b = await made(p1.base, bob.token)
    await made(p2.base, alice.token)
    await wait_presence(b, alice.id, "online")
    p2.proc.send_signal(signal.SIGKILL)
    p2.proc.wait()
    # heartbeat 1 s: three missed beats, then the live process's sweep announces her
    await wait_presence(b, alice.id, "offline", timeout=15)
    assert member_status(api, bob, sv["id"], alice.id) == "offline"
    # she comes back on the live process
    await made(p1.base, alice.token)
    await wait_presence(b, alice.id, "online")
    await asyncio.sleep(0.1)


@pytest.mark.asyncio
async def test_heartbeat_repairs_counts(cluster, made):
    """A count left in Redis without a socket (an uncount that failed) is dropped at the next
    beats and the user announced offline; a count lost while its socket lives (swept during a
    stall) is restored. Tampers with Redis directly to cause both."""
    import redis

    p1 = cluster[0]
    api = Api(p1.base)
    alice, bob, sv = setup(api)
    carol = api.register()
    join_server(api, alice, sv["id"], carol)
    r = redis.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}", decode_responses=True)
    watcher = await made(p1.base, carol.token)
    await made(p1.base, alice.token)
    await wait_presence(watcher, alice.id, "online")
    (owner,) = [f for f in r.hgetall(f"pv:pr:u:{alice.id}") if f != "pref"]
    # a ghost count of bob on alice's process: he shows online, then the heartbeat drops it
    r.hset(f"pv:pr:u:{bob.id}", mapping={owner: 1, "pref": "online"})
    r.sadd(f"pv:pr:ou:{owner}", bob.id)
    r.set(f"pv:pr:on:{bob.id}", "online", ex=30)
    # (he shows online until the next beat, within a second: too short to check reliably)
    await wait_presence(watcher, bob.id, "offline", timeout=10)
    assert member_status(api, carol, sv["id"], bob.id) == "offline"
    # alice's count lost while her socket lives: restored within a beat or two
    r.delete(f"pv:pr:u:{alice.id}", f"pv:pr:on:{alice.id}")
    await eventually_status(api, carol, sv["id"], alice.id, "online", timeout=10)


def test_rest_reads_presence_in_one_mget(cluster):
    """A server of 200 members costs one Redis MGET of presence keys per answer, whatever the
    number of members (watched with MONITOR, filtered to this test's database and keys)."""
    import threading

    import redis

    p1 = cluster[0]
    api = Api(p1.base)
    alice = api.register()
    sv = create_server(api, alice)
    seed_members(p1.database, sv["id"], 200)
    seen: list[str] = []
    ready, done = threading.Event(), threading.Event()

    def watch():
        r = redis.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}", decode_responses=True)
        with r.monitor() as m:
            ready.set()
            for cmd in m.listen():
                if "pv:pr:on:" in cmd["command"] and cmd.get("db") == REDIS_DB:
                    seen.append(cmd["command"])
                if done.is_set() and "pv:test:end" in cmd["command"]:
                    return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    ready.wait(10)
    r = api.get(f"/servers/{sv['id']}", alice.token)
    assert r.status_code == 200 and len(r.json()["members"]) == 201
    done.set()
    redis.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}").get("pv:test:end")
    t.join(10)
    mgets = [c for c in seen if c.upper().startswith("MGET")]
    assert len(seen) == len(mgets) == 1, seen[:5]
    assert mgets[0].count("pv:pr:on:") == 201
