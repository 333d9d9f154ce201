"""freezes (account freeze history) and audit_log.break_glass

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.models import BigId, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "freezes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("frozen_by", sa.String(64), nullable=False),
        sa.Column("frozen_at", UTCDateTime(), nullable=False),
        sa.Column("lifted_by", sa.String(64), nullable=True),
        sa.Column("lifted_at", UTCDateTime(), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freezes")),
    )
    op.create_index("ix_freezes_account_lifted_at", "freezes", ["account", "lifted_at"])
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("break_glass", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("break_glass")
    op.drop_index("ix_freezes_account_lifted_at", table_name="freezes")
    op.drop_table("freezes")
