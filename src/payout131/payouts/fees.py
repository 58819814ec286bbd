"""The bank's fee on a payout: a per-project share in basis points plus a fixed amount.

The fee is worked out when the payout starts and held together with the amount, so a
paying account that cannot cover both is refused at once (``insufficient_wallet_balance``);
it is posted to ``system:fees`` as its own ledger transaction when the payout succeeds and
released with the amount when it fails.
"""

from __future__ import annotations

__all__ = ["MAX_BPS", "check_fee", "payout_fee"]

MAX_BPS = 10_000  # 100 %


def payout_fee(amount: int, bps: int, fixed: int) -> int:
    """``fixed`` kopecks plus ``bps`` hundredths of a percent of ``amount``, half up."""
    return fixed + (amount * bps + 5_000) // 10_000


def check_fee(bps: int, fixed: int) -> None:
    """Refuse a fee setting outside 0–10000 basis points or below zero kopecks."""
    if not 0 <= bps <= MAX_BPS:
        raise ValueError(f"fee_bps: {bps} is not between 0 and {MAX_BPS} basis points")
    if fixed < 0:
        raise ValueError(f"fee_fixed: {fixed} kopecks is negative")
