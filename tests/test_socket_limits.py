"""Socket rate limits (join-room and signal per socket) and the Prometheus socket gauges, against
a server process of this module's own with tight limits (the shared test server runs without
limits). Every event a client receives is validated against asyncapi/projectvoice.yaml."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support_sockets import socket_clients, voice_setup

pytestmark = [pytest.mark.timeout(180)]

JOINS = 3      # per socket per minute
SIGNALS = 5    # per socket per minute


# The `tight` server's settings (tests/conftest.py); `tapi` is its client.
TIGHT_ENV = {
    "RATE_LIMITS_ENABLED": "1",
    "RATE_LIMIT_SOCKET_JOIN": f"{JOINS}/minute",
    "RATE_LIMIT_SOCKET_SIGNAL": f"{SIGNALS}/minute",
    "METRICS_ENABLED": "1",
}


@pytest.fixture
async def sockets(tight):
    async with socket_clients(tight.base) as make:
        yield make


def assert_rate_limited(err: dict, event: str) -> None:
    assert err["code"] == "rate_limited", err
    assert set(err) == {"message", "code", "retryAfter"}, err
    assert isinstance(err["retryAfter"], int) and 1 <= err["retryAfter"] <= 60, err
    assert err["message"] == f"Too many {event} events: try again in {err['retryAfter']} s", err


def candidate(to: str, n: int) -> dict:
    return {"to": to, "type": "candidate", "candidate": {"candidate": f"c{n}"}}


@pytest.mark.parametrize("form", ["seed", "desktop"])
async def test_join_room_is_limited_per_socket(tapi, sockets, form):
    owner, (member,), _sv, voice, _text = voice_setup(tapi, 1)
    a = await sockets(owner.token, form=form)
    watcher = await sockets(member.token)
    await watcher.join(voice["id"])
    for _ in range(JOINS - 1):  # the watcher's join was its own; a has JOINS
        await a.join(voice["id"])
    await watcher.wait("user-connected", where=lambda d: d["socketId"] == a.sid)
    # Leave, so a refused join would be visible to the watcher as a new user-connected.
    await a.emit("leave-room")
    await watcher.wait("user-disconnected", where=lambda d: d == a.sid)
    await a.join(voice["id"])  # the JOINS-th
    await watcher.wait("user-connected", where=lambda d: d["socketId"] == a.sid)
    await a.emit("leave-room")
    await watcher.wait("user-disconnected", where=lambda d: d == a.sid)

    await a.emit("join-room", voice["id"])
    assert_rate_limited(await a.wait("error"), "join-room")
    await a.quiet("created")
    await watcher.quiet("user-connected")
    # Also a malformed join is counted and refused as rate_limited, not as invalid.
    await a.emit("join-room", "nonsense")
    assert_rate_limited(await a.wait("error"), "join-room")
    assert a.events("error") == []  # both taken above: exactly two errors, nothing else

    # The limit is per socket: a fresh socket of the same user joins at once.
    b = await sockets(owner.token, form=form)
    created = await b.join(voice["id"])
    assert {p["socketId"] for p in created["participants"]} == {watcher.sid, b.sid}
    await watcher.wait("user-connected", where=lambda d: d["socketId"] == b.sid)


async def test_signal_is_limited_per_socket_and_nothing_is_relayed(tapi, sockets):
    owner, (member,), _sv, voice, _text = voice_setup(tapi, 1)
    a = await sockets(owner.token)
    b = await sockets(member.token)
    await a.join(voice["id"])
    await b.join(voice["id"])
    for n in range(SIGNALS):
        await a.emit("signal", candidate(b.sid, n))
        got = await b.wait("signal")
        assert got == {"from": a.sid, "to": a.sid, "type": "candidate", "candidate": {"candidate": f"c{n}"}}

    await a.emit("signal", candidate(b.sid, 99))
    assert_rate_limited(await a.wait("error"), "signal")
    await b.quiet("signal", within=0.6)
    assert a.events("error") == []

    # The other socket has its own budget, and the limited one still receives.
    await b.emit("signal", candidate(a.sid, 7))
    assert await a.wait("signal") == {"from": b.sid, "to": b.sid, "type": "candidate",
                                      "candidate": {"candidate": "c7"}}
    assert b.events("error") == []


def _gauges(base: str) -> dict[str, float]:
    r = httpx.get(f"{base}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    out = {}
    for line in r.text.splitlines():
        for name in ("projectvoice_socket_connections", "projectvoice_voice_rooms",
                     "projectvoice_voice_participants"):
            if line.startswith(name + " "):
                out[name] = float(line.split()[1])
    return out


async def _expect(base: str, sockets_: int, rooms: int, participants: int) -> None:
    want = {"projectvoice_socket_connections": sockets_, "projectvoice_voice_rooms": rooms,
            "projectvoice_voice_participants": participants}
    for _ in range(50):
        got = _gauges(base)
        if got == want:
            return
        await asyncio.sleep(0.1)
    assert got == want


async def test_socket_gauges_follow_connects_joins_leaves_and_disconnects(tapi, tight, sockets):
    # Other tests of this module closed their sockets; wait until the server has seen that.
    await _expect(tight.base, 0, 0, 0)
    owner, (m1, m2), sv, voice, _text = voice_setup(tapi, 2)
    from tests.support import create_channel

    voice2 = create_channel(tapi, owner, sv["id"], type="voice")
    a = await sockets(owner.token)
    b = await sockets(m1.token, form="desktop")
    c = await sockets(m2.token)
    await _expect(tight.base, 3, 0, 0)
    await a.join(voice["id"])
    await b.join(voice["id"])
    await _expect(tight.base, 3, 1, 2)
    await c.join(voice2["id"])
    await _expect(tight.base, 3, 2, 3)
    await b.emit("leave-room")
    await a.wait("user-disconnected")
    await _expect(tight.base, 3, 2, 2)
    await c.join(voice["id"])  # moves rooms: voice2 empties
    await _expect(tight.base, 3, 1, 2)
    await a.close()
    await _expect(tight.base, 2, 1, 1)
    # Removed by a moderator (kick) from the REST side.
    r = tapi.delete(f"/serverMembers/{sv['id']}/members/{m2.id}", owner.token)
    assert r.status_code in (200, 204), r.text
    await c.wait("error", where=lambda e: e["code"] == "removed_from_server")
    await _expect(tight.base, 2, 0, 0)
    await b.close()
    await c.close()
    await _expect(tight.base, 0, 0, 0)
