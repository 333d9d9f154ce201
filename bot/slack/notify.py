"""What callbot posts beyond a request's own answer: outcomes of view submissions (which have no
response_url), the App Home tab, approval requests and their updates, and a bulk action's progress
message. The sweeps of bot/web.py and bot/cli.py post through here too, outside any request, so
this module imports no listener.

A bulk action's progress message is a real channel message, so the people handling the incident
with you see the count go down (numbers in it are masked). When the bot cannot post in the channel
it is sent as a direct message instead; when even that fails, the summary still comes back
ephemerally.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.replies import ApprovalNotice, Reply, Tone
from bot.service.bulk.plans import BatchNotice, BatchPlan, BatchRun
from bot.service.core import ApprovalUpdate, Invocation, Service
from bot.slack.announce import after_batch
from bot.slack.installs import Installs
from bot.slack.views.home import home_view
from bot.slack.views.render import message

log = logging.getLogger(__name__)

UPDATE_EVERY = 1.0  # seconds: the progress message changes at most this often


def posted(reply: Reply) -> dict[str, Any]:
    """A real channel message, seen by everyone there (not ephemeral)."""
    payload = message(reply)
    payload.pop("response_type", None)
    return payload


async def deliver(client: AsyncWebClient, inv: Invocation, reply: Reply) -> None:
    """A view submission has no response_url: ephemeral in the channel it came from, else a DM."""
    payload = posted(reply)
    if inv.channel_id:
        try:
            await client.chat_postEphemeral(channel=inv.channel_id, user=inv.user_id, **payload)
            return
        except SlackApiError as error:
            log.info("ephemeral post failed (%s); sending a DM", error.response.get("error"))
    try:
        await client.chat_postMessage(channel=inv.user_id, **payload)
    except Exception:
        log.exception("could not deliver a modal outcome to %s", inv.user_id)


async def tell(respond: AsyncRespond | None, reply: Reply) -> None:
    """A new ephemeral message under the request; nothing when it came from outside one."""
    if respond is None:
        return
    try:
        await respond(**message(reply), replace_original=False)
    except Exception:
        log.exception("could not answer a bulk action")


# After an outcome, a person's Home tab is published at most once a second: a burst of their
# actions (or a bulk run's) costs one refresh at the start and one at the end, not one each.
HOME_DEBOUNCE = 1.0
HOME_REFRESH_TASK = "callbot-home-"  # the name of a deferred refresh's task (tests wait for none)
_home_published: dict[tuple[int, str, str], float] = {}  # (service, team, user) -> when, by time.monotonic()
_home_due: set[tuple[int, str, str]] = set()  # a trailing refresh is scheduled


async def refresh_home(client: AsyncWebClient, service: Service, team: str, user_id: str) -> None:
    """An action's outcome shows on its person's Home tab: at once if their tab was not published
    in the last HOME_DEBOUNCE seconds, else once, at the end of that second, with all that happened."""
    key = (id(service), team, user_id)
    now = time.monotonic()
    last = _home_published.get(key)
    if last is None or now - last >= HOME_DEBOUNCE:
        if len(_home_published) > 10_000:  # forget people whose window is long over
            for old in [k for k, t in _home_published.items() if now - t >= HOME_DEBOUNCE]:
                del _home_published[old]
        _home_published[key] = now
        await publish_home(client, service, team, user_id)
        return
    if key in _home_due:
        return
    _home_due.add(key)

    async def trailing() -> None:
        await asyncio.sleep(last + HOME_DEBOUNCE - now)
        _home_due.discard(key)
        _home_published[key] = time.monotonic()
        await publish_home(client, service, team, user_id)

    asyncio.get_running_loop().create_task(trailing(), name=f"{HOME_REFRESH_TASK}{user_id}")


async def publish_home(
    client: AsyncWebClient, service: Service, team: str, user_id: str, team_filter: str | None = None
) -> None:
    """Best effort: a Home tab Slack refuses (app not installed for them, rate limit…) is logged;
    whatever the person was doing carries on. Without `team_filter`, their last pick stays."""
    try:
        home = await service.audit.home(team, user_id, team_filter)
        await client.views_publish(user_id=user_id, view=home_view(home, service.now()))
    except Exception:
        log.exception("could not publish the App Home of %s", user_id)


# -- two-person approval ----------------------------------------------------------------------------


async def post_approval(client: AsyncWebClient, service: Service, notice: ApprovalNotice) -> Reply | None:
    """Post the request with its buttons; None when done, else what to tell the requester."""
    try:
        sent = await client.chat_postMessage(channel=notice.channel, **posted(notice.message))
        await service.approval_posted(notice.approval_id, str(sent.get("ts") or ""))
    except Exception:
        log.exception("could not post approval request #%s to %s", notice.approval_id, notice.channel)
        return Reply(
            Tone.FAILURE,
            f"Could not post approval request #{notice.approval_id} to <#{notice.channel}>.",
            ("Nothing was sent. Is callbot a member of that channel? The request expires unused.",),
        )
    return None


async def apply_update(client: AsyncWebClient, update: ApprovalUpdate) -> None:
    """The approvers' message shows the decision (its buttons gone); the requester is told."""
    if update.message_ts:
        try:
            await client.chat_update(channel=update.channel, ts=update.message_ts, **posted(update.message))
        except Exception:
            log.exception("could not update the approval message %s in %s", update.message_ts, update.channel)
    requester = Invocation(
        "approval",
        update.requester,
        "",
        team_id=update.team_id,
        enterprise_id=update.enterprise_id,
        channel_id=update.requester_channel,
    )
    await deliver(client, requester, update.notice)


# -- bulk actions -----------------------------------------------------------------------------------


async def answer_bulk(
    client: AsyncWebClient, service: Service, work: Callable[[], Awaitable[Reply | BatchRun]], respond: AsyncRespond
) -> None:
    """A typed `/call hangup-all` / `/call batch …` (after the acknowledgement), or Resume: the
    service's reply ephemerally, or a batch to run with its progress message."""
    try:
        outcome = await work()
    except Exception:
        log.exception("a bulk command failed")
        outcome = Reply(Tone.FAILURE, "callbot hit an internal error; nothing was ended.", ("See the server log.",))
    if isinstance(outcome, BatchRun):
        await tell(respond, service.bulk.resuming(outcome))
        await run_batch(client, service, outcome, respond)
        return
    await tell(respond, outcome)


async def run_plan(client: AsyncWebClient, service: Service, plan: BatchPlan, respond: AsyncRespond | None) -> Reply:
    """A confirmed (or approved) hang-up: list, create the batch, run it with its progress message.
    Returns the summary (or why nothing ran)."""
    try:
        started = await service.bulk.start(plan)
    except Exception:
        log.exception("could not start a bulk action")
        started = Reply(Tone.FAILURE, "callbot hit an internal error before any call was ended.")
    if isinstance(started, Reply):
        await tell(respond, started)
        return started
    return await run_batch(client, service, started, respond)


async def run_batch(client: AsyncWebClient, service: Service, run: BatchRun, respond: AsyncRespond | None) -> Reply:
    """Post the progress message, run the batch (updating it), end with the summary in it."""
    first = service.bulk.progress(run, run.start)
    where = await _post_progress(client, service, run, first)
    last = time.monotonic()

    async def report(reply: Reply) -> None:
        nonlocal last
        if where is not None:
            last = time.monotonic()
            await client.chat_update(channel=where[0], ts=where[1], **posted(reply))

    summary = await service.bulk.run(run, report)
    delivered = False
    if where is not None:
        # The summary is an update of the same message: it too waits for a second since the last.
        await asyncio.sleep(max(0.0, UPDATE_EVERY - (time.monotonic() - last)))
        try:
            await client.chat_update(channel=where[0], ts=where[1], **posted(summary))
            delivered = True
        except Exception:
            log.exception("could not put the summary of batch #%s in its message", run.batch_id)
    if not delivered:
        await tell(respond, summary)
    await refresh_home(client, service, run.inv.team, run.inv.user_id)
    after_batch(client, service, run)
    return summary


async def _post_progress(
    client: AsyncWebClient, service: Service, run: BatchRun, first: Reply
) -> tuple[str, str] | None:
    """In the channel the command came from; else a DM to the person who started it."""
    for channel in filter(None, (run.channel, run.inv.user_id)):
        try:
            sent = await client.chat_postMessage(channel=channel, **posted(first))
        except Exception as error:
            log.info("could not post the progress of batch #%s in %s (%s)", run.batch_id, channel, error)
            continue
        where = (str(sent.get("channel") or channel), str(sent.get("ts") or ""))
        try:
            await service.bulk.message_posted(run.batch_id, *where)
        except Exception:
            log.exception("could not record where batch #%s reports", run.batch_id)
        return where
    return None


async def announce_interrupted(client: AsyncWebClient, notice: BatchNotice) -> None:
    """The sweep found a batch whose process died: its progress message says so, with Resume."""
    if not (notice.channel and notice.message_ts):
        return
    await client.chat_update(channel=notice.channel, ts=notice.message_ts, **posted(notice.reply))


# Outside any request (the sweeps): each message is updated with its own workspace's token.


async def tell_update(installs: Installs, update: ApprovalUpdate) -> None:
    client = await installs.client_for(update.team_id or None, update.enterprise_id)
    if client is None:
        log.warning("cannot update an approval request's message: callbot is not installed on %s", update.team_id)
        return
    await apply_update(client, update)


async def tell_interrupted(installs: Installs, notice: BatchNotice) -> None:
    client = await installs.client_for(notice.team_id or None, notice.enterprise_id)
    if client is None:
        log.warning(
            "cannot update batch #%s's message: callbot is not installed on %s", notice.batch_id, notice.team_id
        )
        return
    await announce_interrupted(client, notice)
