"""Settlement rails, selected by name in the settings (``PAYOUT131_RAIL``).

``simulator`` (the default, ``rails.simulator``) plays every outcome by the magic values in
``rails.scenarios``; ``instant`` pays everything at once and remembers nothing across
restarts. A real rail is
one more class with ``name``, ``submit`` and ``poll`` (see ``rails.base``) and one entry in
``RAILS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from payout131.rails.base import UNKNOWN, Order, Rail, State, Status
from payout131.rails.instant import InstantRail

if TYPE_CHECKING:  # the rails' names are read without loading the storage layer
    from payout131.clock import Clock
    from payout131.storage import Database

__all__ = [
    "RAILS",
    "UNKNOWN",
    "InstantRail",
    "Order",
    "Rail",
    "RailOptions",
    "State",
    "Status",
    "make_rail",
]


@dataclass(frozen=True, slots=True)
class RailOptions:
    """What a rail may be configured with (``PAYOUT131_SIM_*``: the simulator's latency)."""

    latency_ms: int = 0
    spread_ms: int = 0


def _simulator(options: RailOptions, db: Database, clock: Clock) -> Rail:
    from payout131.rails.simulator import SimulatorRail

    return SimulatorRail(db, clock, latency_ms=options.latency_ms, spread_ms=options.spread_ms)


def _instant(options: RailOptions, db: Database, clock: Clock) -> Rail:
    return InstantRail()


RAILS: dict[str, Callable[[RailOptions, Database, Clock], Rail]] = {
    "simulator": _simulator,
    "instant": _instant,
}


def make_rail(name: str, options: RailOptions, db: Database, clock: Clock) -> Rail:
    try:
        factory = RAILS[name]
    except KeyError:
        raise ValueError(
            f"unknown rail {name!r} (PAYOUT131_RAIL); choose one of {sorted(RAILS)}"
        ) from None
    return factory(options, db, clock)
