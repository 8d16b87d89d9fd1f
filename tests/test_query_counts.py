"""Query counts, never timings: reading a server costs the same number of SQL statements whether
it has 5 members or 5,000 (and a few channels and roles or more). Counted by the server itself
with QUERY_COUNT_HEADER=1 (core/diagnostics.py), which reports every statement a request
ran, the bearer check's account lookup included, in `X-Query-Count`."""
from __future__ import annotations

import pytest

from tests.support import Api, create_channel, create_server, join_server, own_server, seed_members, unique

BIG = 5000


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    with own_server(tmp_path_factory.mktemp("querycount"), {"QUERY_COUNT_HEADER": "1"}) as proc:
        yield proc


@pytest.fixture(scope="module")
def capi(counted) -> Api:
    return Api(counted.base)


def count(r) -> int:
    assert r.status_code == 200, r.text
    assert "x-query-count" in r.headers, dict(r.headers)
    return int(r.headers["x-query-count"])


@pytest.fixture(scope="module")
def two_servers(capi, counted):
    """(small owner, small server, big owner, big server): 5 members against 5,000, the big one
    with more channels and roles too."""
    small_owner, big_owner = capi.register(), capi.register()
    small = create_server(capi, small_owner)
    big = create_server(capi, big_owner)
    join_server(capi, small_owner, small["id"], *[capi.register() for _ in range(4)])
    join_server(capi, big_owner, big["id"], *[capi.register() for _ in range(4)])
    for kind in ("text", "voice", "text", "voice"):
        create_channel(capi, big_owner, big["id"], kind)
    for _ in range(3):
        r = capi.post(f"/servers/{big['id']}/roles", big_owner.token, json={"name": unique("role")})
        assert r.status_code == 201, r.text
    seed_members(counted.database, big["id"], BIG - 5)
    return small_owner, small, big_owner, big


def test_header_counts_the_bearer_check(capi):
    acct = capi.register()
    r = capi.get("/auth/me", acct.token)
    # The account lookup of the bearer check, then the handler's own read.
    assert count(r) >= 1
    # A public route with no database work runs no statement.
    r = capi.get("/info")
    assert r.status_code == 200
    assert r.headers["x-query-count"] == "0"


def test_server_read_costs_the_same_for_5_and_5000_members(capi, two_servers):
    small_owner, small, big_owner, big = two_servers
    r_small = capi.get(f"/servers/{small['id']}", small_owner.token)
    r_big = capi.get(f"/servers/{big['id']}", big_owner.token)
    assert len(r_small.json()["members"]) == 5
    assert len(r_big.json()["members"]) == BIG
    assert len(r_big.json()["channels"]) > len(r_small.json()["channels"])
    assert len(r_big.json()["roles"]) > len(r_small.json()["roles"])
    n = count(r_small)
    assert n >= 2  # the bearer check and at least one read: the counter does count
    assert count(r_big) == n
    # And for a member who is not the owner.
    member = r_big.json()["members"][-1]
    assert member["role"] == "member"


def test_server_list_costs_the_same_for_5_and_5000_members(capi, two_servers):
    small_owner, small, big_owner, big = two_servers
    r_small = capi.get("/servers", small_owner.token)
    r_big = capi.get("/servers", big_owner.token)
    assert [s["id"] for s in r_small.json()] == [small["id"]]
    assert [s["id"] for s in r_big.json()] == [big["id"]]
    assert len(r_big.json()[0]["members"]) == BIG
    n = count(r_small)
    assert n >= 2
    assert count(r_big) == n


def test_server_list_costs_the_same_for_one_server_and_three(capi, two_servers):
    _small_owner, _small, big_owner, _big = two_servers
    one = capi.register()
    create_server(capi, one)
    three = capi.register()
    for _ in range(3):
        create_server(capi, three)
    r_one, r_three = capi.get("/servers", one.token), capi.get("/servers", three.token)
    assert len(r_one.json()) == 1 and len(r_three.json()) == 3
    assert count(r_one) == count(r_three)


def test_blocked_server_read_is_refused_on_the_same_count_path(capi, two_servers):
    """The header is present on error answers too (a stranger's 403 counts its statements)."""
    _small_owner, small, _big_owner, _big = two_servers
    stranger = capi.register()
    r = capi.get(f"/servers/{small['id']}", stranger.token)
    assert r.status_code == 403
    assert r.json() == {"error": "You are not a member of this server", "code": "not_a_member"}
    # One: the account is read in the permission check's statement (auth.account_checked_in_query).
    assert int(r.headers["x-query-count"]) >= 1


def test_hot_paths_run_a_fixed_small_number_of_statements(capi, two_servers):
    """The statements behind the benchmark's endpoints (bench/run_all.py), pinned: one more is a
    regression a reviewer should see. The bearer check is one statement, except on the reads that
    fold the account into their permission check (auth.account_checked_in_query)."""
    _small_owner, _small, big_owner, big = two_servers
    channel = create_channel(capi, big_owner, big["id"], "text")["id"]
    # Posting: bearer check, permission check with the channel, the INSERT (author from the check).
    for i in range(3):
        r = capi.post("/messages", big_owner.token, json={"channelId": channel, "content": f"hello zebra {i}"})
        assert r.status_code == 201, r.text
        assert r.headers["x-query-count"] == "3"
    # Server read: account and permission check (with the server's columns), channels, roles, members.
    assert count(capi.get(f"/servers/{big['id']}", big_owner.token)) == 4
    # Server list: account and the caller's servers, channels, roles, members.
    assert count(capi.get("/servers", big_owner.token)) == 4
    # Message page and search: account and permission check with the channel, one statement.
    page = capi.get("/messages", big_owner.token, params={"channelId": channel, "page": 1, "limit": 2})
    assert count(page) == 2
    assert page.json()["total"] == 3 and len(page.json()["messages"]) == 2
    hit = capi.get("/messages/search", big_owner.token, params={"channelId": channel, "query": "zebra"})
    assert count(hit) == 2 and hit.json()["total"] == 3
    miss = capi.get("/messages/search", big_owner.token, params={"channelId": channel, "query": "nothinghere"})
    assert count(miss) == 2 and miss.json()["total"] == 0


def test_editors_come_with_the_page_and_the_search(capi, counted, two_servers):
    """`editedBy` (a moderator's edit, issue 17) is joined into the page's and the search's one
    statement: no statement per edited message."""
    from tests.support import make_admin

    _small_owner, _small, big_owner, big = two_servers
    site_admin = make_admin(capi, counted)
    channel = create_channel(capi, big_owner, big["id"], "text")["id"]
    ids = [capi.post("/messages", big_owner.token, json={"channelId": channel, "content": f"okapi {i}"}).json()["id"]
           for i in range(4)]
    for mid in ids[:3]:
        r = capi.put(f"/messages/{mid}", site_admin.token, json={"content": "okapi tidied"})
        assert r.status_code == 200 and r.json()["editedBy"]["id"] == site_admin.id
    page = capi.get("/messages", big_owner.token, params={"channelId": channel})
    hit = capi.get("/messages/search", big_owner.token, params={"channelId": channel, "query": "okapi"})
    for r in (page, hit):
        assert count(r) == 2
        assert [m["editedBy"] and m["editedBy"]["id"] for m in r.json()["messages"]] == [site_admin.id] * 3 + [None]
