"""Confirmations of audit rows: what the provider showed happened to the call after the action
(bot/domain/confirmation.py). Each is a confirming entry in the audit hash chain (bot/db/chain.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from bot.db import chain
from bot.db.models import AuditRow
from bot.db.session import Database
from bot.domain.confirmation import CONFIRMED_ACTIONS

# Rows whose request may have reached the provider: only these have a call state to confirm
# (a callback leaves a `pending` one alone: until it closes nobody knows whether it went out).
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


@dataclass(frozen=True)
class LastAction:
    """The last call action on a call whose request went out (or may have), confirmed or not."""

    audit_id: int
    created_at: datetime
    action: str
    outcome: str
    confirmed: bool


def _last_on_call(account: str, call_id: str, since: datetime) -> Any:
    # Call ids are compared without case: a person may type a Twilio SID in upper-case hex (the
    # spec allows either, and the row keeps it as typed), the provider's callbacks write it in
    # lower case. The ids stand in the recording order (rows are inserted under the chain head's
    # lock), which clocks of several processes need not agree on.
    return (
        select(AuditRow.id, AuditRow.created_at, AuditRow.action, AuditRow.outcome, AuditRow.confirm_seq.is_not(None))
        .where(
            AuditRow.account == account,
            func.lower(AuditRow.call_id) == call_id.lower(),
            AuditRow.action.in_(sorted(CONFIRMED_ACTIONS)),
            AuditRow.outcome.in_(_SENT),
            AuditRow.created_at >= since,
        )
        .order_by(AuditRow.id.desc())
        .limit(1)
    )


async def last_for_call(db: Database, account: str, call_id: str, since: datetime) -> LastAction | None:
    """The last call action on this call since `since` that may have reached the provider: the
    only row a provider's callback about the call may confirm."""
    async with db.session() as session:
        row = (await session.execute(_last_on_call(account, call_id, since))).first()
    return None if row is None else LastAction(*row)


async def confirm_last(
    db: Database, account: str, call_id: str, since: datetime, audit_id: int, fields: Mapping[str, Any]
) -> bool:
    """Records the confirmation `fields` on row `audit_id` when it is still the last call action on
    the call (`last_for_call`) and unconfirmed. Checked with the chain head held, so an action on
    the call recorded since it was read is never passed over."""
    async with db.chain_session() as session:
        await chain.lock_head(session)
        last = (await session.execute(_last_on_call(account, call_id, since))).first()
        if last is None or last[0] != audit_id:
            return False
        return bool(await chain.confirm_rows(session, {audit_id: fields}))


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
