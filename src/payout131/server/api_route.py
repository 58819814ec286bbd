"""The partner API's own way in: ``POST /api/{version}/{method}`` of a known method, served
straight from ASGI.

Starlette's exception middleware, its router, a ``Request`` and a ``Response`` cost each
partner call tens of microseconds of the event loop, which is the one thread every call's
Python runs on: more than a kept ``session/status`` answer itself (docs/benchmarks.md,
eleventh round). ``ApiRoute`` sits in the app's middleware, inside the request log; it
takes the calls to a method the bank has, in an API version that has it, and hands them to
``PartnerApi.asgi``; everything else (another verb, an unknown method, the widget, the
console, the sandbox's and Faster Payments' routes) goes on to the router, which answers it
as before. Both give the same answers, bytes and headers alike
(``tests/test_api_route.py``).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from payout131.protocol.methods import METHODS
from payout131.server.partner_api import PartnerApi
from payout131.server.request_log import API_PATH, route_path

__all__ = ["ApiRoute"]


class ApiRoute:
    """ASGI middleware: ``api`` for the partner methods, ``rest`` (the router) for
    everything else."""

    def __init__(self, rest: ASGIApp, api: PartnerApi) -> None:
        self.rest, self.api = rest, api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            found = API_PATH.fullmatch(route_path(scope["path"], scope.get("root_path", "")))
            if found is not None:
                version, name = found.groups()
                method = METHODS.get(name)
                if method is not None and version in method.versions:
                    await self.api.asgi(scope, receive, send, version, name)
                    return
        await self.rest(scope, receive, send)
