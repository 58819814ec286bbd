"""What an admin does in the console: each action one transaction with its audit entry.

Each takes the posted form (its token already checked by ``web.Web.action``), checks every
field as the CLI would, changes the store, records who did what with the state before and
after, and sends the browser back to the page with a note.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from starlette.datastructures import FormData
from starlette.responses import Response

from payout131 import projects
from payout131.client import signing
from payout131.client.params import BankAccount, payout_fields
from payout131.client.types import Amount
from payout131.clock import rfc3339_seconds
from payout131.console import audit
from payout131.console.web import Refusal, Seen, Web, kopecks
from payout131.errors import ApiError
from payout131.protocol.validation import id_number
from payout131.protocol.wire import dumps
from payout131.sandbox import clocks, forcing
from payout131.sandbox.advance import Advancer, Refused
from payout131.server.partner_api import PartnerApi
from payout131.webhooks import history, outbox

__all__ = ["Actions"]

ADVANCE_WAIT_S = 25.0  # an advance waits this long for the steps it makes due


def _project_view(found: projects.Project) -> dict[str, Any]:
    """A project's settings as the audit log records them (no secrets, no keys: their
    fingerprints)."""
    return {
        "webhook_url": found.webhook_url,
        "single_request": found.single_request,
        "disabled": found.disabled,
        "idempotency_mode": found.idempotency_mode,
        "confirm_timeout_s": found.confirm_timeout_s,
        "fee_bps": found.fee_bps,
        "fee_fixed": found.fee_fixed,
        "test_clock": None if found.test_clock is None else clocks.clock_id(found.test_clock),
        "keys": [k.fingerprint for k in found.keys if k.active],
    }


class Actions:
    def __init__(
        self,
        web: Web,
        *,
        partner_api: PartnerApi,
        advancer: Advancer,
        rail: str,
        wake: Callable[[], None],
    ) -> None:
        self.web, self.db = web, web.db
        self.partner_api, self.advancer, self.rail, self.wake = partner_api, advancer, rail, wake

    def _audited(
        self, seen: Seen, action: str, target: str, change: Callable[[Connection], Any]
    ) -> Any:
        """``change(conn)`` → ``(before, after)``, committed with its audit entry."""
        assert seen.login is not None
        request = seen.request
        now = self.web.clock.now()
        with self.db.write() as conn:
            before, after = change(conn)
            audit.record(
                conn,
                operator=seen.login.operator.name,
                action=action,
                at=now,
                target=target,
                before=before,
                after=after,
                address=request.client.host if request.client else None,
            )
        return after

    # -- projects ------------------------------------------------------------------------

    def _settings(self, form: FormData) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        url = str(form.get("webhook_url", "")).strip()
        fields["webhook_url"] = url or None
        fields["single_request"] = form.get("single_request") == "on"
        fields["idempotency_mode"] = str(form.get("idempotency_mode", "bank131"))
        timeout = str(form.get("confirm_timeout_min", "")).strip()
        if timeout:
            if not (timeout.isascii() and timeout.isdigit()) or len(timeout) > 6:
                raise Refusal("confirm_timeout_min: a whole number of minutes")
            fields["confirm_timeout_s"] = int(timeout) * 60
        bps = str(form.get("fee_bps", "0")).strip() or "0"
        if not (bps.isascii() and bps.isdigit()) or int(bps) > 10_000:
            raise Refusal("fee_bps: 0 to 10000 basis points")
        fields["fee_bps"] = int(bps)
        fields["fee_fixed"] = kopecks(str(form.get("fee_fixed", "")), "fee_fixed") or 0
        try:
            return projects.check_settings(fields)
        except ValueError as exc:
            raise Refusal(str(exc)) from None

    def _clock(self, form: FormData) -> tuple[bool, int | None]:
        """Whether the form sets the test clock, and to which (None: wall time)."""
        if self.web.mode != "sandbox" or "test_clock" not in form:
            return False, None
        text = str(form.get("test_clock", "")).strip()
        try:
            return True, (clocks.parse_id(text) if text else None)
        except ValueError as exc:
            raise Refusal(f"test_clock: {exc}") from None

    async def change_project(self, seen: Seen, form: FormData) -> Response:
        project_id = seen.request.path_params["id"]
        fields = self._settings(form)
        rebind, clock_n = self._clock(form)

        def change(conn: Connection) -> tuple[Any, Any]:
            found = projects.get_project(conn, project_id)
            if found is None:
                raise Refusal(f"no project {project_id[:70]!r}", 404)
            projects.update_project(conn, project_id, **fields)
            if rebind:
                try:
                    clocks.bind(conn, project_id, clock_n)
                except LookupError as exc:
                    raise Refusal(f"test_clock: {exc}") from None
            after = projects.get_project(conn, project_id)
            assert after is not None
            return _project_view(found), _project_view(after)

        await self.web.run(self._audited, seen, "project.change", project_id, change)
        return self.web.go(seen.request, f"/projects/{project_id}", note="settings saved")

    async def switch_project(self, seen: Seen, form: FormData) -> Response:
        project_id = seen.request.path_params["id"]
        switch = seen.request.path_params["switch"]
        if switch not in ("enable", "disable"):
            raise Refusal(f"/projects/{project_id}/{switch[:20]}: enable or disable", 404)
        disabled = switch == "disable"

        def change(conn: Connection) -> tuple[Any, Any]:
            found = projects.get_project(conn, project_id)
            if found is None:
                raise Refusal(f"no project {project_id[:70]!r}", 404)
            projects.update_project(conn, project_id, disabled=disabled)
            return {"disabled": found.disabled}, {"disabled": disabled}

        action = "project.disable" if disabled else "project.enable"
        await self.web.run(self._audited, seen, action, project_id, change)
        note = "disabled: its calls are refused" if disabled else "enabled"
        return self.web.go(seen.request, f"/projects/{project_id}", note=f"project {note}")

    async def add_project(self, seen: Seen, form: FormData) -> Response:
        project_id = str(form.get("project_id", "")).strip()
        try:
            projects.check_id(project_id)
        except ValueError as exc:
            raise Refusal(str(exc)) from None
        pem = str(form.get("public_key", "")).strip().replace("\r\n", "\n") + "\n"
        try:
            signing.load_public_key(pem.encode("ascii", "replace"))
        except signing.KeyFormatError as exc:
            raise Refusal(f"public_key: {exc}") from None
        fields = self._settings(form)
        rebind, clock_n = self._clock(form)

        def change(conn: Connection) -> tuple[Any, Any]:
            if projects.exists(conn, project_id):
                raise Refusal(f"project {project_id!r} already exists")
            try:
                projects.add_project(conn, project_id, pem, self.web.clock.now(), **fields)
                if rebind and clock_n is not None:
                    clocks.bind(conn, project_id, clock_n)
            except LookupError as exc:
                raise Refusal(f"test_clock: {exc}") from None
            made = projects.get_project(conn, project_id)
            assert made is not None
            return None, _project_view(made)

        try:
            await self.web.run(self._audited, seen, "project.add", project_id, change)
        except IntegrityError:  # added meanwhile by someone else
            raise Refusal(f"project {project_id!r} already exists") from None
        return self.web.go(seen.request, f"/projects/{project_id}", note="project registered")

    # -- webhooks ------------------------------------------------------------------------

    async def resend(self, seen: Seen, form: FormData) -> Response:
        try:
            n = history.parse_event_id(seen.request.path_params["id"])
        except ValueError as exc:
            raise Refusal(str(exc), 404) from None

        def change(conn: Connection) -> tuple[Any, Any]:
            event = history.get_event(conn, n)
            if event is None or not outbox.replay(conn, n, self.web.clock.now()):
                raise Refusal(f"no event evt_{n}", 404)
            return {"status": event.status, "attempts": event.attempts}, {"status": "pending"}

        await self.web.run(self._audited, seen, "webhook.resend", f"evt_{n}", change)
        self.wake()
        return self.web.go(seen.request, f"/webhooks/evt_{n}", note="it will be sent again")

    async def resend_dead(self, seen: Seen, form: FormData) -> Response:
        project_id = str(form.get("project", "")).strip()

        def change(conn: Connection) -> tuple[Any, Any]:
            if not projects.PROJECT_ID.fullmatch(project_id) or not projects.exists(
                conn, project_id
            ):
                raise Refusal(f"project: no project {project_id[:70]!r}")
            count = outbox.replay_dead(conn, project_id, self.web.clock.now())
            return None, {"resent": count}

        after = await self.web.run(self._audited, seen, "webhook.resend_dead", project_id, change)
        self.wake()
        note = f"{after['resent']} dead event(s) of {project_id} will be sent again"
        return self.web.go(seen.request, "/webhooks", note=note, project=project_id)

    # -- sandbox -------------------------------------------------------------------------

    def _sandbox(self) -> None:
        if self.web.mode != "sandbox":
            raise Refusal("the sandbox panel exists only in sandbox mode (PAYOUT131_MODE)", 404)

    async def test_payout(self, seen: Seen, form: FormData) -> Response:
        """A payout for a project, made as its partner would (``session/init/payout``),
        with the account details the form gives."""
        self._sandbox()
        project_id = str(form.get("project", "")).strip()
        amount = kopecks(str(form.get("amount", "")), "amount")
        if amount is None or amount <= 0:
            raise Refusal("amount: give an amount in rubles above zero")
        destination = BankAccount(
            bik=str(form.get("bik", "")).strip(),
            account=str(form.get("account", "")).strip(),
            full_name=str(form.get("full_name", "")).strip(),
            description=str(form.get("description", "")).strip() or "Test payout",
        )
        body = payout_fields("v1", destination=destination, amount=Amount(amount))
        found = await self.web.run(self._project, project_id)
        try:
            _, answer = await self.partner_api.call(found, "v1", "session/init/payout", dumps(body))
        except ApiError as exc:
            raise Refusal(f"the bank refused it: {exc.code}: {exc.description}") from None
        session = json.loads(answer)["session"]["id"]

        def change(conn: Connection) -> tuple[Any, Any]:
            return None, {"session": session, "amount": amount}

        await self.web.run(self._audited, seen, "sandbox.payout", project_id, change)
        return self.web.go(seen.request, f"/payouts/{session}", note="test payout made")

    def _project(self, project_id: str) -> projects.Project:
        with self.db.read() as conn:
            found = (
                projects.get_project(conn, project_id)
                if projects.PROJECT_ID.fullmatch(project_id)
                else None
            )
        if found is None:
            raise Refusal(f"project: no project {project_id[:70]!r}")
        if found.disabled:  # as the partner's own call would be refused
            raise Refusal(f"project: {project_id} is disabled: enable it first")
        return found

    async def advance(self, seen: Seen, form: FormData) -> Response:
        self._sandbox()
        try:
            n = clocks.parse_id(seen.request.path_params["id"])
        except ValueError as exc:
            raise Refusal(str(exc), 404) from None
        how = str(form.get("how", "by"))
        target: dict[str, Any] = {}
        try:
            if how == "next":
                target["next_step"] = True
            elif how == "by":
                target["by"] = clocks.parse_duration(str(form.get("by", "")).strip())
            else:
                raise Refusal("how: by or next")
        except ValueError as exc:
            raise Refusal(f"by: {exc}") from None

        def run() -> tuple[Any, Any]:
            with self.db.read() as conn:
                try:
                    before = clocks.get(conn, n)
                except LookupError as exc:
                    raise Refusal(str(exc), 404) from None

            def change(conn: Connection) -> tuple[Any, Any]:
                return {"time": before.frozen_time}, {"advance": how, **target}

            try:
                self.advancer.request(n, **target)
            except Refused as exc:
                raise Refusal(str(exc)) from None
            self._audited(seen, "clock.advance", clocks.clock_id(n), change)
            self.wake()
            return self.advancer.wait(n, ADVANCE_WAIT_S), None

        clock, _ = await self.web.run_slow(run)
        note = f"{clock.id}: {clock.status}, at {rfc3339_seconds(clock.frozen_time)}"
        return self.web.go(seen.request, "/sandbox", note=note)

    async def force(self, seen: Seen, form: FormData) -> Response:
        self._sandbox()
        text = str(form.get("payout_id", "")).strip()
        outcome = str(form.get("outcome", ""))
        code = str(form.get("error_code", "")).strip() or None
        n = id_number(text[3:]) if text.startswith("po_") else None
        if n is None:
            raise Refusal(f"payout_id: {text[:40]!r} is not a payout id like po_12")

        def change(conn: Connection) -> tuple[Any, Any]:
            try:
                forcing.force(conn, self.rail, n, outcome, code, self.web.clock.now())
            except ApiError as exc:
                raise Refusal(exc.description) from None
            return None, {"outcome": outcome, "error_code": code}

        await self.web.run(self._audited, seen, f"payout.{outcome}", text, change)
        self.wake()
        return self.web.go(seen.request, "/sandbox", note=f"{text}: {outcome} forced")
