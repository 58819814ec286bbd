"""``payout131 demo``: the seed flows end to end in a temporary home (``tools/demo/flows.py``)."""

from __future__ import annotations

import click

from payout131.client import Bank131Error

__all__ = ["demo"]


@click.command()
@click.option("--keep", is_flag=True, help="Keep the temporary home (database, keys, log).")
def demo(keep: bool) -> None:
    """Start a server on SQLite in a temporary home, register a demo partner with its own keys
    and webhook receiver, and walk through the seed flows: two-step with confirm, cancel,
    token, single request. Prints every request, webhook and balance; leaves nothing running.
    """
    from payout131.tools.demo.flows import (
        run_demo,  # here: it starts servers, the other commands do not
    )

    try:
        outcome = run_demo(click.echo, keep=keep)
    except (Bank131Error, RuntimeError) as exc:
        raise click.ClickException(f"the demo stopped: {exc}") from None
    failed = [flow for flow, result in outcome.flows.items() if result.startswith("failed")]
    if failed:
        raise click.ClickException(f"flows that did not end as expected: {', '.join(failed)}")
