"""Several server processes behind nginx (deploy/nginx/projectvoice.conf), sharing PostgreSQL and
Redis: REST through nginx, and the Node.js socket.io-client through nginx with the polling
transport only and with websocket only (tests/js/proxy_pair.mjs). PostgreSQL runs only
(PV_TEST_DB=postgres); nginx is installed when missing (tests/browser_setup.py, as Chromium is for
the browser tests); skipped only when that is impossible (not root, no apt-get)."""
from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support import Api, Database, ServerProcess, backend, create_channel, create_server, free_port, join_server
from tests.support_sockets import Client, validate_event

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx" / "projectvoice.conf"
JS = ROOT / "tests" / "js"
REDIS_URL = "redis://127.0.0.1:6379/12"
pytestmark = [pytest.mark.timeout(180)]


def nginx_exe() -> str | None:
    """nginx, installed like the browser tests' Chromium when missing (tests/browser_setup.py)."""
    from tests.browser_setup import ensure_nginx

    return ensure_nginx()


def render(template: str, ports: list[int], listen: int, access_log: Path) -> str:
    """The deployment template with the test's upstream ports, listen address and access log."""
    for default, port in zip(("127.0.0.1:5001", "127.0.0.1:5002"), ports, strict=True):
        assert template.count(f"server {default} ") == 1, f"template lost its upstream {default}"
        template = template.replace(f"server {default} ", f"server 127.0.0.1:{port} ")
    assert template.count("listen 80;") == 1
    assert template.count("/var/log/nginx/projectvoice.access.log") == 1
    return (template.replace("listen 80;", f"listen 127.0.0.1:{listen};")
            .replace("/var/log/nginx/projectvoice.access.log", str(access_log)))


class Nginx:
    def __init__(self, exe: str, tmp: Path, upstream_ports: list[int]):
        self.tmp = tmp
        self.port = free_port()
        (tmp / "projectvoice.conf").write_text(render(TEMPLATE.read_text(), upstream_ports, self.port,
                                                                 tmp / "access.log"))
        temp_paths = "\n".join(f"    {kind}_temp_path {tmp / kind};"
                               for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (tmp / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {tmp / 'nginx.pid'};\nerror_log {tmp / 'error.log'} info;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {tmp / 'other.log'};\n{temp_paths}\n"
            f"    include {tmp / 'projectvoice.conf'};\n"
            "}\n")
        self.exe = exe
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        conf = str(self.tmp / "nginx.conf")
        check = subprocess.run([self.exe, "-t", "-c", conf, "-p", str(self.tmp)], capture_output=True, text=True)
        assert check.returncode == 0, f"the nginx template does not load:\n{check.stderr}"
        self.proc = subprocess.Popen([self.exe, "-c", conf, "-p", str(self.tmp), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.skip(f"nginx could not start: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{self.base}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"nginx did not proxy /api/health:\n{self.errors()}")

    def errors(self) -> str:
        try:
            return (self.tmp / "error.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def access(self) -> str:
        return (self.tmp / "access.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if backend() != "postgres":
        pytest.skip("the nginx deployment test needs PostgreSQL (PV_TEST_DB=postgres)")
    exe = nginx_exe()
    if exe is None:
        pytest.skip("nginx is not installed and could not be installed (needs root and apt-get; "
                    "Debian: apt-get install nginx)")
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    tmp = tmp_path_factory.mktemp("nginx")
    database = Database.fresh(tmp)
    secret = secrets.token_urlsafe(32)
    env = {"REDIS_URL": REDIS_URL, "VOICE_HEARTBEAT_SECONDS": "1", "LOG_LEVEL": "info",
           "VOICE_REDIS_CHANNEL": f"pv-nginx-{secrets.token_hex(4)}"}
    procs: list[ServerProcess] = []
    proxy = None
    try:
        for i in range(2):  # one after the other: the first runs the migrations
            procs.append(ServerProcess(database=database, data_dir=tmp / f"data{i}", jwt_secret=secret,
                                       extra_env=dict(env)).start())
        (tmp / "nginx").mkdir()
        proxy = Nginx(exe, tmp / "nginx", [p.port for p in procs]).start()
        yield proxy, procs
    finally:
        if proxy is not None:
            proxy.stop()
        for p in procs:
            p.stop()
        database.drop()
        r.flushdb()


def test_template_is_what_the_readme_describes():
    text = TEMPLATE.read_text()
    for directive in ("ip_hash;", "proxy_set_header Upgrade $http_upgrade;",
                      "proxy_set_header Connection $connection_upgrade;",
                      "proxy_set_header X-Forwarded-For $remote_addr;", "proxy_http_version 1.1;"):
        assert directive in text, directive


def test_rest_through_nginx(cluster):
    proxy, (p1, p2) = cluster
    api = Api(proxy.base)
    acct = api.register()
    r = httpx.get(f"{proxy.base}/api/auth/me", headers={"Authorization": f"Bearer {acct.token}",
                                                         "X-Forwarded-For": "203.0.113.9"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == acct.id
    request_id = r.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id  # nginx's $request_id, kept
    # Both processes share the database and the JWT secret: the token works on each directly.
    for p in (p1, p2):
        me = httpx.get(f"{p.base}/api/auth/me", headers={"Authorization": f"Bearer {acct.token}"}, timeout=10)
        assert me.status_code == 200 and me.json()["id"] == acct.id
    # The access line of whichever process answered has nginx's request id and the address nginx
    # saw, not the one the client claimed.
    deadline = time.monotonic() + 5
    line = None
    while line is None and time.monotonic() < deadline:
        for p in (p1, p2):
            for raw in p.log_path.read_text(errors="replace").splitlines():
                if request_id in raw and raw.startswith("{"):
                    line = json.loads(raw)
        time.sleep(0.1)
    assert line is not None, "no access line carries nginx's request id"
    assert line["ip"] == "127.0.0.1" and line["route"] == "/api/auth/me" and line["status"] == 200, line
    # Errors come through unchanged.
    r = httpx.get(f"{proxy.base}/api/auth/me", timeout=10)
    assert r.status_code == 401 and r.json()["code"]


async def _run_node(node_exe: str, *args) -> list[dict]:
    proc = await asyncio.create_subprocess_exec(node_exe, str(JS / "proxy_pair.mjs"), *map(str, args),
                                                cwd=str(JS), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 40)
    lines = [json.loads(x) for x in stdout.decode().splitlines() if x.strip()]
    assert proc.returncode == 0, f"node failed ({proc.returncode}): {lines}\n{stderr.decode()[-2000:]}"
    return lines


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_socketio_through_nginx(cluster, node, transport):  # noqa: F811
    proxy, (p1, p2) = cluster
    api = Api(proxy.base)
    alice, bob, carol = api.register(), api.register(), api.register()
    sv = create_server(api, alice)
    join_server(api, alice, sv["id"], bob, carol)
    voice = create_channel(api, alice, sv["id"], type="voice")
    # A watcher on each process directly: the room spans both, whichever one nginx picked.
    watchers = [await Client(p.base, "seed", carol.token).connect() for p in (p1, p2)]
    try:
        for w in watchers:
            await w.join(voice["id"])
        access_before = len(proxy.access().splitlines())
        lines = await _run_node(node, proxy.base, transport, alice.token, bob.token, voice["id"])
        for line in lines:
            if "recv" in line:
                validate_event(line["recv"], tuple(line["args"]))
        done = [x for x in lines if x.get("done")]
        assert done and done[0]["transports"] == [transport, transport], lines
        ids = next(x for x in lines if "a" in x and "b" in x)
        a_id, b_id = ids["a"], ids["b"]
        created = [x["args"][0] for x in lines if x.get("recv") == "created"]
        assert len(created) == 2
        assert {p["socketId"] for p in created[1]["participants"]} == {w.sid for w in watchers} | {a_id, b_id}
        offer = next(x["args"][0] for x in lines if x.get("client") == "b" and x.get("recv") == "signal")
        assert offer == {"from": a_id, "to": a_id, "type": "offer",
                         "sdp": {"type": "offer", "sdp": f"v=0 via {transport}"}}
        answer = next(x["args"][0] for x in lines if x.get("client") == "a" and x.get("recv") == "signal")
        assert answer["from"] == b_id and answer["type"] == "answer"
        for w in watchers:
            joined = {e["socketId"] for e in w.events("user-connected")}
            assert {a_id, b_id} <= joined, (w.base, joined)
            left = set()
            deadline = time.monotonic() + 10
            while not {a_id, b_id} <= left and time.monotonic() < deadline:
                left = set(w.events("user-disconnected"))
                await asyncio.sleep(0.1)
            assert {a_id, b_id} <= left, (w.base, left)
            assert not w.events("signal") and not w.events("error")
        # nginx carried the transport asked for, on both Socket.IO paths.
        new = "\n".join(proxy.access().splitlines()[access_before:])
        if transport == "polling":
            assert re.search(r'"POST /socket\.io/" transport=polling 200 ', new), new[-2000:]
            assert re.search(r'"POST /socket/" transport=polling 200 ', new), new[-2000:]
            assert "transport=websocket" not in new
        else:
            assert re.search(r'"GET /socket\.io/" transport=websocket 101 ', new), new[-2000:]
            assert re.search(r'"GET /socket/" transport=websocket 101 ', new), new[-2000:]
            assert "transport=polling" not in new
        # The desktop form's handshake token is in its query string; the access log has none.
        everything = proxy.access()
        for acct in (alice, bob, carol):
            assert acct.token not in everything
    finally:
        for w in watchers:
            await w.close()
