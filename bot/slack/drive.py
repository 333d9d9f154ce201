"""The one driver of a call action's two steps, whatever surface it came from.

`begin` audits the attempt and answers within Slack's 3 s: either `Done` (a final reply, maybe a
two-person approval request to post) or `Started` (a "working" reply; the provider request is still
to send). `finish` sends it and gives the outcome. Where each reply goes depends on the surface (an
`Answer`): a slash command acknowledges, a button rewrites its message, a view submission closes
(or keeps open) its modal and posts the outcome itself, an approval click tells its own people.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.grammar import CallCommand
from bot.domain.replies import Reply, Tone
from bot.service.core import Done, Invocation, Service, Started
from bot.slack.notify import deliver, post_approval, publish_home
from bot.slack.views.render import message

log = logging.getLogger(__name__)

INTERNAL_ERROR = Reply(
    Tone.FAILURE,
    "callbot hit an internal error; nothing was sent to any provider.",
    ("The error is in the server log. Try again, or ask the people who run callbot.",),
)
READ_FAILED = Reply(Tone.FAILURE, "callbot hit an internal error; nothing was changed.", ("See the server log.",))


class Answer(Protocol):
    async def broken(self) -> None:
        """`begin` raised: there is no reply to give, and nothing was sent."""

    async def at_once(self, reply: Reply, *, final: bool) -> None:
        """Within 3 s: the final reply (`final`) or the "working" one before the provider is asked."""

    async def aside(self, reply: Reply) -> None:
        """Something to add after the reply (the approval request could not be posted)."""

    async def outcome(self, reply: Reply) -> None:
        """What the provider request did."""


async def drive(
    service: Service,
    client: AsyncWebClient,
    begin: Callable[[], Awaitable[Done | Started]],
    answer: Answer,
    *,
    home_of: str | None,
) -> Reply | None:
    """Begin, answer at once, then send the provider request and give its outcome (or, for an action
    that needs two-person approval, post the request to the approvers). Once a sent action's outcome
    is delivered, `home_of`'s App Home shows it too. Returns the final reply; None when `begin` or
    the provider step raised (logged): the outcome is not known, so a caller that records it
    elsewhere (an approval) records nothing; the audit row left pending is settled by `recover_pending`."""
    try:
        step = await begin()
    except Exception:
        log.exception("could not start a call action")
        await answer.broken()
        return None
    if isinstance(step, Done):
        await answer.at_once(step.reply, final=True)
        if step.reply.approval is not None:
            problem = await post_approval(client, service, step.reply.approval)
            if problem is not None:
                await answer.aside(problem)
        return step.reply
    await answer.at_once(step.ack, final=False)
    reply: Reply | None = None
    try:
        reply = await service.finish(step)
    except Exception:
        log.exception("provider step failed for audit #%s", step.audit_id)
    try:
        await answer.outcome(reply if reply is not None else _unsent(step))
    except Exception:
        log.exception("could not deliver the outcome of audit #%s to Slack", step.audit_id)
    if home_of is not None:
        await publish_home(client, service, home_of)
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

    async def broken(self) -> None:
        await self.first(INTERNAL_ERROR)

    async def at_once(self, reply: Reply, *, final: bool) -> None:
        await self.first(reply)

    async def aside(self, reply: Reply) -> None:
        await self.respond(**message(reply), replace_original=False)

    async def outcome(self, reply: Reply) -> None:
        await self.respond(**message(reply), replace_original=self.replace)


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


class Silent:
    """The caller says the outcome itself (an approved action: to the approvers and the requester)."""

    async def broken(self) -> None:
        pass

    async def at_once(self, reply: Reply, *, final: bool) -> None:
        pass

    async def aside(self, reply: Reply) -> None:
        pass

    async def outcome(self, reply: Reply) -> None:
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
) -> None:
    """A submitted modal through the same pipeline as a typed command."""
    answer = Modal(ack, client, inv, block_for, after_success)
    await drive(service, client, lambda: service.begin_command(inv, command), answer, home_of=inv.user_id)


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
