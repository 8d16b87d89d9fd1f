"""Members, bans, voice state and owner transfer through the HTTP API."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support import Api, create_server, join_server, make_friends

MUTE_MEMBERS = 1 << 22


def _setup(api, owner, *others):
    server = create_server(api, owner)
    join_server(api, owner, server["id"], *others)
    return server["id"]


def _member(api, token, sid, user_id):
    for m in api.get(f"/serverMembers/{sid}/members", token).json():
        if m["userId"] == user_id:
            return m
    return None


def _set_role(api, owner, sid, acct, role):
    mid = _member(api, owner.token, sid, acct.id)["id"]
    r = api.put(f"/serverMembers/{sid}/members/{mid}", owner.token, json={"role": role})
    assert r.status_code == 200, r.text
    return r.json()


def test_list_and_me(api, alice, bob):
    sid = _setup(api, alice, bob)
    members = api.get(f"/serverMembers/{sid}/members", bob.token).json()
    assert {m["userId"] for m in members} == {alice.id, bob.id}
    me = api.get(f"/serverMembers/{sid}/members/me", bob.token).json()
    assert me["userId"] == bob.id and me["role"] == "member"
    assert me["totalPermissions"] == str(3214400 | (1 << 26))
    assert any(r["isEveryone"] for r in me["roles"])
    owner_me = api.get(f"/serverMembers/{sid}/members/me", alice.token).json()
    assert owner_me["totalPermissions"] == str(sum(1 << b for b in range(31)) | (1 << 40))  # every bit
    outsider = api.register()
    assert api.get(f"/serverMembers/{sid}/members", outsider.token).status_code == 403
    assert api.get(f"/serverMembers/{sid}/members/me", outsider.token).status_code == 403


def test_coarse_roles_follow_preset_roles(api, alice, bob):
    sid = _setup(api, alice, bob)
    m = _set_role(api, alice, sid, bob, "moderator")
    roles = {r["id"]: r["name"] for r in api.get(f"/servers/{sid}", alice.token).json()["roles"]}
    assert m["role"] == "moderator" and [roles[i] for i in m["roleIds"]] == ["Moderator"]
    me = api.get(f"/serverMembers/{sid}/members/me", bob.token).json()
    assert int(me["totalPermissions"]) & (1 << 1)  # KICK_MEMBERS
    # Replacing roles recomputes the coarse role from the highest preset role held.
    by_name = {v: k for k, v in roles.items()}
    r = api.put(f"/serverMembers/{sid}/members/{m['id']}/roles", alice.token,
                json={"roleIds": [by_name["Member"], by_name["Admin"]]})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    r = api.put(f"/serverMembers/{sid}/members/{m['id']}/roles", alice.token, json={"roleIds": []})
    assert r.status_code == 200 and r.json()["role"] == "member" and r.json()["roleIds"] == []
    r = api.put(f"/serverMembers/{sid}/members/{m['id']}/roles", alice.token,
                json={"roleIds": [by_name["@everyone"]]})
    assert r.status_code == 400


def test_hierarchy_on_members(api, alice, bob):
    carol, dave = api.register(), api.register()
    sid = _setup(api, alice, bob, carol, dave)
    _set_role(api, alice, sid, bob, "moderator")
    _set_role(api, alice, sid, carol, "admin")
    bob_m, carol_m, dave_m = (_member(api, alice.token, sid, a.id) for a in (bob, carol, dave))
    alice_m = _member(api, alice.token, sid, alice.id)
    # A moderator cannot kick or ban an admin, nor re-role anyone (no MANAGE_ROLES).
    assert api.delete(f"/serverMembers/{sid}/members/{carol_m['id']}", bob.token).status_code == 403
    assert api.post(f"/serverMembers/{sid}/members/{carol_m['id']}/ban", bob.token, json={}).status_code == 403
    assert api.put(f"/serverMembers/{sid}/members/{dave_m['id']}", bob.token, json={"role": "admin"}).status_code == 403
    # Nobody promotes themselves.
    assert api.put(f"/serverMembers/{sid}/members/{bob_m['id']}", bob.token, json={"role": "admin"}).status_code == 403
    assert api.put(f"/serverMembers/{sid}/members/{carol_m['id']}", carol.token, json={"role": "admin"}).status_code == 403
    # An admin cannot make someone admin (the Admin role is not below their own) or touch the owner.
    assert api.put(f"/serverMembers/{sid}/members/{dave_m['id']}", carol.token, json={"role": "admin"}).status_code == 403
    r = api.put(f"/serverMembers/{sid}/members/{dave_m['id']}", carol.token, json={"role": "moderator"})
    assert r.status_code == 200
    assert api.post(f"/serverMembers/{sid}/members/{alice_m['id']}/ban", carol.token, json={}).status_code == 403
    assert api.delete(f"/serverMembers/{sid}/members/{alice_m['id']}", carol.token).status_code == 403
    # Equal rank: a moderator cannot kick another moderator.
    assert api.delete(f"/serverMembers/{sid}/members/{dave_m['id']}", bob.token).status_code == 403
    # A plain member cannot kick anyone.
    eve = api.register()
    join_server(api, alice, sid, eve)
    assert api.delete(f"/serverMembers/{sid}/members/{bob_m['id']}", eve.token).status_code == 403
    # A moderator kicks a member.
    eve_m = _member(api, alice.token, sid, eve.id)
    assert api.delete(f"/serverMembers/{sid}/members/{eve_m['id']}", bob.token).status_code == 204
    assert api.get(f"/servers/{sid}", eve.token).status_code == 403


def test_leave_and_owner_cannot_leave(api, alice, bob):
    sid = _setup(api, alice, bob)
    alice_m = _member(api, alice.token, sid, alice.id)
    bob_m = _member(api, alice.token, sid, bob.id)
    assert api.delete(f"/serverMembers/{sid}/members/{alice_m['id']}", alice.token).status_code == 400
    assert api.delete(f"/serverMembers/{sid}/members/{bob_m['id']}", bob.token).status_code == 204
    assert api.get(f"/servers/{sid}", bob.token).status_code == 403


def test_ban_list_unban(api, alice, bob):
    sid = _setup(api, alice, bob)
    bob_m = _member(api, alice.token, sid, bob.id)
    r = api.post(f"/serverMembers/{sid}/members/{bob_m['id']}/ban", alice.token, json={"reason": "spam"})
    assert r.status_code == 200
    ban = r.json()
    assert ban["userId"] == bob.id and ban["reason"] == "spam" and ban["bannedBy"] == alice.id
    assert api.get(f"/servers/{sid}", bob.token).status_code == 403
    bans = api.get(f"/servers/{sid}/bans", alice.token).json()
    assert [b["userId"] for b in bans] == [bob.id]
    assert api.get(f"/servers/{sid}/bans", bob.token).status_code == 403
    # A banned user cannot rejoin by invite or be added directly.
    inv = api.post(f"/invite/{sid}/invite", alice.token, json={}).json()["invite"]["token"]
    r = api.post(f"/invite/invite/{inv}/accept", bob.token)
    assert r.status_code == 403 and r.json()["code"] == "banned"
    make_friends(api, alice, bob)
    r = api.post(f"/serverMembers/{sid}/members", alice.token, json={"userId": bob.id})
    assert r.status_code == 403 and r.json()["code"] == "banned"
    assert api.delete(f"/servers/{sid}/bans/{bob.id}", alice.token).status_code == 200
    assert api.delete(f"/servers/{sid}/bans/{bob.id}", alice.token).status_code == 404
    assert api.post(f"/invite/invite/{inv}/accept", bob.token).status_code == 200


def test_ban_with_empty_or_null_reason(api, alice, bob):
    carol = api.register()
    sid = _setup(api, alice, bob, carol)
    bob_m = _member(api, alice.token, sid, bob.id)
    carol_m = _member(api, alice.token, sid, carol.id)
    r = api.post(f"/serverMembers/{sid}/members/{bob_m['id']}/ban", alice.token, json={"reason": ""})
    assert r.status_code == 200 and r.json()["reason"] is None
    r = api.post(f"/serverMembers/{sid}/members/{carol_m['id']}/ban", alice.token, content=b"",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 200


def test_add_member_directly(api, alice, bob):
    """Direct adds need a friendship with the one added (tests/test_member_consent.py)."""
    sid = create_server(api, alice)["id"]
    make_friends(api, alice, bob)
    r = api.post(f"/serverMembers/{sid}/members", alice.token, json={"userId": bob.id, "role": "moderator"})
    assert r.status_code == 201 and r.json()["role"] == "moderator"
    assert api.post(f"/serverMembers/{sid}/members", alice.token, json={"userId": bob.id}).status_code == 400
    assert api.post(f"/serverMembers/{sid}/members", alice.token, json={"userId": 999999999}).status_code == 404
    carol, dave = api.register(), api.register()
    make_friends(api, bob, carol)
    make_friends(api, carol, dave)
    # The moderator may add (CREATE_INSTANT_INVITE) but not grant a role (no MANAGE_ROLES).
    assert api.post(f"/serverMembers/{sid}/members", bob.token, json={"userId": carol.id, "role": "admin"}).status_code == 403
    assert api.post(f"/serverMembers/{sid}/members", bob.token, json={"userId": carol.id}).status_code == 201
    # A plain member may not add anyone.
    assert api.post(f"/serverMembers/{sid}/members", carol.token, json={"userId": dave.id}).status_code == 403


def test_voice_state(api, alice, bob):
    carol = api.register()
    sid = _setup(api, alice, bob, carol)
    _set_role(api, alice, sid, bob, "moderator")
    carol_m = _member(api, alice.token, sid, carol.id)
    r = api.patch(f"/serverMembers/{sid}/members/{carol_m['id']}/voice", bob.token, json={"isMuted": True})
    assert r.status_code == 200 and r.json()["isMuted"] is True and r.json()["isDeafened"] is False
    bob_m = _member(api, alice.token, sid, bob.id)
    assert api.patch(f"/serverMembers/{sid}/members/{bob_m['id']}/voice", carol.token,
                     json={"isMuted": True}).status_code == 403


def test_owner_transfer(api, alice, bob):
    carol = api.register()
    sid = _setup(api, alice, bob)
    assert api.post(f"/serverMembers/{sid}/owner", bob.token, json={"userId": bob.id}).status_code == 403
    assert api.post(f"/serverMembers/{sid}/owner", alice.token, json={"userId": carol.id}).status_code == 400
    assert api.post(f"/serverMembers/{sid}/owner", alice.token, json={"userId": alice.id}).status_code == 400
    r = api.post(f"/serverMembers/{sid}/owner", alice.token, json={"userId": bob.id})
    assert r.status_code == 200 and r.json()["ownerId"] == bob.id
    roles = {m["userId"]: m["role"] for m in r.json()["members"]}
    assert roles == {alice.id: "admin", bob.id: "owner"}
    # The old owner is now an ordinary admin: cannot transfer again, cannot kick the new owner.
    assert api.post(f"/serverMembers/{sid}/owner", alice.token, json={"userId": alice.id}).status_code == 403
    bob_m = _member(api, alice.token, sid, bob.id)
    assert api.delete(f"/serverMembers/{sid}/members/{bob_m['id']}", alice.token).status_code == 403


def test_member_of_another_server_is_404(api, alice, bob):
    sid_a = _setup(api, alice, bob)
    sid_b = create_server(api, alice)["id"]
    bob_m = _member(api, alice.token, sid_a, bob.id)
    paths = [("put", f"/serverMembers/{sid_b}/members/{bob_m['id']}", {"role": "moderator"}),
             ("delete", f"/serverMembers/{sid_b}/members/{bob_m['id']}", None),
             ("put", f"/serverMembers/{sid_b}/members/{bob_m['id']}/roles", {"roleIds": []}),
             ("post", f"/serverMembers/{sid_b}/members/{bob_m['id']}/ban", {}),
             ("patch", f"/serverMembers/{sid_b}/members/{bob_m['id']}/voice", {"isMuted": True})]
    for method, path, body in paths:
        kw = {"json": body} if body is not None else {}
        assert getattr(api, method)(path, alice.token, **kw).status_code == 404, path
    assert _member(api, alice.token, sid_a, bob.id) is not None
    # A role of another server cannot be given through this one.
    foreign_role = api.get(f"/servers/{sid_b}", alice.token).json()["roles"][0]["id"]
    r = api.put(f"/serverMembers/{sid_a}/members/{bob_m['id']}/roles", alice.token, json={"roleIds": [foreign_role]})
    assert r.status_code == 400
    # Unbanning in another server does not touch this server's bans.
    api.post(f"/serverMembers/{sid_a}/members/{bob_m['id']}/ban", alice.token, json={})
    assert api.delete(f"/servers/{sid_b}/bans/{bob.id}", alice.token).status_code == 404
    assert [b["userId"] for b in api.get(f"/servers/{sid_a}/bans", alice.token).json()] == [bob.id]


def test_nobody_bans_themselves(api, alice, bob):
    sid = _setup(api, alice, bob)
    _set_role(api, alice, sid, bob, "moderator")
    for acct in (alice, bob):
        m = _member(api, alice.token, sid, acct.id)
        r = api.post(f"/serverMembers/{sid}/members/{m['id']}/ban", acct.token, json={})
        assert r.status_code == 400 and r.json()["code"] == "cannot_ban_self"
    assert api.get(f"/servers/{sid}/bans", alice.token).json() == []


def test_voice_needs_the_matching_bit(api, alice, bob):
    carol = api.register()
    sid = _setup(api, alice, bob, carol)
    r = api.post(f"/servers/{sid}/roles", alice.token,
                 json={"name": "Muter", "permissions": str(MUTE_MEMBERS), "position": 2})
    assert r.status_code == 201, r.text
    bob_m, carol_m = (_member(api, alice.token, sid, a.id) for a in (bob, carol))
    member_role = _member(api, alice.token, sid, bob.id)["roleIds"]
    r = api.put(f"/serverMembers/{sid}/members/{bob_m['id']}/roles", alice.token,
                json={"roleIds": member_role + [r.json()["id"]]})
    assert r.status_code == 200, r.text
    path = f"/serverMembers/{sid}/members/{carol_m['id']}/voice"
    r = api.patch(path, bob.token, json={"isDeafened": True})
    assert r.status_code == 403 and r.json()["code"] == "missing_permission"
    assert api.patch(path, bob.token, json={"isMuted": True, "isDeafened": True}).status_code == 403
    r = api.patch(path, bob.token, json={"isMuted": True})
    assert r.status_code == 200 and (r.json()["isMuted"], r.json()["isDeafened"]) == (True, False)
    # A body that changes nothing is refused, not recorded as a moderation action.
    r = api.patch(path, alice.token, json={})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"


def test_moderation_actions_are_audited(api, admin, alice, bob):
    carol = api.register()
    sid = _setup(api, alice, bob, carol)
    bob_m, carol_m = (_member(api, alice.token, sid, a.id) for a in (bob, carol))
    _set_role(api, alice, sid, bob, "moderator")
    assert api.put(f"/serverMembers/{sid}/members/{bob_m['id']}/roles", alice.token,
                   json={"roleIds": bob_m["roleIds"]}).status_code == 200
    assert api.patch(f"/serverMembers/{sid}/members/{carol_m['id']}/voice", alice.token,
                     json={"isMuted": True}).status_code == 200
    assert api.post(f"/serverMembers/{sid}/members/{carol_m['id']}/ban", alice.token,
                    json={"reason": "spam"}).status_code == 200
    assert api.delete(f"/servers/{sid}/bans/{carol.id}", alice.token).status_code == 200
    assert api.delete(f"/serverMembers/{sid}/members/{bob_m['id']}", alice.token).status_code == 204
    join_server(api, alice, sid, bob)
    assert api.post(f"/serverMembers/{sid}/owner", alice.token, json={"userId": bob.id}).status_code == 200
    r = api.get("/admin/logs", admin.token, params={"actorId": alice.id, "limit": 100})
    assert r.status_code == 200
    entries = [e for e in r.json()["entries"] if e["serverId"] == sid]
    assert sorted(e["action"] for e in entries) == sorted(
        ["member.role", "member.roles", "member.voice", "member.ban", "member.unban", "member.kick",
         "server.owner_transfer"])
    ban = next(e for e in entries if e["action"] == "member.ban")
    assert ban["targetId"] == carol.id and ban["details"] == {"reason": "spam"}


def _parallel(server, calls):
    """Each call in its own thread and client; a 500 fails the test (tests.support.Api)."""
    def one(call):
        method, path, token, kw = call
        return getattr(Api(server.base), method)(path, token, **kw).status_code

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(one, calls))


def test_concurrent_actions_on_one_member(api, server, alice):
    """Kicks, bans, mutes and role changes of one member at once: each either lands before the
    removal or answers 404 after it; none writes to a row that is gone (a 500 on PostgreSQL)."""
    for _ in range(3):
        carol = api.register()
        sid = _setup(api, alice, carol)
        base = f"/serverMembers/{sid}/members/{_member(api, alice.token, sid, carol.id)['id']}"
        calls = ([("delete", base, alice.token, {})] * 2
                 + [("post", f"{base}/ban", alice.token, {"json": {}})] * 2
                 + [("patch", f"{base}/voice", alice.token, {"json": {"isMuted": True}})] * 2
                 + [("put", base, alice.token, {"json": {"role": "moderator"}})] * 2
                 + [("put", f"{base}/roles", alice.token, {"json": {"roleIds": []}})] * 2)
        statuses = _parallel(server, calls)
        removals, others = statuses[:4], statuses[4:]
        assert sorted(removals) in ([200, 404, 404, 404], [204, 404, 404, 404]), statuses
        assert all(st in (200, 404) for st in others), statuses
        assert _member(api, alice.token, sid, carol.id) is None
        assert len(api.get(f"/servers/{sid}/bans", alice.token).json()) == removals.count(200)


def test_leaving_while_being_made_owner(api, server, alice):
    """The owner is always a member: a leave racing an owner transfer to the leaver ends with
    exactly one of them done."""
    for _ in range(4):
        carol = api.register()
        sid = _setup(api, alice, carol)
        carol_m = _member(api, alice.token, sid, carol.id)
        leave, transfer = _parallel(server, [
            ("delete", f"/serverMembers/{sid}/members/{carol_m['id']}", carol.token, {}),
            ("post", f"/serverMembers/{sid}/owner", alice.token, {"json": {"userId": carol.id}})])
        assert (leave, transfer) in ((204, 400), (400, 200)), (leave, transfer)
        owner = alice if transfer == 400 else carol
        detail = api.get(f"/servers/{sid}", owner.token)
        assert detail.status_code == 200 and detail.json()["ownerId"] == owner.id
        assert owner.id in {m["userId"] for m in detail.json()["members"]}


def test_member_entries_carry_roles_highest_first_and_created_at(api, alice, bob):
    """Issue 18 item 1: the desktop client draws badges from `roles` and ticks the roles dialog
    from them, and sorts by `createdAt`; every member entry (list, members/me, a server's
    members, a member route's answer) carries both, beside roleIds and joinedAt."""
    sid = _setup(api, alice, bob)
    r = api.post(f"/servers/{sid}/roles", alice.token, json={"name": "Helpers", "color": "#123456"})
    assert r.status_code == 201, r.text
    custom = r.json()
    roles = {ro["name"]: ro for ro in api.get(f"/servers/{sid}/roles", alice.token).json()}
    moderator = roles["Moderator"]
    mid = _member(api, alice.token, sid, bob.id)["id"]
    r = api.put(f"/serverMembers/{sid}/members/{mid}/roles", alice.token,
                json={"roleIds": [custom["id"], moderator["id"]]})
    assert r.status_code == 200, r.text

    def badge(role):
        return {k: role[k] for k in ("id", "name", "color", "permissions", "position")}

    expected = sorted([badge(custom), badge(moderator)], key=lambda b: (-b["position"], b["id"]))
    assert [b["position"] for b in expected] == sorted((b["position"] for b in expected), reverse=True)
    answered = r.json()
    assert answered["roles"] == expected and answered["roleIds"] == sorted([custom["id"], moderator["id"]])

    listed = _member(api, bob.token, sid, bob.id)
    assert listed["roles"] == expected
    assert listed["createdAt"] == listed["joinedAt"]
    owner_entry = _member(api, bob.token, sid, alice.id)
    assert [b["name"] for b in owner_entry["roles"]] == ["Owner"]

    server_entry = next(m for m in api.get(f"/servers/{sid}", bob.token).json()["members"] if m["userId"] == bob.id)
    assert server_entry["roles"] == expected and server_entry["createdAt"] == listed["joinedAt"]
    listed_servers = api.get("/servers", bob.token).json()
    from_list = next(m for s in listed_servers if s["id"] == sid for m in s["members"] if m["userId"] == bob.id)
    assert from_list["roles"] == expected

    me = api.get(f"/serverMembers/{sid}/members/me", bob.token).json()
    assert me["createdAt"] == me["joinedAt"] == listed["joinedAt"]
    assert [ro["id"] for ro in me["roles"] if not ro["isEveryone"]] == [b["id"] for b in expected]
    positions = [ro["position"] for ro in me["roles"]]
    assert positions == sorted(positions, reverse=True)

    # The coarse-role route answers the same shape; a member with no roles has an empty list.
    r = api.put(f"/serverMembers/{sid}/members/{mid}/roles", alice.token, json={"roleIds": []})
    assert r.status_code == 200 and r.json()["roles"] == [] and r.json()["roleIds"] == []
    assert _member(api, alice.token, sid, bob.id)["roles"] == []
    r = api.put(f"/serverMembers/{sid}/members/{mid}", alice.token, json={"role": "moderator"})
    assert r.status_code == 200 and r.json()["roles"] == [badge(moderator)]
