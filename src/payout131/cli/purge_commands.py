"""``payout131 purge``: forget what is done, past its retention horizon.

What goes (the README's configuration table has the horizons and their variables): webhook
events delivered longer ago than ``PAYOUT131_RETAIN_DELIVERED`` (30 days) and dead ones
made longer ago than ``PAYOUT131_RETAIN_DEAD`` (90 days), each with its delivery attempts;
idempotency keys first used longer ago than ``PAYOUT131_RETAIN_KEYS`` (30 days, never
under a day), and the record of the calls that touched each session as long; public tokens
expired longer ago than ``PAYOUT131_RETAIN_PUBLIC_TOKENS`` (7 days). Sessions, payouts,
refunds and the ledger are records and are never purged; neither is anything still
waiting. Deletes go in batches, one short transaction each, so a running server is not held
up; run it from cron as often as you like.
"""

from __future__ import annotations

from collections.abc import Callable

import click
from sqlalchemy.engine import Connection

from payout131.cli.context import database, settings
from payout131.cli.params import IntRange
from payout131.clock import SystemClock
from payout131.payouts import call_record
from payout131.server import idempotency
from payout131.tokens import public_tokens
from payout131.webhooks import outbox

__all__ = ["purge"]

BATCH = 5_000


@click.command()
@click.option("--batch", type=IntRange(1, 100_000), default=BATCH, show_default=True)
def purge(batch: int) -> None:
    """Delete delivered and dead webhook events, old idempotency keys and expired public
    tokens past their retention horizons (PAYOUT131_RETAIN_*)."""
    conf = settings()
    now = SystemClock().now()

    def before(horizon_s: float) -> int:
        return now - round(horizon_s * 1_000_000)

    steps: dict[str, Callable[[Connection], int]] = {
        "webhook events": lambda conn: outbox.purge(
            conn, before(conf.retain_delivered_s), before(conf.retain_dead_s), batch
        ),
        "idempotency keys": lambda conn: idempotency.purge(conn, before(conf.retain_keys_s), batch),
        "recorded calls": lambda conn: call_record.purge(conn, before(conf.retain_keys_s), batch),
        "public tokens": lambda conn: public_tokens.purge(
            conn, before(conf.retain_public_tokens_s), batch
        ),
    }
    with database() as db:
        for what, step in steps.items():
            total = 0
            while True:
                with db.write() as conn:
                    done = step(conn)
                total += done
                if done < batch:
                    break
            click.echo(f"{what}: {total} purged")
