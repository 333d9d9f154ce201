"""Seeing calls: `/call list`, `/call status`, the More button, the action form's call type-ahead,
and the `check_state` safety check before an action (bot/service/call_state.py). Plain values in and out: provider `LiveCall`s
become `CallEntry` / `CallOption` here, so the chat layer never sees a provider type.

Who may see an account's live calls: anyone holding a call action (hangup, cancel, redirect, twiml
or flow) there. Reads are audited (a compliance team wants reads of live call data on record):
`calls.list` and `calls.status` rows, written `pending` before the provider read and completed
after it, with the filter as the request and never a phone number in the row (numbers are masked
in the request and in the command text). The type-ahead is not audited: it runs on every keystroke
and shows what `/call list` shows; the action submitted from the form is audited as usual.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot.db import repo
from bot.db.session import Database
from bot.domain import grammar, phone
from bot.domain.actions import ActionName, CallTarget
from bot.domain.errors import AmbiguousAccount, CallbotError, InvalidInput, PermissionDenied, ProviderError
from bot.domain.grammar import CallStatusCommand, ListCallsCommand
from bot.domain.outcomes import Outcome, Source
from bot.domain.permissions import CALL_ACTIONS, Decision, concerns, decide, decide_any
from bot.domain.replies import CallEntry, CallListing, CallOption, Reply, Tone
from bot.providers.base import CallFilter, LiveCall, ProviderClient, provider_error_fields
from bot.service.access import Access
from bot.service.accounts import Accounts
from bot.service.call_state import STATE_CHECKED as STATE_CHECKED  # re-exported: where the pipeline finds them
from bot.service.call_state import StateCheck as StateCheck
from bot.service.call_state import after_refusal, check_state, state_record
from bot.service.recorder import Recorder
from bot.service.steps import Clock, Invocation, Started

log = logging.getLogger(__name__)

LIST_ACTION = "calls.list"
STATUS_ACTION = "calls.status"
PAGE_SIZE = 20  # two blocks a call: 20 calls stay within Slack's 50 blocks a message
VALUE_LIMIT = 2000  # Slack's limit on a button value
STORED = "stored:"  # a More value kept server-side (pending_choices) because it did not fit
OPTIONS_LIMIT = 100  # Slack shows at most 100 options
# Slack waits 3 s for the options answer: the provider gets what is left after our own work.
OPTIONS_DEADLINE = 2.5
_ARROW = {"inbound": "↘", "outbound": "↗"}


class LiveCalls:
    """The live-calls half of the service; it uses the service's grants, audit and clients."""

    def __init__(
        self,
        db: Database,
        clients: Mapping[str, ProviderClient],
        clock: Clock,
        recorder: Recorder,
        access: Access,
        accounts: Accounts,
    ) -> None:
        self.db = db
        self.clients = dict(clients)
        self.now = clock
        self.recorder = recorder
        self.access = access
        self.accounts = accounts

    @staticmethod
    def read_command(text: str) -> ListCallsCommand | CallStatusCommand | None:
        """`/call list …` or `/call status …` (parsed, no I/O): Slack acknowledges these before the
        provider is read. None for anything else (including a malformed one: the pipeline says why)."""
        try:
            command = grammar.parse(text)
        except InvalidInput:
            return None
        return command if isinstance(command, ListCallsCommand | CallStatusCommand) else None

    async def run(self, inv: Invocation, command: ListCallsCommand | CallStatusCommand) -> Reply:
        if isinstance(command, ListCallsCommand):
            flt = {"status": command.status, "to": command.to, "from": command.from_number}
            return await self.list_page(inv, command.account, flt)
        return await self.status(inv, command.target)

    # -- /call list ---------------------------------------------------------------------------

    async def list_page(
        self, inv: Invocation, account: str, flt: dict[str, str | None], token: str | None = None
    ) -> Reply:
        """One page of the account's live calls (the first, or the one `token` continues to)."""
        shown = {
            "status": flt.get("status"),
            "to": masked_number(flt.get("to")),
            "from": masked_number(flt.get("from")),
        }
        request: dict[str, Any] = {**shown, "next_page": token is not None}
        # The command text is rebuilt from the masked filter, not copied as typed: however a number
        # was written (with or without `+`, spaced), it never reaches the audit row in full.
        inv = replace(inv, text=_list_text(account, shown, token), idempotency_key=None)
        context: dict[str, Any] = {"action": LIST_ACTION, "account": account, "request": request}
        try:
            client = self.client_in(inv.team, account)
            wanted = CallFilter(flt.get("status"), normalised_number(flt.get("to")), normalised_number(flt.get("from")))
        except InvalidInput as error:
            return await self.recorder.refuse(inv, error, **context)
        context["provider"] = client.provider
        decision = await self._decide(inv, account)
        if not decision.allowed:
            return await self.recorder.refuse(inv, _denied(decision, account), decision=decision, **context)
        row = await self.recorder.record(inv, outcome=Outcome.PENDING, decision=decision, **context)
        try:
            page = await client.list_calls(wanted, page_token=token, page_size=PAGE_SIZE)
        except CallbotError as error:
            return await self._read_failed(row.id, error, f"Could not list the live calls of `{account}`")
        calls = page.calls
        await self.recorder.complete(
            row.id,
            outcome=Outcome.SUCCEEDED,
            result={"calls": len(calls), "call_ids": [c.call_id for c in calls], "more": page.next_token is not None},
        )
        entries = await self._entries(inv, account, client, calls)
        more = await self._more_value(inv, account, flt, page.next_token) if page.next_token else None
        return _listing_reply(account, client, flt, entries, more, row.id)

    async def more(self, inv: Invocation, value: str) -> Reply:
        """The More button: the next page, checked and audited again with the clicker's grants now."""
        if value.startswith(STORED):
            choice = await repo.take_choice(self.db, inv.team, value[len(STORED) :], inv.user_id)
            value = choice.text if choice is not None else ""
        try:
            data = json.loads(value)
            account, token = str(data["a"]), str(data["p"])
            flt = {"status": data.get("s"), "to": data.get("t"), "from": data.get("f")}
        except (ValueError, KeyError, TypeError):
            return Reply(Tone.INFO, "This button is no longer active.", ("Run `/call list ACCOUNT` again.",))
        return await self.list_page(replace(inv, text=""), account, flt, token)

    async def _more_value(self, inv: Invocation, account: str, flt: dict[str, str | None], token: str) -> str:
        value = json.dumps(
            {"a": account, "s": flt.get("status"), "t": flt.get("to"), "f": flt.get("from"), "p": token},
            separators=(",", ":"),
        )
        if len(value) <= VALUE_LIMIT:
            return value
        # Too long for a button (a provider's long next-page URL): kept in the database for 15 minutes.
        key = secrets.token_urlsafe(16)
        await repo.save_choice(self.db, inv.team, key, inv.user_id, value, [account], purpose="page")
        return STORED + key

    # -- /call status ---------------------------------------------------------------------------

    async def status(self, inv: Invocation, target: CallTarget) -> Reply:
        inv = replace(inv, idempotency_key=None)
        if target.account is None and inv.account is not None:
            target = CallTarget(inv.account, target.call_id)
        try:
            account, client = self.accounts.resolve(inv.team, target)
        except AmbiguousAccount as error:
            return await self.accounts.offer(inv, error, STATUS_ACTION)
        except InvalidInput as error:
            return await self.recorder.refuse(inv, error, action=STATUS_ACTION, call_id=target.call_id)
        context: dict[str, Any] = {
            "action": STATUS_ACTION,
            "account": account,
            "provider": client.provider,
            "call_id": target.call_id,
        }
        decision = await self._decide(inv, account)
        if not decision.allowed:
            return await self.recorder.refuse(inv, _denied(decision, account), decision=decision, **context)
        try:
            client.check_call_id(target.call_id)
        except InvalidInput as error:
            return await self.recorder.refuse(inv, error, decision=decision, **context)
        row = await self.recorder.record(inv, outcome=Outcome.PENDING, decision=decision, **context)
        label = target.display(account)
        try:
            call = await client.get_call(target.call_id)
        except CallbotError as error:
            return await self._read_failed(row.id, error, f"Could not read the state of {label}")
        await self.recorder.complete(row.id, outcome=Outcome.SUCCEEDED, result=state_record(call))
        entries = await self._entries(inv, account, client, () if call.ended else (call,), with_text=False)
        lines = _status_lines(call, client, self.now())
        title = f"{label} is `{call.status}`" + (" (ended)" if call.ended else "")
        return Reply(Tone.INFO, title, lines, audit_id=row.id, calls=CallListing(entries))

    # -- the action form's type-ahead ---------------------------------------------------------------

    async def options(self, team: str, user_id: str, account: str | None, typed: str) -> list[CallOption]:
        """The account's live calls matching what was typed (id or number digits), for the form's
        call menu. A typed text that has the provider's call id shape is offered as itself too,
        so a call that is not listed can still be picked. Never raises: Slack needs an answer."""
        client = self.accounts.client(team, account or "")
        if client is None or account is None:
            return []
        typed = typed.strip()
        if not await self._may_see(team, user_id, account):
            return []
        own = [CallOption(f"Use {typed}"[:75], typed)] if client.call_id_pattern.fullmatch(typed) else []
        try:
            calls = await asyncio.wait_for(_collect(client, OPTIONS_LIMIT), OPTIONS_DEADLINE)
        except Exception:
            log.exception("could not list the live calls of %s for the call menu", account)
            return own
        now = self.now()
        found = [CallOption(_option_label(c, now), c.call_id) for c in calls if _matches(c, typed)]
        if own and any(o.call_id == typed for o in found):
            own = []
        return (own + found)[:OPTIONS_LIMIT]

    async def _may_see(self, team: str, user_id: str, account: str) -> bool:
        """As the form does: channel-scoped grants count (the form has no channel); the submission
        is decided again with its channel."""
        held, _ = await self.access.held(team, user_id, lambda g: any(concerns(g, a, account) for a in CALL_ACTIONS))
        grants = [replace(g, channel=None) for g in held]
        return decide_any(grants, CALL_ACTIONS, account, now=self.now()).allowed

    # -- check_state -----------------------------------------------------------------------------

    async def check_state(self, client: ProviderClient, call_id: str, action: ActionName, label: str) -> StateCheck:
        """The account's `check_state` read before an action (bot/service/call_state.py)."""
        return await check_state(client, call_id, action, label)

    async def after_refusal(
        self, started: Started, error: ProviderError, checked: StateCheck | None
    ) -> tuple[ProviderError, StateCheck | None]:
        """A provider error, told more precisely when it left the call's state open (Twilio 21220)."""
        return await after_refusal(started, error, checked)

    # -- shared ---------------------------------------------------------------------------------

    def client_in(self, team: str, account: str) -> ProviderClient:
        """The account's client if it exists in workspace `team`; else InvalidInput, as for an unknown one."""
        visible = self.accounts.visible(team)
        client = visible.get(account)
        if client is None:
            names = sorted(visible)
            hint = grammar.suggest(account, names) or f"Configured accounts: {', '.join(names) or 'none'}."
            raise InvalidInput(account, "is not a configured account.", hint)
        return client

    async def _decide(self, inv: Invocation, account: str) -> Decision:
        held, problems = await self.access.held(
            inv.team, inv.user_id, lambda g: any(concerns(g, a, account) for a in CALL_ACTIONS)
        )
        decision = decide_any(held, CALL_ACTIONS, account, channel=inv.channel_id, now=self.now())
        if not decision.allowed and problems:
            decision = replace(decision, note="; ".join(filter(None, [decision.note, *problems])))
        return decision

    async def _entries(
        self,
        inv: Invocation,
        account: str,
        client: ProviderClient,
        calls: tuple[LiveCall, ...],
        *,
        with_text: bool = True,
    ) -> tuple[CallEntry, ...]:
        """Each call with the buttons this person may use on it here. Hang up is a stored
        `/call hangup` (the account-choice machinery): the click runs the whole pipeline once."""
        if not calls:
            return ()
        if inv.source == Source.CLI:  # the shell has no buttons: nothing to store for them
            return tuple(CallEntry(account, c.call_id, _call_line(c, self.now()) if with_text else "") for c in calls)
        held, _ = await self.access.held(inv.team, inv.user_id)
        now = self.now()
        allowed = {
            a
            for a in CALL_ACTIONS
            if ActionName(a) in client.supported and decide(held, a, account, channel=inv.channel_id, now=now).allowed
        }
        entries = []
        for call in calls:
            hangup = None
            if "hangup" in allowed:
                token = secrets.token_urlsafe(16)
                text = f"hangup {account}:{call.call_id}"
                await repo.save_choice(self.db, inv.team, token, inv.user_id, text, [account])
                hangup = f"{token}|{account}"
            line = _call_line(call, now) if with_text else ""
            entries.append(CallEntry(account, call.call_id, line, hangup, "redirect" in allowed, "flow" in allowed))
        return tuple(entries)

    async def _read_failed(self, audit_id: int, error: CallbotError, title: str) -> Reply:
        fields = provider_error_fields(error) if isinstance(error, ProviderError) else {}
        fields.setdefault("error_message", error.message)
        outcome = "failed" if error.outcome == Outcome.UNKNOWN else error.outcome  # a read changes nothing
        await self.recorder.complete(audit_id, outcome=outcome, **fields)
        tone = Tone.INVALID if outcome == Outcome.INVALID else Tone.FAILURE
        return Reply(tone, f"{title}.", (error.message,), audit_id=audit_id)


# -- wording ----------------------------------------------------------------------------------------


def _listing_reply(
    account: str,
    client: ProviderClient,
    flt: dict[str, str | None],
    entries: tuple[CallEntry, ...],
    more: str | None,
    audit_id: int,
) -> Reply:
    about = _filter_text(flt)
    if not entries:
        title = f"No live calls on `{account}`{about}."
        return Reply(Tone.INFO, title, (f"{client.display_name} lists none right now.",), audit_id=audit_id)
    count = f"{len(entries)} live call{'' if len(entries) == 1 else 's'}"
    title = f"{count} on `{account}`{about}" + (" (more below)" if more else "")
    head = f"{client.display_name}, newest first. Buttons run the usual checks (permission, confirmation, approval)."
    return Reply(Tone.INFO, title, (head,), audit_id=audit_id, calls=CallListing(entries, more))


def _filter_text(flt: dict[str, str | None]) -> str:
    parts = [f"{key}={value}" for key, value in flt.items() if value]
    return f" ({', '.join(parts)})" if parts else ""


def _list_text(account: str, flt: dict[str, str | None], token: str | None) -> str:
    words = ["list", account, *(f"{key}={value}" for key, value in flt.items() if value)]
    return " ".join(words) + (" (next page)" if token else "")


def _call_line(call: LiveCall, now: datetime) -> str:
    arrow = _ARROW.get(call.direction, "·")
    return (
        f"*{call.status}* {arrow} {call.direction} `{call.call_id}`\n"
        f"{call.from_number or '?'} → {call.to_number or '?'} · {_age_text(call, now)}"
    )


def _age_text(call: LiveCall, now: datetime) -> str:
    age = call.age_s(now)
    return f"{duration(age)} since it started" if age is not None else "not started yet"


def _status_lines(call: LiveCall, client: ProviderClient, now: datetime) -> tuple[str, ...]:
    lines = [
        f"Status: `{call.status}` ({client.display_name}'s own word: `{call.raw_status or call.status}`)",
        f"Direction: {call.direction or '?'}",
        f"From: {call.from_number or '?'}",
        f"To: {call.to_number or '?'}",
    ]
    if call.started_at is not None:
        stamp = call.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(f"Started: {stamp}" + ("" if call.ended else f" ({duration(call.age_s(now) or 0)} ago)"))
    else:
        lines.append("Started: not yet")
    if call.duration_s is not None:
        lines.append(f"Duration: {duration(call.duration_s)}")
    return tuple(lines)


def duration(seconds: int) -> str:
    """`42s`, `3m 12s`, `2h 05m`: short enough for a menu line."""
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def _option_label(call: LiveCall, now: datetime) -> str:
    """`CA12…ef  +4477…123 → +4420…456  3m 12s` (Slack: at most 75 characters)."""
    cid = call.call_id if len(call.call_id) <= 8 else f"{call.call_id[:4]}…{call.call_id[-2:]}"
    age = call.age_s(now)
    when = duration(age) if age is not None else call.status
    return f"{cid}  {phone.short(call.from_number)} → {phone.short(call.to_number)}  {when}"[:75]


def _matches(call: LiveCall, typed: str) -> bool:
    if not typed:
        return True
    if typed.lower() in call.call_id.lower():
        return True
    digits = re.sub(r"\D", "", typed)
    return bool(digits) and any(digits in re.sub(r"\D", "", n) for n in (call.from_number, call.to_number))


def masked_number(number: str | None) -> str | None:
    return phone.mask(normalised_number(number) or "") if number else None


def normalised_number(number: str | None) -> str | None:
    return phone.normalise(number) if number else None


def _denied(decision: Decision, account: str) -> PermissionDenied:
    detail = (
        f"Seeing live calls needs a call action (hangup, cancel, redirect, twiml or flow) on account `{account}`. "
        f"Ask an admin: `/call grant @you hangup on={account}`."
    )
    if decision.note:
        detail += f" Your grants here: {decision.note}."
    return PermissionDenied("list", account, detail)


async def _collect(client: ProviderClient, limit: int) -> list[LiveCall]:
    return [call async for call in client.iter_calls(CallFilter(), limit)]
