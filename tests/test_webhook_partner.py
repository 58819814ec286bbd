"""The seed flows driven by webhooks: a partner that verifies every signature with the key
``payout131 bank-key`` prints and confirms each payout from its ``ready_to_confirm``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from click.testing import CliRunner

from banking import Onboard
from liveserver import serve
from partner import ORGANISATION, Partner, destination, payout_body
from payout131.cli import main
from payout131.client import signing
from payout131.clock import ManualClock
from payout131.runtime import Runtime
from webhook_receiver import Answer, Delivery, Receiver, ok, receiving, status

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as endpoint:
        yield endpoint


class WebhookPartner:
    """Answers the bank's webhooks as an integration would: verify, then act, then 200."""

    def __init__(self, bank: Runtime, partners: dict[str, Partner]) -> None:
        printed = CliRunner(env={"PAYOUT131_HOME": str(bank.settings.home)}).invoke(
            main, ["bank-key"]
        )
        assert printed.exit_code == 0, printed.output
        self.bank_key = signing.load_public_key(printed.output.encode())
        self.partners = partners
        self.cancel: set[str] = set()
        self.ignore: set[str] = set()
        self.seen: dict[str, list[str]] = {}
        self.problems: list[str] = []

    def __call__(self, delivery: Delivery) -> Answer:
        if not signing.verify(self.bank_key, delivery.body, delivery.signature):
            self.problems.append(f"bad signature on {delivery.id}")
            return status(401)
        event = delivery.json()
        session_id = event["session"]["id"]
        self.seen.setdefault(session_id, []).append(event["type"])
        try:
            if event["type"] == "ready_to_confirm":
                self._decide(self.partners[delivery.path], session_id, event)
        except AssertionError as exc:  # reported by the test, not lost in a server thread
            self.problems.append(f"{session_id}: {exc}")
            return status(500)
        return ok()

    def _decide(self, partner: Partner, session_id: str, event: dict[str, Any]) -> None:
        if session_id in self.ignore:
            return
        if session_id in self.cancel:
            partner.ok("session/cancel", {"session_id": session_id})
            return
        body = {"session_id": session_id}
        if "confirm_information" in event:
            body["confirm_information"] = event["confirm_information"]
        partner.ok("session/confirm", body)


def settle(bank: Runtime) -> None:
    """Run the worker and the dispatcher until neither has anything left to do."""
    for _ in range(20):
        if bank.worker.drain() + bank.dispatcher.drain() == 0:
            return
    raise AssertionError("the flows did not settle")


def test_every_seed_flow_is_driven_by_verified_webhooks(
    bank: Runtime, clock: ManualClock, onboard: Onboard, receiver: Receiver
) -> None:
    rko = onboard("rko", account=1_000_000, webhook_url=receiver.url + "/rko")
    wallet = onboard("wallet", wallet=1_000_000, webhook_url=receiver.url + "/wallet")
    single = onboard(
        "single", wallet=100_000, single_request=True, webhook_url=receiver.url + "/single"
    )
    slow = onboard("slow", wallet=100_000, confirm_timeout_s=60, webhook_url=receiver.url + "/slow")
    partner = WebhookPartner(
        bank, {"/rko": rko, "/wallet": wallet, "/single": single, "/slow": slow}
    )
    receiver.respond = partner

    created = rko.ok("session/create/rko", {})["session"]["id"]
    rko.ok(
        "session/start/payout/rko", {"session_id": created, **rko.rko_body(300_000, ORGANISATION)}
    )
    two_step = wallet.ok("session/init/payout", payout_body(20_000))["session"]["id"]
    v2 = wallet.ok(
        "session/create",
        {"payout_details": destination(), "amount_details": {"amount": 5_000, "currency": "RUB"}},
        version="v2",
    )["session"]["id"]
    wallet.ok("session/start/payout", {"session_id": v2}, version="v2")
    cancelled = wallet.ok("session/init/payout", payout_body(7_000))["session"]["id"]
    partner.cancel.add(cancelled)
    one_call = single.ok("session/init/payout", payout_body(10_000))["session"]["id"]
    timed_out = slow.ok("session/init/payout", payout_body(10_000))["session"]["id"]
    partner.ignore.add(timed_out)

    settle(bank)
    clock.advance(61)  # the slow partner's confirm timeout passes
    settle(bank)

    assert partner.problems == []
    both = ["ready_to_confirm", "payment_finished"]
    assert partner.seen == {
        created: both,
        two_step: both,
        v2: both,
        cancelled: both,
        one_call: ["payment_finished"],
        timed_out: both,
    }
    final = {d.json()["session"]["id"]: d.json() for d in receiver.deliveries}
    outcomes = {
        session_id: (body["session"]["status"], _payout(body)["status"])
        for session_id, body in final.items()
    }
    assert outcomes == {
        created: ("accepted", "succeeded"),
        two_step: ("accepted", "succeeded"),
        v2: ("accepted", "succeeded"),
        cancelled: ("cancelled", "failed"),
        one_call: ("accepted", "succeeded"),
        timed_out: ("cancelled", "failed"),
    }
    assert _payout(final[timed_out])["error"]["code"] == "confirm_timeout"
    assert _payout(final[cancelled])["error"]["code"] == "session_cancelled_by_partner"
    assert len({d.id for d in receiver.deliveries}) == len(receiver.deliveries) == 11


def _payout(body: dict[str, Any]) -> dict[str, Any]:
    session = body["session"]
    payouts: list[dict[str, Any]] = session.get("payments") or session["payout_list"]
    return payouts[0]


def test_the_server_delivers_by_itself_as_soon_as_events_commit(
    bank: Runtime, onboard: Onboard, receiver: Receiver
) -> None:
    # a five-minute poll: only the wake-ups from the API and the worker can be in time
    bank.dispatcher.config = replace(bank.dispatcher.config, poll_s=300)
    wallet = onboard("wallet", wallet=100_000, webhook_url=receiver.url + "/wallet")
    receiver.respond = WebhookPartner(bank, {"/wallet": wallet})
    with serve(bank.app(run_worker=True)):  # the worker and the dispatcher run here
        session_id = wallet.ok("session/init/payout", payout_body(10_000))["session"]["id"]
        receiver.wait_for(lambda found: len(found) == 2)
    assert [(b["session"]["id"], b["type"]) for b in receiver.bodies()] == [
        (session_id, "ready_to_confirm"),
        (session_id, "payment_finished"),
    ]
    assert receiver.bodies()[1]["session"]["status"] == "accepted"
