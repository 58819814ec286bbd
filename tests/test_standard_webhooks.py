"""The opt-in Standard Webhooks signature, checked with the specification's own Python
library (``standardwebhooks``): on a real delivery, on both engines, across a retry; and
the operator's switch for it."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import standardwebhooks

from banking import Onboard
from partner import payout_body
from payout131.client import signing
from payout131.clock import ManualClock
from payout131.runtime import Runtime
from payout131.settings import Settings
from payout131.webhooks import standard
from test_cli import Operator
from webhook_receiver import Receiver, ok, receiving, status

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def bank_settings(bank_settings: Settings) -> Settings:
    return replace(bank_settings, webhook_jitter=0.0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as endpoint:
        yield endpoint


def test_a_signature_verifies_with_the_specifications_library() -> None:
    secret = standard.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    body, now = b'{"type":"payment_finished"}', int(time.time())
    headers = {
        "webhook-id": "evt_7",
        "webhook-timestamp": str(now),
        "webhook-signature": standard.sign(secret, "evt_7", now, body),
    }
    assert standardwebhooks.Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body.replace(b"finished", b"refunded"), headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(standard.new_secret()).verify(body, headers)


def _expected(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    moment = datetime.fromtimestamp(int(timestamp), tz=UTC)
    return standardwebhooks.Webhook(secret).sign(webhook_id, moment, body.decode())


def test_an_opted_in_project_gets_webhook_signature_on_every_attempt(
    bank: Runtime, clock: ManualClock, onboard: Onboard, receiver: Receiver
) -> None:
    secret = standard.new_secret()
    partner = onboard(wallet=10_000, webhook_url=receiver.url, webhook_secret=secret)
    partner.ok("session/init/payout", payout_body(1_000))
    bank.worker.drain()
    receiver.script(status(503), ok())
    assert bank.dispatcher.drain() == 1
    clock.advance(5)  # the schedule's second attempt
    assert bank.dispatcher.drain() == 1

    first, second = receiver.deliveries
    bank_key = signing.load_public_key(bank.settings.bank_public_key_path.read_bytes())
    for delivery in (first, second):
        stamp = delivery.headers["webhook-timestamp"]
        assert delivery.headers["webhook-signature"] == _expected(
            secret, delivery.id, stamp, delivery.body
        )
        assert signing.verify(bank_key, delivery.body, delivery.signature)  # Bank 131's too
    # the attempt's time, so that a verifier's few minutes of tolerance hold for a retry
    assert int(second.headers["webhook-timestamp"]) == int(first.headers["webhook-timestamp"]) + 5
    assert second.body == first.body
    assert second.signature == first.signature
    assert second.id == first.id


def test_a_project_that_did_not_opt_in_gets_no_webhook_signature(
    bank: Runtime, onboard: Onboard, receiver: Receiver
) -> None:
    partner = onboard(wallet=10_000, webhook_url=receiver.url)
    partner.ok("session/init/payout", payout_body(1_000))
    bank.worker.drain()
    assert bank.dispatcher.drain() == 1
    [delivery] = receiver.deliveries
    assert "webhook-signature" not in delivery.headers


def test_the_operator_turns_it_on_rotates_and_turns_it_off(
    tmp_path: Path, database_url: str, public_key: Path
) -> None:
    operator = Operator(tmp_path / "home", database_url)
    operator.run("init")
    operator.run("project", "add", "acme", "--public-key", str(public_key))
    assert json.loads(operator.run("project", "show", "acme").output)["standard_webhooks"] is False

    def turned_on() -> str:
        printed = operator.run("project", "set", "acme", "--standard-webhooks").output
        [secret] = [w for w in printed.split() if w.startswith("whsec_")]
        return secret

    first, rotated = turned_on(), turned_on()
    assert first != rotated
    shown = json.loads(operator.run("project", "show", "acme").output)
    assert shown["standard_webhooks"] is True
    assert rotated not in json.dumps(shown)  # printed once, when made
    operator.run("project", "set", "acme", "--no-standard-webhooks")
    assert json.loads(operator.run("project", "show", "acme").output)["standard_webhooks"] is False
