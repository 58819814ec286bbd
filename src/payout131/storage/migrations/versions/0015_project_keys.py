"""partner keys rotate: a project's public keys in their own table

Revision ID: 0015
Revises: 0014

``project_keys`` holds each project's public keys, named by fingerprint (``sha256:`` and
the hex SHA-256 of the DER SubjectPublicKeyInfo): one active, or two while a partner
rotates. Each project's key moves there from ``projects.public_key_pem``, which goes (on
SQLite the table is rebuilt; ``storage.migrate`` turns foreign keys off meanwhile).
The fingerprint is computed here rather than by the package, so the migration stays what
it was when it was written; a stored text that is no key (only SQL could have put it there)
is named by the hash of its text, and verifies nothing, as before.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op
from cryptography.hazmat.primitives import serialization

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _fingerprint(pem: str) -> str:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:  # never accepted by the CLI; only SQL could have stored it
        return "sha256:" + hashlib.sha256(pem.encode()).hexdigest()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def upgrade() -> None:
    keys = op.create_table(
        "project_keys",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(71), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("added_at", sa.BigInteger(), nullable=False),
        sa.Column("retired_at", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("project_id", "fingerprint"),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, public_key_pem, created_at FROM projects")).all()
    if rows:
        op.bulk_insert(
            keys,
            [
                {
                    "project_id": row.id,
                    "fingerprint": _fingerprint(row.public_key_pem),
                    "public_key_pem": row.public_key_pem,
                    "added_at": row.created_at,
                }
                for row in rows
            ],
        )
    with op.batch_alter_table("projects") as batch_op:
        batch_op.drop_column("public_key_pem")


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
