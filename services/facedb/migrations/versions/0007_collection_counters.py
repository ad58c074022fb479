"""Collections keep their own counts: subjects, faces, and faces still awaiting their embedding for the pending profile.

Every Verify and Identify reads its collection's counts (the 1:K threshold follows the number of subjects); counting
the rows each time cost a time linear in the collection. The repository now moves these counters in the same
transaction as each change, and this revision fills them in from the rows already there.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = ("subject_count", "face_count", "pending_count")


def upgrade() -> None:
    # Added in place (ALTER TABLE ... ADD COLUMN), never by copying the table.
    with op.batch_alter_table("collections", recreate="never") as batch:
        for name in COUNTERS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.execute(
        "UPDATE collections SET "
        "subject_count = (SELECT COUNT(*) FROM subjects WHERE subjects.collection_id = collections.id), "
        "face_count = (SELECT COUNT(*) FROM faces WHERE faces.collection_id = collections.id), "
        "pending_count = CASE WHEN pending_profile IS NULL THEN 0 ELSE (SELECT COUNT(*) FROM faces "
        "WHERE faces.collection_id = collections.id AND faces.pending_embedding IS NULL) END"
    )


def downgrade() -> None:
    with op.batch_alter_table("collections", recreate="never") as batch:
        for name in reversed(COUNTERS):
            batch.drop_column(name)
