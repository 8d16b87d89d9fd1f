"""Schemathesis hooks for the contract run (tests/test_contract.py, settings in schemathesis.toml).

Every case is authenticated as a real user:
* a fresh regular account that owns a server with a text and a voice channel (so it is the server
  owner for its own server and a stranger, 403/404, to everyone else's), for every operation;
* the global admin (created by the test with the create-admin command, credentials in
  PV_CONTRACT_ADMIN_EMAIL / PV_CONTRACT_ADMIN_PASSWORD) for the /admin operations, which a
  regular user could only ever see answer 403.
Tokens are refreshed every few seconds, so an operation that ends its own session (account
deletion, password change, an admin blocking the account) cannot starve the rest of the run.
"""
from __future__ import annotations

import json
import os
import secrets

import httpx
import jwt
import schemathesis


def _base() -> str:
    return os.environ["PV_CONTRACT_BASE"]


def fresh_owner_token() -> str:
    name = "fz" + secrets.token_hex(6)
    r = httpx.post(f"{_base()}/api/auth/register", timeout=30,
                   json={"username": name, "email": f"{name}@example.com", "password": "password123"})
    r.raise_for_status()
    token = r.json()["token"]
    # A second session (another device), started after the registration's: the session links
    # (GET /auth/sessions -> DELETE /auth/sessions/{id} on the newest) end it, not this token's.
    httpx.post(f"{_base()}/api/auth/login", timeout=30,
               json={"email": f"{name}@example.com", "password": "password123"}).raise_for_status()
    # Give the account something to act on: a server with a text and a voice channel.
    h = {"Authorization": f"Bearer {token}"}
    s = httpx.post(f"{_base()}/api/servers", headers=h, json={"name": name}, timeout=30).json()
    for kind in ("text", "voice"):
        httpx.post(f"{_base()}/api/servers/{s['id']}/channels", headers=h, json={"name": kind, "type": kind}, timeout=30)
    return token


def admin_token() -> str | None:
    email = os.environ.get("PV_CONTRACT_ADMIN_EMAIL")
    if not email:
        return None
    r = httpx.post(f"{_base()}/api/auth/login", timeout=30,
                   json={"email": email, "password": os.environ["PV_CONTRACT_ADMIN_PASSWORD"]})
    r.raise_for_status()
    return r.json()["token"]


# retry_on=[]: a 401 (the account was deleted, blocked or changed its password mid-run) is not
# replayed with the next fresh account, which would act on the first account's resources as a
# stranger and turn "created, then gone with its owner" into a false ensure_resource_availability.
# The operations that end sessions get a session of their own, started for the one case, on an
# account kept for them: ending it (or all the others) never signs the run's shared account out.
SESSION_ENDING = {"/auth/logout", "/auth/logout-others", "/auth/sessions/{id}"}
# The operations the login/register links call with the token they issued.
LINKED_TOKEN_TARGETS = {"/auth/sessions", "/auth/sessions/{id}", "/auth/logout-others"}
_session_account: dict = {}


def throwaway_session_token() -> str:
    # The admin operations may delete or block this account mid-run (the fuzzer draws user ids
    # from GET /admin/users): a refused login starts a new account rather than failing the case.
    if _session_account:
        r = httpx.post(f"{_base()}/api/auth/login", json=_session_account, timeout=30)
        if r.status_code == 200:
            return r.json()["token"]
    name = "fs" + secrets.token_hex(6)
    body = {"username": name, "email": f"{name}@example.com", "password": "password123"}
    r = httpx.post(f"{_base()}/api/auth/register", json=body, timeout=30)
    r.raise_for_status()
    _session_account.clear()
    _session_account.update(email=body["email"], password=body["password"])
    return r.json()["token"]


def _linked_token(case) -> bool:
    """True when the case already carries a token of ours put there by an OpenAPI link (login ->
    sessions with the token just issued): a JWT naming a session. Anything else in the header
    (nothing, or a credential drawn at random) gives way to the run's account."""
    value = (case.headers or {}).get("Authorization", "")
    if not isinstance(value, str) or not value.startswith("Bearer "):
        return False
    try:
        claims = jwt.decode(value[7:], options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return isinstance(claims, dict) and "sid" in claims and "sub" in claims


@schemathesis.auth(refresh_interval=3, retry_on=[])
class ContractAccounts:
    def get(self, case, ctx):
        return {"owner": fresh_owner_token(), "admin": admin_token()}

    def set(self, case, data, ctx):
        if case.operation.path in LINKED_TOKEN_TARGETS and _linked_token(case):
            return
        token = data["owner"]
        if case.operation.path in SESSION_ENDING:
            token = throwaway_session_token()
        if case.operation.path.startswith("/admin") and data["admin"]:
            token = data["admin"]
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {token}"


# The session operations the stateful phase called, one JSON line each, when PV_CONTRACT_TRACE
# names a file: tests/test_contract.py checks from it that the links ran login -> sessions (with
# the token a login or registration issued) and sessions -> end a session (with the listing
# token); the run's summary only counts the links covered, it does not name them.
TRACED = {"/auth/register", "/auth/login"} | LINKED_TOKEN_TARGETS


def _claims(case) -> dict:
    value = (case.headers or {}).get("Authorization", "")
    try:
        claims = jwt.decode(value[7:], options={"verify_signature": False}) if isinstance(value, str) else {}
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


@schemathesis.hook
def before_call(context, case, kwargs):
    """In the stateful phase a registration gets a name and email of its own: the generator draws
    the same few minimal bodies again and again ("user exists", 400), so the links that start
    from a registration (register -> login -> sessions -> end a session) would seldom run. The
    other phases send the generated bodies as they are."""
    meta = case.meta
    if meta is None or meta.phase.name != "stateful" or case.operation.path != "/auth/register":
        return
    if isinstance(case.body, dict) and isinstance(case.body.get("password"), str):
        name = "st" + secrets.token_hex(6)
        case.body["username"], case.body["email"] = name, f"{name}@example.com"


@schemathesis.hook
def after_call(context, case, response):
    trace = os.environ.get("PV_CONTRACT_TRACE")
    meta = case.meta
    if not trace or meta is None or meta.phase.name != "stateful" or case.operation.path not in TRACED:
        return
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    claims = _claims(case)
    line = {"method": case.method.upper(), "path": case.operation.path, "status": response.status_code,
            "sub": claims.get("sub"), "sid": claims.get("sid"), "pathId": (case.path_parameters or {}).get("id")}
    if isinstance(body, dict) and "sessionId" in body:
        line["issued"] = body["sessionId"]
    if isinstance(body, list):
        line["listed"] = [s.get("id") for s in body if isinstance(s, dict)]
    with open(trace, "a") as f:
        f.write(json.dumps(line) + "\n")
