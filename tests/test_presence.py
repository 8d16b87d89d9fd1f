"""Presence and typing over Socket.IO (python-socketio's client against the real server), with
the REST side's `status` checked against what the sockets were told. Every event is validated
against asyncapi/projectvoice.yaml by tests.support_sockets.Client."""
from __future__ import annotations

import asyncio

import pytest

from tests.support import Account, Api, create_channel, create_server, join_server, make_friends
from tests.support_sockets import (eventually_status, member_status, presence_of, quiet_about, subscribe, take_bits,
                                   wait_presence)

pytestmark = [pytest.mark.timeout(120)]
SEND_MESSAGES = 1 << 11


def set_status(api: Api, acct: Account, status: str) -> dict:
    r = api.put("/users/", acct.token, json={"status": status})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == status
    return r.json()


@pytest.mark.asyncio
async def test_online_on_connect_offline_after_the_last_socket(api, clients):
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob)
    assert member_status(api, bob, sv["id"], alice.id) == "offline"
    b = await clients(bob.token, "desktop")
    a1 = await clients(alice.token, "seed")
    await wait_presence(b, alice.id, "online")
    assert member_status(api, bob, sv["id"], alice.id) == "online"
    assert api.get(f"/users/{alice.id}", bob.token).json()["status"] == "online"
    assert api.get("/auth/me", alice.token).json()["status"] == "online"
    # a second socket of alice (the other form) changes nothing for bob
    a2 = await clients(alice.token, "desktop")
    await a1.close()
    await quiet_about(b, alice.id, 0.8)
    assert presence_of(b, alice.id) == ["online"]
    assert member_status(api, bob, sv["id"], alice.id) == "online"
    await a2.close()
    await wait_presence(b, alice.id, "offline")
    await eventually_status(api, bob, sv["id"], alice.id, "offline")
    assert presence_of(b, alice.id) == ["online", "offline"]


def everywhere(api: Api, alice: Account, bob: Account, admin: Account, server_id: int) -> dict[str, str]:
    """Alice's `status` in every REST answer that carries her user object: her own (login,
    /auth/me, her membership), bob's (a friend and co-member) and the site admin's."""
    r = api.post("/auth/login", json={"email": alice.email, "password": alice.password})
    assert r.status_code == 200, r.text
    admin_page = api.get("/admin/users", admin.token, params={"search": alice.user["username"]}).json()
    admin_server = api.get(f"/admin/servers/{server_id}", admin.token).json()
    return {
        "login": r.json()["user"]["status"],
        "me": api.get("/auth/me", alice.token).json()["status"],
        "members/me": api.get(f"/serverMembers/{server_id}/members/me", alice.token).json()["user"]["status"],
        "users/{id}": api.get(f"/users/{alice.id}", bob.token).json()["status"],
        "friends": next(f for f in api.get("/friends", bob.token).json() if f["id"] == alice.id)["status"],
        "members (3 answers)": member_status(api, bob, server_id, alice.id),
        "admin/users": next(u for u in admin_page["users"] if u["id"] == alice.id)["status"],
        "admin/users/{id}": api.get(f"/admin/users/{alice.id}", admin.token).json()["status"],
        "admin/servers/{id}": next(m for m in admin_server["members"] if m["userId"] == alice.id)["user"]["status"],
    }


def everywhere_is(api: Api, alice: Account, bob: Account, admin: Account, server_id: int, want: str) -> None:
    wrong = {k: v for k, v in everywhere(api, alice, bob, admin, server_id).items() if v != want}
    assert not wrong, f"not {want!r}: {wrong}"


@pytest.mark.asyncio
async def test_every_rest_user_object_carries_presence(api, clients, admin):
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob)
    join_server(api, alice, create_server(api, alice)["id"], bob)
    make_friends(api, alice, bob)  # bob hears alice through three rooms
    everywhere_is(api, alice, bob, admin, sv["id"], "offline")
    b = await clients(bob.token, "seed")
    a = await clients(alice.token, "seed")
    await wait_presence(b, alice.id, "online")
    everywhere_is(api, alice, bob, admin, sv["id"], "online")
    set_status(api, alice, "dnd")
    await wait_presence(b, alice.id, "dnd")
    everywhere_is(api, alice, bob, admin, sv["id"], "dnd")
    await a.close()
    await wait_presence(b, alice.id, "offline")
    everywhere_is(api, alice, bob, admin, sv["id"], "offline")
    await quiet_about(b, alice.id, 0.3)
    assert presence_of(b, alice.id) == ["online", "dnd", "offline"]  # once per change, not per room


@pytest.mark.asyncio
async def test_session_end_and_eviction_take_the_user_offline(api, clients, admin):
    """The server ending a socket counts like a disconnect: logout (its session's sockets end)
    and an admin blocking the account (all of them)."""
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob)
    b = await clients(bob.token, "seed")
    await clients(alice.token, "seed")
    await wait_presence(b, alice.id, "online")
    assert api.post("/auth/logout", alice.token).status_code == 204
    await wait_presence(b, alice.id, "offline")
    await eventually_status(api, bob, sv["id"], alice.id, "offline")
    r = api.post("/auth/login", json={"email": alice.email, "password": alice.password})
    assert r.status_code == 200, r.text
    await clients(r.json()["token"], "desktop")
    await wait_presence(b, alice.id, "online")
    r = api.put(f"/admin/users/{alice.id}", admin.token, json={"isActive": False})
    assert r.status_code == 200, r.text
    await wait_presence(b, alice.id, "offline")
    await eventually_status(api, bob, sv["id"], alice.id, "offline")
    assert presence_of(b, alice.id) == ["online", "offline", "online", "offline"]


@pytest.mark.asyncio
async def test_socket_without_handshake_token_counts_from_its_first_token(api, clients):
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob)
    voice = create_channel(api, alice, sv["id"], "voice")
    b = await clients(bob.token, "seed")
    a = await clients("", "desktop")  # the desktop client connects before login
    await quiet_about(b, alice.id, 0.5)
    assert member_status(api, bob, sv["id"], alice.id) == "offline"
    await a.join(voice["id"], alice.token)
    await wait_presence(b, alice.id, "online")
    await a.close()
    await wait_presence(b, alice.id, "offline")


@pytest.mark.asyncio
async def test_chosen_status_and_invisible(api, clients):
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob)
    assert api.get("/users/", alice.token).json()["status"] == "online"
    set_status(api, alice, "invisible")
    b = await clients(bob.token, "seed")
    a = await clients(alice.token, "seed")
    await quiet_about(b, alice.id, 0.8)
    # invisible stays offline to others, the user sees their own choice
    assert member_status(api, bob, sv["id"], alice.id) == "offline"
    assert member_status(api, alice, sv["id"], alice.id) == "invisible"
    assert api.get("/auth/me", alice.token).json()["status"] == "invisible"
    assert api.get(f"/users/{alice.id}", bob.token).json()["status"] == "offline"
    assert api.get("/users/", alice.token).json()["status"] == "invisible"
    await wait_presence(a, alice.id, "invisible")  # her own socket: her view
    set_status(api, alice, "dnd")
    await wait_presence(b, alice.id, "dnd")
    await wait_presence(a, alice.id, "dnd")
    assert member_status(api, bob, sv["id"], alice.id) == "dnd"
    set_status(api, alice, "idle")
    await wait_presence(b, alice.id, "idle")
    set_status(api, alice, "invisible")
    await wait_presence(b, alice.id, "offline")
    assert member_status(api, bob, sv["id"], alice.id) == "offline"
    await a.close()
    await quiet_about(b, alice.id, 0.8)  # she was offline to bob already
    assert presence_of(b, alice.id) == ["dnd", "idle", "offline"]
    # a choice made while not connected shows nothing until she connects
    set_status(api, alice, "online")
    await quiet_about(b, alice.id, 0.3)
    assert presence_of(b, alice.id) == ["dnd", "idle", "offline"]
    r = api.put("/users/", alice.token, json={"status": "offline"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]


@pytest.mark.asyncio
async def test_friends_get_it_strangers_and_blocked_users_do_not(api, clients):
    alice, member, friend, stranger, blocked = (api.register() for _ in range(5))
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], member, blocked)
    make_friends(api, alice, friend)
    r = api.post(f"/friends/block/{blocked.id}", alice.token)
    assert r.status_code == 200, r.text
    watchers = {name: await clients(acct.token, "seed")
                for name, acct in (("member", member), ("friend", friend), ("stranger", stranger),
                                   ("blocked", blocked))}
    anon = await clients(None, "seed")  # connected, never authenticated
    a = await clients(alice.token, "seed")
    await wait_presence(watchers["member"], alice.id, "online")
    await wait_presence(watchers["friend"], alice.id, "online")
    await quiet_about(watchers["stranger"], alice.id, 0.8)
    await quiet_about(anon, alice.id, 0.01)
    await quiet_about(watchers["blocked"], alice.id, 0.1)
    # and alice hears nothing about the user she blocked coming online
    assert presence_of(a, blocked.id) == []
    # REST: friends list shows her online; a stranger asking by id sees offline
    assert next(f for f in api.get("/friends", friend.token).json() if f["id"] == alice.id)["status"] == "online"
    assert api.get(f"/users/{alice.id}", stranger.token).json()["status"] == "offline"
    assert api.get(f"/users/{alice.id}", blocked.token).json()["status"] == "offline"
    assert api.get(f"/users/{alice.id}", friend.token).json()["status"] == "online"
    await a.close()
    await wait_presence(watchers["member"], alice.id, "offline")
    await wait_presence(watchers["friend"], alice.id, "offline")
    await quiet_about(watchers["stranger"], alice.id, 0.5)
    await quiet_about(watchers["blocked"], alice.id, 0.1)


@pytest.mark.asyncio
async def test_no_presence_either_way_across_a_block(api, clients):
    """Alice blocked bob (they were friends and share a server): she hears none of his changes
    and he none of hers, while carol, a co-member of both, hears every one (so the silence is
    the block's, not a lost event)."""
    alice, bob, carol = api.register(), api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob, carol)
    make_friends(api, alice, bob)
    r = api.post(f"/friends/block/{bob.id}", alice.token)
    assert r.status_code == 200, r.text
    c = await clients(carol.token, "seed")
    a = await clients(alice.token, "seed")
    await wait_presence(c, alice.id, "online")
    b = await clients(bob.token, "desktop")
    await wait_presence(c, bob.id, "online")
    set_status(api, bob, "dnd")
    await wait_presence(c, bob.id, "dnd")
    set_status(api, alice, "idle")
    await wait_presence(c, alice.id, "idle")
    await b.close()
    await wait_presence(c, bob.id, "offline")
    await quiet_about(a, bob.id, 0.3)
    assert presence_of(a, bob.id) == []
    assert presence_of(b, alice.id) == []
    assert member_status(api, carol, sv["id"], bob.id) == "offline"


@pytest.mark.asyncio
async def test_joining_a_server_starts_its_presence(api, clients):
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    b = await clients(bob.token, "seed")
    a = await clients(alice.token, "seed")
    await quiet_about(b, alice.id, 0.5)
    assert presence_of(b, alice.id) == []
    join_server(api, alice, sv["id"], bob)  # bob's connected socket now shares a server with alice
    await wait_presence(a, bob.id, "online")  # and the members hear that the newcomer is online
    await a.close()
    await wait_presence(b, alice.id, "offline")
    # and a kick stops it again
    mid = next(m["id"] for m in api.get(f"/servers/{sv['id']}", alice.token).json()["members"]
               if m["userId"] == bob.id)
    assert api.delete(f"/serverMembers/{sv['id']}/members/{mid}", alice.token).status_code in (200, 204)
    a = await clients(alice.token, "seed")
    await asyncio.sleep(0.8)
    assert presence_of(b, alice.id) == ["offline"]


@pytest.mark.asyncio
async def test_blocked_server_carries_no_presence(api, clients, admin):
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob)
    b = await clients(bob.token, "seed")
    a = await clients(alice.token, "seed")
    await wait_presence(b, alice.id, "online")
    r = api.post(f"/admin/servers/{sv['id']}/block", admin.token, json={"reason": "spam spam"})
    assert r.status_code == 200, r.text
    await a.close()
    await quiet_about(b, alice.id, 0.8)
    # and a new socket of bob's does not enter it either
    b2 = await clients(bob.token, "seed")
    await clients(alice.token, "seed")
    await quiet_about(b2, alice.id, 0.8)
    await quiet_about(b, alice.id, 0.01)


# typing ---------------------------------------------------------------------------------------
async def typing_pair(api, clients):
    alice, bob = api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob)
    text = create_channel(api, alice, sv["id"], "text")
    a = await clients(alice.token, "seed")
    b = await clients(bob.token, "desktop")
    await subscribe(a, text["id"])
    await subscribe(b, text["id"])
    return alice, bob, sv, text, a, b


@pytest.mark.asyncio
async def test_typing_relayed_not_echoed_and_throttled(api, clients):
    alice, bob, sv, text, a, b = await typing_pair(api, clients)
    a2 = await clients(alice.token, "desktop")  # alice's other socket, subscribed too
    await subscribe(a2, text["id"])
    carol = api.register()
    join_server(api, alice, sv["id"], carol)
    c = await clients(carol.token, "seed")  # a member online, not subscribed to the channel
    for _ in range(5):
        await a.emit("typing", text["id"])
    got = await b.wait("user-typing")
    assert got == {"channelId": text["id"], "userId": alice.id, "username": alice.user["username"]}
    await b.quiet("user-typing", 1.0)
    await c.quiet("user-typing", 0.01)
    await a.quiet("user-typing", 0.01)
    await a2.quiet("user-typing", 0.01)
    # the other socket of the same user shares the window
    await a2.emit("typing", f"channel-{text['id']}")
    await b.quiet("user-typing", 0.5)
    await asyncio.sleep(1.7)  # past 3 s since the relay
    await a.emit("typing", text["id"])
    await b.wait("user-typing")
    # bob typing reaches alice's two sockets, not bob
    await b.emit("typing", text["id"])
    assert (await a.wait("user-typing"))["userId"] == bob.id
    assert (await a2.wait("user-typing"))["userId"] == bob.id
    await b.quiet("user-typing", 0.3)


@pytest.mark.asyncio
async def test_posting_ends_typing(api, clients):
    alice, bob, sv, text, a, b = await typing_pair(api, clients)
    await a.emit("typing", text["id"])
    await b.wait("user-typing")
    r = api.post("/messages", alice.token, json={"channelId": text["id"], "content": "done typing"})
    assert r.status_code == 201, r.text
    created = await b.wait("message-created")
    assert (created["userId"], created["channelId"]) == (alice.id, text["id"])
    # typing again right away is relayed (the window ended with the message)
    await a.emit("typing", text["id"])
    assert (await b.wait("user-typing", 2))["userId"] == alice.id


@pytest.mark.asyncio
async def test_typing_refusals(api, clients):
    alice, bob, sv, text, a, b = await typing_pair(api, clients)
    other = create_channel(api, alice, sv["id"], "text")
    await a.emit("typing", other["id"])  # not subscribed there
    assert (await a.wait("error"))["code"] == "not_subscribed"
    for bad in (None, "abc", {}):
        await a.emit("typing", bad)
        assert (await a.wait("error"))["code"] in ("invalid_channel_id", "invalid_room_id")
    anon = await clients(None, "seed")
    await anon.emit("typing", text["id"])
    assert (await anon.wait("error"))["code"] == "not_subscribed"
    # without SEND_MESSAGES (still reading): refused, nothing relayed
    take_bits(api, alice, sv["id"], SEND_MESSAGES)
    await b.emit("typing", text["id"])
    assert (await b.wait("error"))["code"] == "missing_permission"
    await a.quiet("user-typing", 0.5)
