"""The crash test's load: partners paying in both flows, retrying through every crash.

Each call carries an idempotency key and the projects are in ``replay`` mode, so a call whose
answer was lost when the server died is simply sent again: the server either runs it (it
never committed) or answers with the stored first response (it did). That is how a partner's
integration survives a crash, and it lets the harness learn every answer the server gave.
A call that gets no answer within ``give_up_s`` is recorded as in doubt.

Flows: single-request payouts (``session/init/payout[/rko]``), and two-step payouts (init,
or create then start) that the deciders confirm or cancel when the receiver hands them the
session's ``ready_to_confirm``. A fifth of the payouts go to a tokenized account
(docs/tokens.md), a tenth to a phone through Faster Payments and a tenth to a card
(PROTOCOL §9). The share of cancels and the amounts, some of which fail or linger at the
simulator rail (docs/rails.md), come from the seeded random generator.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.client import signing

__all__ = ["CARD", "Answer", "Load", "Partner", "pick_amount"]

# A person's account at T-Bank: valid, listed in the packaged BIK directory.
RECIPIENT = {
    "bik": "044525974",
    "account": "40817810400003869535",
    "full_name": "Иванов Иван Иванович",
    "description": "Выплата по договору № 5015553111. НДС не облагается",
}
PHONE = {"phone": "79161234567", "bank_id": "100000000004", "description": "Выплата по договору"}
CARD = "2200000000000004"
RETRYABLE = {500, 502, 503, 504}


def pick_amount(rng: random.Random) -> int:
    """Mostly ordinary amounts; some the rail refuses (``…02``), some it holds for an hour
    (``…11``), some it troubles for half an hour (``…21``)."""
    base = rng.randrange(10, 500) * 100
    roll = rng.random()
    if roll < 0.08:
        return base + 2
    if roll < 0.11:
        return base + 11
    if roll < 0.13:
        return base + 21
    return base


@dataclass(frozen=True, slots=True)
class Partner:
    project: str
    key: rsa.RSAPrivateKey
    account: str
    single_request: bool


@dataclass(frozen=True, slots=True)
class Answer:
    """The last answer to one keyed call, after its retries; ``status`` None: in doubt."""

    method: str
    project: str
    key: str
    body: dict[str, Any]
    status: int | None
    response: dict[str, Any] | None
    tries: int
    at: float = 0.0  # when the last answer came (wall clock, seconds)
    server: int = 0  # which of the load's servers gave it

    @property
    def code(self) -> str | None:
        if self.response is None or self.response.get("status") != "error":
            return None
        return str(self.response["error"]["code"])

    @property
    def session(self) -> dict[str, Any] | None:
        if self.status != 200 or self.response is None:
            return None
        session: dict[str, Any] | None = self.response.get("session")
        return session


@dataclass
class Load:
    urls: list[str]  # the servers; a call that gets no answer from one tries the next
    partners: dict[str, Partner]
    seed: int
    cancel_rate: float = 0.1
    give_up_s: float = 120.0
    answers: list[Answer] = field(default_factory=list)
    deciding: int = 0  # sessions taken from the receiver and not yet decided
    tokens: dict[str, str] = field(default_factory=dict)  # each partner's recipient token
    _numbers: dict[str, int] = field(default_factory=dict)

    def cancels(self, session_id: str) -> bool:
        """Whether the partner cancels this session: a function of the seed and the id."""
        draw = random.Random(f"{self.seed}:{session_id}")  # noqa: S311 (a test plan, not a secret)
        return draw.random() < self.cancel_rate

    def _key(self, prefix: str) -> str:
        n = self._numbers.get(prefix, 0) + 1
        self._numbers[prefix] = n
        return f"{prefix}-{n}"

    async def call(
        self,
        http: httpx.AsyncClient,
        partner: Partner,
        method: str,
        body: dict[str, Any],
        key: str,
        home: int = 0,
        *,
        stay: bool = False,
    ) -> Answer:
        """Post until answered (retrying lost answers and server errors), or give up. The
        first try goes to server ``home``, each retry to the next one, as a partner behind
        a load balancer would see it; or, with ``stay``, to ``home`` again."""
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-PARTNER-PROJECT": partner.project,
            "X-PARTNER-SIGN": signing.sign(partner.key, raw),
            "X-PARTNER-IDEMPOTENCY-KEY": key,
        }
        deadline = time.monotonic() + self.give_up_s
        tries, wait = 0, 0.05
        status: int | None = None
        response: dict[str, Any] | None = None
        server = home
        while time.monotonic() < deadline:
            server = (home + (0 if stay else tries)) % len(self.urls)
            tries += 1
            try:
                answer = await http.post(
                    f"{self.urls[server]}/api/v1/{method}", content=raw, headers=headers
                )
            except httpx.TransportError:
                pass
            else:
                status, response = answer.status_code, answer.json()
                if status not in RETRYABLE:
                    break
            await asyncio.sleep(wait)
            wait = min(wait * 2, 1.0)
        else:
            status = None  # no definite answer: in doubt
        done = Answer(
            method, partner.project, key, body, status, response, tries, time.time(), server
        )
        self.answers.append(done)
        return done

    async def tokenize(self) -> None:
        """Each partner tokenizes the recipient's account once: a share of the payouts go to
        the token, so their ``ready_to_confirm`` bodies are stored sealed by the vault."""
        async with httpx.AsyncClient(timeout=30) as http:
            for partner in self.partners.values():
                ask = {"bik": RECIPIENT["bik"], "account": RECIPIENT["account"]}
                body = {"type": "bank_account_ru", "bank_account_ru": ask}
                answer = await self.call(http, partner, "tokenize", body, "tokenize")
                if answer.status == 200 and answer.response is not None:
                    self.tokens[partner.project] = str(answer.response["token"])

    def payout_body(
        self, partner: Partner, rko: bool, key: str, rng: random.Random
    ) -> dict[str, Any]:
        ru = dict(RECIPIENT)
        token = self.tokens.get(partner.project)
        draw = rng.random()
        party: dict[str, Any] = {}
        if draw < 0.1:  # a phone, through Faster Payments
            system = {"system_type": "faster_payment_system", "faster_payment_system": PHONE}
            destination: dict[str, Any] = {"type": "bank_account", "bank_account": system}
            party["recipient"] = {"full_name": RECIPIENT["full_name"]}
        elif draw < 0.2:  # a card, by its number: sealed by the vault as the payout opens
            card = {"type": "bank_card", "bank_card": {"number": CARD}}
            destination = {"type": "card", "card": card}
            party["recipient"] = {"full_name": "Ivanov Ivan"}
        else:
            if token is not None and draw < 0.4:
                ru = {
                    "token": token,
                    "full_name": ru["full_name"],
                    "description": ru["description"],
                }
            system = {"system_type": "ru", "ru": ru}
            destination = {"type": "bank_account", "bank_account": system}
        body: dict[str, Any] = {
            "payment_method": destination,
            "amount_details": {"amount": pick_amount(rng), "currency": "rub"},
            "metadata": {"chaos": key},
        }
        if rko:
            party["sender"] = {"account": partner.account}
        if party:
            body["participant_details"] = party
        return body

    async def flow(self, partner: Partner, number: int, stop: asyncio.Event) -> None:
        """Start payouts one after another until ``stop``; two-step partners sometimes create
        the session first and start it in a second call. Each flow draws from its own
        generator, seeded by the run's seed and the flow's number."""
        rng = random.Random(f"{self.seed}:flow:{number}")  # noqa: S311 (a test plan)
        async with httpx.AsyncClient(timeout=30) as http:
            while not stop.is_set():
                rko = rng.random() < 0.5
                suffix = "/rko" if rko else ""
                key = self._key(f"{partner.project}-{number}")
                body = self.payout_body(partner, rko, key, rng)
                if partner.single_request or rng.random() < 0.7:
                    method = f"session/init/payout{suffix}"
                    await self.call(http, partner, method, body, key, number)
                    continue
                create = {"metadata": {"chaos": key}}
                created = await self.call(
                    http, partner, f"session/create{suffix}", create, key, number
                )
                if created.session is not None:
                    start = {"session_id": created.session["id"], **body}
                    method = f"session/start/payout{suffix}"
                    await self.call(http, partner, method, start, f"{key}-start", number)

    async def decide(self, ready: asyncio.Queue[tuple[str, str]]) -> None:
        """Confirm or cancel each session the receiver hands over, forever (cancel to stop).

        A ``ready_to_confirm`` delivered twice is decided twice, under the same key: the
        second call gets the first answer back.
        """
        async with httpx.AsyncClient(timeout=30) as http:
            decided = 0
            while True:
                project, session_id = await ready.get()
                self.deciding += 1
                try:
                    partner = self.partners[project]
                    method = "session/cancel" if self.cancels(session_id) else "session/confirm"
                    key = f"{method.rsplit('/', 1)[1]}-{session_id}"
                    body = {"session_id": session_id}
                    await self.call(http, partner, method, body, key, decided)
                    decided += 1
                finally:
                    self.deciding -= 1
