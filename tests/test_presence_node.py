"""Presence and typing seen by Node.js socket.io-client 4 (tests/js/presence_client.mjs, the seed
document's connection form). Every event the Node clients receive is validated against the
AsyncAPI document."""
from __future__ import annotations

import asyncio
import json

import pytest

from tests.support import create_channel, create_server, join_server
from tests.support_sockets import NodeProc, recv

pytestmark = [pytest.mark.timeout(120)]


async def send(p: NodeProc, cmd: dict) -> None:
    line = json.dumps(cmd)
    p.proc.stdin.write((line + "\n").encode())
    await p.proc.stdin.drain()
    await p.until(lambda x: x.get("done") == line)


def about(user_id: int, status: str | None = None):
    return recv("presence-updated", lambda a: a["userId"] == user_id and (status is None or a["status"] == status))


@pytest.mark.asyncio
async def test_presence_and_typing_with_node_clients(api, server, node):
    alice, bob, stranger = api.register(), api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob)
    text = create_channel(api, alice, sv["id"], "text")
    procs = []

    async def start(token) -> NodeProc:
        p = await NodeProc.start(node, "presence_client.mjs", server.base, token)
        procs.append(p)
        await p.until(lambda x: "connected" in x)
        return p

    try:
        b = await start(bob.token)
        s = await start(stranger.token)
        a1 = await start(alice.token)
        await b.until(about(alice.id, "online"))
        a2 = await start(alice.token)  # a second socket: no second event
        for p in (a1, a2, b):
            await send(p, {"emit": ["subscribe-channel", text["id"]]})
            await p.until(recv("subscribed"))
        for _ in range(3):
            await send(a1, {"emit": ["typing", text["id"]]})
        got = (await b.until(recv("user-typing")))["args"][0]
        assert got == {"channelId": text["id"], "userId": alice.id, "username": alice.user["username"]}
        await send(a1, {"disconnect": True})
        await asyncio.sleep(1.0)
        for p in (a2, b, s):
            await send(p, {"flush": True})  # read everything the process printed so far
        assert len(b.received("user-typing")) == 1  # throttled: one relay for three events
        assert not a1.received("user-typing") and not a2.received("user-typing")  # not echoed
        assert [e["status"] for e in b.received("presence-updated") if e["userId"] == alice.id] == ["online"]
        await send(a2, {"disconnect": True})
        await b.until(about(alice.id, "offline"))
        await asyncio.sleep(0.5)
        await send(s, {"flush": True})
        assert [e["status"] for e in b.received("presence-updated") if e["userId"] == alice.id] == ["online", "offline"]
        assert not [e for e in s.received("presence-updated") if e["userId"] == alice.id]  # a stranger
    finally:
        for p in procs:
            await p.stop()
