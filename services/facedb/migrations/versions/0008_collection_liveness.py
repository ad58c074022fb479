"""Collections say whether their requests require a live face (passive liveness) when a request does not say.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added in place (ALTER TABLE ... ADD COLUMN), never by copying the table; existing collections require none.
    with op.batch_alter_table("collections", recreate="never") as batch:
        batch.add_column(sa.Column("require_liveness", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("collections", recreate="never") as batch:
        batch.drop_column("require_liveness")
