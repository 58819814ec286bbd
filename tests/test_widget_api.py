"""The widget's HTTP side without a browser: its files, its demo page and its two calls."""

from __future__ import annotations

import re

import httpx
import sqlalchemy as sa

from banking import Onboard
from partner import Partner
from payout131.clock import ManualClock
from payout131.protocol.validation import PAYOUT_PREFIXES, generate_account
from payout131.runtime import Runtime
from payout131.storage import schema as t

BIK = "044525974"
ACCOUNT = generate_account(BIK, "40817810", sequence=5_550_001)


def public_token(partner: Partner) -> str:
    token: str = partner.ok("token", {"tokenize_widget": {"access": True}})["public_token"]
    return token


def submit(
    http: httpx.Client, token: str, account: str = ACCOUNT, bik: str = BIK
) -> httpx.Response:
    return http.post(
        "/widget/api/tokenize", json={"public_token": token, "bik": bik, "account": account}
    )


def test_files_are_served(http: httpx.Client) -> None:
    script = http.get("/widget/widget.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "Payout131Widget" in script.text
    style = http.get("/widget/widget.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    assert http.get("/widget/nothing.js").status_code == 404


def test_bank_lookup(http: httpx.Client, onboard: Onboard) -> None:
    token = public_token(onboard())
    found = http.get("/widget/api/bank", params={"bik": BIK, "public_token": token})
    assert found.status_code == 200
    bank = found.json()["bank"]
    assert bank["bik"] == BIK
    assert bank["name"]
    assert bank["refusal"] is None
    assert bank["account_prefixes"] == list(PAYOUT_PREFIXES)
    unknown = http.get("/widget/api/bank", params={"bik": "049999999", "public_token": token})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["reason"] == "bik_unknown"
    bad = http.get("/widget/api/bank", params={"bik": "0445", "public_token": token})
    assert bad.status_code == 400
    assert (
        bad.json()["error"]["description"] == "bik: '0445' is not a BIK (must be exactly 9 digits)"
    )


def test_bank_lookup_needs_a_usable_public_token(http: httpx.Client) -> None:
    missing = http.get("/widget/api/bank", params={"bik": BIK})
    assert missing.status_code == 401
    assert missing.json()["error"]["reason"] == "missing"
    unknown = http.get("/widget/api/bank", params={"bik": BIK, "public_token": "ab" * 32})
    assert unknown.status_code == 401
    assert unknown.json()["error"] == {
        "code": "authentication_error",
        "description": "public_token: unknown",
        "reason": "unknown",
    }


def test_tokenize_spends_the_public_token_once(
    bank: Runtime, http: httpx.Client, onboard: Onboard
) -> None:
    partner = onboard()
    token = public_token(partner)
    answer = submit(http, token)
    assert answer.status_code == 200, answer.text
    made = answer.json()
    assert re.fullmatch(r"[0-9a-f]{64}", made["token"])
    entry = bank.directory.get(BIK)
    assert entry is not None
    assert made == {
        "status": "ok",
        "token": made["token"],
        "masked_account": f"40817***{ACCOUNT[-4:]}",
        "bik": BIK,
        "bank_name": entry.name,
    }
    info = partner.ok(
        "token/info", {"type": "bank_account_ru", "bank_account_ru": {"token": made["token"]}}
    )
    assert info["info"]["masked_account"] == made["masked_account"]  # the partner's token

    again = submit(http, token)
    assert again.status_code == 401
    assert again.json()["error"]["reason"] == "spent"
    looked = http.get("/widget/api/bank", params={"bik": BIK, "public_token": token})
    assert looked.json()["error"]["reason"] == "spent"


def test_a_mistake_does_not_spend_the_public_token(
    bank: Runtime, http: httpx.Client, onboard: Onboard
) -> None:
    token = public_token(onboard())
    wrong_key = ACCOUNT[:-1] + str((int(ACCOUNT[-1]) + 1) % 10)
    refused = submit(http, token, wrong_key)
    assert refused.status_code == 400
    assert refused.json()["error"]["description"] == (
        f"account: {wrong_key} fails the control key for BIK {BIK}"
    )
    assert submit(http, token).status_code == 200
    with bank.db.read() as conn:
        used = conn.execute(sa.select(t.public_tokens.c.used_at)).scalar_one()
    assert used is not None


def test_the_card_form_tokenizes_a_card_once_and_a_mistake_spends_nothing(
    bank: Runtime, http: httpx.Client, onboard: Onboard
) -> None:
    partner = onboard()
    token = public_token(partner)
    for number, rule in (
        ("2200000000000005", "card_number: fails the Luhn check digit"),
        ("220000", "card_number: must be 14 to 19 digits"),
        (2200000000000004, "card_number: must be a string"),
        ("378282246310005", "card_number: a card of brand mir"),
    ):
        refused = http.post(
            "/widget/api/tokenize", json={"public_token": token, "card_number": number}
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["description"].startswith(rule)
    sent = {"public_token": token, "card_number": "2200 0000 0000 0004"}
    made = http.post("/widget/api/tokenize", json=sent).json()
    assert made == {
        "status": "ok",
        "token": made["token"],
        "brand": "mir",
        "last4": "0004",
        "bin": "220000",
    }
    info = partner.ok("token/info", {"type": "card", "card": {"token": made["token"]}})
    assert info["info"]["last4"] == "0004"
    again = http.post("/widget/api/tokenize", json=sent)
    assert again.status_code == 401
    assert again.json()["error"]["reason"] == "spent"
    with bank.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.card_tokens)).scalar() == 1


def test_a_public_token_expires_after_24_hours(
    http: httpx.Client, onboard: Onboard, clock: ManualClock
) -> None:
    partner = onboard()
    early, late = public_token(partner), public_token(partner)
    clock.advance(24 * 3600 - 1)
    assert submit(http, early).status_code == 200
    clock.advance(1)
    expired = submit(http, late)
    assert expired.status_code == 401
    assert expired.json()["error"]["reason"] == "expired"


def test_a_disabled_projects_public_token_is_refused(
    bank: Runtime, http: httpx.Client, onboard: Onboard
) -> None:
    token = public_token(onboard())
    with bank.db.write() as conn:
        conn.execute(sa.update(t.projects).values(disabled=True))
    refused = submit(http, token)
    assert refused.status_code == 401
    assert refused.json()["error"]["description"] == "public_token: its project is disabled"


def test_a_public_token_makes_tokens_for_its_own_project_only(
    http: httpx.Client, onboard: Onboard
) -> None:
    owner, other = onboard("acme"), onboard("globex")
    made = submit(http, public_token(owner)).json()["token"]
    ask = {"type": "bank_account_ru", "bank_account_ru": {"token": made}}
    other.error("token/info", ask, 404, "invalid_request")
    owner.ok("token/info", ask)


def test_bad_bodies_get_clear_errors(http: httpx.Client) -> None:
    for content in (b"not json", b"[1]", b"x" * 5000):
        response = http.post("/widget/api/tokenize", content=content)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_request"


def test_any_origin_may_call_the_widget_api(http: httpx.Client) -> None:
    preflight = http.options(
        "/widget/api/tokenize",
        headers={
            "Origin": "https://partner.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    answer = http.get(
        "/widget/api/bank", params={"bik": BIK}, headers={"Origin": "https://partner.example"}
    )
    assert answer.headers["access-control-allow-origin"] == "*"


def test_demo_page_uses_the_given_public_token(http: httpx.Client) -> None:
    page = http.get("/widget/demo", params={"public_token": "ab" * 32, "lang": "en"})
    assert page.status_code == 200
    assert f'data-public-token="{"ab" * 32}"' in page.text
    assert 'lang="en"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_demo_page_mints_a_public_token_for_the_demo_project(
    bank: Runtime, http: httpx.Client, onboard: Onboard
) -> None:
    none = http.get("/widget/demo")
    assert 'data-public-token=""' in none.text  # no demo project: the page explains
    onboard("demo")
    page = http.get("/widget/demo?public_token=<script>")
    minted = re.search(r'data-public-token="([0-9a-f]{64})"', page.text)
    assert minted is not None
    assert submit(http, minted.group(1)).status_code == 200
    with bank.db.read() as conn:
        owner = conn.execute(sa.select(t.account_tokens.c.project_id)).scalar_one()
    assert owner == "demo"
