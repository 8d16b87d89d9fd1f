"""Message history and search at scale (not a test).

Creates a fresh PostgreSQL database, starts the server on it (migrations included), seeds one text
channel with 10,000 messages and another with 1,000,000 straight into the database (server-side
INSERT ... SELECT, with the channel's counter kept by the same triggers as in production), then
measures through HTTP the median latency of:

- page 1 (`GET /messages?channelId&limit=50`),
- a `before` cursor page at random positions all through the channel,
- a search whose word is in 1% of the channel's messages (page 1, `total` counted),

for both channels, and prints them with the ratio 1M / 10k. Each channel has its own rare word,
so the 10k channel's search really has 100 matches and the 1M channel's 10,000. Alongside, the
database's own execution time of the same SQL (EXPLAIN ANALYZE, median) shows where time goes.

    .venv/bin/python bench/messages_scale.py [--small 10000] [--large 1000000] [--requests 50]

Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust), like `make test-postgres`. Takes a few
minutes, mostly the seeding and index build; the requests run one at a time (no load generator).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import Api, Database, ServerProcess, create_channel, create_server  # noqa: E402

RARE = {"small": "zephyrquill", "large": "quokkablaze"}


def vocabulary(n: int = 3000, seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    letters = "abcdefghijklmnoprstuvw"
    words = set()
    while len(words) < n:
        words.add("".join(rnd.choice(letters) for _ in range(rnd.randint(3, 9))))
    return sorted(words)


def seed_channel(conn, channel_id: int, user_ids: list[int], count: int, rare: str, vocab: list[str]) -> None:
    """`count` messages of 4..14 random words, every 100th with `rare` among them, one second apart."""
    conn.execute("""
        INSERT INTO messages (channel_id, user_id, content, is_edited, created_at, updated_at)
        SELECT %(cid)s,
               (%(users)s::int[])[1 + g %% cardinality(%(users)s::int[])],
               (SELECT string_agg(w, ' ')
                  FROM (SELECT (%(vocab)s::text[])[1 + floor(random() * cardinality(%(vocab)s::text[]))::int] AS w
                          FROM generate_series(1, 4 + g %% 11)) x)
               || CASE WHEN g %% 100 = 0 THEN ' ' || %(rare)s || ' end' ELSE '' END,
               false,
               now() - make_interval(secs => %(count)s - g),
               now() - make_interval(secs => %(count)s - g)
          FROM generate_series(1, %(count)s) g
    """, {"cid": channel_id, "users": user_ids, "vocab": vocab, "rare": rare, "count": count})


def load(database: Database, channels: dict[str, tuple[int, int]], user_ids: list[int]) -> None:
    import psycopg

    url = database.url.replace("postgresql+psycopg://", "postgresql://")
    vocab = vocabulary()
    with psycopg.connect(url, autocommit=True) as conn:
        # Bulk-load pattern: drop the message indexes, insert, rebuild them from their own
        # definitions (identical indexes, built once instead of row by row).
        defs = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'messages' "
                            "AND indexname <> 'messages_pkey'").fetchall()
        for name, _ in defs:
            conn.execute(f'DROP INDEX "{name}"')
        for key, (cid, count) in channels.items():
            t = time.monotonic()
            seed_channel(conn, cid, user_ids, count, RARE[key], vocab)
            print(f"  seeded {count:>9,} messages into channel {cid} in {time.monotonic() - t:5.1f} s", flush=True)
        t = time.monotonic()
        conn.execute("SET maintenance_work_mem = '256MB'")
        for _name, definition in defs:
            conn.execute(definition)
        print(f"  rebuilt {len(defs)} indexes in {time.monotonic() - t:5.1f} s", flush=True)
        t = time.monotonic()
        conn.execute("VACUUM ANALYZE messages")
        conn.execute("VACUUM ANALYZE channels")
        print(f"  vacuum analyze in {time.monotonic() - t:5.1f} s", flush=True)
        for key, (cid, count) in channels.items():
            got = conn.execute("SELECT message_count FROM channels WHERE id = %s", (cid,)).fetchone()[0]
            assert got == count, (key, got, count)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed_pair(client: httpx.Client, token: str, path: str, runs: dict[str, tuple[list[dict], object]],
               warmup: int = 5) -> dict[str, float]:
    """Median latency per channel; requests alternate between the channels so that load from
    elsewhere on the machine lands on both alike."""
    headers = {"Authorization": f"Bearer {token}"}
    samples: dict[str, list[float]] = {key: [] for key in runs}
    n = min(len(params) for params, _ in runs.values())
    for i in range(-warmup, n):
        for key, (params, check) in runs.items():
            t = time.perf_counter()
            r = client.get(path, params=params[max(i, 0)], headers=headers)
            elapsed = time.perf_counter() - t
            assert r.status_code == 200, r.text
            check(r.json())
            if i >= 0:
                samples[key].append(elapsed)
    return {key: median_ms(s) for key, s in samples.items()}


def sql_ms(database: Database, sql: str, params_list: list[dict]) -> float:
    import psycopg

    url = database.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        samples = []
        for params in params_list[:5] + params_list[:10]:
            plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).fetchone()[0]
            samples.append(plan[0]["Execution Time"] / 1000)
        return median_ms(samples[5:])


PAGE_SQL = """SELECT m.*, u.* FROM messages m JOIN users u ON u.id = m.user_id
              WHERE m.channel_id = %(cid)s ORDER BY m.id DESC LIMIT 50"""
CURSOR_SQL = """SELECT m.*, u.* FROM messages m JOIN users u ON u.id = m.user_id
                WHERE m.channel_id = %(cid)s AND m.id < %(before)s ORDER BY m.id DESC LIMIT 50"""
SEARCH_SQL = """WITH hits AS MATERIALIZED (
                    SELECT m.id FROM messages m
                     WHERE m.channel_id + 0 = %(cid)s
                       AND (to_tsvector('simple', m.content) || array_to_tsvector(ARRAY['channel ' || m.channel_id::text]))
                           @@ (phraseto_tsquery('simple', %(q)s) && CAST('''channel ' || %(cid)s || ''' AS tsquery)))
                SELECT id, count(*) OVER () FROM hits ORDER BY id DESC LIMIT 50"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards (its name is printed)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pv-bench-messages-"))
    from tests.support import create_pg_database

    name, url = create_pg_database()
    database = Database(url=url, pg_name=name)
    server = ServerProcess(database=database, data_dir=tmp / "data",
                           extra_env={"VALIDATE_RESPONSES": "0", "LOG_LEVEL": "warning"})
    try:
        server.start()
        api = Api(server.base)
        owner = api.register()
        others = [api.register() for _ in range(4)]
        sv = create_server(api, owner)
        small = create_channel(api, owner, sv["id"])["id"]
        large = create_channel(api, owner, sv["id"])["id"]
        channels = {"small": (small, args.small), "large": (large, args.large)}
        print(f"seeding (database {name})", flush=True)
        load(database, channels, [owner.id] + [o.id for o in others])

        import psycopg

        pg_url = url.replace("postgresql+psycopg://", "postgresql://")
        rnd = random.Random(11)
        results: dict[str, dict[str, float]] = {"page 1": {}, "before cursor": {}, "search 1%": {}}
        sql: dict[str, dict[str, float]] = {"page 1": {}, "before cursor": {}, "search 1%": {}}
        client = httpx.Client(base_url=f"{server.base}/api", timeout=60)
        befores, page_runs, cursor_runs, search_runs = {}, {}, {}, {}
        for key, (cid, count) in channels.items():
            with psycopg.connect(pg_url) as conn:
                lo, hi = conn.execute("SELECT min(id), max(id) FROM messages WHERE channel_id = %s", (cid,)).fetchone()
            befores[key] = [rnd.randint(lo + 100, hi) for _ in range(args.requests)]

            def page_ok(data, count=count):
                assert len(data["messages"]) == 50 and data["total"] == count

            def search_ok(data, count=count):
                assert data["total"] == count // 100 and len(data["messages"]) == min(50, count // 100)

            page_runs[key] = ([{"channelId": cid, "limit": 50}] * args.requests, page_ok)
            cursor_runs[key] = ([{"channelId": cid, "limit": 50, "before": b} for b in befores[key]], page_ok)
            search_runs[key] = ([{"channelId": cid, "query": RARE[key], "limit": 50}] * args.requests, search_ok)
        results["page 1"] = timed_pair(client, owner.token, "/messages", page_runs)
        results["before cursor"] = timed_pair(client, owner.token, "/messages", cursor_runs)
        results["search 1%"] = timed_pair(client, owner.token, "/messages/search", search_runs)
        for key, (cid, _count) in channels.items():
            sql["page 1"][key] = sql_ms(database, PAGE_SQL, [{"cid": cid}] * 10)
            sql["before cursor"][key] = sql_ms(database, CURSOR_SQL,
                                               [{"cid": cid, "before": b} for b in befores[key]])
            sql["search 1%"][key] = sql_ms(database, SEARCH_SQL, [{"cid": cid, "q": RARE[key]}] * 10)

        s, l_ = f"{args.small:,}", f"{args.large:,}"
        print()
        print(f"median over {args.requests} HTTP requests each (server: 1 process, PostgreSQL, response validation off)")
        print(f"{'request':<15} {s + ' ms':>12} {l_ + ' ms':>14} {'ratio':>7}   | SQL only: {s:>8} {l_:>10} {'ratio':>7}")
        worst = 0.0
        for kind in results:
            a, b = results[kind]["small"], results[kind]["large"]
            sa_, sb = sql[kind]["small"], sql[kind]["large"]
            worst = max(worst, b / a)
            print(f"{kind:<15} {a:>12.2f} {b:>14.2f} {b / a:>6.2f}x   | {'':>10} {sa_:>8.3f} {sb:>10.3f} {sb / sa_:>6.2f}x")
        print(f"\nworst HTTP ratio {worst:.2f}x (target: within 3x)")
    finally:
        server.stop()
        if not args.keep:
            database.drop()


if __name__ == "__main__":
    main()
