"""The benchmark's CPU split: real processes moved with ``sched_setaffinity``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from payout131.tools.bench import affinity

CHILD = textwrap.dedent(
    """
    import sys, threading
    threading.Thread(target=threading.Event().wait, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.readline()  # then a thread started after the move
    later = threading.Thread(target=threading.Event().wait, daemon=True)
    later.start()
    print(later.native_id, flush=True)
    sys.stdin.readline()
    """
)

needs_two = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="the split needs two CPUs or more"
)


@needs_two
def test_the_server_gets_the_first_cpu_and_the_others_the_rest() -> None:
    allowed = os.sched_getaffinity(0)
    split = affinity.split()
    assert split is not None
    assert split.server == {min(allowed)}
    assert split.others == allowed - split.server
    assert split.as_dict() == {
        "server": [min(allowed)],
        "database_and_load": sorted(allowed - split.server),
    }
    others = ",".join(map(str, sorted(allowed - split.server)))
    assert affinity.describe(split.as_dict()) == (
        f"server on CPU {min(allowed)}, database and load process on CPU {others}"
    )


@needs_two
def test_pin_moves_every_thread_and_later_threads_follow() -> None:
    split = affinity.split()
    assert split is not None
    with subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            threads = affinity.threads_of(child.pid)
            assert len(threads) >= 2  # the main thread and the one it started
            assert affinity.pin([child.pid], split.server) == len(threads)
            assert all(os.sched_getaffinity(tid) == split.server for tid in threads)
            child.stdin.write("\n")
            child.stdin.flush()
            later = int(child.stdout.readline())
            assert later not in threads
            assert os.sched_getaffinity(later) == split.server
        finally:
            child.kill()
    assert affinity.threads_of(child.pid) == []  # gone: nothing to move
    assert affinity.pin([child.pid], split.others) == 0
