"""The ASGI app: its routes, the error envelope for what no route answers, its lifespan.

The partner API is ``partner_api.py``, the widget's ``widget_api.py``; ``runtime.py`` builds
them and hands them here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import anyio
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from payout131.errors import InvalidRequest, NotFound
from payout131.protocol.openapi import PATH as OPENAPI_PATH
from payout131.protocol.wire import dumps
from payout131.server import heap, metrics_endpoint
from payout131.server.api_route import ApiRoute
from payout131.server.connections import (
    BODY_TIMEOUT,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    HEADER_TIMEOUT,
)
from payout131.server.partner_api import JSON, PartnerApi, error_response, unexpected
from payout131.server.request_log import RequestLog, RequestStats

__all__ = ["create_app"]


def _health(mode: str) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    answer = dumps({"status": "ok", "mode": mode})  # sandbox or production

    async def health(request: Request) -> Response:
        return Response(answer, media_type=JSON)

    return health


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    if status == 405:  # reliability: name the allowed methods, also in Allow (RFC 9110)
        allow = (getattr(exc, "headers", None) or {}).get("Allow", "POST")
        return Response(
            dumps(InvalidRequest(f"{request.method} {request.url.path}: use {allow}").envelope()),
            status_code=405,
            media_type=JSON,
            headers={"Allow": allow},
        )
    return error_response(NotFound(f"{request.url.path}: no such endpoint"))


async def _internal(request: Request, exc: Exception) -> Response:
    return unexpected(request, exc)


def create_app(
    *,
    partner_api: PartnerApi,
    widget: Starlette,
    metrics_registry: CollectorRegistry,
    limiter: anyio.CapacityLimiter,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    on_close: Callable[[], None] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    mode: str = "sandbox",
    access_log: bool = True,
    request_stats: RequestStats | None = None,
    console: ASGIApp | None = None,
    console_port: int | None = None,
) -> ASGIApp:
    """The ASGI app: the partner API, the widget's, ``/health``, ``/openapi.json`` and
    ``/metrics``, and ``extra_routes`` before the bank's methods (``GET /api/v1/fps/banks``,
    the sandbox's ``/api/sandbox/...``);
    ``background`` runs for as long as the app (the worker, the webhook dispatcher), and
    ``on_close`` when it stops. ``header_timeout_s`` and
    ``body_timeout_s`` are handed to the connections (``server/connections.py``) through
    the lifespan's state. Each request is counted in ``request_stats`` and, with
    ``access_log``, logged (``request_log.py``). The operator ``console`` is mounted at
    ``/console`` (and ``/`` leads there); given ``console_port``, it is served only on the
    listening address with that port, which serves nothing else (``serve --console-port``)."""
    spec = OPENAPI_PATH.read_bytes()  # reliability: the API's description (openapi.py)

    async def openapi_json(request: Request) -> Response:
        return Response(spec, media_type=JSON)

    metrics = metrics_endpoint.endpoint(metrics_registry, limiter)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        heap.settle()  # benchmarks: no full collection walks the start-up objects (heap.py)
        async with anyio.create_task_group() as tasks:
            for run in background:
                tasks.start_soon(run)
            yield {HEADER_TIMEOUT: header_timeout_s, BODY_TIMEOUT: body_timeout_s}
            tasks.cancel_scope.cancel()
        if on_close is not None:
            on_close()

    console_routes: list[BaseRoute] = []
    if console is not None:
        console_routes = [
            Mount("/console", console),  # docs/console.md
            Route("/", _to_console, methods=["GET"]),
        ]
    stats = request_stats or RequestStats()
    app = Starlette(
        routes=[
            *(console_routes if console_port is None else ()),
            *extra_routes,  # before the bank's methods' pattern
            Route("/api/{version}/{method:path}", partner_api.__call__, methods=["POST"]),
            Route("/health", _health(mode), methods=["GET"]),
            Mount("/widget", widget),  # docs/widget.md
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={404: _not_found, 405: _not_found, Exception: _internal},
        lifespan=lifespan,
    )
    # benchmarks: calls to the bank's methods skip the router (api_route.py), inside the log
    app.add_middleware(ApiRoute, api=partner_api)
    app.add_middleware(RequestLog, stats=stats, log=access_log)
    if console_port is None or console is None:
        return app
    alone = Starlette(routes=console_routes, exception_handlers={404: _not_found, 405: _not_found})
    alone.add_middleware(RequestLog, stats=stats, log=access_log)
    return ByPort(app, alone, console_port)


async def _to_console(request: Request) -> Response:
    return RedirectResponse(request.scope.get("root_path", "") + "/console/", status_code=307)


class ByPort:
    """The app for each listening address: ``other`` on the one with port ``port``, ``main``
    on every other (and for the lifespan)."""

    def __init__(self, main: ASGIApp, other: ASGIApp, port: int) -> None:
        self.main, self.other, self.port = main, other, port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "lifespan" and server is not None and server[1] == self.port:
            await self.other(scope, receive, send)
        else:
            await self.main(scope, receive, send)
