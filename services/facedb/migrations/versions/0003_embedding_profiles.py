"""Embedding profiles: a collection is bound to a profile (one model or a fusion) and can be re-embedded.

Collections get `profile` (was `model`, a model reference) and `pending_profile`; faces get `profile` and `models`
(were `model_name` and `model_version`), the landmarks of their stored crop, and the pending embedding used while
re-embedding. Every collection and face made before this was MobileFaceNet's, so they join the "mobilefacenet"
profile; their stored crops are 112x112 ArcFace-aligned crops, which crop_landmarks = NULL marks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _face_id_high_water() -> int | None:
    """SQLite's AUTOINCREMENT memory of the highest face id ever used (None elsewhere or when unused)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return None
    return bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'faces'")).scalar()


def _restore_face_id_high_water(seq: int | None) -> None:
    """SQLite rebuilds the table to rename columns, and the copy forgets ids of faces deleted earlier; a face id must
    never be reused (it is also the FAISS id), so the old high-water mark is put back."""
    if seq is None:
        return
    bind = op.get_bind()
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'faces'"))
    bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('faces', :seq)"), {"seq": seq})


def upgrade() -> None:
    high_water = _face_id_high_water()
    op.execute("UPDATE faces SET model_version = model_name || '@' || model_version")
    with op.batch_alter_table("collections") as batch:
        batch.alter_column("model", new_column_name="profile", type_=sa.String(64), existing_nullable=False)
        batch.add_column(sa.Column("pending_profile", sa.String(64), nullable=True))
    with op.batch_alter_table("faces", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("model_name", new_column_name="profile", existing_type=sa.String(64), nullable=False)
        batch.alter_column("model_version", new_column_name="models", type_=sa.String(255), existing_nullable=False)
        batch.add_column(sa.Column("crop_landmarks", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("pending_embedding", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("pending_models", sa.String(255), nullable=True))
    _restore_face_id_high_water(high_water)
    op.execute("UPDATE collections SET profile = 'mobilefacenet'")
    op.execute("UPDATE faces SET profile = 'mobilefacenet'")


def downgrade() -> None:
    high_water = _face_id_high_water()
    with op.batch_alter_table("faces", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("pending_models")
        batch.drop_column("pending_embedding")
        batch.drop_column("crop_landmarks")
        batch.alter_column("models", new_column_name="model_version", type_=sa.String(64), existing_nullable=False)
        batch.alter_column("profile", new_column_name="model_name", existing_type=sa.String(64), nullable=False)
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("pending_profile")
        batch.alter_column("profile", new_column_name="model", type_=sa.String(128), existing_nullable=False)
    _restore_face_id_high_water(high_water)
    # Only MobileFaceNet existed before: other profiles' rows cannot be expressed in the old schema.
    op.execute("UPDATE faces SET model_version = substr(model_version, length(model_name) + 2)")
    op.execute("UPDATE collections SET model = 'mobilefacenet@foamliu-1.0' WHERE model = 'mobilefacenet'")
