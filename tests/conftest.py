"""Fixtures: one real server process per test session (SQLite or PostgreSQL by PV_TEST_DB), and
`tight`, a server of a test module's own with the settings in its TIGHT_ENV (limits the shared
server must not have)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.contract import check_every_httpx_response
from tests.support import Api, own_server
from tests.support_sockets import JS, socket_clients

# Every HTTP response any test receives is checked against the OpenAPI document (tests/contract.py).
check_every_httpx_response()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    with own_server(tmp_path_factory.mktemp("server")) as proc:
        yield proc


@pytest.fixture(scope="session")
def api(server) -> Api:
    return Api(server.base)


@pytest.fixture(scope="module")
def tight(request, tmp_path_factory):
    """A server of the module's own, started with the module's TIGHT_ENV (settings -> values)."""
    env = getattr(request.module, "TIGHT_ENV", None)
    assert env is not None, f"{request.module.__name__} uses `tight` without a TIGHT_ENV"
    with own_server(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]), env) as proc:
        yield proc


@pytest.fixture(scope="module")
def tapi(tight) -> Api:
    return Api(tight.base)


@pytest.fixture
def alice(api):
    return api.register()


@pytest.fixture
def bob(api):
    return api.register()


@pytest.fixture(scope="session")
def admin(api, server):
    from tests.support import make_admin

    return make_admin(api, server)


@pytest.fixture
async def clients(server):
    """Connects Socket.IO clients to the module's `server` (`await clients(token, form)`); all
    are closed, and their events checked, at the end of the test."""
    async with socket_clients(server.base) as make:
        yield make


@pytest.fixture(scope="module")
def node():
    """The node executable, with tests/js's socket.io-client installed; skips without Node.js."""
    exe = shutil.which("node")
    if exe is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    if not (JS / "node_modules" / "socket.io-client").exists():
        subprocess.run(["npm", "ci", "--prefix", str(JS), "--no-audit", "--no-fund"], check=True, timeout=300)
    return exe
