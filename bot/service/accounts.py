"""Which provider account a call is on, and whether this person may act there.

`authorise` is the first two steps of every call action: resolve the account (asking with
buttons when the call id fits several), then decide the person's grant; a refusal is audited.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.db import repo
from bot.db.session import Database
from bot.domain import grammar
from bot.domain.actions import ActionName, CallTarget
from bot.domain.callids import MAX_FOUND, distinct_labels, find_call_ids
from bot.domain.errors import AmbiguousAccount, InvalidInput, PermissionDenied
from bot.domain.permissions import Decision, decide
from bot.domain.replies import Choice, Reply
from bot.providers.base import ProviderClient
from bot.service.access import Access
from bot.service.recorder import Recorder
from bot.service.steps import Authorised, Done, Invocation


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
class FoundCall:
    """A call id found in a message, as the action form offers it: shortened for the menu, with
    the configured accounts whose call ids have its shape."""

    call_id: str
    label: str
    accounts: tuple[str, ...]


def shared_with(team: str, workspaces: tuple[str, ...] | None, home: str | None) -> bool:
    """THE rule of which workspace sees an account (every surface asks it through
    `Accounts.visible`): an account listing `workspaces` exists only in those; one without the key
    belongs to the single workspace of single-workspace mode, `home` (the bot token's team, from
    auth.test; None when it could not be read: then the only workspace there is)."""
    if workspaces is not None:
        return team in workspaces
    return home is None or team == home


class Accounts:
    def __init__(
        self,
        clients: Mapping[str, ProviderClient],
        db: Database,
        recorder: Recorder,
        access: Access,
        workspaces: Mapping[str, tuple[str, ...] | None] | None = None,
        home: str | None = None,
    ) -> None:
        self.clients = dict(clients)
        self.db = db
        self.recorder = recorder
        self.access = access
        # Each account's `workspaces` key (callbot.toml); and the bot token's own workspace.
        self.workspaces = dict(workspaces or {})
        self.home = home

    def visible(self, team: str) -> dict[str, ProviderClient]:
        """The accounts that exist in workspace `team`: any other is "not a configured account" there."""
        return {
            name: client
            for name, client in self.clients.items()
            if shared_with(team, self.workspaces.get(name), self.home)
        }

    def client(self, team: str, account: str) -> ProviderClient | None:
        return self.visible(team).get(account)

    def resolve(self, team: str, target: CallTarget) -> tuple[str, ProviderClient]:
        clients = self.visible(team)
        if not clients:
            raise InvalidInput(
                None, "No provider account is configured.", "An admin must add one (docs/configuration.md)."
            )
        if target.account is not None:
            client = clients.get(target.account)
            if client is None:
                names = sorted(clients)
                hint = grammar.suggest(target.account, names) or f"Configured accounts: {', '.join(names)}."
                raise InvalidInput(f"{target.account}:", "is not a configured account.", hint)
            return target.account, client
        matches = sorted(name for name, c in clients.items() if c.call_id_pattern.fullmatch(target.call_id))
        if len(matches) == 1:
            return matches[0], clients[matches[0]]
        if not matches:
            shapes = sorted({f"{c.provider} `{c.call_id_example}`" for c in clients.values()})
            raise InvalidInput(
                target.call_id,
                "does not look like a call id of any configured provider.",
                f"Expected {' or '.join(shapes)}; or name the account: `ACCOUNT:{target.call_id}`.",
            )
        raise AmbiguousAccount(target.call_id, tuple(matches))

    async def authorise(self, inv: Invocation, target: CallTarget, verb: ActionName) -> Done | Authorised:
        """Resolve the account (asking when ambiguous) and check the person may run `verb` there."""
        if target.account is None and inv.account is not None:
            target = CallTarget(inv.account, target.call_id)
        try:
            account, client = self.resolve(inv.team, target)
        except AmbiguousAccount as error:
            return Done(await self.offer(inv, error, verb))
        except InvalidInput as error:
            return Done(await self.recorder.refuse(inv, error, action=verb, call_id=target.call_id))
        context: dict[str, Any] = {
            "action": verb.value,
            "account": account,
            "provider": client.provider,
            "call_id": target.call_id,
        }
        decision = await self.access.decide(inv, verb.value, account)
        if not decision.allowed:
            return Done(await self.recorder.refuse(inv, denied(decision), decision=decision, **context))
        return Authorised(account, client, decision, context, target.display(account))

    async def offer(self, inv: Invocation, error: AmbiguousAccount, verb: ActionName | str) -> Reply:
        """Audited as invalid (nothing was sent); the buttons re-run the command on one account."""
        refused = await self.recorder.refuse(inv, error, action=verb, call_id=error.call_id)
        token = secrets.token_urlsafe(16)
        await repo.save_choice(self.db, inv.team, token, inv.user_id, inv.text, list(error.accounts))
        choices = tuple(Choice(f"{name}:{error.call_id}", f"{token}|{name}") for name in error.accounts)
        return replace(refused, title="Which account is this call on?", choices=choices)

    async def for_form(self, team: str, user_id: str) -> list[FormAccount]:
        # The form does not know the channel: channel-scoped grants are offered, and the submission
        # is decided again with its channel.
        held, _ = await self.access.held(team, user_id)
        now = self.access.now()
        grants = [replace(g, channel=None) for g in held if not g.expired(now)]
        offered = []
        for name, client in sorted(self.visible(team).items()):
            actions = tuple(a.value for a in client.supported if decide(grants, a.value, name).allowed)
            if actions:
                options = {a.value: tuple(sorted(client.supported[a])) for a in client.supported}
                offered.append(
                    FormAccount(name, client.provider, client.display_name, client.call_id_example, actions, options)
                )
        return offered

    def found_calls(self, team: str, texts: Iterable[str]) -> list[FoundCall]:
        """The call ids of any account of workspace `team` in `texts` (a message's text, blocks and
        attachments), in the order they appear: MAX_FOUND, and one more when there are more (the
        form offers MAX_FOUND and says there were more)."""
        clients = self.visible(team)
        ids = find_call_ids(texts, [c.call_id_pattern for c in clients.values()], MAX_FOUND + 1)
        labels = distinct_labels(ids)
        return [
            FoundCall(
                call_id,
                labels[call_id],
                tuple(sorted(n for n, c in clients.items() if c.call_id_pattern.fullmatch(call_id))),
            )
            for call_id in ids
        ]

    def bird_example(self, team: str) -> str:
        return next((name for name, c in sorted(self.visible(team).items()) if c.provider == "bird"), "ACCOUNT")


def denied(decision: Decision) -> PermissionDenied:
    """A refused call action says why when a grant nearly matched (channel, expiry, unreadable group)."""
    if not decision.note:
        return PermissionDenied(decision.action, decision.account)
    return PermissionDenied(decision.action, decision.account, f"Your grants here: {decision.note}.")
