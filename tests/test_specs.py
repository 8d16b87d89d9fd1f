"""The specs are valid, generated/ is fresh, and the migrations match the models."""
from __future__ import annotations

import subprocess
import sys

import yaml

from tests.support import ROOT


def test_openapi_document_is_valid():
    from openapi_spec_validator import validate

    validate(yaml.safe_load((ROOT / "openapi" / "projectvoice.yaml").read_text()))


def test_generated_models_are_up_to_date():
    r = subprocess.run([sys.executable, "scripts/generate_models.py", "--check"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_operation_has_a_handler():
    """No operationId points at a function that does not exist (that would answer 501)."""
    import importlib

    doc = yaml.safe_load((ROOT / "openapi" / "projectvoice.yaml").read_text())
    missing = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            module, _, func = op["operationId"].rpartition(".")
            try:
                ok = hasattr(importlib.import_module(module), func)
            except ImportError:
                ok = False
            if not ok:
                missing.append(f"{method.upper()} {path} -> {op['operationId']}")
    assert not missing, "operations without a handler:\n" + "\n".join(missing)


def test_migrations_match_models(tmp_path):
    env_url = f"sqlite:///{tmp_path / 'm.db'}"
    alembic = [sys.executable, "-m", "alembic"]
    env = {"DATABASE_URL": env_url, "PATH": "/usr/bin:/bin"}
    up = subprocess.run([*alembic, "upgrade", "head"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    check = subprocess.run([*alembic, "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
