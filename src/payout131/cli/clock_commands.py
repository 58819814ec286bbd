"""``payout131 clock``: test clocks, time an operator or a partner's tests can move
(docs/sandbox.md). Sandbox mode only."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import click
from sqlalchemy.engine import Connection

from payout131.cli.clock_view import advance_options, echo_clock, one_target
from payout131.cli.context import settings, write
from payout131.sandbox import clocks
from payout131.sandbox.clocks import TestClock

if TYPE_CHECKING:
    from payout131.runtime import Runtime

__all__ = ["clock", "require_sandbox", "shown"]

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
WAIT_S = 7 * 24 * 3600.0  # how long ``advance`` waits at most (it fails sooner on a stuck step)


def require_sandbox() -> None:
    if settings().mode != "sandbox":
        raise click.ClickException(
            "test clocks and forced outcomes exist only in sandbox mode, and "
            "PAYOUT131_MODE is production"
        )


@click.group()
def clock() -> None:
    """Test clocks: a project bound to one runs all its time on it (docs/sandbox.md)."""


def _clock(conn: Connection, text: str) -> TestClock:
    try:
        return clocks.find(conn, text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="CLOCK_ID") from None
    except clocks.NoClock as exc:
        raise click.ClickException(str(exc)) from None


def shown(conn: Connection, found: TestClock) -> dict[str, Any]:
    return found.as_json(clocks.projects_of(conn, found.n), clocks.pending(conn, found.n))


def _print(data: dict[str, Any], as_json: bool) -> None:
    echo_clock(data, data if as_json else None)


@clock.command("create")
@click.argument("name")
@click.option(
    "--frozen-time",
    help="Where the clock starts (RFC 3339, e.g. 2027-01-01T09:00:00Z); default: now.",
)
@JSON_OPTION
def create(name: str, frozen_time: str | None, as_json: bool) -> None:
    """Make a test clock standing at --frozen-time (now by default)."""
    require_sandbox()
    try:
        start = None if frozen_time is None else clocks.parse_moment(frozen_time)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--frozen-time") from None
    with write() as (conn, now):
        try:
            made = clocks.create(conn, name, now if start is None else start, now)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="NAME") from None
        data = shown(conn, made)
    _print(data, as_json)


@clock.command("list")
@JSON_OPTION
def list_(as_json: bool) -> None:
    """Every test clock: its time, status and projects."""
    require_sandbox()
    with write() as (conn, _):
        found = [shown(conn, each) for each in clocks.list_all(conn)]
    if as_json:
        click.echo(json.dumps({"test_clocks": found}, ensure_ascii=False, indent=2))
        return
    for data in found:
        line = f"{data['id']}  {data['name']}  {data['frozen_time']}  {data['status']}"
        click.echo(f"{line}  projects: {', '.join(data['projects']) or 'none'}")


@clock.command("show")
@click.argument("clock_id")
@JSON_OPTION
def show(clock_id: str, as_json: bool) -> None:
    """A clock and what is due on it next, earliest first."""
    require_sandbox()
    with write() as (conn, _):
        data = shown(conn, _clock(conn, clock_id))
    _print(data, as_json)


@clock.command("delete")
@click.argument("clock_id")
@JSON_OPTION
def delete(clock_id: str, as_json: bool) -> None:
    """Delete a clock no project is bound to."""
    require_sandbox()
    with write() as (conn, _):
        found = _clock(conn, clock_id)
        try:
            clocks.delete(conn, found.n)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"id": found.id, "deleted": True}))
    else:
        click.echo(f"{found.id} deleted")


@clock.command("advance")
@click.argument("clock_id")
@advance_options
@click.option(
    "--no-wait",
    is_flag=True,
    help="Answer at once (status advancing); a running server finishes the advance.",
)
@JSON_OPTION
def advance(
    clock_id: str, by: str | None, to: str | None, next_step: bool, no_wait: bool, as_json: bool
) -> None:
    """Move a clock forward: every step due on the way runs, in time order, webhooks too.

    Without --no-wait the command runs the steps itself (beside any server doing the same)
    and returns when the clock is ready again, or failed with the reason.
    """
    require_sandbox()
    one_target(by, to, next_step)
    target: dict[str, Any] = {"next_step": next_step}
    try:
        if by is not None:
            target["by"] = clocks.parse_duration(by)
        elif to is not None:
            target["to"] = clocks.parse_moment(to)
    except ValueError as exc:
        hint = "--by" if by is not None else "--to"
        raise click.BadParameter(str(exc), param_hint=hint) from None
    from payout131.runtime import Runtime
    from payout131.sandbox.advance import Refused

    with write() as (conn, _):
        n = _clock(conn, clock_id).n
    bank = Runtime.open(settings())
    try:
        try:
            bank.advancer.request(n, **target)
        except Refused as exc:
            raise click.ClickException(str(exc)) from None
        if not no_wait:
            anyio.run(_advance, bank, n)
        with bank.db.read() as conn:
            data = shown(conn, clocks.get(conn, n))
    finally:
        bank.close()
    _print(data, as_json)
    if data["status"] == "failed":
        raise click.ClickException(f"{data['id']} failed: {data['failure']}")


async def _advance(bank: Runtime, n: int) -> None:
    """Run the clocks' worker and dispatcher while this process runs the advance."""
    wait: Callable[[], Any] = lambda: bank.advancer.wait(n, WAIT_S)  # noqa: E731
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(bank.clock_worker.run)
            tasks.start_soon(bank.clock_dispatcher.run)
            await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)
            tasks.cancel_scope.cancel()
    finally:  # Ctrl-C: the runner gives the clock up at once, a server finishes the advance
        bank.advancer.stopping.set()
