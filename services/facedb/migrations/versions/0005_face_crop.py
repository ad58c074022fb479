"""faces.aligned_crop becomes faces.face_crop: it holds the 256 px face crop every model of a profile is cut from.

Only the name changes; every stored crop (including the 112x112 aligned ones of earlier versions, which have no
landmarks) stays as it is.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rename(old: str, new: str) -> None:
    # In place (ALTER TABLE ... RENAME COLUMN, SQLite 3.25 and later), never by copying the table: a SQLite copy
    # would forget the ids of faces deleted earlier, and a face id must never be reused (it is the FAISS id).
    with op.batch_alter_table("faces", recreate="never") as batch:
        batch.alter_column(old, new_column_name=new)


def upgrade() -> None:
    _rename("aligned_crop", "face_crop")


def downgrade() -> None:
    _rename("face_crop", "aligned_crop")
