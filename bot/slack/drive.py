"""The one driver of a call action's two steps, whatever surface it came from.

`begin` audits the attempt and answers within Slack's 3 s: either `Done` (a final reply, maybe a
two-person approval request to post) or `Started` (a "working" reply; the provider request is still
to send). `finish` sends it and gives the outcome. Where each reply goes depends on the surface (an
`Answer`): a slash command acknowledges, a button rewrites its message, a view submission closes
(or keeps open) its modal and posts the outcome itself, an approval click tells its own people.

Ack in time, or do nothing. Where the first answer *is* Slack's acknowledgement (a slash command, a
view submission), `begin` has until ACK_BUDGET after the request arrived. Past it Slack has shown
the person an error, so whatever `begin` still does is never sent: the person is told at once that
callbot is too slow (the database, mostly), and once `begin` ends its pending row closes as
`expired` and the person hears so through the response_url. No provider request ever follows an
acknowledgement Slack did not get in time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.grammar import CallCommand
from bot.domain.replies import Reply, Tone
from bot.logs import request_started
from bot.service.core import Done, Invocation, Service, Started
from bot.slack.announce import Thread, after_action
from bot.slack.notify import deliver, post_approval, refresh_home
from bot.slack.views.render import message

log = logging.getLogger(__name__)

INTERNAL_ERROR = Reply(
    Tone.FAILURE,
    "callbot hit an internal error; nothing was sent to any provider.",
    ("The error is in the server log. Try again, or ask the people who run callbot.",),
)
READ_FAILED = Reply(Tone.FAILURE, "callbot hit an internal error; nothing was changed.", ("See the server log.",))
# Slack waits 3 s for an acknowledgement, counted from when it sent the request; callbot counts
# from when the request reached it and keeps half a second for the way back.
ACK_BUDGET = 2.5
TOO_LATE = (
    "Slack stopped waiting for callbot's answer (3 s), so nothing was sent to the provider: "
    "callbot was too slow to check and record the request in time."
)
TOO_SLOW = Reply(
    Tone.FAILURE,
    "callbot could not answer within Slack's 3 seconds; nothing was sent to the provider.",
    (
        "Its database is slow or not answering. If it answers later, one more message here says what was "
        "recorded. Run the command again in a moment, or ask the people who run callbot.",
    ),
)


class Answer(Protocol):
    @property
    def acks(self) -> bool:
        """The first reply is Slack's acknowledgement: it must come within ACK_BUDGET, or not at all."""

    async def broken(self) -> None:
        """`begin` raised: there is no reply to give, and nothing was sent."""

    async def at_once(self, reply: Reply, *, final: bool) -> None:
        """Within 3 s: the final reply (`final`) or the "working" one before the provider is asked."""

    async def aside(self, reply: Reply) -> None:
        """Something to add after the reply (the approval request could not be posted)."""

    async def outcome(self, reply: Reply) -> None:
        """What the provider request did."""

    async def confirmed(self, reply: Reply) -> None:
        """The outcome again, with what the provider then showed happened to the call."""


async def drive(
    service: Service,
    client: AsyncWebClient,
    begin: Callable[[], Awaitable[Done | Started]],
    answer: Answer,
    *,
    home_of: Invocation | None,
) -> Reply | None:
    """Begin, answer at once, then send the provider request and give its outcome (or, for an action
    that needs two-person approval, post the request to the approvers). Once a sent action's outcome
    is delivered, `home_of`'s App Home shows it too. Returns the final reply; None when `begin` or
    the provider step raised (logged): the outcome is not known, so a caller that records it
    elsewhere (an approval) records nothing; the audit row left pending is settled by `recover_pending`."""
    deadline = ack_deadline() if answer.acks else None
    begun = asyncio.ensure_future(begin())
    try:
        if deadline is None:
            step = await begun
        else:
            step = await asyncio.wait_for(asyncio.shield(begun), max(0.0, deadline - time.monotonic()))
        # Ended, but maybe too late for its acknowledgement to reach Slack in time.
        late = deadline is not None and time.monotonic() > deadline
    except TimeoutError:
        late = True
    except Exception:
        log.exception("could not start a call action")
        await answer.broken()
        return None
    if late:
        await answer.at_once(TOO_SLOW, final=True)
        return await _too_late(service, client, begun, answer)
    if isinstance(step, Done):
        await answer.at_once(step.reply, final=True)
        if step.reply.approval is not None:
            problem = await post_approval(client, service, step.reply.approval)
            if problem is not None:
                await answer.aside(problem)
        return step.reply
    await answer.at_once(step.ack, final=False)
    reply: Reply | None = None
    acted_at = service.now()
    try:
        reply = await service.finish(step)
    except Exception:
        log.exception("provider step failed for audit #%s", step.audit_id)
    try:
        await answer.outcome(reply if reply is not None else _unsent(step))
    except Exception:
        log.exception("could not deliver the outcome of audit #%s to Slack", step.audit_id)
    if home_of is not None:
        await refresh_home(client, service, home_of.team, home_of.user_id)
    if reply is not None:
        after_action(client, service, step, answer.thread if isinstance(answer, Modal) else None)
        # Not awaited: whoever waits for the outcome (an approval's people) need not wait for this.
        task = asyncio.create_task(_confirm(service, step, reply, acted_at, answer), name=f"confirm-{step.audit_id}")
        _CONFIRMING.add(task)
        task.add_done_callback(_CONFIRMING.discard)
    return reply


# Read-backs in progress (the loop keeps only weak references to tasks).
_CONFIRMING: set[asyncio.Task[None]] = set()


async def _confirm(service: Service, step: Started, reply: Reply, acted_at: datetime, answer: Answer) -> None:
    """Reads the call back after the person has the outcome, and updates it with what the provider
    shows (bot/service/confirmations.py)."""
    try:
        confirmed = await service.confirm(step, reply, acted_at)
        if confirmed is not None:
            await answer.confirmed(confirmed)
    except Exception:
        log.exception("could not confirm audit #%s", step.audit_id)


def ack_deadline() -> float:
    """time.monotonic() by which the acknowledgement of the request being served must be given."""
    arrived = request_started.get()
    return (arrived if arrived is not None else time.monotonic()) + ACK_BUDGET


async def _too_late(
    service: Service, client: AsyncWebClient, begun: asyncio.Future[Done | Started], answer: Answer
) -> Reply | None:
    """After the acknowledgement was missed: nothing is sent, and once `begin` ends (the database
    answered) the person hears what was recorded."""
    try:
        step = await begun
    except Exception:
        log.exception("could not start a call action (its acknowledgement was already too late)")
        return None
    if isinstance(step, Started):
        log.warning("audit #%s: Slack's acknowledgement deadline passed; nothing was sent", step.audit_id)
        reply = await service.abandon(step, TOO_LATE)
    else:
        reply = step.reply
    try:
        await answer.outcome(reply)
        if isinstance(step, Done) and reply.approval is not None:
            problem = await post_approval(client, service, reply.approval)
            if problem is not None:
                await answer.aside(problem)
    except Exception:
        log.exception("could not tell the person what happened to a late request")
    return reply


def _unsent(step: Started) -> Reply:
    return Reply(Tone.UNKNOWN, "callbot hit an internal error while sending.", audit_id=step.audit_id)


# -- the answers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ephemeral:
    """A slash command or a button: `first` is the acknowledgement (or the clicked message rewritten),
    later replies go through the response_url. `replace`: the outcome takes the clicked message's place."""

    first: Callable[[Reply], Awaitable[None]]
    respond: AsyncRespond
    replace: bool = False
    acks: bool = False

    async def broken(self) -> None:
        await self.first(INTERNAL_ERROR)

    async def at_once(self, reply: Reply, *, final: bool) -> None:
        await self.first(reply)

    async def aside(self, reply: Reply) -> None:
        await self.respond(**message(reply), replace_original=False)

    async def outcome(self, reply: Reply) -> None:
        await self.respond(**message(reply), replace_original=self.replace)

    async def confirmed(self, reply: Reply) -> None:
        # The outcome message is the one this response_url last posted: it is rewritten in place.
        await self.respond(**message(reply), replace_original=True)


@dataclass(frozen=True)
class Modal:
    """A view submission. Refusals (invalid, denied) keep the modal open with the message under
    `block_for(reply)`; anything else closes it, and replies arrive as an ephemeral message (or a
    DM). `after_success` runs once the provider did it, before the person is told."""

    ack: AsyncAck
    client: AsyncWebClient
    inv: Invocation
    block_for: Callable[[Reply], str]
    after_success: Callable[[], Awaitable[None]] | None = None
    acks: bool = True
    # Opened on a message ("Act on this call"): the outcome's line goes to its thread too.
    thread: Thread | None = None

    async def broken(self) -> None:
        await self.ack(response_action="errors", errors={self.block_for(INTERNAL_ERROR): INTERNAL_ERROR.title})

    async def at_once(self, reply: Reply, *, final: bool) -> None:
        if final and reply.tone in (Tone.INVALID, Tone.DENIED):
            shown = " ".join(reply.lines)[:2000] or reply.title
            await self.ack(response_action="errors", errors={self.block_for(reply): shown})
            return
        await self.ack(response_action="clear")
        if final:
            await deliver(self.client, self.inv, reply)

    async def aside(self, reply: Reply) -> None:
        await deliver(self.client, self.inv, reply)

    async def outcome(self, reply: Reply) -> None:
        if self.after_success is not None and reply.tone is Tone.SUCCESS:
            await self.after_success()
        await deliver(self.client, self.inv, reply)

    async def confirmed(self, reply: Reply) -> None:
        # An ephemeral message posted by the API cannot be edited: the confirmation follows it.
        await deliver(self.client, self.inv, replace(reply, lines=reply.lines[-1:]))


class Silent:
    """The caller says the outcome itself (an approved action: to the approvers and the requester)."""

    acks = False

    async def broken(self) -> None:
        pass

    async def at_once(self, reply: Reply, *, final: bool) -> None:
        pass

    async def aside(self, reply: Reply) -> None:
        pass

    async def outcome(self, reply: Reply) -> None:
        pass

    async def confirmed(self, reply: Reply) -> None:
        pass


async def drive_modal(
    service: Service,
    client: AsyncWebClient,
    ack: AsyncAck,
    inv: Invocation,
    command: CallCommand,
    *,
    block_for: Callable[[Reply], str],
    after_success: Callable[[], Awaitable[None]] | None = None,
    thread: Thread | None = None,
) -> None:
    """A submitted modal through the same pipeline as a typed command."""
    answer = Modal(ack, client, inv, block_for, after_success, thread=thread)
    await drive(service, client, lambda: service.begin_command(inv, command), answer, home_of=inv)


async def reply_after_ack(work: Callable[[], Awaitable[Reply]], respond: AsyncRespond) -> None:
    """A read that reaches the provider (live calls), after the acknowledgement: its reply as a new
    ephemeral message."""
    try:
        reply = await work()
    except Exception:
        log.exception("could not read live calls")
        reply = READ_FAILED
    try:
        await respond(**message(reply), replace_original=False)
    except Exception:
        log.exception("could not deliver a live-calls reply to Slack")
