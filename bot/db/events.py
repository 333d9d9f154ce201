"""What the audit table saw, told to an observer after the transaction commits (logs, metrics).

The chain functions note each row they open or close on the session; `Database.session` hands
the notes to its observer once the commit succeeded, so a rolled-back row is never reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

_KEY = "callbot.audit_events"
PENDING = "pending"


@dataclass(frozen=True)
class AuditEvent:
    audit_id: int
    outcome: str  # `pending`: the row was opened before a provider request; else its final outcome
    action: str | None
    account: str | None
    provider: str | None
    call_id: str | None
    user_id: str | None
    team_id: str | None
    source: str | None
    error_message: str | None = None
    latency_ms: int | None = None  # the provider request's, when the outcome carries it

    @property
    def final(self) -> bool:
        return self.outcome != PENDING


Observer = Callable[[Sequence[AuditEvent]], None]


def note(session: AsyncSession, audit_id: int, row: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
    """`row`: the attempt's columns; `outcome`: the outcome columns (the row's own when final at insert)."""
    session.info.setdefault(_KEY, []).append(
        AuditEvent(
            audit_id=audit_id,
            outcome=str(outcome.get("outcome")),
            action=row.get("action"),
            account=row.get("account"),
            provider=row.get("provider"),
            call_id=row.get("call_id"),
            user_id=row.get("user_id"),
            team_id=row.get("team_id"),
            source=row.get("source"),
            error_message=outcome.get("error_message"),
            latency_ms=outcome.get("latency_ms"),
        )
    )


def take(session: AsyncSession) -> list[AuditEvent]:
    events: list[AuditEvent] = session.info.pop(_KEY, [])
    return events
