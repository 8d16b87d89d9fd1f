"""Per-server caps like Discord's: 500 channels, 250 roles (issue 17 item 4). The servers are
filled to one below the cap straight in the database, then several creates race for the last
place through the API: exactly one wins, the others get 400 with the cap's code."""
from __future__ import annotations

import threading

import sqlalchemy as sa

from tests.support import Api, create_server

MAX_CHANNELS = 500
MAX_ROLES = 250
RACERS = 6


def _fill(server, sql: str, params: dict) -> None:
    engine = sa.create_engine(server.database.url.replace("+aiosqlite", ""))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def _race(server, path: str, token: str, bodies: list[dict]) -> list:
    barrier = threading.Barrier(len(bodies))
    out: list = [None] * len(bodies)

    def run(i):
        api = Api(server.base)
        barrier.wait()
        out[i] = api.post(path, token, json=bodies[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_channel_cap_holds_under_concurrent_creates(api, server, alice):
    sid = create_server(api, alice)["id"]
    values = ", ".join(f"(:sid, 'seeded{i}', 'text', {i}, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                       for i in range(MAX_CHANNELS - 1))
    _fill(server, "INSERT INTO channels (server_id, name, type, position, message_count, created_at, updated_at) "
          f"VALUES {values}", {"sid": sid})
    assert len(api.get(f"/servers/{sid}/channels", alice.token).json()) == MAX_CHANNELS - 1
    answers = _race(server, f"/servers/{sid}/channels", alice.token,
                    [{"name": f"last{i}", "type": "text"} for i in range(RACERS)])
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [400] * (RACERS - 1), [r.text for r in answers]
    for r in answers:
        if r.status_code == 400:
            assert r.json() == {"error": f"Maximum number of channels reached ({MAX_CHANNELS})",
                                "code": "channel_limit"}
    channels = api.get(f"/servers/{sid}/channels", alice.token).json()
    assert len(channels) == MAX_CHANNELS
    # Deleting one makes room for one.
    assert api.delete(f"/servers/{sid}/channels/{channels[0]['id']}", alice.token).status_code == 204
    assert api.post(f"/servers/{sid}/channels", alice.token, json={"name": "again"}).status_code == 201
    assert api.post(f"/servers/{sid}/channels", alice.token, json={"name": "over"}).json()["code"] == "channel_limit"
    # Another server is not affected.
    other = create_server(api, alice)["id"]
    assert api.post(f"/servers/{other}/channels", alice.token, json={"name": "x"}).status_code == 201


def test_role_cap_holds_under_concurrent_creates(api, server, alice):
    sid = create_server(api, alice)["id"]
    have = len(api.get(f"/servers/{sid}/roles", alice.token).json())  # @everyone and the presets
    values = ", ".join(f"(:sid, 'seeded{i}', '#99AAB5', 0, 1, FALSE, FALSE, FALSE, CURRENT_TIMESTAMP)"
                       for i in range(MAX_ROLES - 1 - have))
    _fill(server, "INSERT INTO roles (server_id, name, color, permissions, position, is_hoisted, is_mentionable, "
          f"is_everyone, created_at) VALUES {values}", {"sid": sid})
    assert len(api.get(f"/servers/{sid}/roles", alice.token).json()) == MAX_ROLES - 1
    answers = _race(server, f"/servers/{sid}/roles", alice.token, [{"name": f"last{i}"} for i in range(RACERS)])
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [400] * (RACERS - 1), [r.text for r in answers]
    for r in answers:
        if r.status_code == 400:
            assert r.json() == {"error": f"Maximum number of roles reached ({MAX_ROLES})", "code": "role_limit"}
    roles = api.get(f"/servers/{sid}/roles", alice.token).json()
    assert len(roles) == MAX_ROLES
    victim = next(r for r in roles if r["name"].startswith("seeded"))
    assert api.delete(f"/servers/{sid}/roles/{victim['id']}", alice.token).status_code == 204
    assert api.post(f"/servers/{sid}/roles", alice.token, json={"name": "again"}).status_code == 201
    assert api.post(f"/servers/{sid}/roles", alice.token, json={"name": "over"}).json()["code"] == "role_limit"
