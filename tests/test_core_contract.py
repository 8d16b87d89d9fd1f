"""core/contract.py: the path templates and content limits the code reads from the OpenAPI
document (one matcher for the 405's Allow, the trailing-slash aliases, the rate-limited invite
route and tests/contract.py)."""
from __future__ import annotations

import re

from core import contract


def _concrete(template: str, value: str = "12") -> str:
    return re.sub(r"\{[^}]+\}", value, template)


def test_every_template_matches_its_own_paths_and_nothing_longer():
    base = contract.base_path()
    assert base == "/api"
    paths = contract.Paths()
    for template in contract.document()["paths"]:
        regex = contract.template_regex(base + template)
        assert regex.fullmatch(base + _concrete(template)), template
        assert template in paths.matching(base + _concrete(template)), template
        assert not regex.fullmatch(base + _concrete(template) + "/x"), template
        if "{" in template:
            # A parameter is one segment: a value holding a slash is another path.
            assert not regex.fullmatch(base + _concrete(template, "1/2")), template
        # Literal text is literal: `.` or `+` in a template never matches another character.
        assert not regex.fullmatch("/apix" + _concrete(template)), template


def test_a_literal_segment_wins_over_a_parameter():
    paths = contract.Paths()
    assert paths.matching("/api/messages/search")[0] == "/messages/search"
    assert "/messages/{id}" in paths.matching("/api/messages/search")
    assert paths.matching("/api/messages/7") == ["/messages/{id}"]
    assert paths.matching("/api/nothing/here") == []


def test_operations_are_every_operation_of_the_document():
    ops = list(contract.operations())
    assert len(ops) == sum(1 for item in contract.document()["paths"].values()
                           for method in item if method in contract.METHODS)
    assert all(op["operationId"].startswith("handlers.") for _, _, op in ops)


def test_content_limits_come_from_the_document():
    schemas = contract.document()["components"]["schemas"]
    # Posting and editing share one check (handlers/messages.py), so they share one limit.
    assert contract.MESSAGE_MAX_LENGTH == schemas["MessageCreate"]["properties"]["content"]["maxLength"]
    assert contract.MESSAGE_MAX_LENGTH == schemas["MessageUpdate"]["properties"]["content"]["maxLength"]
    for schema in ("RegisterRequest", "AccountUpdate", "ProfileUpdate"):
        username = schemas[schema]["properties"]["username"]
        assert (username["minLength"], username["maxLength"]) == \
            (contract.USERNAME_MIN_LENGTH, contract.USERNAME_MAX_LENGTH), schema
    assert contract.max_length("RegisterRequest", "password") == 128


def test_405_lists_the_methods_of_the_matched_path(api, alice):
    """projectvoice/error_handlers.py takes the Allow header from the document's templates."""
    r = api.request("PATCH", "/servers", alice.token)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, POST", (r.status_code, r.headers)
    r = api.request("PATCH", "/messages/7", alice.token)
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, PUT", (r.status_code, r.headers)
    # /messages/search is also /messages/{id}'s shape: the literal path's methods only.
    r = api.request("PATCH", "/messages/search", alice.token)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD", (r.status_code, r.headers)


def test_every_operation_documents_the_head_limit():
    """HeadLimits (projectvoice/middleware.py) answers 431 before routing, on any path."""
    missing = [f"{method.upper()} {template}" for template, method, op in contract.operations()
               if op["responses"].get("431") != {"$ref": "#/components/responses/HeadersTooLarge"}]
    assert not missing, "operations without '431': {$ref: HeadersTooLarge}:\n" + "\n".join(missing)
