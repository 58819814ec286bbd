"""The console's ASGI app, mounted at ``/console`` (docs/console.md)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from payout131.clock import Clock
from payout131.console.actions import Actions
from payout131.console.pages import Pages
from payout131.console.web import Web
from payout131.sandbox.advance import Advancer
from payout131.server.partner_api import PartnerApi
from payout131.storage import Database
from payout131.tokens.vault import Vault

__all__ = ["console_app"]


def console_app(
    *,
    db: Database,
    clock: Clock,
    vault: Vault,
    mode: str,
    partner_api: PartnerApi,
    advancer: Advancer,
    rail: str,
    wake: Callable[[], None],
) -> Starlette:
    """The console: its pages, its forms, its static files; ``wake`` rings the worker and
    the webhook dispatchers after an action gave them work."""
    web = Web(db, clock, mode=mode)
    pages = Pages(web, vault)
    act = Actions(web, partner_api=partner_api, advancer=advancer, rail=rail, wake=wake)
    page, action = web.page, web.action
    get, post = ["GET"], ["POST"]
    return Starlette(
        routes=[
            Route("/", page(pages.overview), methods=get),
            Route("/login", web.sign_in_page, methods=get),
            Route("/login", web.sign_in, methods=post),
            Route("/logout", action(web.sign_out, admin=False), methods=post),
            Route("/payouts", page(pages.payouts), methods=get),
            Route("/payouts.csv", page(pages.payouts_csv), methods=get),
            Route("/payouts/{id}", page(pages.payout), methods=get),
            Route("/webhooks", page(pages.webhooks), methods=get),
            Route("/webhooks/resend-dead", action(act.resend_dead), methods=post),
            Route("/webhooks/{id}", page(pages.webhook), methods=get),
            Route("/webhooks/{id}/resend", action(act.resend), methods=post),
            Route("/projects", page(pages.projects_page), methods=get),
            Route("/projects", action(act.add_project), methods=post),
            Route("/projects/{id}", page(pages.project), methods=get),
            Route("/projects/{id}", action(act.change_project), methods=post),
            Route("/projects/{id}/{switch:str}", action(act.switch_project), methods=post),
            Route("/accounts", page(pages.accounts_page), methods=get),
            Route("/accounts/{code}", page(pages.account), methods=get),
            Route("/accounts/{code}/statement.csv", page(pages.statement_csv), methods=get),
            Route("/audit", page(pages.audit_page), methods=get),
            Route("/sandbox", page(pages.sandbox), methods=get),
            Route("/sandbox/payout", action(act.test_payout), methods=post),
            Route("/sandbox/clocks/{id}/advance", action(act.advance), methods=post),
            Route("/sandbox/force", action(act.force), methods=post),
            Mount("/static", StaticFiles(packages=[("payout131.console", "static")])),
        ],
        exception_handlers={404: web.missing, 405: web.missing},
    )
