"""Batches already started: Cancel (the button or `/call batch ID cancel`), resume after an
interruption, `/call batch ID`, and the sweep that finds batches whose process died."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from bot.db import batches, pending
from bot.db.models import BatchRow
from bot.db.session import Database
from bot.domain.errors import CallbotError, ForeignWorkspace, InvalidInput, PermissionDenied
from bot.domain.outcomes import Outcome
from bot.domain.permissions import BULK, Decision
from bot.domain.replies import (
    Choice,
    Reply,
    Tone,
    mention,
)
from bot.providers.base import ProviderClient
from bot.service.access import Access
from bot.service.bulk.plans import (
    FAILURES_SHOWN,
    BatchNotice,
    BatchRun,
    resume_button,
    stored_filter_text,
)
from bot.service.recorder import Recorder
from bot.service.safety import Safety
from bot.service.steps import Clock, Invocation

log = logging.getLogger(__name__)

CANCEL_ACTION = "batch.cancel"
RESUME_ACTION = "batch.resume"
SHOW_ACTION = "batch.show"  # audited when refused only: reading a batch's state changes nothing


class BatchControl:
    def __init__(
        self,
        db: Database,
        client_in: Callable[[str, str], ProviderClient],
        clock: Clock,
        recorder: Recorder,
        access: Access,
        safety: Safety,
        stale_after: timedelta,
    ) -> None:
        self.db = db
        # The account's client in a workspace; InvalidInput where it does not exist (bot/service/live.py).
        self.client_in = client_in
        self.now = clock
        self.recorder = recorder
        self.access = access
        self.safety = safety
        self.stale_after = stale_after

    async def cancel(self, inv: Invocation, batch_id: int) -> Reply:
        """Cancel (button or `/call batch ID cancel`): the requester, or anyone holding `bulk` on the
        account. The runner stops at its next tick (≤ 1 s); requests in flight finish."""
        inv = replace(inv, text=f"batch {batch_id} cancel", idempotency_key=None)
        found = await self._batch_for(inv, batch_id, CANCEL_ACTION, allow_requester=True)
        if isinstance(found, Reply):
            return found
        batch, _ = found
        context: dict[str, Any] = {"action": CANCEL_ACTION, "account": batch.account, "request": {"batch": batch_id}}
        if not await batches.request_cancel(self.db, batch_id, inv.user_id):
            error = InvalidInput(None, f"Batch #{batch_id} is {batch.status}: there is nothing to cancel.")
            return await self.recorder.refuse(inv, error, **context)
        row = await self.recorder.record(inv, outcome=Outcome.SUCCEEDED, completed=True, **context)
        return Reply(
            Tone.INFO,
            f"Stopping batch #{batch_id}…",
            ("Requests already sent finish; no new hang-up starts. The progress message shows the result.",),
            audit_id=row.id,
        )

    async def resume(self, inv: Invocation, batch_id: int) -> Reply | BatchRun:
        """An interrupted batch, finished by whoever holds `bulk` on its account now (their grant
        decides; the freeze applies). Items already handled are not touched."""
        inv = replace(inv, text=f"batch {batch_id} resume", idempotency_key=None)
        found = await self._batch_for(inv, batch_id, RESUME_ACTION, allow_requester=False)
        if isinstance(found, Reply):
            return found
        batch, decision = found
        assert decision is not None  # allow_requester=False: always decided
        context: dict[str, Any] = {"action": RESUME_ACTION, "account": batch.account, "request": {"batch": batch_id}}
        try:  # the batch's workspace is this one (_batch_for); the account may no longer be shared with it
            self.client_in(inv.team, batch.account)
        except InvalidInput:
            error = InvalidInput(batch.account, "is no longer a configured account: the batch cannot resume there.")
            return await self.recorder.refuse(inv, error, **context)
        cleared = await self.safety.check_freeze(inv, batch.account, decision, batch.reason, context)
        if isinstance(cleared, Reply):
            return cleared
        decision, break_glass = cleared.decision, cleared.break_glass
        # A batch whose process died moments ago may not be marked yet (the server looks every 10 s;
        # the shell not at all): mark it now, so resume does not wait for the sweep.
        if batch.status == batches.RUNNING and batch_id in await self._mark_interrupted():
            batch.status = batches.INTERRUPTED
        if batch.status != batches.INTERRUPTED or not await batches.claim_for_resume(self.db, batch_id):
            why = (
                f"Batch #{batch_id} is still running (its process is alive): there is nothing to resume."
                if batch.status == batches.RUNNING
                else f"Batch #{batch_id} is {batch.status}: only an interrupted batch can resume."
            )
            return await self.recorder.refuse(inv, InvalidInput(None, why), decision=decision, **context)
        row = await self.recorder.record(
            inv, outcome=Outcome.PENDING, decision=decision, break_glass=break_glass, **context
        )
        done = await batches.counts(self.db, batch_id)
        return BatchRun(
            batch_id,
            inv,
            batch.account,
            decision,
            row.id,
            batch.total,
            stored_filter_text(batch),
            resumed=True,
            reason=batch.reason,
            ended_before=done.get(batches.ENDED, 0),
            failed_before=done.get(batches.FAILED, 0),
        )

    async def show(self, inv: Invocation, batch_id: int) -> Reply:
        found = await self._batch_for(
            replace(inv, text=f"batch {batch_id}", idempotency_key=None), batch_id, SHOW_ACTION, allow_requester=True
        )
        if isinstance(found, Reply):
            return found
        batch, _ = found
        failures = [item for item in await batches.items(self.db, batch_id) if item.state == batches.FAILED]
        lines = [
            f"{batch.ended:,} / {batch.total:,} ended, {batch.failed:,} failed.",
            f"Started by {mention(batch.requested_by)} at {batch.created_at.strftime('%Y-%m-%d %H:%M:%S UTC')}"
            + (f"; reason: {batch.reason}" if batch.reason else "."),
        ]
        if batch.cancel_requested_by:
            lines.append(f"Cancel asked by {mention(batch.cancel_requested_by)}.")
        lines += [f"• `{item.call_id}`: {item.error or 'failed'}" for item in failures[:FAILURES_SHOWN]]
        choices: tuple[Choice, ...] = ()
        if batch.status == batches.INTERRUPTED:
            lines.append(f"It was interrupted: `/call batch {batch_id} resume` finishes the calls left.")
            choices = (resume_button(batch_id),)
        title = f"Batch #{batch_id} on `{batch.account}`{stored_filter_text(batch)}: {batch.status}"
        return Reply(Tone.INFO, title, tuple(lines), audit_id=batch.audit_id, choices=choices)

    async def interrupted(self) -> list[BatchNotice]:
        """The sweep: running batches whose process stopped beating become `interrupted`; what their
        progress messages should now say."""
        notices = []
        for batch_id in await self._mark_interrupted():
            batch = await batches.get(self.db, batch_id)
            if batch is None:
                continue
            log.warning("batch #%s was interrupted (its process stopped); it can be resumed", batch_id)
            reply = Reply(
                Tone.UNKNOWN,
                f"Batch #{batch_id} on `{batch.account}` was interrupted: callbot stopped while it ran",
                (
                    f"{batch.ended:,} / {batch.total:,} ended, {batch.failed:,} failed before it stopped.",
                    f"`/call batch {batch_id} resume` (or Resume) finishes the rest; calls already handled "
                    "are not touched.",
                ),
                audit_id=batch.audit_id,
                choices=(resume_button(batch_id),),
            )
            notices.append(
                BatchNotice(
                    batch_id,
                    batch.message_channel,
                    batch.message_ts,
                    self.recorder.redact(reply),
                    batch.team_id,
                    batch.enterprise_id,
                )
            )
        return notices

    async def _mark_interrupted(self) -> list[int]:
        """Running batches whose process stopped beating become `interrupted`, and the rows of
        their calls whose requests were out become `unknown` (nobody will hear those answers)."""
        stopped = await batches.mark_interrupted(self.db, self.now(), self.stale_after)
        await pending.close_batch_rows(self.db, stopped, self.now())
        return stopped

    async def _batch_for(
        self, inv: Invocation, batch_id: int, action: str, *, allow_requester: bool
    ) -> tuple[BatchRow, Decision | None] | Reply:
        """The batch and the `bulk` decision that lets this person act on it (None: they started it,
        where that is enough); else the refusal, audited as `action`."""
        batch = await batches.get(self.db, batch_id)
        if batch is not None and batch.team_id != inv.team:
            # Another workspace's batch (a forged or foreign Cancel): its requester is not this person.
            foreign = ForeignWorkspace("batch")
            return await self.recorder.refuse(inv, foreign, action=action, request={"batch": batch_id})
        if batch is None:
            error: CallbotError = InvalidInput(
                None, f"There is no batch #{batch_id}.", "Its progress message names it (batch #12)."
            )
            return await self.recorder.refuse(inv, error, action=action, request={"batch": batch_id})
        if allow_requester and batch.requested_by == inv.user_id:
            return batch, None
        decision = await self.access.decide(inv, BULK, batch.account)
        if decision.allowed:
            return batch, decision
        error = PermissionDenied(BULK, batch.account, f"Batches on `{batch.account}` need `bulk` there.")
        return await self.recorder.refuse(
            inv, error, decision=decision, action=action, account=batch.account, request={"batch": batch_id}
        )
