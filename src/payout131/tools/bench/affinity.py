"""Which CPUs the benchmark's processes run on (Linux ``sched_setaffinity``).

One server process runs its Python on one core at a time (the interpreter lock): its event
loop, its group commit and its worker take turns. Left to the scheduler, its threads
move between the cores and share each with PostgreSQL's backends and the load process,
and every hand-over of the lock may wait for a core. ``split`` gives the server the first
CPU it may use and everything else (PostgreSQL, the load process) the rest; ``pin`` moves
every thread of the given processes. Threads and processes started later inherit their
parent's set: a backend the postmaster forks, a thread the server starts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["Split", "describe", "pin", "split", "threads_of"]


class Split:
    """The server's CPUs and everybody else's."""

    __slots__ = ("others", "server")

    def __init__(self, server: frozenset[int], others: frozenset[int]) -> None:
        self.server, self.others = server, others

    def as_dict(self) -> dict[str, list[int]]:
        return {"server": sorted(self.server), "database_and_load": sorted(self.others)}


def describe(cpus: Mapping[str, list[int]]) -> str:
    """A split in words, from its ``as_dict`` form (the JSON's ``cpus``)."""
    server = ",".join(map(str, cpus["server"]))
    others = ",".join(map(str, cpus["database_and_load"]))
    return f"server on CPU {server}, database and load process on CPU {others}"


def split() -> Split | None:
    """The first CPU this process may use for the server, the rest for the others; None
    where it may use one CPU only (or the platform has no affinity)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return Split(frozenset(cpus[:1]), frozenset(cpus[1:]))


def pin(pids: Iterable[int], cpus: frozenset[int]) -> int:
    """Run every thread of each process on ``cpus``; the number of threads moved (a
    process or thread that ended meanwhile is skipped)."""
    moved = 0
    for pid in pids:
        for tid in threads_of(pid):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(tid, cpus)
                moved += 1
    return moved


def threads_of(pid: int) -> list[int]:
    """The thread ids of ``pid`` (empty if it has ended)."""
    try:
        return [int(tid) for tid in os.listdir(Path("/proc") / str(pid) / "task")]
    except OSError:
        return []
