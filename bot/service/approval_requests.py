"""Two-person approval requests: stored with the hash of exactly what will run, posted to the
account's approvers, and the messages that say how each ended. Deciding one (Approve / Deny, the
expiry sweep) is bot/service/approvals.py, which runs the approved action."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from bot.db import repo
from bot.db.models import ApprovalRow
from bot.db.session import Database
from bot.domain import phone
from bot.domain.errors import PolicyDenied
from bot.domain.outcomes import Outcome, Source
from bot.domain.permissions import Decision, when
from bot.domain.replies import APPROVE_HANDLER, DENY_HANDLER, ApprovalNotice, Choice, Reply, Tone, mention
from bot.service.recorder import Recorder
from bot.service.safety import Safety
from bot.service.steps import Clock, Invocation

# The action a bulk hang-up is audited and approved as (bot/service/bulk/actions.py).
BULK_ACTION = "hangup-all"


@dataclass(frozen=True)
class ApprovalAsk:
    """What a two-person approval request is about: a call action, or a bulk action."""

    verb: str  # the action, as audited and stored
    account: str
    call_id: str  # `*` for a bulk action
    label: str  # how people read the target: `prod:CA…`, `6 calls on prod`
    text: str  # the command that runs once approved
    preview: str  # what the approvers see (secrets masked)
    reason: str | None
    action_hash: str  # binds the approval to exactly this request
    request: dict[str, Any] | None  # for the audit row
    what_runs: str  # said to the approvers just before the preview
    then: str  # said to the requester after "nothing is sent until…"


@dataclass(frozen=True)
class ApprovalUpdate:
    """A two-person approval request changed state: the approvers' message as it should now read
    (no buttons left) and what the requester is told."""

    channel: str
    message_ts: str | None
    message: Reply
    requester: str
    requester_channel: str | None
    notice: Reply
    # The request's workspace (the approvers' message and the requester are there).
    team_id: str = ""
    enterprise_id: str | None = None


class ApprovalRequests:
    def __init__(self, db: Database, recorder: Recorder, safety: Safety, clock: Clock) -> None:
        self.db = db
        self.recorder = recorder
        self.safety = safety
        self.now = clock

    async def open(
        self,
        inv: Invocation,
        ask: ApprovalAsk,
        decision: Decision,
        break_glass: bool,
        context: dict[str, Any],
        *,
        by_grant: bool,
    ) -> Reply:
        """Store the request, audit it `pending_approval`, and hand the chat layer the message for
        the approvers (Reply.approval). `context`: the audit row's action, account, provider, call.
        Only from Slack: the shell has no buttons, and refusing is safer than silently skipping
        the second person."""
        policy = self.safety.policy_of(ask.account)
        channel = policy.approvers_channel
        from_slack = (Source.SLASH, Source.BUTTON, Source.MODAL, Source.SHORTCUT, Source.MESSAGE_SHORTCUT)
        if inv.source not in from_slack or channel is None:
            error = PolicyDenied(
                "approval",
                f"`{ask.verb}` on account `{ask.account}` needs two-person approval: run it from Slack "
                f"(`/call {inv.text}`), where someone else holding `approve` can approve it.",
            )
            refused = replace(decision, allowed=False, note="refused by approval (needs Slack)")
            return await self.recorder.refuse(inv, error, decision=refused, break_glass=break_glass, **context)
        now = self.now()
        row = await self.recorder.open(
            inv,
            outcome=Outcome.PENDING_APPROVAL,
            decision=decision,
            request=ask.request,
            completed=True,
            break_glass=break_glass,
            error_message=f"waiting for two-person approval in <#{channel}>",
            **context,
        )
        if isinstance(row, Reply):
            return row
        approval = await repo.insert_approval(
            self.db,
            inv.team,
            enterprise_id=inv.enterprise_id,
            account=ask.account,
            action=ask.verb,
            call_id=ask.call_id,
            requester=inv.user_id,
            requester_channel=inv.channel_id,
            text=ask.text,
            preview=ask.preview,
            reason=ask.reason,
            action_hash=ask.action_hash,
            status="pending",
            created_at=now,
            expires_at=now + policy.approval_expiry,
            request_audit_id=row.id,
            channel=channel,
        )
        minutes = int(policy.approval_expiry.total_seconds() // 60)
        buttons = (
            Choice("Approve", str(approval.id), style="primary", handler=APPROVE_HANDLER),
            Choice("Deny", str(approval.id), style="danger", handler=DENY_HANDLER),
        )
        posted = self.message(
            approval,
            Tone.INFO,
            f"Approval needed #{approval.id}: {ask.verb} {ask.label}",
            (
                f"Expires {when(approval.expires_at)} ({minutes} min). Only someone other than the requester, "
                f"holding `approve` on account `{ask.account}`, can approve. {ask.what_runs}",
            ),
            buttons,
        )
        why = (
            f"Your grant ({decision.grant.describe()}) needs a second person for `{ask.verb}`"
            if by_grant and decision.grant is not None
            else f"Account `{ask.account}` needs a second person for `{ask.verb}` (approval in callbot.toml)"
        )
        lines = (
            f"{why}. The request is "
            f"posted in <#{channel}>; nothing is sent until someone else holding `approve` approves it "
            f"(within {minutes} min). {ask.then}",
        )
        return Reply(
            Tone.INFO,
            f"Waiting for approval #{approval.id}: {ask.verb} {ask.label}",
            lines,
            audit_id=row.id,
            approval=ApprovalNotice(approval.id, channel, posted, approval.team_id, approval.enterprise_id),
        )

    async def posted(self, approval_id: int, message_ts: str) -> None:
        """The chat layer posted the request: keep where, so the message can be updated once decided."""
        await repo.set_approval(self.db, approval_id, message_ts=message_ts)

    def update(self, row: ApprovalRow, tone: Tone, title: str, *said: str) -> ApprovalUpdate:
        target = row.account if row.action == BULK_ACTION else f"{row.account}:{row.call_id}"
        label = f"`{row.action} {target}`"
        message = self.message(row, tone, title, said)
        notice = self.recorder.redact(Reply(tone, f"Your request {label} (approval #{row.id}): {title}", said))
        return ApprovalUpdate(
            row.channel,
            row.message_ts,
            message,
            row.requester,
            row.requester_channel,
            notice,
            row.team_id,
            row.enterprise_id,
        )

    def message(
        self, row: ApprovalRow, tone: Tone, title: str, lines: Iterable[str], choices: tuple[Choice, ...] = ()
    ) -> Reply:
        where = f" in <#{row.requester_channel}>" if row.requester_channel else ""
        head = (
            f"Requested by {mention(row.requester)}{where}.",
            f"Reason: {row.reason}" if row.reason else "No reason given.",
        )
        reply = Reply(tone, title, (*head, *lines), code=row.preview, audit_id=row.request_audit_id, choices=choices)
        # Posted to a channel: phone numbers (a Bird bridge target, a number in TwiML) are masked.
        return self.recorder.redact(reply).map_text(phone.mask_in_text)
