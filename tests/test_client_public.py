"""The SDK's visible surface: its public names, its error tree, and that it ships alone."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import payout131.client
from payout131.client import errors

PRIVATE_PEM = (Path(__file__).parents[2] / "shared/fixtures/signing/private.pem").read_bytes()


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(payout131.client).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(payout131.client.__all__) == public
    assert len(payout131.client.__all__) == len(public)


def test_every_exception_is_exported_and_drawn_in_the_tree() -> None:
    assert set(errors.__all__) <= set(payout131.client.__all__)
    assert errors.__doc__ is not None
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.Bank131Error)
        assert f" {name} " in errors.__doc__, f"{name} is missing from the tree in errors.py"


def test_importing_the_sdk_imports_nothing_else_from_payout131() -> None:
    probe = (
        "import sys, payout131.client\n"
        "leaked = sorted(m for m in sys.modules\n"
        "                if m.startswith('payout131.') and not m.startswith('payout131.client'))\n"
        "print(leaked)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


METHODS = [
    "create_session",
    "start_payout",
    "init_payout",
    "confirm",
    "cancel",
    "status",
    "wallet_balance",
    "account_balance",
    "public_token",
    "tokenize",
    "token_info",
]


@pytest.mark.anyio
async def test_both_clients_have_every_method_with_its_signature_and_doc() -> None:
    options: dict[str, Any] = {"base_url": "http://b", "project": "p", "private_key": PRIVATE_PEM}
    async with payout131.client.AsyncClient(env={}, **options) as aio:
        with payout131.client.Client(env={}, **options) as sync:
            for name in METHODS:
                method, coroutine = getattr(sync, name), getattr(aio, name)
                assert method.__doc__
                assert method.__doc__ == coroutine.__doc__
                assert inspect.signature(method) == inspect.signature(coroutine)
                assert "self" not in inspect.signature(method).parameters
                assert not inspect.iscoroutinefunction(method)
                assert inspect.iscoroutinefunction(coroutine)
    unbound = inspect.signature(payout131.client.Client.status)
    assert list(unbound.parameters) == ["self", "session_id"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
