"""Database outage: PostgreSQL stops under a running server and comes back.

The test runs its own PostgreSQL cluster (initdb into a temporary directory, another port) so the
machine's PostgreSQL and the other tests are not disturbed. While it is down, every request must
answer 503 in the error shape within a couple of seconds (no hang, no 500, the process alive);
once it is back the server must recover by itself, and every write it acknowledged must be there.
"""
from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import Api, Database, ServerProcess, backend, create_server, free_port, unique
from tests.support_sockets import Client, add_members

pytestmark = pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL pass only (PV_TEST_DB=postgres)")

# How long a request may take while the database is down (DB_TIMEOUT is 2 s).
OUTAGE_ANSWER_WITHIN = 3.5


class Cluster:
    """A throwaway PostgreSQL cluster driven with initdb/pg_ctl (as the postgres user when root)."""

    def __init__(self):
        initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not initdbs:
            pytest.skip("PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb, pg_ctl) are not installed")
        self.bindir = Path(initdbs[-1]).parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pv-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def run(self, tool: str, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"{tool} failed: {r.stdout}\n{r.stderr}"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        self.run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "pg.log"), "-w", "-t", "30", "start")

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash: no shutdown checkpoint, recovery from the WAL on the next start."""
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    c.start()
    yield c
    c.destroy()


@pytest.fixture(scope="module")
def outage_server(cluster, tmp_path_factory):
    import psycopg

    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "pv_outage"')
    db = Database(url=f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/pv_outage")
    proc = ServerProcess(database=db, data_dir=tmp_path_factory.mktemp("outage"),
                         extra_env={"DB_TIMEOUT": "2", "DB_POOL_SIZE": "5"}).start()
    yield proc
    proc.stop()


def test_database_outage_answers_503_and_recovers(cluster, outage_server):
    api = Api(outage_server.base)
    owner = api.register()
    # Several servers, filled one after another: the writers can create more channels than one
    # server may hold (500) before the test ends.
    server_ids = []
    for _ in range(8):
        r = api.post("/servers", owner.token, json={"name": unique("srv"), "description": "d"})
        assert r.status_code == 201, r.text
        server_ids.append(r.json()["id"])
    server_id = server_ids[0]
    headers = {"Authorization": f"Bearer {owner.token}"}

    acknowledged: list[tuple[int, str]] = []
    results: list[tuple[float, int, float, dict | None]] = []  # (started, status, seconds, body)
    stop = threading.Event()
    lock = threading.Lock()

    def writer():
        with httpx.Client(base_url=f"{outage_server.base}/api", timeout=30, headers=headers) as c:
            while not stop.is_set():
                name = unique("ch")
                with lock:
                    target = server_ids[min(len(acknowledged) // 400, len(server_ids) - 1)]
                t0 = time.monotonic()
                try:
                    resp = c.post(f"/servers/{target}/channels", json={"name": name, "type": "text"})
                except httpx.HTTPError as exc:  # the server must always answer
                    with lock:
                        results.append((t0, -1, time.monotonic() - t0, {"exception": repr(exc)}))
                    continue
                elapsed = time.monotonic() - t0
                try:
                    body = resp.json()
                except ValueError:
                    body = None
                with lock:
                    results.append((t0, resp.status_code, elapsed, body))
                    if resp.status_code == 201:
                        acknowledged.append((target, name))
                if resp.status_code != 201:
                    time.sleep(0.05)

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        assert acknowledged, f"no write succeeded before the outage: {results[-3:]}"

        down_at = time.monotonic()
        cluster.stop("immediate")
        # While it is down: reads, writes, the bearer check and health all answer 503, quickly.
        time.sleep(1.0)
        for path, method in (("/auth/me", "GET"), (f"/servers/{server_id}", "GET"), ("/servers", "GET"),
                             ("/health", "GET")):
            t0 = time.monotonic()
            resp = httpx.request(method, f"{outage_server.base}/api{path}", headers=headers, timeout=30)
            took = time.monotonic() - t0
            assert resp.status_code == 503, (path, resp.status_code, resp.text)
            assert took < OUTAGE_ANSWER_WITHIN, (path, took)
            if path != "/health":
                assert resp.json() == {"error": "Database unavailable, try again shortly",
                                       "code": "database_unavailable"}
                assert resp.headers["retry-after"].isdigit()
        r = httpx.post(f"{outage_server.base}/api/auth/login", json={"email": owner.email, "password": owner.password},
                       timeout=30)
        assert r.status_code == 503, r.text
        time.sleep(3.0)
        assert outage_server.proc.poll() is None, "the server process died during the outage"

        starting_at = time.monotonic()
        cluster.start()
        up_at = time.monotonic()
        recovered = None
        while time.monotonic() - up_at < 20:
            with lock:
                recovered = next((t0 for t0, status, _, _ in results if t0 > up_at and status == 201), None)
            if recovered:
                break
            time.sleep(0.2)
        assert recovered is not None, f"no write succeeded within 20 s of the database coming back: {results[-3:]}"
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)

    during = [(status, took, body) for t0, status, took, body in results if down_at + 0.5 < t0 < starting_at - 1.0]
    assert during, "no request was made during the outage"
    bad = [(s, b) for _, s, _, b in results if s not in (201, 503)]
    assert not bad, f"answers other than 201/503: {bad[:5]}"
    assert all(s == 503 for s, _, _ in during), [s for s, _, _ in during]
    slow = [took for _, took, _ in during if took >= OUTAGE_ANSWER_WITHIN]
    assert not slow, f"{len(slow)} requests took >= {OUTAGE_ANSWER_WITHIN}s during the outage: {max(slow):.1f}s"
    assert all(b == {"error": "Database unavailable, try again shortly", "code": "database_unavailable"}
               for s, _, b in during)
    # Once a write has been answered 201, every write sent after that answer succeeds. (Counted
    # from the answer, not from when that write was sent: it may have waited for a connection
    # while another, sent a moment later, met the database still starting up.)
    answered = min(t0 + took for t0, s, took, _ in results if t0 > up_at and s == 201)
    after = [(round(t0 - answered, 2), s, round(took, 2), b) for t0, s, took, b in results if t0 > answered]
    assert all(s == 201 for _, s, _, _ in after), [a for a in after if a[1] != 201][:5]

    # Every acknowledged write survived the crash.
    names = set()
    for sid in server_ids:
        r = api.get(f"/servers/{sid}/channels", owner.token)
        assert r.status_code == 200, r.text
        names |= {(sid, c["name"]) for c in r.json()}
    missing = [n for n in acknowledged if n not in names]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged writes are missing"
    assert outage_server.proc.poll() is None
    print(f"outage: {len(during)} requests answered 503, slowest {max(t for _, t, _ in during):.2f}s; "
          f"recovered {recovered - up_at:.2f}s after the database came back; "
          f"{len(acknowledged)} acknowledged writes all present")


def test_restart_while_idle_costs_no_request(cluster, outage_server):
    """A database restart while the server sits idle leaves dead connections in the pool
    (SQLAlchemy's and models/storage/sql.py's); they are pinged and replaced before use, so not even the
    first requests afterwards fail."""
    api = Api(outage_server.base)
    owner = api.register()
    server_id = create_server(api, owner)["id"]
    paths = ["/servers", f"/servers/{server_id}", "/auth/me"]

    def burst(n: int) -> list[int]:  # concurrent: several pooled connections in use at once
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda i: api.get(paths[i % len(paths)], owner.token).status_code, range(n)))

    assert set(burst(24)) == {200}
    cluster.stop("fast")
    cluster.start()
    time.sleep(1.5)  # longer than PING_AFTER_IDLE: the pooled connections count as idle
    statuses = [api.get(paths[i % len(paths)], owner.token).status_code for i in range(12)]
    r = api.post(f"/servers/{server_id}/channels", owner.token, json={"name": unique("ch"), "type": "text"})
    assert statuses == [200] * 12, statuses
    assert r.status_code == 201, r.text


def test_restart_before_first_use_of_a_pooled_connection_costs_no_request(cluster, tmp_path):
    """The hot-path pool opens connections ahead of demand (one at start-up): one that never
    served a request before a restart is as dead as a used one, and is pinged like it (it was
    handed out unchecked, and the first request after the restart answered 503)."""
    import psycopg

    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "pv_outage_fresh"')
    db = Database(url=f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/pv_outage_fresh")
    proc = ServerProcess(database=db, data_dir=tmp_path / "fresh", extra_env={"DB_TIMEOUT": "2"}).start()
    try:
        api = Api(proc.base)
        owner = api.register()  # through SQLAlchemy's pool: the hot-path pool's connection is unused
        cluster.stop("fast")
        cluster.start()
        time.sleep(1.5)
        statuses = [api.get(path, owner.token).status_code for path in ("/auth/me", "/servers", "/auth/me")]
        assert statuses == [200, 200, 200], statuses
    finally:
        proc.stop()


def test_read_on_a_connection_killed_under_it_is_retried(cluster, outage_server):
    """Connections killed while they sat idle for less than the ping threshold (a restart right
    after a burst, an administrator's pg_terminate_backend) fail their next statement: a read is
    sent once more on a fresh connection instead of answering 503."""
    import psycopg

    api = Api(outage_server.base)
    owner = api.register()
    server_id = create_server(api, owner)["id"]
    paths = ["/servers", f"/servers/{server_id}", "/auth/me"]
    for _ in range(3):
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda i: api.get(paths[i % 3], owner.token).status_code, range(24))) == {200}
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE datname = 'pv_outage' AND pid <> pg_backend_pid()").fetchone()[0]
        assert killed >= 1
        statuses = [api.get(paths[i % 3], owner.token).status_code for i in range(12)]
        assert statuses == [200] * 12, statuses


# ---------------------------------------------------------------------------------- Redis


class RedisServer:
    """A private redis-server on a free port (no persistence: a restart loses every key)."""

    def __init__(self, workdir: Path):
        if not shutil.which("redis-server"):
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.dir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def redis_pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("redis-outage")
    rs = RedisServer(tmp)
    rs.start()
    database = Database.fresh(tmp)
    env = {"REDIS_URL": rs.url, "VOICE_HEARTBEAT_SECONDS": "1"}
    procs: list[ServerProcess] = []
    try:
        for i in range(2):
            procs.append(ServerProcess(database=database, data_dir=tmp / f"d{i}",
                                       jwt_secret=procs[0].jwt_secret if procs else "s" * 40,
                                       extra_env=env).start())
        yield rs, procs
    finally:
        for p in procs:
            p.stop()
        rs.stop()
        database.drop()


async def _voice_exchange(p1: ServerProcess, p2: ServerProcess, alice, bob, voice_id: int, timeout: float = 4):
    """Alice on process 1 and Bob on process 2 meet in a voice room and pass one signal."""
    a = await Client(p1.base, "seed", alice.token).connect()
    b = await Client(p2.base, "desktop", bob.token).connect()
    try:
        await a.emit("join-room", voice_id)
        await a.wait("created", timeout)
        await b.emit("join-room", voice_id)
        created = await b.wait("created", timeout)
        assert a.sid in [p["socketId"] for p in created["participants"]]
        assert (await a.wait("user-connected", timeout))["socketId"] == b.sid
        await a.emit("signal", {"to": b.sid, "type": "offer", "sdp": {"type": "offer", "sdp": "v=0"}})
        assert (await b.wait("signal", timeout))["from"] == a.sid
    finally:
        await a.close()
        await b.close()


@pytest.mark.timeout(180)
@pytest.mark.asyncio
async def test_redis_outage_keeps_rest_serving_and_voice_comes_back(redis_pair):
    from tests.support import create_channel, create_server
    rs, (p1, p2) = redis_pair
    api1, api2 = Api(p1.base), Api(p2.base)
    alice, bob = api1.register(), api2.register()
    sv = create_server(api1, alice)
    add_members(api1, alice, sv["id"], bob)
    voice = create_channel(api1, alice, sv["id"], type="voice")
    text = create_channel(api1, alice, sv["id"], type="text")
    await _voice_exchange(p1, p2, alice, bob, voice["id"])

    rs.stop()
    # REST keeps working on both processes, promptly: accounts, rate-limited routes (the limiter
    # fails open), message posting (whose live event cannot be published), reads.
    for api, who in ((api1, alice), (api2, bob)):
        for _ in range(3):
            t0 = time.monotonic()
            acct = api.register()
            r = api.post("/auth/login", json={"email": acct.email, "password": acct.password})
            assert r.status_code == 200, r.text
            r = api.post("/messages", who.token, json={"content": "during the Redis outage", "channelId": text["id"]})
            assert r.status_code == 201, r.text
            assert api.get("/servers", who.token).status_code == 200
            assert api.get("/health").status_code == 200
            assert time.monotonic() - t0 < 5, "REST slowed down by the Redis outage"
    assert p1.proc.poll() is None and p2.proc.poll() is None

    rs.start()
    deadline = time.monotonic() + 40
    last = None
    while time.monotonic() < deadline:
        try:
            await _voice_exchange(p1, p2, alice, bob, voice["id"])
            break
        except (AssertionError, Exception) as exc:  # not yet reconnected
            last = exc
            await asyncio.sleep(1)
    else:
        raise AssertionError(f"voice did not work again within 40 s of Redis coming back: {last!r}")
    r = api1.get(f"/messages?channelId={text['id']}", alice.token)
    assert r.status_code == 200
    assert len([m for m in r.json()["messages"] if m["content"] == "during the Redis outage"]) == 6
