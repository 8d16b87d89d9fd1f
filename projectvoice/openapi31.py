"""Let Connexion 3 load an OpenAPI 3.1 document.

Connexion 3.3 checks a document against its bundled OpenAPI 3.0 meta-schema, which rejects
`openapi: 3.1.x`. Its request and response validators (JSON Schema draft 4 with type lists)
handle everything our document uses, so only the document check is swapped for
openapi-spec-validator's, which knows 3.1.
"""
from __future__ import annotations

from typing import Any

import connexion.spec
from connexion.exceptions import InvalidSpecification
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

_original = connexion.spec.OpenAPISpecification._validate_spec


def _validate_spec(cls: type[Any], spec: dict[str, Any]) -> None:
    if str(spec.get("openapi", "")).startswith("3.1"):
        try:
            validate(spec)
        except OpenAPIValidationError as e:
            raise InvalidSpecification(str(e)) from e
        return
    _original.__func__(cls, spec)


def install() -> None:
    connexion.spec.OpenAPISpecification._validate_spec = classmethod(_validate_spec)
