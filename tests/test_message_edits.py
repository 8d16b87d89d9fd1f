"""A moderator's edit of someone else's message (issue 17 item 5): the message says who wrote
its current words (`editedBy`) in every REST answer and in the live `message-updated` event, and
the edit is in the audit log like a moderator's delete."""
from __future__ import annotations

import pytest

from tests.support import join_server
from tests.support_messages import make_moderator, page, post, search, setup_channel
from tests.support_sockets import subscribe


def _by_id(data: dict) -> dict[int, dict]:
    return {m["id"]: m for m in data["messages"]}


def _edit_logs(api, admin, server_id: int) -> dict[int, list[dict]]:
    r = api.get("/admin/logs", admin.token, params={"action": "message.edit", "limit": 100})
    assert r.status_code == 200, r.text
    out: dict[int, list[dict]] = {}
    for e in r.json()["entries"]:
        if e["serverId"] == server_id:
            out.setdefault(e["targetId"], []).append(e)
    return out


def test_moderator_edit_names_the_editor_everywhere_and_is_audited(api, admin, alice, bob):
    server, ch = setup_channel(api, alice)
    carol = api.register()
    join_server(api, alice, server["id"], bob, carol)
    make_moderator(api, alice, server["id"], carol)
    untouched = post(api, bob, ch["id"], "zebra untouched")
    own = post(api, bob, ch["id"], "zebra own words")
    moderated = post(api, bob, ch["id"], "zebra rude words")
    assert untouched["editedBy"] is None  # the POST answer has it too

    # The author's own edit: nobody else to name, nothing audited.
    r = api.put(f"/messages/{own['id']}", bob.token, json={"content": "zebra own words, fixed"})
    assert r.status_code == 200 and r.json()["editedBy"] is None

    # The moderator's edit: named in the answer, the page and the search, audited.
    r = api.put(f"/messages/{moderated['id']}", carol.token, json={"content": "zebra [removed]"})
    assert r.status_code == 200, r.text
    carol_ref = {"id": carol.id, "username": carol.user["username"]}
    assert r.json()["editedBy"] == carol_ref
    assert r.json()["userId"] == bob.id and r.json()["user"]["id"] == bob.id
    for data in (page(api, bob, ch["id"]), search(api, bob, ch["id"], "zebra")):
        got = _by_id(data)
        assert got[moderated["id"]]["editedBy"] == carol_ref
        assert got[moderated["id"]]["content"] == "zebra [removed]"
        assert got[own["id"]]["editedBy"] is None and got[untouched["id"]]["editedBy"] is None
    logs = _edit_logs(api, admin, server["id"])
    assert set(logs) == {moderated["id"]}
    (entry,) = logs[moderated["id"]]
    assert entry["actorId"] == carol.id and entry["targetType"] == "message"
    assert entry["details"] == {"channelId": ch["id"], "authorId": bob.id, "as": "moderator"}

    # The author's next edit makes the words theirs again.
    r = api.put(f"/messages/{moderated['id']}", bob.token, json={"content": "zebra rewritten by bob"})
    assert r.json()["editedBy"] is None
    assert _by_id(page(api, alice, ch["id"]))[moderated["id"]]["editedBy"] is None
    assert len(_edit_logs(api, admin, server["id"])[moderated["id"]]) == 1


def test_global_moderator_edit_is_named_and_audited(api, admin, alice, bob):
    server, ch = setup_channel(api, alice)
    join_server(api, alice, server["id"], bob)
    m = post(api, bob, ch["id"], "hello")
    r = api.put(f"/messages/{m['id']}", admin.token, json={"content": "edited by the site"})
    assert r.status_code == 200
    assert r.json()["editedBy"] == {"id": admin.id, "username": admin.user["username"]}
    assert _by_id(page(api, alice, ch["id"]))[m["id"]]["editedBy"]["id"] == admin.id
    (entry,) = _edit_logs(api, admin, server["id"])[m["id"]]
    assert entry["actorId"] == admin.id and entry["details"]["as"] == "global_moderator"


def test_editor_account_deleted_leaves_the_message_unnamed(api, alice, bob):
    server, ch = setup_channel(api, alice)
    carol = api.register()
    join_server(api, alice, server["id"], bob, carol)
    make_moderator(api, alice, server["id"], carol)
    m = post(api, bob, ch["id"], "hello")
    assert api.put(f"/messages/{m['id']}", carol.token, json={"content": "tidied"}).json()["editedBy"]["id"] == carol.id
    assert api.delete("/users/", carol.token).status_code == 200
    got = _by_id(page(api, alice, ch["id"]))[m["id"]]
    assert got["editedBy"] is None and got["content"] == "tidied" and got["isEdited"] is True


@pytest.mark.asyncio
async def test_live_message_updated_names_the_moderator(api, clients, alice, bob):  # noqa: F811
    server, ch = setup_channel(api, alice)
    carol = api.register()
    join_server(api, alice, server["id"], bob, carol)
    make_moderator(api, alice, server["id"], carol)
    m = post(api, bob, ch["id"], "hello")
    watcher = await clients(bob.token, "desktop")
    await subscribe(watcher, ch["id"])
    r = api.put(f"/messages/{m['id']}", carol.token, json={"content": "moderated"})
    assert r.status_code == 200
    event = await watcher.wait("message-updated")
    assert event == r.json()
    assert event["editedBy"] == {"id": carol.id, "username": carol.user["username"]}
    r = api.put(f"/messages/{m['id']}", bob.token, json={"content": "mine again"})
    assert (await watcher.wait("message-updated"))["editedBy"] is None
