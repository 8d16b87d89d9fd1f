"""Two server processes sharing PostgreSQL and Redis: one client on each, a whole
join/offer/answer/candidate/leave exchange between them, removals across processes, and a
crashed process's participants vanishing. PostgreSQL runs only (PV_TEST_DB=postgres)."""
from __future__ import annotations

import asyncio
import signal

import pytest

from tests.support import Api, redis_cluster, create_channel, create_server, make_admin
from tests.support_sockets import (READ_MESSAGE_HISTORY, Client, add_members, ends_live_messages, subscribe,
                                   take_bits)

pytestmark = [pytest.mark.timeout(180)]
REDIS_DB = 13


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with redis_cluster(tmp_path_factory.mktemp("cluster"), 2, REDIS_DB) as (procs, _r):
        yield procs


@pytest.fixture
async def pair(cluster):
    p1, p2 = cluster
    api = Api(p1.base)
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    add_members(api, alice, sv["id"], bob)
    voice = create_channel(api, alice, sv["id"], type="voice")
    a = await Client(p1.base, "seed", alice.token).connect()
    b = await Client(p2.base, "desktop", bob.token).connect()
    yield api, alice, bob, sv, voice, a, b
    await a.close()
    await b.close()


@pytest.mark.asyncio
async def test_exchange_across_two_processes(pair, cluster):
    api, alice, bob, sv, voice, a, b = pair
    created = await a.join(voice["id"])
    assert [p["socketId"] for p in created["participants"]] == [a.sid]
    created = await b.join(f"channel-{voice['id']}")
    assert [p["socketId"] for p in created["participants"]] == [a.sid, b.sid]
    assert created["participants"][0]["userData"]["id"] == alice.id
    assert (await a.wait("user-connected"))["socketId"] == b.sid
    await a.emit("signal", {"to": b.sid, "type": "offer", "sdp": {"type": "offer", "sdp": "v=0 a"}, "from": "x"})
    assert await b.wait("signal") == {"from": a.sid, "to": a.sid, "type": "offer", "sdp": {"type": "offer", "sdp": "v=0 a"}}
    await b.emit("signal", {"to": a.sid, "type": "answer", "sdp": {"type": "answer", "sdp": "v=0 b"}})
    assert (await a.wait("signal"))["from"] == b.sid
    for i in range(30):
        await a.emit("signal", {"to": b.sid, "type": "candidate", "candidate": {"candidate": f"c{i}"}})
    assert [(await b.wait("signal"))["candidate"]["candidate"] for _ in range(30)] == [f"c{i}" for i in range(30)]
    await b.emit("toggle-mic", False)
    assert await a.wait("mic-toggled") == {"socketId": b.sid, "micToggle": False}
    # a third socket in another room on the second process cannot be signalled from the first
    other = create_channel(api, alice, sv["id"], type="voice")
    c = await Client(cluster[1].base, "seed", alice.token).connect()
    try:
        await c.join(other["id"])
        await a.emit("signal", {"to": c.sid, "type": "offer", "sdp": "x"})
        assert (await a.wait("error"))["code"] == "peer_not_in_room"
        await c.quiet("signal", 0.3)
    finally:
        await c.close()
    b_sid = b.sid
    await b.emit("leave-room")
    assert await a.wait("user-disconnected") == b_sid
    await b.join(voice["id"])
    await a.wait("user-connected")
    await b.close()
    assert await a.wait("user-disconnected") == b_sid


@pytest.mark.asyncio
async def test_block_on_one_process_removes_socket_on_the_other(pair, cluster):
    api, alice, bob, sv, voice, a, b = pair
    admin = make_admin(api, cluster[0])
    await a.join(voice["id"])
    await b.join(voice["id"])
    await a.wait("user-connected")
    b_sid = b.sid
    r = api.put(f"/admin/users/{bob.id}", admin.token, json={"isActive": False})
    assert r.status_code == 200, r.text
    assert await a.wait("user-disconnected") == b_sid
    await a.emit("signal", {"to": b_sid, "type": "offer", "sdp": "x"})
    assert (await a.wait("error"))["code"] == "peer_not_in_room"


@pytest.mark.asyncio
async def test_member_losing_read_history_on_one_process_stops_messages_on_the_other(pair, cluster):
    """Bob reads a channel only through a custom role; his subscription lives on the second
    process, the unassign goes through the first: he must get no more of the channel's messages."""
    api, alice, bob, sv, voice, a, b = pair
    view_read = (1 << 10) | READ_MESSAGE_HISTORY
    take_bits(api, alice, sv["id"], READ_MESSAGE_HISTORY)
    r = api.post(f"/servers/{sv['id']}/roles", alice.token, json={"name": "Readers", "permissions": str(view_read)})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    mid = next(m["id"] for m in api.get(f"/servers/{sv['id']}", alice.token).json()["members"]
               if m["userId"] == bob.id)
    assert api.post(f"/servers/{sv['id']}/roles/members/{mid}/roles/{rid}", alice.token).status_code == 201
    text = create_channel(api, alice, sv["id"], type="text")
    await subscribe(b, text["id"])
    r = api.post("/messages", alice.token, json={"channelId": text["id"], "content": "for readers"})
    assert r.status_code == 201, r.text
    assert (await b.wait("message-created"))["content"] == "for readers"
    assert api.delete(f"/servers/{sv['id']}/roles/members/{mid}/roles/{rid}", alice.token).status_code == 204
    await ends_live_messages(api, alice, b, text["id"])


@pytest.mark.asyncio
async def test_role_edit_on_one_process_ends_subscriptions_on_the_other(pair, cluster):
    api, alice, bob, sv, voice, a, b = pair
    text = create_channel(api, alice, sv["id"], type="text")
    await subscribe(b, text["id"])
    take_bits(api, alice, sv["id"], READ_MESSAGE_HISTORY)
    await ends_live_messages(api, alice, b, text["id"])


@pytest.mark.asyncio
async def test_password_change_on_one_process_ends_the_session_on_the_other(pair, cluster):
    """Bob's socket lives on the second process; his password changes through the first: the
    re-check reaches it through the notice, it leaves the room (alice, on the first process, sees
    it go), gets `session_ended` and is disconnected; live messages stop."""
    api, alice, bob, sv, voice, a, b = pair
    text = create_channel(api, alice, sv["id"], type="text")
    await a.join(voice["id"])
    await b.join(voice["id"])
    await a.wait("user-connected")
    await subscribe(b, text["id"])
    b_sid = b.sid
    r = api.post("/auth/login", json={"email": f"{bob.user['username'].lower()}@example.com",
                                      "password": "password123"})
    assert r.status_code == 200, r.text
    # from another session (bob's phone): the socket's session is one of the others
    r = api.put(f"/auth/users/{bob.id}/password", r.json()["token"],
                json={"oldPassword": "password123", "newPassword": "changed-pass-123"})
    assert r.status_code == 200, r.text
    assert await a.wait("user-disconnected", timeout=5) == b_sid
    assert (await b.wait("error", timeout=5))["code"] == "session_ended"
    for _ in range(100):
        if b.ns not in b.sio.namespaces:
            break
        await asyncio.sleep(0.05)
    assert b.ns not in b.sio.namespaces, "not disconnected"
    r = api.post("/messages", alice.token, json={"channelId": text["id"], "content": "after the change"})
    assert r.status_code == 201, r.text
    await b.quiet("message-created", 0.5)
    await a.emit("signal", {"to": b_sid, "type": "offer", "sdp": "x"})
    assert (await a.wait("error"))["code"] == "peer_not_in_room"


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["kick", "ban", "leave"])
async def test_a_removed_or_departed_member_stops_signalling_at_once_in_every_process(pair, cluster, how):
    """Each process remembers where the sockets it signals between are (realtime/store.py): a
    kick or ban handled by either process, or a leave, must end the signals of and to the member
    in both processes as soon as anyone hears of it."""
    api, alice, bob, sv, voice, a, b = pair
    c = await Client(cluster[1].base, "seed", alice.token).connect()  # alice's second socket, next to bob's
    try:
        await a.join(voice["id"])
        await b.join(voice["id"])
        await c.join(voice["id"])
        b_sid = b.sid
        # Signals every way, so that both processes remember all three sockets.
        for sender, to, receiver in ((a, b, b), (c, b, b), (b, a, a), (b, c, c), (a, c, c), (c, a, a)):
            await sender.emit("signal", {"to": to.sid, "type": "offer", "sdp": "warm"})
            assert (await receiver.wait("signal"))["from"] == sender.sid
        if how == "leave":
            await b.emit("leave-room")
        else:
            mid = next(m["id"] for m in api.get(f"/servers/{sv['id']}", alice.token).json()["members"]
                       if m["userId"] == bob.id)
            # The kick on bob's process, the ban on the other one: each process must learn it.
            via = Api(cluster[1].base) if how == "kick" else api
            r = (via.delete(f"/serverMembers/{sv['id']}/members/{mid}", alice.token) if how == "kick" else
                 via.post(f"/serverMembers/{sv['id']}/members/{mid}/ban", alice.token, json={}))
            assert r.status_code in (200, 204), r.text
            assert (await b.wait("error"))["code"] == "removed_from_server"
        assert await a.wait("user-disconnected") == b_sid
        assert await c.wait("user-disconnected") == b_sid
        received = len(b.events("signal"))
        for sender in (a, c):
            await sender.emit("signal", {"to": b_sid, "type": "offer", "sdp": "after"})
            assert (await sender.wait("error"))["code"] == "peer_not_in_room"
        for to in (a, c):
            await b.emit("signal", {"to": to.sid, "type": "offer", "sdp": "after"})
            assert (await b.wait("error"))["code"] == "not_in_room"
        await asyncio.sleep(0.3)
        assert len(b.events("signal")) == received
        assert [s for s in a.events("signal") + c.events("signal") if s.get("sdp") == "after"] == []
    finally:
        await c.close()


@pytest.mark.asyncio
async def test_crashed_process_participants_vanish(pair, cluster):
    api, alice, bob, sv, voice, a, b = pair
    await a.join(voice["id"])
    await b.join(voice["id"])
    await a.wait("user-connected")
    b_sid = b.sid
    cluster[1].proc.send_signal(signal.SIGKILL)
    cluster[1].proc.wait()
    # heartbeat 1 s: three missed beats, then the sweeper of the live process announces it
    assert await a.wait("user-disconnected", timeout=15) == b_sid
    carol = api.register()
    add_members(api, alice, sv["id"], carol)
    c = await Client(cluster[0].base, "seed", carol.token).connect()
    try:
        created = await c.join(voice["id"])
        assert [p["socketId"] for p in created["participants"]] == [a.sid, c.sid]
    finally:
        await c.close()

