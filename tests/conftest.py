"""Fixtures: one real server process per test session (SQLite or PostgreSQL by PV_TEST_DB)."""
from __future__ import annotations

import pytest

from tests.support import Api, Database, ServerProcess


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
