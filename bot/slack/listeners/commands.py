"""`/call`: the text is parsed once, here, and the typed command goes where its type says.

Most commands answer within Slack's 3 s through the pipeline (`drive`). Those that read the
provider or write a file are acknowledged first and answered by a later message; `/call` alone and
`/call flow ACCOUNT:ID` open a modal. A text that does not parse still goes to the pipeline, which
audits the attempt and says what is wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import grammar
from bot.domain.errors import InvalidInput
from bot.domain.grammar import (
    AuditQuery,
    BatchCommand,
    CallCommand,
    CallStatusCommand,
    FlowBuilderCommand,
    HangupAllCommand,
    ListCallsCommand,
)
from bot.domain.replies import Reply, Tone
from bot.service.core import Done, Invocation, Service, Started
from bot.slack.drive import Ephemeral, drive, reply_after_ack
from bot.slack.invocations import slash_invocation
from bot.slack.listeners.action_form import open_action_form
from bot.slack.listeners.audit import PREPARING, run_export
from bot.slack.listeners.flow_builder import open_builder
from bot.slack.notify import answer_bulk
from bot.slack.views.render import message

# A string: Bolt compares it whole (a pattern is searched: `^/call` took `/callx` too).
CALL = "/call"
LOOKING = Reply(Tone.WORKING, "Asking the provider…")
COUNTING = Reply(Tone.WORKING, "Counting the matching live calls…")
LOOKING_UP = Reply(Tone.WORKING, "Looking up the batch…")


@dataclass(frozen=True)
class Slash:
    """One `/call` request: who asked, and the ways to answer it."""

    service: Service
    inv: Invocation
    ack: AsyncAck
    respond: AsyncRespond
    client: AsyncWebClient
    trigger_id: str


def register(app: AsyncApp, service: Service) -> None:
    app.command(CALL)(partial(on_call, service=service))


async def on_call(
    ack: AsyncAck,
    body: dict[str, Any],
    respond: AsyncRespond,
    request: AsyncBoltRequest,
    client: AsyncWebClient,
    *,
    service: Service,
) -> None:
    # Slack names the workspace in every command; one that does not is the home workspace's, as the
    # service scopes any request without one (Service.scoped).
    inv = service.scoped(slash_invocation(body, request))
    slash = Slash(service, inv, ack, respond, client, str(body.get("trigger_id") or ""))
    if not inv.text.strip():
        await ack()
        await open_action_form(client, service, slash.trigger_id, inv)
        return
    try:
        command = grammar.parse(inv.text)
    except InvalidInput:
        await _pipeline(slash, lambda: service.begin(inv))
        return
    await ROUTES.get(type(command), _other)(slash, command)


# -- the routes, by command type ------------------------------------------------------------------


async def _live(slash: Slash, command: ListCallsCommand | CallStatusCommand) -> None:
    await slash.ack(**message(LOOKING))
    await reply_after_ack(lambda: slash.service.live.run(slash.inv, command), slash.respond)


async def _hangup_all(slash: Slash, command: HangupAllCommand) -> None:
    await slash.ack(**message(COUNTING))
    await _bulk(slash, command)


async def _batch(slash: Slash, command: BatchCommand) -> None:
    await slash.ack(**message(LOOKING_UP))
    await _bulk(slash, command)


async def _bulk(slash: Slash, command: HangupAllCommand | BatchCommand) -> None:
    service = slash.service
    await answer_bulk(slash.client, service, lambda: service.bulk.typed(slash.inv, command), slash.respond)


async def _audit(slash: Slash, command: AuditQuery) -> None:
    if not command.export:
        await _other(slash, command)
        return
    await slash.ack(**message(PREPARING))
    await run_export(slash.client, slash.service, slash.inv, command, slash.respond)


async def _flow_builder(slash: Slash, command: FlowBuilderCommand) -> None:
    # The service resolves the account (no I/O) and says whether its provider takes callFlows; if
    # not, the pipeline refuses the command and says why.
    target = slash.service.builder_target_of(slash.inv.team, command)
    if target is None:
        await _other(slash, command)
        return
    await slash.ack()
    await open_builder(slash.client, slash.service, slash.inv, target, trigger_id=slash.trigger_id)


async def _call(slash: Slash, command: CallCommand) -> None:
    await _pipeline(slash, lambda: slash.service.begin_command(slash.inv, command))


async def _other(slash: Slash, command: grammar.Command) -> None:
    await _pipeline(slash, lambda: slash.service.begin_parsed(slash.inv, command))


ROUTES: dict[type[Any], Callable[[Slash, Any], Awaitable[None]]] = {
    ListCallsCommand: _live,
    CallStatusCommand: _live,
    HangupAllCommand: _hangup_all,
    BatchCommand: _batch,
    AuditQuery: _audit,
    FlowBuilderCommand: _flow_builder,
    CallCommand: _call,
}


async def _pipeline(slash: Slash, begin: Callable[[], Awaitable[Done | Started]]) -> None:
    async def first(reply: Reply) -> None:
        await slash.ack(**message(reply))

    answer = Ephemeral(first, slash.respond, acks=True)
    await drive(slash.service, slash.client, begin, answer, home_of=slash.inv)
