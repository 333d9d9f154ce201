"""flow_drafts: callFlows being built in the Slack builder (the view keeps only the draft's id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.models import BigId, UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flow_drafts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("commands", sa.JSON(), nullable=False),
        sa.Column("end_call", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_drafts")),
    )
    op.create_index("ix_flow_drafts_user_id_account_call_id", "flow_drafts", ["user_id", "account", "call_id"])
    op.create_index(op.f("ix_flow_drafts_updated_at"), "flow_drafts", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_flow_drafts_updated_at"), table_name="flow_drafts")
    op.drop_index("ix_flow_drafts_user_id_account_call_id", table_name="flow_drafts")
    op.drop_table("flow_drafts")
