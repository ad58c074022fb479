"""Feedback and idempotent enrollment: decisions kept for ConfirmDecision / RejectDecision, impostor examples,
each face's origin and source photo digest, and the decision id in the audit trail.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Columns added in place (ALTER TABLE ... ADD COLUMN), never by copying the faces table; existing faces were
    # enrolled, and their photos' digests are unknown.
    with op.batch_alter_table("faces", recreate="never") as batch:
        batch.add_column(sa.Column("origin", sa.String(16), nullable=False, server_default="enroll"))
        batch.add_column(sa.Column("source_sha256", sa.String(64), nullable=True))
    op.create_index("ix_faces_subject_id_source_sha256", "faces", ["subject_id", "source_sha256"], unique=True)
    with op.batch_alter_table("audit_events", recreate="never") as batch:
        batch.add_column(sa.Column("decision_id", sa.String(32), nullable=False, server_default=""))
    op.create_table(
        "decisions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("models", sa.String(255), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("x2", sa.Float(), nullable=False),
        sa.Column("y2", sa.Float(), nullable=False),
        sa.Column("detection_score", sa.Float(), nullable=False),
        sa.Column("face_size", sa.Float(), nullable=False),
        sa.Column("sharpness", sa.Float(), nullable=False),
        sa.Column("liveness", sa.Float(), nullable=True),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name="fk_decisions_collection_id_collections", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name="fk_decisions_subject_id_subjects", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_collection_id", "decisions", ["collection_id"])
    op.create_index("ix_decisions_subject_id", "decisions", ["subject_id"])
    op.create_index("ix_decisions_expires_at", "decisions", ["expires_at"])
    op.create_table(
        "impostor_examples",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name="fk_impostor_examples_subject_id_subjects", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_impostor_examples"),
    )
    op.create_index("ix_impostor_examples_subject_id", "impostor_examples", ["subject_id"])


def downgrade() -> None:
    op.drop_table("impostor_examples")
    op.drop_table("decisions")
    with op.batch_alter_table("audit_events", recreate="never") as batch:
        batch.drop_column("decision_id")
    op.drop_index("ix_faces_subject_id_source_sha256", "faces")
    with op.batch_alter_table("faces", recreate="never") as batch:
        batch.drop_column("source_sha256")
        batch.drop_column("origin")
