"""Schemathesis hooks for the contract run: every case is authenticated as a real user.

Tokens are refreshed from fresh accounts every few seconds, so an operation that ends its own
session (account deletion, password change) cannot starve the rest of the run.
"""
from __future__ import annotations

import os
import secrets

import httpx
import schemathesis


@schemathesis.auth(refresh_interval=3)
class FreshAccount:
    def get(self, case, ctx):
        base = os.environ["PV_CONTRACT_BASE"]
        name = "fz" + secrets.token_hex(6)
        r = httpx.post(f"{base}/api/auth/register", timeout=30,
                       json={"username": name, "email": f"{name}@example.com", "password": "password123"})
        r.raise_for_status()
        token = r.json()["token"]
        # Give the account something to act on: a server with a text and a voice channel.
        h = {"Authorization": f"Bearer {token}"}
        s = httpx.post(f"{base}/api/servers", headers=h, json={"name": name}, timeout=30).json()
        for kind in ("text", "voice"):
            httpx.post(f"{base}/api/servers/{s['id']}/channels", headers=h, json={"name": kind, "type": kind},
                       timeout=30)
        return token

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
