"""The ASGI application: Connexion serving the OpenAPI document under /api, Socket.IO beside it."""
from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import connexion
import orjson
from connexion.jsonifier import JSONEncoder, Jsonifier
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import RedirectResponse

from models import db
from models.storage import sql
from projectvoice import connexion_speedups, error_handlers, openapi31
from core import contract, diagnostics, errors, observability, slashes, textcheck
from projectvoice.middleware import DefaultJsonContentType, HeadLimits, LimitsMiddleware
from projectvoice.readretry import ReadRetryResolver
from core.settings import Settings, get_settings
from realtime import server as realtime_server

SPEC = contract.SPEC
log = logging.getLogger("projectvoice")


class OrjsonJsonifier(Jsonifier):
    """Response bodies through orjson (the profile's JSON encoding cost); the same output as
    Connexion's json-based encoder for everything our views build (dicts, lists, str, int,
    bool, None), its fallback for anything else."""

    _default = JSONEncoder().default
    _options = orjson.OPT_NON_STR_KEYS

    def dumps(self, data: Any, **kwargs: Any) -> str:
        if kwargs:
            return cast(str, super().dumps(data, **kwargs))  # (Connexion's, untyped: text)
        return orjson.dumps(data, default=self._default, option=self._options).decode() + "\n"

    def loads(self, data: str | bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return super().loads(data)


def create_connexion_app(settings: Settings) -> connexion.AsyncApp:
    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        settings.resolved_jwt_secret()
        db.init(settings)
        observability.instrument_engine(db.engine())
        await db.migrate()
        await sql.startup(settings)
        await realtime_server.startup()
        # What start-up built (the specs, Connexion's operations, SQLAlchemy's metadata, every
        # module) lives as long as the process: frozen, the collector's full passes stop walking
        # it on every request burst (a tenth of a message page's CPU under load, measured).
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()  # an app stopped inside a longer-lived process leaves nothing pinned
        await realtime_server.shutdown()
        await sql.shutdown()
        await db.dispose()

    openapi31.install()
    if settings.connexion_speedups:
        connexion_speedups.install()
    textcheck.install()
    app = connexion.AsyncApp(__name__, specification_dir=str(SPEC.parent), lifespan=lifespan,
                             jsonifier=OrjsonJsonifier())
    app.add_api(
        SPEC.name,
        strict_validation=True,
        validate_responses=settings.validate_responses,
        resolver_error=501,
        resolver=ReadRetryResolver(),  # a GET that meets a killed connection runs once more
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/docs"),
    )
    app.add_middleware(
        CORSMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        allow_origins=settings.cors_origin_list,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization", "X-Requested-With", "Accept"],
        allow_credentials=True,
    )
    # Body size and rate limits, inside CORS and the error handlers (413/429 keep CORS headers).
    app.add_middleware(LimitsMiddleware, position=MiddlewarePosition.BEFORE_SWAGGER, settings=settings)
    app.add_middleware(DefaultJsonContentType, position=MiddlewarePosition.BEFORE_SWAGGER)
    app.add_error_handler(errors.ApiError, error_handlers.handle_api_error)
    app.add_error_handler(ProblemException, error_handlers.handle_problem)
    app.add_error_handler(HTTPException, error_handlers.handle_http_exception)
    app.add_error_handler(Exception, error_handlers.handle_unexpected)

    async def api_docs(_request: Any = None) -> RedirectResponse:
        # The seed promises Swagger UI at /api-docs; Connexion serves it at /api/docs/.
        return RedirectResponse("/api/docs/", status_code=307)

    app.add_url_rule("/api-docs", "api_docs", api_docs)
    app.add_url_rule("/api-docs/", "api_docs_slash", api_docs)
    return app


def create_app(settings: Settings | None = None) -> HeadLimits:
    settings = settings or get_settings()
    observability.setup_logging(settings)
    http_app = create_connexion_app(settings)
    # Request ids, access log and metrics around everything HTTP (GET /metrics served here).
    http_app = diagnostics.wrap(http_app, settings)  # X-Query-Count when QUERY_COUNT_HEADER=1
    http_app = observability.ObservabilityMiddleware(http_app, settings, observability.route_templates(SPEC))
    # `/api/users` answers as the document's `/api/users/`, `/api/servers/` as `/api/servers`.
    http_app = slashes.TrailingSlash(http_app, SPEC)
    sio = realtime_server.build(settings)
    return HeadLimits(realtime_server.wrap(sio, http_app), settings)
