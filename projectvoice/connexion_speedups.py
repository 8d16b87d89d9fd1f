"""Work Connexion 3.3 repeats on every request that depends only on the handler, done once.

Found with py-spy under load (issue 9): for each request Connexion builds the handler's
decorator chain anew (AsyncOperation.fn, then ASGIDecorator's wrapper calls decorate() again),
reads the handler's and the bearer check's signatures with inspect.signature(), for each
query or path parameter deep-copies its definition and builds a new JSON Schema validator, and
finds the Content-Type header through typing generics it builds on each call, and parses the
query string twice (request validation and the handler's parameters each build a request),
builds two URI parsers and a parameter validator, and Starlette's routers try the routes one
regex at a time; together about a sixth of a cheap request's CPU. The chain and the signatures depend only on
the function (the request reaches them through Connexion's context variables at call time),
and a validator only on its schema, so building each once changes nothing but the cost.
Installed by projectvoice.app before the API is added; every test through the API runs them.
They replace Connexion internals, so they apply only to the Connexion release they were read
from (PATCHED_RELEASE, and PATCHED_STARLETTE for the router); any other release runs unpatched,
correct and slower, with a warning.
"""
from __future__ import annotations

import copy
import functools
import importlib.metadata
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

import connexion.decorators.main as decorators_main
import connexion.decorators.parameter as decorators_parameter
import connexion.lifecycle as lifecycle
import connexion.middleware.request_validation as request_validation
import connexion.uri_parsing as uri_parsing
import connexion.security as security
import connexion.utils as utils
import connexion.validators.parameter as parameter_validators
import jsonschema_rs
import starlette
from connexion.apps.asynchronous import AsyncOperation
from jsonschema import ValidationError
from starlette import routing
from starlette.datastructures import URL
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

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

    # Parameter names made into Python names: three regex substitutions per name per request,
    # a pure function of a name the spec fixes.
    sanitized = functools.lru_cache(maxsize=1024)(decorators_parameter.sanitized)
    decorators_parameter.sanitized = sanitized
    pythonic = functools.lru_cache(maxsize=1024)(decorators_parameter.pythonic)
    decorators_parameter.pythonic = pythonic

    # The decorator chain: built on the first request of each operation, then reused.
    build_fn = AsyncOperation.fn.fget

    def fn(self: Any) -> Any:
        chain = self.__dict__.get("_pv_fn")
        if chain is None:
            chain = self.__dict__["_pv_fn"] = build_fn(self)
        return chain

    AsyncOperation.fn = property(fn)

    scope, receive = decorators_main.scope, decorators_main.receive

    def asgi_call(self: Any, function: Callable[..., Any]) -> Callable[..., Any]:
        decorated = None

        @functools.wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal decorated
            request = self.framework.get_request(uri_parser=self.uri_parser, scope=scope, receive=receive)
            if decorated is None:
                decorated = self.decorate(function)
            return await decorated(request)

        return wrapper

    decorators_main.ASGIDecorator.__call__ = asgi_call

    # Parameter validators: one per parameter definition (the spec's dicts live as long as the
    # app; the entry keeps its dict alive, so its id is never reused while cached).
    # Entry: (definition, jsonschema validator, compiled check or None, nullable).
    validators: dict[int, tuple[Any, ...]] = {}
    is_nullable, is_null = parameter_validators.is_nullable, parameter_validators.is_null
    Draft4Validator = parameter_validators.Draft4Validator
    checker = parameter_validators.draft4_format_checker

    def validate_parameter(parameter_type: str, value: Any, param: dict[str, Any], param_name: str | None = None) -> str | None:
        entry = validators.get(id(param))
        if entry is None:
            schema = copy.deepcopy(param.get("schema", param))
            entry = validators[id(param)] = (param, Draft4Validator(schema, format_checker=checker),
                                             fast_validator(schema), is_nullable(param))
        if entry[3] and is_null(value):
            return None
        if value is not None:
            # The compiled check answers "valid" for the common case; anything it does not
            # accept gets jsonschema's verdict and message, as before.
            if entry[2] is not None:
                try:
                    if entry[2](value):
                        return None
                except Exception:  # a value the compiled check cannot take (say, a huge int)
                    pass
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
    def extract_content_type(headers: Any) -> str | None:
        pairs = headers.items() if isinstance(headers, dict) else headers
        for key, value in pairs:
            name = key.decode("latin-1") if isinstance(key, bytes) else key
            if name.lower() == "content-type":
                return value.decode("latin-1") if isinstance(value, bytes) else value
        return None

    utils.extract_content_type = extract_content_type

    # Query parameters: parsed once per request and kept in the request's scope (both requests
    # share it, and with it the operation and its parser); nobody mutates the parsed dict.
    def query_params(self: Any) -> Any:
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

    # URI parsers and parameter validators: built from the operation's definitions on every
    # request (request validation and the handler's parameters each build a parser, and the
    # parser rebuilds its name -> schema map on every lookup). They keep no request state, so
    # one per operation serves every request of it.
    uri_parsing.OpenAPIURIParser.param_schemas = property(_param_schemas)

    def parser_for(decorator: Any) -> Any:
        parser = decorator.__dict__.get("_pv_uri_parser")
        if parser is None:
            parser = decorator.__dict__["_pv_uri_parser"] = uri_parser_property.fget(decorator)
        return parser

    uri_parser_property = decorators_main.BaseDecorator.uri_parser
    decorators_main.BaseDecorator.uri_parser = property(parser_for)
    request_validation.RequestValidationOperation.__call__ = _validate_request

    # Query defaults: deep-copied from the spec for every request; scalars need no copy.
    get_query_arguments = decorators_parameter._get_query_arguments

    def query_arguments(query_params: dict[str, Any], *, operation: Any, arguments: Any, has_kwargs: bool,
                        sanitize: Any) -> Any:
        defaults = operation.__dict__.get("_pv_query_defaults")
        if defaults is None:
            definitions = {p["name"]: p for p in operation.parameters if p["in"] == "query"}
            defaults = decorators_parameter._get_query_defaults(definitions)
            scalar = all(isinstance(v, (int, float, str, bool, type(None))) for v in defaults.values())
            defaults = operation.__dict__["_pv_query_defaults"] = (definitions, defaults if scalar else None)
        definitions, scalars = defaults
        if scalars is None:
            return get_query_arguments(query_params, operation=operation, arguments=arguments,
                                       has_kwargs=has_kwargs, sanitize=sanitize)
        merged = utils.deep_merge(dict(scalars), query_params)
        return decorators_parameter._query_args_helper(definitions, merged, arguments, has_kwargs, sanitize)

    decorators_parameter._get_query_arguments = query_arguments
    _index_routers()
    return True


# Parameter schemas a compiled (jsonschema-rs) Draft 4 check may answer: these keywords only, no
# `format` or `pattern` (their checkers and regex dialects differ from Python's jsonschema).
# tests/test_fast_validators.py holds every such schema of our API to jsonschema's verdicts.
_FAST_KEYWORDS = {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
                  "maxLength", "enum", "default", "description", "example", "title"}


def fast_validator(schema: object) -> Callable[[Any], bool] | None:
    """`is_valid` of a compiled validator for a simple parameter schema, else None."""
    if not isinstance(schema, dict) or not schema.keys() <= _FAST_KEYWORDS:
        return None
    if schema.get("type") not in ("integer", "string", "boolean", "number"):
        return None
    return jsonschema_rs.Draft4Validator(schema).is_valid


def _param_schemas(parser: Any) -> dict[str, Any]:
    schemas: dict[str, Any] | None = parser.__dict__.get("_pv_param_schemas")
    if schemas is None:
        schemas = parser.__dict__["_pv_param_schemas"] = {k: v.get("schema", {}) for k, v in parser.param_defns.items()}
    return schemas


async def _validate_request(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """RequestValidationOperation.__call__ of Connexion 3.3 with its URI parser and parameter
    validator made once per operation; the body part is Connexion's, line for line."""
    parameter_validator = self.__dict__.get("_pv_parameter_validator")
    if parameter_validator is None:
        uri_parser = self._operation._uri_parser_class(self._operation.parameters, self._operation.body_definition())
        parameter_validator = self.__dict__["_pv_parameter_validator"] = self._validator_map["parameter"](
            self._operation.parameters, uri_parser=uri_parser, strict_validation=self.strict_validation,
            security_query_params=self.security_query_params)
    parameter_validator.validate(scope)

    headers = scope["headers"]
    mime_type, encoding = self.extract_content_type(headers)
    self.validate_mime_type(mime_type)

    schema = self._operation.body_schema(mime_type)
    if schema:
        try:
            body_validator = self._validator_map["body"][mime_type]
        except KeyError:
            request_validation.logger.info(
                f"Skipping validation. No validator registered for content type: {mime_type}.")
        else:
            validator = body_validator(
                schema=schema,
                required=self._operation.request_body.get("required", False),
                nullable=utils.is_nullable(self._operation.body_definition(mime_type)),
                encoding=encoding,
                strict_validation=self.strict_validation,
                uri_parser=self._operation.uri_parser_class(self._operation.parameters,
                                                            self._operation.body_definition()),
            )
            receive, scope = await validator.wrap_receive(receive, scope=scope)

    await self.next_app(scope, receive, send)


# ------------------------------------------------------------------------------- routing
# Connexion's routers hold one Starlette route per operation (68) and Starlette tries them in
# order, a regex each, until one matches: /api/messages was the 23rd, twice per request (the
# routing middleware's router and the app's). A route whose path starts with a literal segment
# (/messages/search, /servers/{id}) can only match paths with that same first segment, so each
# router keeps, per literal first segment, the routes that could match (with the routes it cannot
# index, all in their original order) and tries only those, for the route, a 405's partial match
# and a slash redirect alike (tests/test_route_index.py holds it to Starlette's own scan).
PATCHED_STARLETTE = "1."
original_router_app = None  # Starlette's own Router.app (tests compare the two)


def _first_segment(path: str) -> str:
    return path.split("/", 2)[1] if path.startswith("/") else ""


def _literal_first_segment(route: Any) -> str | None:  # (any route of a router)
    """The route's first path segment when it is literal text and the route matches by
    Starlette's own path regex (plain Route and Mount), else None."""
    if type(route) not in (Route, Mount) or not route.path.startswith("/"):
        return None
    segment = _first_segment(route.path)
    return segment if segment and "{" not in segment else None


class _RouteIndex:
    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.key = (id(routes), len(routes))
        segments = [_literal_first_segment(r) for r in routes]
        self.unindexed = [r for r, seg in zip(routes, segments, strict=True) if seg is None]
        self.by_segment = {seg: [r for r, other in zip(routes, segments, strict=True) if other is None or other == seg]
                           for seg in set(segments) if seg is not None}

    def candidates(self, route_path: str) -> list[BaseRoute]:
        return self.by_segment.get(_first_segment(route_path), self.unindexed)


def _index_routers() -> None:
    if not starlette.__version__.startswith(PATCHED_STARLETTE):
        log.warning("starlette %s: route index written for %sx not applied", starlette.__version__,
                    PATCHED_STARLETTE)
        return
    # Private module: imported after the version check, so another release runs unpatched
    # (with the warning above) instead of failing at import.
    from starlette._utils import get_route_path
    global original_router_app
    original = original_router_app = routing.Router.app
    Match = routing.Match

    async def app(self: routing.Router, scope: Scope, receive: Receive, send: Send) -> None:
        """Starlette's Router.app (1.x) for HTTP, trying only the routes that can match."""
        if scope["type"] != "http":
            return await original(self, scope, receive, send)
        if "router" not in scope:
            scope["router"] = self
        routes = self.routes
        index = self.__dict__.get("_pv_index")
        if index is None or index.key != (id(routes), len(routes)):
            index = self.__dict__["_pv_index"] = _RouteIndex(routes)
        # Routes left out cannot match this path, so the first full (or partial) match among
        # the candidates is the first in the whole list, as Starlette's loop would find it.
        route_path = get_route_path(scope)
        partial = partial_scope = None
        for route in index.candidates(route_path):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        if partial is not None:  # e.g. 405: the path is known, the method is not
            scope["route"] = partial
            scope.update(cast(Scope, partial_scope))  # (set with `partial`)
            await partial.handle(scope, receive, send)
            return
        if self.redirect_slashes and route_path != "/":
            redirect_scope = dict(scope)
            if route_path.endswith("/"):
                redirect_scope["path"] = redirect_scope["path"].rstrip("/")
            else:
                redirect_scope["path"] = redirect_scope["path"] + "/"
            for route in index.candidates(get_route_path(redirect_scope)):
                match, _ = route.matches(redirect_scope)
                if match is not Match.NONE:
                    response = RedirectResponse(url=str(URL(scope=redirect_scope)))
                    await response(scope, receive, send)
                    return
        await self.default(scope, receive, send)

    # The patch itself: the router's dispatch replaced on the class (mypy forbids assigning a method).
    routing.Router.app = app  # type: ignore[method-assign]
