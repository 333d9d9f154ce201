"""The callFlow builder's use cases (the Slack modal is bot/slack/): who may build for which call,
and the person's drafts, each command validated as it is added. Applying a built flow goes through
the call-action pipeline like any `/call flow`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.db import flow_store
from bot.db.models import utcnow
from bot.db.session import Database
from bot.domain import grammar
from bot.domain.actions import ActionName, ApplyFlow, CallTarget
from bot.domain.callflow import CallFlow
from bot.domain.errors import ForeignWorkspace, InvalidInput
from bot.domain.grammar import FlowBuilderCommand
from bot.domain.outcomes import Source
from bot.domain.replies import Reply
from bot.service.accounts import Accounts
from bot.service.recorder import Recorder
from bot.service.steps import Done, Invocation


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
    team_id: str = ""  # its workspace: every later read and write of the draft is scoped by it

    @property
    def label(self) -> str:
        return f"{self.account}:{self.call_id}"


@dataclass(frozen=True)
class BuilderOpening:
    """`/call flow CALL` may open the builder: the call, and the person's unfinished draft for it."""

    account: str
    call_id: str
    earlier: FlowDraft | None


class FlowBuilder:
    def __init__(self, db: Database, recorder: Recorder, accounts: Accounts) -> None:
        self.db = db
        self.recorder = recorder
        self.accounts = accounts

    def target(self, team: str, text: str) -> CallTarget | None:
        """`/call flow CALL` alone, on an account whose provider takes callFlows: the call the builder
        is for (account resolved). None otherwise; the normal pipeline then explains what is missing.
        No database access, so Slack's listener can decide at once whether to open a modal."""
        try:
            command = grammar.parse(text)
        except InvalidInput:
            return None
        return self.target_of(team, command) if isinstance(command, FlowBuilderCommand) else None

    def target_of(self, team: str, command: FlowBuilderCommand) -> CallTarget | None:
        try:
            account, client = self.accounts.resolve(team, command.target)
        except InvalidInput:
            return None
        return CallTarget(account, command.target.call_id) if ActionName.FLOW in client.supported else None

    async def open(self, inv: Invocation, target: CallTarget) -> BuilderOpening | Reply:
        """May this person build a flow for this call? `flow` on the account (refusals are audited,
        like any refused attempt), a callFlow provider, a well-formed call id. Then their draft, if any."""
        authorised = await self.accounts.authorise(inv, target, ActionName.FLOW)
        if isinstance(authorised, Done):
            return self.recorder.redact(authorised.reply)
        try:
            authorised.client.check_supported(ActionName.FLOW, frozenset())
            authorised.client.check_call_id(target.call_id)
        except InvalidInput as error:
            return self.recorder.redact(
                await self.recorder.refuse(inv, error, decision=authorised.decision, **authorised.context)
            )
        row = await flow_store.latest_draft(self.db, inv.team, inv.user_id, authorised.account, target.call_id)
        return BuilderOpening(authorised.account, target.call_id, _draft(row) if row else None)

    async def start_draft(
        self, team: str, user_id: str, account: str, call_id: str, commands: list[dict[str, Any]] | None = None
    ) -> FlowDraft:
        """A fresh draft (replacing the person's earlier one for this call)."""
        return _draft(await flow_store.create_draft(self.db, team, user_id, account, call_id, commands or []))

    async def draft(self, team: str, draft_id: int, user_id: str) -> FlowDraft | None:
        """The person's own live draft; None when expired, applied, someone else's or another
        workspace's."""
        row = await flow_store.get_draft(self.db, team, draft_id)
        if row is None and await flow_store.draft_workspace(self.db, draft_id) not in (None, team):
            # A builder view naming another workspace's draft: nothing of it is shown, and the
            # attempt is audited (the person then sees the draft as gone).
            inv = Invocation("modal", user_id, f"flow draft #{draft_id}", team_id=team)
            await self.recorder.refuse(inv, ForeignWorkspace("draft"), action=ActionName.FLOW)
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
        await flow_store.update_draft(
            self.db,
            draft.team_id,
            draft.id,
            commands=list(changed.commands),
            end_call=changed.end_call,
            updated_at=changed.updated_at,
        )
        return changed

    async def discard_draft(self, team: str, draft_id: int) -> None:
        await flow_store.delete_draft(self.db, team, draft_id)

    def request_body(self, account: str, call_id: str, flow: CallFlow, *, end_call: bool) -> Any:
        """The exact JSON body `flow` would PATCH to the call: the builder's Preview."""
        return self.accounts.clients[account].build(call_id, ApplyFlow(flow, end_call=end_call)).redacted_body()

    def refusal(self, inv: Invocation) -> InvalidInput:
        """What `/call flow CALL` without a callFlow means outside Slack's builder."""
        where = (
            "The callFlow builder is a Slack modal: run `/call flow ACCOUNT:CALL-ID` in Slack."
            if inv.source == Source.CLI
            else "Alone, `/call flow ACCOUNT:CALL-ID` opens the callFlow builder, on a Bird account."
        )
        usage = f"Or give the callFlow (JSON or YAML) or a saved flow's name: `{grammar.VERBS['flow'].usage}`"
        return InvalidInput(None, "`flow` needs CALLFLOW.", f"{where} {usage}")


def _draft(row: Any) -> FlowDraft:
    return FlowDraft(
        row.id,
        row.user_id,
        row.account,
        row.call_id,
        tuple(row.commands),
        bool(row.end_call),
        row.updated_at,
        row.team_id,
    )
