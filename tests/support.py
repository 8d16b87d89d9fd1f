"""Test support: a real server process, a fresh database per run, and an HTTP client."""
from __future__ import annotations

import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("PV_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PV_TEST_REDIS", "redis://127.0.0.1:6379/0")


def backend() -> str:
    return os.environ.get("PV_TEST_DB", "sqlite")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_pg_database() -> tuple[str, str]:
    """A fresh PostgreSQL database; returns (name, async url)."""
    import psycopg

    name = f"pv_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"


def drop_pg_database(name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:
        pass


@dataclass
class Database:
    url: str
    pg_name: str | None = None

    @classmethod
    def fresh(cls, tmp: Path) -> Database:
        if backend() == "postgres":
            name, url = create_pg_database()
            return cls(url=url, pg_name=name)
        return cls(url=f"sqlite+aiosqlite:///{tmp / f'pv-{uuid.uuid4().hex[:8]}.db'}")

    def drop(self) -> None:
        if self.pg_name:
            drop_pg_database(self.pg_name)


@dataclass
class ServerProcess:
    """`python -m projectvoice run` on a free port."""

    database: Database
    data_dir: Path
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    port: int = field(default_factory=free_port)
    extra_env: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    root: Path = ROOT  # the tree whose code runs (bench/signalling.py --ours-from compares two)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict:
        env = dict(os.environ)
        env.update({
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATABASE_URL": self.database.url,
            "DATA_DIR": str(self.data_dir),
            "JWT_SECRET": self.jwt_secret,
            "LOG_LEVEL": "warning",
            "VALIDATE_RESPONSES": "1",
            # The shared test server registers hundreds of users a minute from one IP; the
            # limit tests start their own servers with limits on (tests/test_limits.py).
            "RATE_LIMITS_ENABLED": "0",
            "PYTHONUNBUFFERED": "1",
        })
        env.pop("REDIS_URL", None)
        env.update(self.extra_env)
        return env

    def start(self, wait: float = 60.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "projectvoice", "run"], cwd=self.root,
                                     env=self.env(), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        return self.proc.returncode if self.proc else None


@contextmanager
def own_server(tmp: Path, extra_env: dict | None = None):
    """A server process on a fresh database of its own, stopped and its database dropped after."""
    database = Database.fresh(tmp)
    try:
        proc = ServerProcess(database=database, data_dir=tmp / "data", extra_env=dict(extra_env or {})).start()
        try:
            yield proc
        finally:
            proc.stop()
    finally:
        database.drop()


_names = itertools.count(1)


def unique(prefix: str = "u") -> str:
    return f"{prefix}{next(_names)}{secrets.token_hex(3)}"


class Api:
    """httpx against the server under /api, with the small helpers every test needs."""

    def __init__(self, base: str):
        self.base = base
        # Idle keep-alive connections are dropped after 2 s, before uvicorn closes its end at 5 s:
        # with httpx's default (also 5 s) a request could go out on a socket the server was
        # closing and fail with "Connection reset by peer" (seen once in CI after a slow module).
        self.client = httpx.Client(base_url=f"{base}/api", timeout=30,
                                   limits=httpx.Limits(keepalive_expiry=2.0))

    def request(self, method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        r = self.client.request(method, path, headers=headers, **kw)
        assert r.status_code != 500, f"{method} {path} -> 500: {r.text}"
        self.check_contract(r)
        return r

    @staticmethod
    def check_contract(r: httpx.Response) -> None:
        """Every response must be one the OpenAPI document promises (tests/contract.py)."""
        from tests.contract import contract

        try:
            body = r.json() if r.content else None
        except ValueError:
            body = r.content
        contract().check(r.request.method, r.request.url.path, r.status_code,
                         r.headers.get("content-type", ""), body)

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token, **kw)

    def post(self, path, token=None, **kw):
        return self.request("POST", path, token, **kw)

    def put(self, path, token=None, **kw):
        return self.request("PUT", path, token, **kw)

    def patch(self, path, token=None, **kw):
        return self.request("PATCH", path, token, **kw)

    def delete(self, path, token=None, **kw):
        return self.request("DELETE", path, token, **kw)

    def register(self, username: str | None = None, password: str = "password123") -> Account:
        username = username or unique("user")
        email = f"{username.lower()}@example.com"
        r = self.post("/auth/register", json={"username": username, "email": email, "password": password})
        assert r.status_code == 201, r.text
        data = r.json()
        return Account(token=data["token"], user=data["user"], email=email, password=password)


@dataclass
class Account:
    token: str
    user: dict
    email: str
    password: str

    @property
    def id(self) -> int:
        return self.user["id"]


def create_server(api: Api, owner: Account, name: str | None = None) -> dict:
    r = api.post("/servers", owner.token, json={"name": name or unique("server"), "description": "d"})
    assert r.status_code == 201, r.text
    return r.json()


def create_channel(api: Api, owner: Account, server_id: int, type: str = "text", name: str | None = None) -> dict:
    r = api.post(f"/servers/{server_id}/channels", owner.token, json={"name": name or unique("ch"), "type": type})
    assert r.status_code == 201, r.text
    return r.json()


def join_server(api: Api, owner: Account, server_id: int, *members: Account) -> None:
    """Owner invites, each account accepts (needs the invites area)."""
    r = api.post(f"/invite/{server_id}/invite", owner.token, json={})
    assert r.status_code == 201, r.text
    token = r.json()["invite"]["token"]
    for m in members:
        r = api.post(f"/invite/invite/{token}/accept", m.token)
        assert r.status_code == 200, r.text


def make_admin(api: Api, server: ServerProcess) -> Account:
    """A global admin, created the only way there is: the create-admin command."""
    acct = api.register(unique("admin"))
    r = subprocess.run([sys.executable, "-m", "projectvoice", "create-admin", "--username",
                        acct.user["username"], "--email", acct.email, "--password", acct.password],
                       cwd=ROOT, env=server.env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = api.post("/auth/login", json={"email": acct.email, "password": acct.password})
    assert r.status_code == 200 and r.json()["user"]["role"] == "admin", r.text
    return Account(token=r.json()["token"], user=r.json()["user"], email=acct.email, password=acct.password)


@contextmanager
def redis_cluster(tmp: Path, count: int, redis_db: int, **extra_env: str):
    """`count` server processes sharing one fresh PostgreSQL database and Redis db `redis_db`
    (flushed before and after), started one after the other (the first runs the migrations);
    yields (processes, redis client). Skips unless PV_TEST_DB=postgres and Redis answers."""
    import pytest

    if backend() != "postgres":
        pytest.skip("the several-process test needs PostgreSQL (PV_TEST_DB=postgres)")
    redis = pytest.importorskip("redis")
    url = f"redis://127.0.0.1:6379/{redis_db}"
    try:
        r = redis.Redis.from_url(url)
        r.flushdb()
    except Exception as e:  # pragma: no cover
        pytest.skip(f"Redis not reachable: {e}")
    database = Database.fresh(tmp)
    secret = secrets.token_urlsafe(32)
    env = {"REDIS_URL": url, "VOICE_HEARTBEAT_SECONDS": "1",
           "VOICE_REDIS_CHANNEL": f"pv-test-{secrets.token_hex(4)}", **extra_env}
    procs: list[ServerProcess] = []
    try:
        for i in range(count):
            procs.append(ServerProcess(database=database, data_dir=tmp / f"data{i}", jwt_secret=secret,
                                       extra_env=dict(env)).start())
        yield procs, r
    finally:
        for p in procs:
            p.stop()
        database.drop()
        r.flushdb()


def make_friends(api: Api, a: Account, b: Account) -> None:
    r = api.post("/friends/request", a.token, json={"friendId": b.id})
    assert r.status_code == 201, r.text
    r = api.post(f"/friends/accept/{r.json()['request']['id']}", b.token)
    assert r.status_code == 200, r.text


def sync_engine(database: Database) -> sa.Engine:
    return sa.create_engine(database.url.replace("+aiosqlite", ""))


def seed_members(database: Database, server_id: int, n: int) -> None:
    """n accounts that joined the server with the Member role, written straight to the database:
    the accounts in one multi-row INSERT, their memberships and roles with INSERT ... SELECT."""
    prefix = unique("seed")
    rows = ",".join(
        f"('{prefix}_{i}', '{prefix}_{i}@example.com', 'x', 'user', TRUE, 'offline', '{i % 10000:04d}', "
        f"0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)" for i in range(n))
    engine = sync_engine(database)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO users (username, email, password_hash, role, is_active, status, tag, "
                f"token_version, created_at, updated_at) VALUES {rows}"))
            conn.execute(sa.text(
                "INSERT INTO server_members (server_id, user_id, role, is_muted, is_deafened, joined_at) "
                "SELECT :sid, id, 'member', FALSE, FALSE, CURRENT_TIMESTAMP FROM users "
                "WHERE username LIKE :p ESCAPE '!' ORDER BY id"), {"sid": server_id, "p": f"{prefix}!_%"})
            conn.execute(sa.text(
                "INSERT INTO member_roles (member_id, role_id) SELECT m.id, r.id FROM server_members m "
                "JOIN users u ON u.id = m.user_id JOIN roles r ON r.server_id = m.server_id "
                "AND r.preset = 'member' WHERE m.server_id = :sid AND u.username LIKE :p ESCAPE '!'"),
                {"sid": server_id, "p": f"{prefix}!_%"})
    finally:
        engine.dispose()
