"""No socket outlives its rights (issue 15 item 4), through real Socket.IO clients against the real
server process: a password change ends the other sessions' sockets, a join-room racing a kick or a
ban never leaves a ghost, self-delete and voice->text empty the rooms, and every malformed event
gets one documented `error` and nothing else (with no ERROR line in the server's log). Every event
a client receives is validated against asyncapi/projectvoice.yaml (tests/support_sockets.py's Client)."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.support import Account, Api, backend, create_channel, unique
from tests.support_sockets import ASYNCAPI, Client, member_id, resolve, voice_setup

pytestmark = [pytest.mark.timeout(300)]
TRIES = 100 if backend() == "postgres" else 30


def login(api: Api, acct: Account) -> str:
    r = api.post("/auth/login", json={"email": acct.email, "password": acct.password})
    assert r.status_code == 200, r.text
    return r.json()["token"]


async def disconnected(c: Client, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while c.ns in c.sio.namespaces and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert c.ns not in c.sio.namespaces, "the server did not disconnect the socket"


# password change -------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["seed", "desktop"])
async def test_password_change_ends_the_other_sessions_sockets(api, clients, form):
    owner, (bob,), sv, voice, text = voice_setup(api)
    a = await clients(owner.token, "seed")
    await a.join(voice["id"])
    # bob's laptop: in the voice room and reading the text channel live, on his first session
    b = await clients(bob.token, form)
    await b.join(voice["id"])
    await a.wait("user-connected")
    await b.emit("subscribe-channel", text["id"])
    await b.wait("subscribed")
    b_sid = b.sid
    # bob's phone (another session) changes the password
    phone = login(api, bob)
    r = api.put(f"/auth/users/{bob.id}/password", phone,
                json={"oldPassword": bob.password, "newPassword": "another-pass-456"})
    assert r.status_code == 200, r.text
    assert await a.wait("user-disconnected", timeout=5) == b_sid   # out of the voice room at once
    err = await b.wait("error", timeout=5)
    assert err["code"] == "session_ended", err
    for word in ("unauthorized", "invalid token", "token expired"):
        assert word not in err["message"].lower()
    await disconnected(b)
    # nothing more reaches the old socket: no message, no signal
    r = api.post("/messages", owner.token, json={"channelId": text["id"], "content": unique("after")})
    assert r.status_code == 201, r.text
    await a.emit("signal", {"to": b_sid, "type": "offer", "sdp": "x"})
    assert (await a.wait("error"))["code"] == "peer_not_in_room"
    await b.quiet("message-created", 0.3)
    assert b.events("signal") == [] and b.events("error") == []  # no other error after the first
    # a socket on the new password's token works as before
    bob.password = "another-pass-456"
    fresh = await clients(login(api, bob), form)
    created = await fresh.join(voice["id"])
    assert {p["socketId"] for p in created["participants"]} == {a.sid, fresh.sid}


async def test_password_change_leaves_other_users_sockets_alone(api, clients):
    owner, (bob,), sv, voice, text = voice_setup(api)
    a = await clients(owner.token, "seed")
    await a.join(voice["id"])
    b = await clients(bob.token, "desktop")
    await b.join(voice["id"])
    await a.wait("user-connected")
    # the owner changes the password from another session: his socket's session ends, bob's not
    r = api.put(f"/auth/users/{owner.id}/password", login(api, owner),
                json={"oldPassword": owner.password, "newPassword": "owner-pass-789"})
    assert r.status_code == 200, r.text
    assert (await a.wait("error"))["code"] == "session_ended"
    assert await b.wait("user-disconnected") == a.sid
    await b.emit("toggle-mic", False)                         # bob is still in, and connected
    assert await b.wait("mic-toggled") == {"socketId": b.sid, "micToggle": False}
    assert b.events("error") == []


async def test_password_change_keeps_the_callers_own_sockets(api, clients):
    """The session that changes the password keeps its sockets (and its token)."""
    owner, (bob,), sv, voice, text = voice_setup(api)
    a = await clients(owner.token, "seed")
    await a.join(voice["id"])
    b = await clients(bob.token, "desktop")
    await b.join(voice["id"])
    await a.wait("user-connected")
    r = api.put(f"/auth/users/{owner.id}/password", owner.token,
                json={"oldPassword": owner.password, "newPassword": "owner-pass-789"})
    assert r.status_code == 200, r.text
    for sender in (a, b):  # both still in, and connected
        await sender.emit("toggle-mic", False)
        for c in (a, b):
            assert await c.wait("mic-toggled") == {"socketId": sender.sid, "micToggle": False}
    await a.quiet("error", 0.3)
    assert a.events("error") == [] and b.events("error") == []


# join-room racing a kick or a ban --------------------------------------------------------------
async def _race(api: Api, clients, how: str) -> None:
    owner, (bob,), sv, voice, _ = voice_setup(api)
    r = api.post(f"/invite/{sv['id']}/invite", owner.token, json={})
    assert r.status_code == 201, r.text
    invite = r.json()["invite"]["token"]
    a = await clients(owner.token, "seed")
    await a.join(voice["id"])
    b = await clients(bob.token, "desktop")
    ghosts: list[str] = []
    for i in range(TRIES):
        if i:  # bob comes back for the next try
            if how == "ban":
                assert api.delete(f"/servers/{sv['id']}/bans/{bob.id}", owner.token).status_code == 200
            r = api.post(f"/invite/invite/{invite}/accept", bob.token)
            assert r.status_code == 200, r.text
        mid = member_id(api, owner, sv["id"], bob.id)
        a_mark = len(a.log)

        def remove(mid=mid):
            if how == "kick":
                return api.delete(f"/serverMembers/{sv['id']}/members/{mid}", owner.token)
            return api.post(f"/serverMembers/{sv['id']}/members/{mid}/ban", owner.token, json={})

        removal = asyncio.create_task(asyncio.to_thread(remove))
        await b.emit("join-room", voice["id"])
        r = await removal
        assert r.status_code in (200, 204), r.text
        # b's events run in order: the answer to this toggle-mic comes after the join's.
        await b.emit("toggle-mic", True)
        await _settled(b)
        # The truth, now that both are done: the room's participants as the signal relay sees them.
        await a.emit("signal", {"to": b.sid, "type": "offer", "sdp": "probe"})
        await a.emit("toggle-mic", True)
        await a.wait("mic-toggled", where=lambda d: d["socketId"] == a.sid)
        refused = [args[0] for ev, args in a.log[a_mark:] if ev == "error"]
        if not any(e["code"] == "peer_not_in_room" for e in refused):
            ghosts.append(f"try {i}: {bob.id} still in the room after the {how}")
            await b.emit("leave-room")
            await asyncio.sleep(0.05)
            continue
        # and the watcher was never left believing bob is there
        seen = [ev for ev, args in a.log[a_mark:]
                if ev in ("user-connected", "user-disconnected")
                and (args[0] == b.sid or (isinstance(args[0], dict) and args[0].get("socketId") == b.sid))]
        if seen and seen[-1] == "user-connected":
            ghosts.append(f"try {i}: the watcher's last word on bob was user-connected")
    assert not ghosts, f"{len(ghosts)} ghosts in {TRIES} tries:\n" + "\n".join(ghosts)
    for c in (a, b):
        c.check_events()


async def _settled(b: Client) -> None:
    """Wait until b's toggle-mic (sent after the join) was answered: the join is finished."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for i, (ev, args) in enumerate(b.log):
            if i >= b.taken and ((ev == "error" and args[0]["code"] in ("not_in_room", "server_muted"))
                                 or (ev == "mic-toggled" and args[0]["socketId"] == b.sid)):
                b.taken = i + 1
                return
        await asyncio.sleep(0.005)
    raise AssertionError(f"no answer to toggle-mic: {b.log[b.taken:]}")


@pytest.mark.parametrize("how", ["kick", "ban"])
async def test_join_room_racing_removal_leaves_no_ghost(api, clients, how):
    await _race(api, clients, how)


async def test_subscribe_racing_a_kick_never_leaves_live_messages_flowing(api, clients):
    owner, (bob,), sv, voice, text = voice_setup(api)
    r = api.post(f"/invite/{sv['id']}/invite", owner.token, json={})
    assert r.status_code == 201, r.text
    invite = r.json()["invite"]["token"]
    b = await clients(bob.token, "desktop")
    leaks: list[str] = []
    for i in range(TRIES):
        if i:
            assert api.post(f"/invite/invite/{invite}/accept", bob.token).status_code == 200
        mid = member_id(api, owner, sv["id"], bob.id)
        kick = asyncio.create_task(asyncio.to_thread(
            api.delete, f"/serverMembers/{sv['id']}/members/{mid}", owner.token))
        await b.emit("subscribe-channel", text["id"])
        assert (await kick).status_code == 204
        await b.emit("toggle-mic", True)   # answered after the subscribe: that is finished
        await _settled(b)
        mark = len(b.log)
        content = unique(f"try{i}-")
        r = api.post("/messages", owner.token, json={"channelId": text["id"], "content": content})
        assert r.status_code == 201, r.text
        # an event sent after the post is answered after any message-created it caused
        await b.emit("toggle-mic", True)
        await _settled(b)
        if any(ev == "message-created" for ev, _ in b.log[mark:]):
            leaks.append(f"try {i}: a kicked member got {content!r}")
            await b.emit("unsubscribe-channel", text["id"])
    assert not leaks, f"{len(leaks)} leaks in {TRIES} tries:\n" + "\n".join(leaks)
    b.check_events()


# rooms that go away with what they belong to ------------------------------------------------------
async def test_self_delete_empties_the_rooms_of_owned_servers(api, clients):
    owner, (alice, carol), sv, voice, text = voice_setup(api, 2)
    a = await clients(alice.token, "seed")
    await a.join(voice["id"])
    c = await clients(carol.token, "desktop")
    await c.join(voice["id"])
    await a.wait("user-connected")
    r = api.delete("/users/", owner.token)
    assert r.status_code in (200, 204), r.text
    assert (await a.wait("error", timeout=5))["code"] == "server_unavailable"
    assert (await c.wait("error", timeout=5))["code"] == "server_unavailable"
    await a.emit("signal", {"to": c.sid, "type": "offer", "sdp": "x"})
    assert (await a.wait("error"))["code"] == "not_in_room"
    # a newcomer to a room of the same number finds nobody (the channel is gone)
    await a.emit("join-room", voice["id"])
    assert (await a.wait("error"))["code"] == "channel_not_found"


async def test_voice_channel_turned_text_empties_its_room(api, clients):
    owner, (bob,), sv, voice, text = voice_setup(api)
    a = await clients(owner.token, "seed")
    await a.join(voice["id"])
    b = await clients(bob.token, "desktop")
    await b.join(voice["id"])
    await a.wait("user-connected")
    other = create_channel(api, owner, sv["id"], type="voice")
    r = api.put(f"/servers/{sv['id']}/channels/{voice['id']}", owner.token, json={"type": "text"})
    assert r.status_code == 200 and r.json()["type"] == "text", r.text
    assert (await a.wait("error", timeout=5))["code"] == "not_a_voice_channel"
    assert (await b.wait("error", timeout=5))["code"] == "not_a_voice_channel"
    await asyncio.sleep(0.3)
    seen = a.events("user-disconnected") + b.events("user-disconnected")
    assert seen in ([a.sid], [b.sid]), seen
    await b.emit("signal", {"to": a.sid, "type": "offer", "sdp": "x"})
    assert (await b.wait("error"))["code"] == "not_in_room"
    await b.emit("join-room", voice["id"])
    assert (await b.wait("error"))["code"] == "not_a_voice_channel"
    # another voice room of the server is untouched and still works
    created = await b.join(other["id"])
    assert [p["socketId"] for p in created["participants"]] == [b.sid]
    # renaming (no type change) empties nothing
    await a.join(other["id"])
    await b.wait("user-connected")  # (it may arrive after a's `created`)
    mark = len(b.log)
    r = api.put(f"/servers/{sv['id']}/channels/{other['id']}", owner.token, json={"name": unique("n")})
    assert r.status_code == 200, r.text
    await asyncio.sleep(0.4)
    assert [ev for ev, _ in b.log[mark:]] == []


# malformed events ----------------------------------------------------------------------------------
def deep(n: int, leaf: str = "1", kind: str = "list") -> str:
    if kind == "list":
        return "[" * n + leaf + "]" * n
    return '{"a":' * n + leaf + "}" * n


async def send_raw(c: Client, args_json: str, event: str | None = None) -> None:
    """An EVENT packet written by hand (python-socketio's client cannot even encode 1,000 levels)."""
    prefix = "2" if c.ns == "/" else f"2{c.ns},"
    body = args_json if event is None else f"[{json.dumps(event)}" + (f",{args_json}" if args_json else "") + "]"
    await c.sio.eio.send(prefix + body)


def malformed_cases(voice_id: int, text_id: int, peer: str) -> list[tuple[str | None, str, str]]:
    """(event, raw JSON of its arguments, expected code); event None: the whole packet body."""
    huge = json.dumps(list(range(100_000)))
    return [
        # nesting
        ("join-room", deep(1000), "malformed_event"),
        ("join-room", deep(1000, kind="dict"), "malformed_event"),
        ("join-room", deep(100_000), "malformed_event"),
        ("join-room", deep(40), "malformed_event"),
        ("signal", deep(1000, kind="dict"), "malformed_event"),
        ("subscribe-channel", f"{text_id},{deep(1000)}", "malformed_event"),
        ("toggle-mic", deep(1000), "malformed_event"),
        # huge arrays
        ("join-room", huge, "malformed_event"),
        ("signal", json.dumps({"to": peer, "type": "candidate", "candidate": {"candidate": "c", "x": list(range(5000))}}),
         "malformed_event"),
        ("leave-room", huge, "malformed_event"),
        # strings: NUL and lone surrogates (escaped in the JSON text, as a client would send them)
        ("join-room", json.dumps(f"{voice_id}\u0000"), "malformed_event"),
        ("join-room", f'{voice_id},"tok\\ud800en"', "malformed_event"),
        ("signal", '{"to":"' + peer + '","type":"offer","sdp":"v=0\\udc00"}', "malformed_event"),
        ("subscribe-channel", f'"{text_id}\\u0000"', "malformed_event"),
        # a signal otherwise well formed (realtime/validation.py's one-pass check of small objects
        # must leave each of these to the full walk): NUL in an extra key or its value, a lone
        # surrogate in a candidate's key, an integer past 64 bits, too many values in all
        ("signal", '{"to":"' + peer + '","type":"offer","sdp":"v=0","x\\u0000":1}', "malformed_event"),
        ("signal", '{"to":"' + peer + '","type":"offer","sdp":"v=0","x":"a\\u0000"}', "malformed_event"),
        ("signal", '{"to":"' + peer + '","type":"candidate","candidate":{"candidate":"c","\\ud800":1}}',
         "malformed_event"),
        ("signal", '{"to":"' + peer + '","type":"candidate","candidate":{"sdpMLineIndex":1' + "0" * 25 + "}}",
         "malformed_event"),
        ("signal", json.dumps({"to": peer, "type": "offer", "sdp": "v=0",
                               **{f"k{i}": {f"v{j}": j for j in range(30)} for i in range(27)}}), "malformed_event"),
        # numbers no event takes
        ("join-room", "NaN", "malformed_event"),
        ("join-room", "1" + "0" * 30, "malformed_event"),
        # packets that are not [name, ...args] or not JSON at all
        (None, '{"join-room": 1}', "malformed_event"),
        (None, "[]", "malformed_event"),
        (None, "[5, 1]", "malformed_event"),
        (None, '["join-room", 1', "malformed_event"),
        (None, "\"join-room\"", "malformed_event"),
        # wrong types and arities, each with its event's code
        ("join-room", "true", "invalid_room_id"),
        ("join-room", "{}", "invalid_room_id"),
        ("join-room", "1.5", "invalid_room_id"),
        ("join-room", '" 12abc"', "invalid_room_id"),
        ("join-room", f"{voice_id},5", "invalid_argument"),
        ("join-room", f'{voice_id},"t","extra"', "invalid_argument"),
        ("leave-room", "[1]", "invalid_room_id"),
        ("signal", json.dumps({"to": peer, "type": "candidate", "candidate": {"candidate": 5}}), "invalid_signal"),
        ("signal", json.dumps({"to": peer, "type": "offer", "sdp": {"sdp": ["x"]}}), "invalid_signal"),
        ("signal", json.dumps({"to": ["x"] * 3, "type": "offer", "sdp": "x"}), "invalid_signal"),
        ("signal", json.dumps({"to": peer, "type": "offer", "sdp": "x"}) + ',"second"', "invalid_signal"),
        ("signal", '"offer"', "invalid_signal"),
        ("toggle-mic", '"yes"', "invalid_argument"),
        ("toggle-mic", "true,false", "invalid_argument"),
        ("subscribe-channel", f"{text_id},[]", "invalid_argument"),
        ("subscribe-channel", "[]", "invalid_channel_id"),
        ("unsubscribe-channel", "{}", "invalid_channel_id"),
        ("unsubscribe-channel", "-4", "invalid_channel_id"),
    ]


@pytest.mark.parametrize("form", ["seed", "desktop"])
async def test_malformed_events_get_one_error_and_nothing_else(api, clients, server, form):
    owner, (bob,), sv, voice, text = voice_setup(api)
    log_start = server.log_path.stat().st_size
    a = await clients(owner.token, form)
    await a.join(voice["id"])
    b = await clients(bob.token, "seed")
    await b.join(voice["id"])
    await a.wait("user-connected")
    a.taken = len(a.log)
    for event, args, code in malformed_cases(voice["id"], text["id"], b.sid):
        mark = len(a.log)
        await send_raw(a, args, event)
        err = await a.wait("error", timeout=5)
        assert err["code"] == code, (event, args[:80], err)
        assert "\x00" not in err["message"] and len(err["message"]) < 300, err
        # one answer: a well-formed event sent next is answered next, with nothing in between
        await a.emit("toggle-mic", True)
        await a.wait("mic-toggled", where=lambda d: d["socketId"] == a.sid)
        between = [ev for ev, _ in a.log[mark:] if ev != "<taken>"]
        assert between == [], (event, args[:80], between)
    # packets of a type no client may send (CONNECT_ERROR, unknown types)
    ns = "" if a.ns == "/" else f"{a.ns},"
    for raw in (f"4{ns}{{}}", f"9{ns}[1]"):
        mark = len(a.log)
        await a.sio.eio.send(raw)
        assert (await a.wait("error", timeout=5))["code"] == "malformed_event", raw
        await a.emit("toggle-mic", True)
        await a.wait("mic-toggled", where=lambda d: d["socketId"] == a.sid)
        assert [ev for ev, _ in a.log[mark:] if ev != "<taken>"] == [], raw
    # nothing reached the peer or changed the room
    assert b.events("signal") == [] and b.events("user-disconnected") == [] and b.events("error") == []
    await a.emit("signal", {"to": b.sid, "type": "offer", "sdp": "still works"})
    assert (await b.wait("signal"))["sdp"] == "still works"
    # a client's mistakes are not the server's errors: no traceback, nothing at ERROR
    with open(server.log_path, "rb") as f:
        f.seek(log_start)
        logged = f.read().decode(errors="replace")
    bad = [line for line in logged.splitlines()
           if "Traceback" in line or '"level":"error"' in line or " ERROR " in line or "handler error" in line]
    assert not bad, "\n".join(bad[:20])


def test_every_documented_client_event_is_checked_against_its_schema():
    """realtime/validation.py reads the document: every event a client sends has a compiled
    schema there, and the document's own examples of them pass it."""
    from realtime.validation import RULES, check_event

    received = {}
    for op in ASYNCAPI["operations"].values():
        if op["action"] == "receive":
            for ref in op["messages"]:
                _pointer, message = resolve(ref["$ref"])
                received[message["name"]] = message
    assert set(RULES) == set(received)
    for name, message in received.items():
        for example in message.get("examples", []):
            payload = example["payload"]
            args = tuple(payload) if RULES[name].is_array else (payload,)
            check_event(name, args)


async def test_a_socket_known_by_its_handshake_token_survives_another_sessions_end(api, clients):
    """A socket that only ever showed its handshake token is still checked with that token when
    another session of its user ends, and keeps working (it was once ended for having no token)."""
    owner, (bob,), sv, voice, text = voice_setup(api)
    b = await clients(bob.token, "desktop")  # the handshake token only, no event yet
    r = api.post("/auth/login", json={"email": bob.email, "password": bob.password})
    assert r.status_code == 200, r.text
    assert api.delete(f"/auth/sessions/{r.json()['sessionId']}", bob.token).status_code == 204
    await b.quiet("error", 0.5)
    assert b.events("error") == []
    created = await b.join(voice["id"])
    assert [p["socketId"] for p in created["participants"]] == [b.sid]
