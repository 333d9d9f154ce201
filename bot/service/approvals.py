"""Deciding two-person approval requests: Approve / Deny clicks and the expiry sweep. An approved
request runs the requester's action through the normal pipeline, bound to what was approved."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.db import repo
from bot.db.models import ApprovalRow
from bot.db.session import Database
from bot.domain import grammar
from bot.domain.errors import ForeignWorkspace, InvalidInput, PermissionDenied, PolicyDenied
from bot.domain.grammar import CallCommand, DocumentCall, SavedFlowCommand
from bot.domain.outcomes import OUTCOME_EMOJI, Outcome, Source
from bot.domain.permissions import Decision, when
from bot.domain.replies import Reply, Tone, mention
from bot.service.access import Access
from bot.service.approval_requests import BULK_ACTION, ApprovalRequests, ApprovalUpdate
from bot.service.bulk.actions import BulkActions
from bot.service.bulk.plans import BatchPlan
from bot.service.calls import Approved, CallActions
from bot.service.flows import SavedFlows
from bot.service.recorder import Recorder
from bot.service.safety import verb_of
from bot.service.steps import Clock, Done, Invocation, Started


@dataclass(frozen=True)
class ApprovalDecision:
    """What an Approve / Deny click led to. `reply`: for the person who clicked. `update`: the
    request was denied or found expired. `step`: approved, the requester's action through the
    normal pipeline (`Started` still has to be sent; then call `finished`)."""

    reply: Reply
    update: ApprovalUpdate | None = None
    step: Done | Started | None = None
    # An approved `/call hangup-all`: the chat layer starts and runs it (bot/service/bulk/actions.py).
    batch: BatchPlan | None = None


class Approvals:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        recorder: Recorder,
        access: Access,
        requests: ApprovalRequests,
        calls: CallActions,
        flows: SavedFlows,
        bulk: BulkActions,
    ) -> None:
        self.db = db
        self.now = clock
        self.recorder = recorder
        self.access = access
        self.requests = requests
        self.calls = calls
        self.flows = flows
        self.bulk = bulk

    async def decide(self, inv: Invocation, approval_id: int, *, approve: bool) -> ApprovalDecision:
        """An Approve / Deny click. Refused (each refusal audited with its reason) when the request is
        unknown, already handled or expired, when the clicker asked for it (approving; the requester
        may withdraw with Deny), or lacks `approve` on the account. Only the click that moves the
        request out of `pending` acts (conditional UPDATE): a double click runs the action once."""
        verb = "approval.approve" if approve else "approval.deny"
        inv = replace(inv, text=f"{'approve' if approve else 'deny'} approval #{approval_id}", idempotency_key=None)
        row = await repo.get_approval(self.db, None, approval_id)
        if row is not None and row.team_id != inv.team:
            # Another workspace's request: its approvers are not these, whatever their user ids.
            foreign = ForeignWorkspace("approval request")
            return ApprovalDecision(await self._refuse(inv, None, verb, foreign.message))
        if row is None:
            return ApprovalDecision(await self._refuse(inv, None, verb, "This approval request does not exist."))
        if row.status != "pending":
            return ApprovalDecision(await self._refuse(inv, row, verb, _handled(row)))
        now = self.now()
        if now >= row.expires_at:
            if not await repo.move_approval(self.db, row.id, "pending", "expired", decided_at=now):
                return ApprovalDecision(await self._refuse(inv, row, verb, _handled(row)))
            expired = f"Approval request #{row.id} expired {when(row.expires_at)}: nothing was sent."
            update = self.requests.update(row, Tone.INFO, f"Expired #{row.id}: nothing was sent.", expired)
            return ApprovalDecision(await self._refuse(inv, row, verb, expired), update=update)
        withdraw = not approve and inv.user_id == row.requester
        decision: Decision | None = None
        if not withdraw:
            if inv.user_id == row.requester:
                return ApprovalDecision(
                    await self._refuse(
                        inv,
                        row,
                        verb,
                        "You asked for this action: someone else holding `approve` on account "
                        f"`{row.account}` must approve it (two-person rule).",
                    )
                )
            decision = await self.access.decide(inv, "approve", row.account)
            if not decision.allowed:
                detail = f"Approving or denying needs `approve` on account `{row.account}`."
                error = PermissionDenied("approve", row.account, detail)
                return ApprovalDecision(await self._refuse(inv, row, verb, error.message, decision))
        status = "approved" if approve else "denied"
        if not await repo.move_approval(self.db, row.id, "pending", status, decided_by=inv.user_id, decided_at=now):
            return ApprovalDecision(await self._refuse(inv, row, verb, _handled(row)))
        audit = await self.recorder.record(
            inv,
            outcome=Outcome.SUCCEEDED,
            decision=decision,
            action=verb,
            account=row.account,
            call_id=row.call_id,
            request={"approval": row.id, "action": row.action, "action_hash": row.action_hash, "withdrawn": withdraw},
            completed=True,
        )
        if not approve:
            who = "withdrawn by the requester" if withdraw else f"denied by {mention(inv.user_id)}"
            said = f"Approval request #{row.id} {who}: nothing was sent."
            update = self.requests.update(row, Tone.DENIED, f"Denied #{row.id}: {who}.", said)
            return ApprovalDecision(Reply(Tone.INFO, said, audit_id=audit.id), update=update)
        runner = Invocation(
            Source.APPROVAL,
            row.requester,
            row.text,
            team_id=row.team_id,
            enterprise_id=row.enterprise_id,
            channel_id=row.requester_channel,
            account=row.account,
            idempotency_key=f"approval:{row.id}",
        )
        if row.action == BULK_ACTION:
            ack = Reply(Tone.WORKING, f"Approved #{row.id}: starting {row.action} on {row.account}…", audit_id=audit.id)
            plan = await self.bulk.approved(runner, row, inv.user_id)
            if isinstance(plan, Reply):
                return ApprovalDecision(ack, step=Done(self.recorder.redact(plan)))
            return ApprovalDecision(ack, batch=plan)
        step = await self._run_approved(runner, Approved(row, inv.user_id))
        label = f"{row.account}:{row.call_id}"
        ack = Reply(Tone.WORKING, f"Approved #{row.id}: running {row.action} {label}…", audit_id=audit.id)
        return ApprovalDecision(ack, step=step)

    async def finished(self, approval_id: int, outcome: Reply) -> ApprovalUpdate | None:
        """The approved action ran (or the pipeline refused it): record the outcome on the request,
        and say it in the approvers' message and to the requester."""
        row = await repo.get_approval(self.db, None, approval_id)
        if row is None:
            return None
        audit = await repo.audit_by_id(self.db, row.team_id, outcome.audit_id) if outcome.audit_id else None
        result = audit.outcome if audit is not None else outcome.tone.value
        await repo.move_approval(
            self.db, row.id, "approved", "executed", outcome=result[:16], result_audit_id=outcome.audit_id
        )
        approver = mention(row.decided_by or "?")
        emoji = OUTCOME_EMOJI.get(result, "")
        title = f"Approved #{row.id} by {approver}: {emoji} {result}"
        return self.requests.update(row, outcome.tone, title, f"{outcome.title}", *outcome.lines)

    async def expire(self) -> list[ApprovalUpdate]:
        """The expiry sweep (run periodically by the server): requests still pending past their
        deadline become `expired` (conditional UPDATE: a click at the same moment wins or loses
        cleanly), each audited once as `approval.expire` / `expired`. Returns, for the chat layer,
        the approvers' message as it should now read and what each requester is told."""
        now = self.now()
        updates: list[ApprovalUpdate] = []
        for row in await repo.due_approvals(self.db, now):
            if not await repo.move_approval(self.db, row.id, "pending", "expired", decided_at=now):
                continue
            said = f"Approval request #{row.id} expired {when(row.expires_at)} with no decision: nothing was sent."
            inv = Invocation(
                Source.APPROVAL,
                row.requester,
                f"expire approval #{row.id}",
                team_id=row.team_id,
                enterprise_id=row.enterprise_id,
                channel_id=row.requester_channel,
            )
            await self.recorder.record(
                inv,
                outcome=Outcome.EXPIRED,
                action="approval.expire",
                account=row.account,
                call_id=row.call_id,
                request={"approval": row.id, "action": row.action, "action_hash": row.action_hash},
                error_message=said,
                completed=True,
            )
            updates.append(self.requests.update(row, Tone.INFO, f"Expired #{row.id}: nothing was sent.", said))
        return updates

    async def _refuse(
        self, inv: Invocation, row: ApprovalRow | None, verb: str, message: str, decision: Decision | None = None
    ) -> Reply:
        """A click that does nothing is still an attempt: audited as denied, with why."""
        account, call_id = (row.account, row.call_id) if row is not None else (None, None)
        error = PolicyDenied("approval", message)
        return await self.recorder.refuse(inv, error, decision=decision, action=verb, account=account, call_id=call_id)

    async def _run_approved(self, runner: Invocation, approved: Approved) -> Done | Started:
        """The requester's stored command, every check again (it was confirmed when asked)."""
        earlier = await self.recorder.replay(runner)
        if earlier is not None:
            return Done(earlier)
        try:
            command = grammar.parse(runner.text)
        except InvalidInput as error:
            return Done(self.recorder.redact(await self.recorder.refuse(runner, error, action=verb_of(runner.text))))
        if isinstance(command, SavedFlowCommand):
            return await self.flows.begin(runner, command, confirmed=True, approved=approved)
        if not isinstance(command, CallCommand | DocumentCall):
            stale = InvalidInput(None, "The approved command is not a call action any more; nothing was sent.")
            return Done(self.recorder.redact(await self.recorder.refuse(runner, stale, action=verb_of(runner.text))))
        return await self.calls.begin(runner, command, confirmed=True, approved=approved)


def _handled(row: ApprovalRow) -> str:
    by = f" by {mention(row.decided_by)}" if row.decided_by else ""
    return f"Approval request #{row.id} was already handled ({row.status}{by}): nothing more is done."
