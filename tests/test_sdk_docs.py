"""docs/sdk.md cannot rot: it names every SDK method and exception, every partner CLI
command and option, and the demo. (Its opening example is run against the server in
test_sdk_against_server.py.)"""

from __future__ import annotations

import inspect
from pathlib import Path

import click
import pytest

from payout131.cli import main
from payout131.client import Client, errors

DOCS = (Path(__file__).parents[1] / "docs" / "sdk.md").read_text()


def test_every_client_method_is_in_the_reference() -> None:
    methods = [
        name
        for name, _ in inspect.getmembers(Client, callable)
        if not name.startswith("_") and name not in ("close",)
    ]
    assert len(methods) >= 12
    for name in methods:
        assert f"`{name}(" in DOCS, f"docs/sdk.md does not document Client.{name}"


def test_every_exception_is_in_the_reference() -> None:
    for name in errors.__all__:
        assert f"{name} " in DOCS, f"docs/sdk.md does not show {name}"


def _partner_commands() -> list[click.Command]:
    group = main.get_command(click.Context(main), "partner")
    assert isinstance(group, click.Group)
    return [group, *group.commands.values()]


@pytest.mark.parametrize("command", _partner_commands(), ids=lambda c: c.name or "")
def test_every_partner_command_and_option_is_documented(command: click.Command) -> None:
    if command.name != "partner":
        assert f"payout131 partner {command.name}" in DOCS
    for param in command.params:
        if isinstance(param, click.Option):
            assert any(f"{flag} " in DOCS or f"{flag}`" in DOCS for flag in param.opts), (
                f"docs/sdk.md does not document {command.name} {param.opts[0]}"
            )
        else:
            assert param.human_readable_name in DOCS


def test_the_demo_is_documented() -> None:
    demo = main.get_command(click.Context(main), "demo")
    assert demo is not None
    assert "payout131 demo [--keep]" in DOCS
    assert [p.opts for p in demo.params] == [["--keep"]]
