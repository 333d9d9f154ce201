"""The sweep of abandoned attempts: audit rows a process left `pending` when it stopped between a
provider request and its answer become `unknown`, and each person who asked from Slack (recently
enough for Slack to take a message) is told so.

The grace (Settings.pending_grace) is longer than any request a live process can still be
waiting on, so a row closed here belongs to a process that stopped, never to a slow request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from bot.db import pending
from bot.db.session import Database
from bot.domain.redact import Redactor
from bot.domain.replies import Reply, Tone
from bot.service.steps import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovered:
    """A row closed as `unknown`, and the final message for whoever asked (when Slack still takes one)."""

    audit_id: int
    reply: Reply
    response_url: str | None = field(default=None, repr=False)
    team_id: str | None = None
    enterprise_id: str | None = None


async def recover(db: Database, grace_seconds: float, now: Clock, redactor: Redactor) -> list[Recovered]:
    when = now()
    rows = await pending.close_abandoned(db, when - timedelta(seconds=grace_seconds), when)
    if rows:
        log.warning("%d audit rows were still pending from a process that stopped; marked unknown", len(rows))
    return [
        Recovered(row.audit_id, _reply(row).map_text(redactor.text), row.response_url, row.team_id, row.enterprise_id)
        for row in rows
    ]


def _reply(row: pending.Abandoned) -> Reply:
    target = f"{row.account}:{row.call_id}" if row.account and row.call_id else None
    what = f"`{row.action} {target}`" if row.action and target else "your request"
    check = f"Check the call before trying again: `/call status {target}`." if target else "Check before trying again."
    return Reply(
        Tone.UNKNOWN,
        f"callbot stopped before it heard back about {what}.",
        ("The request may or may not have reached the provider, so nobody can say whether the call changed.", check),
        audit_id=row.audit_id,
    )
