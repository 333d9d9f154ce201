"""grants: subject kind (user|group), channel, expires_at; roles (custom roles)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.models import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing grants become user grants on every channel, without expiry: they keep working.
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("subject_kind", sa.String(8), nullable=False, server_default="user"))
        batch.add_column(sa.Column("channel", sa.String(32), nullable=True))
        batch.add_column(sa.Column("expires_at", UTCDateTime(), nullable=True))
        batch.drop_constraint("uq_grants_user_action_account", type_="unique")
        batch.create_unique_constraint(
            "uq_grants_subject_action_account_channel", ["subject_kind", "user_id", "action", "account", "channel"]
        )
    op.create_table(
        "roles",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_roles")),
    )


def downgrade() -> None:
    # The old schema would read a group, channel-scoped or expiring grant as a broader one (or
    # clash on its unique key): drop those grants rather than widen anyone's access.
    op.execute("DELETE FROM grants WHERE subject_kind <> 'user' OR channel IS NOT NULL OR expires_at IS NOT NULL")
    op.drop_table("roles")
    with op.batch_alter_table("grants") as batch:
        batch.drop_constraint("uq_grants_subject_action_account_channel", type_="unique")
        batch.create_unique_constraint("uq_grants_user_action_account", ["user_id", "action", "account"])
        batch.drop_column("expires_at")
        batch.drop_column("channel")
        batch.drop_column("subject_kind")
