"""Property tests: arbitrary bytes, JSON, headers and signatures at every method, over HTTP.

Whatever arrives, the answer is the Bank 131 error envelope or a success, never a 500 or a
traceback, and a refused request writes nothing (``snapshot`` before and after). Bodies are
signed correctly unless the signature is what is being fuzzed, so the inputs reach parsing,
validation and the state machine. ``PAYOUT131_FULL=1`` tries many more inputs.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from banking import Onboard
from partner import Partner, payout_body
from payout131.client import signing
from payout131.protocol import methods as api
from payout131.runtime import Runtime
from snapshot import snapshot

FULL = os.environ.get("PAYOUT131_FULL") == "1"
FUZZ = settings(
    max_examples=2000 if FULL else 40,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
pytestmark = pytest.mark.timeout(0 if FULL else 300)
PATHS = [
    f"/api/{version}/{name}" for name, m in sorted(api.METHODS.items()) for version in m.versions
]
ERROR_STATUSES = {400, 401, 403, 404}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# Header values a client can send: visible ASCII and Latin-1, inner blanks; never CR or LF.
header_text = st.text(
    st.characters(codec="latin-1", exclude_characters="\r\n\x00\x7f", min_codepoint=0x20),
    max_size=80,
).map(str.strip)
header_names = [
    "X-PARTNER-PROJECT",
    "X-PARTNER-SIGN",
    "X-PARTNER-IDEMPOTENCY-KEY",
    "X-PARTNER-SUBMERCHANT",
    "Content-Type",
]


@dataclass(frozen=True)
class Target:
    """The fuzzed partner, with a session just created and one waiting for its confirm."""

    partner: Partner
    created: str
    pending: str


@pytest.fixture
def target(bank: Runtime, onboard: Onboard) -> Target:
    partner = onboard("fuzz", wallet=10_000_000, account=10_000_000)
    created = partner.ok("session/create", {})["session"]["id"]
    pending = partner.ok("session/init/payout", payout_body(1_000))["session"]["id"]
    bank.worker.drain()
    return Target(partner, created, pending)


class Probe:
    """Post, check the answer's shape, and check that a refusal wrote nothing."""

    def __init__(self, bank: Runtime, http: httpx.Client) -> None:
        self.bank, self.http = bank, http
        self.statuses: Counter[int] = Counter()

    def post(self, path: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
        before = snapshot(self.bank)
        sent = {name: value.encode("latin-1") for name, value in headers.items()}
        response = self.http.post(path, content=raw, headers=sent)
        self.statuses[response.status_code] += 1
        assert "server" not in response.headers
        assert b"Traceback" not in response.content
        body = response.json()
        if response.status_code == 200:
            assert body["status"] == "ok", body
        else:
            assert response.status_code in ERROR_STATUSES, response.text
            assert body["status"] == "error"
            assert set(body["error"]) >= {"code", "description"}
            assert snapshot(self.bank) == before, response.text
        return response


def same_signature(given: str, good: str) -> bool:
    try:
        return base64.b64decode(given, validate=True) == base64.b64decode(good)
    except ValueError:
        return False


def signed_headers(partner: Partner, raw: bytes) -> dict[str, str]:
    return {"X-PARTNER-PROJECT": partner.project, "X-PARTNER-SIGN": signing.sign(partner.key, raw)}


def test_arbitrary_bytes_signed(bank: Runtime, http: httpx.Client, target: Target) -> None:
    partner = target.partner
    probe = Probe(bank, http)

    @FUZZ
    @given(path=st.sampled_from(PATHS), raw=st.binary(max_size=300))
    def run(path: str, raw: bytes) -> None:
        probe.post(path, raw, signed_headers(partner, raw))

    run()
    assert probe.statuses[400] > 0


def test_arbitrary_json_signed(bank: Runtime, http: httpx.Client, target: Target) -> None:
    partner = target.partner
    probe = Probe(bank, http)
    keys = st.sampled_from(
        ["session_id", "amount_details", "payment_method", "payout_details", "metadata",
         "participant_details", "customer", "confirm_information", "request_datetime",
         "account_number", "type", "bank_account_ru", "tokenize_widget"]
    )  # fmt: skip

    @FUZZ
    @given(
        path=st.sampled_from(PATHS),
        value=json_values | st.dictionaries(keys, json_values, max_size=5),
    )
    def run(path: str, value: Any) -> None:
        raw = json.dumps(value).encode()
        probe.post(path, raw, signed_headers(partner, raw))

    run()


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] + [path]
    return [path]


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    return {**value, path[0]: _replace(value[path[0]], path[1:], new)}


def test_valid_payouts_with_one_field_mutated(
    bank: Runtime, http: httpx.Client, target: Target
) -> None:
    """A good payout body with one field (at any depth) replaced by an arbitrary value."""
    partner = target.partner
    probe = Probe(bank, http)
    assert partner.account is not None
    bodies = {
        "session/init/payout": payout_body(1_000),
        "session/init/payout/rko": partner.rko_body(1_000),
        "session/start/payout": {"session_id": target.created, **payout_body(1_000)},
        "session/confirm": {"session_id": target.pending},
        "session/cancel": {"session_id": target.pending},
        "report/account_balance": {"account_number": partner.account},
    }
    cases = [(name, body, path) for name, body in bodies.items() for path in _leaves(body)]

    @FUZZ
    @given(
        case=st.sampled_from(cases),
        version=st.sampled_from(["v1", "v2"]),
        new=json_values,
    )
    def run(case: tuple[str, dict[str, Any], tuple[Any, ...]], version: str, new: Any) -> None:
        name, body, path = case
        if version not in api.METHODS[name].versions:
            version = "v1"
        raw = json.dumps(_replace(body, path, new)).encode()
        probe.post(f"/api/{version}/{name}", raw, signed_headers(partner, raw))

    run()


def test_arbitrary_headers_and_signatures(
    bank: Runtime, http: httpx.Client, target: Target
) -> None:
    partner = target.partner
    probe = Probe(bank, http)
    raw = json.dumps(payout_body(1_000)).encode()
    good = signing.sign(partner.key, raw)
    signatures = st.one_of(
        header_text,
        st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
        st.integers(0, len(good)).map(lambda n: good[:n]),
        st.integers(0, len(good) - 1).map(lambda n: good[:n] + "A" + good[n + 1 :]),
    )

    @FUZZ
    @given(
        path=st.sampled_from(PATHS),
        signature=signatures,
        extra=st.dictionaries(st.sampled_from(header_names), header_text, max_size=3),
    )
    def run(path: str, signature: str, extra: dict[str, str]) -> None:
        headers = {"X-PARTNER-PROJECT": partner.project, "X-PARTNER-SIGN": signature, **extra}
        response = probe.post(path, raw, headers)
        if not same_signature(headers["X-PARTNER-SIGN"], good):
            assert response.status_code == 401, response.text

    run()
