"""audit_log hash chain (tamper evidence) and indexes for every audit filter

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.db import chain

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW_INDEXES = {
    "ix_audit_log_created_at_id": ["created_at", "id"],
    "ix_audit_log_user_id_created_at": ["user_id", "created_at", "id"],
    "ix_audit_log_account_created_at": ["account", "created_at", "id"],
    "ix_audit_log_call_id_created_at": ["call_id", "created_at", "id"],
    "ix_audit_log_action_created_at": ["action", "created_at", "id"],
    "ix_audit_log_outcome_created_at": ["outcome", "created_at", "id"],
}
_OLD_INDEXES = {
    "ix_audit_log_created_at": ["created_at"],
    "ix_audit_log_user_id_created_at": ["user_id", "created_at"],
    "ix_audit_log_account_created_at": ["account", "created_at"],
    "ix_audit_log_outcome": ["outcome"],
}


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("chain_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("outcome_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("outcome_hash", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_audit_log_chain_seq", ["chain_seq"])
        batch.create_unique_constraint("uq_audit_log_outcome_seq", ["outcome_seq"])
    for name in _OLD_INDEXES:
        op.drop_index(name, table_name="audit_log")
    for name, columns in _NEW_INDEXES.items():
        op.create_index(name, "audit_log", columns)
    head = op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("base_seq", sa.BigInteger(), nullable=False),
        sa.Column("base_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
    )
    seq, last = _chain_existing_rows()
    op.bulk_insert(head, [{"id": chain.HEAD_ID, "seq": seq, "hash": last, "base_seq": 0, "base_hash": chain.GENESIS}])


def _chain_existing_rows() -> tuple[int, str]:
    """Rows written before this revision are chained in id order, each as one opening entry
    over its current state (so a row still pending gets its closing entry when it completes)."""
    from bot.db.models import AuditRow

    bind = op.get_bind()
    columns = [AuditRow.id] + [getattr(AuditRow, name) for name in chain.OPENING_FIELDS + chain.OUTCOME_FIELDS]
    seq, last = 0, chain.GENESIS
    for row in bind.execute(sa.select(*columns).order_by(AuditRow.id)).mappings().all():
        seq += 1
        last = chain.link(last, chain.opening_entry(row, seq, closed=False))
        bind.execute(
            sa.text("UPDATE audit_log SET chain_seq = :seq, chain_hash = :hash WHERE id = :id"),
            {"seq": seq, "hash": last, "id": row["id"]},
        )
    return seq, last


def downgrade() -> None:
    op.drop_table("audit_chain")
    for name in _NEW_INDEXES:
        op.drop_index(name, table_name="audit_log")
    for name, columns in _OLD_INDEXES.items():
        op.create_index(name, "audit_log", columns)
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("uq_audit_log_outcome_seq", type_="unique")
        batch.drop_constraint("uq_audit_log_chain_seq", type_="unique")
        batch.drop_column("outcome_hash")
        batch.drop_column("outcome_seq")
        batch.drop_column("chain_hash")
        batch.drop_column("chain_seq")
