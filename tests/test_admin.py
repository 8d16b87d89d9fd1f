"""The admin panel through the HTTP API: roles per operation, stats, paged lists, changes, logs."""
from __future__ import annotations

import importlib.util
import secrets

import pytest

from tests.support import Account, create_channel, create_server, unique


def _moderator(api, admin) -> Account:
    mod = api.register(unique("mod"))
    r = api.put(f"/admin/users/{mod.id}", admin.token, json={"role": "moderator"})
    assert r.status_code == 200 and r.json()["role"] == "moderator", r.text
    return mod


@pytest.fixture(scope="module")
def moderator(api, admin):
    return _moderator(api, admin)


def _register(api, username: str, email: str) -> Account:
    r = api.post("/auth/register", json={"username": username, "email": email, "password": "password123"})
    assert r.status_code == 201, r.text
    return Account(token=r.json()["token"], user=r.json()["user"], email=email, password="password123")


def _forbidden(r):
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["code"] == "admin_required"
    for word in ("unauthorized", "invalid token", "token expired"):
        assert word not in body["error"].lower()


def test_roles_per_operation(api, admin, moderator, alice):
    target = api.register()
    server = create_server(api, target)
    sid, uid = server["id"], target.id
    staff_reads = [("GET", "/admin/users", None), ("GET", f"/admin/users/{uid}", None),
                   ("GET", "/admin/servers", None), ("GET", f"/admin/servers/{sid}", None)]
    admin_only = [("GET", "/admin/stats", None), ("GET", "/admin/logs", None),
                  ("PUT", f"/admin/users/{uid}", {"isActive": True}),
                  ("DELETE", f"/admin/users/{uid}", None),
                  ("POST", f"/admin/servers/{sid}/block", {"reason": "spam spam"}),
                  ("POST", f"/admin/servers/{sid}/unblock", {}),
                  ("DELETE", f"/admin/servers/{sid}", None)]
    for method, path, body in staff_reads + admin_only:
        _forbidden(api.request(method, path, alice.token, json=body))
        assert api.request(method, path, json=body).status_code == 401
    for method, path, body in staff_reads:
        assert api.request(method, path, moderator.token, json=body).status_code == 200, path
        assert api.request(method, path, admin.token, json=body).status_code == 200, path
    for method, path, body in admin_only:
        _forbidden(api.request(method, path, moderator.token, json=body))
    # Nothing changed through the refused calls.
    assert api.get(f"/admin/servers/{sid}", admin.token).json()["isBlocked"] is False
    assert api.get(f"/admin/users/{uid}", admin.token).json()["isActive"] is True
    # Admin can do each of them.
    assert api.get("/admin/stats", admin.token).status_code == 200
    assert api.get("/admin/logs", admin.token).status_code == 200
    assert api.put(f"/admin/users/{uid}", admin.token, json={"isActive": True}).status_code == 200
    assert api.post(f"/admin/servers/{sid}/block", admin.token, json={"reason": "spam spam"}).status_code == 200
    assert api.post(f"/admin/servers/{sid}/unblock", admin.token, json={}).status_code == 200
    assert api.delete(f"/admin/servers/{sid}", admin.token).status_code == 200
    assert api.delete(f"/admin/users/{uid}", admin.token).status_code == 200
    assert api.get(f"/admin/users/{uid}", admin.token).status_code == 404
    assert api.get(f"/admin/servers/{sid}", admin.token).status_code == 404


def test_users_never_show_password_hashes(api, admin, moderator):
    for acct in (admin, moderator):
        r = api.get(f"/admin/users/{moderator.id}", acct.token)
        assert r.status_code == 200
        text = r.text.lower()
        assert "password" not in text and "$argon2" not in text
        assert r.json()["email"] == moderator.email
        page = api.get("/admin/users", acct.token, params={"search": moderator.user["username"]}).json()
        assert [u["id"] for u in page["users"]] == [moderator.id]
        assert "$argon2" not in str(page) and "password" not in str(page).lower()


def _stats(api, admin):
    r = api.get("/admin/stats", admin.token)
    assert r.status_code == 200
    return r.json()


def test_stats_shape_and_counts(api, admin):
    before = _stats(api, admin)
    assert set(before) == {"users", "servers", "channels", "messages"}
    assert set(before["users"]) == {"total", "active", "blocked", "byRole"}
    assert set(before["users"]["byRole"]) == {"admin", "moderator", "user"}
    assert before["users"]["total"] == before["users"]["active"] + before["users"]["blocked"]
    assert before["users"]["total"] == sum(before["users"]["byRole"].values())
    assert before["users"]["byRole"]["admin"] >= 1

    owner = api.register()
    empty = create_server(api, owner)
    full = create_server(api, owner)
    text = create_channel(api, owner, full["id"], "text")
    create_channel(api, owner, full["id"], "voice")
    create_channel(api, owner, full["id"], "voice")
    blocked_user = api.register()
    assert api.put(f"/admin/users/{blocked_user.id}", admin.token, json={"isActive": False}).status_code == 200
    assert api.post(f"/admin/servers/{empty['id']}/block", admin.token, json={"reason": "why not"}).status_code == 200
    r = api.post("/messages", owner.token, json={"channelId": text["id"], "content": "hello"})
    assert r.status_code == 201, r.text
    posted = 1

    after = _stats(api, admin)
    assert after["users"]["total"] == before["users"]["total"] + 2
    assert after["users"]["active"] == before["users"]["active"] + 1
    assert after["users"]["blocked"] == before["users"]["blocked"] + 1
    assert after["users"]["byRole"]["user"] == before["users"]["byRole"]["user"] + 2
    assert after["servers"]["total"] == before["servers"]["total"] + 2
    assert after["servers"]["blocked"] == before["servers"]["blocked"] + 1
    assert after["servers"]["active"] == before["servers"]["active"] + 1
    assert after["servers"]["withChannels"] == before["servers"]["withChannels"] + 1
    assert after["channels"] == {"total": before["channels"]["total"] + 3,
                                 "text": before["channels"]["text"] + 1,
                                 "voice": before["channels"]["voice"] + 2}
    assert after["messages"]["total"] == before["messages"]["total"] + posted
    assert after["messages"]["today"] == before["messages"]["today"] + posted
    assert after["messages"]["today"] <= after["messages"]["total"]


def test_user_list_paging_filters_and_literal_search(api, admin, moderator):
    tag = secrets.token_hex(3)
    plain = _register(api, f"pg{tag}a_b", f"pg{tag}a_b@example.com")
    other = _register(api, f"pg{tag}axb", f"pg{tag}axb@example.com")
    pct = _register(api, f"pg{tag}50%", f"pg{tag}pct@example.com")
    # `_` and `%` match themselves only.
    r = api.get("/admin/users", moderator.token, params={"search": f"{tag}a_b"})
    assert [u["id"] for u in r.json()["users"]] == [plain.id]
    r = api.get("/admin/users", moderator.token, params={"search": f"{tag}50%"})
    assert [u["id"] for u in r.json()["users"]] == [pct.id]
    r = api.get("/admin/users", moderator.token, params={"search": "%"})
    assert [u["id"] for u in r.json()["users"]] == [pct.id]
    # Case-insensitive, on username or email.
    r = api.get("/admin/users", moderator.token, params={"search": f"PG{tag.upper()}AXB"})
    assert [u["id"] for u in r.json()["users"]] == [other.id]
    r = api.get("/admin/users", moderator.token, params={"search": f"{tag}pct@EXAMPLE"})
    assert [u["id"] for u in r.json()["users"]] == [pct.id]

    # Paging: newest first, integers, exact totals.
    r = api.get("/admin/users", admin.token, params={"search": f"pg{tag}", "limit": 2, "page": 1})
    body = r.json()
    assert body["total"] == 3 and body["totalPages"] == 2 and body["page"] == 1 and body["limit"] == 2
    assert [u["id"] for u in body["users"]] == [pct.id, other.id]
    r = api.get("/admin/users", admin.token, params={"search": f"pg{tag}", "limit": 2, "page": 2})
    assert [u["id"] for u in r.json()["users"]] == [plain.id]
    r = api.get("/admin/users", admin.token, params={"search": f"pg{tag}", "limit": 2, "page": 3})
    assert r.json()["users"] == [] and r.json()["total"] == 3
    r = api.get("/admin/users", admin.token, params={"search": f"nothing{tag}"})
    assert r.json() == {"users": [], "total": 0, "page": 1, "limit": 20, "totalPages": 0}

    # Status and role filters.
    assert api.put(f"/admin/users/{other.id}", admin.token, json={"isActive": False}).status_code == 200
    r = api.get("/admin/users", admin.token, params={"search": f"pg{tag}", "status": "blocked"})
    assert [u["id"] for u in r.json()["users"]] == [other.id]
    r = api.get("/admin/users", admin.token, params={"search": f"pg{tag}", "status": "active"})
    assert {u["id"] for u in r.json()["users"]} == {plain.id, pct.id}
    assert api.put(f"/admin/users/{plain.id}", admin.token, json={"role": "moderator"}).status_code == 200
    r = api.get("/admin/users", admin.token, params={"search": f"pg{tag}", "role": "moderator"})
    assert [u["id"] for u in r.json()["users"]] == [plain.id]
    r = api.get("/admin/users", admin.token, params={"role": "admin", "limit": 100})
    assert admin.id in [u["id"] for u in r.json()["users"]]
    assert all(u["role"] == "admin" for u in r.json()["users"])


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"page": 0}, {"status": "gone"},
                                    {"role": "owner"}, {"limit": "x"}, {"search": ""}])
def test_list_bad_query_is_400(api, admin, params):
    for path in ("/admin/users", "/admin/servers"):
        if path == "/admin/servers" and "role" in params:
            continue
        r = api.get(path, admin.token, params=params)
        assert r.status_code == 400, (path, params, r.text)


def test_limit_bounds_accepted(api, admin):
    for limit in (1, 100):
        r = api.get("/admin/users", admin.token, params={"limit": limit})
        assert r.status_code == 200 and len(r.json()["users"]) <= limit and r.json()["limit"] == limit


def test_server_list_member_count_search_status(api, admin, moderator):
    tag = secrets.token_hex(3)
    owner = api.register()
    a = create_server(api, owner, f"srv{tag} 100%")
    b = create_server(api, owner, f"srv{tag} 100x")
    c = create_server(api, owner, f"SRV{tag} a_c")
    r = api.get("/admin/servers", moderator.token, params={"search": f"srv{tag}"})
    body = r.json()
    assert body["total"] == 3 and body["totalPages"] == 1
    assert [s["id"] for s in body["servers"]] == [c["id"], b["id"], a["id"]]
    assert all(s["memberCount"] == 1 for s in body["servers"])
    r = api.get("/admin/servers", moderator.token, params={"search": f"{tag} 100%"})
    assert [s["id"] for s in r.json()["servers"]] == [a["id"]]
    r = api.get("/admin/servers", moderator.token, params={"search": f"{tag} a_c"})
    assert [s["id"] for s in r.json()["servers"]] == [c["id"]]
    r = api.get("/admin/servers", moderator.token, params={"search": f"{tag} a%c"})
    assert r.json()["servers"] == []
    assert api.post(f"/admin/servers/{b['id']}/block", admin.token, json={"reason": "bad stuff"}).status_code == 200
    r = api.get("/admin/servers", moderator.token, params={"search": f"srv{tag}", "status": "blocked"})
    assert [(s["id"], s["isBlocked"], s["blockReason"]) for s in r.json()["servers"]] == [(b["id"], True, "bad stuff")]
    r = api.get("/admin/servers", moderator.token, params={"search": f"srv{tag}", "status": "active"})
    assert [s["id"] for s in r.json()["servers"]] == [c["id"], a["id"]]
    r = api.get("/admin/servers", moderator.token, params={"search": f"srv{tag}", "limit": 1, "page": 2})
    assert r.json()["totalPages"] == 3 and [s["id"] for s in r.json()["servers"]] == [b["id"]]
    detail = api.get(f"/admin/servers/{b['id']}", moderator.token).json()
    assert detail["memberCount"] == 1 and detail["isBlocked"] is True
    assert [m["userId"] for m in detail["members"]] == [owner.id]
    assert len(detail["roles"]) == 5


def test_member_count_counts_members(api, admin):
    """memberCount follows joins (needs the invites area to add members)."""
    from tests.support import join_server

    owner, m1, m2 = api.register(), api.register(), api.register()
    server = create_server(api, owner, unique("counted"))
    if importlib.util.find_spec("handlers.invites") is None:
        pytest.skip("invites not implemented yet")
    join_server(api, owner, server["id"], m1, m2)
    r = api.get("/admin/servers", admin.token, params={"search": server["name"]})
    assert [s["memberCount"] for s in r.json()["servers"]] == [3]
    assert api.get(f"/admin/servers/{server['id']}", admin.token).json()["memberCount"] == 3


def test_admin_self_and_other_admin_protection(api, admin, server):
    r = api.put(f"/admin/users/{admin.id}", admin.token, json={"role": "user"})
    assert r.status_code == 400 and r.json()["code"] == "cannot_modify_self"
    r = api.put(f"/admin/users/{admin.id}", admin.token, json={"isActive": False})
    assert r.status_code == 400 and r.json()["code"] == "cannot_modify_self"
    r = api.delete(f"/admin/users/{admin.id}", admin.token)
    assert r.status_code == 400 and r.json()["code"] == "cannot_modify_self"
    # A no-op on oneself is fine.
    r = api.put(f"/admin/users/{admin.id}", admin.token, json={"role": "admin", "isActive": True})
    assert r.status_code == 200 and r.json()["role"] == "admin"

    from tests.support import make_admin

    other = make_admin(api, server)
    for body in ({"role": "user"}, {"role": "moderator"}, {"isActive": False}):
        r = api.put(f"/admin/users/{other.id}", admin.token, json=body)
        assert r.status_code == 403 and r.json()["code"] == "target_is_admin"
    r = api.delete(f"/admin/users/{other.id}", admin.token)
    assert r.status_code == 403 and r.json()["code"] == "target_is_admin"
    me = api.get(f"/admin/users/{other.id}", admin.token).json()
    assert me["role"] == "admin" and me["isActive"] is True
    assert api.get("/auth/me", other.token).status_code == 200
    # The admin still is one.
    assert api.get("/admin/stats", admin.token).status_code == 200


def test_update_user_validation(api, admin):
    target = api.register()
    r = api.put(f"/admin/users/{target.id}", admin.token, json={})
    assert r.status_code == 400
    r = api.put(f"/admin/users/{target.id}", admin.token, json={"role": "owner"})
    assert r.status_code == 400
    r = api.put(f"/admin/users/{target.id}", admin.token, json={"isActive": "no"})
    assert r.status_code == 400
    assert api.put("/admin/users/2147483647", admin.token, json={"role": "user"}).status_code == 404
    assert api.delete("/admin/users/2147483647", admin.token).status_code == 404


def test_promote_and_demote_moderator(api, admin):
    u = api.register()
    assert api.get("/admin/users", u.token).status_code == 403
    r = api.put(f"/admin/users/{u.id}", admin.token, json={"role": "moderator"})
    assert r.status_code == 200 and r.json()["role"] == "moderator" and r.json()["id"] == u.id
    assert api.get("/admin/users", u.token).status_code == 200
    # The moderator's token keeps working (a role change does not revoke it).
    assert api.get("/auth/me", u.token).json()["role"] == "moderator"
    r = api.put(f"/admin/users/{u.id}", admin.token, json={"role": "user"})
    assert r.status_code == 200 and r.json()["role"] == "user"
    assert api.get("/admin/users", u.token).status_code == 403


def test_moderator_cannot_promote_themselves(api, admin, moderator):
    r = api.put(f"/admin/users/{moderator.id}", moderator.token, json={"role": "admin"})
    assert r.status_code == 403
    assert api.get(f"/admin/users/{moderator.id}", admin.token).json()["role"] == "moderator"


def test_admin_deletes_user_and_owned_servers(api, admin):
    victim = api.register()
    server = create_server(api, victim)
    r = api.delete(f"/admin/users/{victim.id}", admin.token)
    # 200 with a message: the admin panel reads result.message and throws on an empty answer.
    assert r.status_code == 200 and r.json() == {"message": f"User {victim.user['username']} deleted"}
    assert api.get("/auth/me", victim.token).status_code == 401
    assert api.get(f"/admin/servers/{server['id']}", admin.token).status_code == 404
    r = api.post("/auth/login", json={"email": victim.email, "password": victim.password})
    assert r.status_code == 404
    logs = api.get("/admin/logs", admin.token, params={"action": "user.delete", "actorId": admin.id}).json()
    entry = logs["entries"][0]
    assert entry["targetId"] == victim.id and entry["details"]["ownedServers"] == [server["id"]]


def test_block_server_validation(api, admin):
    owner = api.register()
    server = create_server(api, owner)
    sid = server["id"]
    for body in ({}, {"reason": "ab"}, {"reason": "   ab   "}, {"reason": 123}):
        r = api.post(f"/admin/servers/{sid}/block", admin.token, json=body)
        assert r.status_code == 400, body
    assert api.post("/admin/servers/2147483647/block", admin.token, json={"reason": "spam"}).status_code == 404
    assert api.post("/admin/servers/2147483647/unblock", admin.token).status_code == 404
    assert api.delete("/admin/servers/2147483647", admin.token).status_code == 404
    r = api.post(f"/admin/servers/{sid}/unblock", admin.token)
    assert r.status_code == 400 and r.json()["code"] == "not_blocked"
    r = api.post(f"/admin/servers/{sid}/block", admin.token, json={"reason": "  spam!  "})
    assert r.status_code == 200
    body = r.json()
    assert body["isBlocked"] is True and body["blockReason"] == "spam!" and body["memberCount"] == 1
    r = api.post(f"/admin/servers/{sid}/block", admin.token, json={"reason": "again"})
    assert r.status_code == 400 and r.json()["code"] == "already_blocked"
    r = api.post(f"/admin/servers/{sid}/unblock", admin.token, headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["isBlocked"] is False and r.json()["blockReason"] is None


def test_admin_delete_server_cascades(api, admin):
    owner = api.register()
    server = create_server(api, owner)
    channel = create_channel(api, owner, server["id"])
    r = api.delete(f"/admin/servers/{server['id']}", admin.token)
    assert r.status_code == 200 and r.json() == {"message": f"Server {server['name']} deleted"}
    assert api.get(f"/servers/{server['id']}", owner.token).status_code == 404
    assert api.get(f"/servers/{server['id']}/channels/{channel['id']}", owner.token).status_code == 404
    assert server["id"] not in [s["id"] for s in api.get("/servers", owner.token).json()]
    assert api.delete(f"/admin/servers/{server['id']}", admin.token).status_code == 404


def test_logs_summaries_entries_and_filters(api, admin, server):
    # A second admin, so the actor filter has something to tell apart.
    from tests.support import make_admin

    other = make_admin(api, server)
    owner = api.register()
    s1 = create_server(api, owner)
    target = api.register()
    assert api.post(f"/admin/servers/{s1['id']}/block", admin.token, json={"reason": "logged reason"}).status_code == 200
    assert api.post(f"/admin/servers/{s1['id']}/unblock", other.token).status_code == 200
    assert api.put(f"/admin/users/{target.id}", other.token, json={"role": "moderator"}).status_code == 200

    assert api.get("/admin/logs", owner.token).status_code == 403
    r = api.get("/admin/logs", admin.token)
    assert r.status_code == 200
    body = r.json()
    for key in ("system", "errors", "access"):
        assert isinstance(body[key], str) and body[key]
    assert "audit records" in body["system"] and "last: user.update by " + other.user["username"] in body["system"]
    assert "blocked accounts" in body["access"] and "server.block" in body["access"]
    assert "errors logged" in body["errors"]
    if importlib.util.find_spec("core.observability") is not None:
        import re

        n = int(re.search(r"(\d+) requests handled", body["access"]).group(1))
        assert n > 0 and "2xx" in body["access"] and "403" in body["access"]
    assert body["page"] == 1 and body["limit"] == 50 and body["total"] >= 3
    newest = body["entries"][:3]
    assert [e["action"] for e in newest] == ["user.update", "server.unblock", "server.block"]
    assert newest[0]["actor"] == {"id": other.id, "username": other.user["username"]}
    assert newest[0]["targetType"] == "user" and newest[0]["targetId"] == target.id
    assert newest[0]["details"]["role"] == ["user", "moderator"]
    assert newest[2]["details"] == {"reason": "logged reason"} and newest[2]["serverId"] == s1["id"]
    assert newest[2]["actorId"] == admin.id

    r = api.get("/admin/logs", admin.token, params={"action": "server.block", "actorId": admin.id})
    entries = r.json()["entries"]
    assert entries and all(e["action"] == "server.block" and e["actorId"] == admin.id for e in entries)
    assert entries[0]["targetId"] == s1["id"]
    r = api.get("/admin/logs", admin.token, params={"actorId": other.id})
    assert [e["action"] for e in r.json()["entries"]] == ["user.update", "server.unblock"]
    assert r.json()["total"] == 2 and r.json()["totalPages"] == 1
    r = api.get("/admin/logs", admin.token, params={"actorId": other.id, "limit": 1, "page": 2})
    assert [e["action"] for e in r.json()["entries"]] == ["server.unblock"] and r.json()["totalPages"] == 2
    r = api.get("/admin/logs", admin.token, params={"action": "no.such.action"})
    assert r.json()["entries"] == [] and r.json()["total"] == 0
    assert api.get("/admin/logs", admin.token, params={"limit": 101}).status_code == 400
    assert api.get("/admin/logs", admin.token, params={"actorId": 0}).status_code == 400


def test_admin_server_list_items_carry_their_channels(api, admin):
    """The admin panel shows channels.length per server (issue 18): each list item, and the
    block/unblock answers of the same shape, carry channels [{id, name, type}] in their order."""
    owner = api.register()
    server = create_server(api, owner, name=unique("chans"))
    create_channel(api, owner, server["id"], "text")
    voice = create_channel(api, owner, server["id"], "voice")
    empty = create_server(api, owner, name=unique("chans"))
    expected = [{"id": c["id"], "name": c["name"], "type": c["type"]}
                for c in api.get(f"/servers/{server['id']}/channels", owner.token).json()]
    assert {"id": voice["id"], "name": voice["name"], "type": "voice"} in expected and len(expected) >= 2
    page = api.get("/admin/servers", admin.token, params={"search": server["name"]}).json()
    (item,) = page["servers"]
    assert item["channels"] == expected
    r = api.get("/admin/servers", admin.token, params={"search": empty["name"]})
    assert [s["channels"] for s in r.json()["servers"]] == [[]]
    r = api.post(f"/admin/servers/{server['id']}/block", admin.token, json={"reason": "spam spam"})
    assert r.status_code == 200 and r.json()["channels"] == expected
    r = api.post(f"/admin/servers/{server['id']}/unblock", admin.token)
    assert r.status_code == 200 and r.json()["channels"] == expected
