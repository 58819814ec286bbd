"""The console's screens, each a GET any signed-in operator may open.

Lists run the queries the CLI runs (``payouts/listing.py``, ``ledger/accounts.py``,
``webhooks/history.py``); account and card numbers never reach a page unmasked.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response, StreamingResponse

from payout131 import projects
from payout131.console import audit, screens
from payout131.console.web import HEADERS, Refusal, Seen, Web, kopecks, moment
from payout131.ledger import accounts
from payout131.payouts import listing
from payout131.payouts.states import PayoutStatus
from payout131.rails import scenarios
from payout131.sandbox import clocks
from payout131.tokens.vault import Vault
from payout131.webhooks import history

__all__ = ["Pages"]

PAYOUT_STATUSES = tuple(s.value for s in PayoutStatus)

PAGE = 50
CSV_MAX = 100_000  # rows in one export: narrow the filters for more


class Pages:
    def __init__(self, web: Web, vault: Vault) -> None:
        self.web, self.vault = web, vault
        self.db = web.db

    # -- overview ------------------------------------------------------------------------

    async def overview(self, seen: Seen) -> Response:
        now = self.web.clock.now()
        day = int(
            datetime.fromtimestamp(now / 1e6, UTC)
            .replace(hour=0, minute=0, second=0, microsecond=0)
            .timestamp()
        )

        def read() -> dict[str, Any]:
            with self.db.read() as conn:
                return {
                    "accounts": accounts.list_accounts(conn),
                    "today": screens.payouts_since(conn, day * 1_000_000),
                    "queue": screens.queue(conn),
                    "clocks": [
                        (c, clocks.projects_of(conn, c.n))
                        for c in (clocks.list_all(conn) if self.web.mode == "sandbox" else [])
                    ],
                }

        return self.web.render(seen, "overview.html", now=now, **await self.web.run(read))

    # -- payouts -------------------------------------------------------------------------

    def _filter(self, seen: Seen) -> listing.Filter:
        q = seen.request.query_params
        project = q.get("project", "").strip() or None
        if project is not None and not projects.PROJECT_ID.fullmatch(project):
            raise Refusal(f"project: {project[:70]!r} is no project id")
        status = q.get("status", "").strip() or None
        if status is not None and status not in PAYOUT_STATUSES:
            raise Refusal(f"status: one of {', '.join(PAYOUT_STATUSES)}")
        error = q.get("error", "").strip() or None
        if error is not None and not listing.ERROR_CODE.fullmatch(error):
            raise Refusal("error: an error code is lowercase letters, digits and _")
        since, until = moment(q.get("since", ""), "since"), moment(q.get("until", ""), "until")
        if since is not None and until is not None and since >= until:
            raise Refusal("since: must be earlier than until")
        low, high = kopecks(q.get("min", ""), "min"), kopecks(q.get("max", ""), "max")
        if low is not None and high is not None and low > high:
            raise Refusal("min: must not be above max")
        bank = q.get("bank", "").strip() or None
        if bank is not None and (len(bank) > 32 or not bank.replace("_", "a").isalnum()):
            raise Refusal("bank: a BIK, an SBP member id or a card brand")
        return listing.Filter(project, status, error, since, until, low, high, bank)

    def _before(self, seen: Seen) -> int | None:
        text = seen.request.query_params.get("before", "")
        if not text:
            return None
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise Refusal("before: the cursor a previous page linked to")
        return int(text)

    async def payouts(self, seen: Seen) -> Response:
        wanted = seen.request.query_params.get("id", "").strip()
        if wanted:  # search by id: straight to its story
            try:
                listing.parse_id(wanted)
            except ValueError as exc:
                raise Refusal(f"id: {exc}") from None
            return self.web.go(seen.request, f"/payouts/{wanted}")
        where, before = self._filter(seen), self._before(seen)

        def read() -> tuple[list[listing.Line], int | None, list[str]]:
            with self.db.read() as conn:
                lines, cursor = listing.list_payouts(conn, where, PAGE, before)
                return lines, cursor, [p.id for p in projects.list_projects(conn)]

        lines, cursor, known = await self.web.run(read)
        query = {k: v for k, v in seen.request.query_params.items() if k != "before"}
        return self.web.render(
            seen,
            "payouts.html",
            lines=lines,
            cursor=cursor,
            query=query,
            projects=known,
            statuses=PAYOUT_STATUSES,
        )

    async def payouts_csv(self, seen: Seen) -> Response:
        where = self._filter(seen)
        fields = list(listing.Line.__slots__)

        def rows() -> Iterator[str]:  # page by page, each page its own read
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            before, sent = None, 0
            while sent < CSV_MAX:
                with self.db.read() as conn:
                    lines, before = listing.list_payouts(conn, where, 1000, before)
                writer.writerows(line.as_dict() for line in lines)
                sent += len(lines)
                yield out.getvalue()
                out.seek(0)
                out.truncate()
                if before is None:
                    return

        headers = {**HEADERS, "Content-Disposition": 'attachment; filename="payouts.csv"'}
        return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)

    async def payout(self, seen: Seen) -> Response:
        wanted = seen.request.path_params["id"]
        try:
            listing.parse_id(wanted)
        except ValueError as exc:
            raise Refusal(f"id: {exc}", 404) from None

        def read() -> Any:
            with self.db.read() as conn:
                found = listing.story(conn, wanted)
                if found is None:
                    return None
                line, moments = found
                events = [
                    (event, screens.event_body(conn, self.vault, event))
                    for event in history.session_events(conn, int(line.session[3:]))
                ]
                return line, moments, events

        found = await self.web.run(read)
        if found is None:
            raise Refusal(f"no payout {wanted}", 404)
        line, moments, events = found
        return self.web.render(seen, "payout.html", line=line, moments=moments, events=events)

    # -- webhooks ------------------------------------------------------------------------

    async def webhooks(self, seen: Seen) -> Response:
        q = seen.request.query_params
        project = q.get("project", "").strip() or None
        status = q.get("status", "").strip() or None
        if status is not None and status not in history.STATUSES:
            raise Refusal(f"status: one of {', '.join(history.STATUSES)}")
        if project is not None and not projects.PROJECT_ID.fullmatch(project):
            raise Refusal(f"project: {project[:70]!r} is no project id")

        def read() -> tuple[list[Any], list[str]]:
            with self.db.read() as conn:
                found = history.list_events(conn, project, status, 100)
                return found, [p.id for p in projects.list_projects(conn)]

        events, known = await self.web.run(read)
        return self.web.render(
            seen,
            "webhooks.html",
            events=events,
            projects=known,
            statuses=history.STATUSES,
            project=project or "",
            status=status or "",
        )

    async def webhook(self, seen: Seen) -> Response:
        try:
            n = history.parse_event_id(seen.request.path_params["id"])
        except ValueError as exc:
            raise Refusal(str(exc), 404) from None

        def read() -> Any:
            with self.db.read() as conn:
                event = history.get_event(conn, n)
                if event is None:
                    return None
                return event, history.attempts(conn, n), screens.event_body(conn, self.vault, event)

        found = await self.web.run(read)
        if found is None:
            raise Refusal(f"no event evt_{n}", 404)
        event, attempts, body = found
        return self.web.render(seen, "webhook.html", event=event, attempts=attempts, body=body)

    # -- projects ------------------------------------------------------------------------

    async def projects_page(self, seen: Seen) -> Response:
        def read() -> Any:
            with self.db.read() as conn:
                return projects.list_projects(conn), _clock_choices(conn, self.web.mode)

        found, choices = await self.web.run(read)
        return self.web.render(seen, "projects.html", projects=found, clocks=choices)

    async def project(self, seen: Seen) -> Response:
        project_id = seen.request.path_params["id"]

        def read() -> Any:
            with self.db.read() as conn:
                found = projects.get_project(conn, project_id)
                return found, _clock_choices(conn, self.web.mode)

        found, choices = await self.web.run(read)
        if found is None:
            raise Refusal(f"no project {project_id[:70]!r}", 404)
        return self.web.render(
            seen,
            "project.html",
            project=found,
            clocks=choices,
            timeout_bounds=projects.CONFIRM_TIMEOUT_S,
        )

    # -- accounts ------------------------------------------------------------------------

    async def accounts_page(self, seen: Seen) -> Response:
        def read() -> list[accounts.Account]:
            with self.db.read() as conn:
                return accounts.list_accounts(conn)

        return self.web.render(seen, "accounts.html", accounts=await self.web.run(read))

    def _statement(self, seen: Seen, limit: int, oldest_first: bool = False) -> Any:
        code = seen.request.path_params["code"]
        q = seen.request.query_params
        since, until = moment(q.get("since", ""), "since"), moment(q.get("until", ""), "until")
        if since is not None and until is not None and since >= until:
            raise Refusal("since: must be earlier than until")
        before = self._before(seen)
        with self.db.read() as conn:
            found = accounts.find(conn, [code]).get(code)
            if found is None:
                raise Refusal(f"no account {code[:70]!r}", 404)
            lines, cursor = screens.entries(
                conn,
                found.id,
                since=since,
                until=until,
                limit=limit,
                before=before,
                oldest_first=oldest_first,
            )
        return found, lines, cursor

    async def account(self, seen: Seen) -> Response:
        found, lines, cursor = await self.web.run(self._statement, seen, 100)
        query = {k: v for k, v in seen.request.query_params.items() if k != "before"}
        return self.web.render(
            seen, "account.html", account=found, entries=lines, cursor=cursor, query=query
        )

    async def statement_csv(self, seen: Seen) -> Response:
        """The entries in the dates given, oldest first, at most ``CSV_MAX``; a statement
        cut there is named ``…-partial.csv`` (narrow the dates for the rest)."""

        def build() -> tuple[str, str]:
            found, lines, cursor = self._statement(seen, CSV_MAX, oldest_first=True)
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(("entry", "at", "kind", "memo", "payout", "amount", "balance_after"))
            for e in lines:
                payout = "" if e.payout_n is None else f"po_{e.payout_n}"
                when = datetime.fromtimestamp(e.at / 1e6, UTC).isoformat()
                writer.writerow((e.id, when, e.kind, e.memo, payout, e.amount, e.balance_after))
            cut = "-partial" if cursor is not None else ""
            return out.getvalue(), f"statement-{found.code.replace(':', '-')}{cut}.csv"

        text, name = await self.web.run(build)
        headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
        return Response(text, media_type="text/csv; charset=utf-8", headers=headers)

    # -- audit, sandbox ------------------------------------------------------------------

    async def audit_page(self, seen: Seen) -> Response:
        before = self._before(seen)

        def read() -> Any:
            with self.db.read() as conn:
                return audit.list_entries(conn, limit=100, before=before)

        entries, cursor = await self.web.run(read)
        return self.web.render(seen, "audit.html", entries=entries, cursor=cursor)

    async def sandbox(self, seen: Seen) -> Response:
        if self.web.mode != "sandbox":
            raise Refusal("the sandbox panel exists only in sandbox mode (PAYOUT131_MODE)", 404)

        def read() -> Any:
            with self.db.read() as conn:
                found = []
                for clock in clocks.list_all(conn):
                    found.append(
                        (clock, clocks.projects_of(conn, clock.n), clocks.pending(conn, clock.n))
                    )
                return found, [p.id for p in projects.list_projects(conn)]

        found, known = await self.web.run(read)
        return self.web.render(
            seen,
            "sandbox.html",
            clocks=found,
            projects=known,
            outcomes=scenarios.rows(),
            destinations=scenarios.destination_rows(),
        )


def _clock_choices(conn: Any, mode: str) -> list[tuple[str, str]]:
    if mode != "sandbox":
        return []
    return [(c.id, c.name) for c in clocks.list_all(conn)]
