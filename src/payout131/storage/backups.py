"""Backups of a bank: its database and the keys without which the database is no use.

A backup is one tar file, readable by its owner only, holding:

- ``payout131.db``: on SQLite, a consistent copy taken online with SQLite's backup API
  (one read transaction: what was committed when it began, and nothing half-written),
  while the server keeps serving;
- ``bank-private.pem``, ``bank-public.pem``: the bank's signing key pair (partners verify
  webhooks with the public key);
- ``vault.key``: the account vault's keys (without them no tokenized account or card can
  be paid), unless the keys come from ``PAYOUT131_VAULT_KEY``, which the operator keeps;
- ``manifest.json``: the format, when it was made, the engine, the schema revision, and
  the SHA-256 of every other member, checked before anything is restored.

On PostgreSQL the database is dumped with ``pg_dump`` (docs/operations.md); the backup then
holds the keys alone, and says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from payout131.settings import Settings

__all__ = ["BackupError", "Made", "Restored", "make", "restore"]

FORMAT = 1
DATABASE = "payout131.db"
MANIFEST = "manifest.json"
_KEYS = ("bank-private.pem", "bank-public.pem", "vault.key")
_PRIVATE = 0o600


class BackupError(Exception):
    """The backup cannot be made or restored; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class Made:
    path: Path
    members: list[str]
    database: bool  # False on PostgreSQL: dump it with pg_dump
    schema: str | None


@dataclass(frozen=True, slots=True)
class Restored:
    members: list[str]
    database: Path | None


def _sqlite_path(conf: Settings) -> Path | None:
    url = make_url(conf.database)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database:
        raise BackupError(f"{conf.database}: an in-memory SQLite database has nothing to back up")
    return Path(url.database)


def _copy_database(source: Path, into: Path) -> str | None:
    """A consistent copy of the live database ``source`` at ``into``; its schema revision."""
    if not source.exists():
        raise BackupError(f"{source}: no database to back up (run `payout131 init` first)")
    live = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    copy = sqlite3.connect(into)
    try:
        live.backup(copy)  # one step: a snapshot of what was committed when it began
        row = copy.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"{source}: cannot be read for a backup ({exc})") from None
    finally:
        copy.close()
        live.close()
    return None if row is None else str(row[0])


def _add(archive: tarfile.TarFile, name: str, data: bytes, made_at: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), _PRIVATE, made_at
    archive.addfile(info, io.BytesIO(data))


def make(conf: Settings, path: Path) -> Made:
    """Write the backup of the bank configured by ``conf`` to ``path`` (replaced whole, so
    a failed backup never leaves half a file where a good one was)."""
    members: dict[str, bytes] = {}
    schema = None
    database = _sqlite_path(conf)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".backup-") as work:
        if database is not None:
            copy = Path(work) / DATABASE
            schema = _copy_database(database, copy)
            members[DATABASE] = copy.read_bytes()
        for name in _KEYS:
            key = conf.home / name
            if name == "vault.key" and conf.vault_key:
                continue  # PAYOUT131_VAULT_KEY: kept by the operator, not in a file
            if not key.exists():
                raise BackupError(f"{key}: missing; a backup without it could not be used")
            members[name] = key.read_bytes()
        made_at = int(time.time())
        manifest = {
            "format": FORMAT,
            "made_at": made_at,
            "engine": "sqlite" if database is not None else "postgresql",
            "schema": schema,
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
        }
        temporary = Path(work) / "backup.tar"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w") as archive:
            _add(archive, MANIFEST, json.dumps(manifest, indent=2).encode(), made_at)
            for name, data in members.items():
                _add(archive, name, data, made_at)
            archive.close()
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    return Made(path, sorted(members), database is not None, schema)


def _read(path: Path) -> tuple[dict[str, object], dict[str, bytes]]:
    """The manifest and the members of the backup at ``path``, every checksum checked."""
    try:
        with tarfile.open(path, mode="r:") as archive:
            members = {}
            for info in archive.getmembers():
                if not info.isfile() or "/" in info.name or info.name.startswith("."):
                    raise BackupError(f"{path}: holds {info.name!r}, not a payout131 backup")
                handle = archive.extractfile(info)
                assert handle is not None
                members[info.name] = handle.read()
    except tarfile.TarError:
        raise BackupError(f"{path}: not a payout131 backup (not a tar archive)") from None
    except OSError as exc:
        raise BackupError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        manifest = json.loads(members.pop(MANIFEST))
        files = dict(manifest["files"])
    except (KeyError, ValueError, TypeError):
        raise BackupError(f"{path}: not a payout131 backup (no manifest)") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: backup format {manifest.get('format')!r}, this reads {FORMAT}")
    if set(files) != set(members):
        raise BackupError(f"{path}: its members are not the ones its manifest lists")
    for name, data in members.items():
        if hashlib.sha256(data).hexdigest() != files[name]:
            raise BackupError(f"{path}: {name} is damaged (its checksum does not match)")
    return manifest, members


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def restore(conf: Settings, path: Path) -> Restored:
    """Restore the backup at ``path`` into the home (and SQLite database) ``conf`` names,
    which must not hold a bank yet: nothing is overwritten."""
    manifest, members = _read(path)
    database = _sqlite_path(conf)
    if manifest.get("engine") == "sqlite" and database is None:
        raise BackupError(
            f"{path} holds a SQLite database and PAYOUT131_DATABASE_URL names PostgreSQL: "
            "restore it with PAYOUT131_DATABASE_URL unset (or a sqlite:/// URL)"
        )
    targets = {name: conf.home / name for name in members if name != DATABASE}
    if DATABASE in members and database is not None:
        targets[DATABASE] = database
    taken = [str(p) for p in targets.values() if p.exists()]
    if database is not None and database.exists():
        taken.append(str(database))
    if taken:
        raise BackupError(
            f"{', '.join(sorted(set(taken)))} already exist: restore into a fresh "
            "PAYOUT131_HOME (move the old one away first)"
        )
    for name, target in targets.items():
        _write(target, members[name])
    restored_db = targets.get(DATABASE)
    return Restored(sorted(targets), restored_db)
