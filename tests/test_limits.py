"""Rate limits (429 + Retry-After) and the body size limit (413), on a server of their own with
tight limits, so the shared server keeps its generous defaults."""
from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from tests.support import Account, Api, Database, ServerProcess, create_channel, create_server, unique

TOO_MANY = {"error": "Too many requests, try again later", "code": "rate_limited"}
TOO_LARGE = {"error": "Request body too large (limit 1048576 bytes)", "code": "payload_too_large"}


# The `tight` server's settings (tests/conftest.py); `tapi` is its client.
TIGHT_ENV = {
    "RATE_LIMITS_ENABLED": "1",
    "RATE_LIMIT_LOGIN_IP": "8/minute",
    "RATE_LIMIT_LOGIN_ACCOUNT": "3/minute",
    "RATE_LIMIT_REGISTER_IP": "6/minute",
    "RATE_LIMIT_MESSAGE": "3/minute",
    "RATE_LIMIT_INVITE_ACCEPT": "2/minute",
}


def _ip(n: str) -> dict:
    # The test server trusts X-Forwarded-For from 127.0.0.1 (uvicorn's FORWARDED_ALLOW_IPS default),
    # which lets one test act as several clients.
    return {"X-Forwarded-For": f"203.0.113.{n}"}


_fresh_ips = iter(range(1, 250))


def _account(api: Api) -> Account:
    """A new account, registered from an address of its own (the register limit is tight here)."""
    r = _register(api, f"{100 + next(_fresh_ips) % 150}")
    assert r.status_code == 201, r.text
    data = r.json()
    return Account(token=data["token"], user=data["user"], email=data["user"]["email"], password="password123")


def _assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json() == TOO_MANY
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= 60


def _register(api: Api, ip: str):
    name = unique("rl")
    return api.post("/auth/register", headers=_ip(ip),
                    json={"username": name, "email": f"{name}@example.com", "password": "password123"})


def test_register_is_limited_per_ip(tapi):
    for _ in range(6):
        assert _register(tapi, "10").status_code == 201
    _assert_limited(_register(tapi, "10"))
    # Another client is not affected.
    assert _register(tapi, "11").status_code == 201


def test_login_is_limited_per_account_whatever_the_ip(tapi):
    acct = _register(tapi, "20").json()
    email = acct["user"]["email"]
    for i in range(3):
        r = tapi.post("/auth/login", headers=_ip(f"2{i}"), json={"email": email, "password": "wrong-password"})
        assert r.status_code == 400, r.text
    # The fourth attempt from yet another address, even with the right password, waits.
    r = tapi.post("/auth/login", headers=_ip("29"), json={"email": email.upper(), "password": "password123"})
    _assert_limited(r)
    # Other accounts log in normally.
    other = _register(tapi, "20").json()
    r = tapi.post("/auth/login", headers=_ip("29"), json={"email": other["user"]["email"], "password": "password123"})
    assert r.status_code == 200, r.text


def test_login_is_limited_per_ip(tapi):
    for i in range(8):
        r = tapi.post("/auth/login", headers=_ip("30"), json={"email": f"nobody{i}@example.com", "password": "x" * 8})
        assert r.status_code == 404, r.text
    _assert_limited(tapi.post("/auth/login", headers=_ip("30"), json={"email": "n@example.com", "password": "x" * 8}))
    r = tapi.post("/auth/login", headers=_ip("31"), json={"email": "n@example.com", "password": "x" * 8})
    assert r.status_code == 404


def test_message_posting_is_limited_per_user_and_channel(tapi, tight):
    owner = _account(tapi)
    server = create_server(tapi, owner)
    ch1 = create_channel(tapi, owner, server["id"])
    ch2 = create_channel(tapi, owner, server["id"])
    probe = httpx.post(f"{tight.base}/api/messages", json={"content": "x", "channelId": ch1["id"]},
                       headers={"Authorization": f"Bearer {owner.token}"})
    assert probe.status_code == 201, probe.text
    for _ in range(2):
        assert tapi.post("/messages", owner.token, json={"content": "hi", "channelId": ch1["id"]}).status_code == 201
    _assert_limited(tapi.post("/messages", owner.token, json={"content": "hi", "channelId": ch1["id"]}))
    # Another channel, and another user in the same channel, are not affected.
    assert tapi.post("/messages", owner.token, json={"content": "hi", "channelId": ch2["id"]}).status_code == 201


def test_invite_accepts_are_limited_per_user(tapi, tight):
    owner = _account(tapi)
    joiner = _account(tapi)
    tokens = []
    for _ in range(3):
        server = create_server(tapi, owner)
        r = httpx.post(f"{tight.base}/api/invite/{server['id']}/invite", json={},
                       headers={"Authorization": f"Bearer {owner.token}"})
        assert r.status_code == 201, r.text
        tokens.append(r.json()["invite"]["token"])
    for token in tokens[:2]:
        assert tapi.post(f"/invite/invite/{token}/accept", joiner.token).status_code == 200
    _assert_limited(tapi.post(f"/invite/invite/{tokens[2]}/accept", joiner.token))
    # Someone else may still accept.
    assert tapi.post(f"/invite/invite/{tokens[2]}/accept", _account(tapi).token).status_code == 200


def test_unauthenticated_limited_routes_still_answer_401(tapi):
    r = tapi.post("/messages", json={"content": "hi", "channelId": 1})
    assert r.status_code == 401
    r = tapi.post("/messages", "not-a-token", json={"content": "hi", "channelId": 1})
    assert r.status_code == 401


# ------------------------------------------------------------------ body size


def test_declared_body_over_1mib_is_413(tapi):
    acct = _account(tapi)
    body = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    r = tapi.post("/servers", acct.token, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json() == TOO_LARGE
    # Before any authentication: an anonymous huge login is refused the same way.
    r = tapi.post("/auth/login", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json() == TOO_LARGE


def test_streamed_body_over_1mib_is_413(tapi):
    acct = _account(tapi)

    def chunks():
        yield b'{"name": "'
        for _ in range(11):
            yield b"x" * 100_000
        yield b'"}'

    r = tapi.post("/servers", acct.token, content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json() == TOO_LARGE


def test_streamed_body_under_the_limit_is_accepted(tapi):
    acct = _account(tapi)

    def chunks():
        yield b'{"name": "streamed'
        yield b' server", "description": "d"}'

    r = tapi.post("/servers", acct.token, content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "streamed server"


def test_body_at_the_limit_is_not_413(tapi):
    acct = _account(tapi)
    filler = 1024 * 1024 - len(b'{"name": "n", "description": ""}')
    body = b'{"name": "n", "description": "' + b"d" * filler + b'"}'
    assert len(body) == 1024 * 1024
    r = tapi.post("/servers", acct.token, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text  # too long a description: validation, not size


# ------------------------------------------------------------------ the socket-side API


def test_limiter_api_for_sockets():
    from core.ratelimit import Limiter
    from core.settings import Settings

    async def run():
        lim = Limiter(Settings(rate_limit_socket_signal="3/minute", rate_limit_socket_join="")).configure()
        results = [await lim.hit("signal", "sid-1") for _ in range(4)]
        assert results[:3] == [None, None, None]
        assert isinstance(results[3], int) and 1 <= results[3] <= 60
        assert await lim.hit("signal", "sid-2") is None
        assert all([await lim.hit("join_room", "sid-1") is None for _ in range(50)])  # "" = off

    asyncio.run(run())


def test_limiter_fails_open_when_redis_is_unreachable():
    from core.ratelimit import Limiter
    from core.settings import Settings

    async def run():
        lim = Limiter(Settings(redis_url="redis://127.0.0.1:1/0", rate_limit_message="1/minute")).configure()
        assert [await lim.hit("message", 1, 2) for _ in range(3)] == [None, None, None]

    asyncio.run(run())


def test_per_socket_limits_are_counted_in_process_memory_with_redis():
    """A socket lives in one process: its join/signal counters do not go to Redis (here an
    unreachable one, which would let everything through), and they still hold."""
    from core.ratelimit import Limiter
    from core.settings import Settings

    async def run():
        lim = Limiter(Settings(redis_url="redis://127.0.0.1:1/0", rate_limit_socket_signal="2/minute",
                               rate_limit_socket_join="1/minute")).configure()
        signals = [await lim.hit("signal", "s") for _ in range(3)]
        assert signals[:2] == [None, None] and isinstance(signals[2], int), signals
        joins = [await lim.hit("join_room", "s") for _ in range(2)]
        assert joins[0] is None and isinstance(joins[1], int), joins
        assert await lim.hit("signal", "other") is None

    asyncio.run(run())


def test_limits_hold_across_processes_with_redis(tmp_path):
    """Two server processes sharing REDIS_URL share one counter."""
    from tests.support import REDIS_URL

    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc!r}")
    database = Database.fresh(tmp_path)
    env = {"REDIS_URL": REDIS_URL, "RATE_LIMITS_ENABLED": "1", "RATE_LIMIT_REGISTER_IP": "4/minute"}
    a = ServerProcess(database=database, data_dir=tmp_path / "a", extra_env=env).start()
    try:
        b = ServerProcess(database=database, data_dir=tmp_path / "b", jwt_secret=a.jwt_secret, extra_env=env).start()
        try:
            # The Redis counters outlive this test (and are shared with other runs for a minute):
            # an address no other run picks.
            ip = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
            apis = [Api(a.base), Api(b.base)]
            statuses = []
            for i in range(6):
                name = unique("rr")
                r = apis[i % 2].post("/auth/register", headers={"X-Forwarded-For": ip},
                                     json={"username": name, "email": f"{name}@example.com", "password": "password123"})
                statuses.append(r.status_code)
            assert statuses == [201, 201, 201, 201, 429, 429], statuses
        finally:
            b.stop()
    finally:
        a.stop()
        database.drop()
