"""Option types checked before a command starts, so that bad input never runs it.

Numbers: click reads them with Python's ``int`` and ``float``, which also take other
scripts' digits (``٥``, ``５``) and, for floats, ``nan``, ``inf`` and exponents: ``--port ١``
would be port 1. As ids are on the wire, numbers here are plain ASCII.

Output paths: a long command (``bench``, ``chaos``) that writes its figures at the end must
not find out then that it cannot: the directory is checked first.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click

__all__ = ["FloatRange", "IntRange", "OutputDirectory", "OutputFile"]

_WHOLE = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?|-?\.[0-9]+")


class IntRange(click.IntRange):
    """``click.IntRange`` taking only ASCII digits."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not _WHOLE.fullmatch(value.strip()):
            self.fail(f"{value[:40]!r} is not a whole number", param, ctx)
        return super().convert(value, param, ctx)


class FloatRange(click.FloatRange):
    """``click.FloatRange`` taking only ASCII decimals (no exponent, ``nan`` or ``inf``)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not _DECIMAL.fullmatch(value.strip()):
            self.fail(f"{value[:40]!r} is not a decimal number like 2.5", param, ctx)
        return super().convert(value, param, ctx)


class OutputFile(click.Path):
    """A file the command will write: its directory must exist and be writable."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = Path(str(super().convert(value, param, ctx)))
        folder = path.parent
        if not str(value).strip() or not folder.is_dir() or not os.access(folder, os.W_OK):
            self.fail(f"{str(value)[:200]!r}: no writable directory to write it in", param, ctx)
        return path


class OutputDirectory(click.Path):
    """A directory the command will fill: an empty one, or one to make in an existing
    directory (what an earlier run left there would be taken for this run's)."""

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = Path(str(super().convert(value, param, ctx)))
        if path.is_dir() and any(path.iterdir()):
            self.fail(f"{str(value)[:200]!r} is not empty: give a new directory", param, ctx)
        usable = path.is_dir() or (not path.exists() and path.parent.is_dir())
        if not str(value).strip() or not usable:
            self.fail(f"{str(value)[:200]!r}: neither a directory nor one to make", param, ctx)
        return path
