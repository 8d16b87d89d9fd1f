"""The compiled parameter checks (projectvoice/connexion_speedups.py fast_validator) never accept
what jsonschema's Draft 4 validator, Connexion's own, rejects: for every parameter schema of our
OpenAPI document that they take, on values at and around each bound and of every JSON type."""
from __future__ import annotations

import yaml
from jsonschema import Draft4Validator

from projectvoice.connexion_speedups import fast_validator
from core.settings import ROOT


def _parameter_schemas() -> list[dict]:
    doc = yaml.safe_load((ROOT / "openapi" / "projectvoice.yaml").read_text())
    shared = doc["components"].get("parameters", {})
    found = [p["schema"] for p in shared.values()]
    for item in doc["paths"].values():
        for op in [item, *(v for v in item.values() if isinstance(v, dict))]:
            for p in op.get("parameters", []) if isinstance(op, dict) else []:
                if "$ref" not in p:
                    found.append(p["schema"])
    return found


def _probes(schema: dict) -> list:
    values = [None, True, False, 0, 1, -1, 1.0, 1.5, -0.0, 10**20, -(10**20), 2**63, "", "a", "1", "é", "😀",
              "x" * 1000, [], [1], {}, {"a": 1}]
    for key in ("minimum", "maximum"):
        if key in schema:
            values += [schema[key] - 1, schema[key], schema[key] + 1, float(schema[key]), schema[key] + 0.5]
    for key in ("minLength", "maxLength"):
        if key in schema:
            n = schema[key]
            values += ["y" * max(n - 1, 0), "y" * n, "y" * (n + 1), "é" * n, "😀" * n, "😀" * (n + 1)]
    values += list(schema.get("enum", [])) + [str(v).upper() for v in schema.get("enum", [])]
    return values


def test_compiled_checks_never_accept_what_jsonschema_rejects():
    taken = 0
    for schema in _parameter_schemas():
        fast = fast_validator(schema)
        if fast is None:
            continue
        taken += 1
        slow = Draft4Validator(schema)
        for value in _probes(schema):
            try:
                accepted = fast(value)
            except Exception:
                accepted = False  # the caller then asks jsonschema
            assert not accepted or slow.is_valid(value), (schema, value)
            assert accepted == slow.is_valid(value) or isinstance(value, int) and abs(value) > 2**62, (schema, value)
    assert taken >= 5  # the query and path parameters of the hot reads are among them
