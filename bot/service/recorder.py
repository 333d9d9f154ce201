"""The audit rows of attempts: recorded before anything happens, completed after, secrets masked.

Every use case writes through here, so an attempt always leaves exactly one row (refusals and
invalid input included) and nothing secret reaches the table or a reply.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.db import repo, workspaces
from bot.db.models import AuditRow, utcnow
from bot.db.session import Database
from bot.domain.errors import CallbotError
from bot.domain.outcomes import OUTCOME_EMOJI, Outcome
from bot.domain.permissions import Decision
from bot.domain.redact import Redactor
from bot.domain.replies import Reply, Tone
from bot.domain.storable import storable
from bot.service.steps import Clock, Invocation

log = logging.getLogger(__name__)

_REFUSED_TITLES: dict[str, str] = {Outcome.DENIED: "Not allowed.", Outcome.RATE_LIMITED: "Too many actions: slow down."}


class Recorder:
    def __init__(self, db: Database, redactor: Redactor, clock: Clock) -> None:
        self.db = db
        self.redactor = redactor
        self.now = clock

    def fields(
        self,
        inv: Invocation,
        *,
        outcome: str,
        decision: Decision | None = None,
        request: dict[str, Any] | None = None,
        error_message: str | None = None,
        completed: bool = False,
        action: str | None = None,
        account: str | None = None,
        provider: str | None = None,
        call_id: str | None = None,
        break_glass: bool = False,
    ) -> dict[str, Any]:
        """A new audit row's columns, secrets masked. `completed`: the row is final as written (no
        provider step follows). Bulk actions insert these in group commits (bot/db/batches.py)."""
        now = self.now()
        row = {
            "created_at": now,
            "break_glass": break_glass,
            "source": inv.source,
            # The workspace (bot/db/workspaces.py): none yet from a shell that knows none (assigned
            # at the first start that reads it); workspace_id, what shows the row, equals it.
            "team_id": inv.team or None,
            "workspace_id": inv.team or None,
            "user_id": inv.user_id,
            "user_name": inv.user_name,
            "channel_id": inv.channel_id,
            "command_text": self.redactor.text(inv.command_text),
            "action": action,
            "account": account,
            "provider": provider,
            "call_id": call_id,
            "request": self.redactor.value(request) if request is not None else None,
            "decision": None if decision is None else ("allowed" if decision.allowed else "denied"),
            "grant_id": decision.grant.id if decision and decision.grant else None,
            "decision_basis": decision.basis[:255] if decision else None,
            "outcome": outcome,
            "error_message": self.redactor.text(error_message) if error_message else None,
            "idempotency_key": inv.idempotency_key,
            "completed_at": now if completed else None,
        }
        return _storable_row(row)

    def outcome_fields(self, **fields: Any) -> dict[str, Any]:
        """A pending row's outcome columns, secrets masked."""
        if fields.get("error_message"):
            fields["error_message"] = self.redactor.text(fields["error_message"])
        if fields.get("result") is not None:
            fields["result"] = self.redactor.value(fields["result"])
        fields.setdefault("completed_at", utcnow())
        return _storable_row(fields)

    async def record(self, inv: Invocation, *, reply_url: str | None = None, **fields: Any) -> AuditRow:
        """Inserts a new audit row (see `fields` for what it takes); `reply_url`: see `open`."""
        return await repo.insert_audit(self.db, inv.team, reply_url=reply_url, **self.fields(inv, **fields))

    async def open(self, inv: Invocation, *, announce: bool = False, **fields: Any) -> AuditRow | Reply:
        """Records a row before acting on it. A replayed request (its idempotency key used before)
        gets the earlier attempt's answer instead: nothing is done twice. `announce`: keep the
        request's response_url with the row, so a restart can say the outcome is unknown."""
        try:
            return await self.record(inv, reply_url=inv.response_url if announce else None, **fields)
        except repo.DuplicateRequest:
            earlier = await repo.audit_by_key(self.db, inv.idempotency_key or "")
            assert earlier is not None
            return duplicate_reply(earlier, inv.team)

    async def replay(self, inv: Invocation) -> Reply | None:
        """The answer to a request Slack delivered before (same idempotency key), else None."""
        if not inv.idempotency_key:
            return None
        earlier = await repo.audit_by_key(self.db, inv.idempotency_key)
        return self.redact(duplicate_reply(earlier, inv.team)) if earlier is not None else None

    async def refuse(
        self,
        inv: Invocation,
        error: CallbotError,
        *,
        decision: Decision | None = None,
        break_glass: bool = False,
        **context: Any,
    ) -> Reply:
        """An attempt refused before anything was done: one final row, and the reply saying why.
        A replayed request (Slack delivering it again) is not recorded twice: it gets the first answer."""
        try:
            row = await self.record(
                inv,
                outcome=error.outcome,
                decision=decision,
                error_message=error.message,
                completed=True,
                break_glass=break_glass,
                **context,
            )
        except repo.DuplicateRequest:
            earlier = await repo.audit_by_key(self.db, inv.idempotency_key or "")
            assert earlier is not None
            return self.redact(duplicate_reply(earlier, inv.team))
        tone = Tone.DENIED if error.outcome in (Outcome.DENIED, Outcome.RATE_LIMITED) else Tone.INVALID
        title = _REFUSED_TITLES.get(error.outcome, "That command is not valid.")
        return Reply(tone, title, (error.message,), audit_id=row.id, field=getattr(error, "word", None))

    async def complete(self, audit_id: int, **fields: Any) -> None:
        fields = self.outcome_fields(**fields)
        try:
            if not await repo.complete_audit(self.db, audit_id, **fields):
                # Closed meanwhile as `unknown` (a restart judged the request abandoned): the chain
                # keeps that entry, so the real outcome goes to the log rather than nowhere.
                log.warning("audit row #%s was already closed; its outcome was %s", audit_id, fields.get("outcome"))
        except Exception:
            # The provider already acted: the person must still hear about it. The row stays
            # pending and becomes `unknown` at the next start-up.
            log.exception("could not complete audit row #%s", audit_id)

    def redact(self, reply: Reply) -> Reply:
        """The reply with every configured secret masked: what may leave for Slack or the shell."""
        return reply.map_text(self.redactor.text)


# The audit columns of bounded length: PostgreSQL refuses longer text (SQLite would keep it).
_LENGTHS: dict[str, int] = {
    column.name: length for column in AuditRow.__table__.columns if (length := getattr(column.type, "length", None))
}


def _storable_row(fields: dict[str, Any]) -> dict[str, Any]:
    """Every attempt leaves its row, whatever its text: characters no database stores become
    U+FFFD (NUL from a pasted command, a lone surrogate from a JSON payload), and text longer than
    its column (a 300-character "call id") is cut, ending in "…". Done after redaction, on what is
    written and hashed into the audit chain."""
    row: dict[str, Any] = storable(fields)
    for name, limit in _LENGTHS.items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            row[name] = value[: limit - 1] + "…"
    return row


def duplicate_reply(row: AuditRow, team: str) -> Reply:
    if not workspaces.same(row.workspace_id, team):
        # Slack's trigger ids are unique: the same one from another workspace is forged or replayed
        # there. Nothing of the other workspace's row is shown.
        return Reply(Tone.DENIED, "Not allowed.", ("This request was already used: nothing was done.",))
    if row.outcome == Outcome.PENDING:
        return Reply(Tone.INFO, "This request is already being handled; nothing was sent twice.", audit_id=row.id)
    detail = (row.error_message,) if row.error_message else ()
    emoji = OUTCOME_EMOJI.get(row.outcome, "")
    return Reply(
        Tone.INFO,
        f"This request was already handled: {emoji} {row.outcome}. Nothing was sent twice.",
        detail,
        audit_id=row.id,
    )
