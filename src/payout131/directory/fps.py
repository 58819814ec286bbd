"""The Faster Payments (SBP) member directory: which banks a payout to a phone can go to.

Each member has a 12-digit id (``100000000004``) that a Faster Payments destination names as
its ``bank_id`` (PROTOCOL §9), a Russian and an English name, and sometimes a BIK. The
membership changes every week: a snapshot ships with the package
(``data/sbp-members.csv``, collected 2026-04-29 from NSPK's public member list and a payout
provider's participant list), and ``payout131 fps import FILE`` replaces it with a newer
CSV of the same columns: ``member_id,ru_name,eng_name,bik,logo_url`` (``bik`` and
``logo_url`` may be empty).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.resources import files

from payout131.protocol.validation import whole_number

__all__ = ["FpsDirectory", "Member", "load_snapshot", "parse_csv"]

COLUMNS = ("member_id", "ru_name", "eng_name", "bik", "logo_url")
MAX_NAME = 300


@dataclass(frozen=True, slots=True)
class Member:
    """One SBP member."""

    id: str
    ru_name: str
    eng_name: str
    bik: str | None = None
    logo_url: str | None = None

    def as_json(self) -> dict[str, str]:
        """As ``fps/banks`` answers it (the PHP SDK's ``FpsBank``)."""
        return {"id": self.id, "eng_name": self.eng_name, "ru_name": self.ru_name}


class FpsDirectory:
    """The members by id."""

    def __init__(self, members: Iterable[Member]) -> None:
        self._members = {member.id: member for member in members}

    def __len__(self) -> int:
        return len(self._members)

    def get(self, member_id: str) -> Member | None:
        return self._members.get(member_id)

    def members(self) -> Iterator[Member]:
        return iter(sorted(self._members.values(), key=lambda m: m.id))


def _text(line: int, row: dict[str, str | None], column: str, required: bool) -> str | None:
    value = (row.get(column) or "").strip()
    if not value:
        if required:
            raise ValueError(f"line {line}: {column} is empty")
        return None
    if len(value) > MAX_NAME or not value.isprintable():
        raise ValueError(f"line {line}: {column} must be 1 to {MAX_NAME} printable characters")
    return value


def parse_csv(data: bytes) -> list[Member]:
    """The members in a CSV of ``COLUMNS`` (UTF-8, a header line first); ValueError naming
    the line and the rule for anything else."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    members: dict[str, Member] = {}
    line = 1
    try:
        missing = [c for c in COLUMNS[:3] if c not in (reader.fieldnames or [])]
        if missing:
            wanted = ",".join(COLUMNS)
            raise ValueError(f"line 1: the header lacks {', '.join(missing)} (wants {wanted})")
        for row in reader:
            line = reader.line_num
            if None in row:  # an unquoted comma in a name shifts every column after it
                raise ValueError(f"line {line}: more fields than the header")
            member_id = (row.get("member_id") or "").strip()
            if whole_number(member_id, 12) is None or len(member_id) != 12:
                shown = member_id[:20]
                raise ValueError(f"line {line}: member_id must be 12 digits, not {shown!r}")
            if member_id in members:
                raise ValueError(f"line {line}: member_id {member_id} is listed twice")
            bik = _text(line, row, "bik", required=False)
            if bik is not None and (whole_number(bik, 9) is None or len(bik) != 9):
                raise ValueError(f"line {line}: bik must be 9 digits, not {bik[:20]!r}")
            members[member_id] = Member(
                member_id,
                str(_text(line, row, "ru_name", required=True)),
                str(_text(line, row, "eng_name", required=True)),
                bik,
                _text(line, row, "logo_url", required=False),
            )
    except csv.Error as exc:
        raise ValueError(f"line {line + 1 if members else line}: not CSV ({exc})") from None
    if not members:
        raise ValueError("the file lists no member")
    return list(members.values())


def load_snapshot() -> list[Member]:
    """The member directory shipped with the package (``data/sbp-members.csv``)."""
    return parse_csv((files("payout131.directory") / "data" / "sbp-members.csv").read_bytes())
