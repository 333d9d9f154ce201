"""`/call hangup-all` and `/call batch`: ending every live call that matches a filter, safely.

The steps, each a method the chat layer calls in turn (plain values in and out):

1. `ask`: the checks that need no provider (account, filter, `bulk` permission, freeze, required
   reason), then the matching calls are counted (a provider read, audited as `calls.list`) and the
   person gets Confirm / Cancel with the count. Nothing is ended without that click.
2. `confirmed` (the click): every check again; with two-person approval the request goes to the
   approvers (the count becomes part of what is approved); else a `BatchPlan`.
3. `start`: the batch's own audit row (`hangup-all`, pending), the calls listed again and capped at
   the confirmed count (calls that started since are left for another run: the person approved a
   number, and it is never exceeded), the batch and its items written (bot/service/bulk/batches.py).
4. `run`: one audited hangup per call through the account's shared throttle (bot/service/bulk/hangup.py),
   progress reported about once a second, Cancel honoured between requests; the batch row is
   completed with the counts and the summary lists the failures.

A batch whose process died is marked `interrupted` by the server's sweep (its heartbeat stopped);
`/call batch ID resume` (or the Resume button) finishes the items left, never touching a call
already handled. Numbers in a filter are masked in audit rows and channel messages, as for
`/call list`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.db import repo
from bot.db.models import BatchRow
from bot.domain import grammar, phone
from bot.domain.errors import CallbotError, InvalidInput, PermissionDenied, PolicyDenied
from bot.domain.grammar import MAX_BATCH, BatchCommand, HangupAllCommand
from bot.domain.permissions import BULK, Decision
from bot.domain.replies import (
    BATCH_CANCEL_HANDLER,
    BATCH_RESUME_HANDLER,
    BULK_CONFIRM_HANDLER,
    Choice,
    ConfirmDialog,
    Reply,
    Tone,
    mention,
)
from bot.providers.base import CallFilter, ProviderClient
from bot.service.bulk import batches
from bot.service.bulk.engine import Progress
from bot.service.bulk.hangup import ALREADY_ENDED, BulkHangup
from bot.service.live import masked_number, normalised_number

if TYPE_CHECKING:
    from bot.service.core import Invocation, Service

log = logging.getLogger(__name__)

BULK_ACTION = "hangup-all"
CANCEL_ACTION = "batch.cancel"
RESUME_ACTION = "batch.resume"
SHOW_ACTION = "batch.show"  # audited when refused only: reading a batch's state changes nothing
COUNT_ACTION = "calls.list"
FAILURES_SHOWN = 15
# An approval row names one call; a bulk request names the filter instead.
ALL_CALLS = "*"


@dataclass(frozen=True)
class BatchPlan:
    """A confirmed (and, where required, approved) hang-up of the calls matching a filter: the
    calls still have to be listed (`start`)."""

    inv: Invocation
    command: HangupAllCommand
    account: str
    client: ProviderClient
    decision: Decision
    break_glass: bool


@dataclass(frozen=True)
class BatchRun:
    """A batch ready to run (new, or claimed for resume): `audit_id` is the row its end completes."""

    batch_id: int
    inv: Invocation
    account: str
    decision: Decision
    audit_id: int
    total: int
    filter_text: str
    resumed: bool = False
    reason: str | None = None
    # Handled by an earlier run (a resumed batch): where its progress starts.
    ended_before: int = 0
    failed_before: int = 0

    @property
    def start(self) -> Progress:
        return Progress(self.total, self.ended_before, self.failed_before, 0.0, self.ended_before + self.failed_before)

    @property
    def channel(self) -> str | None:
        return self.inv.channel_id


@dataclass(frozen=True)
class BatchNotice:
    """A batch found interrupted: its progress message (where it was posted) should now read `reply`."""

    batch_id: int
    channel: str | None
    message_ts: str | None
    reply: Reply


Report = Callable[[Reply], Awaitable[None]]


class BulkActions:
    """The bulk half of the service; it uses the service's grants, policy, audit and clients."""

    def __init__(self, service: Service, stale_after: timedelta = batches.STALE_AFTER) -> None:
        """`stale_after`: a running batch whose heartbeat is older belongs to a dead process."""
        self.service = service
        self.stale_after = stale_after
        self.hangup = BulkHangup(service)

    @staticmethod
    def command(text: str) -> HangupAllCommand | BatchCommand | None:
        """`/call hangup-all …` or `/call batch …`, parsed (no I/O); None for anything else,
        including a malformed one (the pipeline says why)."""
        try:
            parsed = grammar.parse(text)
        except InvalidInput:
            return None
        return parsed if isinstance(parsed, HangupAllCommand | BatchCommand) else None

    async def typed(self, inv: Invocation, command: HangupAllCommand | BatchCommand) -> Reply | BatchRun:
        if isinstance(command, HangupAllCommand):
            return await self.ask(inv, command)
        if command.sub == "cancel":
            return await self.cancel(inv, command.batch_id)
        if command.sub == "resume":
            return await self.resume(inv, command.batch_id)
        return await self.show(inv, command.batch_id)

    # -- 1. count and ask ------------------------------------------------------------------------

    async def ask(self, inv: Invocation, command: HangupAllCommand) -> Reply:
        s = self.service
        inv = replace(inv, text=command_text(command, masked=True), idempotency_key=None)
        plan = await self._prepare(inv, command)
        if isinstance(plan, Reply):
            return plan
        wanted = _call_filter(command)
        limit = command.max or MAX_BATCH
        context: dict[str, Any] = {
            "action": COUNT_ACTION,
            "account": plan.account,
            "provider": plan.client.provider,
            "request": {**_shown_filter(command), "for": BULK_ACTION},
        }
        row = await s._record(inv, outcome="pending", decision=plan.decision, **context)
        try:
            calls = [call async for call in plan.client.iter_calls(wanted, limit + 1)]
        except CallbotError as error:
            return await s.live._read_failed(row.id, error, f"Could not count the live calls of `{plan.account}`")
        await s._complete(row.id, outcome="succeeded", result={"calls": len(calls), "for": BULK_ACTION})
        about = filter_text(command)
        if not calls:
            return Reply(
                Tone.INFO,
                f"No live calls on `{plan.account}`{about}: nothing to hang up.",
                (f"{plan.client.display_name} lists none right now.",),
                audit_id=row.id,
            )
        count = min(len(calls), limit)
        beyond = len(calls) > limit
        stored = replace(command, max=count)
        token = secrets.token_urlsafe(16)
        await repo.save_choice(s.db, token, inv.user_id, command_text(stored), [plan.account], purpose="confirm")
        lines = [f"*{_calls(count)}* match now on `{plan.account}`{about}."]
        if beyond and command.max:
            lines.append(
                f"More calls match: `max={command.max:,}` ends the first {command.max:,} listed (newest first)."
            )
        elif beyond:
            lines.append(
                f"More than {MAX_BATCH:,} match: one batch ends at most {MAX_BATCH:,}; run it again for the rest."
            )
        if command.reason:
            lines.append(f"Reason: {command.reason}")
        lines.append(
            f"On Confirm callbot lists them again and hangs up at most {count:,} (calls that start meanwhile "
            "are left for another run), up to "
            f"{s.policy_of(plan.account).bulk_concurrency} at a time. Progress is posted here, with a Cancel button."
        )
        dialog = ConfirmDialog(
            title=f"End {_calls(count)}?",
            text=f"Hang up {_calls(count)} on {plan.account}{about}. This cannot be undone.",
            confirm=f"Hang up {count:,}",
        )
        buttons = (
            Choice(f"Hang up {_calls(count)}", token, style="danger", confirm=dialog, handler=BULK_CONFIRM_HANDLER),
            Choice("Cancel", f"{token}|{plan.account}", dismiss=True),
        )
        title = f"Hang up {_calls(count)} on `{plan.account}`?"
        return Reply(Tone.INFO, title, tuple(lines), audit_id=row.id, choices=buttons)

    # -- 2. the Confirm click --------------------------------------------------------------------

    async def confirmed(self, inv: Invocation, token: str) -> Reply | BatchPlan:
        """Checked again as the clicker now; the two-person rule applies here, as for any action."""
        s = self.service
        choice = await repo.take_choice(s.db, token, inv.user_id)
        if choice is None:
            refused = await s.refuse_foreign_choice(inv, token)
            return refused or Reply(
                Tone.INFO, "This confirmation has expired or was already used.", ("Run `/call hangup-all` again.",)
            )
        try:
            command = grammar.parse(choice.text)
        except InvalidInput:
            command = None
        if not isinstance(command, HangupAllCommand):
            return Reply(Tone.INFO, "This confirmation is no longer valid.", ("Run `/call hangup-all` again.",))
        inv = replace(inv, text=command_text(command, masked=True))
        plan = await self._prepare(inv, command)
        if isinstance(plan, Reply):
            return plan
        policy = s.policy_of(plan.account)
        grant = plan.decision.grant
        by_grant = grant is not None and grant.needs_approval
        if by_grant or BULK in policy.approval:
            return await self._request_approval(plan, choice.text, by_grant=by_grant)
        return plan

    async def _request_approval(self, plan: BatchPlan, full_text: str, *, by_grant: bool) -> Reply:
        from bot.service.core import ApprovalAsk

        command, count = plan.command, plan.command.max or 0
        context = self._context(plan.account, plan.client, command)
        ask = ApprovalAsk(
            verb=BULK_ACTION,
            account=plan.account,
            call_id=ALL_CALLS,
            label=f"{_calls(count)} on `{plan.account}`",
            text=full_text,
            preview=f"hang up at most {count:,} live calls on {plan.account}{filter_text(command)}",
            reason=command.reason,
            action_hash=approval_hash(plan.account, command),
            request=context.pop("request"),
            what_runs=f"Once approved, the matching calls are listed again and at most {count:,} are hung up:",
            then="Progress is then posted in this channel.",
        )
        return await self.service.open_approval(
            plan.inv, ask, plan.decision, plan.break_glass, context, by_grant=by_grant
        )

    async def approved(self, runner: Invocation, row: Any, approver: str) -> Reply | BatchPlan:
        """Someone approved request `row`: the requester's command, every check again, bound to
        what was approved (its hash)."""
        s = self.service
        try:
            command = grammar.parse(row.text)
        except InvalidInput:
            command = None
        if not isinstance(command, HangupAllCommand):
            return Reply(Tone.FAILURE, "The approved command can no longer be read: nothing was ended.")
        inv = replace(runner, text=command_text(command, masked=True))
        plan = await self._prepare(inv, command)
        if isinstance(plan, Reply):
            return plan
        if approval_hash(plan.account, command) != row.action_hash:
            mismatch = PolicyDenied(
                "approval",
                f"What would run no longer matches what was approved (approval #{row.id}). Nothing was ended; ask again.",
            )
            refused = replace(plan.decision, allowed=False, note=f"approval #{row.id} hash mismatch")
            context = self._context(plan.account, plan.client, command)
            return await s._refuse(inv, mismatch, decision=refused, **context)
        note = "; ".join(filter(None, [plan.decision.note, f"approved by {approver} (approval #{row.id})"]))
        return replace(plan, decision=replace(plan.decision, note=note))

    # -- 3. start --------------------------------------------------------------------------------

    async def start(self, plan: BatchPlan) -> Reply | BatchRun:
        """The batch's audit row (pending, before the provider is read), the calls listed again and
        capped, the batch written. A Reply when there is nothing to run."""
        s = self.service
        command, account = plan.command, plan.account
        context = self._context(account, plan.client, command)
        try:
            row = await s._record(
                plan.inv, outcome="pending", decision=plan.decision, break_glass=plan.break_glass, **context
            )
        except repo.DuplicateRequest:
            return Reply(Tone.INFO, "This bulk action was already started.", ("See its progress message.",))
        limit = command.max or MAX_BATCH
        try:
            calls = [call async for call in plan.client.iter_calls(_call_filter(command), limit)]
        except CallbotError as error:
            await s._complete(row.id, outcome="failed", error_message=f"could not list the calls: {error.message}")
            return Reply(
                Tone.FAILURE,
                f"Could not list the live calls of `{account}`: nothing was ended.",
                (error.message,),
                audit_id=row.id,
            )
        if not calls:
            await s._complete(row.id, outcome="succeeded", result={"total": 0, "ended": 0, "failed": 0})
            return Reply(
                Tone.INFO,
                f"No live calls on `{account}`{filter_text(command)} any more: nothing to hang up.",
                audit_id=row.id,
            )
        batch = await batches.create(
            s.db,
            account=account,
            action="hangup",
            requested_by=plan.inv.user_id,
            channel_id=plan.inv.channel_id,
            filter={**_shown_filter(command), "max": command.max},
            reason=command.reason,
            call_ids=[call.call_id for call in calls],
            audit_id=row.id,
        )
        return BatchRun(
            batch.id,
            plan.inv,
            account,
            plan.decision,
            row.id,
            batch.total,
            filter_text(command),
            reason=command.reason,
        )

    @staticmethod
    def resuming(run: BatchRun) -> Reply:
        """Said to whoever resumed a batch, before its new progress message."""
        left = run.total - run.ended_before - run.failed_before
        return Reply(
            Tone.WORKING,
            f"Resuming batch #{run.batch_id} on `{run.account}`: {left:,} of {run.total:,} calls left.",
            ("Progress is posted in this channel (or as a direct message), with Cancel.",),
            audit_id=run.audit_id,
        )

    async def message_posted(self, batch_id: int, channel: str, ts: str) -> None:
        await batches.set_message(self.service.db, batch_id, channel, ts)

    # -- 4. run ----------------------------------------------------------------------------------

    def progress(self, run: BatchRun, progress: Progress) -> Reply:
        """The progress message: counts, the time left at the pace so far, and Cancel."""
        cancel = Choice(
            "Cancel",
            str(run.batch_id),
            style="danger",
            handler=BATCH_CANCEL_HANDLER,
            confirm=ConfirmDialog(
                title=f"Stop batch #{run.batch_id}?",
                text="Requests already sent finish; no new hang-up starts. You can resume it later.",
                confirm="Stop it",
            ),
        )
        reply = Reply(
            Tone.WORKING,
            f"Hanging up calls on `{run.account}`{run.filter_text} (batch #{run.batch_id})",
            (
                progress_line(progress),
                f"{'Resumed' if run.resumed else 'Started'} by {mention(run.inv.user_id)}."
                + (f" Reason: {run.reason}" if run.reason else ""),
            ),
            audit_id=run.audit_id,
            choices=(cancel,),
        )
        # Posted to a channel: secrets masked (a reason is free text) and phone numbers too.
        return self.service._safe(reply).map_text(phone.mask_in_text)

    async def run(self, run: BatchRun, report: Report) -> Reply:
        """Runs the batch to its end (or Cancel); `report` gets the progress message about once a
        second. Returns the summary (for the same message)."""
        s = self.service

        async def tick(progress: Progress) -> None:
            try:
                await report(self.progress(run, progress))
            except Exception:
                log.exception("could not report the progress of batch #%s", run.batch_id)

        act = self.hangup.act(run.inv, run.account, run.batch_id, run.decision)
        # The account's throttle keeps `bulk_concurrency` provider requests in flight at most; twice as
        # many workers let some write their audit rows while the others' requests are out, so the
        # database's commits do not leave provider slots idle.
        workers = 2 * s.policy_of(run.account).bulk_concurrency
        try:
            summary = await batches.run(s.db, run.batch_id, act, workers=workers, report=tick)
        except Exception:
            log.exception("batch #%s stopped on an internal error", run.batch_id)
            await s._complete(run.audit_id, outcome="unknown", error_message="internal error; see the server log")
            return Reply(
                Tone.UNKNOWN,
                f"Batch #{run.batch_id} stopped on an internal error.",
                (f"`/call batch {run.batch_id}` shows what was done; `resume` finishes it once it shows interrupted.",),
                audit_id=run.audit_id,
            )
        batch = await batches.get(s.db, run.batch_id)
        every = await batches.items(s.db, run.batch_id)
        failures = [item for item in every if item.state == batches.FAILED]
        already = sum(1 for item in every if item.state == batches.ENDED and item.error == ALREADY_ENDED)
        done = summary.progress
        untouched = done.total - done.handled
        result = {
            "batch": run.batch_id,
            "total": done.total,
            "ended": done.ended,
            "failed": done.failed,
            "not_touched": untouched,
            "already_ended": already,
            "seconds": round(done.elapsed, 2),
            "status": batch.status if batch else None,
        }
        cancelled_by = batch.cancel_requested_by if batch else None
        if summary.stopped:
            outcome, error = "cancelled", f"cancelled by {cancelled_by}: {untouched:,} calls not touched"
        elif done.failed:
            outcome, error = "failed", f"{done.failed:,} of {done.total:,} calls could not be hung up"
        else:
            outcome, error = "succeeded", None
        await s._complete(run.audit_id, outcome=outcome, result=result, **({"error_message": error} if error else {}))
        return self._summary(run, done, summary.stopped, cancelled_by, failures, already)

    def _summary(
        self,
        run: BatchRun,
        done: Progress,
        stopped: bool,
        cancelled_by: str | None,
        failures: list[Any],
        already: int,
    ) -> Reply:
        took = f"{done.elapsed:.1f} s"
        counts = f"{done.ended:,} / {done.total:,} ended, {done.failed:,} failed"
        if already:
            counts = f"{done.ended:,} / {done.total:,} ended ({already:,} had already ended), {done.failed:,} failed"
        if stopped:
            tone = Tone.INFO
            title = f"Batch #{run.batch_id} cancelled by {mention(cancelled_by or '?')}: {counts}"
            lines = [f"{done.total - done.handled:,} calls were not touched. `/call batch {run.batch_id}` shows it."]
        elif done.failed:
            tone = Tone.FAILURE
            title = f"Batch #{run.batch_id} finished on `{run.account}`: {counts} ({took})"
            lines = ["These calls could not be hung up:"]
        else:
            tone = Tone.SUCCESS
            title = f"Batch #{run.batch_id} finished on `{run.account}`: {counts} ({took})"
            lines = []
        for item in failures[:FAILURES_SHOWN]:
            lines.append(f"• `{item.call_id}`: {item.error or 'failed'}")
        if len(failures) > FAILURES_SHOWN:
            lines.append(
                f"…and {len(failures) - FAILURES_SHOWN:,} more: `/call audit account={run.account} action=hangup "
                "outcome=failed`."
            )
        lines.append(f"Every call has its own audit row (source `bulk`); the batch's row is #{run.audit_id}.")
        reply = Reply(tone, title, tuple(lines), audit_id=run.audit_id)
        return self.service._safe(reply).map_text(phone.mask_in_text)

    # -- cancel, resume, show ------------------------------------------------------------------------

    async def cancel(self, inv: Invocation, batch_id: int) -> Reply:
        """Cancel (button or `/call batch ID cancel`): the requester, or anyone holding `bulk` on the
        account. The runner stops at its next tick (≤ 1 s); requests in flight finish."""
        s = self.service
        inv = replace(inv, text=f"batch {batch_id} cancel", idempotency_key=None)
        found = await self._batch_for(inv, batch_id, CANCEL_ACTION, allow_requester=True)
        if isinstance(found, Reply):
            return found
        batch, _ = found
        context: dict[str, Any] = {"action": CANCEL_ACTION, "account": batch.account, "request": {"batch": batch_id}}
        if not await batches.request_cancel(s.db, batch_id, inv.user_id):
            error = InvalidInput(None, f"Batch #{batch_id} is {batch.status}: there is nothing to cancel.")
            return await s._refuse(inv, error, **context)
        row = await s._record(inv, outcome="succeeded", completed=True, **context)
        return Reply(
            Tone.INFO,
            f"Stopping batch #{batch_id}…",
            ("Requests already sent finish; no new hang-up starts. The progress message shows the result.",),
            audit_id=row.id,
        )

    async def resume(self, inv: Invocation, batch_id: int) -> Reply | BatchRun:
        """An interrupted batch, finished by whoever holds `bulk` on its account now (their grant
        decides; the freeze applies). Items already handled are not touched."""
        s = self.service
        inv = replace(inv, text=f"batch {batch_id} resume", idempotency_key=None)
        found = await self._batch_for(inv, batch_id, RESUME_ACTION, allow_requester=False)
        if isinstance(found, Reply):
            return found
        batch, decision = found
        assert decision is not None  # allow_requester=False: always decided
        context: dict[str, Any] = {"action": RESUME_ACTION, "account": batch.account, "request": {"batch": batch_id}}
        if batch.account not in s.clients:
            error = InvalidInput(batch.account, "is no longer a configured account: the batch cannot resume there.")
            return await s._refuse(inv, error, **context)
        cleared = await s._check_freeze(inv, batch.account, decision, batch.reason, context)
        if isinstance(cleared, Reply):
            return cleared
        decision, break_glass = cleared.decision, cleared.break_glass
        # A batch whose process died moments ago may not be marked yet (the server looks every 10 s;
        # the shell not at all): mark it now, so resume does not wait for the sweep.
        if batch.status == batches.RUNNING and batch_id in await batches.mark_interrupted(
            s.db, s.now(), self.stale_after
        ):
            batch.status = batches.INTERRUPTED
        if batch.status != batches.INTERRUPTED or not await batches.claim_for_resume(s.db, batch_id):
            why = (
                f"Batch #{batch_id} is still running (its process is alive): there is nothing to resume."
                if batch.status == batches.RUNNING
                else f"Batch #{batch_id} is {batch.status}: only an interrupted batch can resume."
            )
            return await s._refuse(inv, InvalidInput(None, why), decision=decision, **context)
        row = await s._record(inv, outcome="pending", decision=decision, break_glass=break_glass, **context)
        done = await batches.counts(s.db, batch_id)
        return BatchRun(
            batch_id,
            inv,
            batch.account,
            decision,
            row.id,
            batch.total,
            _stored_filter_text(batch),
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
        failures = [item for item in await batches.items(self.service.db, batch_id) if item.state == batches.FAILED]
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
        title = f"Batch #{batch_id} on `{batch.account}`{_stored_filter_text(batch)}: {batch.status}"
        return Reply(Tone.INFO, title, tuple(lines), audit_id=batch.audit_id, choices=choices)

    async def interrupted(self) -> list[BatchNotice]:
        """The sweep: running batches whose process stopped beating become `interrupted`; what their
        progress messages should now say."""
        notices = []
        for batch_id in await batches.mark_interrupted(self.service.db, self.service.now(), self.stale_after):
            batch = await batches.get(self.service.db, batch_id)
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
            notices.append(BatchNotice(batch_id, batch.message_channel, batch.message_ts, self.service._safe(reply)))
        return notices

    # -- shared ----------------------------------------------------------------------------------

    async def _prepare(self, inv: Invocation, command: HangupAllCommand) -> Reply | BatchPlan:
        """Every check that needs no provider: the account, the filter, `bulk`, the freeze, a reason
        where the account requires one. Refusals are audited (as `hangup-all`)."""
        s = self.service
        context: dict[str, Any] = {"action": BULK_ACTION, "account": command.account, "request": _shown_filter(command)}
        try:
            client = s.live._client(command.account)
            _call_filter(command)
        except InvalidInput as invalid:
            return await s._refuse(inv, invalid, **context)
        context = self._context(command.account, client, command)
        error: CallbotError
        if inv.source == "cli":
            error = PolicyDenied(
                "bulk", f"`{BULK_ACTION}` runs from Slack, where its progress and Cancel button are shown."
            )
            return await s._refuse(inv, error, **context)
        decision = await s._decide(inv, BULK, command.account)
        if not decision.allowed:
            detail = (
                f"`{BULK_ACTION}` needs the `bulk` action on account `{command.account}` (hangup alone is not "
                f"enough: one command reaches every live call). Ask an admin: `/call grant @you bulk on={command.account}`."
            )
            if decision.note:
                detail += f" Your grants here: {decision.note}."
            error = PermissionDenied(BULK, command.account, detail)
            return await s._refuse(inv, error, decision=decision, **context)
        cleared = await s._check_freeze(inv, command.account, decision, command.reason, context)
        if isinstance(cleared, Reply):
            return cleared
        decision, break_glass = cleared.decision, cleared.break_glass
        if BULK in s.policy_of(command.account).require_reason and not command.reason:
            error = PolicyDenied(
                "require_reason",
                f"`{BULK_ACTION}` on account `{command.account}` needs a reason (require_reason in callbot.toml). "
                'Add `reason="…"`: it is kept in the audit log.',
                word="reason",
            )
            refused = replace(decision, allowed=False, note="refused by require_reason")
            return await s._refuse(inv, error, decision=refused, break_glass=break_glass, **context)
        return BatchPlan(inv, command, command.account, client, decision, break_glass)

    async def _batch_for(
        self, inv: Invocation, batch_id: int, action: str, *, allow_requester: bool
    ) -> tuple[BatchRow, Decision | None] | Reply:
        """The batch and the `bulk` decision that lets this person act on it (None: they started it,
        where that is enough); else the refusal, audited as `action`."""
        s = self.service
        batch = await batches.get(s.db, batch_id)
        if batch is None:
            error: CallbotError = InvalidInput(
                None, f"There is no batch #{batch_id}.", "Its progress message names it (batch #12)."
            )
            return await s._refuse(inv, error, action=action, request={"batch": batch_id})
        if allow_requester and batch.requested_by == inv.user_id:
            return batch, None
        decision = await s._decide(inv, BULK, batch.account)
        if decision.allowed:
            return batch, decision
        error = PermissionDenied(BULK, batch.account, f"Batches on `{batch.account}` need `bulk` there.")
        return await s._refuse(
            inv, error, decision=decision, action=action, account=batch.account, request={"batch": batch_id}
        )

    @staticmethod
    def _context(account: str, client: ProviderClient, command: HangupAllCommand) -> dict[str, Any]:
        request = {**_shown_filter(command), "max": command.max, "reason": command.reason}
        return {"action": BULK_ACTION, "account": account, "provider": client.provider, "request": request}


# -- wording and small helpers ---------------------------------------------------------------------


def resume_button(batch_id: int) -> Choice:
    return Choice("Resume", str(batch_id), style="primary", handler=BATCH_RESUME_HANDLER)


def progress_line(progress: Progress) -> str:
    """`312 / 1,000 ended, 3 failed, ~4 s left`."""
    line = f"{progress.ended:,} / {progress.total:,} ended, {progress.failed:,} failed"
    eta = progress.eta
    if eta is not None and progress.handled < progress.total:
        line += f", ~{_seconds(eta)} left"
    return line


def _seconds(value: float) -> str:
    if value < 90:
        return f"{max(1, round(value))} s"
    return f"{round(value / 60)} min"


def _calls(count: int) -> str:
    return f"{count:,} call{'' if count == 1 else 's'}"


def command_text(command: HangupAllCommand, *, masked: bool = False) -> str:
    """The command as callbot stores it (full numbers: it is run again from this text) or shows
    and audits it (numbers masked)."""
    words = ["hangup-all", command.account]
    numbers = {"to": command.to, "from": command.from_number}
    if command.status:
        words.append(f"status={command.status}")
    for key, value in numbers.items():
        if value:
            words.append(f"{key}={masked_number(value) if masked else value}")
    if command.max:
        words.append(f"max={command.max}")
    if command.reason:
        words.append(f"reason={shlex.quote(command.reason)}")
    return " ".join(words)


def filter_text(command: HangupAllCommand) -> str:
    shown = {k: v for k, v in _shown_filter(command).items() if v}
    return f" ({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else ""


def _stored_filter_text(batch: BatchRow) -> str:
    shown = {k: v for k, v in (batch.filter or {}).items() if v and k in ("status", "to", "from")}
    return f" ({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else ""


def approval_hash(account: str, command: HangupAllCommand) -> str:
    """Binds an approval to exactly this filter, cap and reason on this account."""
    canonical = json.dumps(
        [
            account,
            command.status,
            normalised_number(command.to),
            normalised_number(command.from_number),
            command.max,
            command.reason,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _call_filter(command: HangupAllCommand) -> CallFilter:
    return CallFilter(command.status, normalised_number(command.to), normalised_number(command.from_number))


def _shown_filter(command: HangupAllCommand) -> dict[str, str | None]:
    return {"status": command.status, "to": masked_number(command.to), "from": masked_number(command.from_number)}
