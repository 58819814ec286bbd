"""Settlement rails, selected by name in the settings."""

from __future__ import annotations

from payout131.rails.base import Outcome, Rail, RailPayout
from payout131.rails.instant import InstantRail

__all__ = ["RAILS", "InstantRail", "Outcome", "Rail", "RailPayout", "make_rail"]

RAILS = {"instant": InstantRail}


def make_rail(name: str) -> Rail:
    try:
        return RAILS[name]()
    except KeyError:
        raise ValueError(f"unknown rail {name!r}; choose one of {sorted(RAILS)}") from None
