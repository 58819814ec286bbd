"""Client settings: arguments first, then PAYOUT131_* variables; clear errors; no secrets shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from payout131.client import AsyncClient, Client, ConfigurationError
from payout131.client.signing import load_private_key, load_public_key

FIXTURES = Path(__file__).parents[2] / "shared/fixtures/signing"
PRIVATE = FIXTURES / "private.pem"
PUBLIC = FIXTURES / "public.pem"
ENV = {
    "PAYOUT131_BASE_URL": "https://bank.example/prefix/",
    "PAYOUT131_PROJECT": "from-env",
    "PAYOUT131_PRIVATE_KEY": str(PRIVATE),
    "PAYOUT131_BANK_PUBLIC_KEY": str(PUBLIC),
}


def make(**options: Any) -> Client:
    options.setdefault("env", {})
    return Client(**options)


def test_everything_can_come_from_the_environment() -> None:
    with make(env=ENV) as sdk:
        settings = sdk.settings
    assert settings.base_url == "https://bank.example/prefix"
    assert settings.project == "from-env"
    assert settings.bank_public_key is not None
    assert settings.api_version == "v1"
    assert settings.max_retries == 3


def test_arguments_win_over_the_environment() -> None:
    with make(env=ENV, project="from-argument", api_version="v2") as sdk:
        assert sdk.settings.project == "from-argument"
        assert sdk.settings.api_version == "v2"


@pytest.mark.parametrize(
    ("argument", "variable"),
    [
        ("base_url", "PAYOUT131_BASE_URL"),
        ("project", "PAYOUT131_PROJECT"),
        ("private_key", "PAYOUT131_PRIVATE_KEY"),
    ],
)
def test_a_missing_setting_names_the_argument_and_the_variable(
    argument: str, variable: str
) -> None:
    env = {name: value for name, value in ENV.items() if name != variable}
    with pytest.raises(ConfigurationError) as caught:
        make(env=env)
    assert f"{argument}=" in str(caught.value)
    assert variable in str(caught.value)


def test_the_bank_key_is_optional_until_a_webhook_is_parsed() -> None:
    env = {name: value for name, value in ENV.items() if name != "PAYOUT131_BANK_PUBLIC_KEY"}
    with make(env=env) as sdk, pytest.raises(ConfigurationError) as caught:
        sdk.parse_webhook(b"{}", "c2ln")
    assert "bank_public_key=" in str(caught.value)
    assert "PAYOUT131_BANK_PUBLIC_KEY" in str(caught.value)


@pytest.mark.parametrize(
    "private_key",
    [
        PRIVATE.read_bytes(),
        PRIVATE.read_text(),
        PRIVATE,
        str(PRIVATE),
        load_private_key(PRIVATE.read_bytes()),
    ],
    ids=["pem-bytes", "pem-text", "path", "path-text", "loaded"],
)
def test_the_private_key_may_be_pem_a_path_or_a_loaded_key(private_key: Any) -> None:
    with make(base_url="http://x", project="p", private_key=private_key) as sdk:
        assert sdk.settings.private_key.key_size == 2048


def test_the_bank_key_may_be_pem_a_path_or_a_loaded_key() -> None:
    for key in (PUBLIC.read_bytes(), PUBLIC, load_public_key(PUBLIC.read_bytes())):
        with make(env=ENV, bank_public_key=key) as sdk:
            assert sdk.settings.bank_public_key is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"private_key": "/nowhere/key.pem"}, "private_key: cannot read /nowhere/key.pem"),
        ({"private_key": b"-----BEGIN PRIVATE KEY-----\nnope\n"}, "private_key: not a readable"),
        ({"private_key": PUBLIC.read_bytes()}, "private_key: not a readable"),
        ({"bank_public_key": PRIVATE.read_bytes()}, "bank_public_key: not a readable"),
        ({"api_version": "v3"}, "api_version must be 'v1' or 'v2'"),
        ({"base_url": "bank.example"}, "base_url must start with http"),
        ({"max_retries": -1}, "max_retries must be an int >= 0"),
    ],
)
def test_a_bad_setting_is_a_configuration_error_that_says_which(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make(env=ENV, **options)


def test_a_misspelt_setting_is_refused_not_ignored() -> None:
    with pytest.raises(TypeError, match="projct"):
        make(env=ENV, projct="typo")


def test_a_transport_and_an_http_client_exclude_each_other() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with httpx.Client() as http, pytest.raises(ConfigurationError, match="not both"):
        make(env=ENV, transport=transport, http_client=http)


def test_keys_never_appear_in_a_repr() -> None:
    private = load_private_key(PRIVATE.read_bytes())
    with make(env=ENV) as sdk:
        shown = repr(sdk) + repr(sdk.settings)
    assert "from-env" in shown
    assert "RSA" not in shown
    assert "BEGIN" not in shown
    assert str(private.private_numbers().d)[:20] not in shown


def test_a_caller_s_http_client_is_used_and_left_open() -> None:
    seen: list[str] = []

    def bank(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"status": "ok", "wallets": []})

    with httpx.Client(transport=httpx.MockTransport(bank)) as http:
        with make(env=ENV, http_client=http) as sdk:
            sdk.wallet_balance()
        assert not http.is_closed
    assert seen == ["https://bank.example/prefix/api/v1/wallet/balance"]


@pytest.mark.anyio
async def test_the_async_client_reads_the_same_settings() -> None:
    async with AsyncClient(env=ENV, api_version="v2") as sdk:
        assert sdk.settings.project == "from-env"
        assert repr(sdk).startswith("AsyncClient(")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
