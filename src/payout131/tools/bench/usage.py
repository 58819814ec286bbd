"""What processes cost, read from ``/proc``: CPU seconds and resident memory.

``Meter`` samples a set of processes (the server, a separate worker, PostgreSQL's
postmaster and every backend it forked) in a background thread while a phase runs: CPU is
the difference between the first and last sample, peak memory the largest resident set
seen (the sum over the processes of one group). ``tree_cpu_seconds`` reads a process and
all its children at once, those that have ended included (for ``pgbench``'s backends, born
and gone within the storage ceiling), and ``machine_cpu`` what the kernel counted on each
CPU, for the share of the machine a phase kept busy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Meter",
    "Usage",
    "busy_share",
    "children",
    "cpu_seconds",
    "machine",
    "machine_cpu",
    "tree_cpu_seconds",
]

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


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and of every child it has had: the live ones read one by one, the
    ended ones through the parent's times of the children it has reaped."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children(pid))


def machine_cpu() -> tuple[float, float]:
    """(busy, available) CPU seconds the kernel has counted since boot on the CPUs this
    process may run on (``/proc/stat``). Busy is user, nice, system, irq and softirq time;
    available adds idle and iowait, but not the time the host stole."""
    allowed = {f"cpu{n}" for n in os.sched_getaffinity(0)}
    busy = available = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name not in allowed:
            continue
        user, nice, system, idle, iowait, irq, softirq = (int(f) for f in fields[:7])
        work = user + nice + system + irq + softirq
        busy += work
        available += work + idle + iowait
    return busy / _TICK, available / _TICK


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The share of the available CPU time between two ``machine_cpu`` readings that was busy."""
    available = after[1] - before[1]
    return round((after[0] - before[0]) / available, 3) if available > 0 else 0.0


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
