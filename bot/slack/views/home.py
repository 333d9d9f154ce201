"""The App Home tab as a view: the person's recent attempts and, for `audit` holders, the team's
with quick filters. Published by bot/slack/notify.py (`publish_home`)."""

from __future__ import annotations

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

from bot.domain.replies import AuditEntry, AuditHome
from bot.slack.views.render import details_button, entry_text

HOME_FILTER_ACTION = "home_filter"
FILTER_LABELS = {"all": "All", "failed": "Failed only", "denied": "Denied only", "today": "Today"}


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
