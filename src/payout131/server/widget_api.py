"""The widget's HTTP side, mounted at ``/widget``: its files, its demo page, its two calls.

The browser calls carry no partner signature: the public token in them is the credential.
``GET /widget/api/bank`` names the bank of a BIK as the recipient types it, and
``POST /widget/api/tokenize`` spends the public token on one account token. Both answer
any origin (CORS ``*``, no cookies), since the widget runs on the partner's pages.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from payout131.clock import Clock
from payout131.directory.bik import LIQUIDATION, BankEntry, BikDirectory
from payout131.errors import ApiError, NotFound
from payout131.projects import get_project
from payout131.protocol import validation
from payout131.protocol.requests import parse_body
from payout131.protocol.wire import dumps
from payout131.server.bodies import read_body
from payout131.server.partner_api import unexpected
from payout131.storage import Database
from payout131.tokens import account_tokens as tokens
from payout131.tokens import card_tokens, public_tokens
from payout131.tokens.vault import Vault

__all__ = ["ASSETS", "WidgetApi", "widget_app"]

ASSETS = Path(__file__).parent.parent / "widget"
MAX_BODY = 4096
_TOKEN = re.compile(r"[0-9a-f]{64}")
_DEMO_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

log = logging.getLogger("payout131.widget")
Endpoint = Callable[[Request], Awaitable[Response]]


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(dumps(body), status, headers, media_type="application/json")


def _guarded(endpoint: Endpoint) -> Endpoint:
    """Errors as the Bank 131 envelope; anything unexpected answered as the partner API
    answers it (``partner_api.unexpected``)."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ApiError as exc:
            return _json(exc.envelope(), exc.status, getattr(exc, "headers", None))
        except Exception as exc:  # noqa: BLE001 (answered as the partner API answers)
            return unexpected(request, exc, partner=False)

    return guarded


def _refusal(bank: BankEntry) -> str | None:
    if bank.participant_type == LIQUIDATION:
        return "liquidation"
    if bank.restricted:
        return "restricted"
    return "closed" if bank.closed else None


class WidgetApi:
    """The widget's two calls and its demo page."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        vault: Vault,
        directory: BikDirectory,
        demo_project: str,
        body_timeout_s: float,
        limiter: anyio.CapacityLimiter,
    ) -> None:
        self.db, self.clock, self.vault, self.directory = db, clock, vault, directory
        self.demo_project, self.limiter = demo_project, limiter
        self.body_timeout_s = body_timeout_s

    async def _thread(self, fn: Callable[[], Any]) -> Any:
        return await anyio.to_thread.run_sync(fn, limiter=self.limiter)

    async def bank_lookup(self, request: Request) -> Response:
        """``?bik=&public_token=``: the bank's names and whether it can be paid."""
        query = request.query_params

        def check() -> None:
            with self.db.read() as conn:
                public_tokens.check_public_token(conn, query.get("public_token"), self.clock.now())

        await self._thread(check)
        bik = validation.check_bik("bik", query.get("bik"))
        entry = self.directory.get(bik)
        if entry is None:
            refused = NotFound(f"bik: BIK {bik} is not in the Bank of Russia directory")
            envelope = refused.envelope()
            envelope["error"]["reason"] = "bik_unknown"
            return _json(envelope, refused.status)
        found = {
            "bik": entry.bik,
            "name": entry.name,
            "english_name": entry.english_name,
            "refusal": _refusal(entry),
            "account_prefixes": list(validation.PAYOUT_PREFIXES),
        }
        return _json({"status": "ok", "bank": found})

    async def tokenize(self, request: Request) -> Response:
        """``{"public_token", "bik", "account"}`` → ``{token, masked_account, bik, bank_name}``;
        the card form's ``{"public_token", "card_number"}`` → ``{token, brand, bin, last4}``."""
        body = parse_body(await read_body(request, MAX_BODY, self.body_timeout_s))
        if "card_number" in body:
            return await self._tokenize_card(body)

        def run() -> tokens.AccountToken:
            with self.db.write() as conn:
                return tokens.tokenize_by_widget(
                    conn, self.vault, self.directory, body, self.clock.now()
                )

        made: tokens.AccountToken = await self._thread(run)
        entry = self.directory.get(made.bik)
        return _json(
            {
                "status": "ok",
                "token": made.token,
                "masked_account": made.masked_account,
                "bik": made.bik,
                "bank_name": entry.name if entry else None,
            }
        )

    async def _tokenize_card(self, body: dict[str, Any]) -> Response:
        def run() -> card_tokens.CardToken:
            with self.db.write() as conn:
                return card_tokens.tokenize_by_widget(conn, self.vault, body, self.clock.now())

        made: card_tokens.CardToken = await self._thread(run)
        return _json({"status": "ok", "token": made.token, **made.view.echo()})

    async def demo(self, request: Request) -> Response:
        """The demo page, with a public token from the query or minted for the demo project."""
        language = "en" if request.query_params.get("lang") == "en" else "ru"
        kind = "card" if request.query_params.get("kind") == "card" else "bank_account"
        token = request.query_params.get("public_token", "")
        if not _TOKEN.fullmatch(token):
            token = await self._thread(self._demo_token)
        page = (ASSETS / "demo.html").read_text(encoding="utf-8")
        page = page.replace("__PUBLIC_TOKEN__", html.escape(token)).replace("__LANG__", language)
        page = page.replace("__KIND__", kind)
        return HTMLResponse(page, headers={"Content-Security-Policy": _DEMO_CSP})

    def _demo_token(self) -> str:
        """A fresh public token of the demo project, when there is one (else none)."""
        name = self.demo_project
        if not name:
            return ""
        with self.db.write() as conn:
            project = get_project(conn, name)
            if project is None or project.disabled:
                return ""
            now = self.clock.now()
            return public_tokens.issue_public_token(
                conn, name, now, public_tokens.PUBLIC_TOKEN_TTL_S
            )


def widget_app(api: WidgetApi) -> Starlette:
    """The ASGI app to mount at ``/widget``."""
    return Starlette(
        routes=[
            Route("/api/bank", _guarded(api.bank_lookup), methods=["GET"]),
            Route("/api/tokenize", _guarded(api.tokenize), methods=["POST"]),
            Route("/demo", _guarded(api.demo), methods=["GET"]),
            Mount("/", StaticFiles(directory=ASSETS)),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["GET", "POST"],
                allow_headers=["Content-Type", "Accept"],
                max_age=600,
            )
        ],
    )
