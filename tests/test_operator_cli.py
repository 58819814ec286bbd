"""An operator's view from the terminal (`payout131 project list`, `account list`,
`payouts list`, `payouts show`), on both engines: the filters find the payouts they name,
pages follow each other without a gap or a repeat, and one payout's story runs from its
session to its last webhook attempt in time order, with no account number in sight."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from banking import Onboard
from partner import INDIVIDUAL, payout_body
from payout131.cli import main
from payout131.clock import ManualClock, rfc3339
from payout131.runtime import Runtime
from payout131.webhooks import outbox
from webhook_receiver import Receiver, receiving


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as endpoint:
        yield endpoint


def run(bank: Runtime, *args: str, code: int = 0) -> Result:
    settings = bank.settings
    env = {"PAYOUT131_HOME": str(settings.home), "PAYOUT131_DATABASE_URL": settings.database}
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == code, result.output
    return result


def test_find_payouts_by_filters_and_follow_one_to_its_last_webhook(
    bank: Runtime, clock: ManualClock, onboard: Onboard, receiver: Receiver
) -> None:
    acme = onboard(wallet=1_000_000, webhook_url=receiver.url, single_request=True)
    other = onboard("other", wallet=1_000_000)
    started = clock.now()
    paid = [acme.ok("session/init/payout", payout_body(10_000 + i * 100))["session"]["id"]
            for i in range(3)]  # fmt: skip
    clock.advance(60)
    between = clock.now()
    failed = acme.ok("session/init/payout", payout_body(10_001))["session"]["id"]
    other.ok("session/init/payout", payout_body(20_000))
    for _ in range(3):
        bank.worker.drain()
        bank.dispatcher.drain()

    listed = json.loads(run(bank, "project", "list", "--json").output)
    assert [p["id"] for p in listed] == ["acme", "other"]
    assert listed[0]["single_request"] is True
    assert len(listed[0]["keys"]) == 1
    wallets = json.loads(run(bank, "account", "list", "--project", "acme", "--json").output)
    assert [(a["account"], a["kind"]) for a in wallets] == [("wallet:acme", "wallet")]
    spent = 10_000 + 10_100 + 10_200
    assert wallets[0]["balance"] == wallets[0]["available"] == 1_000_000 - spent

    def listing(*options: str) -> dict[str, object]:
        out: dict[str, object] = json.loads(run(bank, "payouts", "list", *options, "--json").output)
        return out

    all_acme = listing("--project", "acme")["payouts"]
    assert [p["session"] for p in all_acme] == [failed, *reversed(paid)]  # newest first
    (refused,) = listing("--project", "acme", "--status", "failed")["payouts"]
    assert (refused["session"], refused["error"]) == (failed, "account_not_found")
    assert listing("--error", "account_not_found")["payouts"] == [refused]
    assert [p["session"] for p in listing("--project", "acme", "--until", rfc3339(between))[
        "payouts"]] == list(reversed(paid))  # fmt: skip
    since = listing("--since", rfc3339(between))["payouts"]
    assert {p["project"] for p in since} == {"acme", "other"}
    assert all(p["created_at"] >= between >= started for p in since)

    seen, cursor = [], None  # one at a time, by the cursor each page hands back
    while True:
        page = listing(
            "--project", "acme", "--limit", "1", *(["--before", str(cursor)] if cursor else [])
        )
        seen += [p["payout"] for p in page["payouts"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [p["payout"] for p in all_acme]
    text = run(bank, "payouts", "list", "--project", "acme", "--limit", "2").output
    assert "more: --before" in text
    assert "account_not_found" in text
    rows = list(csv.DictReader(io.StringIO(run(bank, "payouts", "list", "--csv").output)))
    assert len(rows) == 5
    assert {row["destination"] for row in rows} == {"account"}
    assert {row["bank"] for row in rows} == {INDIVIDUAL["bik"]}

    story = json.loads(run(bank, "payouts", "show", paid[0], "--json").output)
    assert story["payout"]["status"] == "succeeded"
    steps = [moment["what"] for moment in story["story"]]
    for step in ("session.created", "payout.created", "hold.placed", "hold.posted", "ledger",
                 "webhook", "webhook.attempt", "payout.finished"):  # fmt: skip
        assert step in steps, steps
    times = [moment["at"] for moment in story["story"]]
    assert times == sorted(times)
    attempt = next(m for m in story["story"] if m["what"] == "webhook.attempt")
    assert attempt["http_status"] == 200
    shown = run(bank, "payouts", "show", story["payout"]["payout"]).output
    assert paid[0] in shown
    assert "webhook.attempt" in shown
    for output in (shown, json.dumps(story), json.dumps(all_acme)):
        assert INDIVIDUAL["account"] not in output  # a destination is its kind and its bank


def test_bad_ids_and_filters_are_one_line(bank: Runtime) -> None:
    for args, code, message in (
        (("payouts", "show", "nonsense"), 2, "a session (ps_…) or payout (po_…) id"),
        (("payouts", "show", "po_99999"), 1, "no payout po_99999"),
        (("payouts", "list", "--since", "yesterday"), 2, "RFC 3339"),
        (("payouts", "list", "--json", "--csv"), 2, "not both"),
        (("account", "list", "--project", "nobody"), 1, "no project 'nobody'"),
        (("account", "list", "--project", "a b"), 2, "is no project id"),
        (("payouts", "list", "--project", "a\u00ff b"), 2, "is no project id"),
        (("payouts", "list", "--error", "Account Not Found"), 2, "an error code is"),
        (
            (
                "payouts",
                "list",
                "--since",
                "2026-12-08T00:00:00Z",
                "--until",
                "2026-12-07T00:00:00Z",
            ),
            2,
            "--since must be earlier than --until",
        ),
    ):
        out = run(bank, *args, code=code).output
        assert message in out, out
        assert "Traceback" not in out


def test_a_receivers_answer_is_kept_masked_and_on_one_line() -> None:
    """A receiver that echoes the webhook would echo an account number: what is kept of
    its answer (shown by `payouts show` and `webhooks show`) masks it, and no control
    character reaches a terminal."""
    answer = f'{{"echo": "{INDIVIDUAL["account"]}", "n": 123456789}}\n\x1b[31mred'.encode()
    kept = outbox.excerpt(answer)
    assert INDIVIDUAL["account"] not in kept
    assert "****************9535" in kept  # the last four digits stay
    assert "123456789" in kept  # nine digits: not an account
    assert "\n" not in kept
    assert "\x1b" not in kept
    assert len(outbox.excerpt(b"x" * 10_000)) == outbox.SNIPPET_BYTES
