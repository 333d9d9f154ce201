"""The App Home tab: published when the person opens it and on a quick-filter click (and, from
bot/slack/notify.py, after each of their call actions)."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.service.core import Service
from bot.slack.invocations import user_id, workspace
from bot.slack.notify import publish_home
from bot.slack.views.home import HOME_FILTER_ACTION


def register(app: AsyncApp, service: Service) -> None:
    app.event("app_home_opened")(partial(on_home_opened, service=service))
    app.action(re.compile(rf"^{HOME_FILTER_ACTION}:"))(partial(on_home_filter, service=service))


async def on_home_opened(
    event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient, *, service: Service
) -> None:
    if event.get("tab", "home") != "home":  # the Messages tab fires the same event
        return
    await publish_home(client, service, workspace(body), str(event.get("user") or ""))


async def on_home_filter(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, *, service: Service
) -> None:
    await ack()
    await publish_home(client, service, workspace(body), user_id(body), str(action.get("value") or "all"))
