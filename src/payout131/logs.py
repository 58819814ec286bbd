"""Logs: what the bank did, one line per thing, for people on a terminal or for machines.

``configure`` sends every log line of the process (ours, uvicorn's, the libraries') through
one structlog formatter: readable key=value lines by default, one JSON object per line with
``PAYOUT131_LOG_FORMAT=json``. The lines a gateway's operators search by (docs/operations.md):

- ``request``: one per HTTP request (``server/request_log.py``);
- ``payout.moved`` / ``session.moved``: one per state change, with the move that made it
  (``init``, ``confirm``, ``succeed``, ``fail``, ``time_out``, ``refund`` …) and the error
  code, written only once the change is committed (``later``);
- ``webhook.delivered`` / ``webhook.failed`` (``status`` ``failed`` or ``dead``).

A line carries ids, codes, amounts and times, never an account or card number, a key, a
token or a signature (a test greps a whole run's logs for them).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from payout131.storage import after_commit

__all__ = ["FORMATS", "check_format", "configure", "get", "later"]

FORMATS = ("console", "json")
_lock = threading.Lock()


def check_format(value: str | None) -> str:
    """``PAYOUT131_LOG_FORMAT``: ``console`` (the default) or ``json``; else ValueError."""
    fmt = (value or "console").strip().lower()
    if fmt not in FORMATS:
        raise ValueError(f"PAYOUT131_LOG_FORMAT: {value!r} is not one of {', '.join(FORMATS)}")
    return fmt


def configure(
    level: str = "info", fmt: str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Send every log line of the process through one formatter; the format used (``fmt``,
    else ``PAYOUT131_LOG_FORMAT`` in ``env``)."""
    if fmt is None:
        fmt = (os.environ if env is None else env).get("PAYOUT131_LOG_FORMAT")
    fmt = check_format(fmt)
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # a plain traceback: Rich's would print each frame's local variables, and a
            # frame may hold a request body with a card number, or a signature
            exception_formatter=structlog.dev.plain_traceback,
        )
    with _lock:
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                *shared,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=shared,
                processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            )
        )
        root = logging.getLogger()
        root.handlers = [handler]
        root.setLevel(level.upper())
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # theirs go through ours
            logging.getLogger(name).handlers = []
            logging.getLogger(name).propagate = True
    return fmt


def _through_logging() -> None:
    """Until ``configure`` runs (a library use, the tests), lines go to the standard
    ``logging`` module like any library's: its levels and handlers decide."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


_through_logging()


def get(name: str) -> Any:
    """A structured logger: ``get("payout131.api").info("request", status=200, ...)``."""
    return structlog.stdlib.get_logger(name)


def later(conn: Connection, name: str, line: str, **fields: Any) -> None:
    """Log ``line`` (to logger ``name``) once the transaction of ``conn`` commits; never if
    it, or the savepoint the line was written in, rolls back (``storage/after_commit.py``)."""
    if not logging.getLogger(name).isEnabledFor(logging.INFO):
        return  # benchmarks: nothing is gathered at --log-level warning
    after_commit.later(conn, lambda: get(name).info(line, **fields))
