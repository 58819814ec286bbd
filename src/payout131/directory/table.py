"""The BIK directory in the database: loaded at start, replaced by ``payout131 bik import``."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.directory import fps
from payout131.directory.bik import BankEntry, BikDirectory, load_snapshot
from payout131.storage import schema as t

__all__ = ["load_directory", "load_members", "replace_directory", "replace_members"]


def replace_directory(conn: Connection, banks: Iterable[BankEntry]) -> int:
    rows = [
        {
            "bik": b.bik,
            "name": b.name,
            "english_name": b.english_name,
            "correspondent_account": b.correspondent_account,
            "participant_type": b.participant_type,
            "restricted": b.restricted,
            "closed": b.closed,
        }
        for b in banks
    ]
    if not rows:
        raise ValueError("the directory holds no banks; refusing to replace the current one")
    conn.execute(sa.delete(t.bik_directory))
    conn.execute(sa.insert(t.bik_directory), rows)
    return len(rows)


def load_directory(conn: Connection) -> BikDirectory:
    """The stored directory; the snapshot shipped with the package when none is stored."""
    rows = conn.execute(sa.select(t.bik_directory)).all()
    if not rows:
        return BikDirectory(load_snapshot())
    return BikDirectory(
        BankEntry(
            bik=r.bik,
            name=r.name,
            english_name=r.english_name,
            correspondent_account=r.correspondent_account,
            participant_type=r.participant_type,
            restricted=bool(r.restricted),
            closed=bool(r.closed),
        )
        for r in rows
    )


def replace_members(conn: Connection, members: Iterable[fps.Member]) -> int:
    """Store ``members`` as the SBP member directory, replacing the one stored."""
    rows = [
        {"id": m.id, "ru_name": m.ru_name, "eng_name": m.eng_name, "bik": m.bik}
        | {"logo_url": m.logo_url}
        for m in members
    ]
    if not rows:
        raise ValueError("the directory holds no member; refusing to replace the current one")
    conn.execute(sa.delete(t.fps_members))
    conn.execute(sa.insert(t.fps_members), rows)
    return len(rows)


def load_members(conn: Connection) -> fps.FpsDirectory:
    """The stored SBP member directory; the packaged snapshot when none is stored."""
    rows = conn.execute(sa.select(t.fps_members)).all()
    if not rows:
        return fps.FpsDirectory(fps.load_snapshot())
    return fps.FpsDirectory(
        fps.Member(r.id, r.ru_name, r.eng_name, r.bik, r.logo_url) for r in rows
    )
