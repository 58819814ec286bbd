"""The partner SDK against the real app, on SQLite and PostgreSQL, v1 and v2.

Two ways in, and every scenario runs both:

- ``loopback``: the blocking ``Client`` against the app served by uvicorn (the ``http``
  fixture's base URL), over real TCP;
- ``in_process``: ``AsyncClient(transport=httpx.ASGITransport(app))``, no socket at all. The
  scenarios are written once, in blocking style; for this mode each call is awaited on an
  event loop in a helper thread (an anyio blocking portal), so it is the async client that
  does the work.

Webhook bodies are the rows the server wrote to ``events``, signed here with the bank's key as
the dispatcher signs them, and read with ``verify_and_parse``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from anyio.from_thread import BlockingPortal, start_blocking_portal
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from banking import Onboard
from banking import event_bytes as event_bodies
from partner import INDIVIDUAL, ORGANISATION, Partner
from payout131 import projects
from payout131.client import (
    AccountBalance,
    Amount,
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    BankAccount,
    Client,
    Event,
    IdempotencyConflict,
    IdentificationError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotFoundError,
    PaymentFinished,
    ReadyToConfirm,
    Sender,
    Session,
    SessionWrongStateError,
    SignatureError,
    TokenizedAccount,
    signing,
    verify_and_parse,
)
from payout131.runtime import Runtime
from payout131.storage import schema as t

MODES = ["loopback", "in_process"]
VERSIONS = ["v1", "v2"]

PERSON = BankAccount(**INDIVIDUAL)
COMPANY = BankAccount(**ORGANISATION)


class Blocking:
    """An ``AsyncClient`` whose methods are called from blocking code through a portal."""

    def __init__(self, client: AsyncClient, portal: BlockingPortal) -> None:
        self._client, self._portal = client, portal

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method) or name == "parse_webhook":
            return method
        return lambda *args, **kwargs: self._portal.call(partial(method, *args, **kwargs))


SDK = Callable[..., Any]  # (partner, version="v1", **options) -> Client or Blocking


@pytest.fixture(params=MODES)
def sdk(request: pytest.FixtureRequest, bank: Runtime, http: httpx.Client) -> Iterator[SDK]:
    """Make an SDK client that plays ``partner``, through loopback or in-process."""
    closers: list[Callable[[], None]] = []
    portal_cm = start_blocking_portal() if request.param == "in_process" else None
    portal = portal_cm.__enter__() if portal_cm is not None else None
    app = bank.app(run_worker=False)

    def make(partner: Partner, version: str = "v1", **options: Any) -> Any:
        settings: dict[str, Any] = {
            "project": partner.project,
            "private_key": partner.key,
            "bank_public_key": bank.private_key.public_key(),
            "api_version": version,
            "max_retries": 0,
            **options,
        }
        if portal is None:
            client = Client(base_url=str(http.base_url), **settings)
            closers.append(client.close)
            return client
        aclient = AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bank", **settings
        )
        closers.append(lambda: portal.call(aclient.aclose))
        return Blocking(aclient, portal)

    try:
        yield make
    finally:
        for close in closers:
            close()
        if portal_cm is not None:
            portal_cm.__exit__(None, None, None)


def webhooks(bank: Runtime, session_id: str) -> list[Event]:
    """Each event of the session, signed with the bank's key and read by the SDK."""
    public = bank.private_key.public_key()
    return [
        verify_and_parse(body, signing.sign(bank.private_key, body), public)
        for body in event_bodies(bank, session_id)
    ]


# -- the seed flows --------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_two_step_from_a_settlement_account_confirmed(
    bank: Runtime, onboard: Onboard, sdk: SDK, version: str
) -> None:
    partner = onboard(account=1_000_000)
    assert partner.account is not None
    client = sdk(partner, version)
    session = client.create_session(rko=True, metadata={"order": 42})
    assert isinstance(session, Session)
    assert session.status == "created"
    assert session.payouts == []

    started = client.start_payout(
        session.id,
        rko=True,
        destination=COMPANY,
        amount=Amount(300_000),
        sender=Sender(partner.account),
    )
    assert started.status == "in_progress"
    assert started.payouts[0].status == "in_progress"
    assert client.account_balance(partner.account).raw["balance"]["available_balance"] == 700_000

    bank.worker.drain()
    waiting = client.status(session.id)
    assert waiting.next_action == "confirm"
    assert waiting.payouts[0].status == "pending"
    [ready] = webhooks(bank, session.id)
    assert isinstance(ready, ReadyToConfirm)
    assert ready.session.id == session.id
    assert ready.confirm_information is not None
    details = ready.confirm_information.account_details
    assert details.sender.account_number == partner.account
    assert details.sender.bik == "049205131"
    assert details.recipient.account_number == ORGANISATION["account"]
    assert details.recipient.inn == ORGANISATION["inn"]

    confirmed = client.confirm(session.id, ready.confirm_information)
    assert confirmed.next_action is None
    bank.worker.drain()

    final = client.status(session.id)
    assert final.status == "accepted"
    [payout] = final.payouts
    assert payout.status == "succeeded"
    assert payout.finished_at is not None
    assert payout.amount_details == Amount(300_000)
    assert payout.destination is not None
    assert payout.destination["bank_account"]["ru"]["account"] == ORGANISATION["account"]
    assert (payout.payment_method is not None) == (version == "v1")
    assert final.metadata == {"order": 42} or payout.metadata == {"order": 42}
    finished = webhooks(bank, session.id)[-1]
    assert isinstance(finished, PaymentFinished)
    assert finished.session.payouts[0].status == "succeeded"
    balance = client.account_balance(partner.account)
    assert isinstance(balance, AccountBalance)
    assert balance.current_balance == 700_000
    assert balance.account_currency == "RUB"


@pytest.mark.parametrize("version", VERSIONS)
def test_two_step_from_the_wallet_confirmed(
    bank: Runtime, onboard: Onboard, sdk: SDK, version: str
) -> None:
    partner = onboard(wallet=50_000)
    client = sdk(partner, version)
    session = client.init_payout(destination=PERSON, amount=Amount(20_000), metadata="good")
    assert session.payouts[0].amount_details == Amount(20_000)
    [wallet] = client.wallet_balance().wallets
    assert wallet.id == partner.project
    assert wallet.amount_details.amount == 30_000

    bank.worker.drain()
    [ready] = webhooks(bank, session.id)
    assert isinstance(ready, ReadyToConfirm)
    assert ready.confirm_information is None  # only /rko payouts carry it
    client.confirm(session.id)
    bank.worker.drain()

    events = webhooks(bank, session.id)
    assert [event.type for event in events] == ["ready_to_confirm", "payment_finished"]
    assert isinstance(events[1], PaymentFinished)
    assert events[1].session.status == "accepted"
    assert client.status(session.id).payouts[0].status == "succeeded"
    assert client.wallet_balance("2026-01-01T00:00:00Z").wallets[0].amount_details.amount == 30_000


@pytest.mark.parametrize("version", VERSIONS)
def test_cancel_releases_the_hold(bank: Runtime, onboard: Onboard, sdk: SDK, version: str) -> None:
    partner = onboard(account=100_000)
    assert partner.account is not None
    client = sdk(partner, version)
    session = client.init_payout(
        rko=True, destination=PERSON, amount=Amount(60_000), sender=Sender(partner.account)
    )
    bank.worker.drain()
    cancelled = client.cancel(session.id)
    assert cancelled.status == "cancelled"
    [payout] = cancelled.payouts
    assert payout.status == "failed"
    assert payout.error is not None
    assert payout.error.code == "session_cancelled_by_partner"
    assert client.account_balance(partner.account).current_balance == 100_000
    finished = webhooks(bank, session.id)[-1]
    assert isinstance(finished, PaymentFinished)
    assert finished.session.status == "cancelled"
    with pytest.raises(SessionWrongStateError) as caught:
        client.confirm(session.id)
    assert caught.value.http_status == 400
    assert caught.value.code == "session_wrong_state"
    with pytest.raises(SessionWrongStateError):
        client.cancel(session.id)


@pytest.mark.parametrize("version", VERSIONS)
def test_single_request_payout(bank: Runtime, onboard: Onboard, sdk: SDK, version: str) -> None:
    partner = onboard(wallet=10_000, single_request=True)
    client = sdk(partner, version)
    session = client.init_payout(destination=PERSON, amount=Amount(10_000), metadata="good")
    bank.worker.drain()
    [finished] = webhooks(bank, session.id)  # no ready_to_confirm
    assert isinstance(finished, PaymentFinished)
    final = client.status(session.id)
    assert final.status == "accepted"
    assert final.payouts[0].status == "succeeded"
    assert final.payouts[0].metadata == "good"
    assert client.wallet_balance().wallets[0].amount_details.amount == 0
    with pytest.raises(SessionWrongStateError):
        client.confirm(session.id)  # nothing to confirm


def test_payout_to_a_tokenized_account(bank: Runtime, onboard: Onboard, sdk: SDK) -> None:
    partner = onboard(wallet=10_000, single_request=True)
    client = sdk(partner)
    made = client.tokenize(INDIVIDUAL["bik"], INDIVIDUAL["account"])
    assert made.token
    assert made.masked_account is not None
    assert made.masked_account.endswith(INDIVIDUAL["account"][-4:])
    info = client.token_info(made.token)
    assert info.bik == INDIVIDUAL["bik"]
    assert info.masked_account == made.masked_account
    destination = TokenizedAccount(made.token, INDIVIDUAL["full_name"], INDIVIDUAL["description"])
    session = client.init_payout(destination=destination, amount=Amount(10_000))
    bank.worker.drain()
    assert client.status(session.id).payouts[0].status == "succeeded"
    assert client.public_token().public_token


# -- errors, from the server's own answers ---------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_a_field_breaking_a_rule_is_an_invalid_request_error(
    onboard: Onboard, sdk: SDK, version: str
) -> None:
    client = sdk(onboard(wallet=10_000), version)
    bad = BankAccount("12345", INDIVIDUAL["account"], "Иванов Иван", "Выплата")
    with pytest.raises(InvalidRequestError) as caught:
        client.init_payout(destination=bad, amount=Amount(1_000), idempotency_key="k-invalid")
    error = caught.value
    assert type(error) is InvalidRequestError
    assert error.http_status == 400
    assert error.code == "invalid_request"
    assert "bik" in error.description
    assert error.idempotency_key == "k-invalid"
    assert error.raw["status"] == "error"


@pytest.mark.parametrize("version", VERSIONS)
def test_an_unknown_session_is_a_not_found_error(onboard: Onboard, sdk: SDK, version: str) -> None:
    client = sdk(onboard(), version)
    with pytest.raises(NotFoundError) as caught:
        client.status("ps_999999")
    assert caught.value.http_status == 404
    assert caught.value.code == "invalid_request"
    assert isinstance(caught.value, InvalidRequestError)


def test_another_projects_session_is_an_authorization_error(onboard: Onboard, sdk: SDK) -> None:
    owner = sdk(onboard("owner", wallet=10_000))
    session = owner.create_session()
    stranger = sdk(onboard("stranger"))
    with pytest.raises(AuthorizationError) as caught:
        stranger.status(session.id)
    assert caught.value.http_status == 403
    assert caught.value.code == "authorization_error"


def test_a_disabled_project_is_an_authorization_error(
    bank: Runtime, onboard: Onboard, sdk: SDK
) -> None:
    partner = onboard()
    with bank.db.write() as conn:
        projects.update_project(conn, partner.project, disabled=True)  # before any call
    with pytest.raises(AuthorizationError):
        sdk(partner).wallet_balance()


@pytest.mark.parametrize("version", VERSIONS)
def test_paying_more_than_the_wallet_holds_is_an_insufficient_balance_error(
    onboard: Onboard, sdk: SDK, version: str
) -> None:
    client = sdk(onboard(wallet=5_000), version)
    with pytest.raises(InsufficientBalanceError) as caught:
        client.init_payout(destination=PERSON, amount=Amount(5_001))
    assert caught.value.http_status == 400
    assert caught.value.code == "insufficient_wallet_balance"
    assert client.wallet_balance().wallets[0].amount_details.amount == 5_000


@pytest.mark.parametrize("version", VERSIONS)
def test_a_reused_idempotency_key_is_an_idempotency_conflict(
    bank: Runtime, onboard: Onboard, sdk: SDK, version: str
) -> None:
    client = sdk(onboard(wallet=10_000), version)
    key = str(uuid.uuid4())
    first = client.init_payout(destination=PERSON, amount=Amount(4_000), idempotency_key=key)
    with pytest.raises(IdempotencyConflict) as caught:
        client.init_payout(destination=PERSON, amount=Amount(4_000), idempotency_key=key)
    error = caught.value
    assert error.code == "idempotency_key_already_exists"
    assert error.http_status == 400
    assert error.idempotency_key == key
    assert error.retried is False  # we reused it ourselves; the SDK did not retry
    assert client.wallet_balance().wallets[0].amount_details.amount == 6_000  # paid once
    assert client.status(first.id).payouts[0].amount_details == Amount(4_000)


def test_an_unknown_project_and_a_wrong_key_are_told_apart(
    onboard: Onboard, sdk: SDK, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    partner = onboard(key_index=0)
    with pytest.raises(IdentificationError) as unknown:
        sdk(partner, project="nobody").wallet_balance()
    assert unknown.value.http_status == 401
    with pytest.raises(AuthenticationError) as wrong:
        sdk(partner, private_key=partner_keys[1]).wallet_balance()
    assert wrong.value.http_status == 401
    assert wrong.value.code == "authentication_error"


# -- webhooks -------------------------------------------------------------------------------


def test_a_webhook_signed_by_another_key_is_refused(
    bank: Runtime, onboard: Onboard, sdk: SDK, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    partner = onboard(wallet=10_000)
    client = sdk(partner)
    session = client.init_payout(destination=PERSON, amount=Amount(1_000))
    bank.worker.drain()
    [body] = event_bodies(bank, session.id)
    event = client.parse_webhook(body, signing.sign(bank.private_key, body))
    assert isinstance(event, ReadyToConfirm)
    with pytest.raises(SignatureError):
        client.parse_webhook(body, signing.sign(partner_keys[0], body))
    with pytest.raises(SignatureError):  # one byte changed after signing
        client.parse_webhook(body.replace(b"ps_", b"ps_9", 1), signing.sign(bank.private_key, body))


def test_the_bank_key_from_the_servers_home_verifies_its_webhooks(
    bank: Runtime, onboard: Onboard, sdk: SDK
) -> None:
    """What a partner is given (``payout131 bank-key``) is what verifies the webhooks."""
    pem = bank.settings.bank_public_key_path.read_bytes()
    partner = onboard(wallet=10_000)
    client = sdk(partner, bank_public_key=pem)
    session = client.init_payout(destination=PERSON, amount=Amount(1_000))
    bank.worker.drain()
    [body] = event_bodies(bank, session.id)
    event = client.parse_webhook(body, signing.sign(bank.private_key, body))
    assert event.session is not None
    assert event.session.id == session.id


# -- the README's example ---------------------------------------------------------------------


def test_the_ten_line_example_in_the_docs_runs_against_the_server(
    bank: Runtime, onboard: Onboard, http: httpx.Client, tmp_path: Path, capsys: Any
) -> None:
    """docs/sdk.md opens with an example; it runs as written, only the address and keys
    swapped for this server's."""
    partner = onboard("my_project", wallet=100_000)
    key_file = tmp_path / "partner.pem"
    key_file.write_bytes(
        partner.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    docs = (Path(__file__).parents[1] / "docs" / "sdk.md").read_text()
    example = re.search(r"```python\n(.*?)```", docs, re.S)
    assert example is not None
    code = example.group(1)
    assert len(code.strip().splitlines()) <= 12
    code = code.replace("https://demo.bank131.ru", str(http.base_url)).replace(
        '"partner.pem"', repr(str(key_file))
    )
    exec(compile(code, "docs/sdk.md", "exec"), {})  # noqa: S102  # our own documentation
    printed = capsys.readouterr().out.split()
    assert printed[0].startswith("ps_")
    assert printed[1] == "in_progress"
    with bank.db.read() as conn:
        metadata = conn.execute(sa.select(t.sessions.c.metadata)).scalar_one()
    assert json.loads(metadata) == {"order": 42}
