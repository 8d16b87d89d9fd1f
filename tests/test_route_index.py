"""The route index (projectvoice/connexion_speedups.py) hands every request to the route
Starlette's own ordered scan would, and leaves 405s, slash redirects and 404s to that scan.
Checked on a router shaped like Connexion's (one route per operation of our OpenAPI document,
in its order) plus routes the index cannot narrow (a parameter first, a root path, a mount)."""
from __future__ import annotations

import asyncio
import re

import yaml
from starlette import routing
from starlette.routing import Mount, Route, Router

from projectvoice import connexion_speedups
from core.settings import ROOT


class _endpoint:
    """An ASGI app (an object, so Starlette does not wrap it as a request handler)."""

    def __init__(self, name: str):
        self.name = name

    async def __call__(self, scope, receive, send):
        scope["pv.handled_by"] = self.name
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": self.name.encode()})


def _router() -> Router:
    doc = yaml.safe_load((ROOT / "openapi" / "projectvoice.yaml").read_text())
    routes = []
    for path, item in doc["paths"].items():
        starlette_path = re.sub(r"\{(\w+)\}", r"{\1:int}", path)
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                routes.append(Route(starlette_path, _endpoint(f"{method} {path}"), methods=[method.upper()]))
    routes[3:3] = [Route("/{anything}/fixed", _endpoint("param first"), methods=["GET"])]
    routes += [Route("/", _endpoint("root"), methods=["GET"]),
               Mount("/static", app=_endpoint("mount")),
               Route("/users/fixed", _endpoint("after param first"), methods=["GET"]),  # never wins
               Route("/{catchall:path}", _endpoint("catch-all"), methods=["PATCH"])]
    return Router(routes=routes)


def _probes(router: Router) -> list[tuple[str, str]]:
    paths = {"/", "", "/nothing", "/nothing/fixed", "/static/x.js", "/static", "/messages/", "/servers/",
             "/messages/search/", "/users", "/servers/abc", "/SERVERS/1"}
    for route in router.routes:
        if isinstance(route, Route):
            concrete = re.sub(r"\{\w+(:\w+)?\}", "12", route.path)
            paths |= {concrete, concrete + "/", concrete.rstrip("/"), concrete + "/extra"}
    return [(m, p) for p in sorted(paths) for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD")]


async def _handle(app_fn, router: Router, method: str, path: str):
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [(b"host", b"t")],
             "query_string": b"", "scheme": "http", "server": ("t", 80)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app_fn(router, scope, receive, send)
    start = sent[0]
    return scope.get("pv.handled_by"), start["status"], sorted(start.get("headers", [])), sent[-1].get("body")


def test_index_picks_what_starlettes_scan_picks():
    assert connexion_speedups.install()
    assert connexion_speedups.original_router_app is not None
    assert routing.Router.app is not connexion_speedups.original_router_app
    router = _router()
    probes = _probes(router)

    async def compare():
        handled = 0
        for method, path in probes:
            ours = await _handle(routing.Router.app, router, method, path)
            theirs = await _handle(connexion_speedups.original_router_app, router, method, path)
            assert ours == theirs, (method, path)
            handled += ours[0] is not None
        return handled

    handled = asyncio.run(compare())
    assert handled > len(router.routes)  # the probes reach the routes, not only the 404 path
