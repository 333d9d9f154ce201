"""Bolt listeners, one module per Slack surface, each with `register(app, service)` (the layout of
Bolt's starter template). A new surface is a module here and one line below."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.service.core import Service
from bot.slack.listeners import (
    action_form,
    approvals,
    audit,
    bulk,
    buttons,
    commands,
    fallbacks,
    flow_builder,
    home,
    shortcuts,
)


def register_listeners(app: AsyncApp, service: Service) -> None:
    commands.register(app, service)
    action_form.register(app, service)
    buttons.register(app, service)
    flow_builder.register(app, service)
    approvals.register(app, service)
    audit.register(app, service)
    home.register(app, service)
    bulk.register(app, service)
    shortcuts.register(app, service)
    # Last: Bolt runs the first listener that matches, and these match everything.
    fallbacks.register(app, service)
