"""THE pipeline: parse → resolve account → authorise → audit(pending) → execute → audit(outcome).

Slack listeners and the CLI both come here with plain values (`Invocation`) and get plain
values back (`Reply`). The work is split in two steps so Slack can be answered within its 3 s:
`begin` does everything that needs no provider (and audits the attempt); `finish` sends the
provider request and completes the audit row. `handle` runs both, for the CLI.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import shlex
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.db import repo
from bot.db.models import ApprovalRow, AuditRow, utcnow
from bot.db.session import Database
from bot.domain import flows, grammar, phone
from bot.domain.actions import (
    ActionName,
    ApplyFlow,
    CallAction,
    CallTarget,
    Cancel,
    Hangup,
    InlineTwiml,
    Redirect,
    action_params,
)
from bot.domain.callflow import CallFlow
from bot.domain.directory import Directory, DirectoryError, NoDirectory
from bot.domain.errors import (
    AmbiguousAccount,
    CallbotError,
    InvalidInput,
    PermissionDenied,
    PolicyDenied,
    ProviderError,
    RateLimited,
)
from bot.domain.flows import FlowRef, SavedFlow
from bot.domain.grammar import (
    AuditQuery,
    BatchCommand,
    CallCommand,
    CallStatusCommand,
    FlowBuilderCommand,
    FlowsCommand,
    FreezeCommand,
    GrantCommand,
    HangupAllCommand,
    HelpCommand,
    ListCallsCommand,
    OpenFormCommand,
    PermsCommand,
    RoleCommand,
    RolesCommand,
    SavedFlowCommand,
)
from bot.domain.permissions import (
    BREAK_GLASS,
    CALL_ACTIONS,
    Decision,
    Grant,
    allowed_actions,
    concerns,
    decide,
    decide_flow_manage,
    decide_flow_read,
    group_mention,
    usable,
    when,
    with_roles,
)
from bot.domain.policy import (
    DEFAULT_POLICY,
    RATE_WINDOW,
    Policy,
    check_destinations,
    check_reason,
    needs_approval,
    needs_confirmation,
    rate_limit_wait,
)
from bot.domain.redact import Redactor
from bot.domain.replies import (
    APPROVE_HANDLER,
    DENY_HANDLER,
    ApprovalNotice,
    Choice,
    ConfirmDialog,
    Reply,
    Tone,
    mention,
)
from bot.providers.base import ProviderClient, ProviderResult, WireRequest, provider_error_fields
from bot.service import flow_library
from bot.service.admin import Grants
from bot.service.audit import OUTCOME_EMOJI, AuditReview
from bot.service.bulk.actions import BULK_ACTION, BatchPlan, BatchRun, BulkActions
from bot.service.live import STATE_CHECKED, LiveCalls, StateCheck

log = logging.getLogger(__name__)

# "approval": a call action run when a second person clicked Approve (the requester's action,
# their permission checked again; see `decide_approval`).
SOURCES = ("slash", "modal", "button", "cli", "approval")
# Ending a call twice ends it once: these may be retried after a 429/503.
RETRY_SAFE = frozenset({ActionName.HANGUP, ActionName.CANCEL})


@dataclass(frozen=True)
class Invocation:
    """Who asked for what, from where: the same shape from Slack and from the shell."""

    source: str
    user_id: str
    text: str
    user_name: str | None = None
    team_id: str | None = None
    channel_id: str | None = None
    idempotency_key: str | None = None
    # The account picked with a button when the call id alone was ambiguous.
    account: str | None = None

    @property
    def command_text(self) -> str:
        return f"/call {self.text}".rstrip() if self.source != "cli" else self.text


@dataclass(frozen=True)
class FormAccount:
    """An account as the action modal offers it: only the actions this person may run there."""

    name: str
    provider: str
    provider_name: str
    call_id_example: str
    actions: tuple[str, ...]
    options: dict[str, tuple[str, ...]]  # action -> the grammar options the provider supports


@dataclass(frozen=True)
class Done:
    reply: Reply


@dataclass(frozen=True)
class Started:
    """An allowed call action, audited as pending: the provider request still has to be sent."""

    ack: Reply
    audit_id: int
    client: ProviderClient
    request: WireRequest
    action: CallAction
    label: str
    call_id: str = ""
    # The account's `check_state`: `finish` reads the call's state first (bot/service/live.py).
    check_state: bool = False
    # A dry run waiting for its state check: the reply to give once the check passes.
    dry_run: Reply | None = None


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


@dataclass(frozen=True)
class ApprovalDecision:
    """What an Approve / Deny click led to. `reply`: for the person who clicked. `update`: the
    request was denied or found expired. `step`: approved, the requester's action through the
    normal pipeline (`Started` still has to be sent; then call `approval_finished`)."""

    reply: Reply
    update: ApprovalUpdate | None = None
    step: Done | Started | None = None
    # An approved `/call hangup-all`: the chat layer starts and runs it (bot/service/bulk/actions.py).
    batch: BatchPlan | None = None


@dataclass(frozen=True)
class _Approved:
    """The approval a pipeline run executes: what was requested (its hash) and who approved it."""

    row: ApprovalRow
    approver: str


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
class FlowDraft:
    """A callFlow being built in Slack's builder: commands in wire form, each already validated."""

    id: int
    user_id: str
    account: str
    call_id: str
    commands: tuple[dict[str, Any], ...]
    end_call: bool
    updated_at: datetime

    @property
    def label(self) -> str:
        return f"{self.account}:{self.call_id}"


@dataclass(frozen=True)
class BuilderOpening:
    """`/call flow CALL` may open the builder: the call, and the person's unfinished draft for it."""

    account: str
    call_id: str
    earlier: FlowDraft | None


@dataclass(frozen=True)
class _Authorised:
    """A call action's account resolved and `decide` passed: what the rest of the pipeline needs."""

    account: str
    client: ProviderClient
    decision: Decision
    context: dict[str, Any]
    label: str


@dataclass(frozen=True)
class _Cleared:
    """A call action that passed the account's safety policy: the decision to audit it under."""

    decision: Decision
    break_glass: bool


Clock = Callable[[], datetime]


def _real_clock() -> datetime:
    return datetime.now(UTC)


class Service:
    def __init__(
        self,
        db: Database,
        clients: Mapping[str, ProviderClient],
        redactor: Redactor,
        *,
        policies: Mapping[str, Policy] | None = None,
        clock: Clock | None = None,
        directory: Directory | None = None,
        batch_stale_after: timedelta = timedelta(seconds=30),
    ) -> None:
        self.db = db
        self.clients = dict(clients)
        self.redactor = redactor
        self.policies = dict(policies or {})
        # Rate limits and audit timestamps read this clock; tests pass a controllable one.
        self.now: Clock = clock or _real_clock
        # User-group membership (bot/slack/directory.py); without it group grants never match.
        self.directory: Directory = directory or NoDirectory()
        # `/call audit` pages and details, the App Home summary, exports (bot/service/audit.py).
        self.audit = AuditReview(self)
        # `/call list`, `/call status`, the form's call type-ahead, check_state (bot/service/live.py).
        self.live = LiveCalls(self)
        # `/call hangup-all`, `/call batch`: bulk actions with progress, Cancel, resume (bot/service/bulk/actions.py).
        self.bulk = BulkActions(self, batch_stale_after)
        # `/call grant|revoke|perms|roles|role create|freeze|unfreeze` and the shell's (bot/service/admin.py).
        self.grants = Grants(self)

    # -- entry points -------------------------------------------------------------------------

    async def handle(self, inv: Invocation) -> Reply:
        step = await self.begin(inv)
        return await self.finish(step) if isinstance(step, Started) else step.reply

    async def begin(self, inv: Invocation) -> Done | Started:
        return await self._begin(inv, confirmed=False)

    async def _begin(self, inv: Invocation, *, confirmed: bool, approved: _Approved | None = None) -> Done | Started:
        """`confirmed`: the person clicked the confirmation of a saved flow (see `_confirm_flow`).
        `approved`: a second person approved exactly this command (two-person approval)."""
        if inv.idempotency_key:
            earlier = await repo.audit_by_key(self.db, inv.idempotency_key)
            if earlier is not None:
                return Done(self._safe(_duplicate_reply(earlier)))
        try:
            command = grammar.parse(inv.text)
        except InvalidInput as error:
            return Done(await self._refuse(inv, error, action=_verb_of(inv.text)))
        if isinstance(command, CallCommand):
            step = await self._begin_call(inv, command, confirmed=confirmed, approved=approved)
            return step if isinstance(step, Started) else Done(self._safe(step.reply))
        if isinstance(command, SavedFlowCommand):
            step = await self._begin_saved_flow(inv, command, confirmed=confirmed, approved=approved)
            return step if isinstance(step, Started) else Done(self._safe(step.reply))
        if isinstance(command, FlowBuilderCommand):
            return Done(self._safe(await self._refuse(inv, self._no_builder(inv), action=ActionName.FLOW)))
        if isinstance(command, FlowsCommand):
            return Done(self._safe(await self._flows(inv, command)))
        if isinstance(command, ListCallsCommand | CallStatusCommand):
            # Reads the provider: Slack acknowledges a typed one first (bot/slack/app.py).
            return Done(self._safe(await self.live.run(inv, command)))
        if isinstance(command, HangupAllCommand | BatchCommand):
            # Slack runs these itself (progress message, Cancel); here: the shell, which refuses a
            # new hangup-all and runs `batch ID resume` to its end.
            outcome = await self.bulk.typed(inv, command)
            if isinstance(outcome, BatchRun):
                outcome = await self.bulk.run(outcome, _ignore_progress)
            return Done(self._safe(outcome))
        if isinstance(command, GrantCommand):
            return Done(self._safe(await self.grants.change(inv, command)))
        if isinstance(command, FreezeCommand):
            return Done(self._safe(await self.grants.freeze(inv, command)))
        if isinstance(command, AuditQuery):
            return Done(self._safe(await self._audit(inv, command)))
        if isinstance(command, PermsCommand):
            return Done(self._safe(await self.grants.perms(inv, command)))
        if isinstance(command, RolesCommand):
            return Done(await self.grants.roles())  # redacted already
        if isinstance(command, RoleCommand):
            return Done(self._safe(await self.grants.define_role(inv, command)))
        topic = command.topic if isinstance(command, HelpCommand) else None
        assert isinstance(command, HelpCommand | OpenFormCommand)
        return Done(self._safe(await self._help(inv, topic)))

    async def begin_command(self, inv: Invocation, command: CallCommand) -> Done | Started:
        """A call action that arrives already structured (the action modal, the callFlow builder):
        same checks, same audit."""
        if inv.idempotency_key:
            earlier = await repo.audit_by_key(self.db, inv.idempotency_key)
            if earlier is not None:
                return Done(self._safe(_duplicate_reply(earlier)))
        step = await self._begin_call(inv, command)
        return step if isinstance(step, Started) else Done(self._safe(step.reply))

    async def record_invalid(self, inv: Invocation, error: InvalidInput, action: str | None) -> None:
        """A form submission refused field by field is still an attempt: it leaves an audit row."""
        await self._refuse(inv, error, action=action)

    async def form_accounts(self, user_id: str) -> list[FormAccount]:
        # The form does not know the channel: channel-scoped grants are offered, and the submission
        # is decided again with its channel.
        held, _ = await self._held(user_id)
        now = self.now()
        grants = [replace(g, channel=None) for g in held if not g.expired(now)]
        offered = []
        for name, client in sorted(self.clients.items()):
            actions = tuple(a.value for a in client.supported if decide(grants, a.value, name).allowed)
            if actions:
                options = {a.value: tuple(sorted(client.supported[a])) for a in client.supported}
                offered.append(
                    FormAccount(name, client.provider, client.display_name, client.call_id_example, actions, options)
                )
        return offered

    async def begin_choice(self, inv: Invocation, token: str, account: str) -> Done | Started:
        """The person picked `account` for a command whose call id fitted several accounts."""
        if inv.idempotency_key:
            earlier = await repo.audit_by_key(self.db, inv.idempotency_key)
            if earlier is not None:
                return Done(self._safe(_duplicate_reply(earlier)))
        choice = await repo.take_choice(self.db, token, inv.user_id)
        if choice is None:
            refused = await self.refuse_foreign_choice(inv, token)
            if refused is not None:
                return Done(refused)
        if choice is None or account not in choice.accounts:
            return Done(Reply(Tone.INFO, "This choice has expired or was already used.", ("Run the command again.",)))
        confirmed = choice.purpose == "confirm"
        return await self._begin(replace(inv, text=choice.text, account=account), confirmed=confirmed)

    async def refuse_foreign_choice(self, inv: Invocation, token: str) -> Reply | None:
        """A click on someone else's Confirm / Cancel: nothing is done (their buttons stay live),
        audited as denied with why. None when the token is not a live confirmation of someone else."""
        choice = await repo.peek_choice(self.db, token)
        if choice is None or choice.purpose != "confirm" or choice.user_id == inv.user_id:
            return None
        verb = _verb_of(choice.text)
        error = PolicyDenied(
            "confirm",
            f"Only the person who asked ({mention(choice.user_id)}) can confirm or cancel this action: "
            "nothing was done.",
        )
        # Their command as typed is not copied into my audit row (it may hold a provider password).
        clicker = replace(inv, text=f"confirm {verb or 'action'} of {choice.user_id}", idempotency_key=None)
        account = choice.accounts[0] if len(choice.accounts) == 1 else None
        return self._safe(await self._refuse(clicker, error, action=verb, account=account))

    async def dismiss_choice(self, user_id: str, token: str) -> Reply | None:
        """The Cancel button of a confirmation: the stored command is dropped, nothing is sent.
        None when the button is not this person's (or already used): their message stays."""
        choice = await repo.take_choice(self.db, token, user_id)
        if choice is None:
            return None
        return Reply(Tone.INFO, "Canceled: nothing was sent.", (f"`/call {choice.text}`",))

    async def save_flow(self, inv: Invocation, name: str, flow: CallFlow) -> Reply:
        """Save `flow` as the next version of `name` (the builder's "Save as…"): the same permission
        check (`flow:manage` on `*`) and audit row (`flows.save`) as `/call flows save`."""
        if inv.idempotency_key:
            earlier = await repo.audit_by_key(self.db, inv.idempotency_key)
            if earlier is not None:
                return self._safe(_duplicate_reply(earlier))
        try:
            flows.check_name(name)
        except InvalidInput as error:
            return self._safe(await self._refuse(inv, error, action="flows.save"))
        return self._safe(await self._flows(inv, FlowsCommand("save", FlowRef(name), flow)))

    async def finish(self, started: Started) -> Reply:
        checked: StateCheck | None = None
        if started.check_state:
            checked = await self.live.check_state(started.client, started.call_id, started.action.name, started.label)
            if checked.refusal is not None:
                return await self._refuse_by_state(started, checked)
        if started.dry_run is not None:
            await self._complete(started.audit_id, outcome="dry_run", result=_checked(None, checked))
            return self._safe(_with_note(started.dry_run, checked))
        began = time.monotonic()
        try:
            result = await started.client.send(started.request, retry_safe=started.action.name in RETRY_SAFE)
        except ProviderError as error:
            await self._complete(
                started.audit_id,
                outcome=error.outcome,
                latency_ms=_ms(began),
                **({"result": _checked(None, checked)} if checked is not None else {}),
                **provider_error_fields(error),
            )
            tone = Tone.UNKNOWN if error.outcome == "unknown" else Tone.FAILURE
            failed = Reply(tone, f"{error.title}: {started.label}", (error.message,), audit_id=started.audit_id)
            return self._safe(_with_note(failed, checked))
        except Exception:
            log.exception("provider call failed unexpectedly (audit #%s)", started.audit_id)
            await self._complete(
                started.audit_id,
                outcome="unknown",
                latency_ms=_ms(began),
                error_message="internal error in callbot while sending; see the server log",
            )
            return Reply(
                Tone.UNKNOWN,
                f"Something went wrong inside callbot: {started.label}",
                ("The request may or may not have reached the provider. Check the call before retrying.",),
                audit_id=started.audit_id,
            )
        await self._complete(
            started.audit_id,
            outcome="succeeded",
            latency_ms=_ms(began),
            provider_status=result.http_status,
            provider_request_id=result.request_id,
            result=_checked(dict(result.summary), checked),
        )
        return self._safe(_with_note(_success_reply(started, result), checked))

    async def _refuse_by_state(self, started: Started, checked: StateCheck) -> Reply:
        """`check_state` found the call ended (or answered, for cancel): nothing is sent; the pending
        row closes as invalid with the state found."""
        assert checked.refusal is not None
        await self._complete(
            started.audit_id,
            outcome="invalid",
            error_message=checked.refusal,
            result={"state_check": checked.record},
        )
        verb = started.action.name.value
        lines = (checked.refusal, f"Nothing was sent (check_state is on for this account). `{verb}` was not run.")
        return self._safe(Reply(Tone.INVALID, f"Not sent: {verb} {started.label}", lines, audit_id=started.audit_id))

    async def recover_pending(self, grace_seconds: float) -> int:
        """Attempts a dead process left `pending` (older than any live request) become `unknown`."""
        cutoff = utcnow() - timedelta(seconds=grace_seconds)
        count = await repo.mark_pending_unknown(self.db, cutoff)
        if count:
            log.warning("%d audit rows were still pending from a previous run; marked unknown", count)
        return count

    # -- call actions ---------------------------------------------------------------------------

    async def _begin_call(
        self, inv: Invocation, command: CallCommand, *, confirmed: bool = False, approved: _Approved | None = None
    ) -> Done | Started:
        authorised = await self._authorise_call(inv, command.target, command.action.name)
        if isinstance(authorised, Done):
            return authorised
        return await self._send_call(inv, command, authorised, confirmed=confirmed, approved=approved)

    async def _authorise_call(self, inv: Invocation, target: CallTarget, verb: ActionName) -> Done | _Authorised:
        """Resolve the account (asking when ambiguous) and check the person may run `verb` there."""
        if target.account is None and inv.account is not None:
            target = CallTarget(inv.account, target.call_id)
        try:
            account, client = self._resolve(target)
        except AmbiguousAccount as error:
            return Done(await self._offer_accounts(inv, error, verb))
        except InvalidInput as error:
            return Done(await self._refuse(inv, error, action=verb, call_id=target.call_id))
        context: dict[str, Any] = {
            "action": verb.value,
            "account": account,
            "provider": client.provider,
            "call_id": target.call_id,
        }
        decision = await self._decide(inv, verb.value, account)
        if not decision.allowed:
            return Done(await self._refuse(inv, _denied(decision), decision=decision, **context))
        return _Authorised(account, client, decision, context, target.display(account))

    async def _send_call(
        self,
        inv: Invocation,
        command: CallCommand,
        authorised: _Authorised,
        *,
        confirmed: bool = False,
        approved: _Approved | None = None,
    ) -> Done | Started:
        """Build the provider request, apply the account's policy (asking to confirm where it says
        so); audit it as dry_run, or as pending and hand it to `finish`.
        `confirmed`: the person already clicked a confirmation for exactly this command."""
        verb = command.action.name
        client, context, label = authorised.client, authorised.context, authorised.label
        try:
            client.check_supported(verb, command.options)
            request = client.build(command.target.call_id, command.action)
        except InvalidInput as error:
            return Done(await self._refuse(inv, error, decision=authorised.decision, **context))
        cleared = await self._check_policy(inv, command, authorised)
        if isinstance(cleared, Done):
            return cleared
        decision, break_glass = cleared.decision, cleared.break_glass
        if self._asks_confirmation(inv, command, authorised.account, confirmed=confirmed):
            return Done(await self._confirm_action(inv, command, authorised))
        stored = {**request.for_audit(), "params": action_params(command.action)}
        check = self.policy_of(authorised.account).check_state and verb in STATE_CHECKED
        if command.dry_run and check:
            return await self._dry_run_after_check(inv, command, authorised, request, stored, cleared)
        if command.dry_run:
            row = await self._record(
                inv,
                outcome="dry_run",
                decision=decision,
                request=stored,
                completed=True,
                break_glass=break_glass,
                **context,
            )
            return Done(
                Reply(
                    Tone.DRY_RUN,
                    f"Dry run: {verb.value} {label}. Nothing was sent.",
                    ("This is the exact request callbot would send:",),
                    code=request.preview(),
                    audit_id=row.id,
                )
            )
        digest = _action_hash(authorised.account, command, request)
        by_grant = authorised.decision.grant is not None and authorised.decision.grant.needs_approval
        if approved is None and (by_grant or needs_approval(self.policy_of(authorised.account), verb.value)):
            return Done(
                await self._request_approval(inv, command, authorised, request, cleared, digest, by_grant=by_grant)
            )
        if approved is not None:
            if digest != approved.row.action_hash:
                # The stored command no longer yields the request that was approved: refuse.
                mismatch = PolicyDenied(
                    "approval",
                    f"What would be sent no longer matches what was approved (approval #{approved.row.id}: "
                    "action hash differs). Nothing was sent; ask again.",
                )
                refused = replace(decision, allowed=False, note=f"approval #{approved.row.id} hash mismatch")
                return Done(await self._refuse(inv, mismatch, decision=refused, break_glass=break_glass, **context))
            decision = replace(
                decision,
                note="; ".join(
                    filter(None, [decision.note, f"approved by {approved.approver} (approval #{approved.row.id})"])
                ),
            )
        try:
            row = await self._record(
                inv, outcome="pending", decision=decision, request=stored, break_glass=break_glass, **context
            )
        except repo.DuplicateRequest:
            earlier = await repo.audit_by_key(self.db, inv.idempotency_key or "")
            assert earlier is not None
            return Done(_duplicate_reply(earlier))
        ack = Reply(Tone.WORKING, f"{_doing(command.action)} {label}…", audit_id=row.id)
        return Started(
            self._safe(ack), row.id, client, request, command.action, label, command.target.call_id, check_state=check
        )

    async def _dry_run_after_check(
        self,
        inv: Invocation,
        command: CallCommand,
        authorised: _Authorised,
        request: WireRequest,
        stored: dict[str, Any],
        cleared: _Cleared,
    ) -> Done | Started:
        """With `check_state`, a dry run checks the call's state too (the check is part of what a
        real run would do). The read is provider I/O, so it happens in `finish`, after Slack's
        acknowledgement: the row is `pending` meanwhile, then `dry_run` (or `invalid`)."""
        label = authorised.label
        try:
            row = await self._record(
                inv,
                outcome="pending",
                decision=cleared.decision,
                request=stored,
                break_glass=cleared.break_glass,
                **authorised.context,
            )
        except repo.DuplicateRequest:
            earlier = await repo.audit_by_key(self.db, inv.idempotency_key or "")
            assert earlier is not None
            return Done(_duplicate_reply(earlier))
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
            self._safe(ack),
            row.id,
            authorised.client,
            request,
            command.action,
            label,
            command.target.call_id,
            check_state=True,
            dry_run=dry,
        )

    # -- the account's safety policy (bot/domain/policy.py) ----------------------------------------------

    def policy_of(self, account: str) -> Policy:
        return self.policies.get(account, DEFAULT_POLICY)

    async def _check_policy(self, inv: Invocation, command: CallCommand, authorised: _Authorised) -> Done | _Cleared:
        """Freeze (and break-glass), required reason, URL and number allowlists, rate limits: the
        first rule broken refuses the action, audited as denied (or rate_limited) naming the rule."""
        account, context = authorised.account, authorised.context
        policy, action = self.policy_of(account), command.action
        cleared = await self._check_freeze(inv, account, authorised.decision, action.reason, context)
        if isinstance(cleared, Reply):
            return Done(cleared)
        decision, break_glass = cleared.decision, cleared.break_glass
        error: CallbotError | None = None
        rule = ""
        try:
            check_reason(policy, account, action)
            check_destinations(policy, account, action)
        except PolicyDenied as denied:
            error, rule = denied, denied.rule
        if error is None and not command.dry_run:  # a dry run sends nothing: not limited, not counted
            error = await self._rate_limit(inv.user_id, account, policy)
            rule = "rate limit"
        if error is not None:
            refused = replace(decision, allowed=False, note=f"refused by {rule}")
            return Done(await self._refuse(inv, error, decision=refused, break_glass=break_glass, **context))
        return _Cleared(decision, break_glass)

    async def _check_freeze(
        self, inv: Invocation, account: str, decision: Decision, reason: str | None, context: dict[str, Any]
    ) -> Reply | _Cleared:
        """A frozen account refuses everyone but holders of `break-glass` there, who must give a
        reason; their rows are flagged `break_glass` and name the grant and the freeze. A refusal
        is audited (`context`: the row's action, account…) and returned as the reply."""
        freeze = await repo.active_freeze(self.db, account)
        if freeze is None:
            return _Cleared(decision, False)
        frozen = (
            f"Account `{account}` is frozen since {freeze.frozen_at.strftime('%Y-%m-%d %H:%M UTC')} by "
            f"{mention(freeze.frozen_by)}: {freeze.reason}"
        )
        note = f"account frozen (freeze #{freeze.id})"
        glass = await self._decide(inv, BREAK_GLASS, account)
        if not glass.allowed:
            error = PolicyDenied(
                "freeze",
                f"{frozen}. Every call action on it is refused until an admin runs `/call unfreeze on={account}`.",
            )
            refused = replace(decision, allowed=False, note=note)
            return await self._refuse(inv, error, decision=refused, **context)
        assert glass.grant is not None
        note = f"break-glass ({glass.grant.describe()}) during freeze #{freeze.id}"
        if not (reason or "").strip():
            error = PolicyDenied(
                "break-glass",
                f"{frozen}. Your break-glass grant lets you act anyway, with a reason for the audit log: "
                f'add `reason="…"`.',
                word="reason",
            )
            refused = replace(decision, allowed=False, note=note)
            return await self._refuse(inv, error, decision=refused, break_glass=True, **context)
        return _Cleared(replace(decision, note=note), True)

    async def _rate_limit(self, user_id: str, account: str, policy: Policy) -> RateLimited | None:
        """Soft limits: attempts sent or being sent in the last minute (two requests arriving at the
        same instant may both pass)."""
        now = self.now()
        since = now - RATE_WINDOW
        mine = await repo.recent_attempt_times(self.db, since, CALL_ACTIONS, account=account, user_id=user_id)
        wait = rate_limit_wait(mine, policy.max_actions_per_minute, now)
        if wait is not None:
            return RateLimited(
                f"You started {policy.max_actions_per_minute} or more call actions on account `{account}` in the "
                f"last minute (max_actions_per_minute = {policy.max_actions_per_minute} per person). "
                f"Try again in {wait} s.",
                wait,
            )
        limit = policy.max_account_actions_per_minute
        if limit is None:
            return None
        everyone = await repo.recent_attempt_times(self.db, since, CALL_ACTIONS, account=account)
        wait = rate_limit_wait(everyone, limit, now)
        if wait is None:
            return None
        return RateLimited(
            f"Account `{account}` had {limit} or more call actions in the last minute "
            f"(max_account_actions_per_minute = {limit}, everyone together). Try again in {wait} s.",
            wait,
        )

    def _asks_confirmation(self, inv: Invocation, command: CallCommand, account: str, *, confirmed: bool) -> bool:
        """Typed in Slack (or re-run by an account button), an action listed in `confirm` waits for
        a click. Dry runs send nothing; the modal has its own confirmation step; the shell has no
        buttons (like saved flows, `callbot run` proceeds)."""
        if confirmed or command.dry_run or inv.source not in ("slash", "button"):
            return False
        return needs_confirmation(self.policy_of(account), command.action.name.value)

    async def _confirm_action(self, inv: Invocation, command: CallCommand, authorised: _Authorised) -> Reply:
        """Not audited: nothing happened yet. The Confirm click re-runs the command (every check
        again, then audited); Cancel drops it. Both buttons are the typist's only, for 15 minutes."""
        account, label, verb = authorised.account, authorised.label, command.action.name.value
        token = secrets.token_urlsafe(16)
        await repo.save_choice(self.db, token, inv.user_id, inv.text, [account], purpose="confirm")
        lines = [*_action_summary(command.action)]
        lines.append(
            f"Account `{account}` asks to confirm `{verb}` (confirm in callbot.toml): nothing is sent until you "
            "click Confirm. The buttons are yours only, for 15 minutes."
        )
        dialog = ConfirmDialog(
            title=f"{verb.capitalize()} {label}?",
            text=f"`/call {inv.text}`"[:300],
            confirm=f"Yes, {verb}",
        )
        buttons = (
            Choice("Confirm", f"{token}|{account}", style="danger", confirm=dialog),
            Choice("Cancel", f"{token}|{account}", dismiss=True),
        )
        return Reply(Tone.INFO, f"{verb.capitalize()} {label}?", tuple(lines), choices=buttons)

    # -- two-person approval (approval / approvers_channel in callbot.toml) -----------------------

    async def _request_approval(
        self,
        inv: Invocation,
        command: CallCommand,
        authorised: _Authorised,
        request: WireRequest,
        cleared: _Cleared,
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
        return await self.open_approval(inv, ask, cleared.decision, cleared.break_glass, context, by_grant=by_grant)

    async def open_approval(
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
        policy = self.policy_of(ask.account)
        channel = policy.approvers_channel
        if inv.source not in ("slash", "button", "modal") or channel is None:
            error = PolicyDenied(
                "approval",
                f"`{ask.verb}` on account `{ask.account}` needs two-person approval: run it from Slack "
                f"(`/call {inv.text}`), where someone else holding `approve` can approve it.",
            )
            refused = replace(decision, allowed=False, note="refused by approval (needs Slack)")
            return await self._refuse(inv, error, decision=refused, break_glass=break_glass, **context)
        now = self.now()
        try:
            row = await self._record(
                inv,
                outcome="pending_approval",
                decision=decision,
                request=ask.request,
                completed=True,
                break_glass=break_glass,
                error_message=f"waiting for two-person approval in <#{channel}>",
                **context,
            )
        except repo.DuplicateRequest:
            earlier = await repo.audit_by_key(self.db, inv.idempotency_key or "")
            assert earlier is not None
            return _duplicate_reply(earlier)
        approval = await repo.insert_approval(
            self.db,
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
        posted = self._approval_message(
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
            approval=ApprovalNotice(approval.id, channel, posted),
        )

    async def approval_posted(self, approval_id: int, message_ts: str) -> None:
        """The chat layer posted the request: keep where, so the message can be updated once decided."""
        await repo.set_approval(self.db, approval_id, message_ts=message_ts)

    async def decide_approval(self, inv: Invocation, approval_id: int, *, approve: bool) -> ApprovalDecision:
        """An Approve / Deny click. Refused (each refusal audited with its reason) when the request is
        unknown, already handled or expired, when the clicker asked for it (approving; the requester
        may withdraw with Deny), or lacks `approve` on the account. Only the click that moves the
        request out of `pending` acts (conditional UPDATE): a double click runs the action once."""
        verb = "approval.approve" if approve else "approval.deny"
        inv = replace(inv, text=f"{'approve' if approve else 'deny'} approval #{approval_id}", idempotency_key=None)
        row = await repo.get_approval(self.db, approval_id)
        if row is None:
            return ApprovalDecision(
                await self._refuse_approval(inv, None, verb, "This approval request does not exist.")
            )
        if row.status != "pending":
            return ApprovalDecision(await self._refuse_approval(inv, row, verb, _handled(row)))
        now = self.now()
        if now >= row.expires_at:
            if not await repo.move_approval(self.db, row.id, "pending", "expired", decided_at=now):
                return ApprovalDecision(await self._refuse_approval(inv, row, verb, _handled(row)))
            expired = f"Approval request #{row.id} expired {when(row.expires_at)}: nothing was sent."
            update = self._approval_update(row, Tone.INFO, f"Expired #{row.id}: nothing was sent.", expired)
            return ApprovalDecision(await self._refuse_approval(inv, row, verb, expired), update=update)
        withdraw = not approve and inv.user_id == row.requester
        decision: Decision | None = None
        if not withdraw:
            if inv.user_id == row.requester:
                return ApprovalDecision(
                    await self._refuse_approval(
                        inv,
                        row,
                        verb,
                        "You asked for this action: someone else holding `approve` on account "
                        f"`{row.account}` must approve it (two-person rule).",
                    )
                )
            decision = await self._decide(inv, "approve", row.account)
            if not decision.allowed:
                detail = f"Approving or denying needs `approve` on account `{row.account}`."
                error = PermissionDenied("approve", row.account, detail)
                return ApprovalDecision(await self._refuse_approval(inv, row, verb, error.message, decision))
        status = "approved" if approve else "denied"
        if not await repo.move_approval(self.db, row.id, "pending", status, decided_by=inv.user_id, decided_at=now):
            return ApprovalDecision(await self._refuse_approval(inv, row, verb, _handled(row)))
        audit = await self._record(
            inv,
            outcome="succeeded",
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
            update = self._approval_update(row, Tone.DENIED, f"Denied #{row.id}: {who}.", said)
            return ApprovalDecision(Reply(Tone.INFO, said, audit_id=audit.id), update=update)
        runner = Invocation(
            "approval",
            row.requester,
            row.text,
            channel_id=row.requester_channel,
            account=row.account,
            idempotency_key=f"approval:{row.id}",
        )
        if row.action == BULK_ACTION:
            ack = Reply(Tone.WORKING, f"Approved #{row.id}: starting {row.action} on {row.account}…", audit_id=audit.id)
            plan = await self.bulk.approved(runner, row, inv.user_id)
            if isinstance(plan, Reply):
                return ApprovalDecision(ack, step=Done(self._safe(plan)))
            return ApprovalDecision(ack, batch=plan)
        step = await self._begin(runner, confirmed=True, approved=_Approved(row, inv.user_id))
        label = f"{row.account}:{row.call_id}"
        ack = Reply(Tone.WORKING, f"Approved #{row.id}: running {row.action} {label}…", audit_id=audit.id)
        return ApprovalDecision(ack, step=step)

    async def approval_finished(self, approval_id: int, outcome: Reply) -> ApprovalUpdate | None:
        """The approved action ran (or the pipeline refused it): record the outcome on the request,
        and say it in the approvers' message and to the requester."""
        row = await repo.get_approval(self.db, approval_id)
        if row is None:
            return None
        audit = await repo.audit_by_id(self.db, outcome.audit_id) if outcome.audit_id else None
        result = audit.outcome if audit is not None else outcome.tone.value
        await repo.move_approval(
            self.db, row.id, "approved", "executed", outcome=result[:16], result_audit_id=outcome.audit_id
        )
        approver = mention(row.decided_by or "?")
        emoji = OUTCOME_EMOJI.get(result, "")
        title = f"Approved #{row.id} by {approver}: {emoji} {result}"
        return self._approval_update(row, outcome.tone, title, f"{outcome.title}", *outcome.lines)

    async def expire_approvals(self) -> list[ApprovalUpdate]:
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
            inv = Invocation("approval", row.requester, f"expire approval #{row.id}", channel_id=row.requester_channel)
            await self._record(
                inv,
                outcome="expired",
                action="approval.expire",
                account=row.account,
                call_id=row.call_id,
                request={"approval": row.id, "action": row.action, "action_hash": row.action_hash},
                error_message=said,
                completed=True,
            )
            updates.append(self._approval_update(row, Tone.INFO, f"Expired #{row.id}: nothing was sent.", said))
        return updates

    def _approval_update(self, row: ApprovalRow, tone: Tone, title: str, *said: str) -> ApprovalUpdate:
        target = row.account if row.action == BULK_ACTION else f"{row.account}:{row.call_id}"
        label = f"`{row.action} {target}`"
        message = self._approval_message(row, tone, title, said)
        notice = self._safe(Reply(tone, f"Your request {label} (approval #{row.id}): {title}", said))
        return ApprovalUpdate(row.channel, row.message_ts, message, row.requester, row.requester_channel, notice)

    def _approval_message(
        self, row: ApprovalRow, tone: Tone, title: str, lines: Iterable[str], choices: tuple[Choice, ...] = ()
    ) -> Reply:
        where = f" in <#{row.requester_channel}>" if row.requester_channel else ""
        head = (
            f"Requested by {mention(row.requester)}{where}.",
            f"Reason: {row.reason}" if row.reason else "No reason given.",
        )
        reply = Reply(tone, title, (*head, *lines), code=row.preview, audit_id=row.request_audit_id, choices=choices)
        # Posted to a channel: phone numbers (a Bird bridge target, a number in TwiML) are masked.
        return self._safe(reply).map_text(phone.mask_in_text)

    async def _refuse_approval(
        self, inv: Invocation, row: ApprovalRow | None, verb: str, message: str, decision: Decision | None = None
    ) -> Reply:
        """A click that does nothing is still an attempt: audited as denied, with why."""
        account, call_id = (row.account, row.call_id) if row is not None else (None, None)
        error = PolicyDenied("approval", message)
        return await self._refuse(inv, error, decision=decision, action=verb, account=account, call_id=call_id)

    def _resolve(self, target: CallTarget) -> tuple[str, ProviderClient]:
        if not self.clients:
            raise InvalidInput(
                None, "No provider account is configured.", "An admin must add one (docs/configuration.md)."
            )
        if target.account is not None:
            client = self.clients.get(target.account)
            if client is None:
                names = sorted(self.clients)
                hint = grammar.suggest(target.account, names) or f"Configured accounts: {', '.join(names)}."
                raise InvalidInput(f"{target.account}:", "is not a configured account.", hint)
            return target.account, client
        matches = sorted(name for name, c in self.clients.items() if c.call_id_pattern.fullmatch(target.call_id))
        if len(matches) == 1:
            return matches[0], self.clients[matches[0]]
        if not matches:
            shapes = sorted({f"{c.provider} `{c.call_id_example}`" for c in self.clients.values()})
            raise InvalidInput(
                target.call_id,
                "does not look like a call id of any configured provider.",
                f"Expected {' or '.join(shapes)}; or name the account: `ACCOUNT:{target.call_id}`.",
            )
        raise AmbiguousAccount(target.call_id, tuple(matches))

    # -- the callFlow builder (Slack) -------------------------------------------------------------

    def builder_target(self, text: str) -> CallTarget | None:
        """`/call flow CALL` alone, on an account whose provider takes callFlows: the call the builder
        is for (account resolved). None otherwise; the normal pipeline then explains what is missing.
        No database access, so Slack's listener can decide at once whether to open a modal."""
        try:
            command = grammar.parse(text)
        except InvalidInput:
            return None
        if not isinstance(command, FlowBuilderCommand):
            return None
        try:
            account, client = self._resolve(command.target)
        except InvalidInput:
            return None
        return CallTarget(account, command.target.call_id) if ActionName.FLOW in client.supported else None

    async def open_builder(self, inv: Invocation, target: CallTarget) -> BuilderOpening | Reply:
        """May this person build a flow for this call? `flow` on the account (refusals are audited,
        like any refused attempt), a callFlow provider, a well-formed call id. Then their draft, if any."""
        authorised = await self._authorise_call(inv, target, ActionName.FLOW)
        if isinstance(authorised, Done):
            return self._safe(authorised.reply)
        try:
            authorised.client.check_supported(ActionName.FLOW, frozenset())
            authorised.client.check_call_id(target.call_id)
        except InvalidInput as error:
            return self._safe(await self._refuse(inv, error, decision=authorised.decision, **authorised.context))
        row = await repo.latest_draft(self.db, inv.user_id, authorised.account, target.call_id)
        return BuilderOpening(authorised.account, target.call_id, _draft(row) if row else None)

    async def start_draft(
        self, user_id: str, account: str, call_id: str, commands: list[dict[str, Any]] | None = None
    ) -> FlowDraft:
        """A fresh draft (replacing the person's earlier one for this call)."""
        return _draft(await repo.create_draft(self.db, user_id, account, call_id, commands or []))

    async def draft(self, draft_id: int, user_id: str) -> FlowDraft | None:
        """The person's own live draft; None when expired, applied, or someone else's."""
        row = await repo.get_draft(self.db, draft_id)
        return _draft(row) if row is not None and row.user_id == user_id else None

    async def update_draft(
        self, draft: FlowDraft, *, commands: list[dict[str, Any]] | None = None, end_call: bool | None = None
    ) -> FlowDraft:
        changed = replace(
            draft,
            commands=tuple(commands) if commands is not None else draft.commands,
            end_call=draft.end_call if end_call is None else end_call,
            updated_at=utcnow(),
        )
        await repo.update_draft(
            self.db,
            draft.id,
            commands=list(changed.commands),
            end_call=changed.end_call,
            updated_at=changed.updated_at,
        )
        return changed

    async def discard_draft(self, draft_id: int) -> None:
        await repo.delete_draft(self.db, draft_id)

    def flow_request_body(self, account: str, call_id: str, flow: CallFlow, *, end_call: bool) -> Any:
        """The exact JSON body `flow` would PATCH to the call: the builder's Preview."""
        return self.clients[account].build(call_id, ApplyFlow(flow, end_call=end_call)).redacted_body()

    def _no_builder(self, inv: Invocation) -> InvalidInput:
        where = (
            "The callFlow builder is a Slack modal: run `/call flow ACCOUNT:CALL-ID` in Slack."
            if inv.source == "cli"
            else "Alone, `/call flow ACCOUNT:CALL-ID` opens the callFlow builder, on a Bird account."
        )
        usage = f"Or give the callFlow (JSON or YAML) or a saved flow's name: `{grammar.VERBS['flow'].usage}`"
        return InvalidInput(None, "`flow` needs CALLFLOW.", f"{where} {usage}")

    # -- saved flows ----------------------------------------------------------------------------

    async def _begin_saved_flow(
        self, inv: Invocation, command: SavedFlowCommand, *, confirmed: bool, approved: _Approved | None = None
    ) -> Done | Started:
        """`/call flow CALL NAME[@N]`: permission first (`flow` on the account), then the flow. Typed in
        Slack, it answers with a confirmation; the click (`confirmed`) runs the normal pipeline.
        `dry-run` and the shell (which has no buttons) go straight to the pipeline."""
        authorised = await self._authorise_call(inv, command.target, ActionName.FLOW)
        if isinstance(authorised, Done):
            return authorised
        try:
            saved = await flow_library.resolve(self.db, command.ref)
        except InvalidInput as error:
            return Done(await self._refuse(inv, error, decision=authorised.decision, **authorised.context))
        action = ApplyFlow(saved.flow, command.reason, saved_name=saved.name, saved_version=saved.version)
        options: frozenset[str] = frozenset()  # `reason` is callbot's, not a provider option
        call = CallCommand(command.target, action, command.dry_run, options)
        if command.dry_run or confirmed or inv.source == "cli":
            # Applying a saved flow always has its own confirmation: `confirm` adds no second one.
            return await self._send_call(inv, call, authorised, confirmed=True, approved=approved)
        try:  # refuse now what the click would refuse anyway (e.g. a Twilio account)
            authorised.client.check_supported(ActionName.FLOW, options)
            authorised.client.build(command.target.call_id, action)
        except InvalidInput as error:
            return Done(await self._refuse(inv, error, decision=authorised.decision, **authorised.context))
        cleared = await self._check_policy(inv, call, authorised)  # refuse before offering the button
        if isinstance(cleared, Done):
            return cleared
        return Done(await self._confirm_flow(inv, saved, command, authorised))

    async def _confirm_flow(
        self, inv: Invocation, saved: SavedFlow, command: SavedFlowCommand, authorised: _Authorised
    ) -> Reply:
        """Not audited: nothing happened yet. The button re-runs the command naming the exact account
        and version shown here (a newer version saved meanwhile does not change what is applied)."""
        words = ["flow", f"{authorised.account}:{command.target.call_id}", str(saved.ref)]
        if command.reason:
            words.append(f"reason={command.reason}")
        token = secrets.token_urlsafe(16)
        await repo.save_choice(self.db, token, inv.user_id, shlex.join(words), [authorised.account], purpose="confirm")
        summary = saved.flow.summary()
        lines = [
            f"Saved by {mention(saved.author)} on {_when(saved)}; {_plural(len(summary), 'command')}:",
            *(f"{i}. {line}" for i, line in enumerate(summary, 1)),
        ]
        if command.reason:
            lines.append(f"Reason: {command.reason}")
        lines.append(
            "Nothing is sent until you click Apply (the button is yours only, for 15 minutes). "
            "Add `dry-run` to see the exact request."
        )
        button = Choice(f"Apply {saved.name} v{saved.version}", f"{token}|{authorised.account}")
        return Reply(
            Tone.INFO, f"Apply saved flow {saved.label} to {authorised.label}?", tuple(lines), choices=(button,)
        )

    async def _flows(self, inv: Invocation, command: FlowsCommand) -> Reply:
        grants = await self._usable(inv)
        action = command.audit_action
        if command.sub in ("list", "show"):
            decision = decide_flow_read(grants)
            if not decision.allowed:
                denial = PermissionDenied(
                    "flows",
                    None,
                    "Saved flows are for people who hold `flow` (on any account) or `flow:manage`. "
                    "Ask an admin: `/call grant @you flow on=ACCOUNT`.",
                )
                return await self._refuse(inv, denial, action=action, decision=decision)
            return await (self._list_flows() if command.sub == "list" else self._show_flow(command))
        assert command.ref is not None
        name = command.ref.name
        request: dict[str, Any] = {"name": name}
        if command.flow is not None:
            request["callFlow"] = command.flow.to_wire()
        decision = decide_flow_manage(grants)
        if not decision.allowed:
            denial = PermissionDenied(
                f"flows {command.sub}",
                None,
                "Saving and deleting saved flows needs `flow:manage`, granted on `*` (the library is shared "
                "by every account). Ask an admin: `/call grant @you flow:manage`.",
            )
            return await self._refuse(inv, denial, action=action, decision=decision, request=request)
        if command.sub == "save":
            assert command.flow is not None
            flow = command.flow
            return await self._change_library(inv, decision, action, request, lambda: self._store_flow(inv, name, flow))
        return await self._change_library(inv, decision, action, request, lambda: self._drop_flow(inv, name))

    async def _change_library(
        self,
        inv: Invocation,
        decision: Decision,
        action: str,
        request: dict[str, Any],
        change: Callable[[], Awaitable[tuple[Reply, dict[str, Any]]]],
    ) -> Reply:
        """Audited like a call action: `pending` first (the idempotency key makes a replayed command
        change nothing), then the change, then the outcome."""
        try:
            row = await self._record(inv, outcome="pending", decision=decision, action=action, request=request)
        except repo.DuplicateRequest:
            earlier = await repo.audit_by_key(self.db, inv.idempotency_key or "")
            assert earlier is not None
            return _duplicate_reply(earlier)
        try:
            reply, result = await change()
        except InvalidInput as error:
            await self._complete(row.id, outcome="invalid", error_message=error.message)
            return Reply(Tone.INVALID, "That command is not valid.", (error.message,), audit_id=row.id)
        except Exception:
            log.exception("could not change the saved flows (audit #%s)", row.id)
            await self._complete(row.id, outcome="failed", error_message="internal error; see the server log")
            return Reply(
                Tone.FAILURE,
                "callbot could not change the saved flows; nothing was changed.",
                ("The error is in the server log.",),
                audit_id=row.id,
            )
        await self._complete(row.id, outcome="succeeded", result=result)
        return replace(reply, audit_id=row.id)

    async def _store_flow(self, inv: Invocation, name: str, flow: CallFlow) -> tuple[Reply, dict[str, Any]]:
        saved = await flow_library.save(self.db, name, flow, inv.user_id)
        summary = flow.summary()
        lines = [*(f"{i}. {line}" for i, line in enumerate(summary, 1))]
        if saved.version > 1:
            lines.append(f"Earlier versions are kept: `/call flows show {name}@{saved.version - 1}`.")
        lines.append(f"Apply it: `/call flow {self._bird_example()}:CALL-ID {name}`.")
        title = f"Saved {saved.label} ({_plural(len(summary), 'command')})."
        result = {"name": saved.name, "version": saved.version, "saved_flow_id": saved.id}
        return Reply(Tone.SUCCESS, title, tuple(lines)), result

    async def _drop_flow(self, inv: Invocation, name: str) -> tuple[Reply, dict[str, Any]]:
        versions = await flow_library.delete(self.db, name, inv.user_id)
        kept = f"version {versions[0]}" if len(versions) == 1 else f"versions {versions[0]}–{versions[-1]}"
        title = f"Deleted saved flow `{name}`."
        lines = (
            f"It is no longer listed and cannot be applied; its {kept} stay in the database for the record.",
            f"Saving `{name}` again starts at version {versions[-1] + 1}.",
        )
        return Reply(Tone.SUCCESS, title, lines), {"name": name, "versions": versions}

    async def _list_flows(self) -> Reply:
        entries = await flow_library.entries(self.db)
        if not entries:
            return Reply(
                Tone.INFO,
                "No saved flows yet.",
                ("Save one with `/call flows save NAME 'CALLFLOW-JSON'` (needs `flow:manage`).",),
            )
        lines = [
            f"`{e.name}` v{e.version} · {_plural(e.commands, 'command')} · by {mention(e.author)} · "
            f"{e.created_at.strftime('%Y-%m-%d %H:%M UTC')}" + (f" · {e.versions} versions" if e.versions > 1 else "")
            for e in entries
        ]
        lines.append(
            f"Show one: `/call flows show NAME`. Apply: `/call flow {self._bird_example()}:CALL-ID NAME` "
            "(shows it first and asks to confirm)."
        )
        return Reply(Tone.INFO, f"Saved flows ({len(entries)}):", tuple(lines))

    async def _show_flow(self, command: FlowsCommand) -> Reply:
        assert command.ref is not None
        try:
            saved = await flow_library.resolve(self.db, command.ref)
        except InvalidInput as error:
            return Reply(Tone.INVALID, "No such saved flow.", (error.message,))
        versions = await flow_library.versions(self.db, saved.name)
        latest = "latest" if saved.version == versions[-1] else f"latest is v{versions[-1]}"
        summary = saved.flow.summary()
        lines = (
            f"Saved by {mention(saved.author)} on {_when(saved)}. Versions: {', '.join(str(v) for v in versions)}.",
            f"{_plural(len(summary), 'command')}:",
            *(f"{i}. {line}" for i, line in enumerate(summary, 1)),
            f"Apply it: `/call flow {self._bird_example()}:CALL-ID {saved.ref}`.",
        )
        wire = saved.flow.to_wire()
        code = json.dumps(wire, indent=2, ensure_ascii=False)
        if len(code) > 2900:
            code = json.dumps(wire, ensure_ascii=False, separators=(",", ":"))
        return Reply(Tone.INFO, f"Saved flow {saved.label} ({latest})", lines, code=code)

    def _bird_example(self) -> str:
        return next((name for name, c in sorted(self.clients.items()) if c.provider == "bird"), "ACCOUNT")

    async def _offer_accounts(self, inv: Invocation, error: AmbiguousAccount, verb: ActionName | str) -> Reply:
        """Audited as invalid (nothing was sent); the buttons re-run the command on one account."""
        refused = await self._refuse(inv, error, action=verb, call_id=error.call_id)
        token = secrets.token_urlsafe(16)
        await repo.save_choice(self.db, token, inv.user_id, inv.text, list(error.accounts))
        choices = tuple(Choice(f"{name}:{error.call_id}", f"{token}|{name}") for name in error.accounts)
        return replace(refused, title="Which account is this call on?", choices=choices)

    # -- permissions ----------------------------------------------------------------------------

    async def _held(
        self, user_id: str, relevant: Callable[[Grant], bool] = lambda grant: True
    ) -> tuple[list[Grant], list[str]]:
        """A user's own grants and those of the groups they are in (roles expanded, expired
        included), and the groups whose members could not be read. Only groups with a `relevant`,
        unexpired grant are looked up, so an unrelated group costs no Slack call."""
        custom = await repo.custom_roles(self.db)
        held = with_roles(await repo.grants_of(self.db, user_id), custom)
        now = self.now()
        membership: dict[str, bool] = {}
        problems: list[str] = []
        for grant in with_roles(await repo.group_grants(self.db), custom):
            if grant.expired(now) or not relevant(grant):
                continue
            if grant.user_id not in membership:
                membership[grant.user_id] = await self._is_member(grant.user_id, user_id, problems)
            if membership[grant.user_id]:
                held.append(grant)
        return held, problems

    async def _is_member(self, group_id: str, user_id: str, problems: list[str]) -> bool:
        try:
            return await self.directory.is_member(group_id, user_id)
        except DirectoryError as error:
            log.warning("could not read the members of user group %s: %s", group_id, error)
            problems.append(f"could not read the members of {group_mention(group_id)} ({error})")
            return False

    async def _decide(self, inv: Invocation, action: str, account: str | None) -> Decision:
        held, problems = await self._held(inv.user_id, lambda grant: concerns(grant, action, account))
        decision = decide(held, action, account, channel=inv.channel_id, now=self.now())
        if not decision.allowed and problems:
            decision = replace(decision, note="; ".join(filter(None, [decision.note, *problems])))
        return decision

    async def _all_held(self, inv: Invocation) -> list[Grant]:
        return (await self._held(inv.user_id))[0]

    async def _usable(self, inv: Invocation) -> list[Grant]:
        """The grants that count for this command: unexpired, and from its channel."""
        return usable(await self._all_held(inv), channel=inv.channel_id, now=self.now())

    # -- audit and help -------------------------------------------------------------------------

    async def _audit(self, inv: Invocation, query: AuditQuery) -> Reply:
        if query.export:  # Slack runs it after its acknowledgement (bot/slack/audit.py)
            return Reply(
                Tone.INFO,
                "`audit export` sends a file in Slack; from the shell use `callbot audit export`.",
                ("e.g. `callbot audit export --format csv --since 30d --output audit.csv`",),
            )
        return await self.audit.search(inv, query)

    async def _help(self, inv: Invocation, topic: str | None) -> Reply:
        held = allowed_actions(await self._usable(inv))
        if topic:
            spec = grammar.VERBS.get(topic)
            if spec is None:
                hint = grammar.suggest(topic, list(grammar.VERBS)) or "Try `/call help`."
                return Reply(Tone.INVALID, f"No help topic `{topic}`.", (hint,))
            return Reply(Tone.INFO, f"`{spec.usage}`", (spec.summary + ".", *_TOPIC_NOTES.get(topic, ())))
        visible = [
            spec
            for spec in grammar.VERBS.values()
            if spec.permission is None or "admin" in held or held & {spec.permission, *spec.also_permitted}
        ]
        lines = [f"`{spec.usage}` — {spec.summary}" for spec in visible]
        if not held & set(CALL_ACTIONS) and "admin" not in held:
            lines.append("You may not run any call action yet. Ask an admin: `/call grant @you hangup on=ACCOUNT`.")
        accounts = ", ".join(f"{name} ({c.provider})" for name, c in sorted(self.clients.items()))
        lines.append(f"Accounts: {accounts or 'none configured'}. Write a call as `account:CALL-ID`.")
        lines.append("Add `dry-run` to any call action to see the exact request without sending it.")
        may_act = bool(held & set(CALL_ACTIONS)) or "admin" in held
        return Reply(Tone.INFO, "callbot: control live calls from Slack", tuple(lines), offers_form=may_act)

    # -- audit rows -----------------------------------------------------------------------------

    async def _refuse(
        self,
        inv: Invocation,
        error: CallbotError,
        *,
        decision: Decision | None = None,
        break_glass: bool = False,
        **context: Any,
    ) -> Reply:
        row = await self._record(
            inv,
            outcome=error.outcome,
            decision=decision,
            error_message=error.message,
            completed=True,
            break_glass=break_glass,
            **context,
        )
        tone = Tone.DENIED if error.outcome in ("denied", "rate_limited") else Tone.INVALID
        title = {"denied": "Not allowed.", "rate_limited": "Too many actions: slow down."}.get(
            error.outcome, "That command is not valid."
        )
        return Reply(tone, title, (error.message,), audit_id=row.id, field=getattr(error, "word", None))

    async def _record(self, inv: Invocation, **fields: Any) -> AuditRow:
        """Inserts a new audit row (see `_audit_fields` for what it takes)."""
        return await repo.insert_audit(self.db, **self._audit_fields(inv, **fields))

    def _audit_fields(
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
        provider step follows). Bulk actions insert these in group commits (bot/service/bulk/batches.py)."""
        now = self.now()
        return {
            "created_at": now,
            "break_glass": break_glass,
            "source": inv.source,
            "team_id": inv.team_id,
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

    def _outcome_fields(self, **fields: Any) -> dict[str, Any]:
        """A pending row's outcome columns, secrets masked."""
        if fields.get("error_message"):
            fields["error_message"] = self.redactor.text(fields["error_message"])
        if fields.get("result") is not None:
            fields["result"] = self.redactor.value(fields["result"])
        fields.setdefault("completed_at", utcnow())
        return fields

    async def _complete(self, audit_id: int, **fields: Any) -> None:
        fields = self._outcome_fields(**fields)
        try:
            if not await repo.complete_audit(self.db, audit_id, **fields):
                # Closed meanwhile as `unknown` (a restart judged the request abandoned): the chain
                # keeps that entry, so the real outcome goes to the log rather than nowhere.
                log.warning("audit row #%s was already closed; its outcome was %s", audit_id, fields.get("outcome"))
        except Exception:
            # The provider already acted: the person must still hear about it. The row stays
            # pending and becomes `unknown` at the next start-up.
            log.exception("could not complete audit row #%s", audit_id)

    def _safe(self, reply: Reply) -> Reply:
        return reply.map_text(self.redactor.text)


# -- wording --------------------------------------------------------------------------------------

_TOPIC_NOTES: dict[str, tuple[str, ...]] = {
    "audit": (
        "`since=` is inclusive, `until=` exclusive: `30m`, `2h`, `7d`, `1w` back from now, or a UTC date/time. "
        "Next / Previous page through the results; Details shows a whole row.",
        "`/call audit export … format=csv|jsonl` sends the matching rows (at most 100,000, the newest) to you as "
        "a direct message; the Home tab shows your recent attempts.",
    ),
    "hangup": (
        'Ends the call whatever its state. Twilio: `Status=completed`; Bandwidth: `{"state":"completed"}`; '
        'Bird: `{"status":"completed"}`.',
    ),
    "cancel": (
        "Twilio only: `Status=canceled` ends queued or ringing calls; an answered call (or one ringing inside "
        "<Dial>) is in progress: use hangup. On Bandwidth and Bird, hangup also ends unanswered calls.",
    ),
    "redirect": (
        "Twilio: `method`, `fallback`, `fallback-method`, `status-callback`, `status-callback-method`, `time-limit`.",
        "Bandwidth (BXML): `method`, `fallback`, `fallback-method`, `username`+`password`, "
        '`fallback-username`+`fallback-password`, `tag` (`tag=""` clears it). Bird: use `flow`.',
        "Example: `/call redirect prod:CA… https://example.com/hold.xml method=GET time-limit=600`",
    ),
    "twiml": (
        'Twilio only. Example: `/call twiml prod:CA… "<Response><Say>Goodbye</Say><Hangup/></Response>"` '
        "(≤ 4,000 characters).",
    ),
    "flow": (
        "Bird only: replaces the call's callFlow (≤ 20 commands: answer, ringing, say, playback, pause, gather, "
        "record, bridge, hangup), checked against Bird's schema before sending.",
        """Example: `/call flow bird:ID '[{"command":"say","options":{"text":"Hello","locale":"en-GB"}},"""
        """{"command":"hangup"}]'` (YAML works too).""",
        "A saved flow's name instead of the JSON (`/call flow bird:ID hold-music`, or `hold-music@2` for an "
        "older version) shows that flow and an Apply button; see `/call help flows`.",
        "In Slack, `/call flow bird:ID` alone opens the callFlow builder: commands one by one, a preview, "
        "Save as…, then Apply.",
    ),
    "flows": (
        "Saved flows are Bird callFlows shared by the whole team, under a name (lowercase words and dashes, "
        "e.g. `hold-music`) with versions 1, 2, 3…",
        "`/call flows` lists them; `/call flows show NAME` (or `NAME@2`, or `version=2`) shows one: its "
        "commands and its JSON. Listing and showing need `flow` on any account, or `flow:manage`.",
        """`/call flows save NAME '[{"command":"say","options":{"text":"Please hold"}},{"command":"hangup"}]'` """
        "stores a new version (older ones are kept); `/call flows delete NAME` removes the name from the list "
        "(every version stays in the database for the record). Both need `flow:manage`, granted on `*`.",
        "`/call flow bird:CALL-ID NAME` applies the newest version (`NAME@2` an older one): callbot shows the "
        "flow with an Apply button, and clicking it sends exactly that version, checking `flow` on the account "
        "again. Add `dry-run` to see the request instead; from `callbot run` it applies without asking.",
    ),
    "grant": (
        "ACTIONS: hangup, cancel, redirect, twiml, flow, bulk, flow:manage, audit, approve, break-glass, admin "
        "(comma-separated), or roles: viewer, operator, supervisor, admin and custom ones (`/call roles`). "
        "`on=*` means all accounts; `flow:manage` (save and delete saved flows) is granted on `*` only.",
        "To a user group: `/call grant @oncall-voice operator on=prod` (every member, read from Slack). "
        "`in=#channel`: only commands typed there. `for=8h` or `until=2026-12-01`: temporary access.",
        "What you grant is limited at least as much as your own admin grant (its channel, its expiry).",
        "`break-glass` lets someone act on a frozen account (with a reason; flagged in the audit). "
        "`admin` does not include it: grant it by name.",
    ),
    "freeze": (
        "Admins only. While an account is frozen, every call action on it is refused (audited as denied, "
        'naming the freeze), except for holders of `break-glass` there, who must give `reason="…"`; '
        "their audit rows are flagged `break_glass`.",
        'Example: `/call freeze on=prod reason="fraud wave, investigating"`; lift with `/call unfreeze on=prod`.',
    ),
    "unfreeze": ("Admins only. Lifts the freeze of the accounts named; who and when is kept.",),
    "list": (
        "Needs a call action (hangup, cancel, redirect, twiml or flow) on the account. 20 calls a page, newest "
        "first, with More; each call has Hang up / Redirect / Flow buttons that run the normal checks.",
        "Example: `/call list prod status=ringing to=+442071234567`. Audited as `calls.list` (numbers masked).",
    ),
    "hangup-all": (
        "Needs `bulk` on the account (not implied by hangup; `supervisor` and `admin` carry it). callbot counts "
        "the matching live calls and asks you to confirm that number; on Confirm it lists them again and hangs "
        "up at most that many, `bulk_concurrency` at a time (default 10), slowing down on the provider's 429s.",
        "Progress is one message in the channel, updated about once a second (`312 / 1,000 ended, 3 failed, "
        "~4 s left`), with Cancel; then a summary listing the failures. Each call has its own audit row (source "
        "`bulk`); the batch has one too (`action=hangup-all`). Two-person approval applies (`approval = "
        '["bulk"]`). Example: `/call hangup-all prod to=+88213 status=in-progress reason="toll fraud"`.',
    ),
    "batch": (
        "`/call batch 12` shows a batch: counts, who started it, failures. `cancel` stops a running one between "
        "requests (the requester, or anyone holding `bulk` there). If callbot stopped mid-batch, the batch "
        "shows `interrupted` within a minute of the restart and `/call batch 12 resume` finishes the calls "
        "left, never touching one already handled.",
    ),
    "status": (
        "Reads the call's state from the provider now (also once it ended): status and the provider's own word, "
        "direction, from/to, started, duration. Same permission as `list`; audited as `calls.status`.",
    ),
}


async def _ignore_progress(reply: Reply) -> None:
    """The shell shows a bulk action's summary only."""


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
        commands = _plural(len(action.flow.commands), "command")
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


def _handled(row: ApprovalRow) -> str:
    by = f" by {mention(row.decided_by)}" if row.decided_by else ""
    return f"Approval request #{row.id} was already handled ({row.status}{by}): nothing more is done."


def _draft(row: Any) -> FlowDraft:
    return FlowDraft(
        row.id, row.user_id, row.account, row.call_id, tuple(row.commands), bool(row.end_call), row.updated_at
    )


def _action_summary(action: CallAction) -> list[str]:
    """What a confirmation shows: the action's parameters, never a password."""
    if isinstance(action, ApplyFlow):
        lines = [f"{i}. {line}" for i, line in enumerate(action.flow.summary(), 1)]
        return [*lines, *([f"Reason: {action.reason}"] if action.reason else [])]
    params = {k: v for k, v in action_params(action).items() if "password" not in k}
    return [f"{key.replace('_', ' ')}: {value}" for key, value in params.items()]


def _duplicate_reply(row: AuditRow) -> Reply:
    if row.outcome == "pending":
        return Reply(Tone.INFO, "This request is already being handled; nothing was sent twice.", audit_id=row.id)
    detail = (row.error_message,) if row.error_message else ()
    emoji = OUTCOME_EMOJI.get(row.outcome, "")
    return Reply(
        Tone.INFO,
        f"This request was already handled: {emoji} {row.outcome}. Nothing was sent twice.",
        detail,
        audit_id=row.id,
    )


def _denied(decision: Decision) -> PermissionDenied:
    """A refused call action says why when a grant nearly matched (channel, expiry, unreadable group)."""
    if not decision.note:
        return PermissionDenied(decision.action, decision.account)
    return PermissionDenied(decision.action, decision.account, f"Your grants here: {decision.note}.")


def _verb_of(text: str) -> str | None:
    first = text.strip().split(maxsplit=2)
    word = first[0].lower() if first else ""
    if word == "flows":
        sub = first[1].lower() if len(first) > 1 else "list"
        return f"flows.{sub}" if sub in grammar.FLOWS_USAGE else "flows"
    if word in ("list", "status"):
        return f"calls.{word}"
    return word if word in grammar.VERBS or word == "flow" else None


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _when(saved: SavedFlow) -> str:
    return saved.created_at.strftime("%Y-%m-%d %H:%M UTC")


def _ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)
