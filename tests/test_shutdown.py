"""Graceful shutdown: SIGTERM during a burst of message writes.

Uvicorn stops accepting, lets requests in flight finish (bounded by timeout_graceful_shutdown),
then the lifespan closes the pool. Every message the server acknowledged with 201 must be in the
database afterwards, and the process must exit in bounded time.
"""
from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.support import Api, Database, ServerProcess, create_channel, create_server, unique

EXIT_WITHIN = 15.0  # timeout_graceful_shutdown is 10 s


def _stored_contents(database: Database, channel_id: int) -> set[str]:
    if database.pg_name:
        import psycopg

        from tests.support import PG_ADMIN_URL

        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database.pg_name
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT content FROM messages WHERE channel_id = %s", (channel_id,)).fetchall()
    else:
        import sqlite3

        path = database.url.split(":///", 1)[1]
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT content FROM messages WHERE channel_id = ?", (channel_id,)).fetchall()
    return {r[0] for r in rows}


@pytest.fixture
def own_server(tmp_path):
    database = Database.fresh(tmp_path)
    proc = ServerProcess(database=database, data_dir=tmp_path / "data",
                         extra_env={"RATE_LIMIT_MESSAGE": "100000/minute", "LOG_LEVEL": "info"}).start()
    yield proc, database
    proc.stop(signal.SIGKILL)
    database.drop()


def test_sigterm_during_writes_keeps_every_acknowledged_message(own_server):
    proc, database = own_server
    api = Api(proc.base)
    owner = api.register()
    server = create_server(api, owner)
    channel = create_channel(api, owner, server["id"])
    r = httpx.post(f"{proc.base}/api/messages", json={"content": "before", "channelId": channel["id"]},
                   headers={"Authorization": f"Bearer {owner.token}"}, timeout=30)
    assert r.status_code == 201, r.text

    acknowledged: list[str] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(10**9))

    def writer():
        with httpx.Client(base_url=f"{proc.base}/api", timeout=30,
                          headers={"Authorization": f"Bearer {owner.token}"}) as c:
            while not stop.is_set():
                with lock:
                    content = f"burst-{next(counter)}-{unique('m')}"
                try:
                    resp = c.post("/messages", json={"content": content, "channelId": channel["id"]})
                    key = str(resp.status_code)
                except httpx.HTTPError as exc:  # refused or reset once the server stops: not acknowledged
                    key = type(exc).__name__
                with lock:
                    outcomes[key] = outcomes.get(key, 0) + 1
                    if key == "201":
                        assert resp.json()["content"] == content
                        acknowledged.append(content)
                if key != "201":
                    time.sleep(0.02)

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    with lock:
        before_term = len(acknowledged)
    assert before_term > 0, outcomes
    t0 = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    try:
        code = proc.proc.wait(EXIT_WITHIN)
    except Exception:
        pytest.fail(f"the server did not exit within {EXIT_WITHIN}s of SIGTERM")
    exited_after = time.monotonic() - t0
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(30)

    # Uvicorn re-raises the SIGTERM it caught once its graceful shutdown is done.
    assert code in (0, -signal.SIGTERM), f"exit status {code}:\n{proc.log()}"
    assert "Application shutdown complete" in proc.log(), proc.log()
    assert not [k for k in outcomes if k.startswith("5")], outcomes
    stored = _stored_contents(database, channel["id"])
    missing = [c for c in acknowledged if c not in stored]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged messages are not in the database"
    print(f"shutdown: exited {exited_after:.2f}s after SIGTERM; {len(acknowledged)} acknowledged "
          f"({len(acknowledged) - before_term} after the first 1.5 s), all stored; outcomes {outcomes}")


def test_sigterm_exits_promptly_when_idle(tmp_path):
    database = Database.fresh(tmp_path)
    proc = ServerProcess(database=database, data_dir=tmp_path / "data", extra_env={"LOG_LEVEL": "info"}).start()
    try:
        t0 = time.monotonic()
        code = proc.stop(signal.SIGTERM, timeout=EXIT_WITHIN)
        assert time.monotonic() - t0 < 5
        assert code in (0, -signal.SIGTERM), proc.log()
        assert "Application shutdown complete" in proc.log(), proc.log()
    finally:
        proc.stop(signal.SIGKILL)
        database.drop()
