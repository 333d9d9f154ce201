"""Confirmations of audit rows: what the provider showed happened to the call after the action
(bot/domain/confirmation.py). Each is a confirming entry in the audit hash chain (bot/db/chain.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.db import chain
from bot.db.models import AuditRow
from bot.db.session import Database
from bot.domain.confirmation import CONFIRMED_ACTIONS

_SENT = chain.CONFIRMABLE


@dataclass(frozen=True)
class Unconfirmed:
    """A row a confirmation may still land on."""

    audit_id: int
    created_at: datetime
    action: str
    account: str
    call_id: str
    outcome: str


async def confirm(db: Database, confirmations: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """Records each row's confirmation (its columns: Seen.fields()). Returns the ids recorded; a
    row confirmed already keeps its first confirmation."""
    if not confirmations:
        return []
    async with db.chain_session() as session:
        return await chain.confirm_rows(session, confirmations)


def _unconfirmed() -> Any:
    return select(
        AuditRow.id, AuditRow.created_at, AuditRow.action, AuditRow.account, AuditRow.call_id, AuditRow.outcome
    ).where(
        AuditRow.confirm_seq.is_(None),
        AuditRow.action.in_(sorted(CONFIRMED_ACTIONS)),
        AuditRow.call_id.is_not(None),
        AuditRow.account.is_not(None),
    )


async def latest_for_call(db: Database, account: str, call_id: str, since: datetime) -> Unconfirmed | None:
    """The newest unconfirmed call action on this call since `since` whose request went out
    (or may have): what a provider's callback about the call confirms."""
    async with db.session() as session:
        row = (
            await session.execute(
                _unconfirmed()
                .where(
                    AuditRow.account == account,
                    AuditRow.call_id == call_id,
                    AuditRow.outcome.in_(_SENT),
                    AuditRow.created_at >= since,
                )
                .order_by(AuditRow.created_at.desc(), AuditRow.id.desc())
                .limit(1)
            )
        ).first()
    return None if row is None else Unconfirmed(*row)


async def unresolved(db: Database, since: datetime, limit: int) -> list[Unconfirmed]:
    """`unknown` call actions since `since` with no confirmation yet, oldest first."""
    async with db.session() as session:
        rows = (
            await session.execute(
                _unconfirmed()
                .where(AuditRow.outcome == "unknown", AuditRow.created_at >= since)
                .order_by(AuditRow.created_at, AuditRow.id)
                .limit(limit)
            )
        ).all()
    return [Unconfirmed(*row) for row in rows]


async def rows(db: Database, audit_ids: list[int]) -> list[Unconfirmed]:
    """These rows, when they are unconfirmed call actions."""
    if not audit_ids:
        return []
    async with db.session() as session:
        found = (await session.execute(_unconfirmed().where(AuditRow.id.in_(audit_ids)).order_by(AuditRow.id))).all()
    return [Unconfirmed(*row) for row in found]
