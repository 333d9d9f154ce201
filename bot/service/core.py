"""The service: one object per process that the Slack listeners and the CLI call with plain values
(`Invocation`) and that answers with plain values (`Reply`). It builds the use cases from their
collaborators (recorder, access, accounts, safety, approvals) and routes each parsed command to
the one that handles it. The pipeline of a call action is bot/service/calls.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot.db import repo
from bot.db.session import Database
from bot.domain import grammar
from bot.domain.actions import ActionName, CallTarget
from bot.domain.callflow import CallFlow
from bot.domain.directory import Directory, NoDirectory
from bot.domain.errors import NO_WORKSPACE, InvalidInput
from bot.domain.flows import LibraryEntry
from bot.domain.grammar import (
    AuditQuery,
    BatchCommand,
    CallCommand,
    CallStatusCommand,
    Command,
    DocumentCall,
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
from bot.domain.outcomes import Source
from bot.domain.policy import Policy
from bot.domain.redact import Redactor
from bot.domain.replies import Reply, Tone
from bot.providers.base import ProviderClient
from bot.service import recovery
from bot.service.access import Access
from bot.service.accounts import Accounts, FormAccount, FoundCall
from bot.service.admin import Grants
from bot.service.announcements import Announcements
from bot.service.approval_requests import ApprovalAsk, ApprovalRequests, ApprovalUpdate
from bot.service.approvals import ApprovalDecision, Approvals
from bot.service.audit import AuditReview
from bot.service.builder import BuilderOpening, FlowBuilder, FlowDraft
from bot.service.bulk.actions import BulkActions
from bot.service.bulk.plans import BatchRun
from bot.service.calls import CallActions
from bot.service.confirmations import Confirmations
from bot.service.flows import SavedFlows
from bot.service.help import Help
from bot.service.installs import Installations
from bot.service.live import LiveCalls
from bot.service.recorder import Recorder
from bot.service.recovery import Recovered
from bot.service.safety import Safety, verb_of
from bot.service.steps import Clock, Done, Invocation, Started, real_clock

log = logging.getLogger(__name__)

# What the chat layer and the CLI take from here.
__all__ = [
    "ApprovalAsk",
    "ApprovalDecision",
    "ApprovalUpdate",
    "BuilderOpening",
    "Clock",
    "Done",
    "FlowDraft",
    "FormAccount",
    "FoundCall",
    "Invocation",
    "Recovered",
    "Service",
    "Started",
]

Handler = Callable[[Invocation, Any], Awaitable[Done | Started]]


# Slack always names a workspace; without one (and no home workspace) no row can be scoped, not
# even the audit row, so nothing is read or written.
UNSCOPED = Done(Reply(Tone.DENIED, NO_WORKSPACE, ("Nothing was done.",)))


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
        workspaces: Mapping[str, tuple[str, ...] | None] | None = None,
        home: str | None = None,
    ) -> None:
        self.db = db
        self.clients = dict(clients)
        self.redactor = redactor
        # Rate limits and audit timestamps read this clock; tests pass a controllable one.
        self.now: Clock = clock or real_clock
        self.recorder = Recorder(db, redactor, self.now)
        self.access = Access(db, directory or NoDirectory(), self.now)
        # The workspace of SLACK_BOT_TOKEN (auth.test at start; None: unknown, or OAuth): where a
        # request that names none (the shell's, given no --team) is scoped, and where accounts
        # without a `workspaces` key exist (bot/service/accounts.py `shared_with`).
        self.home = home
        self.accounts = Accounts(clients, db, self.recorder, self.access, workspaces, home)
        self.safety = Safety(db, policies or {}, self.access, self.recorder, self.now)
        self.requests = ApprovalRequests(db, self.recorder, self.safety, self.now)
        # `/call list`, `/call status`, the form's call type-ahead, check_state.
        self.live = LiveCalls(db, clients, self.now, self.recorder, self.access, self.accounts)
        self.calls = CallActions(self.recorder, self.accounts, self.safety, self.requests, self.live, redactor)
        # What the provider then shows happened to each call (read back, or its signed callback).
        self.confirmations = Confirmations(db, clients, self.now, self.safety.policy_of, redactor)
        self.flows = SavedFlows(db, self.recorder, self.access, self.accounts, self.safety, self.calls)
        self.builder = FlowBuilder(db, self.recorder, self.accounts)
        # `/call hangup-all`, `/call batch`: bulk actions with progress, Cancel, resume.
        self.bulk = BulkActions(
            db,
            clients,
            self.now,
            self.recorder,
            self.access,
            self.safety,
            self.requests,
            self.live,
            self.confirmations,
            batch_stale_after,
        )
        self.approvals = Approvals(
            db, self.now, self.recorder, self.access, self.requests, self.calls, self.flows, self.bulk
        )
        # The line an executed action posts to its account's announce_channel (bot/slack/announce.py).
        self.announcements = Announcements(db, self.safety.policy_of, redactor)
        # `/call audit` pages and details, the App Home summary, exports.
        self.audit = AuditReview(db, redactor, self.now, self.recorder, self.access)
        # OAuth mode: installs, uninstalls and revoked tokens, audited (bot/slack/installs.py).
        self.installs = Installations(self.recorder, db)
        # `/call grant|revoke|perms|roles|role create|freeze|unfreeze` and the shell's.
        self.grants = Grants(db, self.accounts, self.now, self.recorder, self.access, self.safety)
        self.help = Help(self.accounts, self.access)
        # Each parsed command's use case (call actions and saved flows have their own steps).
        self._routes: dict[type[Command], Handler] = {
            CallCommand: self.calls.begin,
            DocumentCall: self.calls.begin,
            SavedFlowCommand: self.flows.begin,
            FlowBuilderCommand: self._no_builder,
            FlowsCommand: self._done(self.flows.library),
            ListCallsCommand: self._done(self.live.run),
            CallStatusCommand: self._done(self.live.run),
            HangupAllCommand: self._bulk,
            BatchCommand: self._bulk,
            GrantCommand: self._done(self.grants.change),
            FreezeCommand: self._done(self.grants.freeze),
            AuditQuery: self._done(self._audit),
            PermsCommand: self._done(self.grants.perms),
            RolesCommand: self._done(lambda inv, command: self.grants.roles(inv.team)),
            RoleCommand: self._done(self.grants.define_role),
            HelpCommand: self._done(lambda inv, command: self.help.answer(inv, command.topic)),
            OpenFormCommand: self._done(lambda inv, command: self.help.answer(inv, None)),
        }

    # -- entry points -------------------------------------------------------------------------

    def scoped(self, inv: Invocation) -> Invocation:
        """`inv` with its workspace: Slack always names one; a request that names none (the shell's,
        internal ones) is the home workspace's. With no home known it stays unscoped, and whatever
        reads or writes a row refuses it (Invocation.team)."""
        return inv if inv.team_id or self.home is None else replace(inv, team_id=self.home)

    async def handle(self, inv: Invocation) -> Reply:
        """A command from start to end (the shell's `callbot run`): the outcome of a call action
        comes with what the provider then showed happened to the call."""
        step = await self.begin(inv)
        if not isinstance(step, Started):
            return step.reply
        acted_at = self.now()
        outcome = await self.finish(step)
        return await self.confirm(step, outcome, acted_at) or outcome

    async def begin(self, inv: Invocation) -> Done | Started:
        """Everything that needs no provider: replay, parse, route. A call action comes back
        `Started` (audited pending; `finish` sends it), anything else `Done`."""
        inv = self.scoped(inv)
        if inv.team_id is None:
            return UNSCOPED
        earlier = await self.recorder.replay(inv)
        if earlier is not None:
            return Done(earlier)
        try:
            command = grammar.parse(inv.text)
        except InvalidInput as error:
            return Done(await self.recorder.refuse(inv, error, action=verb_of(inv.text)))
        return await self._routes[type(command)](inv, command)

    async def begin_parsed(self, inv: Invocation, command: Command) -> Done | Started:
        """`begin` for a text the caller parsed already (Slack's edge parses each `/call` once)."""
        inv = self.scoped(inv)
        if inv.team_id is None:
            return UNSCOPED
        earlier = await self.recorder.replay(inv)
        if earlier is not None:
            return Done(earlier)
        return await self._routes[type(command)](inv, command)

    async def begin_command(self, inv: Invocation, command: CallCommand) -> Done | Started:
        """A call action that arrives already structured (the action modal, the callFlow builder):
        same checks, same audit."""
        return await self.begin_parsed(inv, command)

    async def finish(self, started: Started) -> Reply:
        return await self.calls.finish(started)

    async def confirm(self, started: Started, outcome: Reply, acted_at: datetime) -> Reply | None:
        """After `finish`: the outcome with what the provider then showed (None: nothing to add)."""
        return await self.confirmations.after(started, outcome, acted_at)

    async def abandon(self, started: Started, why: str) -> Reply:
        return await self.calls.abandon(started, why)

    async def begin_choice(self, inv: Invocation, token: str, account: str) -> Done | Started:
        """The person picked `account` for a command whose call id fitted several accounts, or
        clicked the Confirm of a confirmation."""
        inv = self.scoped(inv)
        earlier = await self.recorder.replay(inv)
        if earlier is not None:
            return Done(earlier)
        choice = await repo.take_choice(self.db, inv.team, token, inv.user_id)
        if choice is None:
            refused = await self.safety.refuse_foreign_choice(inv, token)
            if refused is not None:
                return Done(refused)
        if choice is None or account not in choice.accounts:
            return Done(Reply(Tone.INFO, "This choice has expired or was already used.", ("Run the command again.",)))
        inv = replace(inv, text=choice.text, account=account)
        try:
            command = grammar.parse(inv.text)
        except InvalidInput as error:
            return Done(await self.recorder.refuse(inv, error, action=verb_of(inv.text)))
        confirmed = choice.purpose == "confirm"
        if isinstance(command, CallCommand | DocumentCall):
            return await self.calls.begin(inv, command, confirmed=confirmed)
        if isinstance(command, SavedFlowCommand):
            return await self.flows.begin(inv, command, confirmed=confirmed)
        return await self._routes[type(command)](inv, command)

    async def record_invalid(self, inv: Invocation, error: InvalidInput, action: str | None) -> None:
        """A form submission refused field by field is still an attempt: it leaves an audit row."""
        await self.recorder.refuse(self.scoped(inv), error, action=action)

    async def recover_pending(self, grace_seconds: float) -> list[Recovered]:
        """Attempts a stopped process left `pending` (older than any live request) become `unknown`;
        each comes with the final message for its Slack response_url, if it still has one."""
        return await recovery.recover(self.db, grace_seconds, self.now, self.redactor)

    async def resolve_recovered(self, recovered: list[Recovered]) -> list[Recovered]:
        """The calls of rows just recovered as `unknown`, read back: their messages say what happened."""
        return await self.confirmations.resolve(recovered) if recovered else recovered

    # -- what the chat layer calls by name -------------------------------------------------------

    async def form_accounts(self, team: str, user_id: str) -> list[FormAccount]:
        return await self.accounts.for_form(team, user_id)

    async def form_flows(self, team: str, user_id: str) -> list[LibraryEntry]:
        """The saved flows the action form offers this person (none if they may not read them)."""
        return await self.flows.menu(team, user_id)

    def calls_in(self, team: str, texts: Iterable[str]) -> list[FoundCall]:
        """The call ids in a message (the "Act on this call" shortcut), for the action form."""
        return self.accounts.found_calls(team, texts)

    async def refuse_foreign_choice(self, inv: Invocation, token: str) -> Reply | None:
        return await self.safety.refuse_foreign_choice(self.scoped(inv), token)

    async def dismiss_choice(self, team: str, user_id: str, token: str) -> Reply | None:
        return await self.safety.dismiss_choice(team, user_id, token)

    async def save_flow(self, inv: Invocation, name: str, flow: CallFlow) -> Reply:
        return await self.flows.save(self.scoped(inv), name, flow)

    def policy_of(self, account: str) -> Policy:
        return self.safety.policy_of(account)

    async def approval_posted(self, approval_id: int, message_ts: str) -> None:
        await self.requests.posted(approval_id, message_ts)

    async def decide_approval(self, inv: Invocation, approval_id: int, *, approve: bool) -> ApprovalDecision:
        return await self.approvals.decide(self.scoped(inv), approval_id, approve=approve)

    async def approval_finished(self, approval_id: int, outcome: Reply) -> ApprovalUpdate | None:
        return await self.approvals.finished(approval_id, outcome)

    async def expire_approvals(self) -> list[ApprovalUpdate]:
        return await self.approvals.expire()

    def builder_target(self, team: str, text: str) -> CallTarget | None:
        return self.builder.target(team, text)

    def builder_target_of(self, team: str, command: FlowBuilderCommand) -> CallTarget | None:
        return self.builder.target_of(team, command)

    async def open_builder(self, inv: Invocation, target: CallTarget) -> BuilderOpening | Reply:
        return await self.builder.open(self.scoped(inv), target)

    async def start_draft(
        self, team: str, user_id: str, account: str, call_id: str, commands: list[dict[str, Any]] | None = None
    ) -> FlowDraft:
        return await self.builder.start_draft(team, user_id, account, call_id, commands)

    async def draft(self, team: str, draft_id: int, user_id: str) -> FlowDraft | None:
        return await self.builder.draft(team, draft_id, user_id)

    async def update_draft(
        self, draft: FlowDraft, *, commands: list[dict[str, Any]] | None = None, end_call: bool | None = None
    ) -> FlowDraft:
        return await self.builder.update_draft(draft, commands=commands, end_call=end_call)

    async def discard_draft(self, team: str, draft_id: int) -> None:
        await self.builder.discard_draft(team, draft_id)

    def flow_request_body(self, account: str, call_id: str, flow: CallFlow, *, end_call: bool) -> Any:
        return self.builder.request_body(account, call_id, flow, end_call=end_call)

    # -- routes -----------------------------------------------------------------------------------

    def _done(self, use_case: Callable[[Invocation, Any], Awaitable[Reply]]) -> Handler:
        """A use case that answers at once: its reply, secrets masked."""

        async def run(inv: Invocation, command: Any) -> Done | Started:
            return Done(self.recorder.redact(await use_case(inv, command)))

        return run

    async def _no_builder(self, inv: Invocation, command: FlowBuilderCommand) -> Done | Started:
        refused = await self.recorder.refuse(inv, self.builder.refusal(inv), action=ActionName.FLOW)
        return Done(self.recorder.redact(refused))

    async def _bulk(self, inv: Invocation, command: HangupAllCommand | BatchCommand) -> Done | Started:
        """Slack runs these itself (progress message, Cancel); here: the shell, which refuses a
        new hangup-all and runs `batch ID resume` to its end."""
        outcome = await self.bulk.typed(inv, command)
        if isinstance(outcome, BatchRun):
            outcome = await self.bulk.run(outcome, _ignore_progress)
        return Done(self.recorder.redact(outcome))

    async def _audit(self, inv: Invocation, query: AuditQuery) -> Reply:
        if query.export:  # Slack runs it after its acknowledgement (bot/slack/)
            return Reply(
                Tone.INFO,
                "`audit export` sends a file in Slack; from the shell use `callbot audit export`.",
                ("e.g. `callbot audit export --format csv --since 30d --output audit.csv`",),
            )
        return await self.audit.search(inv, query)


async def _ignore_progress(reply: Reply) -> None:
    """The shell shows a bulk action's summary only."""


SOURCES = tuple(source.value for source in Source)
