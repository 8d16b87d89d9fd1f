"""Messages through the HTTP API: history pages, cursor, posting, editing, deleting, search."""
from __future__ import annotations

import pytest

from models.permissions import Perm
from tests.support import create_channel, create_server, join_server, unique
from tests.support_messages import contents, denied, make_moderator, page, post, search, setup_channel, strip_bit

# ---------------------------------------------------------------------------------- seed examples
def test_seed_send_message_and_pagination_examples(api):
    owner = api.register(unique("seed"))
    r = api.post("/servers", owner.token, json={"name": "My Server", "description": "Server description",
                                                "icon": "https://example.com/icon.png"})
    assert r.status_code == 201, r.text
    server = r.json()
    r = api.post(f"/servers/{server['id']}/channels", owner.token, json={"name": "general", "type": "text"})
    assert r.status_code == 201, r.text
    channel = r.json()

    # Отправка сообщения
    r = api.post("/messages", owner.token, json={"content": "Hello, world!", "channelId": channel["id"]},
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    message = r.json()
    assert message["content"] == "Hello, world!"
    assert message["userId"] == owner.id and message["channelId"] == channel["id"]
    assert message["isEdited"] is False
    assert message["user"] == {"id": owner.id, "username": owner.user["username"], "avatar": None,
                               "profilePicture": None}
    assert message["createdAt"].endswith("Z") and message["updatedAt"].endswith("Z")
    assert isinstance(message["id"], int)

    # Получение сообщений с пагинацией
    r = api.get(f"/messages?channelId={channel['id']}&page=1&limit=50", owner.token)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data == {"messages": [message], "total": 1, "page": 1, "limit": 50, "totalPages": 1}


def test_author_avatar_is_profile_picture(api):
    owner = api.register()
    r = api.put("/users/", owner.token, json={"profilePicture": "https://example.com/a.png"})
    assert r.status_code == 200, r.text
    _, ch = setup_channel(api, owner)
    m = post(api, owner, ch["id"], "pic")
    assert m["user"]["avatar"] == m["user"]["profilePicture"] == "https://example.com/a.png"


# ---------------------------------------------------------------------------------- pages
def test_pages_order_and_boundaries(api, alice):
    _, ch = setup_channel(api, alice)
    sent = [post(api, alice, ch["id"], f"m{i}") for i in range(1, 8)]
    assert [m["id"] for m in sent] == sorted(m["id"] for m in sent)
    expect = {1: ["m5", "m6", "m7"], 2: ["m2", "m3", "m4"], 3: ["m1"], 4: []}
    for number, want in expect.items():
        data = page(api, alice, ch["id"], page=number, limit=3)
        assert contents(data) == want, (number, data)
        assert (data["total"], data["page"], data["limit"], data["totalPages"]) == (7, number, 3, 3)
    data = page(api, alice, ch["id"])  # defaults: page 1, limit 50
    assert contents(data) == [f"m{i}" for i in range(1, 8)]
    assert (data["page"], data["limit"], data["totalPages"]) == (1, 50, 1)
    assert contents(page(api, alice, ch["id"], limit=1)) == ["m7"]
    assert page(api, alice, ch["id"], limit=1)["totalPages"] == 7
    assert contents(page(api, alice, ch["id"], limit=100)) == [f"m{i}" for i in range(1, 8)]
    # Another channel's messages never show up.
    other = create_channel(api, alice, ch["serverId"])
    post(api, alice, other["id"], "elsewhere")
    assert page(api, alice, ch["id"])["total"] == 7
    assert contents(page(api, alice, other["id"])) == ["elsewhere"]


def test_empty_channel(api, alice):
    _, ch = setup_channel(api, alice)
    assert page(api, alice, ch["id"]) == {"messages": [], "total": 0, "page": 1, "limit": 50, "totalPages": 0}


def test_before_cursor(api, alice):
    _, ch = setup_channel(api, alice)
    sent = [post(api, alice, ch["id"], f"c{i}") for i in range(1, 8)]
    ids = [m["id"] for m in sent]
    data = page(api, alice, ch["id"], before=ids[4], limit=3)  # older than c5
    assert contents(data) == ["c2", "c3", "c4"]
    assert (data["total"], data["page"], data["limit"]) == (7, 1, 3)
    assert contents(page(api, alice, ch["id"], before=ids[1], limit=3)) == ["c1"]
    assert contents(page(api, alice, ch["id"], before=ids[0], limit=3)) == []
    assert contents(page(api, alice, ch["id"], before=ids[6] + 1000, limit=3)) == ["c5", "c6", "c7"]
    # The cursor sets the window; page is echoed only.
    data = page(api, alice, ch["id"], before=ids[4], limit=2, page=5)
    assert contents(data) == ["c3", "c4"] and data["page"] == 5


BAD_PARAMS = [
    {"limit": 0}, {"limit": 101}, {"limit": -1}, {"limit": "abc"}, {"limit": "1.5"},
    {"page": 0}, {"page": -3}, {"page": "x"}, {"before": 0}, {"before": "y"},
    {"channelId": "abc"}, {"channelId": 0},
]


@pytest.mark.parametrize("params", BAD_PARAMS)
def test_list_bounds_are_400(api, alice, params):
    _, ch = setup_channel(api, alice)
    r = api.get("/messages", alice.token, params={"channelId": ch["id"], **params})
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error", "code"}


@pytest.mark.parametrize("params", [p for p in BAD_PARAMS if "before" not in p] + [{"query": ""}])
def test_search_bounds_are_400(api, alice, params):
    _, ch = setup_channel(api, alice)
    r = api.get("/messages/search", alice.token, params={"channelId": ch["id"], "query": "x", **params})
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error", "code"}


def test_unknown_query_parameters_are_400(api, alice):
    """Strict validation: a parameter the document does not list is refused, on the same request
    path whose query string the server parses once for validation and for the handler."""
    _, ch = setup_channel(api, alice)
    r = api.get("/messages", alice.token, params={"channelId": ch["id"], "limt": 5})
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error", "code"} and "limt" in r.json()["error"]
    r = api.get("/messages/search", alice.token, params={"channelId": ch["id"], "query": "x", "sort": "new"})
    assert r.status_code == 400 and "sort" in r.json()["error"]


def test_missing_parameters_are_400(api, alice):
    _, ch = setup_channel(api, alice)
    assert api.get("/messages", alice.token).status_code == 400
    assert api.get("/messages/search", alice.token, params={"channelId": ch["id"]}).status_code == 400
    assert api.get("/messages/search", alice.token, params={"query": "x"}).status_code == 400


def test_requires_a_token(api, alice):
    _, ch = setup_channel(api, alice)
    m = post(api, alice, ch["id"], "x")
    assert api.get("/messages", params={"channelId": ch["id"]}).status_code == 401
    assert api.get("/messages/search", params={"channelId": ch["id"], "query": "x"}).status_code == 401
    assert api.post("/messages", json={"content": "x", "channelId": ch["id"]}).status_code == 401
    assert api.put(f"/messages/{m['id']}", json={"content": "y"}).status_code == 401
    assert api.delete(f"/messages/{m['id']}").status_code == 401


# ---------------------------------------------------------------------------------- posting
def test_content_validation_and_trimming(api, alice):
    _, ch = setup_channel(api, alice)
    assert post(api, alice, ch["id"], "  padded\n ")["content"] == "padded"
    assert len(post(api, alice, ch["id"], "x" * 2000)["content"]) == 2000
    # The 2000 limit applies to what is sent (the contract's maxLength), padding included.
    r = api.post("/messages", alice.token, json={"content": " " + "y" * 2000, "channelId": ch["id"]})
    assert r.status_code == 400, r.text
    for body in ({"content": "   ", "channelId": ch["id"]}, {"content": "", "channelId": ch["id"]},
                 {"content": "x" * 2001, "channelId": ch["id"]}, {"content": "a\x00b", "channelId": ch["id"]},
                 {"content": 5, "channelId": ch["id"]}, {"content": "x"}, {"channelId": ch["id"]},
                 {"content": "x", "channelId": "abc"}, {"content": "x", "channelId": 0}, {}):
        r = api.post("/messages", alice.token, json=body)
        assert r.status_code == 400, (body, r.text)
    r = api.post("/messages", alice.token, content=b'{"content": "\\ud800", "channelId": %d}' % ch["id"],
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    r = api.post("/messages", alice.token, json={"content": "   ", "channelId": ch["id"]})
    assert r.json() == {"error": "content must be 1 to 2000 characters", "code": "validation_error"}
    # Cyrillic and emoji are stored as sent.
    assert post(api, alice, ch["id"], "Привет, мир! 🎉")["content"] == "Привет, мир! 🎉"


def test_voice_channel_is_400(api, alice, bob):
    server = create_server(api, alice)
    voice = create_channel(api, alice, server["id"], type="voice")
    denied(api.post("/messages", alice.token, json={"content": "hi", "channelId": voice["id"]}),
           "not_a_text_channel", 400)
    # A non-member learns nothing more than "not a member".
    denied(api.post("/messages", bob.token, json={"content": "hi", "channelId": voice["id"]}), "not_a_member")


def test_unknown_channel_is_404(api, alice):
    for r in (api.get("/messages", alice.token, params={"channelId": 2147483647}),
              api.get("/messages/search", alice.token, params={"channelId": 2147483647, "query": "a"}),
              api.post("/messages", alice.token, json={"content": "x", "channelId": 2147483647})):
        denied(r, "channel_not_found", 404)
    for r in (api.put("/messages/2147483647", alice.token, json={"content": "x"}),
              api.delete("/messages/2147483647", alice.token)):
        denied(r, "message_not_found", 404)


# ---------------------------------------------------------------------------------- permissions
def test_non_member_is_403_everywhere(api, alice, bob):
    server, ch = setup_channel(api, alice)
    m = post(api, alice, ch["id"], "private")
    denied(api.get("/messages", bob.token, params={"channelId": ch["id"]}), "not_a_member")
    denied(api.get("/messages/search", bob.token, params={"channelId": ch["id"], "query": "private"}),
           "not_a_member")
    denied(api.post("/messages", bob.token, json={"content": "x", "channelId": ch["id"]}), "not_a_member")
    denied(api.put(f"/messages/{m['id']}", bob.token, json={"content": "x"}), "not_a_member")
    denied(api.delete(f"/messages/{m['id']}", bob.token), "not_a_member")
    assert contents(page(api, alice, ch["id"])) == ["private"]


def test_member_reads_and_posts(api, alice, bob):
    server, ch = setup_channel(api, alice)
    post(api, alice, ch["id"], "welcome")
    join_server(api, alice, server["id"], bob)
    m = post(api, bob, ch["id"], "thanks")
    assert m["user"]["id"] == bob.id
    assert contents(page(api, bob, ch["id"])) == ["welcome", "thanks"]
    assert contents(search(api, bob, ch["id"], "WELCOME")) == ["welcome"]


def test_member_without_send_messages_cannot_post(api, alice, bob):
    server, ch = setup_channel(api, alice)
    join_server(api, alice, server["id"], bob)
    strip_bit(api, alice, server["id"], Perm.SEND_MESSAGES)
    denied(api.post("/messages", bob.token, json={"content": "x", "channelId": ch["id"]}), "missing_permission")
    assert "SEND_MESSAGES" in api.post("/messages", bob.token, json={"content": "x", "channelId": ch["id"]}).json()["error"]
    # Reading still works, and the owner still posts.
    post(api, alice, ch["id"], "owner speaks")
    assert contents(page(api, bob, ch["id"])) == ["owner speaks"]
    # A moderator role brings SEND_MESSAGES back.
    make_moderator(api, alice, server["id"], bob)
    post(api, bob, ch["id"], "moderator speaks")


def test_member_without_history_or_view_cannot_read(api, alice, bob):
    server, ch = setup_channel(api, alice)
    join_server(api, alice, server["id"], bob)
    post(api, alice, ch["id"], "secret history")
    strip_bit(api, alice, server["id"], Perm.READ_MESSAGE_HISTORY)
    denied(api.get("/messages", bob.token, params={"channelId": ch["id"]}), "missing_permission")
    denied(api.get("/messages/search", bob.token, params={"channelId": ch["id"], "query": "secret"}),
           "missing_permission")
    post(api, bob, ch["id"], "can still post")  # SEND_MESSAGES without history
    strip_bit(api, alice, server["id"], Perm.VIEW_CHANNEL)
    denied(api.post("/messages", bob.token, json={"content": "x", "channelId": ch["id"]}), "missing_permission")


# ---------------------------------------------------------------------------------- edit / delete
def test_author_edits_and_is_edited(api, alice):
    _, ch = setup_channel(api, alice)
    m = post(api, alice, ch["id"], "first draft")
    other = post(api, alice, ch["id"], "untouched")
    r = api.put(f"/messages/{m['id']}", alice.token, json={"content": "  final  "})
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["content"] == "final" and edited["isEdited"] is True
    assert edited["id"] == m["id"] and edited["createdAt"] == m["createdAt"]
    assert edited["updatedAt"] >= m["updatedAt"]
    assert edited["user"] == m["user"]
    listed = page(api, alice, ch["id"])["messages"]
    assert [(x["content"], x["isEdited"]) for x in listed] == [("final", True), ("untouched", False)]
    assert other["isEdited"] is False
    for body in ({"content": " "}, {"content": "x" * 2001}, {}, {"content": None}):
        assert api.put(f"/messages/{m['id']}", alice.token, json=body).status_code == 400


def test_edit_and_delete_rights(api, alice, bob, admin):
    server, ch = setup_channel(api, alice)
    carol = api.register()
    dave = api.register()
    join_server(api, alice, server["id"], bob, carol, dave)
    make_moderator(api, alice, server["id"], carol)
    by_alice = post(api, alice, ch["id"], "owner message")
    by_bob = [post(api, bob, ch["id"], f"bob {i}") for i in range(4)]

    # A plain member may not touch someone else's message.
    denied(api.put(f"/messages/{by_alice['id']}", dave.token, json={"content": "x"}), "missing_permission")
    denied(api.delete(f"/messages/{by_bob[0]['id']}", dave.token), "missing_permission")
    # Nor may bob touch the owner's.
    denied(api.put(f"/messages/{by_alice['id']}", bob.token, json={"content": "x"}), "missing_permission")

    # The author may.
    r = api.put(f"/messages/{by_bob[0]['id']}", bob.token, json={"content": "bob edited"})
    assert r.status_code == 200 and r.json()["isEdited"] is True and r.json()["userId"] == bob.id
    assert api.delete(f"/messages/{by_bob[0]['id']}", bob.token).status_code == 204

    # A moderator (MANAGE_MESSAGES) may, and the author stays the author.
    r = api.put(f"/messages/{by_bob[1]['id']}", carol.token, json={"content": "moderated"})
    assert r.status_code == 200, r.text
    assert r.json()["userId"] == bob.id and r.json()["user"]["id"] == bob.id and r.json()["isEdited"] is True
    assert api.delete(f"/messages/{by_bob[2]['id']}", carol.token).status_code == 204

    # A global admin, not even a member, may.
    r = api.put(f"/messages/{by_bob[3]['id']}", admin.token, json={"content": "admin was here"})
    assert r.status_code == 200 and r.json()["userId"] == bob.id
    assert api.delete(f"/messages/{by_bob[3]['id']}", admin.token).status_code == 204

    assert contents(page(api, alice, ch["id"])) == ["owner message", "moderated"]
    assert page(api, alice, ch["id"])["total"] == 2
    # Gone is gone.
    denied(api.delete(f"/messages/{by_bob[2]['id']}", carol.token), "message_not_found", 404)
    denied(api.put(f"/messages/{by_bob[2]['id']}", bob.token, json={"content": "x"}), "message_not_found", 404)

    # Deletions by someone else than the author are audited; the author's own are not.
    logs = api.get("/admin/logs", admin.token, params={"action": "message.delete", "limit": 100}).json()
    mine = {e["targetId"]: e for e in logs["entries"] if e["serverId"] == server["id"]}
    assert set(mine) == {by_bob[2]["id"], by_bob[3]["id"]}
    assert mine[by_bob[2]["id"]]["actorId"] == carol.id and mine[by_bob[3]["id"]]["actorId"] == admin.id
    assert mine[by_bob[2]["id"]]["details"] == {"channelId": ch["id"], "authorId": bob.id, "as": "moderator"}
    assert mine[by_bob[3]["id"]]["details"]["as"] == "global_moderator"


def test_author_who_left_cannot_edit(api, alice, bob):
    server, ch = setup_channel(api, alice)
    join_server(api, alice, server["id"], bob)
    m = post(api, bob, ch["id"], "before leaving")
    r = api.get(f"/servers/{server['id']}", alice.token)
    member = next(x for x in r.json()["members"] if x["userId"] == bob.id)
    assert api.delete(f"/serverMembers/{server['id']}/members/{member['id']}", alice.token).status_code in (200, 204)
    denied(api.put(f"/messages/{m['id']}", bob.token, json={"content": "x"}), "not_a_member")
    denied(api.delete(f"/messages/{m['id']}", bob.token), "not_a_member")


def test_moderator_of_another_server_cannot_moderate(api, alice, bob):
    server, ch = setup_channel(api, alice)
    m = post(api, alice, ch["id"], "mine")
    other = create_server(api, bob)  # bob owns (all bits) another server
    assert other["id"] != server["id"]
    denied(api.delete(f"/messages/{m['id']}", bob.token), "not_a_member")
    denied(api.put(f"/messages/{m['id']}", bob.token, json={"content": "x"}), "not_a_member")


# ---------------------------------------------------------------------------------- search
def test_search_escaping(api, alice):
    _, ch = setup_channel(api, alice)
    texts = ["50% off today", "under_score here", 'say "hi" now', "star* power", "this OR that",
             "it's fine", "plain words only", "100 percent"]
    for t in texts:
        post(api, alice, ch["id"], t)

    def found(q):
        return contents(search(api, alice, ch["id"], q))

    # Wildcard and syntax characters are plain text, matched literally (issue 18): never everything.
    assert found("%") == ["50% off today"]
    assert found("_") == ["under_score here"]
    assert found('"') == ['say "hi" now']
    assert found("*") == ["star* power"]
    assert found("'") == ["it's fine"]
    for q in ("%%", "_%", '""', "' OR '1'='1", "NEAR", "*:*", "\\", "-", "^", "()"):
        assert found(q) == [], q
    # Words around those characters match literally.
    assert found("50%") == ["50% off today"]
    assert found("under_score") == ["under_score here"]
    assert found('"hi"') == ['say "hi" now']
    assert found("star*") == ["star* power"]
    assert found("OR") == ["this OR that"]
    assert found("this OR that") == ["this OR that"]
    assert found("plain OR fine") == []  # OR is a word, not an operator
    assert found("it's") == ["it's fine"]
    assert found("st*") == [] and found("p%") == [] and found("_nder") == []
    assert found("'); DROP TABLE messages; --") == []
    # tsquery / FTS5 operators and odd text are plain input too: never an error.
    for q in (":*", "plain:*", "<->", "plain <-> words", "&", "|", "!plain", "plain & words", "NOT plain",
              "plain AND", "\\", "🎉", "ж" * 200, "(plain)", "{plain}", "plain^", "+plain -words"):
        r = api.get("/messages/search", alice.token, params={"channelId": ch["id"], "query": q})
        assert r.status_code == 200, (q, r.text)
    assert found("plain:*") == []  # literally "plain:*", which no message holds; ":*" is no prefix operator
    assert found("plain") == ["plain words only"]
    assert found("pla:*") == []
    # NUL is refused in any string a client sends (issue 17), the query string included.
    r = api.get("/messages/search", alice.token, params={"channelId": ch["id"], "query": "a\x00b"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_text", r.text
    r = api.get(f"/messages/search?channelId={ch['id']}&query=%ED%A0%80", alice.token)  # not UTF-8
    assert r.status_code == 400, r.text
    assert page(api, alice, ch["id"])["total"] == len(texts)


def test_search_case_insensitive_words_and_order(api, alice):
    server, ch = setup_channel(api, alice)
    post(api, alice, ch["id"], "Hello World")
    post(api, alice, ch["id"], "ПРИВЕТ мир")
    post(api, alice, ch["id"], "hello again")
    for q, want in (("hello", ["Hello World", "hello again"]), ("HELLO", ["Hello World", "hello again"]),
                    ("привет", ["ПРИВЕТ мир"]), ("МИР", ["ПРИВЕТ мир"]), ("world hello", ["Hello World"]),
                    ("hello   WORLD", ["Hello World"]), ("nothing", []), ("hell", [])):
        assert contents(search(api, alice, ch["id"], q)) == want, q

    apples = [post(api, alice, ch["id"], f"apple {i}")["id"] for i in range(5)]
    data = search(api, alice, ch["id"], "apple", limit=2)
    assert contents(data) == ["apple 3", "apple 4"]  # newest two, ascending within the page
    assert (data["total"], data["page"], data["limit"], data["totalPages"]) == (5, 1, 2, 3)
    assert contents(search(api, alice, ch["id"], "apple", limit=2, page=2)) == ["apple 1", "apple 2"]
    assert contents(search(api, alice, ch["id"], "apple", limit=2, page=3)) == ["apple 0"]
    data = search(api, alice, ch["id"], "apple", limit=2, page=4)
    assert data["messages"] == [] and data["total"] == 5 and data["totalPages"] == 3
    assert search(api, alice, ch["id"], "apple")["messages"][0]["id"] == apples[0]

    # Always one channel: the same word elsewhere (same server or another) is not found.
    other = create_channel(api, alice, server["id"])
    post(api, alice, other["id"], "apple elsewhere")
    _, far = setup_channel(api, alice)
    post(api, alice, far["id"], "apple far away")
    assert search(api, alice, ch["id"], "apple")["total"] == 5
    assert contents(search(api, alice, other["id"], "apple")) == ["apple elsewhere"]


def test_search_follows_edits_and_deletes(api, alice):
    _, ch = setup_channel(api, alice)
    m = post(api, alice, ch["id"], "banana split")
    assert contents(search(api, alice, ch["id"], "banana")) == ["banana split"]
    assert api.put(f"/messages/{m['id']}", alice.token, json={"content": "cherry pie"}).status_code == 200
    assert search(api, alice, ch["id"], "banana")["total"] == 0
    assert contents(search(api, alice, ch["id"], "CHERRY")) == ["cherry pie"]
    assert api.delete(f"/messages/{m['id']}", alice.token).status_code == 204
    assert search(api, alice, ch["id"], "cherry") == {"messages": [], "total": 0, "page": 1, "limit": 50,
                                                      "totalPages": 0}


# ---------------------------------------------------------------------------------- cascades
def test_deleted_channel_cascade(api, alice):
    server, ch = setup_channel(api, alice)
    m = post(api, alice, ch["id"], "doomed words")
    keep = create_channel(api, alice, server["id"])
    kept = post(api, alice, keep["id"], "doomed words survive here")
    assert api.delete(f"/servers/{server['id']}/channels/{ch['id']}", alice.token).status_code == 204
    denied(api.get("/messages", alice.token, params={"channelId": ch["id"]}), "channel_not_found", 404)
    denied(api.get("/messages/search", alice.token, params={"channelId": ch["id"], "query": "doomed"}),
           "channel_not_found", 404)
    denied(api.post("/messages", alice.token, json={"content": "x", "channelId": ch["id"]}), "channel_not_found", 404)
    denied(api.put(f"/messages/{m['id']}", alice.token, json={"content": "x"}), "message_not_found", 404)
    denied(api.delete(f"/messages/{m['id']}", alice.token), "message_not_found", 404)
    assert contents(search(api, alice, keep["id"], "doomed")) == [kept["content"]]


def test_deleted_server_cascade(api, alice):
    server, ch = setup_channel(api, alice)
    m = post(api, alice, ch["id"], "gone soon")
    assert api.delete(f"/servers/{server['id']}", alice.token).status_code in (200, 204)
    denied(api.get("/messages", alice.token, params={"channelId": ch["id"]}), "channel_not_found", 404)
    denied(api.put(f"/messages/{m['id']}", alice.token, json={"content": "x"}), "message_not_found", 404)
    denied(api.delete(f"/messages/{m['id']}", alice.token), "message_not_found", 404)


def test_total_follows_account_deletion(api, alice):
    """The per-channel counter follows cascades too (an author's account deleted)."""
    server, ch = setup_channel(api, alice)
    leaver = api.register()
    join_server(api, alice, server["id"], leaver)
    post(api, alice, ch["id"], "stays")
    for i in range(3):
        post(api, leaver, ch["id"], f"leaves {i}")
    assert page(api, alice, ch["id"])["total"] == 4
    assert api.delete("/users/", leaver.token).status_code == 200
    data = page(api, alice, ch["id"])
    assert contents(data) == ["stays"] and data["total"] == 1 and data["totalPages"] == 1
    assert search(api, alice, ch["id"], "leaves")["total"] == 0


# ---------------------------------------------------------------------------------- races
def test_concurrent_posts_and_deletes_keep_total_exact(api, alice, bob):
    from concurrent.futures import ThreadPoolExecutor

    server, ch = setup_channel(api, alice)
    join_server(api, alice, server["id"], bob)

    def send(i):
        acct = alice if i % 2 else bob
        return api.post("/messages", acct.token, json={"content": f"race {i}", "channelId": ch["id"]}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(send, range(24))) == [201] * 24
    data = page(api, alice, ch["id"], limit=100)
    assert data["total"] == 24 and len(data["messages"]) == 24
    assert [m["id"] for m in data["messages"]] == sorted(m["id"] for m in data["messages"])

    victim = data["messages"][0]
    owner_of = alice if victim["userId"] == alice.id else bob
    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(lambda _: api.delete(f"/messages/{victim['id']}", owner_of.token).status_code,
                                range(6)))
    assert codes == [204] + [404] * 5
    assert page(api, alice, ch["id"])["total"] == 23
    assert search(api, alice, ch["id"], "race")["total"] == 23


def test_search_without_word_characters_matches_literally(api, alice):
    """Issue 18: `%`, `100%`, `:)` find the messages that hold them, not nothing (or every `100`)."""
    _, ch = setup_channel(api, alice)
    for t in ("it is 100% done", "100 percent sure", "see you :)", "sad :(", "50%", "plain text"):
        post(api, alice, ch["id"], t)

    def found(q):
        return contents(search(api, alice, ch["id"], q))

    assert found("%") == ["it is 100% done", "50%"]
    assert found("100%") == ["it is 100% done"]
    assert found("100") == ["it is 100% done", "100 percent sure"]
    assert found(":)") == ["see you :)"]
    assert found(":(") == ["sad :("]
    assert found(": )") == ["see you :)"]  # two terms: ":" is in two messages, ")" only in one
    assert found("see :)") == ["see you :)"]
    assert found("plain :)") == []
    data = search(api, alice, ch["id"], "%", limit=1)
    assert contents(data) == ["50%"] and data["total"] == 2
