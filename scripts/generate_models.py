"""Generate generated/*.py from the specs with datamodel-code-generator.

    python scripts/generate_models.py          # write generated/
    python scripts/generate_models.py --check  # exit 1 when generated/ is out of date
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "generated"
COMMON = [
    "--output-model-type", "pydantic_v2.BaseModel",
    "--disable-timestamp",
    "--use-standard-collections",
    "--use-union-operator",
    "--target-python-version", "3.11",
    "--use-schema-description",
    "--field-constraints",
]


def _codegen(args: list[str]) -> None:
    exe = Path(sys.executable).with_name("datamodel-codegen")
    subprocess.run([str(exe), *args, *COMMON], check=True, cwd=ROOT)


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "__init__.py").write_text(
        '"""Payload models generated from openapi/ and asyncapi/ by `make generate`. Do not edit."""\n'
    )
    _codegen(["--input", str(ROOT / "openapi" / "projectvoice.yaml"), "--input-file-type", "openapi",
              "--output", str(out / "rest.py")])
    asyncapi = ROOT / "asyncapi" / "projectvoice.yaml"
    if asyncapi.exists():
        doc = yaml.safe_load(asyncapi.read_text())
        schemas = (doc.get("components") or {}).get("schemas") or {}
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp) / "events.json"
            text = json.dumps({"$defs": schemas}).replace("#/components/schemas/", "#/$defs/")
            bundle.write_text(text)
            _codegen(["--input", str(bundle), "--input-file-type", "jsonschema",
                      "--output", str(out / "events.py"), "--class-name", "AsyncApiEvents"])


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
