"""Voice signalling and live message events over Socket.IO, with python-socketio's AsyncClient
against the real server process. Every event a client receives is validated against
asyncapi/projectvoice.yaml."""
from __future__ import annotations

import asyncio

import jsonschema
import pytest

from tests.support import create_channel
from tests.support_sockets import (
    ASYNCAPI,
    CONNECT,
    READ_MESSAGE_HISTORY,
    SCHEMAS,
    Client,
    add_members,
    ends_live_messages,
    member_id,
    subscribe,
    take_bits,
    voice_setup,
)

pytestmark = [pytest.mark.timeout(120)]


def test_asyncapi_document_is_complete():
    """Every event name the issue lists is in the document, in the right direction."""
    names = {m["name"] for m in ASYNCAPI["components"]["messages"].values()}
    for ev in ("join-room", "leave-room", "signal", "toggle-mic", "created", "user-connected",
               "user-disconnected", "mic-toggled", "error", "subscribe-channel", "unsubscribe-channel",
               "message-created", "message-updated", "message-deleted"):
        assert ev in names, ev
    assert {c["address"] for c in ASYNCAPI["channels"].values()} == {"/", "/socket"}
    for name in SCHEMAS:
        jsonschema.Draft202012Validator.check_schema({"$ref": f"#/components/schemas/{name}",
                                                      "components": {"schemas": SCHEMAS}})


# the seed flow --------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_join_created_user_connected_both_forms(api, clients):
    owner, (bob,), sv, voice, _ = voice_setup(api)
    a = await clients(owner.token, "seed")
    created = await a.join(f"channel-{voice['id']}", owner.token)
    assert created == {"roomId": f"channel-{voice['id']}", "participants": [{
        "socketId": a.sid, "micToggle": True,
        "userData": {"id": owner.id, "username": owner.user["username"],
                     "profilePicture": owner.user["profilePicture"], "role": "user"}}]}
    # desktop form: connects before login (empty token), joins with a numeric id and the token
    b = await clients("", "desktop", transports=("polling", "websocket"))
    created = await b.join(voice["id"], bob.token)
    assert created["roomId"] == voice["id"]
    assert [p["socketId"] for p in created["participants"]] == [a.sid, b.sid]
    assert created["participants"][1]["userData"]["id"] == bob.id
    uc = await a.wait("user-connected")
    assert uc == {"socketId": b.sid, "userData": created["participants"][1]["userData"]}
    await b.quiet("user-connected")


@pytest.mark.asyncio
async def test_handshake_tokens_identify_and_string_room_ids(api, clients):
    owner, (bob,), sv, voice, _ = voice_setup(api)
    a = await clients(owner.token, "seed")          # auth.token
    created = await a.join(str(voice["id"]))
    assert created["roomId"] == str(voice["id"])
    b = await clients(bob.token, "desktop")          # query.token
    created = await b.join(voice["id"])
    assert {p["userData"]["id"] for p in created["participants"]} == {owner.id, bob.id}
    # a stale handshake token with a fresh argument token works (desktop never refreshes)
    c = await clients("stale.token.value", "desktop")
    carol = api.register()
    add_members(api, owner, sv["id"], carol)
    created = await c.join(voice["id"], carol.token)
    assert len(created["participants"]) == 3


@pytest.mark.asyncio
async def test_unauthenticated_connection_cannot_join(api, clients):
    owner, _, sv, voice, text = voice_setup(api, 0)
    c = await clients(None, "seed")                  # accepted without a token
    await c.emit("join-room", voice["id"])
    err = await c.wait("error")
    assert err["code"] == "authentication_required"
    for word in ("unauthorized", "invalid token", "token expired"):
        assert word not in err["message"].lower()
    await c.emit("join-room", voice["id"], "garbage")
    assert (await c.wait("error"))["code"] == "authentication_required"
    await c.emit("subscribe-channel", text["id"])
    assert (await c.wait("error"))["code"] == "authentication_required"
    await c.quiet("created")


@pytest.mark.asyncio
async def test_join_refusals(api, clients):
    owner, _, sv, voice, text = voice_setup(api, 0)
    stranger = api.register()
    c = await clients(stranger.token, "seed")
    await c.emit("join-room", voice["id"])
    err = await c.wait("error")
    assert err == {"message": "You are not a member of this server", "code": "not_a_member"}
    o = await clients(owner.token, "desktop")
    await o.emit("join-room", text["id"])
    assert (await o.wait("error"))["code"] == "not_a_voice_channel"
    await o.emit("join-room", 99999999)
    assert (await o.wait("error"))["code"] == "channel_not_found"
    for bad in (None, {}, [], "abc", "channel-", True, 1.5, -3, "channel-x1"):
        await o.emit("join-room", bad)
        assert (await o.wait("error"))["code"] in ("invalid_room_id", "channel_not_found"), bad
    await o.emit("join-room")
    assert (await o.wait("error"))["code"] == "invalid_room_id"
    await o.emit("join-room", voice["id"], 12345)
    assert (await o.wait("error"))["code"] == "invalid_argument"
    await c.quiet("created")
    await o.quiet("created", 0.1)


@pytest.mark.asyncio
async def test_missing_connect_permission(api, clients):
    owner, (bob,), sv, voice, _ = voice_setup(api)
    roles = api.get(f"/servers/{sv['id']}/roles", owner.token)
    # take CONNECT away from @everyone and Member: bob (a Member) may no longer join
    for role in roles.json():
        if role["name"] in ("@everyone", "Member"):
            bits = int(role["permissions"]) & ~(1 << 20)
            r = api.patch(f"/servers/{sv['id']}/roles/{role['id']}", owner.token,
                        json={"permissions": str(bits)})
            assert r.status_code == 200, r.text
    b = await clients(bob.token, "seed")
    await b.emit("join-room", voice["id"])
    err = await b.wait("error")
    assert err["code"] == "missing_permission" and "CONNECT" in err["message"]
    o = await clients(owner.token, "seed")
    await o.join(voice["id"])   # the owner has every bit


# signalling ------------------------------------------------------------------------------------
async def _pair(api, clients):
    owner, (bob,), sv, voice, text = voice_setup(api)
    a = await clients(owner.token, "seed")
    await a.join(voice["id"])
    b = await clients(bob.token, "desktop")
    await b.join(voice["id"])
    await a.wait("user-connected")
    return owner, bob, sv, voice, text, a, b


@pytest.mark.asyncio
async def test_offer_answer_candidate_with_server_set_from_and_to(api, clients):
    *_, a, b = await _pair(api, clients)
    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
    await a.emit("signal", {"to": b.sid, "type": "offer", "sdp": offer, "from": "forged-id", "extra": 1})
    got = await b.wait("signal")
    assert got == {"from": a.sid, "to": a.sid, "type": "offer", "sdp": offer}
    await b.emit("signal", {"to": got["from"], "type": "answer", "sdp": "v=0 answer"})
    assert await a.wait("signal") == {"from": b.sid, "to": b.sid, "type": "answer", "sdp": "v=0 answer"}
    cand = {"candidate": "candidate:1 1 UDP 2130706431 192.168.1.100 54400 typ host", "sdpMid": "0",
            "sdpMLineIndex": 0}
    await a.emit("signal", {"to": b.sid, "type": "candidate", "candidate": cand})
    assert await b.wait("signal") == {"from": a.sid, "to": a.sid, "type": "candidate", "candidate": cand}
    await a.quiet("error", 0.1)


@pytest.mark.asyncio
async def test_signals_of_one_sender_keep_their_order(api, clients):
    *_, a, b = await _pair(api, clients)
    for i in range(60):
        await a.emit("signal", {"to": b.sid, "type": "candidate", "candidate": {"candidate": f"c{i}"}})
    got = [(await b.wait("signal"))["candidate"]["candidate"] for _ in range(60)]
    assert got == [f"c{i}" for i in range(60)]


@pytest.mark.asyncio
async def test_cross_room_and_unknown_targets_refused(api, clients):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    other_voice = create_channel(api, owner, sv["id"], type="voice")
    carol = api.register()
    add_members(api, owner, sv["id"], carol)
    c = await clients(carol.token, "seed")
    await c.join(other_voice["id"])
    await a.emit("signal", {"to": c.sid, "type": "offer", "sdp": "x"})
    assert (await a.wait("error"))["code"] == "peer_not_in_room"
    await a.emit("signal", {"to": "no-such-socket", "type": "offer", "sdp": "x"})
    assert (await a.wait("error"))["code"] == "peer_not_in_room"
    await c.emit("signal", {"to": b.sid, "type": "offer", "sdp": "x"})   # carol's room is another
    assert (await c.wait("error"))["code"] == "peer_not_in_room"
    # a socket in no room at all cannot signal anyone
    d = await clients(carol.token, "desktop")
    await d.emit("signal", {"to": b.sid, "type": "offer", "sdp": "x"})
    assert (await d.wait("error"))["code"] == "not_in_room"
    await a.emit("signal", {"to": a.sid, "type": "offer", "sdp": "x"})
    assert (await a.wait("error"))["code"] == "invalid_signal"
    await c.quiet("signal")
    await b.quiet("signal", 0.1)


@pytest.mark.asyncio
async def test_malformed_signals_answered_with_error_only(api, clients):
    *_, a, b = await _pair(api, clients)
    bad = [None, "offer", 5, [], {}, {"to": b.sid}, {"to": b.sid, "type": "bogus", "sdp": "x"},
           {"to": None, "type": "offer", "sdp": "x"}, {"to": b.sid, "type": "offer"},
           {"to": b.sid, "type": "offer", "sdp": None}, {"to": b.sid, "type": "answer", "sdp": 7},
           {"to": b.sid, "type": "candidate"}, {"to": b.sid, "type": "candidate", "candidate": None},
           {"to": b.sid, "type": "candidate", "candidate": "str"}]
    for payload in bad:
        await a.emit("signal", payload)
        assert (await a.wait("error"))["code"] == "invalid_signal", payload
    await a.emit("signal")
    assert (await a.wait("error"))["code"] == "invalid_signal"
    await a.emit("signal", {"to": b.sid, "type": "offer", "sdp": "v" * (65 * 1024)})
    err = await a.wait("error")
    assert err["code"] == "signal_too_large"
    # just under the cap passes
    await a.emit("signal", {"to": b.sid, "type": "offer", "sdp": "v" * (63 * 1024)})
    assert len((await b.wait("signal"))["sdp"]) == 63 * 1024
    assert b.events("signal") == [] and b.events("error") == []
    # the server and the room still work
    await b.emit("signal", {"to": a.sid, "type": "answer", "sdp": "ok"})
    assert (await a.wait("signal"))["sdp"] == "ok"


# leaving ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_leave_room_and_disconnect_announce_bare_socket_id(api, clients):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    b_sid = b.sid
    await b.emit("leave-room")                       # no argument, as the desktop client sends it
    assert await a.wait("user-disconnected") == b_sid
    await b.emit("signal", {"to": a.sid, "type": "offer", "sdp": "x"})
    assert (await b.wait("error"))["code"] == "not_in_room"
    await b.emit("leave-room")                       # leaving twice is harmless
    await b.join(voice["id"])
    await a.wait("user-connected")
    await b.emit("leave-room", voice["id"] + 1000)
    assert (await b.wait("error"))["code"] == "not_in_room"
    await b.emit("leave-room", f"channel-{voice['id']}")
    assert await a.wait("user-disconnected") == b_sid
    await b.join(voice["id"])
    await a.wait("user-connected")
    await b.close()
    assert await a.wait("user-disconnected") == b_sid
    # no ghost: a newcomer sees only the owner
    carol = api.register()
    add_members(api, owner, sv["id"], carol)
    c = await clients(carol.token, "seed")
    created = await c.join(voice["id"])
    assert [p["socketId"] for p in created["participants"]] == [a.sid, c.sid]
    await a.quiet("user-disconnected", 0.2)


@pytest.mark.asyncio
async def test_disconnect_right_after_join_leaves_no_ghost(api, clients, server):
    owner, (bob,), sv, voice, _ = voice_setup(api)
    for _ in range(3):
        g = Client(server.base, "seed", bob.token)
        await g.connect()
        await g.emit("join-room", voice["id"])
        await g.sio.disconnect()
    await asyncio.sleep(1.0)
    a = await clients(owner.token, "seed")
    created = await a.join(voice["id"])
    assert [p["socketId"] for p in created["participants"]] == [a.sid]


@pytest.mark.asyncio
async def test_one_voice_room_per_socket(api, clients):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    second = create_channel(api, owner, sv["id"], type="voice")
    created = await b.join(second["id"])
    assert [p["socketId"] for p in created["participants"]] == [b.sid]
    assert await a.wait("user-disconnected") == b.sid
    await a.emit("signal", {"to": b.sid, "type": "offer", "sdp": "x"})
    assert (await a.wait("error"))["code"] == "peer_not_in_room"
    # joining the same room again is idempotent: no user-connected to the others
    again = await a.join(voice["id"])
    assert [p["socketId"] for p in again["participants"]] == [a.sid]
    await b.quiet("user-connected", 0.2)


# mic -------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_toggle_mic(api, clients):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    await b.emit("toggle-mic", False)
    assert await a.wait("mic-toggled") == {"socketId": b.sid, "micToggle": False}
    assert await b.wait("mic-toggled") == {"socketId": b.sid, "micToggle": False}
    carol = api.register()
    add_members(api, owner, sv["id"], carol)
    c = await clients(carol.token, "desktop")
    created = await c.join(voice["id"])
    assert {p["socketId"]: p["micToggle"] for p in created["participants"]} == {a.sid: True, b.sid: False, c.sid: True}
    for bad in ("yes", None, 1, {}):
        await b.emit("toggle-mic", bad)
        assert (await b.wait("error"))["code"] == "invalid_argument"
    d = await clients(carol.token, "seed")
    await d.emit("toggle-mic", True)
    assert (await d.wait("error"))["code"] == "not_in_room"
    await b.emit("toggle-mic", True)
    assert await c.wait("mic-toggled") == {"socketId": b.sid, "micToggle": True}


@pytest.mark.asyncio
async def test_server_mute_forces_mic_off(api, clients):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    mid = member_id(api, owner, sv["id"], bob.id)
    r = api.patch(f"/serverMembers/{sv['id']}/members/{mid}/voice", owner.token, json={"isMuted": True})
    assert r.status_code == 200, r.text
    assert await a.wait("mic-toggled") == {"socketId": b.sid, "micToggle": False}
    assert await b.wait("mic-toggled") == {"socketId": b.sid, "micToggle": False}
    await b.emit("toggle-mic", True)
    assert (await b.wait("error"))["code"] == "server_muted"
    await a.quiet("mic-toggled", 0.2)
    # rejoining keeps the mute
    await b.emit("leave-room")
    created = await b.join(voice["id"])
    assert {p["socketId"]: p["micToggle"] for p in created["participants"]}[b.sid] is False
    r = api.patch(f"/serverMembers/{sv['id']}/members/{mid}/voice", owner.token, json={"isMuted": False})
    assert r.status_code == 200, r.text
    await asyncio.sleep(0.3)
    await b.emit("toggle-mic", True)
    assert await a.wait("mic-toggled", where=lambda d: d["micToggle"]) == {"socketId": b.sid, "micToggle": True}


# removals --------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_blocked_account_leaves_voice_at_once(api, clients, admin):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    b_sid = b.sid
    r = api.put(f"/admin/users/{bob.id}", admin.token, json={"isActive": False})
    assert r.status_code == 200, r.text
    assert await a.wait("user-disconnected") == b_sid
    # the blocked account cannot come back with its old token
    b2 = await clients(bob.token, "seed")
    await b2.emit("join-room", voice["id"])
    assert (await b2.wait("error"))["code"] == "authentication_required"


@pytest.mark.asyncio
async def test_deleted_account_leaves_voice(api, clients):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    b_sid = b.sid
    r = api.delete("/users/", bob.token, json={"password": bob.password})
    if r.status_code not in (200, 204):
        r = api.delete("/users/", bob.token)
    assert r.status_code in (200, 204), r.text
    assert await a.wait("user-disconnected") == b_sid


async def _one_saw_the_other_go(a: Client, b: Client) -> None:
    """Both were removed: whoever went second saw the first one go (and nothing else)."""
    await asyncio.sleep(0.3)
    seen = a.events("user-disconnected") + b.events("user-disconnected")
    assert seen in ([a.sid], [b.sid]), seen


@pytest.mark.asyncio
async def test_server_block_empties_rooms_and_refuses_joins(api, clients, admin):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    r = api.post(f"/admin/servers/{sv['id']}/block", admin.token, json={"reason": "rules broken"})
    assert r.status_code == 200, r.text
    assert (await a.wait("error"))["code"] == "server_unavailable"
    assert (await b.wait("error"))["code"] == "server_unavailable"
    await _one_saw_the_other_go(a, b)
    await a.emit("join-room", voice["id"])
    err = await a.wait("error")
    assert err["code"] == "server_blocked"


@pytest.mark.asyncio
async def test_channel_deletion_empties_room(api, clients):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    b_sid = b.sid
    r = api.delete(f"/servers/{sv['id']}/channels/{voice['id']}", owner.token)
    assert r.status_code == 204, r.text
    err = await b.wait("error")
    assert err["code"] == "channel_deleted"
    await b.emit("signal", {"to": a.sid, "type": "offer", "sdp": "x"})
    assert (await b.wait("error"))["code"] == "not_in_room"
    assert (await a.wait("error"))["code"] == "channel_deleted"
    assert b_sid
    await _one_saw_the_other_go(a, b)


@pytest.mark.asyncio
async def test_server_deletion_empties_rooms(api, clients):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    r = api.delete(f"/servers/{sv['id']}", owner.token)
    assert r.status_code in (200, 204), r.text
    assert (await b.wait("error"))["code"] == "server_unavailable"
    assert (await a.wait("error"))["code"] == "server_unavailable"
    await _one_saw_the_other_go(a, b)
    await b.emit("signal", {"to": a.sid, "type": "offer", "sdp": "x"})
    assert (await b.wait("error"))["code"] == "not_in_room"


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["kick", "ban"])
async def test_kicked_or_banned_member_removed(api, clients, how):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    mid = member_id(api, owner, sv["id"], bob.id)
    b_sid = b.sid
    if how == "kick":
        r = api.delete(f"/serverMembers/{sv['id']}/members/{mid}", owner.token)
    else:
        r = api.post(f"/serverMembers/{sv['id']}/members/{mid}/ban", owner.token, json={"reason": "x"})
    assert r.status_code in (200, 204), r.text
    assert await a.wait("user-disconnected") == b_sid
    assert (await b.wait("error"))["code"] == "removed_from_server"
    await b.emit("join-room", voice["id"])
    assert (await b.wait("error"))["code"] == "not_a_member"
    await b.emit("signal", {"to": a.sid, "type": "offer", "sdp": "x"})
    assert (await b.wait("error"))["code"] == "not_in_room"


# live messages ---------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_message_events_for_subscribers(api, clients):
    owner, (bob,), sv, voice, text, = voice_setup(api)
    stranger = api.register()
    r = api.post("/messages", owner.token, json={"channelId": text["id"], "content": "warm-up"})
    assert r.status_code == 201, r.text
    b = await clients(bob.token, "desktop")
    await b.emit("subscribe-channel", text["id"])
    assert await b.wait("subscribed") == {"channelId": text["id"]}
    s = await clients(stranger.token, "seed")
    await s.emit("subscribe-channel", text["id"])
    assert (await s.wait("error"))["code"] == "not_a_member"
    await s.emit("subscribe-channel", f"channel-{voice['id']}", stranger.token)
    assert (await s.wait("error"))["code"] == "not_a_member"
    await b.emit("subscribe-channel", voice["id"])
    assert (await b.wait("error"))["code"] == "not_a_text_channel"

    r = api.post("/messages", owner.token, json={"channelId": text["id"], "content": "hello"})
    assert r.status_code == 201
    msg = r.json()
    assert await b.wait("message-created") == msg
    r = api.put(f"/messages/{msg['id']}", owner.token, json={"content": "hello again"})
    assert r.status_code == 200
    assert await b.wait("message-updated") == r.json()
    r = api.delete(f"/messages/{msg['id']}", owner.token)
    assert r.status_code in (200, 204)
    assert await b.wait("message-deleted") == {"id": msg["id"], "channelId": text["id"]}
    await b.emit("unsubscribe-channel", text["id"])
    assert await b.wait("unsubscribed") == {"channelId": text["id"]}
    api.post("/messages", owner.token, json={"channelId": text["id"], "content": "unseen"})
    await b.quiet("message-created", 0.5)
    await s.quiet("message-created", 0.0)


@pytest.mark.asyncio
async def test_kicked_member_stops_receiving_messages(api, clients):
    owner, (bob,), sv, voice, text = voice_setup(api)
    b = await clients(bob.token, "seed")
    await b.emit("subscribe-channel", text["id"])
    await b.wait("subscribed")
    mid = member_id(api, owner, sv["id"], bob.id)
    r = api.delete(f"/serverMembers/{sv['id']}/members/{mid}", owner.token)
    assert r.status_code in (200, 204)
    api.post("/messages", owner.token, json={"channelId": text["id"], "content": "secret"})
    await b.quiet("message-created", 0.6)




@pytest.mark.asyncio
async def test_losing_connect_leaves_the_voice_room(api, clients):
    owner, bob, sv, voice, text, a, b = await _pair(api, clients)
    b_sid = b.sid
    take_bits(api, owner, sv["id"], CONNECT)
    assert await a.wait("user-disconnected") == b_sid
    err = await b.wait("error")
    assert err["code"] == "missing_permission", err
    await b.emit("join-room", voice["id"])
    assert (await b.wait("error"))["code"] == "missing_permission"
    await a.quiet("user-disconnected", 0.3)  # the owner has every bit and stays


@pytest.mark.asyncio
async def test_unassigned_role_that_gave_connect_leaves_the_voice_room(api, clients):
    owner, (bob,), sv, voice, _text = voice_setup(api)
    take_bits(api, owner, sv["id"], CONNECT)
    r = api.post(f"/servers/{sv['id']}/roles", owner.token,
                 json={"name": "Voice", "permissions": str(CONNECT | (1 << 10))})
    assert r.status_code == 201, r.text
    rid, mid = r.json()["id"], member_id(api, owner, sv["id"], bob.id)
    r = api.post(f"/servers/{sv['id']}/roles/members/{mid}/roles/{rid}", owner.token)
    assert r.status_code == 201, r.text
    a = await clients(owner.token, "seed")
    await a.join(voice["id"])
    b = await clients(bob.token, "desktop")
    await b.join(voice["id"])
    await a.wait("user-connected")
    b_sid = b.sid
    r = api.delete(f"/servers/{sv['id']}/roles/members/{mid}/roles/{rid}", owner.token)
    assert r.status_code == 204, r.text
    assert await a.wait("user-disconnected") == b_sid
    assert (await b.wait("error"))["code"] == "missing_permission"


@pytest.mark.asyncio
async def test_losing_read_history_ends_live_messages(api, clients):
    owner, (bob,), sv, _voice, text = voice_setup(api)
    b = await clients(bob.token, "seed")
    await subscribe(b, text["id"])
    take_bits(api, owner, sv["id"], READ_MESSAGE_HISTORY)
    await ends_live_messages(api, owner, b, text["id"])
