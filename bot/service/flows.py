"""Saved flows, the team's library of named Bird callFlows: `/call flows` (list, show, save,
delete) and applying one to a call (`/call flow CALL NAME`, shown first with an Apply button).
Saving and deleting are audited like call actions: pending first, then the outcome."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from bot.db import repo
from bot.db.session import Database
from bot.domain import flows, grammar
from bot.domain.actions import ActionName, ApplyFlow
from bot.domain.callflow import CallFlow
from bot.domain.errors import InvalidInput, PermissionDenied
from bot.domain.flows import FlowRef, LibraryEntry, SavedFlow
from bot.domain.grammar import CallCommand, FlowsCommand, SavedFlowCommand
from bot.domain.outcomes import Outcome, Source
from bot.domain.permissions import Decision, decide_flow_manage, decide_flow_read
from bot.domain.policy import announce_to
from bot.domain.replies import Choice, Reply, Tone, mention, plural
from bot.service import flow_library
from bot.service.access import Access
from bot.service.accounts import Accounts
from bot.service.calls import Approved, CallActions
from bot.service.recorder import Recorder
from bot.service.safety import Safety
from bot.service.steps import Authorised, Done, Invocation, Started

log = logging.getLogger(__name__)


class SavedFlows:
    def __init__(
        self,
        db: Database,
        recorder: Recorder,
        access: Access,
        accounts: Accounts,
        safety: Safety,
        calls: CallActions,
    ) -> None:
        self.db = db
        self.recorder = recorder
        self.access = access
        self.accounts = accounts
        self.safety = safety
        self.calls = calls

    async def save(self, inv: Invocation, name: str, flow: CallFlow) -> Reply:
        """Save `flow` as the next version of `name` (the builder's "Save as…"): the same permission
        check (`flow:manage` on `*`) and audit row (`flows.save`) as `/call flows save`."""
        earlier = await self.recorder.replay(inv)
        if earlier is not None:
            return earlier
        try:
            flows.check_name(name)
        except InvalidInput as error:
            return self.recorder.redact(await self.recorder.refuse(inv, error, action="flows.save"))
        return self.recorder.redact(await self.library(inv, FlowsCommand("save", FlowRef(name), flow)))

    async def begin(
        self, inv: Invocation, command: SavedFlowCommand, *, confirmed: bool = False, approved: Approved | None = None
    ) -> Done | Started:
        step = await self._begin(inv, command, confirmed=confirmed, approved=approved)
        return step if isinstance(step, Started) else Done(self.recorder.redact(step.reply))

    async def _begin(
        self, inv: Invocation, command: SavedFlowCommand, *, confirmed: bool, approved: Approved | None
    ) -> Done | Started:
        """`/call flow CALL NAME[@N]`: permission first (`flow` on the account), then the flow. Typed in
        Slack, it answers with a confirmation; the click (`confirmed`) runs the normal pipeline.
        `dry-run` and the shell (which has no buttons) go straight to the pipeline."""
        authorised = await self.accounts.authorise(inv, command.target, ActionName.FLOW)
        if isinstance(authorised, Done):
            return authorised
        try:
            saved = await flow_library.resolve(self.db, inv.team, command.ref)
        except InvalidInput as error:
            return Done(await self.recorder.refuse(inv, error, decision=authorised.decision, **authorised.context))
        action = ApplyFlow(saved.flow, command.reason, saved_name=saved.name, saved_version=saved.version)
        options: frozenset[str] = frozenset()  # `reason` is callbot's, not a provider option
        call = CallCommand(command.target, action, command.dry_run, options, command.announce)
        if command.dry_run or confirmed or inv.source == Source.CLI:
            # Applying a saved flow always has its own confirmation: `confirm` adds no second one.
            return await self.calls.proceed(inv, call, authorised, confirmed=True, approved=approved)
        try:  # refuse now what the click would refuse anyway (e.g. a Twilio account)
            authorised.client.check_supported(ActionName.FLOW, options)
            authorised.client.build(command.target.call_id, action)
            announce_to(self.safety.policy_of(authorised.account), authorised.account, command.announce)
        except InvalidInput as error:
            return Done(await self.recorder.refuse(inv, error, decision=authorised.decision, **authorised.context))
        cleared = await self.safety.check(inv, call, authorised)  # refuse before offering the button
        if isinstance(cleared, Reply):
            return Done(cleared)
        return Done(await self._confirm_flow(inv, saved, command, authorised))

    async def _confirm_flow(
        self, inv: Invocation, saved: SavedFlow, command: SavedFlowCommand, authorised: Authorised
    ) -> Reply:
        """Not audited: nothing happened yet. The button re-runs the command naming the exact account
        and version shown here (a newer version saved meanwhile does not change what is applied)."""
        words = ["flow", f"{authorised.account}:{command.target.call_id}", str(saved.ref)]
        if command.reason:
            words.append(f"reason={command.reason}")
        if command.announce:
            words.append("announce")
        token = secrets.token_urlsafe(16)
        await repo.save_choice(
            self.db, inv.team, token, inv.user_id, shlex.join(words), [authorised.account], purpose="confirm"
        )
        summary = saved.flow.summary()
        lines = [
            f"Saved by {mention(saved.author)} on {_when(saved)}; {plural(len(summary), 'command')}:",
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

    async def menu(self, team: str, user_id: str) -> list[LibraryEntry]:
        """The saved flows the action form offers, to someone who may read them (as the form does,
        channel-scoped grants count: applying one is decided again, with its channel)."""
        held, _ = await self.access.held(team, user_id)
        now = self.access.now()
        grants = [replace(g, channel=None) for g in held if not g.expired(now)]
        if not decide_flow_read(grants).allowed:
            return []
        return await flow_library.entries(self.db, team)

    async def library(self, inv: Invocation, command: FlowsCommand) -> Reply:
        """`/call flows`: list and show need `flow` somewhere (or `flow:manage`); save and delete
        need `flow:manage` on `*`."""
        grants = await self.access.usable(inv)
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
                return await self.recorder.refuse(inv, denial, action=action, decision=decision)
            return await (self._list_flows(inv.team) if command.sub == "list" else self._show_flow(inv.team, command))
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
            return await self.recorder.refuse(inv, denial, action=action, decision=decision, request=request)
        if command.document is not None:  # read only now that the person may save
            try:
                command = await asyncio.to_thread(grammar.read_flows_document, command)
            except InvalidInput as error:
                return await self.recorder.refuse(inv, error, action=action, decision=decision, request=request)
            assert command.flow is not None
            request["callFlow"] = command.flow.to_wire()
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
        row = await self.recorder.open(inv, outcome=Outcome.PENDING, decision=decision, action=action, request=request)
        if isinstance(row, Reply):
            return row
        try:
            reply, result = await change()
        except InvalidInput as error:
            await self.recorder.complete(row.id, outcome=Outcome.INVALID, error_message=error.message)
            return Reply(Tone.INVALID, "That command is not valid.", (error.message,), audit_id=row.id)
        except Exception:
            log.exception("could not change the saved flows (audit #%s)", row.id)
            await self.recorder.complete(
                row.id, outcome=Outcome.FAILED, error_message="internal error; see the server log"
            )
            return Reply(
                Tone.FAILURE,
                "callbot could not change the saved flows; nothing was changed.",
                ("The error is in the server log.",),
                audit_id=row.id,
            )
        await self.recorder.complete(row.id, outcome=Outcome.SUCCEEDED, result=result)
        return replace(reply, audit_id=row.id)

    async def _store_flow(self, inv: Invocation, name: str, flow: CallFlow) -> tuple[Reply, dict[str, Any]]:
        saved = await flow_library.save(self.db, inv.team, name, flow, inv.user_id)
        summary = flow.summary()
        lines = [*(f"{i}. {line}" for i, line in enumerate(summary, 1))]
        if saved.version > 1:
            lines.append(f"Earlier versions are kept: `/call flows show {name}@{saved.version - 1}`.")
        lines.append(f"Apply it: `/call flow {self.accounts.bird_example(inv.team)}:CALL-ID {name}`.")
        title = f"Saved {saved.label} ({plural(len(summary), 'command')})."
        result = {"name": saved.name, "version": saved.version, "saved_flow_id": saved.id}
        return Reply(Tone.SUCCESS, title, tuple(lines)), result

    async def _drop_flow(self, inv: Invocation, name: str) -> tuple[Reply, dict[str, Any]]:
        versions = await flow_library.delete(self.db, inv.team, name, inv.user_id)
        kept = f"version {versions[0]}" if len(versions) == 1 else f"versions {versions[0]}–{versions[-1]}"
        title = f"Deleted saved flow `{name}`."
        lines = (
            f"It is no longer listed and cannot be applied; its {kept} stay in the database for the record.",
            f"Saving `{name}` again starts at version {versions[-1] + 1}.",
        )
        return Reply(Tone.SUCCESS, title, lines), {"name": name, "versions": versions}

    async def _list_flows(self, team: str) -> Reply:
        entries = await flow_library.entries(self.db, team)
        if not entries:
            return Reply(
                Tone.INFO,
                "No saved flows yet.",
                ("Save one with `/call flows save NAME 'CALLFLOW-JSON'` (needs `flow:manage`).",),
            )
        lines = [
            f"`{e.name}` v{e.version} · {plural(e.commands, 'command')} · by {mention(e.author)} · "
            f"{e.created_at.strftime('%Y-%m-%d %H:%M UTC')}" + (f" · {e.versions} versions" if e.versions > 1 else "")
            for e in entries
        ]
        lines.append(
            f"Show one: `/call flows show NAME`. Apply: `/call flow {self.accounts.bird_example(team)}:CALL-ID NAME` "
            "(shows it first and asks to confirm)."
        )
        return Reply(Tone.INFO, f"Saved flows ({len(entries)}):", tuple(lines))

    async def _show_flow(self, team: str, command: FlowsCommand) -> Reply:
        assert command.ref is not None
        try:
            saved = await flow_library.resolve(self.db, team, command.ref)
        except InvalidInput as error:
            return Reply(Tone.INVALID, "No such saved flow.", (error.message,))
        versions = await flow_library.versions(self.db, team, saved.name)
        latest = "latest" if saved.version == versions[-1] else f"latest is v{versions[-1]}"
        summary = saved.flow.summary()
        lines = (
            f"Saved by {mention(saved.author)} on {_when(saved)}. Versions: {', '.join(str(v) for v in versions)}.",
            f"{plural(len(summary), 'command')}:",
            *(f"{i}. {line}" for i, line in enumerate(summary, 1)),
            f"Apply it: `/call flow {self.accounts.bird_example(team)}:CALL-ID {saved.ref}`.",
        )
        wire = saved.flow.to_wire()
        code = json.dumps(wire, indent=2, ensure_ascii=False)
        if len(code) > 2900:
            code = json.dumps(wire, ensure_ascii=False, separators=(",", ":"))
        return Reply(Tone.INFO, f"Saved flow {saved.label} ({latest})", lines, code=code)


def _when(saved: SavedFlow) -> str:
    return saved.created_at.strftime("%Y-%m-%d %H:%M UTC")
