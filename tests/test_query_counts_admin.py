"""Statement counts of the admin panel, friends and profile routes (X-Query-Count, as in
tests/test_query_counts.py): each route runs the statements its storage functions name and no
more, so moving statements between modules cannot add a round trip unnoticed. The counts include
the bearer check's account read; on SQLite a request that opens a session also sends its
BEGIN IMMEDIATE (models/db.py), one statement more than on PostgreSQL."""
from __future__ import annotations

import pytest

from tests.support import (Api, Database, ServerProcess, backend, create_channel, create_server,
                           join_server, make_admin)

BEGIN = 1 if backend() == "sqlite" else 0


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("querycount_admin")
    database = Database.fresh(tmp)
    proc = ServerProcess(database=database, data_dir=tmp / "data",
                         extra_env={"QUERY_COUNT_HEADER": "1"}).start()
    yield proc
    proc.stop()
    database.drop()


@pytest.fixture(scope="module")
def capi(counted) -> Api:
    return Api(counted.base)


def statements(r, status: int = 200) -> int:
    assert r.status_code == status, r.text
    return int(r.headers["x-query-count"]) - BEGIN


def test_profile_routes(capi):
    me, other = capi.register(), capi.register()
    assert statements(capi.get("/users/", me.token)) == 2
    assert statements(capi.get(f"/users/{other.id}", me.token)) == 3  # + may I see their presence
    assert statements(capi.put("/users/", me.token, json={"bio": "hello"})) == 3
    r = capi.put("/users/", me.token, json={"username": other.user["username"].upper()})  # taken
    assert statements(r, 400) == 3 and r.json()["code"] == "user_exists"
    assert statements(capi.delete("/users/", other.token)) == 4
    # A server that goes with the account costs nothing more: the voice side ends its rooms and
    # live subscriptions from what each process holds, not from the (deleted) channel rows.
    create_server(capi, me)
    assert statements(capi.delete("/users/", me.token)) == 4


def test_friend_routes(capi):
    a, b, c = capi.register(), capi.register(), capi.register()
    r = capi.post("/friends/request", a.token, json={"friendId": b.id})
    assert statements(r, 201) == 5  # account, both users locked, block?, pair's row?, INSERT
    request_id = r.json()["request"]["id"]
    assert statements(capi.get("/friends/requests", b.token)) == 3
    assert statements(capi.post(f"/friends/accept/{request_id}", b.token)) == 6
    assert statements(capi.get("/friends", a.token)) == 2
    r = capi.post("/friends/request", c.token, json={"friendId": a.id})
    assert statements(r, 201) == 5
    # a's request to c accepts c's: the UPDATE, then the row re-read for the answer.
    assert statements(capi.post("/friends/request", a.token, json={"friendId": c.id}), 201) == 6
    assert statements(capi.delete(f"/friends/{c.id}", a.token)) == 3  # by id, then by pair
    assert statements(capi.post(f"/friends/block/{b.id}", a.token)) == 4
    assert statements(capi.get("/friends/blocked", a.token)) == 2
    assert statements(capi.delete(f"/friends/block/{b.id}", a.token)) == 2


def test_admin_routes(capi, counted):
    admin = make_admin(capi, counted)
    owner, member = capi.register(), capi.register()
    server = create_server(capi, owner)
    create_channel(capi, owner, server["id"], "voice")
    join_server(capi, owner, server["id"], member)
    sid = server["id"]
    assert statements(capi.get("/admin/stats", admin.token)) == 6
    assert statements(capi.get("/admin/users", admin.token, params={"search": "user", "status": "active"})) == 4
    assert statements(capi.get(f"/admin/users/{member.id}", admin.token)) == 3
    assert statements(capi.put(f"/admin/users/{member.id}", admin.token, json={"role": "moderator"})) == 6
    # Blocking also ends the account's sessions: one DELETE more.
    assert statements(capi.put(f"/admin/users/{member.id}", admin.token, json={"isActive": False})) == 7
    assert statements(capi.get("/admin/servers", admin.token)) == 5
    assert statements(capi.get(f"/admin/servers/{sid}", admin.token)) == 6
    assert statements(capi.post(f"/admin/servers/{sid}/block", admin.token, json={"reason": "spam"})) == 8
    assert statements(capi.post(f"/admin/servers/{sid}/unblock", admin.token, json={})) == 8
    assert statements(capi.get("/admin/logs", admin.token, params={"page": 1, "limit": 2})) == 11
    assert statements(capi.delete(f"/admin/servers/{sid}", admin.token)) == 5
    assert statements(capi.delete(f"/admin/users/{owner.id}", admin.token)) == 6
    owner = capi.register()
    create_server(capi, owner)
    assert statements(capi.delete(f"/admin/users/{owner.id}", admin.token)) == 6
