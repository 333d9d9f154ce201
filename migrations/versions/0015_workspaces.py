"""workspaces: every scoped row carries its Slack workspace (team_id); the workspaces table

Rows written before this revision get team_id "" (unassigned, shown nowhere): alembic cannot ask
Slack which workspace they belong to, so callbot assigns them at its first start (or `callbot
migrate` with SLACK_BOT_TOKEN set) from `auth.test` (bot/db/workspaces.py `assign_unassigned`).
Audit rows keep their hashed fields untouched: their workspace goes in `workspace_id`, which the
hash chain does not cover.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db.models import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNASSIGNED = ""

# Tables whose rows are scoped by workspace, NOT NULL once the migration has filled old rows.
SCOPED = ("grants", "roles", "pending_choices", "saved_flows", "flow_drafts", "freezes", "approvals", "batches")


def _add_team(table: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("team_id", sa.String(32), nullable=True))
    op.execute(sa.text(f"UPDATE {table} SET team_id = :u WHERE team_id IS NULL").bindparams(u=UNASSIGNED))


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("enterprise_id", sa.String(32), nullable=True),
        sa.Column("name", sa.String(128), nullable=True),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("assigned_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_workspaces")),
    )
    for table in SCOPED:
        _add_team(table)
    for table in ("approvals", "batches"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("enterprise_id", sa.String(32), nullable=True))

    with op.batch_alter_table("grants") as batch:
        batch.alter_column("team_id", existing_type=sa.String(32), nullable=False)
        batch.drop_constraint("uq_grants_subject_action_account_channel", type_="unique")
        batch.create_unique_constraint(
            "uq_grants_team_subject_action_account_channel",
            ["team_id", "subject_kind", "user_id", "action", "account", "channel"],
        )
    with op.batch_alter_table("roles") as batch:
        batch.alter_column("team_id", existing_type=sa.String(32), nullable=False)
        batch.drop_constraint("pk_roles", type_="primary")
        batch.create_primary_key("pk_roles", ["team_id", "name"])
    with op.batch_alter_table("saved_flows") as batch:
        batch.alter_column("team_id", existing_type=sa.String(32), nullable=False)
        batch.drop_constraint("uq_saved_flows_name_version", type_="unique")
        batch.create_unique_constraint("uq_saved_flows_team_name_version", ["team_id", "name", "version"])
    with op.batch_alter_table("flow_drafts") as batch:
        batch.alter_column("team_id", existing_type=sa.String(32), nullable=False)
        batch.drop_index("ix_flow_drafts_user_id_account_call_id")
        batch.create_index(
            "ix_flow_drafts_team_id_user_id_account_call_id", ["team_id", "user_id", "account", "call_id"]
        )
    with op.batch_alter_table("freezes") as batch:
        batch.alter_column("team_id", existing_type=sa.String(32), nullable=False)
        batch.drop_index("ix_freezes_account_lifted_at")
        batch.create_index("ix_freezes_team_id_account_lifted_at", ["team_id", "account", "lifted_at"])
    for table in ("pending_choices", "approvals", "batches"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("team_id", existing_type=sa.String(32), nullable=False)

    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("workspace_id", sa.String(32), nullable=True))
    # A row Slack sent already names its workspace in its (hashed) team_id; the rest wait for start.
    op.execute("UPDATE audit_log SET workspace_id = team_id WHERE team_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("workspace_id")
    with op.batch_alter_table("freezes") as batch:
        batch.drop_index("ix_freezes_team_id_account_lifted_at")
        batch.create_index("ix_freezes_account_lifted_at", ["account", "lifted_at"])
    with op.batch_alter_table("flow_drafts") as batch:
        batch.drop_index("ix_flow_drafts_team_id_user_id_account_call_id")
        batch.create_index("ix_flow_drafts_user_id_account_call_id", ["user_id", "account", "call_id"])
    with op.batch_alter_table("saved_flows") as batch:
        batch.drop_constraint("uq_saved_flows_team_name_version", type_="unique")
    with op.batch_alter_table("grants") as batch:
        batch.drop_constraint("uq_grants_team_subject_action_account_channel", type_="unique")
    # Without a workspace, rows that only differed by it would collide: the oldest of each stays.
    op.execute(
        "DELETE FROM grants WHERE id NOT IN (SELECT min(id) FROM grants "
        "GROUP BY subject_kind, user_id, action, account, channel)"
    )
    op.execute("DELETE FROM roles WHERE team_id NOT IN (SELECT min(team_id) FROM roles r2 WHERE r2.name = roles.name)")
    op.execute("DELETE FROM saved_flows WHERE id NOT IN (SELECT min(id) FROM saved_flows GROUP BY name, version)")
    with op.batch_alter_table("grants") as batch:
        batch.create_unique_constraint(
            "uq_grants_subject_action_account_channel", ["subject_kind", "user_id", "action", "account", "channel"]
        )
    with op.batch_alter_table("saved_flows") as batch:
        batch.create_unique_constraint("uq_saved_flows_name_version", ["name", "version"])
    with op.batch_alter_table("roles") as batch:
        batch.drop_constraint("pk_roles", type_="primary")
        batch.create_primary_key("pk_roles", ["name"])
    for table in ("approvals", "batches"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("enterprise_id")
    for table in SCOPED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("team_id")
    op.drop_table("workspaces")
