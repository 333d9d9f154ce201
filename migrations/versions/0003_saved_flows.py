"""saved_flows: the team's library of Bird callFlows; pending_choices.purpose for confirmations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.models import BigId, UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "saved_flows",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("callflow", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_flows")),
        sa.UniqueConstraint("name", "version", name="uq_saved_flows_name_version"),
    )
    op.add_column(
        "pending_choices",
        sa.Column("purpose", sa.String(16), nullable=False, server_default="account"),
    )


def downgrade() -> None:
    with op.batch_alter_table("pending_choices") as batch:
        batch.drop_column("purpose")
    op.drop_table("saved_flows")
