"""Amounts on the command line: rubles with kopecks, everywhere the same.

Every command that takes an amount takes rubles (``1500``, ``1500.25`` or ``1500,25``),
or with ``--kopecks`` a whole number of kopecks (``150025``); every command that prints
one prints rubles with two decimals and the currency (``1500.25 RUB``).
"""

from __future__ import annotations

from typing import Any

import click

from payout131.cli.payout_sheet import format_rubles, parse_rubles
from payout131.protocol.validation import MAX_KOPECKS, whole_number

__all__ = ["KOPECKS_OPTION", "amount_in_kopecks", "show"]

KOPECKS_OPTION = click.option(
    "--kopecks", is_flag=True, help="AMOUNT is a whole number of kopecks (150025), not rubles."
)


def amount_in_kopecks(
    text: str, kopecks: bool, hint: str = "AMOUNT", highest: int = MAX_KOPECKS, zero: bool = False
) -> int:
    """``text`` as kopecks: rubles by default, kopecks with ``--kopecks``; one (or with
    ``zero``, nought) to ``highest`` (a usage error naming ``hint`` otherwise)."""
    if zero and text.strip() in ("0", "0.0", "0.00", "0,00"):
        return 0
    if kopecks:
        value = whole_number(text.strip(), 19)
        if value is None:
            raise click.BadParameter(f"{text!r} is not a whole number of kopecks", param_hint=hint)
    else:
        try:
            value = parse_rubles(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=hint) from None
    if not 0 < value <= highest:
        least = "0" if zero else "0.01"
        most = format_rubles(highest)
        raise click.BadParameter(f"{text!r}: from {least} to {most} rubles", param_hint=hint)
    return value


def show(kopecks: int, currency: Any = "rub") -> str:
    """``150025`` → ``1500.25 RUB``."""
    return f"{format_rubles(kopecks)} {str(currency).upper()}"
