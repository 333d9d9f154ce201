"""The App Home tab: the person's recent attempts and, for `audit` holders, the team's with quick
filters. Published on `app_home_opened`, on a quick-filter click and after each call action."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.replies import AuditEntry, AuditHome
from bot.service.core import Service
from bot.slack.render import details_button, entry_text

log = logging.getLogger(__name__)

HOME_FILTER_ACTION = "home_filter"
FILTER_LABELS = {"all": "All", "failed": "Failed only", "denied": "Denied only", "today": "Today"}


async def publish_home(client: AsyncWebClient, service: Service, user_id: str, team_filter: str | None = None) -> None:
    """Best effort: a Home tab Slack refuses (app not installed for them, rate limit…) is logged;
    whatever the person was doing carries on. Without `team_filter`, their last pick stays."""
    try:
        home = await service.audit.home(user_id, team_filter)
        await client.views_publish(user_id=user_id, view=home_view(home, service.now()))
    except Exception:
        log.exception("could not publish the App Home of %s", user_id)


def home_view(home: AuditHome, now: datetime) -> View:
    blocks: list[Block] = [HeaderBlock(text="Your recent actions")]
    blocks += _entries(home.own, "own", "Nothing audited for you yet. Try `/call help`.")
    blocks.append(DividerBlock())
    if home.team is None:
        blocks.append(
            ContextBlock(elements=[MarkdownTextObject(text="Reading the team's audit needs `audit` (ask an admin).")])
        )
    else:
        blocks.append(HeaderBlock(text="Team activity"))
        blocks.append(ActionsBlock(block_id=HOME_FILTER_ACTION, elements=_filters(home.team_filter)))
        showing = f"Showing: *{FILTER_LABELS[home.team_filter]}*, the last {len(home.team)} ({home.team_scope})."
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=showing)]))
        blocks += _entries(home.team, "team", "No attempts match.")
    stamp = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    more = "`/call audit` searches and pages through everything you may see."
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"Updated {stamp} UTC. {more}")]))
    return View(type="home", blocks=blocks, private_metadata=home.team_filter)


def _entries(entries: tuple[AuditEntry, ...], prefix: str, empty: str) -> list[Block]:
    if not entries:
        return [ContextBlock(elements=[MarkdownTextObject(text=empty)])]
    return [
        SectionBlock(
            block_id=f"{prefix}_{item.id}",
            text=MarkdownTextObject(text=entry_text(item)),
            accessory=details_button(item, f"{prefix}{index}"),
        )
        for index, item in enumerate(entries)
    ]


def _filters(current: str) -> list[ButtonElement]:
    return [
        ButtonElement(
            text=label,
            action_id=f"{HOME_FILTER_ACTION}:{name}",
            value=name,
            style="primary" if name == current else None,
        )
        for name, label in FILTER_LABELS.items()
    ]
