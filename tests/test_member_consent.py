"""Who may be put into a server, and when (issue 17 items 3 and 4).

- A ban racing a direct add or an invite accept never leaves the banned user a member: the three
  paths take the server row's lock (models.membership.lock_server).
- A direct add needs the target's consent: a friend of the adder, with an active account, and no
  block either way; strangers (the site's staff included) get an invite instead.
"""
from __future__ import annotations

import threading

from tests.support import Account, Api, create_server, make_friends


def _add(api: Api, adder: Account, sid: int, target: Account, **extra):
    return api.post(f"/serverMembers/{sid}/members", adder.token, json={"userId": target.id, **extra})


def _member_ids(api: Api, token: str, sid: int) -> set[int]:
    r = api.get(f"/serverMembers/{sid}/members", token)
    assert r.status_code == 200, r.text
    return {m["userId"] for m in r.json()}


def _together(*calls):
    """Run the calls at the same moment, each on its own thread and HTTP connection."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, fn):
        barrier.wait()
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# ---------------------------------------------------------------- ban against add and accept

def test_ban_racing_a_direct_add_never_leaves_a_banned_member(api, server):
    """The issue's case: bob is a member; the owner bans him while a moderator adds him again.
    Before the fix, on PostgreSQL, the add's insert waited for the ban's delete and then went in
    (7 of 25 tries ended banned and a member). Now the add either comes first (bob is still a
    member: 400 already_member, then the ban removes him) or waits and sees the ban (403)."""
    owner, mod, bob = api.register(), api.register(), api.register()
    make_friends(api, mod, bob)
    make_friends(api, owner, mod)
    sid = create_server(api, owner)["id"]
    assert _add(api, owner, sid, mod, role="moderator").status_code == 201
    banner, adder = Api(server.base), Api(server.base)
    outcomes: dict[tuple[int, int], int] = {}
    failures = []
    for attempt in range(100):
        r = _add(api, mod, sid, bob)
        assert r.status_code == 201, r.text
        member_id = r.json()["id"]
        ban, add = _together(
            lambda member_id=member_id: banner.post(f"/serverMembers/{sid}/members/{member_id}/ban", owner.token, json={}),
            lambda: adder.post(f"/serverMembers/{sid}/members", mod.token, json={"userId": bob.id}))
        key = (ban.status_code, add.status_code)
        outcomes[key] = outcomes.get(key, 0) + 1
        assert ban.status_code == 200, ban.text
        if bob.id in _member_ids(api, owner.token, sid):
            failures.append(attempt)
            api.delete(f"/serverMembers/{sid}/members/{add.json()['id']}", owner.token)
        else:
            assert add.status_code in (400, 403), add.text
            assert add.json()["code"] == ("already_member" if add.status_code == 400 else "banned"), add.text
            assert api.get(f"/servers/{sid}", bob.token).status_code == 403
        assert api.delete(f"/servers/{sid}/bans/{bob.id}", owner.token).status_code == 200
    assert failures == [], f"banned and still a member in {len(failures)} of 100 tries; outcomes {outcomes}"


def test_ban_racing_an_invite_accept_never_leaves_a_banned_member(api, server):
    owner, bob = api.register(), api.register()
    sid = create_server(api, owner)["id"]
    token = api.post(f"/invite/{sid}/invite", owner.token, json={}).json()["invite"]["token"]
    banner, accepter = Api(server.base), Api(server.base)
    for _ in range(30):
        assert api.post(f"/invite/invite/{token}/accept", bob.token).status_code == 200
        member_id = next(m["id"] for m in api.get(f"/serverMembers/{sid}/members", owner.token).json()
                         if m["userId"] == bob.id)
        ban, accept = _together(
            lambda member_id=member_id: banner.post(f"/serverMembers/{sid}/members/{member_id}/ban", owner.token, json={}),
            lambda: accepter.post(f"/invite/invite/{token}/accept", bob.token))
        assert ban.status_code == 200, ban.text
        # Accepted while still a member (nothing written), or refused as banned.
        assert accept.status_code in (200, 403), accept.text
        if accept.status_code == 403:
            assert accept.json()["code"] == "banned"
        else:
            assert accept.json()["message"] == "Already a member of this server"
        assert bob.id not in _member_ids(api, owner.token, sid)
        assert api.delete(f"/servers/{sid}/bans/{bob.id}", owner.token).status_code == 200


# ---------------------------------------------------------------- consent

def test_direct_add_of_a_stranger_is_refused(api, alice, bob):
    sid = create_server(api, alice)["id"]
    r = _add(api, alice, sid, bob)
    assert r.status_code == 403
    assert r.json()["code"] == "not_friends"
    assert bob.id not in _member_ids(api, alice.token, sid)
    # A pending request is not consent either.
    assert api.post("/friends/request", alice.token, json={"friendId": bob.id}).status_code == 201
    assert _add(api, alice, sid, bob).json()["code"] == "not_friends"
    # The invite is the way in for anyone.
    token = api.post(f"/invite/{sid}/invite", alice.token, json={}).json()["invite"]["token"]
    assert api.post(f"/invite/invite/{token}/accept", bob.token).status_code == 200


def test_direct_add_of_a_friend_works(api, alice, bob):
    sid = create_server(api, alice)["id"]
    make_friends(api, bob, alice)
    r = _add(api, alice, sid, bob)
    assert r.status_code == 201, r.text
    assert r.json()["userId"] == bob.id
    # Adding oneself, or a friend who is already in: 400 as before.
    assert _add(api, alice, sid, alice).json()["code"] == "already_member"
    assert _add(api, alice, sid, bob).json()["code"] == "already_member"


def test_direct_add_refused_when_either_side_blocked(api, alice, bob):
    sid = create_server(api, alice)["id"]
    make_friends(api, alice, bob)
    assert api.post(f"/friends/block/{alice.id}", bob.token).status_code == 200
    r = _add(api, alice, sid, bob)
    assert r.status_code == 403 and r.json()["code"] == "user_blocked", r.text
    # The block's lifted but the friendship it ended is gone: still no direct add.
    assert api.delete(f"/friends/block/{alice.id}", bob.token).status_code == 200
    assert _add(api, alice, sid, bob).json()["code"] == "not_friends"
    make_friends(api, alice, bob)
    # The adder's own block of the target refuses too.
    assert api.post(f"/friends/block/{bob.id}", alice.token).status_code == 200
    assert _add(api, alice, sid, bob).json()["code"] == "user_blocked"
    assert bob.id not in _member_ids(api, alice.token, sid)


def test_direct_add_of_a_deactivated_account_is_refused(api, admin, alice, bob):
    sid = create_server(api, alice)["id"]
    make_friends(api, alice, bob)
    r = api.put(f"/admin/users/{bob.id}", admin.token, json={"isActive": False})
    assert r.status_code == 200, r.text
    r = _add(api, alice, sid, bob)
    assert r.status_code == 403 and r.json()["code"] == "user_inactive", r.text
    assert bob.id not in _member_ids(api, alice.token, sid)
    assert api.put(f"/admin/users/{bob.id}", admin.token, json={"isActive": True}).status_code == 200
    assert _add(api, alice, sid, bob).status_code == 201


def test_site_admin_is_not_pulled_in_by_strangers(api, admin, alice):
    """The site's admin has the same say as anyone: a stranger's server cannot add them; a
    friend's can, as it can add any friend."""
    sid = create_server(api, alice)["id"]
    r = _add(api, alice, sid, admin)
    assert r.status_code == 403 and r.json()["code"] == "not_friends"
    assert sid not in {s["id"] for s in api.get("/servers", admin.token).json()}
    make_friends(api, alice, admin)
    assert _add(api, alice, sid, admin).status_code == 201


def test_direct_add_of_an_unknown_user_is_404(api, alice):
    sid = create_server(api, alice)["id"]
    r = api.post(f"/serverMembers/{sid}/members", alice.token, json={"userId": 999999999})
    assert r.status_code == 404 and r.json()["code"] == "user_not_found"


def test_ban_racing_server_deletion_or_owner_transfer_is_never_a_500(api, server):
    """Lock order: a ban, an owner transfer and a server deletion all take the server row before
    any member row, so none of them deadlocks against another (a deadlock is a 500)."""
    owner, mod, bob = api.register(), api.register(), api.register()
    make_friends(api, owner, mod)
    make_friends(api, owner, bob)
    one, two = Api(server.base), Api(server.base)
    for attempt in range(20):
        sid = create_server(api, owner)["id"]
        assert _add(api, owner, sid, mod, role="moderator").status_code == 201
        member_id = _add(api, owner, sid, bob).json()["id"]
        ban_path = f"/serverMembers/{sid}/members/{member_id}/ban"
        if attempt % 2:
            ban, other = _together(lambda p=ban_path: one.post(p, mod.token, json={}),
                                   lambda s=sid: two.delete(f"/servers/{s}", owner.token))
            assert other.status_code == 204, other.text
            assert ban.status_code in (200, 403, 404), ban.text
        else:
            # Owner transfer to bob racing his ban: he ends up banned or owner, never both.
            ban, other = _together(lambda p=ban_path: one.post(p, mod.token, json={}),
                                   lambda s=sid: two.post(f"/serverMembers/{s}/owner", owner.token,
                                                          json={"userId": bob.id}))
            assert (ban.status_code == 200) != (other.status_code == 200), (ban.text, other.text)
