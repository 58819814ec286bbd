"""The bank: the composition root that holds the store, the clock, the keys and the rail."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.clock import Clock, SystemClock
from payout131.directory.bik import BikDirectory
from payout131.directory.store import load_directory
from payout131.projects import ProjectCache
from payout131.rails import Rail, RailOptions, make_rail
from payout131.settings import Settings
from payout131.storage import Database, migrate
from payout131.storage.group_commit import GroupCommit
from payout131.tokens.vault import Vault
from payout131.webhooks.bank_key import load_bank_key
from payout131.webhooks.dispatcher import Dispatcher
from payout131.work import Worker

__all__ = ["Runtime"]


@dataclass(eq=False)
class Runtime:
    """Everything a request or a background step needs, built once and handed down."""

    settings: Settings
    db: Database
    clock: Clock
    directory: BikDirectory
    private_key: rsa.RSAPrivateKey
    rail: Rail

    def __post_init__(self) -> None:
        self.projects = ProjectCache(self.db)
        self.worker = Worker(self)
        self.dispatcher = Dispatcher(self)  # webhooks
        self.vault = Vault(self.settings.vault_key_path, self.settings.vault_key)
        self.group_commit = GroupCommit(self.db)  # benchmarks: API writes share commits

    @classmethod
    def open(
        cls, settings: Settings, *, clock: Clock | None = None, rail: Rail | None = None
    ) -> Runtime:
        """Open the store (migrating it), load the keys and the BIK directory."""
        db = Database(settings.database, pool_size=settings.db_threads)
        migrate(db)
        with db.read() as conn:
            directory = load_directory(conn)
        clock = clock or SystemClock()
        return cls(
            settings=settings,
            db=db,
            clock=clock,
            directory=directory,
            private_key=load_bank_key(settings.bank_private_key_path),
            rail=rail or make_rail(settings.rail, _rail_options(settings), db, clock),
        )

    def close(self) -> None:
        self.group_commit.close()
        self.db.dispose()


def _rail_options(settings: Settings) -> RailOptions:
    return RailOptions(latency_ms=settings.sim_latency_ms, spread_ms=settings.sim_spread_ms)
