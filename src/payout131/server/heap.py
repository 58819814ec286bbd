"""The garbage collector of a long-running process (``serve``, ``worker``).

Python's full collection walks every object the process holds. Most of them are made at
start (modules, table metadata, statement caches, keys) and live as long as the process,
yet a full collection under load walks them all: tens of milliseconds with the event loop
and every group commit stopped, which is what an unlucky request's latency shows. Once the
process is ready, ``settle()`` moves what exists into the collector's permanent
generation, so later collections only look at what was made after.
"""

from __future__ import annotations

import gc

__all__ = ["settle"]


def settle() -> None:
    """Collect once, then keep everything alive now out of later collections."""
    gc.collect()
    gc.freeze()
