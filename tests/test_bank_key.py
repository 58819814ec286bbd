"""`payout131 bank-key rotate`: the bank's webhook key changes without a restart and
without a webhook a partner cannot verify. Both keys are published before the switch, the
running server signs with the old key until the chosen time and with the new one after, and
the SDK verifies with either during the rotation. On both engines (the webhooks are real)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from banking import Onboard
from partner import payout_body
from payout131.cli import main
from payout131.client import signing
from payout131.client.config import read_public_keys
from payout131.client.errors import SignatureError
from payout131.client.webhooks import verify_and_parse
from payout131.clock import rfc3339
from payout131.runtime import Runtime
from webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as endpoint:
        yield endpoint


def run(env: dict[str, str], *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == code, result.output
    return result


def _env(bank: Runtime) -> dict[str, str]:
    settings = bank.settings
    return {"PAYOUT131_HOME": str(settings.home), "PAYOUT131_DATABASE_URL": settings.database}


def _in(seconds: float) -> str:
    return rfc3339(int((time.time() + seconds) * 1_000_000))


def _seen(bank: Runtime, fingerprint: str) -> None:
    """Until the running server signs with ``fingerprint`` (it looks at the files every
    second); a safety net, not a test."""
    deadline = time.monotonic() + 10
    while signing.fingerprint(bank.private_key) != fingerprint:
        assert time.monotonic() < deadline, "the server never read the key files again"
        time.sleep(0.05)


def _deliver(bank: Runtime, partner: object, receiver: Receiver) -> bytes:
    """Make an event, deliver it, and return the signature it came with and its body."""
    before = len(receiver.deliveries)
    partner.ok("session/init/payout", payout_body(1_000))  # type: ignore[attr-defined]
    bank.worker.drain()
    bank.dispatcher.drain()
    assert len(receiver.deliveries) == before + 1
    return receiver.deliveries[-1].body


def test_a_rotation_switches_webhook_signing_at_the_chosen_time(
    bank: Runtime, onboard: Onboard, receiver: Receiver
) -> None:
    env = _env(bank)
    partner = onboard(wallet=100_000, webhook_url=receiver.url)
    old = signing.fingerprint(bank.private_key)
    _deliver(bank, partner, receiver)

    made = run(env, "bank-key", "rotate", "--at", _in(3600)).output
    status = json.loads(run(env, "bank-key", "status", "--json").output)
    new = status["next"]
    assert new in made
    assert (status["signing"], status["current"], status["switched"]) == (old, old, False)
    private = bank.settings.bank_private_key_path
    private.rename(private.with_suffix(".away"))  # publishing reads the public halves only
    try:
        bundle = run(env, "bank-key").output  # what partners install before the switch
        assert json.loads(run(env, "bank-key", "status", "--json").output) == status
    finally:
        private.with_suffix(".away").rename(private)
    published = [signing.fingerprint(k) for k in read_public_keys(bundle)]
    assert published == [old, new]

    time.sleep(1.1)  # the server has looked at the files again: still the old key signs
    body = _deliver(bank, partner, receiver)
    assert signing.fingerprint(bank.private_key) == old
    signature = receiver.deliveries[-1].signature
    verify_and_parse(body, signature, bundle)
    verify_and_parse(body, signature, read_public_keys(bundle)[:1])

    run(env, "bank-key", "switch", "--at", "now")
    _seen(bank, new)
    body = _deliver(bank, partner, receiver)
    signature = receiver.deliveries[-1].signature
    verify_and_parse(body, signature, bundle)  # a partner holding both never notices
    with pytest.raises(SignatureError):
        verify_and_parse(body, signature, read_public_keys(bundle)[:1])
    assert [signing.fingerprint(k) for k in read_public_keys(run(env, "bank-key").output)] == [
        new,
        old,
    ]

    finished = run(env, "bank-key", "finish").output
    assert new in finished
    only = read_public_keys(run(env, "bank-key").output)
    assert [signing.fingerprint(k) for k in only] == [new]
    public = bank.settings.bank_public_key_path.read_bytes()
    assert signing.fingerprint(read_public_keys(public)[0]) == new
    time.sleep(1.1)
    body = _deliver(bank, partner, receiver)
    verify_and_parse(body, receiver.deliveries[-1].signature, only)
    assert "no rotation under way" in run(env, "bank-key", "status").output


def test_each_rotation_step_refused_out_of_turn_in_one_line(bank: Runtime, tmp_path: Path) -> None:
    env = _env(bank)

    def error(*args: str, code: int = 1) -> str:
        out = run(env, "bank-key", *args, code=code).output.strip()
        assert out.count("\n") == 0 or code == 2, out
        assert "Error: " in out, out
        return out

    assert "no rotation waits" in error("switch", "--at", "now")
    assert "no rotation waits" in error("cancel")
    assert "no rotation to finish" in error("finish")
    assert "RFC 3339" in error("rotate", "--at", "tomorrow", code=2)
    assert "give the offset" in error("rotate", "--at", "2030-01-01T00:00:00", code=2)
    assert "in the past" in error("rotate", "--at", "2020-01-01T00:00:00Z")
    assert "Missing option '--at'" in error("rotate", code=2)
    assert "before the year 9999" in error("rotate", "--at", "9999-12-31T23:59:59-05:00", code=2)

    run(env, "bank-key", "rotate", "--at", _in(3600))
    assert "waits for its switch" in error("rotate", "--at", _in(7200))
    assert "finish after that" in error("finish")
    run(env, "bank-key", "switch", "--at", _in(60))  # earlier, still ahead
    run(env, "bank-key", "cancel")
    assert "no rotation under way" in run(env, "bank-key", "status").output
    assert len(read_public_keys(run(env, "bank-key").output)) == 1

    run(env, "bank-key", "rotate", "--at", "now")
    assert "cannot be moved back" in error("switch", "--at", _in(3600))
    assert "finish the rotation" in error("cancel")
    before = json.loads(run(env, "bank-key", "status", "--json").output)
    run(env, "bank-key", "rotate", "--at", _in(3600))  # the switched rotation is finished
    after = json.loads(run(env, "bank-key", "status", "--json").output)
    assert after["current"] == before["next"]
    assert after["next"] not in (before["current"], before["next"])

    # a backup carries the rotation under way, and a restore brings it back whole
    if bank.settings.database.startswith("sqlite"):
        archive = tmp_path / "bank.tar"
        run(env, "backup", str(archive))
        fresh = {"PAYOUT131_HOME": str(tmp_path / "fresh")}
        run(fresh, "restore", str(archive))
        restored = json.loads(run(fresh, "bank-key", "status", "--json").output)
        assert restored == after
