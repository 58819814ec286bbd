"""The HTTP edge: routes, body limits, authentication, the error envelope; one ASGI app.

Authentication happens on the raw bytes before anything parses them: the project header
names the partner, ``X-PARTNER-SIGN`` must verify over the exact body with the project's
registered key. Database work runs in worker threads, except PostgreSQL reads: those run
on the event loop, their waits for the database handed to the loop (``storage/loop_io.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from payout131.client import signing
from payout131.errors import (
    ApiError,
    AuthenticationError,
    AuthorizationError,
    IdentificationError,
    InternalError,
    InvalidRequest,
    NotFound,
)
from payout131.protocol.openapi import PATH as OPENAPI_PATH
from payout131.protocol.wire import dumps
from payout131.runtime import Runtime
from payout131.server import heap, metrics
from payout131.server import methods as api
from payout131.server.widget_api import widget_app
from payout131.settings import Settings
from payout131.storage import loop_io

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("payout131.server")
JSON = "application/json"
READS_AT_ONCE = 2  # SQLite: threads; PostgreSQL: greenlets on the loop


def _error(exc: ApiError) -> Response:
    return Response(dumps(exc.envelope()), status_code=exc.status, media_type=JSON)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class PartnerApi:
    """``POST /api/{v1|v2}/<method>``: the signed partner API."""

    def __init__(self, bank: Runtime, limiter: anyio.CapacityLimiter) -> None:
        self.bank, self.limiter = bank, limiter
        # benchmarks: reads never queue behind writes waiting for a group commit; on SQLite
        # they get threads of their own (a few: more threads fight over the GIL, and each
        # read is short), on PostgreSQL the same number run at once on the event loop
        self.read_limiter = anyio.CapacityLimiter(READS_AT_ONCE)

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._serve(request)
        except ApiError as exc:
            return _error(exc)
        except Exception as exc:  # noqa: BLE001 (answered here: an app-wide handler would
            # answer too, but Starlette then raises it on to uvicorn, which logs it again)
            return _unexpected(request, exc)

    def _method(self, request: Request) -> tuple[str, str]:
        version, name = request.path_params["version"], request.path_params["method"]
        method = api.METHODS.get(name)
        if method is None or version not in method.versions:
            raise NotFound(f"{request.url.path}: no such method in API {version}")
        return version, name

    async def _serve(self, request: Request) -> Response:
        version, name = self._method(request)
        limit = self.bank.settings.max_body_bytes
        try:
            raw = await _read_body(request, limit)
        except _TooLarge:
            raise InvalidRequest(f"body: larger than the limit of {limit} bytes") from None
        project_id = request.headers.get("x-partner-project")
        if not project_id:
            raise IdentificationError("X-PARTNER-PROJECT: header required")
        known, project = self.bank.projects.peek(project_id)  # benchmarks: no thread hop
        if not known:
            project = await anyio.to_thread.run_sync(
                self.bank.projects.get, project_id, limiter=self.limiter
            )
        if project is None:
            raise IdentificationError(f"X-PARTNER-PROJECT: unknown project {project_id[:64]!r}")
        signature = request.headers.get("x-partner-sign")
        if not signature:
            raise AuthenticationError("X-PARTNER-SIGN: header required")
        if not signing.verify(self.bank.projects.public_key(project), raw, signature):
            raise AuthenticationError(
                "X-PARTNER-SIGN: the signature does not match the body and the project's key"
            )
        if project.disabled:
            raise AuthorizationError(f"project {project.id} is disabled")
        key = request.headers.get("x-partner-idempotency-key")
        submerchant = request.headers.get("x-partner-submerchant")
        mutating = api.METHODS[name].mutating
        if mutating and key is None:  # benchmarks: waits for its group commit, no thread
            status, out = await api.handle_grouped(
                self.bank, project, version, name, raw, submerchant=submerchant
            )
        else:

            def call() -> tuple[int, bytes]:
                return api.handle(
                    self.bank,
                    project,
                    version,
                    name,
                    raw,
                    idempotency_key=key,
                    submerchant=submerchant,
                )

            if mutating or self.bank.db.is_sqlite:
                limiter = self.limiter if mutating else self.read_limiter
                status, out = await anyio.to_thread.run_sync(call, limiter=limiter)
            else:  # benchmarks: no thread hop, no wait for the GIL when PostgreSQL answers
                async with self.read_limiter:
                    status, out = await loop_io.run(call)
        return Response(out, status_code=status, media_type=JSON)


async def _health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type=JSON)


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
    return _error(NotFound(f"{request.url.path}: no such endpoint"))


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return _error(InternalError("the server failed to process the request; it was logged"))


async def _internal(request: Request, exc: Exception) -> Response:
    return _unexpected(request, exc)


def create_app(bank: Runtime, *, run_worker: bool = True, close_bank: bool = False) -> Starlette:
    """The ASGI app; with ``run_worker`` the background work runs in the same process;
    with ``close_bank`` the app closes the bank when it shuts down."""
    limiter = anyio.CapacityLimiter(bank.settings.db_threads)
    spec = OPENAPI_PATH.read_bytes()  # reliability: the API's description (openapi.py)

    async def openapi_json(request: Request) -> Response:
        return Response(spec, media_type=JSON)

    partner_api = PartnerApi(bank, limiter)
    metrics_endpoint = metrics.endpoint(metrics.registry_for(bank), limiter)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        heap.settle()  # benchmarks: no full collection walks the start-up objects (heap.py)
        async with anyio.create_task_group() as tasks:
            if run_worker:
                tasks.start_soon(bank.worker.run)
                tasks.start_soon(bank.dispatcher.run)  # webhooks
            yield {}
            tasks.cancel_scope.cancel()
        if close_bank:
            bank.close()

    return Starlette(
        routes=[
            Route("/api/{version}/{method:path}", partner_api.__call__, methods=["POST"]),
            Route("/health", _health, methods=["GET"]),
            Mount("/widget", widget_app(bank, limiter)),  # docs/widget.md
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={404: _not_found, 405: _not_found, Exception: _internal},
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    """The app of one of ``payout131 serve --processes N``'s processes, configured like the
    command: ``PAYOUT131_*`` settings, ``PAYOUT131_SERVE_WORKER`` (``0``: API only) and
    ``PAYOUT131_SERVE_LOG_LEVEL``."""
    logging.basicConfig(
        level=os.environ.get("PAYOUT131_SERVE_LOG_LEVEL", "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    bank = Runtime.open(Settings.from_env())
    run_worker = os.environ.get("PAYOUT131_SERVE_WORKER", "1") != "0"
    return create_app(bank, run_worker=run_worker, close_bank=True)
