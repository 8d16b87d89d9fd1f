"""Both API documents pass their linters, and every example in them matches its schema.

openapi-spec-validator runs in tests/test_specs.py; here @redocly/cli lint (settings: redocly.yaml)
for OpenAPI and @asyncapi/parser for AsyncAPI, both from the npm project lint/ (`make lint/node_modules`).
Any error or warning fails.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from tests.support import ROOT

OPENAPI = ROOT / "openapi" / "projectvoice.yaml"
ASYNCAPI = ROOT / "asyncapi" / "projectvoice.yaml"
LINT = ROOT / "lint"


def _node_tool(*parts: str):
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    path = LINT.joinpath("node_modules", *parts)
    assert path.exists(), f"{path} missing: run `make lint/node_modules` (npm ci --prefix lint)"
    return path


def test_redocly_lint_has_no_error_or_warning():
    redocly = _node_tool(".bin", "redocly")
    r = subprocess.run([str(redocly), "lint", str(OPENAPI), "--config", str(ROOT / "redocly.yaml"), "--format=json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = json.loads(r.stdout)
    problems = [f"{p['severity']} {p['ruleId']}: {p['message']} at {p['location'][0]['pointer']}"
                for p in report["problems"]]
    assert report["totals"]["errors"] == 0 and report["totals"]["warnings"] == 0, "\n".join(problems)
    assert r.returncode == 0, r.stderr[-3000:]


def test_asyncapi_parser_has_no_error_or_warning():
    _node_tool("@asyncapi", "parser")
    r = subprocess.run(["node", str(LINT / "validate-asyncapi.mjs"), str(ASYNCAPI)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]


# ----------------------------------------------------------------------------- examples

def _pointer(path) -> str:
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


_SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}


def _examples(doc: dict, asyncapi: bool):
    """Yield (where, schema pointer, example value) for every example in the document."""
    def walk(node, path):
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield from walk(item, (*path, i))
            return
        if not isinstance(node, dict):
            return
        parent = path[-1] if path else None
        if parent not in _SCHEMA_MAPS and not (len(path) >= 2 and path[-2] == "examples"):
            if asyncapi and isinstance(node.get("payload"), dict) and isinstance(node.get("examples"), list):
                # Message object: examples are [{payload, headers?, name?, summary?}].
                for i, ex in enumerate(node["examples"]):
                    if "payload" in ex:
                        yield _pointer((*path, "examples", i)), _pointer((*path, "payload")), ex["payload"]
            elif isinstance(node.get("schema"), dict):
                # Media type, parameter or header object: example, or examples {name: {value}}.
                if "example" in node:
                    yield _pointer((*path, "example")), _pointer((*path, "schema")), node["example"]
                for name, ex in (node.get("examples") or {}).items():
                    if "$ref" in ex:
                        ex = doc["components"]["examples"][ex["$ref"].rsplit("/", 1)[-1]]
                    if "value" in ex:
                        yield _pointer((*path, "examples", name)), _pointer((*path, "schema")), ex["value"]
            elif any(k in node for k in ("type", "properties", "$ref", "allOf", "oneOf", "anyOf", "enum", "const")):
                # Schema object: JSON Schema `examples` (a list) or the OpenAPI `example`.
                if isinstance(node.get("examples"), list):
                    for i, ex in enumerate(node["examples"]):
                        yield _pointer((*path, "examples", i)), _pointer(path), ex
                if "example" in node:
                    yield _pointer((*path, "example")), _pointer(path), node["example"]
        for key, value in node.items():
            yield from walk(value, (*path, key))

    yield from walk(doc, ())


@pytest.mark.parametrize("spec", [OPENAPI, ASYNCAPI], ids=["openapi", "asyncapi"])
def test_every_example_matches_its_schema(spec):
    doc = yaml.safe_load(spec.read_text())
    asyncapi = "asyncapi" in doc
    failures, count = [], 0
    validators: dict[str, Draft202012Validator] = {}
    for where, pointer, value in _examples(doc, asyncapi):
        count += 1
        if pointer not in validators:
            validators[pointer] = Draft202012Validator({**doc, "$ref": pointer}, format_checker=FormatChecker())
        for e in validators[pointer].iter_errors(value):
            failures.append(f"{where}: {'/'.join(map(str, e.path)) or '<value>'}: {e.message}")
    assert count >= (100 if not asyncapi else 5), f"only {count} examples found: the walker missed some"
    assert not failures, f"{len(failures)} of {count} examples do not match:\n" + "\n".join(failures[:50])
