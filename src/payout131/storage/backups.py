"""Backups of a bank: its database and the keys without which the database is no use.

A backup is one tar file, readable by its owner only, holding:

- ``payout131.db``: on SQLite, a consistent copy taken online with SQLite's backup API
  (one read transaction: what was committed when it began, and nothing half-written),
  while the server keeps serving;
- ``bank-private.pem``, ``bank-public.pem``: the bank's signing key pair (partners verify
  webhooks with the public key), and during a rotation the next pair and its switch time
  (``bank-next-private.pem``, ``bank-next-public.pem``, ``bank-key-switch``);
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

from payout131.client import signing
from payout131.settings import Settings
from payout131.tokens.vault import key_id, parse_keys
from payout131.webhooks import bank_key

__all__ = ["BackupError", "Made", "Restored", "make", "restore", "undo"]

FORMAT = 1
DATABASE = "payout131.db"
MANIFEST = "manifest.json"
_KEYS = ("bank-private.pem", "bank-public.pem", "vault.key")
_ROTATION = tuple(name for name in bank_key.FILES if name not in _KEYS)  # when there is one
_PRIVATE = 0o600
_SMALL = 1 << 20  # a key file or the manifest is far smaller; a larger one is no backup
_MEMBERS = {MANIFEST, DATABASE, *_KEYS, *_ROTATION}
_SIDECARS = ("-wal", "-shm", "-journal")  # SQLite's files beside a database


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
    written: list[Path]  # what the restore wrote, to take back (``undo``)


def _sqlite_path(conf: Settings) -> Path | None:
    url = make_url(conf.database)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database:
        raise BackupError(f"{conf.database}: an in-memory SQLite database has no file")
    return Path(url.database)


def _copy_database(source: Path, into: Path) -> str | None:
    """A consistent copy of the live database ``source`` at ``into``; its schema revision."""
    if not source.exists():
        raise BackupError(f"{source}: no database to back up (run `payout131 init` first)")
    live = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
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


_SEALED_BY = (  # every column naming the vault key a stored value was sealed with
    "SELECT key_id FROM account_tokens",
    "SELECT key_id FROM card_tokens",
    "SELECT body_key_id FROM events WHERE body_key_id IS NOT NULL",
    "SELECT webhook_secret_key_id FROM projects WHERE webhook_secret_key_id IS NOT NULL",
)


def _keys_missing(copy: Path, ring: bytes) -> set[str]:
    """The vault keys the copied database was sealed with that ``ring`` lacks."""
    held = {key_id(k) for k in parse_keys(ring.decode(), "vault.key")}
    used: set[str] = set()
    database = sqlite3.connect(copy)
    try:
        for query in _SEALED_BY:
            used |= {str(row[0]) for row in database.execute(query)}
    except sqlite3.Error as exc:  # an older schema: the server migrates it when it starts
        raise BackupError(f"the database is not at this version's schema ({exc})") from None
    finally:
        database.close()
    return used - held


def _check_pairs(members: dict[str, bytes]) -> None:
    """Each private bank key read is the one its public file publishes: a rotation step
    (``bank-key finish``) that ran while the files were read would leave them mismatched."""
    pairs = [(bank_key.PRIVATE, bank_key.PUBLIC), (bank_key.NEXT_PRIVATE, bank_key.NEXT_PUBLIC)]
    for private, public in pairs:
        if (private in members) != (public in members) or (
            private in members
            and signing.public_key_pem(signing.load_private_key(members[private]))
            != signing.public_key_pem(signing.load_public_key(members[public]))
        ):
            raise BackupError(
                f"{private} and {public} do not match (a bank-key rotation step ran while "
                "the backup read them): run the backup again; if this persists, finish or "
                "cancel the rotation (payout131 bank-key status)"
            )


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
        copy = Path(work) / DATABASE
        if database is not None:  # copied to a file and streamed from it: never in memory
            schema = _copy_database(database, copy)
        for name in _KEYS:
            key = conf.home / name
            if name == "vault.key" and conf.vault_key:
                continue  # PAYOUT131_VAULT_KEY: kept by the operator, not in a file
            if not key.exists():
                raise BackupError(f"{key}: missing; a backup without it could not be used")
            members[name] = key.read_bytes()
        for name in _ROTATION:
            if (conf.home / name).exists():
                members[name] = (conf.home / name).read_bytes()
        _check_pairs(members)
        if database is not None and "vault.key" in members:
            missing = _keys_missing(copy, members["vault.key"])
            if missing:  # a vault rotation finished between the copy and the key file
                raise BackupError(
                    f"the database copy was sealed with vault key(s) {', '.join(sorted(missing))}"
                    " no longer in vault.key (a rotation ran meanwhile): run the backup again"
                )
        made_at = int(time.time())
        files = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
        if database is not None:
            with copy.open("rb") as held:
                files[DATABASE] = hashlib.file_digest(held, "sha256").hexdigest()
        manifest = {
            "format": FORMAT,
            "made_at": made_at,
            "engine": "sqlite" if database is not None else "postgresql",
            "schema": schema,
            "vault": "environment" if conf.vault_key else "file",
            "files": files,
        }
        temporary = Path(work) / "backup.tar"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w") as archive:
            _add(archive, MANIFEST, json.dumps(manifest, indent=2).encode(), made_at)
            if database is not None:
                info = tarfile.TarInfo(DATABASE)
                info.size, info.mode, info.mtime = copy.stat().st_size, _PRIVATE, made_at
                with copy.open("rb") as held:
                    archive.addfile(info, held)
            for name, data in members.items():
                _add(archive, name, data, made_at)
            archive.close()
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    names = sorted([*members, *([DATABASE] if database is not None else [])])
    return Made(path, names, database is not None, schema)


def _read(path: Path) -> tuple[dict[str, object], dict[str, bytes]]:
    """The manifest and the small members (the keys) of the backup at ``path``, their
    checksums checked; the database is left in the archive (``_stage_database``)."""
    try:
        with tarfile.open(path, mode="r:") as archive:
            members: dict[str, bytes] = {}
            names = set()
            for info in archive.getmembers():
                if not info.isfile() or info.name not in _MEMBERS or info.name in names:
                    raise BackupError(f"{path}: holds {info.name!r}, not a payout131 backup")
                names.add(info.name)
                if info.name == DATABASE:
                    continue
                handle = archive.extractfile(info)
                assert handle is not None
                members[info.name] = handle.read(_SMALL + 1)
                if len(members[info.name]) > _SMALL:
                    raise BackupError(f"{path}: {info.name} is too large for what it should be")
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
    if set(files) != names - {MANIFEST}:
        raise BackupError(f"{path}: its members are not the ones its manifest lists")
    for name, data in members.items():
        if hashlib.sha256(data).hexdigest() != files[name]:
            raise BackupError(f"{path}: {name} is damaged (its checksum does not match)")
    manifest["database"] = files.get(DATABASE)  # its digest, checked while it is staged
    return manifest, members


def _stage_database(path: Path, target: Path, digest: str) -> Path:
    """The backup's database, streamed into a new private file beside ``target`` (to be
    renamed into place) and checked against ``digest`` on the way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.restoring")
    hashed = hashlib.sha256()
    try:
        with tarfile.open(path, mode="r:") as archive:
            handle = archive.extractfile(DATABASE)
            assert handle is not None
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE)
            with os.fdopen(fd, "wb") as out:
                while chunk := handle.read(1 << 20):
                    hashed.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
    except (tarfile.TarError, KeyError):
        temporary.unlink(missing_ok=True)
        raise BackupError(f"{path}: its database cannot be read from the archive") from None
    if hashed.hexdigest() != digest:
        temporary.unlink(missing_ok=True)
        raise BackupError(f"{path}: {DATABASE} is damaged (its checksum does not match)")
    return temporary


def _write(path: Path, data: bytes) -> Path:
    """``data`` in a new private file beside ``path``, to be renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.restoring")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return temporary


def restore(conf: Settings, path: Path) -> Restored:
    """Restore the backup at ``path`` into the home (and SQLite database) ``conf`` names,
    which must not hold a bank yet: nothing is overwritten, and a restore that fails part
    way takes back what it wrote (``undo``)."""
    manifest, members = _read(path)
    database = _sqlite_path(conf)
    engine = manifest.get("engine")
    if engine == "sqlite" and database is None:
        raise BackupError(
            f"{path} holds a SQLite database and PAYOUT131_DATABASE_URL names PostgreSQL: "
            "restore it with PAYOUT131_DATABASE_URL unset (or a sqlite:/// URL)"
        )
    if engine == "postgresql" and database is not None:
        raise BackupError(
            f"{path} holds the keys of a PostgreSQL bank: set PAYOUT131_DATABASE_URL to the "
            "database pg_restore filled (docs/operations.md)"
        )
    if manifest.get("vault") == "environment" and not conf.vault_key:
        raise BackupError(
            f"{path} was made with the vault keys in PAYOUT131_VAULT_KEY: set it to the same "
            "keys before restoring"
        )
    targets = {name: conf.home / name for name in members}
    digest = manifest.get("database")
    if isinstance(digest, str) and database is not None:
        targets[DATABASE] = database
    taken = {str(p) for p in targets.values() if p.exists()}
    taken |= {str(conf.home / n) for n in bank_key.FILES if (conf.home / n).exists()}
    if database is not None:
        taken |= {str(p) for p in _with_sidecars(database) if p.exists()}
    if taken:
        raise BackupError(
            f"{', '.join(sorted(taken))} already exist: restore into a fresh "
            "PAYOUT131_HOME (move the old one away first, with its -wal and -shm files)"
        )
    written: list[Path] = []
    try:
        staged: dict[str, Path] = {}
        if DATABASE in targets:  # first: a damaged database stops the restore here
            staged[DATABASE] = _stage_database(path, targets[DATABASE], str(digest))
        staged |= {name: _write(targets[name], data) for name, data in members.items()}
        for name, temporary in staged.items():
            os.replace(temporary, targets[name])
            written.append(targets[name])
    except OSError as exc:
        undo(Restored(sorted(targets), None, written))
        for target in targets.values():
            target.with_name(f".{target.name}.restoring").unlink(missing_ok=True)
        raise BackupError(f"cannot restore into {conf.home}: {exc.strerror}") from None
    return Restored(sorted(targets), targets.get(DATABASE), written)


def _with_sidecars(database: Path) -> list[Path]:
    return [database, *(database.with_name(database.name + s) for s in _SIDECARS)]


def undo(restored: Restored) -> None:
    """Take back a restore that cannot stand (its database did not migrate, or its
    ledger does not balance), so it can be tried again."""
    for written in restored.written:
        for path in _with_sidecars(written) if written == restored.database else [written]:
            path.unlink(missing_ok=True)
