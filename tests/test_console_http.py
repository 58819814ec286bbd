"""The console over real HTTP, on both engines: who may enter and what each may do.

A form posted without its token is refused, a cookie kept after signing out opens
nothing, a viewer's action is refused and changes nothing, repeated failures lock an
operator, and every action is in the audit log with the state before and after. Bad
filters get a page naming the field; no page shows an account number.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from banking import Onboard
from console_client import PASSWORD, ConsoleUser, add_operator, alert, sign_in
from liveserver import serve
from partner import INDIVIDUAL, payout_body
from payout131 import projects
from payout131.cli import main
from payout131.clock import ManualClock, SystemClock
from payout131.console import audit, logins, operators, web
from payout131.errors import SessionWrongState
from payout131.ledger import accounts
from payout131.payouts import call_record, listing
from payout131.payouts.calls import PartnerCall
from payout131.projects import get_project
from payout131.runtime import Runtime
from payout131.settings import Settings
from prefix_proxy import prefix_proxy
from served import free_port
from served import serve as serve_command


@pytest.fixture
def user(http: httpx.Client) -> Iterator[ConsoleUser]:
    person = ConsoleUser(str(http.base_url))
    yield person
    person.close()


def _audit(bank: Runtime) -> list[audit.Entry]:
    with bank.db.read() as conn:
        return audit.list_entries(conn, limit=100)[0]


def test_with_no_operator_the_console_says_how_to_make_one_and_shows_nothing(
    bank: Runtime, user: ConsoleUser
) -> None:
    for path in ("/", "/payouts", "/projects", "/login"):
        page = user.get(path)
        assert page.status_code == 503
        assert "payout131 operator add NAME --role admin" in page.text
        assert "<table" not in page.text
        assert "Sign in</button>" not in page.text


def test_sign_in_sets_a_strict_cookie_and_a_cookie_kept_after_sign_out_opens_nothing(
    bank: Runtime, user: ConsoleUser
) -> None:
    add_operator(bank, "alice", "admin")
    assert user.get("/payouts").headers["location"] == "/console/login?next=%2Fpayouts"
    answer = user.sign_in("alice")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/"
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("payout131_console=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here: set over HTTPS (test_console_browser)
    page = user.get("/")
    assert page.status_code == 200
    assert "alice (admin)" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    token = user.http.cookies["payout131_console"]
    csrf = user.csrf()

    out = user.post("/logout", {})
    assert out.status_code == 303
    assert "/console/login" in out.headers["location"]
    stale = {"payout131_console": token}
    kept = httpx.Client(base_url=user.http.base_url, cookies=stale, follow_redirects=False)
    with kept:
        assert kept.get("/console/").status_code == 303  # back to the sign-in page
        change = kept.post("/console/projects/x/disable", data={"csrf": csrf})
        assert change.status_code == 401
        assert "not signed in" in alert(change)
    assert [e.action for e in _audit(bank)][:2] == ["sign_out", "sign_in"]


def test_forms_without_their_token_are_refused_and_change_nothing(
    bank: Runtime, user: ConsoleUser, onboard: Onboard
) -> None:
    onboard("acme")
    add_operator(bank, "alice", "admin")
    user.sign_in("alice")
    for path, form in (
        ("/projects/acme", {"webhook_url": "https://evil.example/hook"}),
        ("/projects/acme", {"webhook_url": "https://evil.example/hook", "csrf": "forged"}),
        ("/projects/acme/disable", {"go": "1"}),
        ("/sandbox/payout", {"project": "acme", "amount": "10"}),
        ("/sandbox/force", {"payout_id": "po_1", "outcome": "succeed"}),
        ("/logout", {"go": "1"}),
    ):
        refused = user.post(path, form, csrf=False)
        assert refused.status_code == 403, path
        assert "form's token is missing or stale" in alert(refused)
    with bank.db.read() as conn:
        found = get_project(conn, "acme")
    assert found is not None
    assert found.webhook_url is None
    # the sign-in form has its own token, tied to a cookie
    other = httpx.Client(base_url=user.http.base_url, follow_redirects=False)
    with other:
        blind = other.post("/console/login", data={"name": "alice", "password": PASSWORD})
        assert blind.status_code == 403
        assert "payout131_console=" not in str(blind.headers)


def test_a_viewer_reads_but_every_action_is_refused_and_an_admins_is_audited(
    bank: Runtime, http: httpx.Client, onboard: Onboard
) -> None:
    onboard("acme")
    add_operator(bank, "vera", "viewer")
    add_operator(bank, "alice", "admin")
    viewer, admin = ConsoleUser(str(http.base_url)), ConsoleUser(str(http.base_url))
    viewer.sign_in("vera")
    admin.sign_in("alice")
    page = viewer.get("/projects/acme")
    assert page.status_code == 200
    assert "Only an admin may change a project" in page.text
    url = "https://partner.example/hooks"
    for path, form in (
        ("/projects/acme", {"webhook_url": url}),
        ("/projects/acme/disable", {}),
        ("/webhooks/resend-dead", {"project": "acme"}),
        ("/projects", {"project_id": "new", "public_key": "x"}),
        ("/webhooks/evt_1/resend", {}),
        ("/sandbox/payout", {"project": "acme", "amount": "10"}),
        ("/sandbox/clocks/clk_1/advance", {"how": "next"}),
        ("/sandbox/force", {"payout_id": "po_1", "outcome": "succeed"}),
    ):
        refused = viewer.post(path, form)
        assert refused.status_code == 403, path
        assert "vera is a viewer: only an admin may do this" in alert(refused)
    with bank.db.read() as conn:
        unchanged = get_project(conn, "acme")
    assert unchanged is not None
    assert unchanged.webhook_url is None
    assert not unchanged.disabled

    done = admin.post(
        "/projects/acme", {"webhook_url": url, "confirm_timeout_min": "60", "fee_bps": "25"}
    )
    assert done.status_code == 303, alert(done)
    shown = admin.http.get(done.headers["location"])
    assert 'role="status">settings saved<' in shown.text
    assert "settings saved" not in admin.get("/projects/acme").text  # shown once
    assert "settings saved" not in admin.get("/projects/acme", note="settings saved").text
    with bank.db.read() as conn:
        changed = get_project(conn, "acme")
    assert changed is not None
    assert changed.webhook_url == url
    assert changed.confirm_timeout_s == 3600
    assert changed.fee_bps == 25
    entry = _audit(bank)[0]
    assert (entry.operator, entry.action, entry.target) == ("alice", "project.change", "acme")
    assert entry.before["webhook_url"] is None
    assert entry.after["webhook_url"] == url
    assert entry.before["confirm_timeout_s"] == 14400
    assert entry.after["fee_bps"] == 25
    assert entry.address == "127.0.0.1"
    assert "project.change" in admin.get("/audit").text

    bad = admin.post("/projects/acme", {"webhook_url": "ftp://x", "fee_bps": "99999"})
    assert bad.status_code == 400
    assert "fee_bps" in alert(bad)
    bad = admin.post("/projects/acme", {"webhook_url": "ftp://nowhere"})
    assert bad.status_code == 400
    assert alert(bad).startswith("webhook_url:")
    viewer.close()
    admin.close()


def test_repeated_failures_lock_an_operator_until_the_lock_ends(
    bank: Runtime, user: ConsoleUser, clock: ManualClock
) -> None:
    add_operator(bank, "alice", "admin")
    for _ in range(operators.MAX_FAILURES - 1):
        failed = user.sign_in("alice", "wrong password!")
        assert failed.status_code == 401
        assert alert(failed) == "wrong name or password"
    locked = user.sign_in("alice", "wrong password!")
    assert "too many failed sign-ins: locked for 15 more minute(s)" in alert(locked)
    right = user.sign_in("alice")  # the right password, while locked
    assert right.status_code == 401
    assert "locked" in alert(right)
    assert "payout131_console=" not in str(right.headers.get_list("set-cookie"))
    nobody = user.sign_in("mallory", "anything at all")
    assert alert(nobody) == "wrong name or password"  # the same answer as a wrong password
    clock.advance(operators.LOCK_S + 1)
    assert user.sign_in("alice").status_code == 303
    assert "sign_in.locked" in [e.action for e in _audit(bank)]


def test_a_sign_in_idle_too_long_ends(bank: Runtime, user: ConsoleUser, clock: ManualClock) -> None:
    add_operator(bank, "alice", "viewer")
    user.sign_in("alice")
    clock.advance(logins.IDLE_S - 60)
    assert user.get("/").status_code == 200  # a request keeps it alive
    clock.advance(logins.IDLE_S - 60)
    assert user.get("/").status_code == 200
    clock.advance(logins.IDLE_S + 1)
    assert user.get("/").status_code == 303


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"since": "yesterday"}, "since:"),
        ({"since": "2026-12-07T10:00", "until": "2026-12-07T09:00"}, "since: must be earlier"),
        ({"min": "1e5"}, "min:"),
        ({"min": "20", "max": "10"}, "min: must not be above max"),
        ({"status": "lost"}, "status: one of"),
        ({"project": "<script>"}, "project:"),
        ({"bank": "x" * 40}, "bank:"),
        ({"error": "a;b"}, "error:"),
        ({"before": "-1"}, "before:"),
        ({"id": "evt_1"}, "id:"),
    ],
)
def test_bad_filters_get_a_page_naming_the_field(
    bank: Runtime, user: ConsoleUser, query: dict[str, str], names: str
) -> None:
    add_operator(bank, "alice", "viewer")
    user.sign_in("alice")
    page = user.get("/payouts", **query)
    assert page.status_code == 400
    assert alert(page).startswith(names)
    assert "<script>" not in page.text.split("</header>", 1)[1]  # escaped, never markup


def test_the_console_shows_no_account_number_and_exports_what_it_lists(
    bank: Runtime, user: ConsoleUser, onboard: Onboard
) -> None:
    acme = onboard("acme", wallet=1_000_000, single_request=True, webhook_url="http://127.0.0.1:9/")
    sessions = [acme.ok("session/init/payout", payout_body(10_000 + i))["session"]["id"]
                for i in range(3)]  # fmt: skip
    bank.worker.drain()
    bank.dispatcher.drain()
    add_operator(bank, "alice", "viewer")
    user.sign_in("alice")
    number = INDIVIDUAL["account"]
    pages = [user.get(path) for path in (
        "/", "/payouts", f"/payouts/{sessions[0]}", "/webhooks", "/webhooks/evt_1",
        "/accounts", "/accounts/wallet:acme", "/audit", "/sandbox",
    )]  # fmt: skip
    for page in pages:
        assert page.status_code == 200, page.url
        assert number not in page.text
        assert number[:10] not in page.text
    story = pages[2].text.split('id="story"', 1)[1]
    assert "*" * 16 + number[-4:] in story  # the webhook body, masked
    assert story.index("session.created") < story.index("hold.placed") < story.index("webhook")

    exported = user.get("/payouts.csv", project="acme")
    assert exported.headers["content-disposition"] == 'attachment; filename="payouts.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert sorted(r["session"] for r in rows) == sorted(sessions)
    assert {r["bank"] for r in rows} == {INDIVIDUAL["bik"]}
    listed = user.get("/payouts", min="100.01", max="100.01", bank=INDIVIDUAL["bik"])
    assert sessions[1] in listed.text
    assert "No payouts match." in user.get("/payouts", bank="044525225").text  # none paid there
    assert sessions[0] not in listed.text
    assert sessions[2] not in listed.text
    statement = user.get("/accounts/wallet:acme/statement.csv")
    for export in (exported, statement):
        assert number not in export.text
    lines = list(csv.DictReader(io.StringIO(statement.text)))
    assert int(lines[0]["balance_after"]) == 1_000_000  # oldest first: the top-up
    running = 0
    for row in lines:  # each line's balance is the one before it plus its amount
        running += int(row["amount"])
        assert int(row["balance_after"]) == running
    with bank.db.read() as conn:
        wallet = accounts.find(conn, ["wallet:acme"])["wallet:acme"]
    assert running == wallet.balance
    assert len(lines) > 1


def test_the_console_is_off_in_production_until_enabled(
    bank_settings: Settings, clock: ManualClock
) -> None:
    production = replace(bank_settings, mode="production")
    for settings, on in ((production, False), (replace(production, console=True), True)):
        bank = Runtime.open(settings, clock=clock)
        try:
            with serve(bank.app(run_worker=False)) as url:
                page = httpx.get(f"{url}/console/login")
                root = httpx.get(f"{url}/")
        finally:
            bank.close()
        if on:
            assert page.status_code == 503
            assert root.status_code == 307
        else:
            assert page.status_code == 404
            assert root.status_code == 404
            assert "no such endpoint" in page.json()["error"]["description"]


def test_serve_puts_the_console_on_its_own_address(
    tmp_path: pytest.TempPathFactory, database_url: str
) -> None:
    port = free_port()
    with serve_command(tmp_path, database_url, "--console-port", str(port)) as served:  # type: ignore[arg-type]
        api, console = served.url, f"http://127.0.0.1:{port}"
        assert httpx.get(f"{console}/console/login").status_code == 503  # no operator yet
        assert httpx.get(f"{api}/console/login").status_code == 404
        assert httpx.get(f"{console}/health").status_code == 404
        assert httpx.get(f"{api}/health").status_code == 200
        assert f"console: {console}/console/" in served.log.read_text()


def test_operators_and_the_audit_log_from_the_terminal(bank: Runtime) -> None:
    env = {
        "PAYOUT131_HOME": str(bank.settings.home),
        "PAYOUT131_DATABASE_URL": bank.settings.database,
    }

    def run(*args: str, given: str = "", code: int = 0) -> str:
        result = CliRunner().invoke(main, list(args), env=env, input=given)
        assert result.exit_code == code, result.output
        return result.output

    assert "operator alice added (admin)" in run(
        "operator", "add", "alice", "--role", "admin", given=PASSWORD + "\n"
    )
    assert "12 to 1024 characters" in run(
        "operator", "add", "bob", "--role", "viewer", given="short\n", code=1
    )
    assert "exists" in run(
        "operator", "add", "alice", "--role", "viewer", given=PASSWORD + "\n", code=1
    )
    assert "operator name" in run(
        "operator", "add", "bad name", "--role", "viewer", given=PASSWORD + "\n", code=2
    )
    for _ in range(operators.MAX_FAILURES):  # on the wall's time, as the command reads it
        sign_in(bank, "alice", "wrong password!", SystemClock().now())
    assert "locked until" in run("operator", "list")
    run("operator", "password", "alice", given="another long password\n")
    listed = json.loads(run("operator", "list", "--json"))
    assert listed == [
        {
            "name": "alice",
            "role": "admin",
            "created_at": listed[0]["created_at"],
            "locked_until": None,
        }
    ]
    assert sign_in(bank, "alice", "another long password", bank.clock.now()).operator
    assert "no operator 'zed'" in run("operator", "remove", "zed", code=1)
    run("operator", "remove", "alice")
    entries = json.loads(run("audit", "list", "--json"))["entries"]
    assert [e["action"] for e in entries] == [
        "operator.remove",
        "operator.password",
        "operator.add",
    ]
    assert entries[0]["operator"].startswith("cli")
    assert entries[0]["before"] == {"role": "admin"}
    assert "operator.add  alice" in run("audit", "list", "--action", "operator.add")


def test_a_story_names_the_calls_that_touched_its_session_and_nothing_else(
    bank: Runtime, user: ConsoleUser, onboard: Onboard
) -> None:
    acme = onboard("acme", wallet=1_000_000)
    other = onboard("other", wallet=1_000_000)
    keyed = {"X-PARTNER-IDEMPOTENCY-KEY": "order-42"}
    session = acme.ok("session/init/payout", payout_body(1_000), headers=keyed)["session"]["id"]
    acme.post("session/status", {"session_id": session})  # a read: not recorded
    acme.error("session/confirm", {"session_id": session}, 400, "session_wrong_state")  # too soon
    other.error("session/confirm", {"session_id": session}, 403, "authorization_error")
    bank.worker.drain()
    acme.ok("session/confirm", {"session_id": session})
    with bank.db.read() as conn:
        found = listing.story(conn, session)
    assert found is not None
    calls = [m.detail for m in found[1] if m.what == "call"]
    assert [(c["method"], c["status"], c["error"], c["idempotency_key"]) for c in calls] == [
        ("session/init/payout", 200, None, "order-42"),
        ("session/confirm", 400, "session_wrong_state", None),
        ("session/confirm", 200, None, None),
    ]
    add_operator(bank, "alice", "viewer")
    user.sign_in("alice")
    story = user.get(f"/payouts/{session}").text.split('id="story"', 1)[1]
    assert story.count("<b>call</b>") == 3
    assert "<code>order-42</code>" in story
    assert "session_wrong_state" in story


def test_an_address_that_tries_one_name_too_often_waits_and_others_do_not(
    bank: Runtime, user: ConsoleUser
) -> None:
    add_operator(bank, "alice", "admin")
    for _ in range(web.THROTTLE_PER_NAME):  # a name no operator has: nothing locks
        assert user.sign_in("mallory", "not the password").status_code == 401
    waited = user.sign_in("mallory", "not the password")
    assert waited.status_code == 429
    assert "too many failed sign-ins from 127.0.0.1" in alert(waited)
    assert user.sign_in("alice").status_code == 303  # another name: not held up


def test_the_throttle_counts_tries_per_key_within_its_window() -> None:
    throttle = web.Throttle(limit=3, window_s=60)
    for at in (0.0, 1.0, 2.0):
        assert throttle.wait("10.0.0.1", at) == 0
        throttle.tried("10.0.0.1", at)
    assert throttle.wait("10.0.0.1", 30.0) == pytest.approx(30.0)  # the first ages out at 60
    assert throttle.wait("10.0.0.2", 30.0) == 0
    assert throttle.wait("10.0.0.1", 60.5) == 0
    throttle.forget("10.0.0.1")
    assert "10.0.0.1" not in throttle.tries


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [
        ("get", "/projects/a%00b", None),
        ("get", "/accounts/wallet%00x", None),
        ("get", "/payouts?project=a%00", None),
        ("get", "/webhooks/evt_%00", None),
        ("post", "/projects/acme", {"webhook_url": "https://x.example/\x00"}),
        ("post", "/sandbox/force", {"payout_id": "po_\u00b2", "outcome": "succeed"}),
        ("post", "/sandbox/force", {"payout_id": "po_1", "outcome": "explode"}),
        ("post", "/sandbox/payout", {"project": "acme", "amount": "1e3"}),
        ("post", "/sandbox/clocks/clk_x/advance", {"how": "by", "by": "1h"}),
        ("post", "/sandbox/clocks/clk_1/advance", {"how": "by", "by": "soon"}),
    ],
)
def test_bad_paths_and_forms_get_a_page_never_a_500(
    bank: Runtime, user: ConsoleUser, onboard: Onboard, method: str, path: str, form: Any
) -> None:
    onboard("acme")
    add_operator(bank, "alice", "admin")
    user.sign_in("alice")
    answer = user.get(path) if method == "get" else user.post(path, form)
    assert 400 <= answer.status_code < 500, answer.text
    assert alert(answer)
    nul = user.sign_in("al\x00ice")  # refused before any query
    assert nul.status_code == 400
    assert alert(nul).startswith("name: a control character")


def test_a_disabled_project_gets_no_test_payout(
    bank: Runtime, user: ConsoleUser, onboard: Onboard
) -> None:
    onboard("acme", wallet=100_000, disabled=True)
    add_operator(bank, "alice", "admin")
    user.sign_in("alice")
    form = {"project": "acme", "amount": "10", "bik": INDIVIDUAL["bik"],
            "account": INDIVIDUAL["account"], "full_name": "Иванов Иван Иванович"}  # fmt: skip
    refused = user.post("/sandbox/payout", form)
    assert refused.status_code == 400
    assert "acme is disabled" in alert(refused)
    with bank.db.write() as conn:
        projects.update_project(conn, "acme", disabled=False)
    made = user.post("/sandbox/payout", form)
    assert made.status_code == 303, alert(made)
    assert made.headers["location"].startswith("/console/payouts/ps_")


def test_the_console_behind_a_proxy_under_a_path_prefix(bank: Runtime) -> None:
    """``serve --root-path /bank --forwarded-allow-ips …`` behind a proxy that strips
    /bank and says the client came over HTTPS: every link, redirect and cookie names the
    prefix, and the cookie is Secure."""
    add_operator(bank, "alice", "viewer")
    app = bank.app(run_worker=False)
    with (
        serve(app, root_path="/bank", forwarded_allow_ips="127.0.0.1") as inner,
        serve(prefix_proxy("/bank", inner, proto="https")) as outer,
    ):
        # the client speaks HTTPS to the proxy: its cookies go back though this leg is HTTP
        page = httpx.get(f"{outer}/bank/console/login")
        assert "Secure" in page.headers["set-cookie"]
        form_cookie = page.headers["set-cookie"].split(";", 1)[0]
        token = re.search(r'name="form_token" value="([^"]+)"', page.text)
        assert token is not None
        form = {"form_token": token.group(1), "name": "alice", "password": PASSWORD}
        signed = httpx.post(
            f"{outer}/bank/console/login", data=form, headers={"Cookie": form_cookie}
        )
        assert signed.status_code == 303
        assert signed.headers["location"] == "/bank/console/"
        (cookie,) = [
            c for c in signed.headers.get_list("set-cookie") if c.startswith("payout131_console=")
        ]
        assert "Path=/bank/console" in cookie
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        session = cookie.split(";", 1)[0]
        listed = httpx.get(f"{outer}/bank/console/payouts", headers={"Cookie": session})
        assert listed.status_code == 200
        assert 'href="/bank/console/static/console.css"' in listed.text
        assert 'action="/bank/console/logout"' in listed.text


def test_a_group_of_several_projects_records_each_refusal_on_its_own_project(
    bank: Runtime, onboard: Onboard
) -> None:
    """One group commit may run several projects' calls: a refusal is recorded only on a
    session of the project that called, each one (two naming one session included)."""
    acme, other = onboard("acme", wallet=100_000), onboard("other", wallet=100_000)
    mine = acme.ok("session/create")["session"]["id"]
    theirs = other.ok("session/create")["session"]["id"]
    with bank.db.read() as conn:
        found = {p.id: p for p in projects.list_projects(conn)}

    def call(project: str, session: str) -> PartnerCall[Any]:
        body = SimpleNamespace(session_id=session)
        return PartnerCall(found[project], "v1", False, bank.clock.now(), body)

    refusal = SessionWrongState("not now")
    calls = [call("other", mine), call("acme", mine), call("acme", mine), call("other", theirs)]
    with bank.db.write() as conn:
        call_record.record(conn, "session/confirm", calls, [refusal] * 4)
    with bank.db.read() as conn:
        on_mine = call_record.for_session(conn, int(mine[3:]))
        on_theirs = call_record.for_session(conn, int(theirs[3:]))
    refused_mine = [c for c in on_mine if c.method == "session/confirm"]
    refused_theirs = [c for c in on_theirs if c.method == "session/confirm"]
    assert [(c.status, c.error) for c in refused_mine] == [(400, "session_wrong_state")] * 2
    assert len(refused_theirs) == 1
