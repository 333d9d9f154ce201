"""Audit rows left `pending` by a process that stopped between a request and its answer, and how
to reach the people who asked.

A call action typed in Slack stores the `response_url` Slack sent with it (`PendingReply`),
written with the pending row and deleted with its completion. When the sweep closes a row as
`unknown`, the URL comes back with it while Slack still accepts it, so the person hears that
callbot never learned what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import chain
from bot.db.models import AuditRow, BatchItemRow, BatchRow, PendingReply, WorkspaceRow
from bot.db.session import Database

# Slack takes messages on a response_url for 30 minutes after the request.
REPLY_WINDOW = timedelta(minutes=30)
ABANDONED = "callbot stopped before the provider answered; check the call's state"


@dataclass(frozen=True)
class Abandoned:
    """A row the sweep closed as `unknown`; `response_url` only while Slack still accepts it."""

    audit_id: int
    created_at: datetime
    action: str | None
    account: str | None
    call_id: str | None
    response_url: str | None = field(default=None, repr=False)
    # Its workspace (the person is told there, with that workspace's token).
    team_id: str | None = None
    enterprise_id: str | None = None


async def keep_reply(session: AsyncSession, audit_id: int, url: str, now: datetime) -> None:
    """With the pending row, in its transaction: where to tell the person if the process dies."""
    session.add(PendingReply(audit_id=audit_id, url=url, created_at=now))


async def forget_reply(session: AsyncSession, audit_id: int) -> None:
    """With the row's completion: the person gets their answer the usual way."""
    await session.execute(delete(PendingReply).where(PendingReply.audit_id == audit_id))


async def close_abandoned(db: Database, older_than: datetime, now: datetime) -> list[Abandoned]:
    """Rows still `pending` from before `older_than` become `unknown`.

    Only rows older than any request still in flight may be touched: other processes may share
    the database (the caller's grace sees to that). The rows of a bulk action whose batch is still
    running (its heartbeat fresh) stay pending for as long as the batch runs; once the batch is
    marked interrupted, they are abandoned too.
    """
    running = select(BatchRow.id).where(BatchRow.status == "running")
    # A running batch's own row, and those of its calls (which may wait out 429s for minutes):
    # the batch's heartbeat says when they are abandoned (`close_batch_rows`), not the grace.
    batch_rows = select(BatchRow.audit_id).where(BatchRow.id.in_(running), BatchRow.audit_id.is_not(None))
    call_rows = select(BatchItemRow.audit_id).where(
        BatchItemRow.batch_id.in_(running), BatchItemRow.audit_id.is_not(None)
    )
    async with db.chain_session() as session:
        stale = (
            await session.execute(
                select(
                    AuditRow.id,
                    AuditRow.created_at,
                    AuditRow.action,
                    AuditRow.account,
                    AuditRow.call_id,
                    AuditRow.workspace_id,
                    WorkspaceRow.enterprise_id,
                )
                .outerjoin(WorkspaceRow, WorkspaceRow.team_id == AuditRow.workspace_id)
                .where(
                    AuditRow.outcome == chain.PENDING,
                    AuditRow.created_at < older_than,
                    AuditRow.id.not_in(batch_rows),
                    AuditRow.id.not_in(call_rows),
                )
                .order_by(AuditRow.id)
            )
        ).all()
        outcome = {"outcome": "unknown", "completed_at": now, "error_message": ABANDONED}
        closed = set(await chain.close_rows(session, {row.id: outcome for row in stale}))
        usable = now - REPLY_WINDOW
        # A handful of rows at most (call actions in flight), unlike `closed` after a batch.
        urls = dict((await session.execute(select(PendingReply.audit_id, PendingReply.url))).all())
        # Every URL whose row is no longer pending goes (a completion that could not delete its
        # own), and those Slack would refuse anyway.
        still_pending = exists().where(AuditRow.id == PendingReply.audit_id, AuditRow.outcome == chain.PENDING)
        await session.execute(delete(PendingReply).where(or_(~still_pending, PendingReply.created_at <= usable)))
    return [
        Abandoned(
            row.id,
            row.created_at,
            row.action,
            row.account,
            row.call_id,
            urls.get(row.id) if row.created_at > usable else None,
            row.workspace_id,
            row.enterprise_id,
        )
        for row in stale
        if row.id in closed
    ]


async def close_batch_rows(db: Database, batch_ids: list[int], now: datetime) -> int:
    """The calls of batches just marked interrupted (their process stopped beating) whose requests
    were out: their rows become `unknown` at once, as the batch's resume takes over (it checks
    each such call's state before sending again). Returns how many."""
    if not batch_ids:
        return 0
    async with db.chain_session() as session:
        stale = (
            await session.execute(
                select(AuditRow.id, BatchItemRow.batch_id)
                .join(BatchItemRow, BatchItemRow.audit_id == AuditRow.id)
                .where(BatchItemRow.batch_id.in_(batch_ids), AuditRow.outcome == chain.PENDING)
            )
        ).all()
        outcomes = {
            row.id: {
                "outcome": "unknown",
                "completed_at": now,
                "error_message": f"callbot stopped while batch #{row.batch_id} was sending this; check the call's state",
            }
            for row in stale
        }
        return len(await chain.close_rows(session, outcomes))
