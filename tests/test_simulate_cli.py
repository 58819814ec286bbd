"""The magic-value table as the operator and the docs show it; rail settings and fee flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.cli import main
from payout131.client import signing
from payout131.protocol.cards import check_card_number
from payout131.rails import scenarios
from payout131.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "rails.md"


def run(*args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_outcomes_json_lists_every_row() -> None:
    rows = json.loads(run("simulate", "outcomes", "--json"))
    assert rows == scenarios.rows()
    codes = {r["error_code"] for r in rows}
    assert codes >= {
        None,
        "account_not_found",
        "operation_rejected",
        "provider_internal_error",
        "provider_timeout",
        "provider_exceeds_amount_limit",
    }
    for row in rows:
        assert {"amount", "status", "error_code", "refunded"} <= set(row)
        assert row["status"] in ("succeeded", "failed")
        assert isinstance(row["amount"], int)
        assert row["amount"] > 0
        assert scenarios.by_amount(row["amount"]).name == row["outcome"]
    assert [r["outcome"] for r in rows if r["refunded"]] == ["returned"]
    assert [r["outcome"] for r in rows if r["error_s"]] == ["error_then_success"]
    assert [r["outcome"] for r in rows if r["delay_s"]] == ["slow_success"]


def test_outcomes_table_is_the_one_in_the_docs() -> None:
    printed = run("simulate", "outcomes")
    assert printed == scenarios.markdown_table()
    doc = DOCS.read_text()
    begin = doc.index("-->", doc.index("<!-- outcomes:begin")) + len("-->\n")
    end = doc.index("<!-- outcomes:end -->")
    assert doc[begin:end] == printed, "regenerate the table in docs/rails.md"


def test_the_magic_phones_and_cards_are_the_ones_in_the_docs() -> None:
    printed = run("simulate", "outcomes", "--destinations")
    assert printed == scenarios.destinations_table()
    doc = DOCS.read_text()
    begin = doc.index("-->", doc.index("<!-- destinations:begin")) + len("-->\n")
    end = doc.index("<!-- destinations:end -->")
    assert doc[begin:end] == printed, "regenerate the magic phones and cards in docs/rails.md"
    rows = json.loads(run("simulate", "outcomes", "--destinations", "--json"))
    assert rows == scenarios.destination_rows()
    values = [(r["destination"], r["value"]) for r in rows]
    assert len(values) == len(set(values))
    assert [r["outcome"] for r in rows if r["status"] == "succeeded"] == ["verification_found"]
    for row in rows:  # each a valid destination
        number = row["value"]
        if number is None:  # a verification of every other phone
            continue
        if row["destination"] == "card":
            assert check_card_number("number", number) == number
        else:
            assert len(number) == 11
            assert number.startswith("7")
        assert scenarios.by_destination(row["destination"], number) is not None


def test_magic_values_are_distinct_two_digit_endings() -> None:
    endings = [s.kopecks for s in scenarios.SCENARIOS if s.kopecks is not None]
    assert len(endings) == len(set(endings))
    assert all(len(e) == 2 and e.isdigit() for e in endings)
    assert scenarios.by_amount(1_234_500).name == "success"
    assert scenarios.by_amount(1_234_501).name == "account_not_found"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PAYOUT131_RAIL", "swift", "PAYOUT131_RAIL: no rail 'swift'"),
        ("PAYOUT131_SIM_LATENCY_MS", "fast", "PAYOUT131_SIM_LATENCY_MS: not a whole number"),
        ("PAYOUT131_SIM_SPREAD_MS", "-5", "PAYOUT131_SIM_SPREAD_MS: out of its bounds"),
        ("PAYOUT131_RAIL_POLL_S", "0", "PAYOUT131_RAIL_POLL_S: out of its bounds"),
    ],
)
def test_bad_rail_settings_are_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({variable: value})
    assert message in run("simulate", "outcomes", env={variable: value}, code=1)


def test_rail_settings_from_env() -> None:
    assert Settings().rail == "simulator"
    settings = Settings.from_env(
        {
            "PAYOUT131_RAIL": "instant",
            "PAYOUT131_SIM_LATENCY_MS": "1500",
            "PAYOUT131_SIM_SPREAD_MS": "500",
            "PAYOUT131_RAIL_POLL_S": "2.5",
        }
    )
    assert (settings.rail, settings.sim_latency_ms, settings.sim_spread_ms) == (
        "instant",
        1500,
        500,
    )
    assert settings.rail_poll_s == 2.5


def test_project_fee_flags(
    tmp_path: Path, database_url: str, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    env = {"PAYOUT131_HOME": str(tmp_path / "home"), "PAYOUT131_DATABASE_URL": database_url}
    key = tmp_path / "partner.pem"
    key.write_bytes(signing.public_key_pem(partner_keys[0]))
    run("init", env=env)
    run("project", "add", "acme", "--public-key", str(key), "--fee-bps", "150", env=env)
    shown = json.loads(run("project", "show", "acme", env=env))
    assert (shown["fee_bps"], shown["fee_fixed"]) == (150, 0)
    run("project", "set", "acme", "--fee-fixed", "5", "--confirm-timeout", "30", env=env)
    shown = json.loads(run("project", "show", "acme", env=env))  # JSON: kopecks, as the API
    assert (shown["fee_bps"], shown["fee_fixed"], shown["confirm_timeout_s"]) == (150, 500, 1800)
    run("project", "set", "acme", "--fee-fixed", "1250", "--kopecks", env=env)
    assert json.loads(run("project", "show", "acme", env=env))["fee_fixed"] == 1250
    assert "--fee-fixed" in run("project", "set", "acme", "--fee-fixed", "5.001", env=env, code=2)
    assert "10000" in run("project", "set", "acme", "--fee-bps", "10001", env=env, code=2)
    assert "--fee-fixed" in run("project", "set", "acme", "--fee-fixed", "-1", env=env, code=2)
