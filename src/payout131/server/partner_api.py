"""``POST /api/{v1|v2}/<method>``: the signed partner API.

Authentication happens on the raw bytes before anything parses them: the project header
names the partner, ``X-PARTNER-SIGN`` must verify over the exact body with the project's
registered key. Then the body is decoded once into the method's structure, and the call
goes to its use case: a change waits for its group commit (no thread waits with it), a
read runs in a read transaction (``Database.read_async``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from payout131.clock import Clock
from payout131.errors import (
    ApiError,
    AuthenticationError,
    AuthorizationError,
    IdentificationError,
    InternalError,
    NotFound,
    StoreUnavailable,
)
from payout131.payouts.calls import PartnerCall
from payout131.projects import Project, ProjectCache
from payout131.protocol import requests
from payout131.protocol.methods import METHODS
from payout131.protocol.wire import dumps
from payout131.sandbox import clocks
from payout131.server import idempotency
from payout131.server.bodies import BodyRefused, read_body, receive_body
from payout131.server.handlers import ONE_STATEMENT, Handlers
from payout131.server.idempotency import KeyedCall, KeyTaken
from payout131.storage import Database
from payout131.storage.group_commit import GroupCommit
from payout131.storage.outages import first_line, unavailable

__all__ = ["JSON", "PartnerApi", "error_response", "unexpected"]

log = logging.getLogger("payout131.server")
JSON = "application/json"
READS_AT_ONCE = 2  # SQLite: threads; PostgreSQL: greenlets on the loop


def error_response(exc: ApiError) -> Response:
    headers = exc.headers if isinstance(exc, BodyRefused | StoreUnavailable) else None
    return Response(dumps(exc.envelope()), exc.status, headers, media_type=JSON)


UNAVAILABLE = "the database is unavailable for a moment (a failover or restart), so whether "
KEYED = (
    f"{UNAVAILABLE}this call took effect is not known: send it again with the same "
    "X-PARTNER-IDEMPOTENCY-KEY (it runs at most once)"
)
KEYLESS = (
    f"{UNAVAILABLE}this call took effect is not known, and it was sent without an "
    "X-PARTNER-IDEMPOTENCY-KEY: before sending it again, check that it did not (session/status "
    "of the session it named, or the webhooks); send calls with a key to be able to retry them"
)


BROWSER = f"{UNAVAILABLE}this step took effect is not known: try again in a few seconds"


def unexpected(request: Request, exc: Exception, *, partner: bool = True) -> Response:
    """A failure that is not the caller's: 503 while the store is out of reach (one log
    line: it is expected during a failover), else 500 with the traceback logged. Its
    advice is for a partner's integration, or (``partner`` False) for the widget's page."""
    if unavailable(exc):
        log.warning("%s: the database is unavailable: %s", request.url.path, first_line(exc))
        keyed = bool(request.headers.get("x-partner-idempotency-key"))
        text = (KEYED if keyed else KEYLESS) if partner else BROWSER
        return error_response(StoreUnavailable(text))
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    failure = InternalError("the server failed to process the request; it was logged")
    return error_response(failure)


_JSON = JSON.encode("ascii")
_READ = (
    b"content-length",
    b"x-partner-project",
    b"x-partner-sign",
    b"x-partner-idempotency-key",
    b"x-partner-submerchant",
)


class _Headers(dict[str, str]):
    """The few request headers the partner API reads, each its first occurrence, as
    Starlette's ``Headers.get`` gives them (names lower-case, values Latin-1)."""

    def __init__(self, scope: Scope) -> None:
        super().__init__()
        for name, value in scope["headers"]:
            if name in _READ and (key := name.decode("ascii")) not in self:
                self[key] = value.decode("latin-1")


class PartnerApi:
    """The partner API's endpoint: authenticate, decode, run the method, answer."""

    def __init__(
        self,
        *,
        db: Database,
        group_commit: GroupCommit,
        projects: ProjectCache,
        handlers: Handlers,
        clock: Clock,
        max_body_bytes: int,
        body_timeout_s: float,
        limiter: anyio.CapacityLimiter,
        wake_worker: Callable[[], None],
        wake_dispatcher: Callable[[], None],
        wake_clocks: Callable[[], None] = lambda: None,
        clocks: bool = True,
    ) -> None:
        self.db, self.group_commit, self.projects = db, group_commit, projects
        self.handlers, self.clock = handlers, clock
        self.max_body_bytes, self.body_timeout_s = max_body_bytes, body_timeout_s
        self.limiter = limiter
        self.wake_worker, self.wake_dispatcher = wake_worker, wake_dispatcher
        self.wake_clocks = wake_clocks  # sandbox: the worker and dispatcher of test clocks
        self.clocks = clocks  # sandbox mode: projects may run on test clocks
        # benchmarks: reads never queue behind writes waiting for a group commit; on SQLite
        # they get threads of their own (a few: more threads fight over the GIL, and each
        # read is short), on PostgreSQL the same number run at once on the event loop
        self.read_limiter = anyio.CapacityLimiter(READS_AT_ONCE)
        self._reading: dict[str, asyncio.Future[Project | None]] = {}  # projects being read

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._serve(request)
        except ApiError as exc:
            return error_response(exc)
        except Exception as exc:  # noqa: BLE001 (answered here: an app-wide handler would
            # answer too, but Starlette then raises it on to uvicorn, which logs it again)
            return unexpected(request, exc)

    def _method(self, request: Request) -> tuple[str, str]:
        version, name = request.path_params["version"], request.path_params["method"]
        method = METHODS.get(name)
        if method is None or version not in method.versions:
            raise NotFound(f"{request.url.path}: no such method in API {version}")
        return version, name

    async def authenticate(self, headers: Mapping[str, str], raw: bytes) -> Project:
        """The calling project, identified by the request's ``headers``, its signature over
        ``raw`` verified."""
        project_id = headers.get("x-partner-project")
        if not project_id:
            raise IdentificationError("X-PARTNER-PROJECT: header required")
        project = await self._project(project_id)
        if project is None:
            raise IdentificationError(f"X-PARTNER-PROJECT: unknown project {project_id[:64]!r}")
        signature = headers.get("x-partner-sign")
        if not signature:
            raise AuthenticationError("X-PARTNER-SIGN: header required")
        if self.projects.verify(project, raw, signature) is None:
            raise AuthenticationError(
                "X-PARTNER-SIGN: the signature does not match the body and any of the "
                "project's active keys"
            )
        if project.disabled:
            raise AuthorizationError(f"project {project.id} is disabled")
        return project

    async def _project(self, project_id: str) -> Project | None:
        """The project, from the cache without a thread hop while it is fresh; else read
        once, in a thread, for every call that asks meanwhile. (Each call in flight when a
        busy project's entry ran out used to read it again itself, and they all waited
        together every two seconds: docs/benchmarks.md, eleventh round.)"""
        known, project = self.projects.peek(project_id)
        if known:
            return project
        reading = self._reading.get(project_id)
        if reading is None:
            reading = asyncio.ensure_future(
                anyio.to_thread.run_sync(self.projects.get, project_id, limiter=self.limiter)
            )
            self._reading[project_id] = reading
            reading.add_done_callback(lambda done: self._read(project_id, done))
        return await asyncio.shield(reading)  # a caller that gives up leaves it to the rest

    def _read(self, project_id: str, done: asyncio.Future[Project | None]) -> None:
        self._reading.pop(project_id, None)
        if not done.cancelled():
            done.exception()  # each waiter raised it; none left to, it is not left unseen

    async def _serve(self, request: Request) -> Response:
        version, name = self._method(request)
        raw = await read_body(request, self.max_body_bytes, self.body_timeout_s)
        status, out = await self._answer(version, name, request.headers, raw)
        return Response(out, status_code=status, media_type=JSON)

    async def _answer(
        self, version: str, name: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, bytes]:
        project = await self.authenticate(headers, raw)
        return await self.call(
            project,
            version,
            name,
            raw,
            key=headers.get("x-partner-idempotency-key"),
            submerchant=headers.get("x-partner-submerchant"),
        )

    async def asgi(
        self, scope: Scope, receive: Receive, send: Send, version: str, name: str
    ) -> None:
        """Serve a call to method ``name`` (known, and of API ``version``) straight from
        ASGI, without Starlette's router, middleware, request and response
        (``server/api_route.py``): the same answers, bytes and headers alike."""
        headers = _Headers(scope)
        try:
            raw = await receive_body(
                scope,
                receive,
                headers.get("content-length"),
                self.max_body_bytes,
                self.body_timeout_s,
            )
            status, out = await self._answer(version, name, headers, raw)
        except ApiError as exc:
            await error_response(exc)(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 (answered as the Starlette route answers)
            await unexpected(Request(scope), exc)(scope, receive, send)
        else:
            length = str(len(out)).encode("ascii")
            head = [(b"content-length", length), (b"content-type", _JSON)]
            await send({"type": "http.response.start", "status": status, "headers": head})
            await send({"type": "http.response.body", "body": out})

    async def call(
        self,
        project: Project,
        version: str,
        name: str,
        raw: bytes,
        *,
        key: str | None = None,
        submerchant: str | None = None,
    ) -> tuple[int, bytes]:
        """Run method ``name`` of API ``version`` for ``project`` (already authenticated)
        on the body ``raw``; the answer's HTTP status and bytes. ApiError for a refusal.
        The console's sandbox panel makes its test payouts through this."""
        method = METHODS[name]
        call = PartnerCall(
            project=project,
            version=version,
            rko=method.rko,
            now=await self.now(project),
            body=requests.decode(raw, method.body),
            submerchant=submerchant,
            idempotency_key=key,
        )
        if not method.mutating:
            kept = self.handlers.kept(name, call)  # a session that can no longer change
            if kept is not None:
                return 200, kept
            out = await self.db.read_async(
                lambda conn: self.handlers.read(conn, name, call),
                self.read_limiter,
                one_statement=name in ONE_STATEMENT,
            )
            return 200, out
        status = 200
        if key is None:  # benchmarks: waits for its group commit, no thread
            out = await self.group_commit.run_async(self.handlers.executors[name], call)
        else:
            status, out = await self._keyed(name, call, idempotency.validate_key(key), raw)
        if project.test_clock is not None and self.clocks:  # sandbox: due by its clock
            self.wake_clocks()
        elif self.handlers.wakes_worker(name):
            self.wake_worker()
        self.wake_dispatcher()  # it may have committed webhook events
        return status, out

    async def now(self, project: Project) -> int:
        """The project's time: the wall's, or its test clock's (docs/sandbox.md)."""
        wall = self.clock.now()
        if project.test_clock is None or not self.clocks:
            return wall
        return await self.db.read_async(
            lambda conn: clocks.project_now(conn, project.id, wall), self.read_limiter
        )

    async def _keyed(
        self, name: str, call: PartnerCall[requests.Body], key: str, raw: bytes
    ) -> tuple[int, bytes]:
        digests = idempotency.body_digests(raw, self.handlers.context.vault)
        item = KeyedCall(call, key, digests[0])
        try:
            out: bytes = await self.group_commit.run_async(self.handlers.keyed[name], item)
        except KeyTaken:
            if call.project.idempotency_mode != "replay":
                raise idempotency.already_exists() from None
            project_id = call.project.id
            stored = await self.db.read_async(
                lambda conn: idempotency.lookup(conn, project_id, key), self.read_limiter
            )
            path = idempotency.path_of(call.version, name)
            return idempotency.replayed(stored, path, digests)
        return 200, out
