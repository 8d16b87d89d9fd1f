"""Fixtures: one real server process per test session (SQLite or PostgreSQL by PV_TEST_DB)."""
from __future__ import annotations

import pytest

from tests.contract import check_every_httpx_response
from tests.support import Api, Database, ServerProcess

# Every HTTP response any test receives is checked against the OpenAPI document (tests/contract.py).
check_every_httpx_response()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    database = Database.fresh(tmp)
    proc = ServerProcess(database=database, data_dir=tmp / "data").start()
    yield proc
    proc.stop()
    database.drop()


@pytest.fixture(scope="session")
def api(server) -> Api:
    return Api(server.base)


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
