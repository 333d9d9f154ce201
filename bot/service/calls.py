"""A call action, one short pipeline: resolve → authorise → build → safety → record pending →
send → complete. `begin` runs every step that needs no provider (Slack is answered within its
3 s meanwhile); `finish` sends the request and completes the audit row."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from bot.db.models import ApprovalRow, AuditRow
from bot.domain import grammar
from bot.domain.actions import ActionName, ApplyFlow, CallAction, Cancel, Hangup, InlineTwiml, Redirect, action_params
from bot.domain.errors import InvalidInput, PolicyDenied, ProviderError
from bot.domain.grammar import CallCommand, DocumentCall
from bot.domain.outcomes import Outcome
from bot.domain.policy import announce_to, needs_approval
from bot.domain.redact import Redactor
from bot.domain.replies import Reply, Tone, plural
from bot.domain.storable import unstorable, unstorable_in
from bot.providers.base import ProviderResult, WireRequest, provider_error_fields
from bot.service.accounts import Accounts
from bot.service.approval_requests import ApprovalAsk, ApprovalRequests
from bot.service.live import STATE_CHECKED, LiveCalls, StateCheck
from bot.service.recorder import Recorder
from bot.service.safety import Safety
from bot.service.steps import Authorised, Cleared, Done, Invocation, Started

log = logging.getLogger(__name__)

# Ending a call twice ends it once: these may be retried after a 429/503.
RETRY_SAFE = frozenset({ActionName.HANGUP, ActionName.CANCEL})


@dataclass(frozen=True)
class Approved:
    """The approval a pipeline run executes: what was requested (its hash) and who approved it."""

    row: ApprovalRow
    approver: str


class CallActions:
    def __init__(
        self,
        recorder: Recorder,
        accounts: Accounts,
        safety: Safety,
        requests: ApprovalRequests,
        live: LiveCalls,
        redactor: Redactor,
    ) -> None:
        self.recorder = recorder
        self.accounts = accounts
        self.safety = safety
        self.requests = requests
        self.live = live
        self.redactor = redactor

    async def begin(
        self,
        inv: Invocation,
        command: CallCommand | DocumentCall,
        *,
        confirmed: bool = False,
        approved: Approved | None = None,
    ) -> Done | Started:
        """`confirmed`: the person clicked a confirmation of exactly this command. `approved`: a
        second person approved exactly this command (two-person approval). A command whose
        document (callFlow, TwiML) is still text has it read once the person is authorised."""
        verb = command.name if isinstance(command, DocumentCall) else command.action.name
        authorised = await self.accounts.authorise(inv, command.target, verb)
        if isinstance(authorised, Done):
            return Done(self.recorder.redact(authorised.reply))
        read = await self._read(inv, command, authorised)
        if isinstance(read, Reply):
            return Done(self.recorder.redact(read))
        step = await self.proceed(inv, read, authorised, confirmed=confirmed, approved=approved)
        return step if isinstance(step, Started) else Done(self.recorder.redact(step.reply))

    async def _read(
        self, inv: Invocation, command: CallCommand | DocumentCall, authorised: Authorised
    ) -> CallCommand | Reply:
        """The command with its document read, or its refusal (audited invalid, with the account).
        Text that cannot be stored (NUL…) is refused here too: a form's fields skip the grammar."""
        bad = unstorable(inv.text) or (
            unstorable_in(action_params(command.action)) if isinstance(command, CallCommand) else None
        )
        if bad is not None:
            error = InvalidInput(None, f"The command contains {bad}, which callbot cannot use.", "Remove it.")
            return await self.recorder.refuse(inv, error, decision=authorised.decision, **authorised.context)
        if isinstance(command, CallCommand):
            return command
        try:
            # Bounded (bot/domain/callflow.py), yet YAML may take tens of ms: not on the event loop.
            return await asyncio.to_thread(grammar.read_document, command)
        except InvalidInput as error:
            return await self.recorder.refuse(inv, error, decision=authorised.decision, **authorised.context)

    async def proceed(
        self,
        inv: Invocation,
        command: CallCommand,
        authorised: Authorised,
        *,
        confirmed: bool = False,
        approved: Approved | None = None,
    ) -> Done | Started:
        """The steps after authorisation: build the provider request, apply the account's safety
        policy (asking to confirm where it says so), then audit it as dry_run, hold it for a second
        person, or record it pending for `finish` to send."""
        request = await self._build(inv, command, authorised)
        if isinstance(request, Reply):
            return Done(request)
        try:
            announce = announce_to(self.safety.policy_of(authorised.account), authorised.account, command.announce)
        except InvalidInput as error:
            return Done(await self.recorder.refuse(inv, error, decision=authorised.decision, **authorised.context))
        cleared = await self.safety.check(inv, command, authorised)
        if isinstance(cleared, Reply):
            return Done(cleared)
        if self.safety.asks_confirmation(inv, command, authorised.account, confirmed=confirmed):
            return Done(await self.safety.confirm(inv, command, authorised))
        stored = {**request.for_audit(), "params": action_params(command.action)}
        check = self.safety.policy_of(authorised.account).check_state and command.action.name in STATE_CHECKED
        if command.dry_run:
            return await self._dry_run(inv, command, authorised, request, stored, cleared, check=check)
        cleared = await self._second_person(inv, command, authorised, request, cleared, approved)
        if isinstance(cleared, Reply):
            return Done(cleared)
        row = await self._open_pending(inv, authorised, stored, cleared)
        if isinstance(row, Reply):
            return Done(row)
        label = authorised.label
        ack = self.recorder.redact(Reply(Tone.WORKING, f"{_doing(command.action)} {label}…", audit_id=row.id))
        return Started(
            ack,
            row.id,
            authorised.client,
            request,
            command.action,
            label,
            command.target.call_id,
            check_state=check,
            announce=announce,
            team_id=inv.team,
            enterprise_id=inv.enterprise_id,
        )

    async def _open_pending(
        self, inv: Invocation, authorised: Authorised, stored: dict[str, Any], cleared: Cleared, *, sends: bool = True
    ) -> AuditRow | Reply:
        """The row written before any provider I/O; a replayed request gets the earlier answer.
        `sends`: a request will go (not a dry run), so a restart must tell the person."""
        return await self.recorder.open(
            inv,
            announce=sends,
            outcome=Outcome.PENDING,
            decision=cleared.decision,
            request=stored,
            break_glass=cleared.break_glass,
            **authorised.context,
        )

    async def _build(self, inv: Invocation, command: CallCommand, authorised: Authorised) -> WireRequest | Reply:
        """The exact provider request; what the provider cannot do is refused (and audited) here."""
        try:
            authorised.client.check_supported(command.action.name, command.options)
            return authorised.client.build(command.target.call_id, command.action)
        except InvalidInput as error:
            return await self.recorder.refuse(inv, error, decision=authorised.decision, **authorised.context)

    async def _second_person(
        self,
        inv: Invocation,
        command: CallCommand,
        authorised: Authorised,
        request: WireRequest,
        cleared: Cleared,
        approved: Approved | None,
    ) -> Cleared | Reply:
        """Two-person approval: an action that needs it is held (Reply) until someone approves;
        an approved one runs only if it still yields exactly the request that was approved."""
        digest = _action_hash(authorised.account, command, request)
        verb = command.action.name.value
        grant = authorised.decision.grant
        by_grant = grant is not None and grant.needs_approval
        if approved is None:
            if by_grant or needs_approval(self.safety.policy_of(authorised.account), verb):
                return await self._request_approval(
                    inv, command, authorised, request, cleared, digest, by_grant=by_grant
                )
            return cleared
        decision = cleared.decision
        if digest != approved.row.action_hash:
            mismatch = PolicyDenied(
                "approval",
                f"What would be sent no longer matches what was approved (approval #{approved.row.id}: "
                "action hash differs). Nothing was sent; ask again.",
            )
            refused = replace(decision, allowed=False, note=f"approval #{approved.row.id} hash mismatch")
            return await self.recorder.refuse(
                inv, mismatch, decision=refused, break_glass=cleared.break_glass, **authorised.context
            )
        note = f"approved by {approved.approver} (approval #{approved.row.id})"
        return replace(cleared, decision=replace(decision, note="; ".join(filter(None, [decision.note, note]))))

    async def _dry_run(
        self,
        inv: Invocation,
        command: CallCommand,
        authorised: Authorised,
        request: WireRequest,
        stored: dict[str, Any],
        cleared: Cleared,
        *,
        check: bool,
    ) -> Done | Started:
        """Audited as dry_run, nothing sent. With `check_state`, the state check is part of what a
        real run would do, so it runs too (in `finish`: it is provider I/O)."""
        if check:
            return await self._dry_run_after_check(inv, command, authorised, request, stored, cleared)
        row = await self.recorder.record(
            inv,
            outcome=Outcome.DRY_RUN,
            decision=cleared.decision,
            request=stored,
            completed=True,
            break_glass=cleared.break_glass,
            **authorised.context,
        )
        reply = Reply(
            Tone.DRY_RUN,
            f"Dry run: {command.action.name.value} {authorised.label}. Nothing was sent.",
            ("This is the exact request callbot would send:",),
            code=request.preview(),
            audit_id=row.id,
        )
        return Done(reply)

    async def _dry_run_after_check(
        self,
        inv: Invocation,
        command: CallCommand,
        authorised: Authorised,
        request: WireRequest,
        stored: dict[str, Any],
        cleared: Cleared,
    ) -> Done | Started:
        """With `check_state`, a dry run checks the call's state too (the check is part of what a
        real run would do). The read is provider I/O, so it happens in `finish`, after Slack's
        acknowledgement: the row is `pending` meanwhile, then `dry_run` (or `invalid`)."""
        label = authorised.label
        row = await self._open_pending(inv, authorised, stored, cleared, sends=False)
        if isinstance(row, Reply):
            return Done(row)
        verb = command.action.name.value
        dry = Reply(
            Tone.DRY_RUN,
            f"Dry run: {verb} {label}. Nothing was sent.",
            ("The call's state was checked (check_state). This is the exact request callbot would send:",),
            code=request.preview(),
            audit_id=row.id,
        )
        ack = Reply(Tone.WORKING, f"Checking the state of {label} for the dry run…", audit_id=row.id)
        return Started(
            self.recorder.redact(ack),
            row.id,
            authorised.client,
            request,
            command.action,
            label,
            command.target.call_id,
            check_state=True,
            dry_run=dry,
            team_id=inv.team,
            enterprise_id=inv.enterprise_id,
        )

    async def _request_approval(
        self,
        inv: Invocation,
        command: CallCommand,
        authorised: Authorised,
        request: WireRequest,
        cleared: Cleared,
        digest: str,
        *,
        by_grant: bool = False,
    ) -> Reply:
        """Nothing is sent: the command is stored with the hash of the exact provider request, and
        the chat layer posts the request to the approvers (Reply.approval). Audited `pending_approval`."""
        account, context, verb = authorised.account, authorised.context, command.action.name.value
        ask = ApprovalAsk(
            verb=verb,
            account=account,
            call_id=command.target.call_id,
            label=authorised.label,
            text=inv.text,
            preview=self.redactor.text(request.preview()),
            reason=getattr(command.action, "reason", None),
            action_hash=digest,
            request={**request.for_audit(), "params": action_params(command.action)},
            what_runs="This exact request is what will be sent:",
            then="You will be told the outcome.",
        )
        return await self.requests.open(inv, ask, cleared.decision, cleared.break_glass, context, by_grant=by_grant)

    async def finish(self, started: Started) -> Reply:
        checked: StateCheck | None = None
        if started.check_state:
            checked = await self.live.check_state(started.client, started.call_id, started.action.name, started.label)
            if checked.refusal is not None:
                return await self._refuse_by_state(started, checked)
        if started.dry_run is not None:
            await self.recorder.complete(started.audit_id, outcome=Outcome.DRY_RUN, result=_checked(None, checked))
            return self.recorder.redact(_with_note(started.dry_run, checked))
        began = time.monotonic()
        try:
            result = await started.client.send(started.request, retry_safe=started.action.name in RETRY_SAFE)
        except ProviderError as error:
            latency = _ms(began)  # the provider request alone, not the read that may explain its refusal
            error, checked = await self.live.after_refusal(started, error, checked)
            await self.recorder.complete(
                started.audit_id,
                outcome=error.outcome,
                latency_ms=latency,
                **({"result": _checked(None, checked)} if checked is not None else {}),
                **provider_error_fields(error),
            )
            tone = Tone.UNKNOWN if error.outcome == Outcome.UNKNOWN else Tone.FAILURE
            failed = Reply(tone, f"{error.title}: {started.label}", (error.message,), audit_id=started.audit_id)
            return self.recorder.redact(_with_note(failed, checked))
        except Exception:
            log.exception("provider call failed unexpectedly (audit #%s)", started.audit_id)
            await self.recorder.complete(
                started.audit_id,
                outcome=Outcome.UNKNOWN,
                latency_ms=_ms(began),
                error_message="internal error in callbot while sending; see the server log",
            )
            return Reply(
                Tone.UNKNOWN,
                f"Something went wrong inside callbot: {started.label}",
                ("The request may or may not have reached the provider. Check the call before retrying.",),
                audit_id=started.audit_id,
            )
        await self.recorder.complete(
            started.audit_id,
            outcome=Outcome.SUCCEEDED,
            latency_ms=_ms(began),
            provider_status=result.http_status,
            provider_request_id=result.request_id,
            result=_checked(dict(result.summary), checked),
        )
        return self.recorder.redact(_with_note(_success_reply(started, result), checked))

    async def _refuse_by_state(self, started: Started, checked: StateCheck) -> Reply:
        """`check_state` found the call ended (or answered, for cancel; not answered yet, for a
        redirect or twiml): nothing is sent; the pending row closes as invalid with the state found."""
        assert checked.refusal is not None
        await self.recorder.complete(
            started.audit_id,
            outcome=Outcome.INVALID,
            error_message=checked.refusal,
            result={"state_check": checked.record},
        )
        verb = started.action.name.value
        lines = (checked.refusal, f"Nothing was sent (check_state is on for this account). `{verb}` was not run.")
        return self.recorder.redact(
            Reply(Tone.INVALID, f"Not sent: {verb} {started.label}", lines, audit_id=started.audit_id)
        )

    async def abandon(self, started: Started, why: str) -> Reply:
        """A started action that must not be sent after all (Slack stopped waiting for the
        acknowledgement): its pending row closes as `expired`, nothing reaches the provider."""
        await self.recorder.complete(started.audit_id, outcome=Outcome.EXPIRED, error_message=why)
        verb = started.action.name.value
        lines = (why, f"`{verb}` was not run. Run the command again if it is still needed.")
        return self.recorder.redact(
            Reply(Tone.FAILURE, f"Not sent: {verb} {started.label}", lines, audit_id=started.audit_id)
        )


def _doing(action: CallAction) -> str:
    return {
        ActionName.HANGUP: "Hanging up",
        ActionName.CANCEL: "Canceling",
        ActionName.REDIRECT: "Redirecting",
        ActionName.TWIML: "Sending TwiML to",
        ActionName.FLOW: "Applying the callFlow to",
    }.get(action.name, "Working on")


def _success_reply(started: Started, result: ProviderResult) -> Reply:
    action, label, status = started.action, started.label, result.call_status
    provider = started.client.provider.capitalize()
    reported = f"{provider} reports the call as `{status}`." if status else f"{provider} accepted the request."
    lines: tuple[str, ...] = (reported, *result.notes)
    if isinstance(action, Hangup):
        title = f"Hung up {label}."
    elif isinstance(action, Cancel):
        title = f"Canceled {label}."
        if status == "in-progress":
            title = f"{label} is still in progress: cancel only ends queued or ringing calls."
            lines = (reported, f"To end it, use `/call hangup {label}`.")
            return Reply(Tone.FAILURE, title, lines, audit_id=started.audit_id)
    elif isinstance(action, Redirect):
        title = f"Redirected {label} to {action.url}."
    elif isinstance(action, InlineTwiml):
        title = f"{label} is now running the inline TwiML."
    elif isinstance(action, ApplyFlow) and action.saved_name:
        commands = plural(len(action.flow.commands), "command")
        title = f"Applied saved flow `{action.saved_name}` v{action.saved_version} ({commands}) to {label}."
    elif isinstance(action, ApplyFlow):
        count = len(action.flow.commands)
        title = f"Applied a callFlow of {count} command{'s' if count != 1 else ''} to {label}."
    else:  # pragma: no cover
        title = f"Done: {label}."
    if getattr(action, "reason", None):
        lines = (*lines, f"Reason: {action.reason}")
    return Reply(Tone.SUCCESS, title, lines, audit_id=started.audit_id)


def _checked(result: dict[str, Any] | None, checked: StateCheck | None) -> dict[str, Any] | None:
    """The audit row's result, with what check_state found (when it ran)."""
    if checked is None:
        return result
    return {**(result or {}), "state_check": checked.record}


def _with_note(reply: Reply, checked: StateCheck | None) -> Reply:
    """The reply, saying so when check_state could not read the call's state and went ahead."""
    if checked is None or checked.note is None:
        return reply
    return replace(reply, lines=(*reply.lines, checked.note))


def _action_hash(account: str, command: CallCommand, request: WireRequest) -> str:
    """sha256 of the exact action (secrets included, so the hash changes if they do; never stored
    in clear here): what an approval is bound to."""
    canonical = {
        "account": account,
        "call_id": command.target.call_id,
        "action": command.action.name.value,
        "params": action_params(command.action),
        "method": request.method,
        "url": request.url,
        "form": [list(pair) for pair in request.form] if request.form is not None else None,
        "json": request.json_body,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)
