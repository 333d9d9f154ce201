"""`/call hangup-all` and `/call batch`: ending every live call that matches a filter, safely.

The steps, each a method the chat layer calls in turn (plain values in and out):

1. `ask`: the checks that need no provider (account, filter, `bulk` permission, freeze, required
   reason), then the matching calls are counted (a provider read, audited as `calls.list`) and the
   person gets Confirm / Cancel with the count. Nothing is ended without that click.
2. `confirmed` (the click): every check again; with two-person approval the request goes to the
   approvers (the count becomes part of what is approved); else a `BatchPlan`.
3. `start`: the batch's own audit row (`hangup-all`, pending), the calls listed again and capped at
   the confirmed count (calls that started since are left for another run: the person approved a
   number, and it is never exceeded), the batch and its items written (bot/db/batches.py).
4. `run`: one audited hangup per call through the account's shared throttle (bot/service/bulk/hangup.py),
   progress reported about once a second, Cancel honoured between requests; the batch row is
   completed with the counts and the summary lists the failures.

A batch whose process died is marked `interrupted` by the server's sweep (its heartbeat stopped);
`/call batch ID resume` (or the Resume button) finishes the items left, never touching a call
already handled. Numbers in a filter are masked in audit rows and channel messages, as for
`/call list`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from bot.db import batches, repo
from bot.db.session import Database
from bot.domain import grammar, phone
from bot.domain.confirmation import batch_confirmed_line
from bot.domain.errors import CallbotError, InvalidInput, PermissionDenied, PolicyDenied
from bot.domain.grammar import MAX_BATCH, BatchCommand, HangupAllCommand
from bot.domain.outcomes import Outcome, Source
from bot.domain.permissions import BULK
from bot.domain.replies import (
    BULK_CONFIRM_HANDLER,
    Choice,
    ConfirmDialog,
    Reply,
    Tone,
)
from bot.providers.base import ProviderClient
from bot.service.access import Access
from bot.service.approval_requests import BULK_ACTION, ApprovalAsk, ApprovalRequests
from bot.service.bulk import runner
from bot.service.bulk.control import BatchControl
from bot.service.bulk.engine import Progress
from bot.service.bulk.hangup import ALREADY_ENDED, BulkHangup
from bot.service.bulk.plans import (
    ALL_CALLS,
    BatchNotice,
    BatchPlan,
    BatchRun,
    approval_hash,
    call_filter,
    calls_text,
    command_text,
    filter_text,
    progress_reply,
    shown_filter,
    summary_reply,
)
from bot.service.confirmations import Confirmations
from bot.service.live import LiveCalls
from bot.service.recorder import Recorder
from bot.service.safety import Safety
from bot.service.steps import Clock, Invocation

log = logging.getLogger(__name__)

COUNT_ACTION = "calls.list"


Report = Callable[[Reply], Awaitable[None]]


class BulkActions:
    """The bulk half of the service; it uses the service's grants, policy, audit and clients."""

    def __init__(
        self,
        db: Database,
        clients: Mapping[str, ProviderClient],
        clock: Clock,
        recorder: Recorder,
        access: Access,
        safety: Safety,
        approvals: ApprovalRequests,
        live: LiveCalls,
        confirmations: Confirmations,
        stale_after: timedelta = batches.STALE_AFTER,
    ) -> None:
        """`stale_after`: a running batch whose heartbeat is older belongs to a dead process."""
        self.db = db
        self.clients = dict(clients)
        self.now = clock
        self.recorder = recorder
        self.access = access
        self.safety = safety
        self.approvals = approvals
        self.live = live
        self.confirmations = confirmations
        self.stale_after = stale_after
        self.hangup = BulkHangup(clients, recorder, safety)
        self.control = BatchControl(db, live.client_in, clock, recorder, access, safety, stale_after)

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
        """`/call hangup-all` or `/call batch ID [cancel|resume]`: a reply (secrets masked) or a batch to run."""
        outcome = await self._typed(inv, command)
        return self.recorder.redact(outcome) if isinstance(outcome, Reply) else outcome

    async def _typed(self, inv: Invocation, command: HangupAllCommand | BatchCommand) -> Reply | BatchRun:
        if isinstance(command, HangupAllCommand):
            return await self.ask(inv, command)
        if command.sub == "cancel":
            return await self.cancel(inv, command.batch_id)
        if command.sub == "resume":
            return await self.resume(inv, command.batch_id)
        return await self.show(inv, command.batch_id)

    # -- 1. count and ask ------------------------------------------------------------------------

    async def ask(self, inv: Invocation, command: HangupAllCommand) -> Reply:
        inv = replace(inv, text=command_text(command, masked=True), idempotency_key=None)
        plan = await self._prepare(inv, command)
        if isinstance(plan, Reply):
            return plan
        wanted = call_filter(command)
        limit = command.max or MAX_BATCH
        context: dict[str, Any] = {
            "action": COUNT_ACTION,
            "account": plan.account,
            "provider": plan.client.provider,
            "request": {**shown_filter(command), "for": BULK_ACTION},
        }
        row = await self.recorder.record(inv, outcome=Outcome.PENDING, decision=plan.decision, **context)
        try:
            calls = [call async for call in plan.client.iter_calls(wanted, limit + 1)]
        except CallbotError as error:
            return await self.live._read_failed(row.id, error, f"Could not count the live calls of `{plan.account}`")
        await self.recorder.complete(
            row.id, outcome=Outcome.SUCCEEDED, result={"calls": len(calls), "for": BULK_ACTION}
        )
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
        await repo.save_choice(
            self.db, inv.team, token, inv.user_id, command_text(stored), [plan.account], purpose="confirm"
        )
        lines = [f"*{calls_text(count)}* match now on `{plan.account}`{about}."]
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
            f"{self.safety.policy_of(plan.account).bulk_concurrency} at a time. Progress is posted here, with a Cancel button."
        )
        dialog = ConfirmDialog(
            title=f"End {calls_text(count)}?",
            text=f"Hang up {calls_text(count)} on {plan.account}{about}. This cannot be undone.",
            confirm=f"Hang up {count:,}",
        )
        buttons = (
            Choice(f"Hang up {calls_text(count)}", token, style="danger", confirm=dialog, handler=BULK_CONFIRM_HANDLER),
            Choice("Cancel", f"{token}|{plan.account}", dismiss=True),
        )
        title = f"Hang up {calls_text(count)} on `{plan.account}`?"
        return Reply(Tone.INFO, title, tuple(lines), audit_id=row.id, choices=buttons)

    # -- 2. the Confirm click --------------------------------------------------------------------

    async def confirmed(self, inv: Invocation, token: str) -> Reply | BatchPlan:
        """Checked again as the clicker now; the two-person rule applies here, as for any action.
        A reply comes with its secrets masked."""
        outcome = await self._confirmed(inv, token)
        return self.recorder.redact(outcome) if isinstance(outcome, Reply) else outcome

    async def _confirmed(self, inv: Invocation, token: str) -> Reply | BatchPlan:
        choice = await repo.take_choice(self.db, inv.team, token, inv.user_id)
        if choice is None:
            refused = await self.safety.refuse_foreign_choice(inv, token)
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
        policy = self.safety.policy_of(plan.account)
        grant = plan.decision.grant
        by_grant = grant is not None and grant.needs_approval
        if by_grant or BULK in policy.approval:
            return await self._request_approval(plan, choice.text, by_grant=by_grant)
        return plan

    async def _request_approval(self, plan: BatchPlan, full_text: str, *, by_grant: bool) -> Reply:
        command, count = plan.command, plan.command.max or 0
        context = self._context(plan.account, plan.client, command)
        ask = ApprovalAsk(
            verb=BULK_ACTION,
            account=plan.account,
            call_id=ALL_CALLS,
            label=f"{calls_text(count)} on `{plan.account}`",
            text=full_text,
            preview=f"hang up at most {count:,} live calls on {plan.account}{filter_text(command)}",
            reason=command.reason,
            action_hash=approval_hash(plan.account, command),
            request=context.pop("request"),
            what_runs=f"Once approved, the matching calls are listed again and at most {count:,} are hung up:",
            then="Progress is then posted in this channel.",
        )
        return await self.approvals.open(plan.inv, ask, plan.decision, plan.break_glass, context, by_grant=by_grant)

    async def approved(self, runner: Invocation, row: Any, approver: str) -> Reply | BatchPlan:
        """Someone approved request `row`: the requester's command, every check again, bound to
        what was approved (its hash)."""
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
            return await self.recorder.refuse(inv, mismatch, decision=refused, **context)
        note = "; ".join(filter(None, [plan.decision.note, f"approved by {approver} (approval #{row.id})"]))
        return replace(plan, decision=replace(plan.decision, note=note))

    # -- 3. start --------------------------------------------------------------------------------

    async def start(self, plan: BatchPlan) -> Reply | BatchRun:
        """The batch's audit row (pending, before the provider is read), the calls listed again and
        capped, the batch written. A Reply when there is nothing to run."""
        command, account = plan.command, plan.account
        context = self._context(account, plan.client, command)
        try:
            row = await self.recorder.record(
                plan.inv, outcome=Outcome.PENDING, decision=plan.decision, break_glass=plan.break_glass, **context
            )
        except repo.DuplicateRequest:
            return Reply(Tone.INFO, "This bulk action was already started.", ("See its progress message.",))
        limit = command.max or MAX_BATCH
        try:
            calls = [call async for call in plan.client.iter_calls(call_filter(command), limit)]
        except CallbotError as error:
            await self.recorder.complete(
                row.id, outcome=Outcome.FAILED, error_message=f"could not list the calls: {error.message}"
            )
            return Reply(
                Tone.FAILURE,
                f"Could not list the live calls of `{account}`: nothing was ended.",
                (error.message,),
                audit_id=row.id,
            )
        if not calls:
            await self.recorder.complete(
                row.id, outcome=Outcome.SUCCEEDED, result={"total": 0, "ended": 0, "failed": 0}
            )
            return Reply(
                Tone.INFO,
                f"No live calls on `{account}`{filter_text(command)} any more: nothing to hang up.",
                audit_id=row.id,
            )
        batch = await batches.create(
            self.db,
            plan.inv.team,
            enterprise_id=plan.inv.enterprise_id,
            account=account,
            action="hangup",
            requested_by=plan.inv.user_id,
            channel_id=plan.inv.channel_id,
            filter={**shown_filter(command), "max": command.max},
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
        await batches.set_message(self.db, batch_id, channel, ts)

    # -- 4. run ----------------------------------------------------------------------------------

    def progress(self, run: BatchRun, progress: Progress) -> Reply:
        """The progress message: counts, the time left at the pace so far, and Cancel. Posted to a
        channel: secrets masked (a reason is free text) and phone numbers too."""
        return self.recorder.redact(progress_reply(run, progress)).map_text(phone.mask_in_text)

    async def run(self, run: BatchRun, report: Report) -> Reply:
        """Runs the batch to its end (or Cancel); `report` gets the progress message about once a
        second. Returns the summary (for the same message)."""

        async def tick(progress: Progress) -> None:
            try:
                await report(self.progress(run, progress))
            except Exception:
                log.exception("could not report the progress of batch #%s", run.batch_id)

        stop = asyncio.Event()  # Cancel: calls waiting for their turn stop waiting
        act = self.hangup.act(run.inv, run.account, run.batch_id, run.decision, stop)
        # The account's throttle keeps `bulk_concurrency` provider requests in flight at most; twice as
        # many workers let some write their audit rows while the others' requests are out, so the
        # database's commits do not leave provider slots idle.
        workers = 2 * self.safety.policy_of(run.account).bulk_concurrency
        try:
            summary = await runner.run(self.db, run.batch_id, act, workers=workers, report=tick, stop=stop)
        except Exception:
            log.exception("batch #%s stopped on an internal error", run.batch_id)
            await self.recorder.complete(
                run.audit_id, outcome=Outcome.UNKNOWN, error_message="internal error; see the server log"
            )
            return Reply(
                Tone.UNKNOWN,
                f"Batch #{run.batch_id} stopped on an internal error.",
                (f"`/call batch {run.batch_id}` shows what was done; `resume` finishes it once it shows interrupted.",),
                audit_id=run.audit_id,
            )
        batch = await batches.get(self.db, run.batch_id)
        every = await batches.items(self.db, run.batch_id)
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
            outcome, error = Outcome.CANCELLED, f"cancelled by {cancelled_by}: {untouched:,} calls not touched"
        elif done.failed:
            outcome, error = Outcome.FAILED, f"{done.failed:,} of {done.total:,} calls could not be hung up"
        else:
            outcome, error = Outcome.SUCCEEDED, None
        # The batch's row is complete before the listing that confirms its calls: from the batch's
        # end it is no longer protected from the sweep, which would close it as `unknown`.
        await self.recorder.complete(
            run.audit_id, outcome=outcome, result=result, **({"error_message": error} if error else {})
        )
        reply = summary_reply(run, done, summary.stopped, cancelled_by, failures, already)
        confirmed = await self._confirm(run, every)
        if confirmed:
            line = batch_confirmed_line(self.clients[run.account].display_name, run.account, *confirmed)
            reply = replace(reply, lines=(*reply.lines, line))
        return self.recorder.redact(reply).map_text(phone.mask_in_text)

    async def _confirm(self, run: BatchRun, items: list[Any]) -> tuple[int, int] | None:
        """Each call the batch touched, confirmed by one listing of the live calls after it
        (bot/service/confirmations.py `confirm_batch`): (ended, still live), None when off."""
        # A call found already ended was not changed by the batch; of the others, confirm_batch
        # takes those whose request went out (answered, or `unknown`).
        touched = {
            item.call_id: item.audit_id for item in items if item.audit_id is not None and item.error != ALREADY_ENDED
        }
        if not touched or self.safety.policy_of(run.account).read_back <= 0:
            return None
        try:
            return await self.confirmations.confirm_batch(run.account, touched)
        except Exception:
            log.exception("could not confirm the calls of batch #%s", run.batch_id)
            return None

    # -- cancel, resume, show (bot/service/bulk/control.py) ------------------------------------

    async def cancel(self, inv: Invocation, batch_id: int) -> Reply:
        return self.recorder.redact(await self.control.cancel(inv, batch_id))

    async def resume(self, inv: Invocation, batch_id: int) -> Reply | BatchRun:
        outcome = await self.control.resume(inv, batch_id)
        return self.recorder.redact(outcome) if isinstance(outcome, Reply) else outcome

    async def show(self, inv: Invocation, batch_id: int) -> Reply:
        return self.recorder.redact(await self.control.show(inv, batch_id))

    async def interrupted(self) -> list[BatchNotice]:
        return await self.control.interrupted()

    # -- shared ----------------------------------------------------------------------------------

    async def _prepare(self, inv: Invocation, command: HangupAllCommand) -> Reply | BatchPlan:
        """Every check that needs no provider: the account, the filter, `bulk`, the freeze, a reason
        where the account requires one. Refusals are audited (as `hangup-all`)."""
        context: dict[str, Any] = {"action": BULK_ACTION, "account": command.account, "request": shown_filter(command)}
        try:
            client = self.live.client_in(inv.team, command.account)
            call_filter(command)
        except InvalidInput as invalid:
            return await self.recorder.refuse(inv, invalid, **context)
        context = self._context(command.account, client, command)
        error: CallbotError
        if inv.source == Source.CLI:
            error = PolicyDenied(
                "bulk", f"`{BULK_ACTION}` runs from Slack, where its progress and Cancel button are shown."
            )
            return await self.recorder.refuse(inv, error, **context)
        decision = await self.access.decide(inv, BULK, command.account)
        if not decision.allowed:
            detail = (
                f"`{BULK_ACTION}` needs the `bulk` action on account `{command.account}` (hangup alone is not "
                f"enough: one command reaches every live call). Ask an admin: `/call grant @you bulk on={command.account}`."
            )
            if decision.note:
                detail += f" Your grants here: {decision.note}."
            error = PermissionDenied(BULK, command.account, detail)
            return await self.recorder.refuse(inv, error, decision=decision, **context)
        cleared = await self.safety.check_freeze(inv, command.account, decision, command.reason, context)
        if isinstance(cleared, Reply):
            return cleared
        decision, break_glass = cleared.decision, cleared.break_glass
        if BULK in self.safety.policy_of(command.account).require_reason and not command.reason:
            error = PolicyDenied(
                "require_reason",
                f"`{BULK_ACTION}` on account `{command.account}` needs a reason (require_reason in callbot.toml). "
                'Add `reason="…"`: it is kept in the audit log.',
                word="reason",
            )
            refused = replace(decision, allowed=False, note="refused by require_reason")
            return await self.recorder.refuse(inv, error, decision=refused, break_glass=break_glass, **context)
        return BatchPlan(inv, command, command.account, client, decision, break_glass)

    @staticmethod
    def _context(account: str, client: ProviderClient, command: HangupAllCommand) -> dict[str, Any]:
        request = {**shown_filter(command), "max": command.max, "reason": command.reason}
        return {"action": BULK_ACTION, "account": account, "provider": client.provider, "request": request}
