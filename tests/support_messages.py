"""Message scenario helpers the HTTP message tests share (posting, pages, search, roles)."""
from __future__ import annotations

from tests.support import create_channel, create_server

BAD_WORDS = ("unauthorized", "invalid token", "token expired")


def denied(r, code: str, status: int = 403) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    assert all(w not in body["error"].lower() for w in BAD_WORDS), body


def post(api, acct, cid: int, content: str) -> dict:
    r = api.post("/messages", acct.token, json={"content": content, "channelId": cid})
    assert r.status_code == 201, r.text
    return r.json()


def page(api, acct, cid: int, **params) -> dict:
    r = api.get("/messages", acct.token, params={"channelId": cid, **params})
    assert r.status_code == 200, r.text
    return r.json()


def search(api, acct, cid: int, query: str, **params) -> dict:
    r = api.get("/messages/search", acct.token, params={"channelId": cid, "query": query, **params})
    assert r.status_code == 200, r.text
    return r.json()


def contents(data: dict) -> list[str]:
    return [m["content"] for m in data["messages"]]


def setup_channel(api, owner) -> tuple[dict, dict]:
    server = create_server(api, owner)
    return server, create_channel(api, owner, server["id"])


def roles_by_name(api, acct, sid) -> dict[str, dict]:
    r = api.get(f"/servers/{sid}/roles", acct.token)
    assert r.status_code == 200, r.text
    return {role["name"]: role for role in r.json()}


def set_role_bits(api, owner, sid, name: str, bits: int) -> None:
    role = roles_by_name(api, owner, sid)[name]
    r = api.patch(f"/servers/{sid}/roles/{role['id']}", owner.token, json={"permissions": str(bits)})
    assert r.status_code == 200, r.text


def strip_bit(api, owner, sid, bit: int) -> None:
    """Take `bit` away from @everyone and from Member (what an invited member holds)."""
    roles = roles_by_name(api, owner, sid)
    for name in ("@everyone", "Member"):
        set_role_bits(api, owner, sid, name, int(roles[name]["permissions"]) & ~bit)


def make_moderator(api, owner, sid, acct) -> None:
    r = api.get(f"/servers/{sid}", owner.token)
    member = next(m for m in r.json()["members"] if m["userId"] == acct.id)
    r = api.put(f"/serverMembers/{sid}/members/{member['id']}", owner.token, json={"role": "moderator"})
    assert r.status_code == 200, r.text
