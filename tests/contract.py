"""Every response a test receives is checked against the OpenAPI document (in the spirit of
Zulip's documentation tests): the status code must be documented for the operation, and the
body must match its schema, which forbids undocumented fields (additionalProperties: false)."""
from __future__ import annotations

from functools import lru_cache

from jsonschema import Draft202012Validator, FormatChecker

from core.contract import Paths, document
from tests.support_paths import SPEC_PATH

METHODS = {"get", "post", "put", "patch", "delete"}


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class ContractViolation(AssertionError):
    pass


class Contract:
    def __init__(self, doc: dict):
        self.doc = doc
        self.paths = Paths(doc)
        self._validators: dict[str, Draft202012Validator] = {}

    def find(self, method: str, path: str) -> str | None:
        """The operation's template; a path that differs from one only by a trailing slash is
        that operation too (core/slashes.py answers it the same)."""
        method = method.lower()
        for candidate in (path, path[:-1] if path.endswith("/") else path + "/"):
            # Literal segments win over parameters (/messages/search before /messages/{id}).
            for template in self.paths.matching(candidate):
                if method in METHODS and method in self.doc["paths"][template]:
                    return template
        return None

    def _validator(self, pointer: str) -> Draft202012Validator:
        if pointer not in self._validators:
            root = dict(self.doc)
            root["$ref"] = pointer
            self._validators[pointer] = Draft202012Validator(root, format_checker=FormatChecker())
        return self._validators[pointer]

    def check(self, method: str, path: str, status: int, content_type: str, body) -> None:
        template = self.find(method, path)
        if template is None:
            return  # not an API operation (unknown route, docs, sockets)
        op = self.doc["paths"][template][method.lower()]
        responses = op.get("responses", {})
        key = str(status) if str(status) in responses else ("default" if "default" in responses else None)
        where = f"{method.upper()} {template} -> {status}"
        if key is None:
            raise ContractViolation(f"{where}: status not documented (documented: {sorted(responses)})")
        response = responses[key]
        if "$ref" in response:
            name = response["$ref"].rsplit("/", 1)[-1]
            response = self.doc["components"]["responses"][name]
            base = ("components", "responses", name)
        else:
            base = ("paths", template, method.lower(), "responses", key)
        content = response.get("content") or {}
        if not content:
            if body not in (None, b"", ""):
                raise ContractViolation(f"{where}: body sent where none is documented")
            return
        if "application/json" not in content:
            return
        if not content_type.startswith("application/json"):
            raise ContractViolation(f"{where}: content type {content_type!r}, documented application/json")
        if "schema" not in content["application/json"]:
            return
        pointer = _pointer(*base, "content", "application/json", "schema")
        errors = sorted(self._validator(pointer).iter_errors(body), key=lambda e: list(e.path))
        if errors:
            detail = "; ".join(f"{'/'.join(map(str, e.path)) or '<body>'}: {e.message}" for e in errors[:5])
            raise ContractViolation(f"{where}: body does not match the schema: {detail}")


@lru_cache
def contract() -> Contract:
    return Contract(document(SPEC_PATH))


def check_response(r) -> None:
    """Hold one httpx response to the contract (a no-op for paths that are not API operations)."""
    try:
        body = r.json() if r.content else None
    except ValueError:
        body = r.content
    contract().check(r.request.method, r.request.url.path, r.status_code, r.headers.get("content-type", ""), body)


def check_every_httpx_response() -> None:
    """Patch httpx so that every response any test receives, through tests.support.Api, a bare
    httpx call or a generated SDK client alike, is checked against the OpenAPI document."""
    import httpx

    if getattr(httpx.Client.send, "_pv_contract", False):
        return
    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self, request, *args, **kwargs):
        r = sync_send(self, request, *args, **kwargs)
        if not kwargs.get("stream"):
            check_response(r)
        return r

    async def asend(self, request, *args, **kwargs):
        r = await async_send(self, request, *args, **kwargs)
        if not kwargs.get("stream"):
            check_response(r)
        return r

    send._pv_contract = asend._pv_contract = True
    httpx.Client.send, httpx.AsyncClient.send = send, asend
