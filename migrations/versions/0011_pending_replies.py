"""pending_replies: the response_url of a pending call action, for a final message after a crash

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.models import BigId, UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_replies",
        sa.Column("audit_id", BigId, autoincrement=False, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("audit_id", name=op.f("pk_pending_replies")),
    )
    op.create_index(op.f("ix_pending_replies_created_at"), "pending_replies", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_replies_created_at"), table_name="pending_replies")
    op.drop_table("pending_replies")
