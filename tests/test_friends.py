"""Friends, friend requests and blocks through the HTTP API."""
from __future__ import annotations

import threading

import httpx


def _request(api, a, b):
    return api.post("/friends/request", a.token, json={"friendId": b.id})


def _requests(api, acct):
    r = api.get("/friends/requests", acct.token)
    assert r.status_code == 200
    return r.json()


def _friend_ids(api, acct):
    r = api.get("/friends", acct.token)
    assert r.status_code == 200
    return [f["id"] for f in r.json()]


def test_request_accept_list_remove(api, alice, bob):
    r = _request(api, alice, bob)
    assert r.status_code == 201
    body = r.json()
    assert body["message"] == "Запрос в друзья отправлен."
    req = body["request"]
    assert req["userId"] == alice.id and req["friendId"] == bob.id and req["status"] == "pending"

    incoming = _requests(api, bob)["incoming"]
    assert [(i["id"], i["user"]["id"]) for i in incoming] == [(req["id"], alice.id)]
    assert set(incoming[0]["user"]) == {"id", "username", "profilePicture", "status", "tag"}
    outgoing = _requests(api, alice)["outgoing"]
    assert [(o["id"], o["user"]["id"]) for o in outgoing] == [(req["id"], bob.id)]
    assert _requests(api, alice)["incoming"] == [] and _requests(api, bob)["outgoing"] == []

    # Only the addressee accepts.
    r = api.post(f"/friends/accept/{req['id']}", alice.token)
    assert r.status_code == 403 and r.json()["code"] == "not_addressee"
    r = api.post(f"/friends/accept/{req['id']}", bob.token)
    assert r.status_code == 200 and r.json() == {"message": "Запрос в друзья принят."}
    r = api.post(f"/friends/accept/{req['id']}", bob.token)
    assert r.status_code == 400 and r.json()["code"] == "already_friends"

    r = api.get("/friends", alice.token)
    assert r.json() == [{"id": bob.id, "username": bob.user["username"], "profilePicture": None,
                         "status": bob.user["status"], "tag": bob.user["tag"]}]
    assert _friend_ids(api, bob) == [alice.id]
    assert _requests(api, bob) == {"incoming": [], "outgoing": []}

    # Removing by friendship id.
    r = api.delete(f"/friends/{req['id']}", bob.token)
    assert r.status_code == 200 and r.json() == {"message": "Друг удален или запрос отклонен."}
    assert _friend_ids(api, alice) == [] and _friend_ids(api, bob) == []
    assert api.delete(f"/friends/{req['id']}", bob.token).status_code == 404


def test_request_rules(api, alice, bob):
    r = _request(api, alice, alice)
    assert r.status_code == 400 and r.json()["code"] == "self_request"
    r = api.post("/friends/request", alice.token, json={"friendId": 2147483647})
    assert r.status_code == 404
    r = api.post("/friends/request", alice.token, json={})
    assert r.status_code == 400
    assert _request(api, alice, bob).status_code == 201
    r = _request(api, alice, bob)
    assert r.status_code == 400 and r.json()["code"] == "request_exists"
    assert "already sent" in r.json()["error"]


def test_reverse_request_accepts(api, alice, bob):
    first = _request(api, alice, bob).json()["request"]
    r = _request(api, bob, alice)
    assert r.status_code == 201
    assert r.json()["message"] == "Запрос в друзья принят."
    assert r.json()["request"] == {"id": first["id"], "userId": alice.id, "friendId": bob.id, "status": "accepted"}
    assert _friend_ids(api, alice) == [bob.id] and _friend_ids(api, bob) == [alice.id]
    for a, b in ((alice, bob), (bob, alice)):
        r = _request(api, a, b)
        assert r.status_code == 400 and r.json()["code"] == "already_friends"


def test_accept_unknown_or_foreign_request_is_404(api, alice, bob):
    carol = api.register()
    req = _request(api, alice, bob).json()["request"]
    assert api.post(f"/friends/accept/{req['id']}", carol.token).status_code == 404
    assert api.post("/friends/accept/2147483647", bob.token).status_code == 404
    # Carol cannot delete someone else's request by its id either.
    assert api.delete(f"/friends/{req['id']}", carol.token).status_code in (404,)
    assert _requests(api, bob)["incoming"][0]["id"] == req["id"]


def test_delete_by_user_id_declines_and_cancels(api, alice, bob):
    _request(api, alice, bob)
    # Bob declines by Alice's user id.
    r = api.delete(f"/friends/{alice.id}", bob.token)
    assert r.status_code == 200
    assert _requests(api, alice)["outgoing"] == []
    _request(api, alice, bob)
    # Alice cancels by Bob's user id.
    assert api.delete(f"/friends/{bob.id}", alice.token).status_code == 200
    assert _requests(api, bob)["incoming"] == []
    assert api.delete(f"/friends/{bob.id}", alice.token).status_code == 404


def test_delete_never_touches_other_peoples_rows(api, alice, bob):
    carol = api.register()
    req = _request(api, alice, bob).json()["request"]
    # Carol passes a user id (Alice's) and the request id: neither is a row she is part of.
    assert api.delete(f"/friends/{alice.id}", carol.token).status_code == 404
    assert api.delete(f"/friends/{req['id']}", carol.token).status_code == 404
    assert api.delete(f"/friends/{carol.id}", carol.token).status_code == 404
    assert _requests(api, bob)["incoming"][0]["id"] == req["id"]


def test_block_ends_friendship_and_stops_requests_both_ways(api, alice, bob):
    req = _request(api, alice, bob).json()["request"]
    assert api.post(f"/friends/accept/{req['id']}", bob.token).status_code == 200
    r = api.post(f"/friends/block/{bob.id}", alice.token)
    assert r.status_code == 200 and r.json() == {"message": "Пользователь заблокирован."}
    assert _friend_ids(api, alice) == [] and _friend_ids(api, bob) == []
    for a, b in ((alice, bob), (bob, alice)):
        r = _request(api, a, b)
        assert r.status_code == 403 and r.json()["code"] == "blocked"
        assert "unauthorized" not in r.json()["error"].lower()
    # Blocking again is harmless.
    assert api.post(f"/friends/block/{bob.id}", alice.token).status_code == 200
    r = api.get("/friends/blocked", alice.token)
    assert [u["id"] for u in r.json()] == [bob.id]
    assert set(r.json()[0]) == {"id", "username", "profilePicture", "status", "tag"}
    assert api.get("/friends/blocked", bob.token).json() == []

    # Only the blocker lifts the block.
    r = api.delete(f"/friends/block/{alice.id}", bob.token)
    assert r.status_code == 404
    assert _request(api, bob, alice).status_code == 403
    r = api.delete(f"/friends/block/{bob.id}", alice.token)
    assert r.status_code == 200 and r.json() == {"message": "Пользователь разблокирован."}
    assert api.get("/friends/blocked", alice.token).json() == []
    assert api.delete(f"/friends/block/{bob.id}", alice.token).status_code == 404
    assert _request(api, bob, alice).status_code == 201


def test_block_ends_pending_request_and_accept_is_refused(api, alice, bob):
    req = _request(api, alice, bob).json()["request"]
    assert api.post(f"/friends/block/{alice.id}", bob.token).status_code == 200
    assert _requests(api, alice) == {"incoming": [], "outgoing": []}
    assert api.post(f"/friends/accept/{req['id']}", bob.token).status_code == 404


def test_block_rules(api, alice):
    r = api.post(f"/friends/block/{alice.id}", alice.token)
    assert r.status_code == 400 and r.json()["code"] == "self_block"
    assert api.post("/friends/block/2147483647", alice.token).status_code == 404
    assert api.delete("/friends/block/2147483647", alice.token).status_code == 404


def test_friends_need_a_token(api):
    for method, path in (("GET", "/friends"), ("GET", "/friends/requests"), ("GET", "/friends/blocked"),
                         ("POST", "/friends/block/1"), ("DELETE", "/friends/1")):
        assert api.request(method, path).status_code == 401


def test_concurrent_mutual_requests_end_consistent(api):
    for _ in range(5):
        a, b = api.register(), api.register()
        results = {}
        barrier = threading.Barrier(2)

        def send(me, other, barrier=barrier, results=results):
            with httpx.Client(base_url=api.base + "/api", timeout=30) as c:
                barrier.wait()
                results[me.id] = c.post("/friends/request", json={"friendId": other.id},
                                        headers={"Authorization": f"Bearer {me.token}"})

        threads = [threading.Thread(target=send, args=(a, b)), threading.Thread(target=send, args=(b, a))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r.status_code for r in results.values())
        for r in results.values():
            api.check_contract(r)
        # One request is sent and the other accepts it: one accepted friendship, nothing pending.
        assert statuses == [201, 201], [r.text for r in results.values()]
        messages = sorted(r.json()["message"] for r in results.values())
        assert messages == sorted(["Запрос в друзья отправлен.", "Запрос в друзья принят."])
        assert len({r.json()["request"]["id"] for r in results.values()}) == 1
        assert _friend_ids(api, a) == [b.id] and _friend_ids(api, b) == [a.id]
        assert _requests(api, a) == {"incoming": [], "outgoing": []}
        assert _requests(api, b) == {"incoming": [], "outgoing": []}
