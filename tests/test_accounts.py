"""Accounts through the HTTP API: register, login, me, profiles, account edits, revocation."""
from __future__ import annotations

import time

import bcrypt
import jwt
import pytest

from tests.support import unique


def test_seed_register_and_login_example(api):
    """The seed's "Регистрация и вход" example, as written (with a fresh name)."""
    name = unique("testuser")
    r = api.post("/auth/register", json={"username": name, "email": f"{name}@example.com",
                                         "password": "password123"})
    assert r.status_code == 201
    token = r.json()["token"]
    assert isinstance(token, str) and token
    r = api.post("/auth/login", json={"email": f"{name}@example.com", "password": "password123"})
    assert r.status_code == 200
    body = r.json()
    assert body["token"]
    user = body["user"]
    for key in ("id", "username", "email", "role", "isActive", "profilePicture", "status", "tag", "createdAt"):
        assert key in user
    assert user["username"] == name and user["role"] == "user" and user["isActive"] is True


def test_register_rejects_duplicates_case_insensitively(api, alice):
    r = api.post("/auth/register", json={"username": alice.user["username"].upper(),
                                         "email": "other-" + alice.email, "password": "password123"})
    assert r.status_code == 400 and r.json()["code"] == "user_exists"
    r = api.post("/auth/register", json={"username": unique(), "email": alice.email.upper(),
                                         "password": "password123"})
    assert r.status_code == 400


@pytest.mark.parametrize("body, field", [
    ({"email": "a@example.com", "password": "password123"}, "username"),
    ({"username": "ab", "email": "a@example.com", "password": "password123"}, "username"),
    ({"username": "x" * 33, "email": "a@example.com", "password": "password123"}, "username"),
    ({"username": "validname", "email": "not-an-email", "password": "password123"}, "email"),
    ({"username": "validname", "email": "a@example.com", "password": "short"}, "password"),
    ({"username": "validname", "email": "a@example.com", "password": "p" * 129}, "password"),
])
def test_register_validation_names_the_field(api, body, field):
    r = api.post("/auth/register", json=body)
    assert r.status_code == 400
    err = r.json()
    assert set(err) >= {"error", "code"} and field in err["error"]


def test_login_errors(api, alice):
    r = api.post("/auth/login", json={"email": "nobody-" + alice.email, "password": "password123"})
    assert r.status_code == 404
    r = api.post("/auth/login", json={"email": alice.email, "password": "wrong-password"})
    assert r.status_code == 400
    assert "unauthorized" not in r.json()["error"].lower()


def test_me_requires_a_valid_token(api, alice):
    assert api.get("/auth/me").status_code == 401
    assert api.get("/auth/me", token="garbage").status_code == 401
    assert api.get("/auth/me", token=alice.token + "x").status_code == 401
    r = api.get("/auth/me", token=alice.token)
    assert r.status_code == 200 and r.json()["id"] == alice.id and r.json()["email"] == alice.email


def test_token_stops_working_when_it_expires(api, server, alice):
    """The server remembers tokens it verified (models/auth.py); expiry still counts on
    every request: a token that worked a moment ago is refused once its `exp` has passed."""
    now = int(time.time())
    sid = jwt.decode(alice.token, options={"verify_signature": False})["sid"]
    token = jwt.encode({"sub": str(alice.id), "ver": 0, "sid": sid, "iat": now, "exp": now + 2}, server.jwt_secret,
                       algorithm="HS256")
    assert api.get("/auth/me", token=token).status_code == 200
    assert api.get("/auth/me", token=token).status_code == 200  # the remembered path
    time.sleep(max(0.0, now + 2.2 - time.time()))
    r = api.get("/auth/me", token=token)
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "invalid_token"
    # A token signed with another secret is refused whatever it claims.
    forged = jwt.encode({"sub": str(alice.id), "ver": 0, "iat": now, "exp": now + 60}, "not-the-secret",
                        algorithm="HS256")
    assert api.get("/auth/me", token=forged).status_code == 401


def test_profile_read_and_update(api, alice, bob):
    r = api.get("/users/", token=alice.token)
    assert r.status_code == 200 and r.json()["username"] == alice.user["username"]
    new_name = unique("renamed")
    r = api.put("/users/", token=alice.token, json={"name": new_name, "bio": "hello",
                                                    "profilePicture": "https://example.com/a.png"})
    assert r.status_code == 200
    assert r.json()["username"] == new_name and r.json()["bio"] == "hello"
    r = api.get(f"/users/{alice.id}", token=bob.token)
    assert r.status_code == 200
    assert r.json()["name"] == new_name == r.json()["username"]
    assert "email" not in r.json()
    assert api.get("/users/999999999", token=bob.token).status_code == 404
    # Someone else's name is taken.
    r = api.put("/users/", token=bob.token, json={"username": new_name})
    assert r.status_code == 400


def test_profile_picture_must_be_http(api, alice):
    r = api.put("/users/", token=alice.token, json={"profilePicture": "javascript:alert(1)"})
    assert r.status_code == 400


def test_account_edit_is_self_only(api, alice, bob):
    r = api.put(f"/auth/users/{bob.id}", token=alice.token, json={"username": unique()})
    assert r.status_code == 403
    assert "unauthorized" not in r.json()["error"].lower()
    name = unique("acct")
    r = api.put(f"/auth/users/{alice.id}", token=alice.token, json={"username": name})
    assert r.status_code == 200 and r.json()["username"] == name


def test_password_change_checks_old_and_revokes_other_tokens(api, alice):
    """The other sessions' tokens stop; the caller's own token keeps working (issue 18: the
    desktop client ignores the fresh token and must not be logged out). tests/test_sessions.py
    has the rest."""
    other = api.post("/auth/login", json={"email": alice.email, "password": alice.password}).json()["token"]
    r = api.put(f"/auth/users/{alice.id}/password", token=alice.token,
                json={"oldPassword": "wrong-old-pw", "newPassword": "new-password-1"})
    assert r.status_code == 400
    r = api.put(f"/auth/users/{alice.id}/password", token=alice.token,
                json={"oldPassword": alice.password, "newPassword": "new-password-1"})
    assert r.status_code == 200
    fresh = r.json()["token"]
    assert r.json()["endedSessions"] == 1
    assert api.get("/auth/me", token=other).status_code == 401
    assert api.get("/auth/me", token=alice.token).status_code == 200
    assert api.get("/auth/me", token=fresh).status_code == 200
    assert api.post("/auth/login", json={"email": alice.email, "password": "new-password-1"}).status_code == 200
    assert api.post("/auth/login", json={"email": alice.email, "password": alice.password}).status_code == 400


def test_delete_account_revokes_token(api):
    acct = api.register()
    r = api.delete("/users/", token=acct.token)
    assert r.status_code == 200 and r.json() == {"message": "User deleted successfully"}
    assert api.get("/auth/me", token=acct.token).status_code == 401
    assert api.post("/auth/login", json={"email": acct.email, "password": acct.password}).status_code == 404


def test_legacy_bcrypt_hash_verifies_and_is_rehashed(api, server):
    """An account imported from the Node.js original keeps its bcrypt hash until its next login."""
    acct = api.register()
    legacy = bcrypt.hashpw(b"legacy-password", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2a$", 1)
    _set_password_hash(server, acct.id, legacy)
    r = api.post("/auth/login", json={"email": acct.email, "password": "legacy-password"})
    assert r.status_code == 200
    assert _get_password_hash(server, acct.id).startswith("$argon2id$")
    assert api.post("/auth/login", json={"email": acct.email, "password": "legacy-password"}).status_code == 200


def _sync_url(server) -> str:
    return server.database.url.replace("sqlite+aiosqlite", "sqlite")


def _set_password_hash(server, user_id: int, value: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(_sync_url(server))
    with eng.begin() as c:
        c.execute(sa.text("UPDATE users SET password_hash = :h WHERE id = :i"), {"h": value, "i": user_id})
    eng.dispose()


def _get_password_hash(server, user_id: int) -> str:
    import sqlalchemy as sa

    eng = sa.create_engine(_sync_url(server))
    with eng.begin() as c:
        value = c.execute(sa.text("SELECT password_hash FROM users WHERE id = :i"), {"i": user_id}).scalar()
    eng.dispose()
    return value


def test_info_test_health(api):
    r = api.get("/info")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and set(body["styles"]) == {
        "blurple", "green", "yellow", "fuchsia", "red", "white", "black", "grey", "darkGrey", "darkerGrey"}
    assert api.get("/test").status_code == 200
    r = api.get("/health")
    assert r.status_code == 200 and r.json()["database"] == "ok"


def test_errors_have_the_documented_shape(api):
    r = api.get("/no/such/route")
    assert r.status_code == 404 and set(r.json()) >= {"error", "code"}
    r = api.post("/auth/login", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and set(r.json()) >= {"error", "code"}


def test_cors_preflight(api):
    r = api.client.options("/auth/login", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type, Authorization"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
    r = api.client.options("/auth/login", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert r.headers.get("access-control-allow-origin") != "http://evil.example"


def test_swagger_ui_and_spec_are_served(server):
    import httpx

    r = httpx.get(f"{server.base}/api-docs", follow_redirects=True)
    assert r.status_code == 200 and "swagger" in r.text.lower()
    r = httpx.get(f"{server.base}/api/openapi.json")
    assert r.status_code == 200 and r.json()["openapi"].startswith("3.1")


def test_create_admin_command(admin, api):
    r = api.get("/auth/me", admin.token)
    assert r.status_code == 200 and r.json()["role"] == "admin"


def _create_admin(server, username: str, email: str, password: str):
    import subprocess
    import sys

    from tests.support import ROOT

    return subprocess.run([sys.executable, "-m", "projectvoice", "create-admin", "--username", username,
                           "--email", email, "--password", password],
                          cwd=ROOT, env=server.env(), capture_output=True, text=True, timeout=60)


def test_create_admin_makes_an_account_as_register_does(api, server):
    """A new account from the command line is made by the same code as registration (models.auth
    create_user): a four-digit tag, the email lowered, and a username taken case-insensitively by
    another account is refused with nothing created."""
    name = unique("cliadmin")
    r = _create_admin(server, name, f"{name.upper()}@Example.com", "password123")
    assert r.returncode == 0 and "created admin" in r.stdout, r.stdout + r.stderr
    r = api.post("/auth/login", json={"email": f"{name}@example.com", "password": "password123"})
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert user["role"] == "admin" and user["email"] == f"{name}@example.com"
    assert len(user["tag"]) == 4 and user["tag"].isdigit()
    taken = api.register()
    other = unique("cliother")
    r = _create_admin(server, taken.user["username"].upper(), f"{other}@example.com", "password123")
    assert r.returncode != 0 and "username already taken" in r.stderr, r.stdout + r.stderr
    r = api.post("/auth/login", json={"email": f"{other}@example.com", "password": "password123"})
    assert r.status_code == 404


def test_ids_are_never_reused_so_old_tokens_never_match_new_accounts(api):
    """SQLite would hand a deleted newest row's id to the next row without AUTOINCREMENT; a
    deleted account's token must not start working for whoever comes next."""
    gone = api.register()
    assert api.delete("/users/", token=gone.token).status_code == 200
    newcomer = api.register()
    assert newcomer.id != gone.id
    assert api.get("/auth/me", token=gone.token).status_code == 401
