"""Servers and channels through the HTTP API."""
from __future__ import annotations

from tests.support import create_channel, create_server, unique


def test_seed_create_server_and_channel_example(api, alice):
    """The seed's "Создание сервера и канала" example, as written."""
    r = api.post("/servers", alice.token, json={"name": "My Server", "description": "Server description",
                                                "icon": "https://example.com/icon.png"})
    assert r.status_code == 201
    server = r.json()
    assert server["name"] == "My Server" and server["ownerId"] == alice.id
    assert server["icon"] == "https://example.com/icon.png"
    r = api.post(f"/servers/{server['id']}/channels", alice.token, json={"name": "general", "type": "text"})
    assert r.status_code == 201
    channel = r.json()
    assert channel["name"] == "general" and channel["type"] == "text" and channel["serverId"] == server["id"]


def test_new_server_has_default_roles_and_owner_membership(api, alice):
    server = create_server(api, alice)
    roles = {r["name"]: r for r in server["roles"]}
    assert set(roles) == {"@everyone", "Member", "Moderator", "Admin", "Owner"}
    assert roles["@everyone"]["isEveryone"] and roles["@everyone"]["permissions"] == "3214400"
    assert [r["position"] for r in server["roles"]] == [4, 3, 2, 1, 0]
    (member,) = server["members"]
    assert member["userId"] == alice.id and member["role"] == "owner"
    assert member["roleIds"] == [roles["Owner"]["id"]]


def test_list_shows_only_my_servers(api, alice, bob):
    mine = create_server(api, alice)
    theirs = create_server(api, bob)
    ids = [s["id"] for s in api.get("/servers", alice.token).json()]
    assert mine["id"] in ids and theirs["id"] not in ids


def test_non_member_gets_403_and_unknown_server_404(api, alice, bob):
    server = create_server(api, alice)
    r = api.get(f"/servers/{server['id']}", bob.token)
    assert r.status_code == 403
    assert "unauthorized" not in r.json()["error"].lower()
    assert api.get("/servers/999999999", bob.token).status_code == 404
    assert api.put(f"/servers/{server['id']}", bob.token, json={"name": "pwned"}).status_code == 403
    assert api.delete(f"/servers/{server['id']}", bob.token).status_code == 403
    assert api.get(f"/servers/{server['id']}/channels", bob.token).status_code == 403
    assert api.post(f"/servers/{server['id']}/channels", bob.token, json={"name": "x"}).status_code == 403
    assert api.get(f"/servers/{server['id']}", alice.token).json()["name"] == server["name"]


def test_update_and_delete_by_owner(api, alice):
    server = create_server(api, alice)
    name = unique("renamed")
    r = api.put(f"/servers/{server['id']}", alice.token, json={"name": name, "icon": ""})
    assert r.status_code == 200 and r.json()["name"] == name and r.json()["icon"] is None
    channel = create_channel(api, alice, server["id"])
    assert api.delete(f"/servers/{server['id']}", alice.token).status_code == 204
    assert api.get(f"/servers/{server['id']}", alice.token).status_code == 404
    assert api.get(f"/servers/{server['id']}/channels/{channel['id']}", alice.token).status_code == 404


def test_server_validation(api, alice):
    assert api.post("/servers", alice.token, json={}).status_code == 400
    assert api.post("/servers", alice.token, json={"name": ""}).status_code == 400
    assert api.post("/servers", alice.token, json={"name": "x" * 101}).status_code == 400
    assert api.post("/servers", alice.token, json={"name": "ok", "icon": "ftp://x"}).status_code == 400
    assert api.post("/servers", json={"name": "ok"}).status_code == 401


def test_channels_crud_and_types(api, alice):
    server = create_server(api, alice)
    sid = server["id"]
    text = create_channel(api, alice, sid)
    voice = create_channel(api, alice, sid, type="voice")
    assert voice["type"] == "voice"
    assert api.post(f"/servers/{sid}/channels", alice.token, json={"name": "x", "type": "video"}).status_code == 400
    listed = api.get(f"/servers/{sid}/channels", alice.token).json()
    assert [c["id"] for c in listed] == [text["id"], voice["id"]]
    r = api.put(f"/servers/{sid}/channels/{text['id']}", alice.token, json={"name": "renamed", "description": "topic"})
    assert r.status_code == 200 and r.json()["name"] == "renamed" and r.json()["description"] == "topic"
    assert api.get(f"/servers/{sid}/channels/{text['id']}", alice.token).json()["name"] == "renamed"
    assert api.delete(f"/servers/{sid}/channels/{text['id']}", alice.token).status_code == 204
    assert api.get(f"/servers/{sid}/channels/{text['id']}", alice.token).status_code == 404


def test_channel_of_another_server_is_404(api, alice):
    a = create_server(api, alice)
    b = create_server(api, alice)
    ch = create_channel(api, alice, b["id"])
    for method in ("get", "put", "delete"):
        kw = {"json": {"name": "x"}} if method == "put" else {}
        r = getattr(api, method)(f"/servers/{a['id']}/channels/{ch['id']}", alice.token, **kw)
        assert r.status_code == 404, method
    assert api.get(f"/servers/{b['id']}/channels/{ch['id']}", alice.token).status_code == 200
