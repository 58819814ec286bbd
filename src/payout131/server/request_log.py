"""One log line per HTTP request, with what an operator searches by, and its metrics.

Every request: ``http_method``, ``path`` (never the query), ``status``, ``latency_ms`` and the
client's address. A partner API call adds its ``method`` and ``version``, the ``project``
and ``idempotency_key`` it sent, the ``session`` and ``payout`` the answer names and the
``error`` code of a refusal. These are read from the request's headers and the first bytes
of the answer, so no endpoint has to remember to log: nothing is answered unlogged.
Values are ids and codes only; an answer's other bytes are searched, never written.

``RequestStats`` counts the same requests for ``/metrics``: ``payout131_api_requests_total``
by ``method`` (a partner API method's name; else ``widget``, ``sandbox``, ``console``,
``health``, ``metrics``, ``openapi`` or ``other``: never a path a client made up), ``status`` and
``error`` code, and ``payout131_api_request_duration_seconds`` by ``method``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payout131 import logs
from payout131.protocol.methods import METHODS

__all__ = ["API_PATH", "RequestLog", "RequestStats", "route_path"]

API_PATH = re.compile(r"^/api/(v\d+)/(.+)$")  # a partner API call: its version, its method
_SESSION = re.compile(rb'"(ps_\d{1,19})"|\b(ps_\d{1,19})\b')
_PAYOUT = re.compile(rb'"(po_\d{1,19})"|\b(po_\d{1,19})\b')
_CODE = re.compile(rb'"code"\s*:\s*"([a-z0-9_]{1,64})"')
_LOOK = 4096  # bytes of an answer searched for its ids and error code
_HEADER_MAX = 128  # longer header values are cut
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_AREAS = {"widget", "health", "metrics", "openapi.json", "console"}


class RequestStats:
    """This process's request counters; registered nowhere until ``/metrics`` exposes them."""

    def __init__(self) -> None:
        self.requests = Counter(
            "payout131_api_requests",
            "HTTP requests answered, by API method, status and error code.",
            ["method", "status", "error"],
            registry=None,
        )
        self.latency = Histogram(
            "payout131_api_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by API method.",
            ["method"],
            buckets=_BUCKETS,
            registry=None,
        )

        # benchmarks: each label set's child looked up once, not through labels() per request
        self._counted: dict[tuple[str, int, str | None], Any] = {}
        self._timed: dict[str, Any] = {}

    def count(self, method: str, status: int, error: str | None, seconds: float) -> None:
        counted = self._counted.get((method, status, error))
        if counted is None:
            counted = self.requests.labels(method, str(status), error or "")
            self._counted[method, status, error] = counted
        counted.inc()
        timed = self._timed.get(method)
        if timed is None:
            timed = self._timed[method] = self.latency.labels(method)
        timed.observe(seconds)


def route_path(path: str, root: str) -> str:
    """``path`` as the app's routes see it: behind a proxy's prefix ``root`` (``serve
    --root-path``), without it."""
    return path[len(root) :] if root and path.startswith(root) else path


def _area(path: str, api: re.Match[str] | None) -> str:
    """The ``method`` label: a known API method's name, or the part of the server."""
    if api is not None:
        return api.group(2) if api.group(2) in METHODS else "other"
    if "/api/sandbox/" in path:
        return "sandbox"
    first = path.strip("/").split("/", 1)[0]
    if first in _AREAS:
        return first.removesuffix(".json")
    return "other"


def _first(pattern: re.Pattern[bytes], data: bytes) -> str | None:
    found = pattern.search(data)
    if found is None:
        return None
    return next(group for group in found.groups() if group).decode("ascii")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value[:_HEADER_MAX].decode("latin-1"))
    return None


class RequestLog:
    """ASGI middleware: the ``request`` line of every HTTP request (``payout131.api``),
    unless ``log`` is off, and its counts in ``stats``."""

    def __init__(self, app: ASGIApp, stats: RequestStats, log: bool = True) -> None:
        self.app, self.stats, self.logging = app, stats, log
        self.log = logs.get("payout131.api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, head = 500, bytearray()  # 500: the app raised before it answered
        # read now: a mounted app (the widget) moves its prefix into root_path as it routes
        where = (scope.get("path", ""), scope.get("root_path", ""))

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and len(head) < _LOOK:
                head.extend(message.get("body", b"")[: _LOOK - len(head)])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._line(scope, where, status, bytes(head), time.perf_counter() - started)

    def _line(
        self, scope: Scope, where: tuple[str, str], status: int, head: bytes, seconds: float
    ) -> None:
        path, root = where  # root: a proxy's prefix (serve --root-path), if any
        inside = route_path(path, root)
        api = API_PATH.search(inside)
        area = _area(inside, api)
        error = _first(_CODE, head) if status >= 400 and area != "console" else None
        self.stats.count(area, status, error, seconds)
        if not self.logging:
            return
        fields: dict[str, Any] = {
            "http_method": scope.get("method"),
            "path": path,
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
            "client": (scope.get("client") or (None,))[0],
        }
        if api is not None:
            fields.update(
                method=api.group(2),
                version=api.group(1),
                project=_header(scope, b"x-partner-project"),
                idempotency_key=_header(scope, b"x-partner-idempotency-key"),
            )
        if api is not None or (status >= 400 and area != "console"):  # the console's: HTML
            fields.update(
                session=_first(_SESSION, head),
                payout=_first(_PAYOUT, head),
                error=error,
            )
        level = "warning" if status >= 500 else "info"
        getattr(self.log, level)("request", **fields)
