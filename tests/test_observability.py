"""What operators see: JSON access lines, X-Request-ID, /metrics, and the start-up refusals."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.support import ROOT, Api, ServerProcess, create_server, own_server, unique

METRICS_TOKEN = "operator-" + "s3cret"


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    with own_server(tmp_path_factory.mktemp("ops"), {"LOG_LEVEL": "info", "METRICS_TOKEN": METRICS_TOKEN}) as proc:
        yield proc


def _access_lines(proc: ServerProcess) -> list[dict]:
    out = []
    for line in proc.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "projectvoice.access":
                out.append(entry)
    return out


def _wait_for_line(proc: ServerProcess, request_id: str) -> dict:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for entry in _access_lines(proc):
            if entry["requestId"] == request_id:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no access line for request {request_id}")


def test_every_response_has_a_request_id(api):
    a = api.get("/info")
    b = api.get("/info")
    assert re.fullmatch(r"[0-9a-f]{32}", a.headers["x-request-id"])
    assert a.headers["x-request-id"] != b.headers["x-request-id"]
    # A sane incoming id is kept (so a proxy's id follows the request); anything else is replaced.
    assert api.get("/info", headers={"X-Request-ID": "edge-42.abc"}).headers["x-request-id"] == "edge-42.abc"
    bad = api.get("/info", headers={"X-Request-ID": "x" * 65}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", bad)
    assert api.get("/nowhere-at-all").headers["x-request-id"]


def test_access_log_is_one_json_line_per_request_without_secrets(ops):
    api = Api(ops.base)
    name = unique("log")
    password = "pw-" + unique("secret")
    r = api.post("/auth/register", json={"username": name, "email": f"{name}@example.com", "password": password},
                 headers={"X-Request-ID": "reg-" + name})
    assert r.status_code == 201
    token = r.json()["token"]
    user_id = r.json()["user"]["id"]
    r = api.post("/auth/login", json={"email": f"{name}@example.com", "password": password},
                 headers={"X-Request-ID": "login-" + name})
    assert r.status_code == 200
    r = api.get(f"/users/{user_id}", token, headers={"X-Request-ID": "user-" + name})
    assert r.status_code == 200
    r = api.get("/auth/me", "not.a.token", headers={"X-Request-ID": "bad-" + name})
    assert r.status_code == 401
    server = create_server(api, type("A", (), {"token": token})())
    r = api.post(f"/invite/{server['id']}/invite", token, json={})
    invite = r.json()["invite"]["token"] if r.status_code == 201 else None
    if invite:
        assert api.get(f"/invite/invite/{invite}", headers={"X-Request-ID": "inv-" + name}).status_code == 200

    reg = _wait_for_line(ops, "reg-" + name)
    assert reg["route"] == "/api/auth/register" and reg["method"] == "POST" and reg["status"] == 201
    assert reg["level"] == "info" and isinstance(reg["durationMs"], (int, float)) and reg["durationMs"] >= 0
    assert reg["ip"] == "127.0.0.1"
    user = _wait_for_line(ops, "user-" + name)
    assert user["route"] == "/api/users/{id}" and user["status"] == 200 and user["userId"] == user_id
    assert _wait_for_line(ops, "bad-" + name)["status"] == 401
    assert _wait_for_line(ops, "bad-" + name)["userId"] is None
    if invite:
        assert _wait_for_line(ops, "inv-" + name)["route"] == "/api/invite/invite/{token}"

    text = ops.log_path.read_text(errors="replace")
    assert password not in text
    assert token not in text and token.split(".")[-1] not in text
    if invite:
        assert invite not in text
    # One line per request: no second (uvicorn) access line.
    assert text.count("reg-" + name) == 1
    assert '"POST /api/auth/register' not in text


def _metrics(base: str, token: str | None = METRICS_TOKEN) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{base}/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def _sample(text: str, name: str, **labels) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_requests_by_route_template_and_status(ops):
    api = Api(ops.base)
    acct = api.register()
    before = _metrics(ops.base)
    n0 = _sample(before, "projectvoice_http_requests_total", method="GET", route="/api/users/{id}", status="200") or 0
    for _ in range(3):
        assert api.get(f"/users/{acct.id}", acct.token).status_code == 200
    assert api.get("/users/999999", acct.token).status_code == 404
    text = _metrics(ops.base)
    assert _sample(text, "projectvoice_http_requests_total", method="GET", route="/api/users/{id}", status="200") == n0 + 3
    assert _sample(text, "projectvoice_http_requests_total", method="GET", route="/api/users/{id}", status="404") >= 1
    assert _sample(text, "projectvoice_http_request_duration_seconds_count",
                   method="GET", route="/api/users/{id}", status="200") == n0 + 3
    assert _sample(text, "projectvoice_http_request_duration_seconds_bucket",
                   method="GET", route="/api/users/{id}", status="200", le="+Inf") == n0 + 3
    # Labels carry templates, never concrete ids.
    assert f"/api/users/{acct.id}" not in text and "/api/users/999999" not in text
    for name in ("projectvoice_db_pool_capacity", "projectvoice_db_pool_in_use", "projectvoice_socket_connections",
                 "projectvoice_voice_rooms", "projectvoice_voice_participants"):
        assert _sample(text, name) is not None, name
    assert _sample(text, "projectvoice_db_pool_capacity") >= 1
    assert _sample(text, "projectvoice_db_pool_in_use") == 0  # nothing in flight between requests


def test_metrics_need_the_operator_token_when_one_is_set(ops):
    r = httpx.get(f"{ops.base}/metrics", timeout=10)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = httpx.get(f"{ops.base}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert r.status_code == 403


def test_metrics_open_without_a_token_setting(server):
    assert "projectvoice_http_requests_total" in _metrics(server.base, token=None)


def test_refuses_to_start_on_postgresql_without_jwt_secret(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "REDIS_URL")}
    env.update({"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres", "PORT": "1",
                "DATA_DIR": str(tmp_path)})
    r = subprocess.run([sys.executable, "-m", "projectvoice", "run"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "JWT_SECRET must be set" in r.stderr + r.stdout
    assert not (tmp_path / "jwt-secret").exists()
