"""audit_log: what the provider confirmed happened to the call (read back or by signed callback)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.models import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("confirmed_status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("confirmed_word", sa.String(32), nullable=True))
        batch.add_column(sa.Column("confirmed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("confirmed_via", sa.String(16), nullable=True))
        batch.add_column(sa.Column("confirm_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("confirm_hash", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_audit_log_confirm_seq", ["confirm_seq"])


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("uq_audit_log_confirm_seq", type_="unique")
        for name in (
            "confirm_hash",
            "confirm_seq",
            "confirmed_via",
            "confirmed_at",
            "confirmed_word",
            "confirmed_status",
        ):
            batch.drop_column(name)
