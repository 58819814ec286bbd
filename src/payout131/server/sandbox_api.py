"""The sandbox's partner endpoints, ``/api/sandbox/...`` (docs/sandbox.md): a project moves
its own test clock and forces the outcomes of its own payouts.

Each is a POST with a JSON body, signed with the project's key like every call. In
production mode (``PAYOUT131_MODE=production``) every one answers ``authorization_error``.

    clock             {}                                     → the project's clock
    clock/advance     {"by": "1h"} | {"to": RFC 3339} | {"next": true}, "wait": bool
    payout/succeed    {"payout_id": "po_1"}
    payout/fail       {"payout_id": "po_1", "error_code": "account_not_found"}
    payout/return     {"payout_id": "po_1"}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payout131.clock import Clock
from payout131.errors import ApiError, AuthorizationError, InvalidRequest, NotFound
from payout131.projects import Project
from payout131.protocol.requests import parse_body
from payout131.protocol.validation import id_number
from payout131.protocol.wire import dumps
from payout131.sandbox import clocks, forcing
from payout131.sandbox.advance import Advancer, Refused
from payout131.server.bodies import read_body
from payout131.server.partner_api import JSON, PartnerApi, error_response, unexpected
from payout131.storage import Database

__all__ = ["ADVANCE_WAIT_S", "SandboxApi"]

ADVANCE_WAIT_S = 25.0  # how long ``clock/advance`` waits before answering ``advancing``
PRODUCTION = (
    "sandbox endpoints are off: this server runs in production mode (PAYOUT131_MODE); "
    "test clocks and forced outcomes exist only in sandbox mode"
)


class SandboxApi:
    def __init__(
        self,
        *,
        db: Database,
        partner_api: PartnerApi,
        advancer: Advancer,
        rail: str,
        wall: Clock,
        sandbox: bool,
        wake_clocks: Callable[[], None],
        wake_worker: Callable[[], None],
    ) -> None:
        self.db, self.partner_api, self.advancer, self.rail = db, partner_api, advancer, rail
        self.wall, self.sandbox = wall, sandbox
        self.wake_clocks, self.wake_worker = wake_clocks, wake_worker

    def routes(self) -> list[Route]:
        def route(path: str, handler: Callable[[Project, dict[str, Any]], Awaitable[Any]]) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._serve(request, handler)

            return Route(f"/api/sandbox/{path}", endpoint, methods=["POST"])

        return [
            route("clock", self._show),
            route("clock/advance", self._advance),
            *(route(f"payout/{outcome}", self._forcer(outcome)) for outcome in forcing.OUTCOMES),
        ]

    async def _serve(
        self, request: Request, handler: Callable[[Project, dict[str, Any]], Awaitable[Any]]
    ) -> Response:
        try:
            if not self.sandbox:
                raise AuthorizationError(PRODUCTION)
            conf = self.partner_api
            raw = await read_body(request, conf.max_body_bytes, conf.body_timeout_s)
            project = await conf.authenticate(request.headers, raw)
            out = await handler(project, parse_body(raw))
            return Response(dumps({"status": "ok", **out}), media_type=JSON)
        except ApiError as exc:
            return error_response(exc)
        except Exception as exc:  # noqa: BLE001 (answered as the partner API answers)
            return unexpected(request, exc)

    async def _thread(self, fn: Callable[[], Any]) -> Any:
        return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)

    def _clock_of(self, conn: Connection, project: Project) -> clocks.TestClock:
        clock = clocks.project_clock(conn, project.id)
        if clock is None:
            raise InvalidRequest(
                f"project {project.id} runs on wall time: an operator binds it to a test "
                f"clock (payout131 project set {project.id} --test-clock CLOCK_ID)"
            )
        return clock

    def _shown(self, n: int) -> dict[str, Any]:
        with self.db.read() as conn:
            clock = clocks.get(conn, n)
            return {
                "test_clock": clock.as_json(clocks.projects_of(conn, n), clocks.pending(conn, n))
            }

    async def _show(self, project: Project, body: dict[str, Any]) -> Any:
        _only(body, ())

        def show() -> dict[str, Any]:
            with self.db.read() as conn:
                n = self._clock_of(conn, project).n
            return self._shown(n)

        return await self._thread(show)

    async def _advance(self, project: Project, body: dict[str, Any]) -> Any:
        _only(body, ("by", "to", "next", "wait"))
        given = [name for name in ("by", "to", "next") if body.get(name) not in (None, False)]
        if len(given) != 1:
            raise InvalidRequest('body: give one of by (e.g. "1h"), to (RFC 3339) or next: true')
        wait = body.get("wait", True)
        if not isinstance(wait, bool):
            raise InvalidRequest("wait: must be true or false")
        target: dict[str, Any] = {}
        try:
            if "by" in given:
                target["by"] = clocks.parse_duration(_text(body, "by"))
            elif "to" in given:
                target["to"] = clocks.parse_moment(_text(body, "to"))
            elif body["next"] is not True:
                raise InvalidRequest("next: must be true")
            else:
                target["next_step"] = True
        except ValueError as exc:
            raise InvalidRequest(f"{given[0]}: {exc}") from None

        def advance() -> dict[str, Any]:
            with self.db.read() as conn:
                n = self._clock_of(conn, project).n
            try:
                self.advancer.request(n, **target)
            except Refused as exc:
                raise InvalidRequest(str(exc)) from None
            self.wake_clocks()
            if wait:
                self.advancer.wait(n, ADVANCE_WAIT_S)
            return self._shown(n)

        return await self._thread(advance)

    def _forcer(self, outcome: str) -> Callable[[Project, dict[str, Any]], Awaitable[Any]]:
        async def forced(project: Project, body: dict[str, Any]) -> Any:
            _only(body, ("payout_id", "error_code"))
            text = _text(body, "payout_id")
            n = id_number(text[3:]) if text.startswith("po_") else None
            if n is None:
                raise NotFound(f"payout_id: no payout {text[:40]!r}")
            code = body.get("error_code")
            if code is not None and not isinstance(code, str):
                raise InvalidRequest("error_code: must be a string")

            def run() -> dict[str, Any]:
                with self.db.write() as conn:
                    forcing.force(conn, self.rail, n, outcome, code, self.wall.now(), project.id)
                if project.test_clock is not None:
                    self.wake_clocks()
                else:
                    self.wake_worker()
                forced_code = (code or forcing.DEFAULT_ERROR) if outcome == "fail" else None
                made = {"payout_id": text, "outcome": outcome, "error_code": forced_code}
                return {"forced": made}

            return await self._thread(run)

        return forced


def _only(body: dict[str, Any], names: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(names))
    if unknown:
        allowed = ", ".join(names) or "no field"
        raise InvalidRequest(f"{unknown[0]}: not a field of this call (it takes {allowed})")


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{name}: required, a string")
    return value
