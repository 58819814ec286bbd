"""What processes cost, read from ``/proc``: CPU seconds and resident memory.

``Meter`` samples a set of processes (the server, a separate worker, PostgreSQL's
postmaster and every backend it forked) in a background thread while a phase runs: CPU is
the difference between the first and last sample, peak memory the largest resident set
seen (the sum over the processes of one group).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Meter", "Usage", "children", "cpu_seconds", "machine"]

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd on (after "comm")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` (and of its children it has waited for)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICK


def rss_bytes(pid: int) -> int:
    fields = _stat(pid)
    return 0 if fields is None else int(fields[21]) * _PAGE


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (PostgreSQL's backends are the postmaster's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_s: float
    peak_rss: int


class Meter:
    """Samples ``pids()`` every ``interval`` seconds between ``start()`` and ``stop()``."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.1) -> None:
        self._pids, self._interval = pids, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._peak = 0

    def _sample(self) -> None:
        total_rss = 0
        for pid in self._pids():
            cpu = cpu_seconds(pid)
            self._first.setdefault(pid, cpu)  # a process born mid-phase counts from birth
            self._last[pid] = cpu
            total_rss += rss_bytes(pid)
        self._peak = max(self._peak, total_rss)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def start(self) -> None:
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> Usage:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        cpu = sum(self._last[pid] - self._first[pid] for pid in self._last)
        return Usage(round(cpu, 3), self._peak)


def machine() -> dict[str, str | int | float]:
    """The facts a reader needs to compare figures: cores, CPU model, memory, kernel."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "nproc": os.cpu_count() or 0,
        "cpu": model,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "kernel": os.uname().release,
        "load_at_start": " ".join(load),
    }
