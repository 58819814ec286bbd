"""``payout131 webhooks`` and ``project set --webhook-url``: what an operator sees and does."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from banking import Onboard
from partner import Partner, payout_body
from payout131.cli import main
from payout131.clock import ManualClock, SystemClock
from payout131.runtime import Runtime
from payout131.settings import Settings
from payout131.storage import schema as t
from webhook_receiver import Receiver, receiving, status

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def clock() -> ManualClock:
    """Starts at the wall clock's now: the CLI stamps replays with the system time."""
    return ManualClock(SystemClock().now())


@pytest.fixture
def bank_settings(bank_settings: Settings) -> Settings:
    return replace(bank_settings, webhook_jitter=0.0, webhook_schedule=(0, 1))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as endpoint:
        yield endpoint


@pytest.fixture
def cli(bank: Runtime, database_url: str) -> CliRunner:
    env = {"PAYOUT131_HOME": str(bank.settings.home), "PAYOUT131_DATABASE_URL": database_url}
    return CliRunner(env=env)


def run(cli: CliRunner, *args: str, code: int = 0) -> Result:
    result = cli.invoke(main, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result


def table(result: Result) -> list[dict[str, str]]:
    header, *lines = result.output.splitlines()
    names = header.split("\t")
    return [dict(zip(names, line.split("\t"), strict=True)) for line in lines]


def ready(partner: Partner, bank: Runtime) -> str:
    session = partner.ok("session/init/payout", payout_body(1_000))["session"]
    bank.worker.drain()
    return str(session["id"])


def event_ids(bank: Runtime) -> list[int]:
    with bank.db.read() as conn:
        return list(conn.execute(sa.select(t.events.c.id).order_by(t.events.c.id)).scalars())


def test_events_without_a_url_are_listed_then_sent_once_a_url_is_set(
    bank: Runtime, onboard: Onboard, receiver: Receiver, cli: CliRunner
) -> None:
    partner = onboard(wallet=10_000)
    session_id = ready(partner, bank)
    assert bank.dispatcher.drain() == 0
    [row] = table(run(cli, "webhooks", "list"))
    assert row["ID"] == f"evt_{event_ids(bank)[0]}"
    assert row["SESSION"] == session_id
    assert (row["TYPE"], row["STATUS"], row["ATTEMPTS"]) == ("ready_to_confirm", "pending", "0")
    assert row["STATE"] == "waits for a webhook URL"

    run(cli, "project", "set", partner.project, "--webhook-url", receiver.url + "/in")
    assert bank.dispatcher.drain() == 1
    assert [d.path for d in receiver.deliveries] == ["/in"]
    [row] = table(run(cli, "webhooks", "list", "--status", "delivered"))
    assert row["STATUS"] == "delivered"
    assert row["STATE"].startswith("delivered 20")


def test_list_filters_by_project_and_status(
    bank: Runtime, onboard: Onboard, receiver: Receiver, cli: CliRunner
) -> None:
    receiver.respond = lambda d: status(500)
    ready(onboard("acme", wallet=10_000, webhook_url=receiver.url), bank)
    ready(onboard("zeta", wallet=10_000), bank)
    bank.dispatcher.drain()
    assert [r["PROJECT"] for r in table(run(cli, "webhooks", "list"))] == ["zeta", "acme"]
    assert [r["STATUS"] for r in table(run(cli, "webhooks", "list", "--project", "acme"))] == [
        "failed"
    ]
    assert [r["PROJECT"] for r in table(run(cli, "webhooks", "list", "--status", "pending"))] == [
        "zeta"
    ]
    assert table(run(cli, "webhooks", "list", "--status", "dead")) == []
    result = run(cli, "webhooks", "list", "--status", "lost", code=2)
    assert "'lost' is not one of" in result.output


def test_show_lists_every_attempt_and_replay_sends_again(
    bank: Runtime, clock: ManualClock, onboard: Onboard, receiver: Receiver, cli: CliRunner
) -> None:
    partner = onboard(wallet=10_000, webhook_url=receiver.url)
    ready(partner, bank)
    receiver.script(status(500, b"down for maintenance"), status(502))
    bank.dispatcher.drain()
    clock.advance(1)
    bank.dispatcher.drain()
    [n] = event_ids(bank)
    shown = run(cli, "webhooks", "show", f"evt_{n}", "--body").output
    assert f"evt_{n}  ready_to_confirm  project acme" in shown
    assert "status: dead after 2 attempt(s); dead: replay to send again" in shown
    assert f"url: {receiver.url}" in shown
    attempts = [line.split("\t") for line in shown.splitlines() if line[:2] in ("1\t", "2\t")]
    assert [a[3] for a in attempts] == ["HTTP 500", "HTTP 502"]
    assert attempts[0][6] == "down for maintenance"
    assert attempts[0][2] == bank.dispatcher.owner
    assert shown.rstrip().endswith(receiver.deliveries[0].body.decode())

    assert run(cli, "webhooks", "replay", str(n)).output == f"evt_{n} will be sent again\n"
    clock.micros = max(clock.micros, SystemClock().now())  # the CLI stamped the replay so
    assert bank.dispatcher.drain() == 1
    shown = run(cli, "webhooks", "show", str(n)).output
    assert "status: delivered after 1 attempt(s)" in shown
    assert "replayed: 20" in shown
    assert len({(d.body, d.signature) for d in receiver.deliveries}) == 1


def test_replay_all_dead_of_one_project(
    bank: Runtime, clock: ManualClock, onboard: Onboard, receiver: Receiver, cli: CliRunner
) -> None:
    receiver.respond = lambda d: status(500)
    acme = onboard("acme", wallet=10_000, webhook_url=receiver.url)
    zeta = onboard("zeta", wallet=10_000, webhook_url=receiver.url)
    for partner in (acme, acme, zeta):
        ready(partner, bank)
    bank.dispatcher.drain()
    clock.advance(1)
    bank.dispatcher.drain()
    assert len(table(run(cli, "webhooks", "list", "--status", "dead"))) == 3
    result = run(cli, "webhooks", "replay", "--all-dead", "--project", "acme")
    assert result.output == "2 dead event(s) of acme will be sent again\n"
    rows = table(run(cli, "webhooks", "list", "--status", "pending"))
    assert [r["PROJECT"] for r in rows] == ["acme", "acme"]


def test_show_marks_an_attempt_whose_outcome_was_never_recorded(
    bank: Runtime, clock: ManualClock, onboard: Onboard, cli: CliRunner
) -> None:
    from payout131.webhooks import outbox

    partner = onboard(wallet=10_000, webhook_url="http://127.0.0.1:9/")
    session_id = ready(partner, bank)
    partner.ok("session/cancel", {"session_id": session_id})
    first, second = event_ids(bank)
    with bank.db.write() as conn:  # claimed (and, say, sent) by a worker that then died
        outbox.claim(conn, "gone-1", clock.now(), clock.now() + 10**6, 10, {}, 8)
    shown = run(cli, "webhooks", "show", f"evt_{first}").output
    assert "no outcome recorded (the worker stopped before recording)" in shown
    assert "gone-1" in shown
    shown = run(cli, "webhooks", "show", f"evt_{second}").output
    assert f"waiting behind: evt_{first}, an earlier event of the same session" in shown


def test_operator_mistakes_get_clear_errors(
    bank: Runtime, onboard: Onboard, cli: CliRunner
) -> None:
    onboard(wallet=10_000)
    assert "no event evt_999" in run(cli, "webhooks", "show", "evt_999", code=1).output
    assert "not an event id like evt_12" in run(cli, "webhooks", "show", "ps_1", code=2).output
    assert "no event evt_999" in run(cli, "webhooks", "replay", "999", code=1).output
    assert "either EVENT_ID or --all-dead" in run(cli, "webhooks", "replay", code=2).output
    both = run(cli, "webhooks", "replay", "1", "--all-dead", "--project", "acme", code=2)
    assert "either EVENT_ID or --all-dead" in both.output
    assert (
        "--all-dead needs --project" in run(cli, "webhooks", "replay", "--all-dead", code=2).output
    )
    stray = run(cli, "webhooks", "replay", "1", "--project", "acme", code=2)
    assert "--project goes with --all-dead" in stray.output
    unknown = run(cli, "webhooks", "replay", "--all-dead", "--project", "nobody", code=1)
    assert "no project 'nobody'" in unknown.output


def test_a_bad_webhook_setting_is_a_clean_cli_error(bank: Runtime, cli: CliRunner) -> None:
    result = cli.invoke(main, ["webhooks", "list"], env={"PAYOUT131_WEBHOOK_TIMEOUT": "soon"})
    assert result.exit_code == 1
    assert "PAYOUT131_WEBHOOK_TIMEOUT: 'soon' is not a duration" in result.output
    assert "Traceback" not in result.output


def test_every_webhook_command_has_help(cli: CliRunner) -> None:
    for args in (["webhooks"], ["webhooks", "list"], ["webhooks", "show"], ["worker"]):
        assert "Usage:" in run(cli, *args, "--help").output
    assert "webhooks" in run(cli, "--help").output


def test_a_terminal_gets_a_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from payout131.cli import webhook_commands

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    webhook_commands._table("webhook events", ("ID", "STATUS"), [("evt_1", "dead")])
    drawn = screen.getvalue()
    assert "webhook events" in drawn
    assert "evt_1" in drawn
    assert "\t" not in drawn
    assert "─" in drawn or "━" in drawn  # box drawing, not tab-separated text
