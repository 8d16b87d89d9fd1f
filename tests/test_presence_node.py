"""Presence and typing seen by Node.js socket.io-client 4 (tests/js/presence_client.mjs, the seed
document's connection form). Every event the Node clients receive is validated against the
AsyncAPI document."""
from __future__ import annotations

import asyncio

import pytest

from tests.support import create_channel, create_server, join_server
from tests.support_sockets import node_presence, node_send, presence_about, presence_clients, recv

pytestmark = [pytest.mark.timeout(120)]


@pytest.mark.asyncio
async def test_presence_and_typing_with_node_clients(api, server, node):
    alice, bob, stranger = api.register(), api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob)
    text = create_channel(api, alice, sv["id"], "text")
    async with presence_clients(node, server.base) as start:
        b = await start(bob.token)
        s = await start(stranger.token)
        a1 = await start(alice.token)
        await b.until(presence_about(alice.id, "online"))
        a2 = await start(alice.token)  # a second socket: no second event
        for p in (a1, a2, b):
            await node_send(p, {"emit": ["subscribe-channel", text["id"]]})
            await p.until(recv("subscribed"))
        for _ in range(3):
            await node_send(a1, {"emit": ["typing", text["id"]]})
        got = (await b.until(recv("user-typing")))["args"][0]
        assert got == {"channelId": text["id"], "userId": alice.id, "username": alice.user["username"]}
        await node_send(a1, {"disconnect": True})
        await asyncio.sleep(1.0)
        for p in (a2, b, s):
            await node_send(p, {"flush": True})  # read everything the process printed so far
        assert len(b.received("user-typing")) == 1  # throttled: one relay for three events
        assert not a1.received("user-typing") and not a2.received("user-typing")  # not echoed
        assert [e["status"] for e in b.received("presence-updated") if e["userId"] == alice.id] == ["online"]
        await node_send(a2, {"disconnect": True})
        await b.until(presence_about(alice.id, "offline"))
        await asyncio.sleep(0.5)
        await node_send(s, {"flush": True})
        assert [e["status"] for e in b.received("presence-updated") if e["userId"] == alice.id] == ["online", "offline"]
        assert not [e for e in s.received("presence-updated") if e["userId"] == alice.id]  # a stranger


@pytest.mark.asyncio
async def test_invisible_and_blocked_with_node_clients(api, server, node):
    """Invisible stays offline to others until the user picks a visible status, and the user who
    is blocked hears none of it, while a co-member of both does."""
    alice, bob, blocked = api.register(), api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob, blocked)
    assert api.post(f"/friends/block/{blocked.id}", alice.token).status_code == 200
    r = api.put("/users/", alice.token, json={"status": "invisible"})
    assert r.status_code == 200, r.text
    async with presence_clients(node, server.base) as start:
        b = await start(bob.token)
        x = await start(blocked.token)
        a = await start(alice.token)
        await a.until(presence_about(alice.id, "invisible"))  # her own view: the connect was announced
        r = api.put("/users/", alice.token, json={"status": "online"})
        assert r.status_code == 200, r.text
        await b.until(presence_about(alice.id, "online"))
        r = api.put("/users/", alice.token, json={"status": "invisible"})
        assert r.status_code == 200, r.text
        await b.until(presence_about(alice.id, "offline"))
        await node_send(a, {"disconnect": True})  # she was offline to bob already: nothing more
        await asyncio.sleep(0.8)
        for p in (b, x):
            await node_send(p, {"flush": True})
        assert node_presence(b, alice.id) == ["online", "offline"]  # nothing while invisible
        assert node_presence(x, alice.id) == []  # blocked
        assert node_presence(b, blocked.id) == ["online"]  # the blocked user's socket counts
