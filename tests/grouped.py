"""Calls queued behind one another so that the group commit runs them as one group."""

from __future__ import annotations

import threading
import time
from typing import Any

from payout131.storage.group_commit import Executor, GroupCommit


def in_one_group(group: GroupCommit, executor: Executor, items: list[Any]) -> list[Any]:
    """Each item's outcome, the items queued while a first job holds the group commit, so
    that they run as one group."""
    release, entered = threading.Event(), threading.Event()
    results: list[Any] = [None] * len(items)

    def hold(conn: Any) -> None:
        entered.set()
        release.wait(30)

    def call(i: int) -> None:
        try:
            results[i] = group.run(executor, items[i])
        except Exception as exc:  # noqa: BLE001 (the outcome under test)
            results[i] = exc

    holder = threading.Thread(target=group.call, args=(hold,))
    holder.start()
    assert entered.wait(30)
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(items))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while group.waiting < len(items):
        assert time.monotonic() < deadline, "the calls never queued"
        time.sleep(0.005)
    release.set()
    for thread in [holder, *threads]:
        thread.join(30)
    return results
