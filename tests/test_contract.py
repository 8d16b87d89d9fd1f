"""Schemathesis over every operation of the OpenAPI document against the live server, every check
on and the stateful phase driven by the document's links (settings: schemathesis.toml; tokens:
tests/schemathesis_hooks.py). Zero failures and zero errors."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.support import ROOT, make_admin


def test_schemathesis_finds_no_failure(server, api, tmp_path):
    admin = make_admin(api, server)
    args = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.base}/api/openapi.json",
            "--report", "junit", "--report-dir", str(tmp_path)]
    env = {**os.environ, "PV_CONTRACT_BASE": server.base, "PYTHONPATH": str(ROOT),
           "PV_CONTRACT_ADMIN_EMAIL": admin.email, "PV_CONTRACT_ADMIN_PASSWORD": admin.password}
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    out = r.stdout[-20000:] + r.stderr[-5000:]
    assert r.returncode == 0, out
    # Every operation was exercised, the stateful phase ran, and nothing was skipped for errors.
    assert "Selected: " in r.stdout and "Stateful" in r.stdout, out
