"""Invites through the HTTP API, including the race of many accepts against maxUses."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from tests.support import Api, create_server


def _invite(api, owner, sid, **body):
    r = api.post(f"/invite/{sid}/invite", owner.token, json=body)
    assert r.status_code == 201, r.text
    return r.json()["invite"]


def test_create_preview_accept(api, alice, bob):
    server = create_server(api, alice)
    invite = _invite(api, alice, server["id"], maxUses=10, expiresAt="2099-12-31T23:59:59.000Z")
    assert invite["createdBy"] == alice.id and invite["uses"] == 0 and invite["maxUses"] == 10
    assert len(invite["token"]) == 36
    r = api.get(f"/invite/invite/{invite['token']}")  # public: no token
    assert r.status_code == 200
    info = r.json()
    assert info["server"]["name"] == server["name"] and info["invite"]["id"] == invite["id"]
    assert info["serverId"] == server["id"] and info["maxUses"] == 10 and info["uses"] == 0
    assert info["expiresAt"].startswith("2099-12-31T23:59:59")
    r = api.post(f"/invite/invite/{invite['token']}/accept", bob.token)
    assert r.status_code == 200 and r.json() == {"message": "User added to server", "serverId": server["id"]}
    assert api.get(f"/servers/{server['id']}", bob.token).status_code == 200
    member = [m for m in api.get(f"/servers/{server['id']}", bob.token).json()["members"] if m["userId"] == bob.id]
    assert member[0]["role"] == "member"
    # Accepting again changes nothing and uses nothing.
    r = api.post(f"/invite/invite/{invite['token']}/accept", bob.token)
    assert r.status_code == 200
    assert api.get(f"/invite/invite/{invite['token']}").json()["uses"] == 1


def test_empty_json_body_is_accepted(api, alice, bob):
    server = create_server(api, alice)
    r = api.post(f"/invite/{server['id']}/invite", alice.token, content=b"",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    token = r.json()["invite"]["token"]
    assert r.json()["invite"]["maxUses"] is None and r.json()["invite"]["expiresAt"] is None
    r = api.post(f"/invite/invite/{token}/accept", bob.token, content=b"",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def test_unknown_expired_and_used_up(api, alice, bob):
    server = create_server(api, alice)
    assert api.get("/invite/invite/no-such-token").status_code == 404
    assert api.post("/invite/invite/no-such-token/accept", bob.token).status_code == 404
    past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    assert api.post(f"/invite/{server['id']}/invite", alice.token, json={"expiresAt": past}).status_code == 400
    soon = (datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat()
    expiring = _invite(api, alice, server["id"], expiresAt=soon)
    import time

    time.sleep(1.5)
    r = api.get(f"/invite/invite/{expiring['token']}")
    assert r.status_code == 400 and "expired" in r.json()["error"]
    r = api.post(f"/invite/invite/{expiring['token']}/accept", bob.token)
    assert r.status_code == 400 and "expired" in r.json()["error"]
    single = _invite(api, alice, server["id"], maxUses=1)
    assert api.post(f"/invite/invite/{single['token']}/accept", bob.token).status_code == 200
    carol = api.register()
    r = api.post(f"/invite/invite/{single['token']}/accept", carol.token)
    assert r.status_code == 400 and "maximum" in r.json()["error"]


def test_invite_permissions_and_scoping(api, alice, bob):
    server = create_server(api, alice)
    other = create_server(api, bob)
    # Not a member: 403; unknown server: 404.
    assert api.post(f"/invite/{server['id']}/invite", bob.token, json={}).status_code == 403
    assert api.get(f"/invite/{server['id']}/invites", bob.token).status_code == 403
    assert api.post("/invite/999999999/invite", bob.token, json={}).status_code == 404
    invite = _invite(api, alice, server["id"])
    # A plain member has no CREATE_INSTANT_INVITE, and cannot delete invites.
    assert api.post(f"/invite/invite/{invite['token']}/accept", bob.token).status_code == 200
    assert api.post(f"/invite/{server['id']}/invite", bob.token, json={}).status_code == 403
    assert api.delete(f"/invite/{invite['id']}", bob.token).status_code == 403
    # Bob owns another server: that gives nothing over this server's invites.
    assert api.get(f"/invite/{other['id']}/invites", bob.token).status_code == 200
    listed = api.get(f"/invite/{server['id']}/invites", alice.token).json()
    assert [i["id"] for i in listed] == [invite["id"]]
    assert api.delete(f"/invite/{invite['id']}", alice.token).status_code == 204
    assert api.delete(f"/invite/{invite['id']}", alice.token).status_code == 404
    assert api.get(f"/invite/invite/{invite['token']}").status_code == 404


def test_thirty_parallel_accepts_against_max_uses_five(api, server, alice):
    srv = create_server(api, alice)
    invite = _invite(api, alice, srv["id"], maxUses=5)
    accounts = [api.register() for _ in range(30)]

    def accept(acct):
        return Api(server.base).post(f"/invite/invite/{invite['token']}/accept", acct.token).status_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(accept, accounts))
    assert sorted(statuses).count(200) == 5, statuses
    assert all(s in (200, 400) for s in statuses), statuses
    info = api.get(f"/invite/invite/{invite['token']}")
    assert info.status_code == 400  # used up
    members = api.get(f"/servers/{srv['id']}", alice.token).json()["members"]
    assert len(members) == 6 and len({m["userId"] for m in members}) == 6
    listed = api.get(f"/invite/{srv['id']}/invites", alice.token).json()
    assert listed[0]["uses"] == 5


def test_same_user_accepting_twice_at_once_gets_one_membership(api, server, alice):
    srv = create_server(api, alice)
    invite = _invite(api, alice, srv["id"], maxUses=10)
    bob = api.register()

    def accept(_):
        return Api(server.base).post(f"/invite/invite/{invite['token']}/accept", bob.token).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(accept, range(8)))
    assert statuses == [200] * 8
    members = [m for m in api.get(f"/servers/{srv['id']}", alice.token).json()["members"] if m["userId"] == bob.id]
    assert len(members) == 1
    assert api.get(f"/invite/{srv['id']}/invites", alice.token).json()[0]["uses"] == 1


def test_body_less_posts_without_content_type(api, alice, bob):
    """Clients send invite create/accept and ban with no body and no Content-Type at all."""
    import httpx

    server = create_server(api, alice)
    r = httpx.post(f"{api.base}/api/invite/{server['id']}/invite", headers={"Authorization": f"Bearer {alice.token}"})
    assert r.status_code == 201, r.text
    Api.check_contract(r)
    token = r.json()["invite"]["token"]
    r = httpx.post(f"{api.base}/api/invite/invite/{token}/accept", headers={"Authorization": f"Bearer {bob.token}"})
    assert r.status_code == 200, r.text
    members = api.get(f"/serverMembers/{server['id']}/members", alice.token).json()
    bob_member = next(m for m in members if m["userId"] == bob.id)
    r = httpx.post(f"{api.base}/api/serverMembers/{server['id']}/members/{bob_member['id']}/ban",
                   headers={"Authorization": f"Bearer {alice.token}"})
    assert r.status_code == 200, r.text
    # A required body still has to be there.
    r = httpx.post(f"{api.base}/api/servers", headers={"Authorization": f"Bearer {alice.token}"})
    assert r.status_code == 400, r.text
