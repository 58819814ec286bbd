"""``payout131``: the operator's command line."""

from __future__ import annotations

from payout131.cli.main import main

__all__ = ["main"]
