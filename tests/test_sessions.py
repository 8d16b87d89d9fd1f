"""Sessions (issue 18 item 4) and malformed token claims (issue 17 item 8), through the API.

Each login or registration is a session named by its token's `sid`; a session's token stops
working on its next request once the session ends, in every server process; a password change
ends the other sessions and keeps the caller's; block and delete end them all."""
from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import sqlalchemy as sa

from tests.support import Api, Database, ServerProcess, create_channel, create_server
from tests.support_sockets import Client, voice_setup


def _login(api: Api, acct, agent: str = "pytest-agent") -> str:
    r = api.post("/auth/login", json={"email": acct.email, "password": acct.password},
                 headers={"User-Agent": agent})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def _sid(token: str) -> int:
    return jwt.decode(token, options={"verify_signature": False})["sid"]


def _sessions(api: Api, token: str) -> list[dict]:
    r = api.get("/auth/sessions", token)
    assert r.status_code == 200, r.text
    return r.json()


def _ended(api: Api, token: str) -> None:
    r = api.get("/auth/me", token)
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "session_ended", r.json()


def _engine(server: ServerProcess) -> sa.Engine:
    return sa.create_engine(server.database.url.replace("+aiosqlite", ""))


def test_each_login_and_registration_is_a_listed_session(api, alice):
    phone = _login(api, alice, "PhoneApp/1.0")
    r = api.post("/auth/login", json={"email": alice.email, "password": alice.password},
                 headers={"User-Agent": "Electron ProjectVoice/0.4.0"})
    desk = r.json()["token"]
    assert r.json()["sessionId"] == _sid(desk)
    listed = _sessions(api, desk)
    assert [s["id"] for s in listed] == sorted((s["id"] for s in listed), reverse=True)  # newest first
    assert {s["id"] for s in listed} == {_sid(alice.token), _sid(phone), _sid(desk)}
    by_id = {s["id"]: s for s in listed}
    assert [s["id"] for s in listed if s["current"]] == [_sid(desk)]
    assert by_id[_sid(phone)]["userAgent"] == "PhoneApp/1.0"
    assert by_id[_sid(desk)]["userAgent"] == "Electron ProjectVoice/0.4.0"
    assert all(s["ip"] == "127.0.0.1" for s in listed)
    for s in listed:
        assert s["createdAt"] <= s["lastSeenAt"]
    # Another account sees only its own.
    other = api.register()
    assert [s["id"] for s in _sessions(api, other.token)] == [_sid(other.token)]


def test_a_session_lists_the_address_the_rate_limits_see(api, alice):
    """Behind a trusted proxy (the test server trusts 127.0.0.1, FORWARDED_ALLOW_IPS) the session's
    `ip` is the forwarded client address, the one the limits count, not the proxy's."""
    r = api.post("/auth/login", json={"email": alice.email, "password": alice.password},
                 headers={"X-Forwarded-For": "203.0.113.77", "User-Agent": "behind-proxy"})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    by_id = {s["id"]: s for s in _sessions(api, token)}
    assert by_id[_sid(token)]["ip"] == "203.0.113.77"
    assert by_id[_sid(alice.token)]["ip"] == "127.0.0.1"  # the registration came without a proxy


def test_ending_one_session_stops_its_token_only(api, alice, bob):
    second = _login(api, alice)
    r = api.delete(f"/auth/sessions/{_sid(second)}", alice.token)
    assert r.status_code == 204 and r.content == b""
    _ended(api, second)
    assert api.get("/auth/me", alice.token).status_code == 200
    assert _sid(second) not in {s["id"] for s in _sessions(api, alice.token)}
    # Twice, or someone else's: 404, and bob's session is untouched.
    assert api.delete(f"/auth/sessions/{_sid(second)}", alice.token).status_code == 404
    r = api.delete(f"/auth/sessions/{_sid(bob.token)}", alice.token)
    assert r.status_code == 404 and r.json()["code"] == "session_not_found"
    assert api.get("/auth/me", bob.token).status_code == 200
    # Ending the current session is a logout.
    assert api.delete(f"/auth/sessions/{_sid(alice.token)}", alice.token).status_code == 204
    _ended(api, alice.token)


def test_logout_ends_the_current_session_and_logout_others_the_rest(api, alice):
    a, b, c = _login(api, alice), _login(api, alice), _login(api, alice)
    assert api.post("/auth/logout", a).status_code == 204
    _ended(api, a)
    assert api.post("/auth/logout", a).status_code == 401  # already over
    r = api.post("/auth/logout-others", b, json={})
    assert r.status_code == 200 and r.json()["endedSessions"] == 2  # alice.token and c
    _ended(api, alice.token)
    _ended(api, c)
    assert [s["id"] for s in _sessions(api, b)] == [_sid(b)]
    r = api.post("/auth/logout-others", b)
    assert r.status_code == 200 and r.json()["endedSessions"] == 0


def test_password_change_keeps_the_caller_and_ends_the_others(api, alice):
    """The desktop client ignores the fresh token in the answer: its own token must go on working."""
    other = _login(api, alice)
    r = api.put(f"/auth/users/{alice.id}/password", alice.token,
                json={"oldPassword": alice.password, "newPassword": "brand-new-pw"})
    assert r.status_code == 200 and r.json()["endedSessions"] == 1
    assert _sid(r.json()["token"]) == _sid(alice.token)
    assert api.get("/auth/me", alice.token).status_code == 200
    assert api.get("/servers", alice.token).status_code == 200  # a folded read too
    _ended(api, other)
    assert [s["id"] for s in _sessions(api, alice.token)] == [_sid(alice.token)]
    # The old password signs in no more; the new one starts a session.
    assert api.post("/auth/login", json={"email": alice.email, "password": alice.password}).status_code == 400
    assert api.post("/auth/login", json={"email": alice.email, "password": "brand-new-pw"}).status_code == 200


def test_block_ends_every_session_and_unblock_revives_none(api, admin, server):
    victim = api.register()
    tokens = [victim.token, _login(api, victim)]
    assert api.put(f"/admin/users/{victim.id}", admin.token, json={"isActive": False}).status_code == 200
    with _engine(server).connect() as c:
        left = c.execute(sa.text("SELECT COUNT(*) FROM auth_sessions WHERE user_id = :u"), {"u": victim.id}).scalar()
    assert left == 0
    assert api.put(f"/admin/users/{victim.id}", admin.token, json={"isActive": True}).status_code == 200
    for token in tokens:
        assert api.get("/auth/me", token).status_code == 401
    assert api.get("/auth/me", _login(api, victim)).status_code == 200


def test_deleting_the_account_ends_its_sessions(api, server):
    acct = api.register()
    second = _login(api, acct)
    assert api.delete("/users/", acct.token).status_code == 200
    with _engine(server).connect() as c:
        left = c.execute(sa.text("SELECT COUNT(*) FROM auth_sessions WHERE user_id = :u"), {"u": acct.id}).scalar()
    assert left == 0
    assert api.get("/auth/me", second).status_code == 401


def test_an_admin_deleting_the_account_ends_all_its_sessions(api, admin, server):
    acct = api.register()
    tokens = [acct.token, _login(api, acct), _login(api, acct)]
    assert api.delete(f"/admin/users/{acct.id}", admin.token).status_code == 200
    with _engine(server).connect() as c:
        left = c.execute(sa.text("SELECT COUNT(*) FROM auth_sessions WHERE user_id = :u"), {"u": acct.id}).scalar()
    assert left == 0
    for token in tokens:
        assert api.get("/auth/me", token).status_code == 401
    assert api.get("/auth/me", admin.token).status_code == 200  # the admin's own session goes on


async def _disconnected(c: Client) -> None:
    deadline = time.monotonic() + 5
    while c.ns in c.sio.namespaces and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert c.ns not in c.sio.namespaces, "the server did not disconnect the socket"


@pytest.mark.asyncio
async def test_ending_sessions_ends_their_sockets_and_no_others(api, clients):
    """DELETE /auth/sessions/{id} and logout-others end the sockets of the sessions they end, at
    once (out of the voice room too), and leave the caller's socket working."""
    owner, (bob,), _sv, voice, _text = voice_setup(api)
    a = await clients(owner.token, "seed")
    await a.join(voice["id"])
    here = await clients(bob.token, "desktop")
    tablet = await clients(_login(api, bob), "seed")
    phone_token = _login(api, bob)
    phone = await clients(phone_token, "seed")
    await phone.join(voice["id"])
    await a.wait("user-connected")
    r = api.delete(f"/auth/sessions/{_sid(tablet.token)}", bob.token)
    assert r.status_code == 204, r.text
    assert (await tablet.wait("error"))["code"] == "session_ended"
    await _disconnected(tablet)
    await phone.emit("toggle-mic", False)  # the phone's session goes on
    assert await a.wait("mic-toggled") == {"socketId": phone.sid, "micToggle": False}
    r = api.post("/auth/logout-others", bob.token)
    assert r.status_code == 200 and r.json()["endedSessions"] == 1, r.text  # the phone's
    assert await a.wait("user-disconnected") == phone.sid
    assert (await phone.wait("error"))["code"] == "session_ended"
    await _disconnected(phone)
    created = await here.join(voice["id"])  # the caller's own socket works on
    assert {p["socketId"] for p in created["participants"]} == {a.sid, here.sid}
    assert here.events("error") == [] and a.events("error") == []


@pytest.mark.asyncio
async def test_an_admin_delete_ends_the_accounts_sockets_on_every_session(api, admin, clients):
    """Like a block and a self-delete (hooks.user_gone): each of the account's sockets, whichever
    session it came from, leaves the voice room, gets `account_unavailable` and is disconnected."""
    owner, (bob,), _sv, voice, _text = voice_setup(api)
    a = await clients(owner.token, "seed")
    await a.join(voice["id"])
    laptop = await clients(bob.token, "desktop")
    await laptop.join(voice["id"])
    await a.wait("user-connected")
    phone = await clients(_login(api, bob), "seed")
    gone = laptop.sid
    assert api.delete(f"/admin/users/{bob.id}", admin.token).status_code == 200
    assert await a.wait("user-disconnected") == gone
    for c in (laptop, phone):
        assert (await c.wait("error"))["code"] == "account_unavailable"
        await _disconnected(c)
    assert a.events("error") == []


def test_an_ended_session_fails_at_once_in_another_process(tmp_path):
    """Two server processes on one database: a logout through one is seen by the other on the
    token's very next request (nothing is cached per process but the signature check)."""
    database = Database.fresh(tmp_path)
    a = ServerProcess(database=database, data_dir=tmp_path / "a").start()
    try:
        b = ServerProcess(database=database, data_dir=tmp_path / "b", jwt_secret=a.jwt_secret).start()
        try:
            api_a, api_b = Api(a.base), Api(b.base)
            acct = api_a.register()
            owner_sv = create_server(api_a, acct)
            channel = create_channel(api_a, acct, owner_sv["id"])
            other = _login(api_a, acct)
            for path, params in (("/auth/me", {}), ("/servers", {}), (f"/servers/{owner_sv['id']}", {}),
                                 ("/messages", {"channelId": channel["id"]})):
                assert api_b.get(path, other, params=params).status_code == 200, path
            assert api_a.post("/auth/logout-others", acct.token).status_code == 200
            for path, params in (("/auth/me", {}), ("/servers", {}), (f"/servers/{owner_sv['id']}", {}),
                                 ("/messages", {"channelId": channel["id"]})):
                r = api_b.get(path, other, params=params)
                assert r.status_code == 401 and r.json()["code"] == "session_ended", (path, r.text)
            assert api_b.get("/auth/me", acct.token).status_code == 200
        finally:
            b.stop()
    finally:
        a.stop()
        database.drop()


def test_last_seen_is_written_when_older_than_a_minute(api, server, alice):
    """Requests within a minute of the last write leave last_seen_at alone (no write per request);
    one after that moves it forward, in the background."""
    sid = _sid(alice.token)
    first = {s["id"]: s for s in _sessions(api, alice.token)}[sid]["lastSeenAt"]
    for _ in range(3):
        api.get("/auth/me", alice.token)
    assert {s["id"]: s for s in _sessions(api, alice.token)}[sid]["lastSeenAt"] == first
    old = datetime.now(UTC) - timedelta(minutes=5)
    if server.database.pg_name is None:
        old = old.replace(tzinfo=None)  # SQLite stores naive UTC
    with _engine(server).begin() as c:
        c.execute(sa.text("UPDATE auth_sessions SET last_seen_at = :t WHERE id = :i"), {"t": old, "i": sid})
    api.get("/servers", alice.token)
    deadline = time.monotonic() + 10
    while True:
        seen = {s["id"]: s for s in _sessions(api, alice.token)}[sid]["lastSeenAt"]
        if seen > first:
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)


# ---------------------------------------------------------------- malformed claims (issue 17 item 8)

def _forge(server, **claims) -> str:
    return jwt.encode(claims, server.jwt_secret, algorithm="HS256")


def test_signed_tokens_with_malformed_claims_are_401(api, server, alice, bob):
    """Only the secret's holder can sign these, but each must be a 401 on every use (the second
    use of a string `exp` was a 500), never a resolved user, on plain, folded and socket checks."""
    now = int(time.time())
    sid = _sid(alice.token)
    good = {"sub": str(alice.id), "ver": 0, "sid": sid, "iat": now, "exp": now + 600}
    assert api.get("/auth/me", _forge(server, **good)).status_code == 200  # the forge is right
    bad = [
        {**good, "exp": str(now + 600)},           # a string exp
        {**good, "exp": float(now + 600)},
        {**good, "sub": f" {alice.id} "},            # padded sub
        {**good, "sub": f"0{alice.id}"},
        {**good, "sub": alice.id},                   # not a string
        {**good, "sub": "99999999999999999999"},     # beyond any id
        {**good, "sub": "-1"},
        {k: v for k, v in good.items() if k != "ver"},
        {**good, "ver": "0"},
        {**good, "ver": False},
        {k: v for k, v in good.items() if k != "sid"},  # issued before sessions existed
        {**good, "sid": str(sid)},
        {**good, "sid": True},
        {**good, "sid": 0},
        {**good, "sid": 2**40},
        {**good, "iat": "now"},
        {**good, "sid": _sid(bob.token)},          # a real session, of someone else
    ]
    for claims in bad:
        token = _forge(server, **claims)
        for _ in range(2):  # the second use went through the verified-token cache
            for path in ("/auth/me", "/servers", "/auth/sessions"):
                r = api.get(path, token)
                assert r.status_code == 401, (claims, path, r.text)
                assert r.json()["code"] in ("invalid_token", "session_ended"), (claims, r.json())


@pytest.mark.asyncio
async def test_socket_join_refuses_signed_tokens_with_malformed_claims(api, server):
    """The socket's token check (join-room's token, then the handshake's) refuses them too."""
    owner, _members, _sv, voice, _text = voice_setup(api, 0)
    now = int(time.time())
    good = {"sub": str(owner.id), "ver": 0, "sid": _sid(owner.token), "iat": now, "exp": now + 600}
    bad = [{**good, "exp": str(now + 600)}, {**good, "sub": f" {owner.id} "},
           {k: v for k, v in good.items() if k != "ver"}]
    for claims in [good, *bad]:
        token = _forge(server, **claims)
        for _ in range(2):  # the second use went through the verified-token cache
            for handshake, given in ((None, token), (token, None)):
                c = Client(server.base, form="seed", token=handshake)
                await c.connect()
                try:
                    await c.emit("join-room", voice["id"], given)
                    if claims is good:  # the forge is right
                        assert (await c.wait("created"))["participants"][0]["userData"]["id"] == owner.id
                        await c.emit("leave-room")
                    else:
                        assert (await c.wait("error"))["code"] == "authentication_required", claims
                        await c.quiet("created")
                finally:
                    await c.close()


@pytest.mark.asyncio
async def test_socket_join_refuses_an_ended_session(api, server):
    """The socket's token check (auth.user_for_token) consults the session like the bearer check."""
    owner, _members, _sv, voice, _text = voice_setup(api, 0)
    other = _login(api, owner)
    c = Client(server.base, form="seed", token=None)
    await c.connect()
    try:
        created = await c.join(voice["id"], other)
        assert created["participants"][0]["userData"]["id"] == owner.id
        await c.emit("leave-room")
        assert api.post("/auth/logout", other).status_code == 204
        err = await c.wait("error")  # the ended session's socket is ended at once
        assert err["code"] == "session_ended"
    finally:
        await c.close()
    c = Client(server.base, form="seed", token=None)
    await c.connect()
    try:  # and the ended session's token no longer joins
        await c.emit("join-room", voice["id"], other)
        err = await c.wait("error")
        assert err["code"] == "authentication_required"
        await c.quiet("created")
    finally:
        await c.close()


def test_logins_racing_a_password_change_leave_no_session_on_the_old_password(server):
    """A login that verified the old password while the password changed either made its session
    before the change (which then ended it) or makes none (400): no token from the old password
    outlives the change. Settled by the account row lock in models.storage.sessions.create."""
    from concurrent.futures import ThreadPoolExecutor

    for _round in range(3):
        api = Api(server.base)
        acct = api.register()
        body = {"email": acct.email, "password": acct.password}

        def login(delay, body=body):
            time.sleep(delay)  # spread over the change's hashing, so some read the old hash just before it commits
            return Api(server.base).post("/auth/login", json=body)

        def change(acct=acct):
            return Api(server.base).put(f"/auth/users/{acct.id}/password", acct.token,
                                        json={"oldPassword": acct.password, "newPassword": "changed-pw-1"})

        with ThreadPoolExecutor(max_workers=17) as pool:
            changed = pool.submit(change)
            logins = [pool.submit(login, i * 0.03) for i in range(16)]
            results = [f.result() for f in logins]
        assert changed.result().status_code == 200, changed.result().text
        assert {r.status_code for r in results} <= {200, 400}
        for r in results:
            if r.status_code == 200:
                assert api.get("/auth/me", r.json()["token"]).status_code == 401
        assert [s["id"] for s in _sessions(api, acct.token)] == [_sid(acct.token)]
