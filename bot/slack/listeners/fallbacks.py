"""Requests nothing else claims (old buttons, future views) are acknowledged, never a 404, and a
listener that raises is logged. Registered after every other listener."""

from __future__ import annotations

import logging
import re

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.domain.replies import Reply, Tone
from bot.service.core import Service
from bot.slack.views.render import message

log = logging.getLogger(__name__)

STALE_BUTTON = Reply(Tone.INFO, "This button is no longer active.", ("Run the command again with `/call`.",))
ANYTHING = re.compile(".*")


def register(app: AsyncApp, service: Service) -> None:
    app.action(ANYTHING)(on_unknown_action)
    app.view(ANYTHING)(on_unknown_view)
    app.options(ANYTHING)(on_unknown_options)
    app.error(on_error)


async def on_unknown_action(ack: AsyncAck, respond: AsyncRespond) -> None:
    await ack()
    if not respond.response_url:  # a button in a modal or the App Home: there is no message to answer under
        log.info("a click on a button callbot does not know, where it cannot answer")
        return
    try:
        await respond(**message(STALE_BUTTON), replace_original=False)
    except Exception:
        log.exception("could not answer an unknown button")


async def on_unknown_view(ack: AsyncAck) -> None:
    await ack()


async def on_unknown_options(ack: AsyncAck) -> None:
    await ack(options=[])


async def on_error(error: Exception) -> None:
    log.error("unhandled error in a Slack listener", exc_info=error)
