"""Audit events name the API key by id as well as by name, and count the calls they stand for.

A key's name is a label (and was not unique before); its id is what identifies it. Events made before this have
no key id (""). `count` is how many refused calls a `denied` event aggregates; every other event stands for one.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("key_id", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("count", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("count")
        batch.drop_column("key_id")
