"""The REST contract, openapi/projectvoice.yaml, read once per process: what the code takes from
the document instead of writing it a second time.

- `document()`: the parsed document (LibYAML's parser: a fifth of the pure-Python one's time).
- `base_path()`, `operations()`: the `/api` prefix; every (template, method, operation).
- `template_pattern()` / `template_regex()`: a path template as a regex, each `{param}` one path
  segment and everything else literal (full matches). `Paths(doc).matching(path)`: the templates
  a concrete path matches, those with fewer parameters first, as the router ranks them (a
  literal segment wins over a parameter).
- Content limits: `max_length(schema, field)`, and the ones the code checks by hand after
  trimming (MESSAGE_MAX_LENGTH, USERNAME_MIN_LENGTH, USERNAME_MAX_LENGTH).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any
from pathlib import Path

import yaml

from core.settings import ROOT

SPEC = ROOT / "openapi" / "projectvoice.yaml"
# The keys of an OpenAPI path item that are operations.
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PARAM = re.compile(r"\{[^}/]+\}")
# A parsed YAML/JSON object: its values are whatever the document holds.
Doc = dict[str, Any]


@functools.cache
def document(spec: Path = SPEC) -> Doc:
    """The parsed document; shared, so never modified."""
    doc: Doc = yaml.load(spec.read_text(), Loader=_LOADER)
    return doc


def base_path(doc: Doc | None = None) -> str:
    """The prefix every path template sits under (`/api`), without a trailing slash."""
    doc = document() if doc is None else doc
    return ((doc.get("servers") or [{}])[0].get("url") or "").rstrip("/")


def operations(doc: Doc | None = None) -> Iterator[tuple[str, str, Doc]]:
    """(path template, method, operation object) for every operation, in document order."""
    doc = document() if doc is None else doc
    for template, item in (doc.get("paths") or {}).items():
        for method, op in item.items():
            if method in METHODS and isinstance(op, dict):
                yield template, method, op


def template_pattern(template: str) -> str:
    """Regex source for a path template: each `{param}` one path segment, the rest literal."""
    return "[^/]+".join(re.escape(part) for part in _PARAM.split(template))


def template_regex(template: str) -> re.Pattern[str]:
    """A path template compiled; use `fullmatch`."""
    return re.compile(template_pattern(template))


class Paths:
    """The document's path templates (with the base path), matched against concrete paths."""

    def __init__(self, doc: Doc | None = None) -> None:
        doc = document() if doc is None else doc
        base = base_path(doc)
        table = [(template.count("{"), template_regex(base + template), template)
                 for template in (doc.get("paths") or {})]
        table.sort(key=lambda row: row[0])  # stable: document order among equals
        self._table = table

    def matching(self, path: str) -> list[str]:
        """The templates `path` matches, fewer parameters first (a literal segment wins)."""
        return [template for _, regex, template in self._table if regex.fullmatch(path)]


def max_length(schema: str, field: str, doc: Doc | None = None) -> int:
    """`maxLength` of a string property of a component schema."""
    return int(_property(schema, field, doc)["maxLength"])


def min_length(schema: str, field: str, doc: Doc | None = None) -> int:
    """`minLength` of a string property of a component schema."""
    return int(_property(schema, field, doc)["minLength"])


def _property(schema: str, field: str, doc: Doc | None) -> Doc:
    doc = document() if doc is None else doc
    prop: Doc = doc["components"]["schemas"][schema]["properties"][field]
    return prop


# Limits the handlers check again after trimming (the schema checks what was sent).
MESSAGE_MAX_LENGTH = max_length("MessageCreate", "content")
USERNAME_MIN_LENGTH = min_length("RegisterRequest", "username")
USERNAME_MAX_LENGTH = max_length("RegisterRequest", "username")
