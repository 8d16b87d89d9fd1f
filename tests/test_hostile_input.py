"""Hostile input (issue 17 items 1, 2, 6, 7): one strict JSON parse per request, text without NUL
or lone surrogates, bounded request heads. Each case was a dodged limit, a 500 or a stored NUL."""
from __future__ import annotations

import asyncio
import json

import pytest

from tests.contract import contract
from tests.support import Api, create_channel, create_server, unique

NON_JSON_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]


# The `tight` server's settings (tests/conftest.py); `tapi` is its client.
TIGHT_ENV = {
    "RATE_LIMITS_ENABLED": "1",
    "RATE_LIMIT_LOGIN_IP": "",
    "RATE_LIMIT_REGISTER_IP": "",
    "RATE_LIMIT_LOGIN_ACCOUNT": "3/minute",
    "RATE_LIMIT_MESSAGE": "3/minute",
}


def _raw(api: Api, method: str, path: str, text: str, token: str | None = None):
    return api.request(method, path, token, content=text.encode(),
                       headers={"Content-Type": "application/json"})


def _refused(r, code: str = "invalid_body") -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == code, body
    assert body["error"], body


def test_locked_out_account_cannot_log_in_through_non_json_numbers(tapi):
    acct = tapi.register()
    for _ in range(3):
        r = tapi.post("/auth/login", json={"email": acct.email, "password": "wrong-password"})
        assert r.status_code == 400, r.text
    assert tapi.post("/auth/login", json={"email": acct.email, "password": "password123"}).status_code == 429
    for number in NON_JSON_NUMBERS:
        r = _raw(tapi, "POST", "/auth/login",
                 f'{{"email": "{acct.email}", "password": "password123", "x": {number}}}')
        _refused(r)
        assert "token" not in r.text


def test_message_limit_is_not_dodged_through_non_json_numbers(tapi):
    owner = tapi.register()
    channel = create_channel(tapi, owner, create_server(tapi, owner)["id"])["id"]
    for _ in range(3):
        assert tapi.post("/messages", owner.token, json={"content": "hi", "channelId": channel}).status_code == 201
    assert tapi.post("/messages", owner.token, json={"content": "hi", "channelId": channel}).status_code == 429
    for number in NON_JSON_NUMBERS:
        _refused(_raw(tapi, "POST", "/messages", f'{{"content": "hi", "channelId": {channel}, "x": {number}}}',
                      owner.token))
    data = tapi.get("/messages", owner.token, params={"channelId": channel}).json()
    assert data["total"] == 3


def test_non_json_numbers_are_400_everywhere(api, alice):
    for number in NON_JSON_NUMBERS:
        name = unique("n")
        _refused(_raw(api, "POST", "/auth/register",
                      f'{{"username": "{name}", "email": "{name}@example.com", "password": "password123", '
                      f'"x": {number}}}'))
        _refused(_raw(api, "POST", "/servers", f'{{"name": "s", "x": [{number}]}}', alice.token))
    # Big but finite numbers are JSON: the schema decides (an id out of range is a 4xx, never a 500).
    r = _raw(api, "POST", "/servers", '{"name": "s", "x": 1e300}', alice.token)
    assert r.status_code in (201, 400), r.text


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deep_nesting_is_400(api, alice, depth):
    r = _raw(api, "POST", "/servers", '{"name": "s", "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}",
             alice.token)
    _refused(r, "too_deep")
    r = _raw(api, "POST", "/auth/login", "{" + '"a":{' * (depth - 1) + "}" * depth)
    assert r.status_code == 400, r.text


def test_nesting_at_the_limit_is_not_refused_for_depth(api, alice):
    nested = "[" * 63 + "]" * 63  # the object holding it is level 1: 64 levels in all
    r = _raw(api, "POST", "/servers", '{"name": "' + unique("s") + '", "x": ' + nested + "}", alice.token)
    assert r.status_code != 400 or r.json()["code"] != "too_deep", r.text


def _surrogate_cases(api: Api, alice, bob) -> list[tuple[str, str, str]]:
    """(method, path, body template with {S} for the bad text) for every kind of string field."""
    server = create_server(api, alice)
    sid = server["id"]
    channel = create_channel(api, alice, sid)["id"]
    r = api.post("/friends/request", alice.token, json={"friendId": bob.id})  # only friends are added directly
    assert r.status_code == 201, r.text
    assert api.post(f"/friends/accept/{r.json()['request']['id']}", bob.token).status_code == 200
    r = api.post(f"/serverMembers/{sid}/members", alice.token, json={"userId": bob.id})
    assert r.status_code == 201, r.text
    member = r.json()["id"]
    name = unique("x")
    return [
        ("POST", "/auth/login", '{"email": "a{S}@example.com", "password": "password123"}'),
        ("POST", "/auth/register", f'{{"username": "{name}{{S}}", "email": "{name}@example.com", '
                                   '"password": "password123"}'),
        ("POST", "/auth/register", f'{{"username": "{name}", "email": "{name}@example.com", '
                                   '"password": "pass{S}word123"}'),
        ("POST", "/servers", '{"name": "srv{S}"}'),
        ("PUT", f"/servers/{sid}", '{"name": "srv", "description": "d{S}"}'),
        ("POST", f"/servers/{sid}/channels", '{"name": "ch{S}", "type": "text"}'),
        ("POST", f"/servers/{sid}/roles", '{"name": "role{S}"}'),
        ("PUT", "/users/", '{"bio": "about me {S}"}'),
        ("PUT", f"/auth/users/{alice.id}", '{"username": "me{S}"}'),
        ("POST", "/messages", f'{{"content": "hi {{S}}", "channelId": {channel}}}'),
        ("POST", f"/serverMembers/{sid}/members/{member}/ban", '{"reason": "spam {S}"}'),
        ("POST", f"/friends/block/{bob.id}", '{"reason": "rude {S}"}'),
        ("POST", "/servers", '{"name": "srv", "{S}": 1}'),
    ]


@pytest.mark.parametrize("bad, code", [("\\ud800", "invalid_body"), ("\\udfff", "invalid_body"),
                                       ("\\u0000", "invalid_text")])
def test_nul_and_lone_surrogates_are_400_on_every_string_field(api, alice, bob, bad, code):
    for method, path, template in _surrogate_cases(api, alice, bob):
        r = _raw(api, method, path, template.replace("{S}", bad), alice.token)
        assert r.status_code == 400, (method, path, r.text)
        assert r.json()["code"] == code, (method, path, r.text)
        assert "NUL" in r.json()["error"] or "surrogate" in r.json()["error"], r.text
    # A pair of surrogates is one character, and fine.
    r = _raw(api, "POST", "/servers", '{"name": "party \\ud83c\\udf89"}', alice.token)
    assert r.status_code == 201 and r.json()["name"] == "party 🎉", r.text


def test_nul_does_not_make_a_near_copy_of_a_username(api):
    taken = api.register()
    name = taken.user["username"]
    r = _raw(api, "POST", "/auth/register",
             f'{{"username": "{name}\\u0000", "email": "{unique("e")}@example.com", "password": "password123"}}')
    assert r.status_code == 400 and r.json()["code"] == "invalid_text", r.text
    assert "NUL" in r.json()["error"] and "username" in r.json()["error"]


def test_nul_in_path_and_query_is_400(api, alice):
    server = create_server(api, alice)
    channel = create_channel(api, alice, server["id"])["id"]
    r = api.get(f"/messages?channelId={channel}&before=%00", alice.token)
    assert r.status_code == 400, r.text
    r = api.get("/invite/invite/abc%00def", alice.token)
    assert r.status_code == 400 and r.json()["code"] == "invalid_text", r.text


# ------------------------------------------------------------------------------ request heads


async def _send_raw(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        data = b""
        while True:  # every answer here closes the connection
            chunk = await asyncio.wait_for(reader.read(65536), 30)
            if not chunk:
                return data
            data += chunk
    finally:
        writer.close()


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def _documented_431(method: str, path: str, answer: bytes) -> None:
    """A 431 is one the operation documents (HeadersTooLarge), held to tests/contract.py."""
    assert _status(answer) == 431, answer[:300]
    head, _, body = answer.partition(b"\r\n\r\n")
    content_type = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")[1:]
                        if line.lower().startswith(b"content-type:"))
    contract().check(method, path, 431, content_type, json.loads(body))
    assert json.loads(body)["code"] == "headers_too_large"


def test_huge_header_is_431(server):
    head = (b"GET /api/info HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 * 1024 * 1024) + b"\r\n\r\n")
    _documented_431("GET", "/api/info", asyncio.run(_send_raw(server.port, head)))
    head = (b"POST /api/messages HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n")
    _documented_431("POST", "/api/messages", asyncio.run(_send_raw(server.port, head)))


def test_too_many_headers_is_431(server):
    head = b"GET /api/info HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(50_000)) + b"\r\n"
    _documented_431("GET", "/api/info", asyncio.run(_send_raw(server.port, head)))


def test_ordinary_heads_pass(server):
    head = b"GET /api/info HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(60)) + \
        b"X-Long: " + b"a" * 8000 + b"\r\nConnection: close\r\n\r\n"
    answer = asyncio.run(_send_raw(server.port, head))
    assert _status(answer) == 200, answer[:300]


def test_socketio_handshakes_with_huge_heads_are_refused(server):
    """Socket.IO's own routes are behind the same limits: the polling handshake answers 431; a
    websocket upgrade whose head passes them is refused before it is accepted (uvicorn answers
    the close with 403), and one the websockets library cannot parse (a header line over 8 KiB,
    over 128 headers: 431; a request line over 8 KiB: 414) is answered and closed (uvicorn 0.54
    left it open and unanswered: projectvoice.middleware.WebSocketProtocol)."""
    big = b"".join(b"X-Big-%d: " % i + b"a" * 8000 + b"\r\n" for i in range(5))
    answer = asyncio.run(_send_raw(server.port, b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
                                   + big + b"\r\n"))
    assert _status(answer) == 431, answer[:300]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["code"] == "headers_too_large"
    upgrade = (b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
    assert asyncio.run(_first_line(server.port, upgrade + big + b"\r\n")).startswith(b"HTTP/1.1 403")
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(110))
    assert asyncio.run(_first_line(server.port, upgrade + many + b"\r\n")).startswith(b"HTTP/1.1 403")
    huge = b"X-Big: " + b"a" * (8 * 1024 * 1024) + b"\r\n"
    flood = b"".join(b"X-H%d: v\r\n" % i for i in range(50_000))
    for head in (huge, flood):
        assert _status(asyncio.run(_send_raw(server.port, upgrade + head + b"\r\n"))) == 431
    long_line = upgrade.replace(b"transport=websocket", b"transport=websocket&x=" + b"a" * 10_000)
    assert _status(asyncio.run(_send_raw(server.port, long_line + b"\r\n"))) == 414
    # The same upgrade with an ordinary head is accepted: the refusals above are the limit's.
    assert asyncio.run(_first_line(server.port, upgrade + b"\r\n")).startswith(b"HTTP/1.1 101")


async def _first_line(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()
