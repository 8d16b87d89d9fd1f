"""Work Connexion 3.3 repeats on every request that depends only on the handler, done once.

Found with py-spy under load (issue 9): for each request Connexion builds the handler's
decorator chain anew (AsyncOperation.fn, then ASGIDecorator's wrapper calls decorate() again),
reads the handler's and the bearer check's signatures with inspect.signature(), for each
query or path parameter deep-copies its definition and builds a new JSON Schema validator, and
finds the Content-Type header through typing generics it builds on each call, and parses the
query string twice (request validation and the handler's parameters each build a request);
together about a sixth of a cheap request's CPU. The chain and the signatures depend only on
the function (the request reaches them through Connexion's context variables at call time),
and a validator only on its schema, so building each once changes nothing but the cost.
Installed by projectvoice.app before the API is added; every test through the API runs them.
They replace Connexion internals, so they apply only to the Connexion release they were read
from (PATCHED_RELEASE); any other release runs unpatched, correct and slower, with a warning.
"""
from __future__ import annotations

import copy
import functools
import importlib.metadata
import logging

import connexion.decorators.main as decorators_main
import connexion.decorators.parameter as decorators_parameter
import connexion.lifecycle as lifecycle
import connexion.security as security
import connexion.utils as utils
import connexion.validators.parameter as parameter_validators
from connexion.apps.asynchronous import AsyncOperation
from jsonschema import ValidationError

PATCHED_RELEASE = "3.3."
log = logging.getLogger("projectvoice")
_installed = False


def install() -> bool:
    """Apply the patches once; False (and a warning) on a Connexion release they were not read from."""
    global _installed
    if _installed:
        return True
    release = importlib.metadata.version("connexion")
    if not release.startswith(PATCHED_RELEASE):
        log.warning("connexion %s: per-request speed-ups written for %sx not applied", release, PATCHED_RELEASE)
        return False
    _installed = True

    # Signatures: keyed by the function object, which lives as long as the app.
    cached = functools.lru_cache(maxsize=1024)(utils.inspect_function_arguments)
    utils.inspect_function_arguments = cached
    decorators_parameter.inspect_function_arguments = cached
    security.inspect_function_arguments = cached

    # The decorator chain: built on the first request of each operation, then reused.
    build_fn = AsyncOperation.fn.fget

    def fn(self):
        chain = self.__dict__.get("_pv_fn")
        if chain is None:
            chain = self.__dict__["_pv_fn"] = build_fn(self)
        return chain

    AsyncOperation.fn = property(fn)

    scope, receive = decorators_main.scope, decorators_main.receive

    def asgi_call(self, function):
        decorated = None

        @functools.wraps(function)
        async def wrapper(*args, **kwargs):
            nonlocal decorated
            request = self.framework.get_request(uri_parser=self.uri_parser, scope=scope, receive=receive)
            if decorated is None:
                decorated = self.decorate(function)
            return await decorated(request)

        return wrapper

    decorators_main.ASGIDecorator.__call__ = asgi_call

    # Parameter validators: one per parameter definition (the spec's dicts live as long as the
    # app; the entry keeps its dict alive, so its id is never reused while cached).
    validators: dict[int, tuple[dict, object]] = {}
    is_nullable, is_null = parameter_validators.is_nullable, parameter_validators.is_null
    Draft4Validator = parameter_validators.Draft4Validator
    checker = parameter_validators.draft4_format_checker

    def validate_parameter(parameter_type, value, param, param_name=None):
        if is_nullable(param) and is_null(value):
            return None
        if value is not None:
            entry = validators.get(id(param))
            if entry is None:
                schema = copy.deepcopy(param.get("schema", param))
                entry = validators[id(param)] = (param, Draft4Validator(schema, format_checker=checker))
            try:
                entry[1].validate(value)
            except ValidationError as exception:
                return str(exception)
            return None
        if param.get("required"):
            return f"Missing {parameter_type} parameter '{param['name']}'"
        return None

    parameter_validators.ParameterValidator.validate_parameter = staticmethod(validate_parameter)

    # Content-Type lookup: the same answer without building typing generics per call.
    def extract_content_type(headers):
        pairs = headers.items() if isinstance(headers, dict) else headers
        for key, value in pairs:
            name = key.decode("latin-1") if isinstance(key, bytes) else key
            if name.lower() == "content-type":
                return value.decode("latin-1") if isinstance(value, bytes) else value
        return None

    utils.extract_content_type = extract_content_type

    # Query parameters: parsed once per request and kept in the request's scope (both requests
    # share it, and with it the operation and its parser); nobody mutates the parsed dict.
    def query_params(self):
        if self._query_params is None:
            extensions = self._starlette_request.scope.setdefault("extensions", {})
            parsed = extensions.get("pv_query_params")
            if parsed is None:
                args = self._starlette_request.query_params
                parsed = extensions["pv_query_params"] = self.uri_parser.resolve_query(
                    {k: args.getlist(k) for k in args})
            self._query_params = parsed
        return self._query_params

    lifecycle.ConnexionRequest.query_params = property(query_params)
    return True
