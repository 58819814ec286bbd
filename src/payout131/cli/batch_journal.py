"""The batch journal: what each row of a payout sheet has reached, kept next to the results.

One JSON object per line, appended and flushed as each step happens, so it survives the
process being killed at any moment (an operating-system crash may lose the last lines; the
rows' idempotency keys still stop a second payout then)::

    {"journal": "payout131-batch", "version": 1, "file_sha256": "…", "project": "acme", …}
    {"row": 7, "session": "ps_12"}       the row's session exists (no money moves yet)
    {"row": 7, "started": true}          its payout was started (or was found started)
    {"row": 7, "rejected": {"code": "insufficient_wallet_balance", "description": "…"}}
    {"row": 7, "outcome": "succeeded"}   the payout's final status (also "failed" + error)

A row's session is written *before* its payout is started: whatever was interrupted, the
next run finds the session and asks ``session/status`` rather than paying again. The journal
belongs to one file (by SHA-256) and one project; another file or project is refused.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

__all__ = ["Journal", "JournalError", "RowState"]

MAGIC = "payout131-batch"
VERSION = 1


class JournalError(ValueError):
    """The journal cannot be used for this run (another file, another project, unreadable)."""


@dataclass(frozen=True, slots=True)
class RowState:
    session: str | None = None
    started: bool = False
    rejected: dict[str, str] | None = None  # the bank refused the start; no money moved
    outcome: str | None = None  # succeeded, failed; or pending (left for confirmation)
    error: dict[str, str] | None = None

    @property
    def final(self) -> bool:
        return self.outcome in ("succeeded", "failed")


class Journal:
    """Row states, replayed from the file at open and appended to as they change."""

    def __init__(self, path: Path, header: dict[str, Any], rows: dict[int, RowState]) -> None:
        self.path, self.header = path, header
        self._rows = rows
        self._lock = threading.Lock()
        self._file: TextIO | None = None

    @classmethod
    def open(cls, path: Path, file_sha256: str, project: str, **about: Any) -> Journal:
        """The journal at ``path``, created with a header if absent, checked if present."""
        header = {"journal": MAGIC, "version": VERSION, "file_sha256": file_sha256}
        header |= {"project": project, **about}
        if not path.exists():
            journal = cls(path, header, {})
            journal._append(header)
            return journal
        found, rows = _replay(path)
        _cut_partial_line(path)
        if found.get("file_sha256") != file_sha256:
            raise JournalError(
                f"{path} is the journal of another version of this file (its rows may "
                "already be paid); to pay this file as a new batch, give another --results"
            )
        if found.get("project") != project:
            raise JournalError(
                f"{path} belongs to project {found.get('project')!r}, not {project!r}"
            )
        return cls(path, found, rows)

    def state(self, row: int) -> RowState:
        with self._lock:
            return self._rows.get(row, RowState())

    def record(self, row: int, **change: Any) -> RowState:
        """Change a row's state and append the change to the file, flushed."""
        with self._lock:
            state = _apply(self._rows.get(row, RowState()), change)
            self._rows[row] = state
            self._append({"row": row, **change})
            return state

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None

    def _append(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()


def _apply(state: RowState, change: dict[str, Any]) -> RowState:
    if "session" in change:
        state = replace(state, session=change["session"])
    if change.get("started"):
        state = replace(state, started=True, rejected=None)
    if "rejected" in change:
        state = replace(state, rejected=change["rejected"])
    if "outcome" in change:
        state = replace(state, outcome=change["outcome"], error=change.get("error"))
    return state


def _cut_partial_line(path: Path) -> None:
    """Drop a last line without its newline (cut short by a kill), so appends stay whole."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


def _replay(path: Path) -> tuple[dict[str, Any], dict[int, RowState]]:
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise JournalError(f"cannot read the journal {path}: {exc}") from None
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # a line cut short by a kill: it never happened
                break
            raise JournalError(f"{path}: line {number} is not JSON (damaged)") from None
    if not entries or entries[0].get("journal") != MAGIC:
        raise JournalError(f"{path} is not a payout131 batch journal")
    rows: dict[int, RowState] = {}
    for entry in entries[1:]:
        row = entry.pop("row")
        rows[row] = _apply(rows.get(row, RowState()), entry)
    return entries[0], rows
