"""Schemathesis over every operation of the OpenAPI document against the live server, every check
on and the stateful phase driven by the document's links (settings: schemathesis.toml; tokens:
tests/schemathesis_hooks.py). Zero failures and zero errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support import ROOT, make_admin


def test_schemathesis_finds_no_failure(server, api, tmp_path):
    admin = make_admin(api, server)
    args = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.base}/api/openapi.json",
            "--report", "junit", "--report-dir", str(tmp_path)]
    env = {**os.environ, "PV_CONTRACT_BASE": server.base, "PYTHONPATH": str(ROOT),
           "PV_CONTRACT_ADMIN_EMAIL": admin.email, "PV_CONTRACT_ADMIN_PASSWORD": admin.password,
           "PV_CONTRACT_TRACE": str(tmp_path / "stateful-sessions.jsonl")}
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    out = r.stdout[-20000:] + r.stderr[-5000:]
    assert r.returncode == 0, out
    # Every operation was exercised, the stateful phase ran, and nothing was skipped for errors.
    assert "Selected: " in r.stdout and "Stateful" in r.stdout, out
    # The stateful phase ran the session links (issue 18): login -> sessions with the token a login
    # or registration issued, and sessions -> end the newest session listed, with the listing token.
    trace = tmp_path / "stateful-sessions.jsonl"
    calls = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
    print("\n".join(json.dumps(c) for c in calls))  # shown with -s
    issued: set[int] = set()
    newest: set[tuple[int, int]] = set()  # (the listing token's session, the newest listed)
    login_then_list = list_then_end = 0
    for c in calls:
        if c["path"] in ("/auth/login", "/auth/register") and c.get("issued"):
            issued.add(c["issued"])
        elif c["method"] == "GET" and c["status"] == 200:
            login_then_list += c["sid"] in issued
            if c.get("listed"):
                newest.add((c["sid"], c["listed"][0]))
        elif c["method"] == "DELETE" and c["status"] == 204:
            list_then_end += (c["sid"], c["pathId"]) in newest
    assert login_then_list and list_then_end, (login_then_list, list_then_end, out)
