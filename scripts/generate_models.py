"""Generate generated/*.py from the specs with datamodel-codegen: what the code uses, nothing else.

    python scripts/generate_models.py          # write generated/
    python scripts/generate_models.py --check  # exit 1 when generated/ is out of date

- generated/rest.py: a TypedDict per schema a response body of openapi/projectvoice.yaml uses
  (models/views.py returns them; mypy checks every view against the document).
- generated/events.py: a TypedDict per schema a server-sent event of asyncapi/projectvoice.yaml
  uses (realtime/events.py types the payloads passed to emit).
- generated/event_args.py: strict pydantic models of what clients send (the `receive`
  operations' payloads); realtime/validation.py validates every client event with them.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "generated"
COMMON = [
    "--disable-timestamp",
    "--use-standard-collections",
    "--use-union-operator",
    "--target-python-version", "3.11",
    "--use-schema-description",
    "--field-constraints",
    "--enum-field-as-literal", "all",
    "--formatters", "black", "isort",
]
TYPED = ["--output-model-type", "typing.TypedDict"]
# Strict: a client's "1" is not a number nor 1.5 a string; JSON Schema's types exactly.
VALIDATING = ["--output-model-type", "pydantic_v2.BaseModel", "--use-annotated",
              "--strict-types", "str", "int", "float", "bool"]


def _codegen(args: list[str]) -> None:
    exe = Path(sys.executable).with_name("datamodel-codegen")
    subprocess.run([str(exe), *args, *COMMON], check=True, cwd=ROOT)


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out.add(value)
            else:
                _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _closure(doc: dict[str, Any], roots: list[Any]) -> list[str]:
    """The names of the component schemas `roots` use, directly or through other schemas."""
    prefix = "#/components/schemas/"
    seen: set[str] = set()
    todo: set[str] = set()
    for root in roots:
        _refs(root, todo)
    while todo:
        ref = todo.pop()
        if ref.startswith(prefix) and ref not in seen:
            seen.add(ref)
            _refs(_resolve(doc, ref), todo)
    schemas = doc["components"]["schemas"]
    return [name for name in schemas if prefix + name in seen]  # the document's order


def _bundle(doc: dict[str, Any], names: list[str], path: Path) -> None:
    """The named schemas as one JSON Schema document ($defs) for the generator."""
    schemas = doc["components"]["schemas"]
    text = json.dumps({"$defs": {n: schemas[n] for n in names}}).replace("#/components/schemas/", "#/$defs/")
    path.write_text(text)


def _response_roots(doc: dict[str, Any]) -> list[Any]:
    roots = []
    for item in doc["paths"].values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            for response in (op.get("responses") or {}).values():
                if "$ref" in response:
                    response = _resolve(doc, response["$ref"])
                for media in (response.get("content") or {}).values():
                    roots.append(media.get("schema"))
    return roots


def _event_roots(doc: dict[str, Any], action: str) -> list[Any]:
    roots = []
    for op in doc["operations"].values():
        if op["action"] != action:
            continue
        for ref in op["messages"]:
            message = _resolve(doc, ref["$ref"])
            if "$ref" in message:
                message = _resolve(doc, message["$ref"])
            roots.append(message.get("payload"))
    return roots


def _generate(doc: dict[str, Any], roots: list[Any], style: list[str], out: Path, tmp: Path) -> None:
    bundle = tmp / (out.stem + ".json")
    _bundle(doc, _closure(doc, roots), bundle)
    _codegen(["--input", str(bundle), "--input-file-type", "jsonschema", "--output", str(out),
              "--class-name", "Schemas", *style])
    # The generator names its input (a temporary file); name the document instead.
    # and drop the model of the bundle itself (an Any nothing uses).
    text = out.read_text().replace(f"#   filename:  {bundle.name}", f"#   from:  {out.stem} of the specs")
    text = re.sub(r"(Schemas: TypeAlias = Any|class Schemas\(RootModel\[Any\]\):\n    root: Any)\n\n\n", "", text)
    out.write_text(text)


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "__init__.py").write_text(
        '"""Payload types generated from openapi/ and asyncapi/ by `make generate` '
        '(scripts/generate_models.py). Do not edit."""\n'
    )
    rest = yaml.safe_load((ROOT / "openapi" / "projectvoice.yaml").read_text())
    events = yaml.safe_load((ROOT / "asyncapi" / "projectvoice.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        _generate(rest, _response_roots(rest), TYPED, out / "rest.py", Path(tmp))
        _generate(events, _event_roots(events, "send"), TYPED, out / "events.py", Path(tmp))
        _generate(events, _event_roots(events, "receive"), VALIDATING, out / "event_args.py", Path(tmp))


def main() -> int:
    if "--check" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "generated"
            generate(fresh)
            stale = [p.name for p in fresh.iterdir()
                     if not (OUT / p.name).exists() or (OUT / p.name).read_text() != p.read_text()]
            extra = [p.name for p in OUT.glob("*.py") if not (fresh / p.name).exists()]
        if stale or extra:
            print(f"generated/ is out of date with the specs: {sorted(stale + extra)}; run `make generate`")
            return 1
        print("generated/ matches the specs")
        return 0
    generate(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
