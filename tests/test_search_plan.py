"""Message search uses its index whatever the planner statistics (issue 17 item 10).

On a messages table that was never ANALYZEd (autovacuum off, as on a fresh bulk import) the
planner used to take the (channel_id, id) btree for a search and compute to_tsvector for every
message of the channel (245 ms instead of 9 ms for 27k messages). Here a server on a database of
its own gets 30,000 messages by bulk insert, autovacuum off for the table, and a search through
the API must be answered by ix_messages_search: PostgreSQL's own index usage counters say which
index the server's statement read, and EXPLAIN of the statement models/storage/search.py writes agrees.
"""
from __future__ import annotations

import time

import pytest

from tests.support import Api, Database, ServerProcess, backend, create_channel, create_server

pytestmark = pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL pass only (PV_TEST_DB=postgres)")

MESSAGES = 30_000


@pytest.fixture(scope="module")
def bulk(tmp_path_factory):
    import psycopg

    tmp = tmp_path_factory.mktemp("search-plan")
    database = Database.fresh(tmp)
    proc = ServerProcess(database=database, data_dir=tmp / "data").start()
    api = Api(proc.base)
    owner = api.register()
    server = create_server(api, owner)
    channels = [create_channel(api, owner, server["id"])["id"] for _ in range(3)]
    url = database.url.replace("postgresql+psycopg://", "postgresql://")
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("ALTER TABLE messages SET (autovacuum_enabled = false)")
    conn.execute(
        "INSERT INTO messages (channel_id, user_id, content, is_edited, created_at, updated_at) "
        "SELECT (%(channels)s::int[])[1 + g %% 3], %(user)s, "
        "'message number ' || g || ' about ' || md5(g::text), false, now(), now() "
        "FROM generate_series(1, %(n)s) g",
        {"channels": channels, "user": owner.id, "n": MESSAGES})
    yield api, owner, channels, conn
    conn.close()
    proc.stop()
    database.drop()


def _index_scans(conn) -> dict[str, int]:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = conn.execute("SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE relname = 'messages'").fetchall()
    return dict(rows)


def test_search_reads_its_index_on_a_never_analysed_table(bulk):
    api, owner, channels, conn = bulk
    stats = conn.execute("SELECT last_analyze, last_autoanalyze, n_live_tup FROM pg_stat_user_tables "
                         "WHERE relname = 'messages'").fetchone()
    assert stats[0] is None and stats[1] is None, "the table must never have been analysed"

    before = _index_scans(conn)
    channel = channels[1]  # holds the messages g % 3 == 1: 7, 10, ..., 29998
    started = time.monotonic()
    r = api.get("/messages/search", owner.token, params={"channelId": channel, "query": "number 29998"})
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert [m["content"].split(" about ")[0] for m in r.json()["messages"]] == ["message number 29998"]

    # The server's backend reports its counters when it goes idle (at most a second later).
    deadline = time.monotonic() + 10
    while True:
        after = _index_scans(conn)
        used = {name for name, n in after.items() if n > before.get(name, 0)}
        if used or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "ix_messages_search" in used, (used, elapsed)
    assert "ix_messages_channel_id_id" not in used, (used, elapsed)

    # The statement models/storage/search.py writes, explained on the same never-analysed table.
    from models.storage.search import hits_cte

    hits, params = hits_cte("m.id", "number 29998", channel, postgres=True)
    plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {hits} SELECT count(*) FROM hits", params))
    assert "ix_messages_search" in plan and "ix_messages_channel_id_id" not in plan and "Seq Scan" not in plan, plan


def test_literal_search_still_walks_only_its_channel(bulk):
    """A query with no word at all (`:)`) cannot use the word index: it reads the channel through
    the btree, never the whole table."""
    api, owner, channels, conn = bulk
    from models.storage.search import hits_cte

    hits, params = hits_cte("m.id", ":)", channels[0], postgres=True)
    plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {hits} SELECT count(*) FROM hits", params))
    assert "ix_messages_channel_id_id" in plan and "Seq Scan" not in plan, plan
    r = api.get("/messages/search", owner.token, params={"channelId": channels[0], "query": ":)"})
    assert r.status_code == 200 and r.json()["total"] == 0, r.text
