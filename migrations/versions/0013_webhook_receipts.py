"""webhook_receipts: provider callbacks already taken, so a replayed one is refused

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.models import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_receipts",
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "account", "digest", name=op.f("pk_webhook_receipts")),
    )
    op.create_index(op.f("ix_webhook_receipts_received_at"), "webhook_receipts", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_receipts_received_at"), table_name="webhook_receipts")
    op.drop_table("webhook_receipts")
