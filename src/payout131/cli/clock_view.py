"""A test clock on the command line, for the operator's ``clock`` and the partner's
``partner sandbox`` alike: the advance options and how a clock is printed (from its JSON
object, as the store renders it and the sandbox API answers it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["advance_options", "echo_clock", "one_target"]

F = TypeVar("F", bound=Callable[..., Any])


def advance_options(fn: F) -> F:
    """``--by``, ``--to`` and ``--next``: where an advance goes."""
    for option in reversed(
        [
            click.option("--by", help="How far: 90m, 1h, 3d, 1h30m (s, m, h, d)."),
            click.option("--to", "to", help="Where to: an RFC 3339 date-time after the clock's."),
            click.option("--next", "next_step", is_flag=True, help="To the next due step."),
        ]
    ):
        fn = option(fn)
    return fn


def one_target(by: str | None, to: str | None, next_step: bool) -> None:
    if sum(1 for given in (by, to, next_step) if given) != 1:
        raise click.UsageError("give one of --by, --to or --next")


def echo_clock(data: dict[str, Any], as_json: Any = None) -> None:
    """Print a clock's JSON object as lines, or ``as_json`` (the object, or the whole
    answer it came in) as JSON."""
    if as_json is not None:
        click.echo(json.dumps(as_json, ensure_ascii=False, indent=2))
        return
    line = f"{data['id']}  {data['name']}  {data['frozen_time']}  {data['status']}"
    if data.get("advancing_to"):
        line += f" to {data['advancing_to']}"
    click.echo(line)
    if data.get("failure"):
        click.echo(f"  failed: {data['failure']}")
    click.echo(f"  projects: {', '.join(data.get('projects', [])) or 'none'}")
    pending = data.get("pending", [])
    click.echo(f"  pending: {len(pending) or 'nothing'}")
    for item in pending:
        click.echo(f"    {item['at']}  {item['what']}")
