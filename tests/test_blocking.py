"""Account and server blocking hold everywhere, and unblocking restores them (through HTTP)."""
from __future__ import annotations


from tests.support import create_channel, create_server, join_server


def _refused(api, method: str, path: str, token: str, **kw):
    r = api.client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)
    api.check_contract(r)
    _assert_refused(r)


def _login(api, acct):
    return api.post("/auth/login", json={"email": acct.email, "password": acct.password})


def _no_logout_words(r):
    text = r.json()["error"].lower()
    for word in ("unauthorized", "invalid token", "token expired"):
        assert word not in text


def test_blocked_account_token_fails_next_request_and_login_is_403(api, admin, alice, bob):
    second = _login(api, alice).json()["token"]  # another session of the same account
    assert api.get("/auth/me", alice.token).status_code == 200
    r = api.put(f"/admin/users/{alice.id}", admin.token, json={"isActive": False})
    assert r.status_code == 200 and r.json()["isActive"] is False
    # Every token of the account stops working on the very next request.
    for token in (alice.token, second):
        assert api.get("/auth/me", token).status_code == 401
        assert api.get("/servers", token).status_code == 401
        assert api.get("/friends", token).status_code == 401
    # Login: a 403 with a clear message (not a "log me out" 401).
    r = _login(api, alice)
    assert r.status_code == 403
    assert r.json() == {"error": "This account is blocked", "code": "account_blocked"}
    # Other accounts are unaffected.
    assert api.get("/auth/me", bob.token).status_code == 200

    # Unblocking restores the account: login works and the new token is accepted.
    r = api.put(f"/admin/users/{alice.id}", admin.token, json={"isActive": True})
    assert r.status_code == 200 and r.json()["isActive"] is True
    r = _login(api, alice)
    assert r.status_code == 200
    fresh = r.json()["token"]
    assert api.get("/auth/me", fresh).json()["id"] == alice.id
    # Tokens from before the block stay revoked.
    assert api.get("/auth/me", alice.token).status_code == 401

    entries = api.get("/admin/logs", admin.token, params={"action": "user.update"}).json()["entries"]
    mine = [e for e in entries if e["targetId"] == alice.id]
    assert [e["details"]["isActive"] for e in mine[:2]] == [[False, True], [True, False]]


def test_blocked_moderator_loses_admin_access(api, admin):
    mod = api.register()
    assert api.put(f"/admin/users/{mod.id}", admin.token, json={"role": "moderator"}).status_code == 200
    assert api.get("/admin/users", mod.token).status_code == 200
    assert api.put(f"/admin/users/{mod.id}", admin.token, json={"isActive": False}).status_code == 200
    assert api.get("/admin/users", mod.token).status_code == 401


def _assert_refused(r):
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "server_blocked"
    _no_logout_words(r)


def test_blocked_server_refuses_its_members_and_unblock_restores(api, admin, alice):
    server = create_server(api, alice)
    sid = server["id"]
    text = create_channel(api, alice, sid, "text")
    voice = create_channel(api, alice, sid, "voice")
    r = api.post(f"/admin/servers/{sid}/block", admin.token, json={"reason": "Spam server"})
    assert r.status_code == 200 and r.json()["isBlocked"] is True

    assert sid not in [s["id"] for s in api.get("/servers", alice.token).json()]
    r = api.get(f"/servers/{sid}", alice.token)
    _assert_refused(r)
    assert "Spam server" in r.json()["error"]
    _assert_refused(api.get(f"/servers/{sid}/channels", alice.token))
    _assert_refused(api.get(f"/servers/{sid}/channels/{text['id']}", alice.token))
    _assert_refused(api.get(f"/servers/{sid}/channels/{voice['id']}", alice.token))
    _assert_refused(api.put(f"/servers/{sid}", alice.token, json={"name": "renamed"}))
    _assert_refused(api.post(f"/servers/{sid}/channels", alice.token, json={"name": "more", "type": "text"}))
    _assert_refused(api.put(f"/servers/{sid}/channels/{text['id']}", alice.token, json={"name": "x"}))
    _assert_refused(api.delete(f"/servers/{sid}/channels/{text['id']}", alice.token))
    _assert_refused(api.delete(f"/servers/{sid}", alice.token))
    # Other areas' routes, as far as they exist yet.
    _refused(api, "GET", "/messages", alice.token, params={"channelId": text["id"]})
    _refused(api, "POST", "/messages", alice.token, json={"channelId": text["id"], "content": "hi"})
    _refused(api, "GET", f"/serverMembers/{sid}/members", alice.token)
    _refused(api, "GET", f"/serverMembers/{sid}/members/me", alice.token)
    _refused(api, "GET", f"/servers/{sid}/roles", alice.token)
    _refused(api, "GET", f"/servers/{sid}/bans", alice.token)
    _refused(api, "POST", f"/invite/{sid}/invite", alice.token, json={})
    _refused(api, "GET", f"/invite/{sid}/invites", alice.token)
    # Admin routes still see it.
    detail = api.get(f"/admin/servers/{sid}", admin.token).json()
    assert detail["isBlocked"] is True and detail["blockReason"] == "Spam server"
    assert [c["id"] for c in detail["channels"]] == [text["id"], voice["id"]]

    r = api.post(f"/admin/servers/{sid}/unblock", admin.token)
    assert r.status_code == 200 and r.json()["isBlocked"] is False and r.json()["blockReason"] is None
    assert sid in [s["id"] for s in api.get("/servers", alice.token).json()]
    r = api.get(f"/servers/{sid}", alice.token)
    assert r.status_code == 200 and r.json()["isBlocked"] is False
    assert [c["id"] for c in api.get(f"/servers/{sid}/channels", alice.token).json()] == [text["id"], voice["id"]]
    assert api.get(f"/servers/{sid}/channels/{text['id']}", alice.token).status_code == 200
    assert api.get("/messages", alice.token, params={"channelId": text["id"]}).status_code == 200

    entries = api.get("/admin/logs", admin.token, params={"actorId": admin.id}).json()["entries"]
    mine = [(e["action"], e["details"]) for e in entries if e["targetType"] == "server" and e["targetId"] == sid]
    assert mine[:2] == [("server.unblock", {"previousReason": "Spam server"}),
                        ("server.block", {"reason": "Spam server"})]


def test_blocked_server_non_member_still_403_and_unknown_404(api, admin, alice, bob):
    server = create_server(api, alice)
    assert api.post(f"/admin/servers/{server['id']}/block", admin.token, json={"reason": "nope"}).status_code == 200
    r = api.get(f"/servers/{server['id']}", bob.token)
    assert r.status_code == 403 and r.json()["code"] == "not_a_member"
    assert api.get("/servers/2147483647", bob.token).status_code == 404


def test_blocked_server_member_can_leave(api, admin, alice, bob):
    server = create_server(api, alice)
    sid = server["id"]
    join_server(api, alice, sid, bob)
    me = api.get(f"/serverMembers/{sid}/members/me", bob.token)
    assert me.status_code == 200
    member_id = me.json()["id"]
    assert api.post(f"/admin/servers/{sid}/block", admin.token, json={"reason": "blocked"}).status_code == 200
    _assert_refused(api.get(f"/servers/{sid}", bob.token))
    _assert_refused(api.get(f"/servers/{sid}/channels", bob.token))
    r = api.delete(f"/serverMembers/{sid}/members/{member_id}", bob.token)
    assert r.status_code in (200, 204), r.text
    r = api.get(f"/servers/{sid}", bob.token)
    assert r.status_code == 403 and r.json()["code"] == "not_a_member"
    assert api.post(f"/admin/servers/{sid}/unblock", admin.token).status_code == 200
    assert api.get(f"/admin/servers/{sid}", admin.token).json()["memberCount"] == 1


def test_invites_to_blocked_server_fail(api, admin, alice, bob):
    server = create_server(api, alice)
    sid = server["id"]
    r = api.post(f"/invite/{sid}/invite", alice.token, json={})
    assert r.status_code == 201
    token = r.json()["invite"]["token"]
    assert api.post(f"/admin/servers/{sid}/block", admin.token, json={"reason": "blocked"}).status_code == 200
    r = api.post(f"/invite/invite/{token}/accept", bob.token)
    assert r.status_code == 403, r.text
    _no_logout_words(r)
    assert api.post(f"/admin/servers/{sid}/unblock", admin.token).status_code == 200
    assert api.post(f"/invite/invite/{token}/accept", bob.token).status_code == 200


def test_deleted_account_token_fails(api, admin):
    victim = api.register()
    assert api.get("/auth/me", victim.token).status_code == 200
    assert api.delete(f"/admin/users/{victim.id}", admin.token).status_code == 200
    assert api.get("/auth/me", victim.token).status_code == 401
    assert api.get("/friends", victim.token).status_code == 401


def test_account_blocked_by_admins_takes_no_friend_requests(api, admin, alice, bob):
    assert api.put(f"/admin/users/{bob.id}", admin.token, json={"isActive": False}).status_code == 200
    r = api.post("/friends/request", alice.token, json={"friendId": bob.id})
    assert r.status_code == 404, r.text
    assert api.put(f"/admin/users/{bob.id}", admin.token, json={"isActive": True}).status_code == 200
    assert api.post("/friends/request", alice.token, json={"friendId": bob.id}).status_code == 201


def _folded_reads(api, acct) -> list[tuple[str, dict]]:
    """The GETs whose permission statement also reads the caller's account (auth's
    account_checked_in_query), each on a resource the caller may read and on one that is gone."""
    sv = create_server(api, acct)
    channel = create_channel(api, acct, sv["id"], "text")["id"]
    return [
        ("/servers", {}), ("/servers", {}),  # (a list has no missing resource: asked twice)
        (f"/servers/{sv['id']}", {}), ("/servers/999999999", {}),
        (f"/serverMembers/{sv['id']}/members", {}), ("/serverMembers/999999999/members", {}),
        ("/messages", {"channelId": channel}), ("/messages", {"channelId": 999999999}),
        ("/messages/search", {"channelId": channel, "query": "hello"}),
        ("/messages/search", {"channelId": 999999999, "query": "hello"}),
    ]


FOLDED_OPERATIONS = {"handlers.servers.list_servers", "handlers.servers.get_server", "handlers.members.list_members",
                     "handlers.messages.list_messages", "handlers.messages.search_messages"}


def test_every_folded_account_check_is_tested_here():
    import handlers.members, handlers.messages, handlers.servers  # noqa: E401,F401  (they register)
    from models import auth
    assert auth._DEFERRED == FOLDED_OPERATIONS


def test_reads_that_fold_the_account_check_refuse_blocked_revoked_and_deleted(api, admin):
    """A page, a search, a server or its members: the account (and the token's session) is
    checked in the same statement as the permission, and still before anything else (401, not
    the 404 of a missing channel). "Revoked" is now a session ended by a password change made
    from another session (whose own token goes on working), or by a logout."""
    blocked, revoked, deleted, logged_out = api.register(), api.register(), api.register(), api.register()
    reads = {a.id: _folded_reads(api, a) for a in (blocked, revoked, deleted, logged_out)}
    for path, params in reads[blocked.id][::2]:
        assert api.get(path, blocked.token, params=params).status_code == 200, path
    second = api.post("/auth/login", json={"email": revoked.email, "password": revoked.password}).json()["token"]

    assert api.put(f"/admin/users/{blocked.id}", admin.token, json={"isActive": False}).status_code == 200
    r = api.put(f"/auth/users/{revoked.id}/password", token=second,
                json={"oldPassword": revoked.password, "newPassword": "new-password-1"})
    assert r.status_code == 200
    assert api.delete("/users/", token=deleted.token).status_code == 200
    assert api.post("/auth/logout", token=logged_out.token).status_code == 204

    for acct, code in ((blocked, "account_blocked"), (revoked, "session_ended"), (deleted, "invalid_token"),
                       (logged_out, "session_ended")):
        for path, params in reads[acct.id]:
            r = api.get(path, acct.token, params=params)
            assert r.status_code == 401, (acct, path, params, r.text)
            assert r.json()["code"] == code, (path, r.json())
    for path, params in reads[revoked.id]:  # the session that changed the password reads on
        assert api.get(path, second, params=params).status_code in (200, 404), path


def test_server_list_hides_a_blocked_server_among_others(api, admin):
    acct = api.register()
    assert api.get("/servers", acct.token).json() == []
    kept, blocked, other = (create_server(api, acct) for _ in range(3))
    assert api.post(f"/admin/servers/{blocked['id']}/block", admin.token, json={"reason": "Spam"}).status_code == 200
    assert [s["id"] for s in api.get("/servers", acct.token).json()] == [kept["id"], other["id"]]


def test_folded_handler_that_skips_its_statement_still_gets_the_account_checked(monkeypatch):
    """The safety net of auth.account_checked_in_query: a marked handler that returns or fails
    without reaching the statement that reads the account still has it checked (401 first)."""
    import asyncio
    from types import SimpleNamespace

    from models import auth
    from core.errors import NotFound, Unauthorized

    accounts = {1: SimpleNamespace(is_active=True, token_version=0, session_id=5, session_seen_at=None), 2: None}
    reads = []

    async def account(claims):
        reads.append(claims["sub"])
        return accounts[claims["sub"]]

    monkeypatch.setattr(auth, "_account", account)

    async def returns(user):
        return {"ok": user}, 200

    async def fails(user):
        raise NotFound("Channel not found", "channel_not_found")

    async def consumes(user):
        assert auth.take_unchecked_account(user) is not None  # as models.permissions._read_access does
        return {"ok": user}, 200

    async def call(handler, user):
        auth._unchecked.set({"sub": user, "ver": 0, "sid": 5})
        wrapped = auth.account_checked_in_query(handler)
        auth._DEFERRED.discard(f"{handler.__module__}.{handler.__name__}")  # not an API operation
        return await wrapped(user=user)

    async def scenario():
        assert await call(returns, 1) == ({"ok": 1}, 200)
        for handler in (returns, fails):
            try:
                await call(handler, 2)
            except Unauthorized as e:
                assert e.code == "invalid_token"
            else:
                raise AssertionError(f"{handler.__name__}: a gone account was let through")
        try:
            await call(fails, 1)
        except NotFound:
            pass
        reads.clear()
        assert await call(consumes, 2) == ({"ok": 2}, 200)  # the handler's statement owns the check
        assert reads == []

    asyncio.run(scenario())
