"""CONNEXION_SPEEDUPS=0 really runs Connexion and Starlette as published (`make test-plain` runs the
whole suite that way), and the default really patches them."""
from __future__ import annotations

import subprocess
import sys

from core.settings import ROOT

PROBE = """
import sys
from connexion.apps.asynchronous import AsyncOperation
from starlette import routing
from projectvoice.app import create_connexion_app
from core.settings import Settings
fn, router_app = AsyncOperation.fn, routing.Router.app
create_connexion_app(Settings(connexion_speedups=sys.argv[1] == "on", jwt_secret="x" * 40))
print(AsyncOperation.fn is fn, routing.Router.app is router_app)
"""


def _untouched(switch: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, switch], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=120)
    return out.stdout.split()[-2:]


def test_switch_off_leaves_connexion_and_starlette_as_published():
    assert _untouched("off") == ["True", "True"]


def test_switch_on_patches_both():
    assert _untouched("on") == ["False", "False"]
