"""The seed document's JavaScript client, run verbatim by Node.js socket.io-client 4 against our
server (tests/js/seed_client.mjs), and the desktop client's connection form
(tests/js/desktop_client.mjs). Every event the Node clients receive is validated against the
AsyncAPI document."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import create_channel, create_server
from tests.support_sockets import Client, NodeProc, add_members, recv

ROOT = Path(__file__).resolve().parent.parent
# The user's API document, kept in the repository as it was given.
SEED = ROOT / "docs" / "seed" / "projectvoice-api.md"
pytestmark = [pytest.mark.timeout(120)]


@pytest.mark.asyncio
async def test_seed_full_client_example_between_two_node_processes(api, server, node):
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    add_members(api, alice, sv["id"], bob)
    voice = create_channel(api, alice, sv["id"], type="voice")
    a = await NodeProc.start(node, "seed_client.mjs", SEED, server.base, alice.token, f"channel-{voice['id']}")
    b = None
    try:
        a_sid = (await a.until(lambda x: "connected" in x))["connected"]
        created = (await a.until(recv("created")))["args"][0]
        assert created["roomId"] == f"channel-{voice['id']}"
        assert [p["socketId"] for p in created["participants"]] == [a_sid]
        b = await NodeProc.start(node, "seed_client.mjs", SEED, server.base, bob.token, voice["id"])
        b_sid = (await b.until(lambda x: "connected" in x))["connected"]
        created = (await b.until(recv("created")))["args"][0]
        assert created["roomId"] == str(voice["id"])
        assert [p["socketId"] for p in created["participants"]] == [a_sid, b_sid]
        assert (await a.until(recv("user-connected")))["args"][0]["socketId"] == b_sid
        # each side's seed code offers, the other answers, candidates flow both ways
        for me, peer in ((a, b_sid), (b, a_sid)):
            await me.until(lambda x, p=peer: x.get("remote") == "offer" and f"offer-from-{p}" in x["sdp"])
            await me.until(lambda x, p=peer: x.get("remote") == "answer" and f"answer-from-{p}" in x["sdp"])
            await me.until(lambda x, p=peer: x.get("candidate", "").endswith(p))
        for me, peer in ((a, b_sid), (b, a_sid)):
            signals = me.received("signal")
            assert signals and all(s["from"] == peer and s["to"] == peer for s in signals)
            assert not me.received("error")
        # leaving: the seed's user-disconnected handler closes the peer connection
        await b.stop()
        gone = await a.until(lambda x: "gone" in x)
        assert gone["gone"] == b_sid and gone["peers"] == []  # the seed handler closed and removed it
        await a.until(lambda x: x.get("closed") is True)
    finally:
        await a.stop()
        if b is not None:
            await b.stop()


@pytest.mark.asyncio
async def test_desktop_form_connects_before_login_then_joins(api, server, node):
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    add_members(api, alice, sv["id"], bob)
    voice = create_channel(api, alice, sv["id"], type="voice")
    a = Client(server.base, "seed", alice.token)
    await a.connect()
    await a.join(voice["id"])
    d = await NodeProc.start(node, "desktop_client.mjs", server.base, bob.email, bob.password, voice["id"])
    try:
        d_sid = (await d.until(lambda x: "connected" in x))["connected"]
        assert (await d.until(lambda x: "loggedIn" in x))["loggedIn"] == 200
        created = (await d.until(recv("created")))["args"][0]
        assert created["roomId"] == voice["id"]
        assert [p["socketId"] for p in created["participants"]] == [a.sid, d_sid]
        assert (await a.wait("user-connected"))["socketId"] == d_sid
        await a.emit("signal", {"to": d_sid, "type": "offer", "sdp": {"type": "offer", "sdp": "v=0 a"}})
        got = (await d.until(recv("signal")))["args"][0]
        assert got == {"from": a.sid, "to": a.sid, "type": "offer", "sdp": {"type": "offer", "sdp": "v=0 a"}}
        answer = await a.wait("signal")   # the desktop answered to the id it read from `to`
        assert answer == {"from": d_sid, "to": d_sid, "type": "answer", "sdp": {"type": "answer", "sdp": "v=0 desktop"}}
        await d.stop()
        assert await a.wait("user-disconnected") == d_sid
    finally:
        await d.stop()
        await a.close()
