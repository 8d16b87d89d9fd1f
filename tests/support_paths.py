"""Paths the test modules share."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "openapi" / "projectvoice.yaml"
ASYNCAPI_PATH = ROOT / "asyncapi" / "projectvoice.yaml"
