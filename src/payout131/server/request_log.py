"""One log line per HTTP request, with what an operator searches by.

Every request: ``http_method``, ``path`` (never the query), ``status``, ``latency_ms`` and the
client's address. A partner API call adds its ``method`` and ``version``, the ``project``
and ``idempotency_key`` it sent, the ``session`` and ``payout`` the answer names and the
``error`` code of a refusal. These are read from the request's headers and the first bytes
of the answer, so no endpoint has to remember to log: nothing is answered unlogged.
Values are ids and codes only; an answer's other bytes are searched, never written.
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payout131 import logs

__all__ = ["RequestLog"]

_API = re.compile(r"/api/(v\d+)/(.+)$")  # after any --root-path prefix
_SESSION = re.compile(rb'"(ps_\d{1,19})"|\b(ps_\d{1,19})\b')
_PAYOUT = re.compile(rb'"(po_\d{1,19})"|\b(po_\d{1,19})\b')
_CODE = re.compile(rb'"code"\s*:\s*"([a-z0-9_]{1,64})"')
_LOOK = 4096  # bytes of an answer searched for its ids and error code
_HEADER_MAX = 128  # longer header values are cut


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
    """ASGI middleware: the ``request`` line of every HTTP request (``payout131.api``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logs.get("payout131.api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, head = 500, bytearray()  # 500: the app raised before it answered

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
            self._line(scope, status, bytes(head), time.perf_counter() - started)

    def _line(self, scope: Scope, status: int, head: bytes, seconds: float) -> None:
        path = scope.get("path", "")
        fields: dict[str, Any] = {
            "http_method": scope.get("method"),
            "path": path,
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
            "client": (scope.get("client") or (None,))[0],
        }
        api = _API.search(path)
        if api is not None:
            fields.update(
                method=api.group(2),
                version=api.group(1),
                project=_header(scope, b"x-partner-project"),
                idempotency_key=_header(scope, b"x-partner-idempotency-key"),
            )
        if api is not None or status >= 400:
            fields.update(
                session=_first(_SESSION, head),
                payout=_first(_PAYOUT, head),
                error=_first(_CODE, head) if status >= 400 else None,
            )
        level = "warning" if status >= 500 else "info"
        getattr(self.log, level)("request", **fields)
