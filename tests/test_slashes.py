"""Trailing slashes (issue 18 item 5): a path the seed writes with one (`/api/users/`) answers
without it, and every other path answers with one, with the same status and body, never a
redirect (core/slashes.py)."""
from __future__ import annotations

from tests.support import create_server, unique


def _same(a, b) -> None:
    assert a.status_code == b.status_code, (a.request.url, a.status_code, b.request.url, b.status_code, b.text)
    assert a.json() == b.json(), (a.request.url, a.text, b.text)


def test_users_profile_answers_without_its_slash(api, alice):
    _same(api.get("/users/", alice.token), api.get("/users", alice.token))
    name = unique("slash")
    r = api.put("/users", alice.token, json={"bio": "no slash", "name": name})
    assert r.status_code == 200 and r.json()["bio"] == "no slash" and r.json()["username"] == name
    _same(api.get("/users/", alice.token), api.get("/users", alice.token))
    # The 401 and the 400 are the written path's too.
    _same(api.get("/users/"), api.get("/users"))
    _same(api.put("/users/", alice.token, json={"profilePicture": "javascript:x"}),
          api.put("/users", alice.token, json={"profilePicture": "javascript:x"}))
    acct = api.register()
    r = api.delete("/users", acct.token)
    assert r.status_code == 200 and r.json() == {"message": "User deleted successfully"}


def test_paths_without_a_slash_answer_with_one(api, alice, bob):
    server = create_server(api, alice)
    sid = server["id"]
    for path in ("/servers", f"/servers/{sid}", f"/servers/{sid}/channels", f"/serverMembers/{sid}/members",
                 f"/serverMembers/{sid}/members/me", f"/servers/{sid}/roles", "/auth/me", "/auth/sessions",
                 "/friends", "/friends/requests", f"/users/{bob.id}", "/info"):
        _same(api.get(path, alice.token), api.get(path + "/", alice.token))
    # Refusals alike: a stranger's 403, a missing server's 404, no token's 401.
    _same(api.get(f"/servers/{sid}", bob.token), api.get(f"/servers/{sid}/", bob.token))
    _same(api.get("/servers/999999999", alice.token), api.get("/servers/999999999/", alice.token))
    _same(api.get("/servers"), api.get("/servers/"))
    # Writes too (no redirect a fetch() would turn into a GET or drop the body of).
    r = api.post("/servers/", alice.token, json={"name": unique("sv"), "description": "d"})
    assert r.status_code == 201 and r.json()["name"].startswith("sv")
    r = api.post(f"/servers/{sid}/channels/", alice.token, json={"name": unique("ch"), "type": "text"})
    assert r.status_code == 201
    r = api.delete(f"/servers/{r.json()['serverId']}/channels/{r.json()['id']}/", alice.token)
    assert r.status_code == 204


def test_no_redirects_and_unknown_paths_stay_404(api, alice):
    for path in ("/users", "/servers/", "/auth/me/"):
        r = api.client.get(path, headers={"Authorization": f"Bearer {alice.token}"}, follow_redirects=False)
        assert r.status_code == 200, (path, r.status_code, r.headers.get("location"))
    for path in ("/nothing-here", "/nothing-here/", "/users/x/y/"):
        r = api.client.get(path, headers={"Authorization": f"Bearer {alice.token}"}, follow_redirects=False)
        assert r.status_code in (400, 404), (path, r.status_code)
        assert "location" not in r.headers
