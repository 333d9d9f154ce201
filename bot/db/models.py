"""Tables. Changes here go with an alembic migration in migrations/versions/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite has no 64-bit autoincrement type other than INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class GrantRow(Base):
    """A subject (user or user group) holds an action or a role on an account, maybe only in one
    channel, maybe until a moment. Expired rows are kept (listed as expired) until revoked."""

    __tablename__ = "grants"
    __table_args__ = (
        UniqueConstraint(
            "team_id",
            "subject_kind",
            "user_id",
            "action",
            "account",
            "channel",
            name="uq_grants_team_subject_action_account_channel",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The workspace (bot/db/workspaces.py) the grant holds in: never in another, whatever the user id.
    team_id: Mapped[str] = mapped_column(String(32))
    # A Slack user id, or a user group id (`S…`) when subject_kind is "group".
    user_id: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))  # an action or a role name
    account: Mapped[str] = mapped_column(String(64))
    granted_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    subject_kind: Mapped[str] = mapped_column(String(8), default="user", server_default="user")
    # NULL means every channel (and the shell). NULLs are distinct in unique constraints, so
    # repo.add_grant looks the grant up first instead of relying on the constraint alone.
    channel: Mapped[str | None] = mapped_column(String(32))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Actions this grant allows are held for two-person approval (needs the account's approvers_channel).
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class RoleRow(Base):
    """A custom role: a named set of actions (built-in roles live in bot/domain/permissions.py)."""

    __tablename__ = "roles"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    actions: Mapped[list[str]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditRow(Base):
    """One row per attempt. Inserted `pending` before any provider request, completed after it.

    Tamper evidence (bot/db/chain.py): inserting the row appends its *opening* entry to the audit
    hash chain (`chain_seq`, `chain_hash`); completing a pending row appends a *closing* entry
    (`outcome_seq`, `outcome_hash`) over the outcome fields; what the provider confirmed later appends
    a *confirming* entry (`confirm_seq`, `confirm_hash`). Nothing else may change a row."""

    __tablename__ = "audit_log"
    # Every Slack filter is one of these columns, newest first, paged by (created_at, id).
    __table_args__ = (
        Index("ix_audit_log_created_at_id", "created_at", "id"),
        Index("ix_audit_log_user_id_created_at", "user_id", "created_at", "id"),
        Index("ix_audit_log_account_created_at", "account", "created_at", "id"),
        Index("ix_audit_log_call_id_created_at", "call_id", "created_at", "id"),
        Index("ix_audit_log_action_created_at", "action", "created_at", "id"),
        Index("ix_audit_log_outcome_created_at", "outcome", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[str | None] = mapped_column(String(32))
    # The workspace whose audit the row is in: the hashed `team_id` where the row has one, else (a
    # row written before workspaces, or by the shell then) the workspace it was assigned to at start
    # (bot/db/workspaces.py). Not hashed, so assigning old rows leaves the chain intact; `audit
    # verify` checks it equals `team_id` wherever that is set. NULL: not assigned yet (shown nowhere).
    workspace_id: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str | None] = mapped_column(String(128))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    command_text: Mapped[str] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(String(32))
    account: Mapped[str | None] = mapped_column(String(64))
    provider: Mapped[str | None] = mapped_column(String(16))
    call_id: Mapped[str | None] = mapped_column(String(128))
    request: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decision: Mapped[str | None] = mapped_column(String(16))
    grant_id: Mapped[int | None] = mapped_column(BigInteger)
    decision_basis: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))
    provider_status: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    provider_request_id: Mapped[str | None] = mapped_column(String(128))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    # True when the action ran on a frozen account under a `break-glass` grant (docs/permissions.md, "Security model").
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    chain_hash: Mapped[str | None] = mapped_column(String(64))
    outcome_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    outcome_hash: Mapped[str | None] = mapped_column(String(64))
    # What the provider later showed happened to the call (read back, or its signed callback):
    # at most one per row, appended to the chain as its *confirming* entry (confirm_seq, confirm_hash).
    confirmed_status: Mapped[str | None] = mapped_column(String(16))
    confirmed_word: Mapped[str | None] = mapped_column(String(32))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_via: Mapped[str | None] = mapped_column(String(16))
    confirm_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    confirm_hash: Mapped[str | None] = mapped_column(String(64))


class AuditChainRow(Base):
    """The head of the audit hash chain: one row (id 1). Appending an entry updates it first,
    which serialises appends across processes (a row lock on PostgreSQL, the write lock on
    SQLite). `base_*` is where the stored chain starts: 0 and the genesis hash until a purge
    removes a prefix of it."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    base_seq: Mapped[int] = mapped_column(BigInteger)
    base_hash: Mapped[str] = mapped_column(String(64))


class PendingChoice(Base):
    """A command waiting for the person to pick an account (ambiguous call id).

    Holds the command as typed (it may carry a password for the provider), so rows are deleted
    when used and expire after CHOICE_TTL.
    """

    __tablename__ = "pending_choices"

    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    accounts: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # "account": pick the account of an ambiguous call id (the command is run again, as typed);
    # "confirm": apply a saved flow, whose exact version the stored command names.
    purpose: Mapped[str] = mapped_column(String(16), default="account", server_default="account")


class SavedFlowRow(Base):
    """One version of a saved Bird callFlow. Rows are never removed: saving a name again adds a
    version, deleting a name marks all its versions deleted (who, when), so history stays for audit."""

    __tablename__ = "saved_flows"
    __table_args__ = (UniqueConstraint("team_id", "name", "version", name="uq_saved_flows_team_name_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    callflow: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # the wire form, as sent to Bird
    author: Mapped[str] = mapped_column(String(64))  # Slack user id (or `shell:NAME`)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[str | None] = mapped_column(String(64))


class FlowDraftRow(Base):
    """A callFlow being built in the Slack builder, kept here rather than in the view because
    Slack's `private_metadata` holds at most 3,000 characters. One person, one call: reopening the
    builder on the same call offers to resume it. Drafts older than DRAFT_TTL (flow_store) are ignored and
    purged; a draft is deleted once its flow has been applied."""

    __tablename__ = "flow_drafts"
    __table_args__ = (
        Index("ix_flow_drafts_team_id_user_id_account_call_id", "team_id", "user_id", "account", "call_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    commands: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # wire form, each command validated
    end_call: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class FreezeRow(Base):
    """`/call freeze on=ACCOUNT`: while a row has no `lifted_at`, call actions on that account are
    refused (except under `break-glass`). Rows are never deleted: lifting sets who and when."""

    __tablename__ = "freezes"
    __table_args__ = (Index("ix_freezes_team_id_account_lifted_at", "team_id", "account", "lifted_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    frozen_by: Mapped[str] = mapped_column(String(64))
    frozen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lifted_by: Mapped[str | None] = mapped_column(String(64))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lift_reason: Mapped[str | None] = mapped_column(Text)


class ApprovalRow(Base):
    """A call action waiting for a second person (two-person approval, docs/permissions.md).

    `text` is the command as the requester gave it (it may carry a provider password, like
    pending_choices): it is what runs on approval. `action_hash` binds the approval to exactly the
    provider request derived from it; `preview` is that request with every secret masked, as shown
    to the approvers. Rows are kept (status changes only) so the history stays for audit."""

    __tablename__ = "approvals"
    __table_args__ = (Index("ix_approvals_status_expires_at", "status", "expires_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(String(32))
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[str] = mapped_column(String(128))
    requester: Mapped[str] = mapped_column(String(64))
    requester_channel: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    preview: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    action_hash: Mapped[str] = mapped_column(String(64))
    # pending → approved → executed; or pending → denied | expired.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))  # of the execution, once executed
    request_audit_id: Mapped[int | None] = mapped_column(BigInteger)
    result_audit_id: Mapped[int | None] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(32))  # the approvers channel it was posted to
    message_ts: Mapped[str | None] = mapped_column(String(32))


class BatchRow(Base):
    """One bulk action (`/call hangup-all`): who, on which account, with what filter, how far.

    status: running → finished | cancelled; a process that dies mid-batch leaves it `running` with
    a stale `heartbeat_at`, which the next start-up turns into `interrupted` (resumable)."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_status_heartbeat_at", "status", "heartbeat_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(String(32))
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # the action run on each call: "hangup"
    requested_by: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    filter: Mapped[dict[str, Any]] = mapped_column(JSON)  # status / to / from / max, as asked
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="running")
    total: Mapped[int] = mapped_column(Integer, default=0)
    ended: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(64))
    audit_id: Mapped[int | None] = mapped_column(BigInteger)  # the batch's own audit row
    message_channel: Mapped[str | None] = mapped_column(String(32))  # the progress message
    message_ts: Mapped[str | None] = mapped_column(String(32))


class BatchItemRow(Base):
    """One call of a batch. todo → sending (its audit row is pending) → ended | failed. An item
    left `sending` by a dead process is in doubt: resume checks the call's state first."""

    __tablename__ = "batch_items"
    __table_args__ = (
        UniqueConstraint("batch_id", "call_id", name="uq_batch_items_batch_id_call_id"),
        Index("ix_batch_items_batch_id_state", "batch_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(BigInteger)
    call_id: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), default="todo")
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PendingReply(Base):
    """Where to tell the person how a pending call action ended if its process dies first: the
    `response_url` Slack sent with the request (bot/db/pending.py). Whoever holds it may post in
    the conversation for 30 minutes, so it is kept apart from the audit row (never chained,
    exported or shown) and deleted once the row is complete."""

    __tablename__ = "pending_replies"

    audit_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class WebhookReceipt(Base):
    """A provider callback callbot verified and took (bot/db/webhooks.py): the same one delivered
    again, by whomever, finds its receipt and is refused as a replay. The key is all there is:
    what was signed is named by `digest` (SHA-256, hex), never kept. Purged once old."""

    __tablename__ = "webhook_receipts"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class WorkspaceRow(Base):
    """A Slack workspace callbot serves (bot/db/workspaces.py): the one its bot token belongs to
    (read from `auth.test` at start), or one installed by OAuth. `assigned_at`: when the rows
    written before callbot knew workspaces were given to it (at most one workspace has it)."""

    __tablename__ = "workspaces"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(128))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
