"""``payout131 demo``: the whole system in a minute, in a temporary home, then gone.

The stage: a data directory made like ``payout131 init`` does; a demo partner (its own RSA
key, a funded wallet and settlement account, a webhook URL); ``payout131 serve`` on SQLite
as a subprocess on a free loopback port; and the partner's webhook receiver (the SDK's
``WebhookReceiver``) on another loopback port. The partner then plays the seed flows through
the SDK, and every request, answer, webhook and balance is printed:

1. two-step with confirm: create and start a payout from the settlement account, wait for
   ``ready_to_confirm``, confirm with its ``confirm_information``, wait for the outcome;
2. cancel: a payout from the wallet, cancelled when it is ready to confirm;
3. token: tokenize an account, then pay the token (skipped, with a note, if the server
   answers that tokenize is not supported);
4. single request: one ``session/init/payout`` call for a second project of the partner that
   is set up for single-request payouts; no confirm step.

Each wait is for the webhook; should none arrive (a server without webhook delivery), the
demo follows ``session/status`` instead and says so. Whatever happens, the server and the
receiver are stopped and the temporary home removed before the demo returns.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131 import projects
from payout131.cli.money import show
from payout131.cli.setup import initialise
from payout131.client import (
    Amount,
    Bank131Error,
    BankAccount,
    Client,
    Event,
    ReadyToConfirm,
    Sender,
    Session,
    TokenizedAccount,
    WebhookReceiver,
    signing,
)
from payout131.clock import SystemClock
from payout131.ledger import accounts, book
from payout131.settings import Settings
from payout131.storage import Database

__all__ = ["Outcome", "run_demo"]

Echo = Callable[[str], None]
TWO_STEP, INSTANT = "demo", "demo-instant"
FUNDS = 100_000_000  # one million rubles, in kopecks, in the wallet and in the account
WAIT_S = 20.0  # for each webhook before following session/status instead
PERSON = BankAccount(
    bik="044525974",
    account="40817810400003869535",
    full_name="Иванов Иван Иванович",
    description="Выплата по договору № 5015553111. НДС не облагается",
)
COMPANY = BankAccount(
    bik="044525974",
    account="40702810500000000001",
    full_name='ООО "Вектор"',
    description="Оплата по договору № 12 за декабрь 2025. НДС не облагается",
    inn="7707083893",
    kpp="773601001",
)
QUIET = ("wallet/balance", "report/account_balance")  # shown as one "balance:" line instead
SERVE = "import sys; from payout131.cli import main; sys.exit(main())"


@dataclass
class Outcome:
    """What each flow ended with: flow name → outcome (``succeeded``, ``skipped: …``)."""

    flows: dict[str, str] = field(default_factory=dict)
    server_pid: int | None = None
    home: Path | None = None


def run_demo(echo: Echo, *, keep: bool = False) -> Outcome:
    """Set the stage, play the flows, tear everything down; return each flow's outcome."""
    outcome = Outcome()
    home = Path(tempfile.mkdtemp(prefix="payout131-demo-"))
    outcome.home = home
    echo(f"home: {home} (temporary)")
    try:
        initialise(Settings(home=home), demo=False)  # what `payout131 init` does
        with _receiver(home / "bank-public.pem", echo) as (inbox, webhook_url):
            key, account = _register(home, webhook_url, echo)
            with _server(home, echo) as (base_url, pid):
                outcome.server_pid = pid
                with _client(base_url, home, key, TWO_STEP, echo) as bank:
                    demo = Walkthrough(bank, inbox, echo, account)
                    outcome.flows["two-step with confirm"] = demo.two_step()
                    outcome.flows["cancel"] = demo.cancel()
                    outcome.flows["token"] = demo.token()
                with _client(base_url, home, key, INSTANT, echo) as bank:
                    instant = Walkthrough(bank, inbox, echo, None)
                    outcome.flows["single request"] = instant.single_request()
                inbox.show(echo)
    finally:
        if keep:
            echo(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
            echo(f"removed {home}")
    echo("")
    echo("outcomes:")
    for flow, result in outcome.flows.items():
        echo(f"  {flow}: {result}")
    return outcome


# -- the stage --------------------------------------------------------------------------------


def _register(home: Path, webhook_url: str, echo: Echo) -> tuple[rsa.RSAPrivateKey, str]:
    """The demo partner: its key, two projects, funds; returns the key and its account."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (home / "partner-private.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pem = signing.public_key_pem(key).decode()
    db = Database(Settings(home=home).database)
    try:
        now = SystemClock().now()
        with db.write() as conn:
            ids = {"legal_name": 'ООО "Демо"', "inn": "7707083893", "kpp": "773601001"}
            for project, single in ((TWO_STEP, False), (INSTANT, True)):
                projects.add_project(
                    conn, project, pem, now, webhook_url=webhook_url, single_request=single, **ids
                )
                book.topup_wallet(conn, project, FUNDS, now)
            number = accounts.open_settlement_account(conn, TWO_STEP, now)
            account = accounts.account_id(conn, number)
            assert account is not None
            book.topup(conn, account, FUNDS, now)
    finally:
        db.dispose()
    echo(
        f"partner: projects {TWO_STEP!r} (two-step) and {INSTANT!r} (single request), one RSA "
        f"key, webhooks to {webhook_url}; wallets and account {number} funded with "
        f"{show(FUNDS)} each"
    )
    return key, number


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def _server(home: Path, echo: Echo) -> Iterator[tuple[str, int]]:
    """``payout131 serve`` on SQLite in ``home``, on a free loopback port; stopped on exit."""
    with _free_socket() as probe:
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUT131_")}
    env |= {"PAYOUT131_HOME": str(home), "PAYOUT131_WEBHOOK_POLL": "0.2"}
    log = (home / "serve.log").open("wb")
    command = [sys.executable, "-c", SERVE, "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, process, home / "serve.log")
        echo(f"server: payout131 serve on {url} (pid {process.pid}, SQLite in the home)")
        yield url, process.pid
    finally:
        _stop(process)
        log.close()
        echo(f"stopped the server (pid {process.pid})")


def _wait_for_health(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"payout131 serve exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("payout131 serve did not answer /health within 60 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _receiver(bank_key: Path, echo: Echo) -> Iterator[tuple[Inbox, str]]:
    """The partner's webhook receiver on loopback, verifying with the bank's public key."""
    inbox = Inbox()
    handlers = dict.fromkeys(
        ("ready_to_confirm", "payment_finished", "payment_refunded"), inbox.put
    )
    receiver = WebhookReceiver(bank_key.read_bytes(), handlers)
    sock = _free_socket()
    config = uvicorn.Config(receiver, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/webhooks/bank131"
    echo(f"webhook receiver: {url} (the SDK's WebhookReceiver)")
    try:
        yield inbox, url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        echo("stopped the webhook receiver")


class Inbox:
    """Webhooks as the receiver handed them over, shown in the order they came."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._shown = 0
        self._arrived = threading.Condition()

    def put(self, event: Event) -> None:
        with self._arrived:
            self._events.append(event)
            self._arrived.notify_all()

    def show(self, echo: Echo) -> None:
        with self._arrived:
            fresh, self._shown = self._events[self._shown :], len(self._events)
        for event in fresh:
            echo(f"  ⇐ webhook {event.type}: {_describe_event(event)}")

    def wait(self, session_id: str, kind: str, timeout: float, echo: Echo) -> Event | None:
        deadline = time.monotonic() + timeout
        while True:
            self.show(echo)
            with self._arrived:
                for event in self._events:
                    if event.type == kind and event.session and event.session.id == session_id:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._arrived.wait(min(left, 0.5))


# -- the partner ------------------------------------------------------------------------------


@contextmanager
def _client(
    base_url: str, home: Path, key: rsa.RSAPrivateKey, project: str, echo: Echo
) -> Iterator[Client]:
    """The SDK's ``Client``, its every request and answer printed."""

    def request(req: httpx.Request) -> None:
        path = req.url.path.removeprefix("/api/")
        if not path.endswith(QUIET):
            echo(f"  → {project} {path} {_short(req.content.decode())}")

    def response(resp: httpx.Response) -> None:
        resp.read()
        if not resp.request.url.path.endswith(QUIET):
            echo(f"  ← {resp.status_code} {_describe_answer(resp.content)}")

    http = httpx.Client(event_hooks={"request": [request], "response": [response]})
    client = Client(
        base_url=base_url,
        project=project,
        private_key=key,
        bank_public_key=(home / "bank-public.pem").read_bytes(),
        http_client=http,
        max_retries=1,
    )
    try:
        yield client
    finally:
        client.close()
        http.close()


class Walkthrough:
    """The seed flows, as a partner's code would run them."""

    def __init__(self, bank: Client, inbox: Inbox, echo: Echo, account: str | None) -> None:
        self.bank, self.inbox, self.echo, self.account = bank, inbox, echo, account

    def two_step(self) -> str:
        self._title("1. two-step with confirm, from the settlement account")
        assert self.account is not None
        session = self.bank.create_session(rko=True, metadata={"demo": "two-step"})
        session = self.bank.start_payout(
            session.id,
            rko=True,
            destination=COMPANY,
            amount=Amount(150_000),
            sender=Sender(self.account),
        )
        ready = self._wait(session.id, "ready_to_confirm")
        info = ready.confirm_information if isinstance(ready, ReadyToConfirm) else None
        self.bank.confirm(session.id, info)
        return self._finish(session.id)

    def cancel(self) -> str:
        self._title("2. cancel, from the wallet")
        session = self.bank.init_payout(destination=PERSON, amount=Amount(50_000))
        self._balances()
        self._wait(session.id, "ready_to_confirm")
        self.bank.cancel(session.id)
        return self._finish(session.id)

    def token(self) -> str:
        self._title("3. token: tokenize an account, then pay the token")
        try:
            made = self.bank.tokenize(PERSON.bik, PERSON.account)
        except Bank131Error as exc:
            note = f"skipped: tokenize is not available here ({exc.code}: {exc.description})"
            self.echo(f"  {note}")
            return note
        self.bank.token_info(made.token)
        account = TokenizedAccount(made.token, PERSON.full_name, PERSON.description)
        session = self.bank.init_payout(destination=account, amount=Amount(75_000))
        self._wait(session.id, "ready_to_confirm")
        self.bank.confirm(session.id)
        return self._finish(session.id)

    def single_request(self) -> str:
        self._title("4. single request: one call, no confirm step (project demo-instant)")
        session = self.bank.init_payout(destination=PERSON, amount=Amount(25_000))
        return self._finish(session.id)

    def _title(self, text: str) -> None:
        self.echo("")
        self.echo(text)

    def _wait(self, session_id: str, kind: str) -> Event | None:
        event = self.inbox.wait(session_id, kind, WAIT_S, self.echo)
        if event is None:
            self.echo(f"  (no {kind} webhook within {WAIT_S:.0f} s: following session/status)")
            self._follow(session_id, kind)
        return event

    def _follow(self, session_id: str, kind: str) -> Session:
        """Poll ``session/status`` until it shows what the ``kind`` webhook would announce."""
        deadline = time.monotonic() + WAIT_S
        while True:
            session = self.bank.status(session_id)
            payout = session.payouts[0] if session.payouts else None
            done = payout is not None and payout.status in ("succeeded", "failed")
            if (kind == "ready_to_confirm" and session.next_action == "confirm") or done:
                return session
            if time.monotonic() > deadline:
                raise RuntimeError(f"{session_id} did not reach {kind} in {WAIT_S:.0f} s")
            time.sleep(0.5)

    def _finish(self, session_id: str) -> str:
        event = self._wait(session_id, "payment_finished")
        session = event.session if event is not None and event.session else None
        if session is None:
            session = self.bank.status(session_id)
        payout = session.payouts[0] if session.payouts else None
        self._balances()
        if session.status == "cancelled" and payout and payout.error:
            return f"cancelled ({payout.error.code})"
        return payout.status if payout else session.status

    def _balances(self) -> None:
        wallet = self.bank.wallet_balance().wallets[0].amount_details.amount
        line = f"  balance: wallet {show(wallet)}"
        if self.account:
            held = self.bank.account_balance(self.account)
            line += f"; account {self.account} {show(held.current_balance)}"
        self.echo(line)


# -- printing ---------------------------------------------------------------------------------


def _short(text: str, limit: int = 150) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe_session(session: dict[str, Any]) -> str:
    payouts = session.get("payments") or session.get("payout_list") or []
    text = f"{session.get('id')} {session.get('status')}"
    for payout in payouts:
        text += f", payout {payout.get('status')}"
        error = payout.get("error")
        if error:
            text += f" ({error.get('code')})"
    if session.get("next_action"):
        text += f", next_action {session['next_action']}"
    return text


def _describe_answer(content: bytes) -> str:
    try:
        body = json.loads(content)
    except ValueError:
        return _short(content.decode("utf-8", "replace"))
    if isinstance(body, dict) and isinstance(body.get("session"), dict):
        return _describe_session(body["session"])
    return _short(json.dumps(body, ensure_ascii=False))


def _describe_event(event: Event) -> str:
    text = _describe_session(event.session.raw) if event.session else ""
    if isinstance(event, ReadyToConfirm) and event.confirm_information is not None:
        details = event.confirm_information.account_details
        text += (
            f"; confirm_information: {details.sender.account_number} → "
            f"{details.recipient.account_number} ({details.recipient.bank_name})"
        )
    return text
