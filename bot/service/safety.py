"""An account's safety policy (bot/domain/policy.py) applied to one action: freeze and
break-glass, a required reason, URL and number allowlists, rate limits, and the confirmation an
account may ask for before an action runs. Each refusal is audited, naming the rule."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot.db import repo
from bot.db.session import Database
from bot.domain import grammar
from bot.domain.actions import ApplyFlow, CallAction, action_params
from bot.domain.errors import CallbotError, ForeignWorkspace, PolicyDenied, RateLimited
from bot.domain.grammar import CallCommand
from bot.domain.outcomes import Source
from bot.domain.permissions import BREAK_GLASS, CALL_ACTIONS, Decision
from bot.domain.policy import (
    DEFAULT_POLICY,
    RATE_WINDOW,
    Policy,
    check_destinations,
    check_reason,
    needs_confirmation,
    rate_limit_wait,
)
from bot.domain.replies import Choice, ConfirmDialog, Reply, Tone, mention
from bot.service.access import Access
from bot.service.recorder import Recorder
from bot.service.steps import Authorised, Cleared, Clock, Invocation


class Safety:
    def __init__(
        self, db: Database, policies: Mapping[str, Policy], access: Access, recorder: Recorder, clock: Clock
    ) -> None:
        self.db = db
        self.policies = dict(policies)
        self.access = access
        self.recorder = recorder
        self.now = clock

    def policy_of(self, account: str) -> Policy:
        return self.policies.get(account, DEFAULT_POLICY)

    async def check(self, inv: Invocation, command: CallCommand, authorised: Authorised) -> Reply | Cleared:
        """Freeze (and break-glass), required reason, URL and number allowlists, rate limits: the
        first rule broken refuses the action, audited as denied (or rate_limited) naming the rule."""
        account, context = authorised.account, authorised.context
        policy, action = self.policy_of(account), command.action
        cleared = await self.check_freeze(inv, account, authorised.decision, action.reason, context)
        if isinstance(cleared, Reply):
            return cleared
        decision, break_glass = cleared.decision, cleared.break_glass
        error: CallbotError | None = None
        rule = ""
        try:
            check_reason(policy, account, action)
            check_destinations(policy, account, action)
        except PolicyDenied as denied:
            error, rule = denied, denied.rule
        if error is None and not command.dry_run:  # a dry run sends nothing: not limited, not counted
            error = await self.rate_limit(inv.team, inv.user_id, account, policy)
            rule = "rate limit"
        if error is not None:
            refused = replace(decision, allowed=False, note=f"refused by {rule}")
            return await self.recorder.refuse(inv, error, decision=refused, break_glass=break_glass, **context)
        return cleared

    async def check_freeze(
        self, inv: Invocation, account: str, decision: Decision, reason: str | None, context: dict[str, Any]
    ) -> Reply | Cleared:
        """A frozen account refuses everyone but holders of `break-glass` there, who must give a
        reason; their rows are flagged `break_glass` and name the grant and the freeze. A refusal
        is audited (`context`: the row's action, account…) and returned as the reply."""
        freeze = await repo.active_freeze(self.db, inv.team, account)
        if freeze is None:
            return Cleared(decision, False)
        frozen = (
            f"Account `{account}` is frozen since {freeze.frozen_at.strftime('%Y-%m-%d %H:%M UTC')} by "
            f"{mention(freeze.frozen_by)}: {freeze.reason}"
        )
        note = f"account frozen (freeze #{freeze.id})"
        glass = await self.access.decide(inv, BREAK_GLASS, account)
        if not glass.allowed:
            error = PolicyDenied(
                "freeze",
                f"{frozen}. Every call action on it is refused until an admin runs `/call unfreeze on={account}`.",
            )
            refused = replace(decision, allowed=False, note=note)
            return await self.recorder.refuse(inv, error, decision=refused, **context)
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
            return await self.recorder.refuse(inv, error, decision=refused, break_glass=True, **context)
        return Cleared(replace(decision, note=note), True)

    async def rate_limit(self, team: str, user_id: str, account: str, policy: Policy) -> RateLimited | None:
        """Soft limits: attempts sent or being sent in the last minute (two requests arriving at the
        same instant may both pass)."""
        now = self.now()
        since = now - RATE_WINDOW
        mine = await repo.recent_attempt_times(self.db, team, since, CALL_ACTIONS, account=account, user_id=user_id)
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
        # The account's limit protects the provider account: everyone in every workspace it is shared with.
        everyone = await repo.recent_attempt_times(self.db, None, since, CALL_ACTIONS, account=account)
        wait = rate_limit_wait(everyone, limit, now)
        if wait is None:
            return None
        return RateLimited(
            f"Account `{account}` had {limit} or more call actions in the last minute "
            f"(max_account_actions_per_minute = {limit}, everyone together). Try again in {wait} s.",
            wait,
        )

    def asks_confirmation(self, inv: Invocation, command: CallCommand, account: str, *, confirmed: bool) -> bool:
        """Typed in Slack (or re-run by an account button), an action listed in `confirm` waits for
        a click. Dry runs send nothing; the modal has its own confirmation step; the shell has no
        buttons (like saved flows, `callbot run` proceeds)."""
        if confirmed or command.dry_run or inv.source not in (Source.SLASH, Source.BUTTON):
            return False
        return needs_confirmation(self.policy_of(account), command.action.name.value)

    async def confirm(self, inv: Invocation, command: CallCommand, authorised: Authorised) -> Reply:
        """Not audited: nothing happened yet. The Confirm click re-runs the command (every check
        again, then audited); Cancel drops it. Both buttons are the typist's only, for 15 minutes."""
        account, label, verb = authorised.account, authorised.label, command.action.name.value
        token = secrets.token_urlsafe(16)
        await repo.save_choice(self.db, inv.team, token, inv.user_id, inv.text, [account], purpose="confirm")
        lines = [*action_summary(command.action)]
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

    async def refuse_foreign_choice(self, inv: Invocation, token: str) -> Reply | None:
        """A click on someone else's Confirm / Cancel: nothing is done (their buttons stay live),
        audited as denied with why. None when the token is not a live confirmation of someone else."""
        choice = await repo.peek_choice(self.db, None, token)
        if choice is not None and choice.team_id != inv.team:
            # Another workspace's button: the same user id there is someone else.
            return await self.refuse_foreign(inv, ForeignWorkspace("button"), action=verb_of(choice.text))
        if choice is None or choice.purpose != "confirm" or choice.user_id == inv.user_id:
            return None
        verb = verb_of(choice.text)
        error = PolicyDenied(
            "confirm",
            f"Only the person who asked ({mention(choice.user_id)}) can confirm or cancel this action: "
            "nothing was done.",
        )
        # Their command as typed is not copied into my audit row (it may hold a provider password).
        clicker = replace(inv, text=f"confirm {verb or 'action'} of {choice.user_id}", idempotency_key=None)
        account = choice.accounts[0] if len(choice.accounts) == 1 else None
        return self.recorder.redact(await self.recorder.refuse(clicker, error, action=verb, account=account))

    async def refuse_foreign(self, inv: Invocation, error: ForeignWorkspace, **fields: Any) -> Reply:
        """A button or form naming another workspace's row: nothing done, audited as denied (in
        the clicker's workspace: the row's stays untouched)."""
        clicker = replace(inv, text=f"{error.what} of another workspace", idempotency_key=None)
        return self.recorder.redact(await self.recorder.refuse(clicker, error, **fields))

    async def dismiss_choice(self, team: str, user_id: str, token: str) -> Reply | None:
        """The Cancel button of a confirmation: the stored command is dropped, nothing is sent.
        None when the button is not this person's (or already used): their message stays."""
        choice = await repo.take_choice(self.db, team, token, user_id)
        if choice is None:
            return None
        return Reply(Tone.INFO, "Canceled: nothing was sent.", (f"`/call {choice.text}`",))


def action_summary(action: CallAction) -> list[str]:
    """What a confirmation shows: the action's parameters, never a password."""
    if isinstance(action, ApplyFlow):
        lines = [f"{i}. {line}" for i, line in enumerate(action.flow.summary(), 1)]
        return [*lines, *([f"Reason: {action.reason}"] if action.reason else [])]
    params = {k: v for k, v in action_params(action).items() if "password" not in k}
    return [f"{key.replace('_', ' ')}: {value}" for key, value in params.items()]


def verb_of(text: str) -> str | None:
    """The audit action a command's text is about, read without parsing it (it may not parse)."""
    first = text.strip().split(maxsplit=2)
    word = first[0].lower() if first else ""
    if word == "flows":
        sub = first[1].lower() if len(first) > 1 else "list"
        return f"flows.{sub}" if sub in grammar.FLOWS_USAGE else "flows"
    if word in ("list", "status"):
        return f"calls.{word}"
    return word if word in grammar.VERBS or word == "flow" else None
