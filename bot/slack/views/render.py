"""Replies as Slack messages: Block Kit through slack_sdk's models, with a plain-text fallback."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.domain.replies import (
    APPROVE_HANDLER,
    DENY_HANDLER,
    AuditEntry,
    AuditListing,
    CallEntry,
    CallListing,
    Choice,
    Reply,
    Tone,
    mention,
)

EMOJI = {
    Tone.SUCCESS: ":white_check_mark:",
    Tone.FAILURE: ":x:",
    Tone.UNKNOWN: ":grey_question:",
    Tone.DENIED: ":no_entry:",
    Tone.INVALID: ":warning:",
    Tone.DRY_RUN: ":test_tube:",
    Tone.WORKING: ":hourglass_flowing_sand:",
    Tone.INFO: ":information_source:",
}
SECTION_LIMIT = 3000  # Slack's limit for a section's text
MAX_BLOCKS = 50  # Slack's limit of blocks in a message
BUTTON_TEXT = 75  # Slack's limit of a button's text
MAX_BUTTONS = 25  # Slack's limit of elements in an actions block
# The buttons of one message (an account per button, for a call id many accounts fit): 100.
MAX_CHOICE_BLOCKS = 4
CHOICE_ACTION = "choose_account"
DISMISS_ACTION = "dismiss_choice"
OPEN_FORM_ACTION = "open_form"
APPROVE_ACTION = APPROVE_HANDLER
DENY_ACTION = DENY_HANDLER
# `/call audit`: a row's Details button (value: the audit id) and Next / Previous (value: a page token).
AUDIT_DETAILS_ACTION = "audit_details"
AUDIT_PAGE_ACTION = "audit_page"
# `/call list` and `/call status`: a call's buttons (action id prefix + ":" + its index) and More.
LIVE_HANGUP_ACTION = "live_hangup"  # value: a stored `/call hangup` ("token|account")
LIVE_REDIRECT_ACTION = "live_redirect"  # value: "account:call-id"
LIVE_FLOW_ACTION = "live_flow"  # value: "account:call-id"
LIVE_MORE_ACTION = "live_more"  # value: the next page (see bot/service/live.py)


def _chunks(lines: list[str], limit: int) -> list[tuple[str, int]]:
    """Lines packed into texts of at most `limit` characters, each with how many lines it holds; a
    longer line is cut, visibly (…)."""
    chunks: list[tuple[str, int]] = []
    current, count = "", 0
    for line in lines:
        line = _clip(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            chunks.append((current, count))
            current, count = line, 1
        else:
            current, count = (f"{current}\n{line}" if current else line), count + 1
    if current:  # never an empty text: Slack refuses a section without any
        chunks.append((current, count))
    return chunks


def message(reply: Reply) -> dict[str, Any]:
    """Keyword arguments for ack()/respond(): an ephemeral message. Within Slack's 50 blocks: the
    title, the lines, then what must stay (calls, code, buttons, the audit id); lines that do not
    fit are left out, saying how many."""
    head: list[Any] = [
        SectionBlock(text=MarkdownTextObject(text=_clip(f"{EMOJI[reply.tone]} *{reply.title}*", SECTION_LIMIT)))
    ]
    body: list[Any] = []
    held: list[int] = []  # lines per body block (a listing's blocks are bounded by its page)
    if reply.listing is not None:
        body = _listing(reply.listing, reply.lines[:1])
    else:
        for chunk, count in _chunks(list(reply.lines), SECTION_LIMIT):
            body.append(SectionBlock(text=MarkdownTextObject(text=chunk)))
            held.append(count)
    tail: list[Any] = []
    if reply.calls is not None:
        tail += _calls(reply.calls)
    if reply.code:
        code = _clip(reply.code, SECTION_LIMIT - 6)
        tail.append(SectionBlock(text=MarkdownTextObject(text=f"```{code}```")))
    if reply.choices:
        tail += _choices(reply.choices)
    if reply.offers_form:
        tail.append(
            ActionsBlock(
                block_id=OPEN_FORM_ACTION,
                elements=[ButtonElement(text="Open form", action_id=OPEN_FORM_ACTION, style="primary")],
            )
        )
    if reply.audit_id:
        tail.append(ContextBlock(elements=[MarkdownTextObject(text=f"audit #{reply.audit_id}")]))
    room = max(1, MAX_BLOCKS - len(head) - len(tail))
    if len(body) > room:
        left_out = sum(held[room - 1 :]) if held else len(body) - room + 1
        noun = "line" if held else "item"
        note = f":scissors: {left_out} more {noun}{'' if left_out == 1 else 's'} not shown: Slack shows at most {MAX_BLOCKS} blocks in a message."
        body = [*body[: room - 1], ContextBlock(elements=[MarkdownTextObject(text=note)])]
    blocks = head + body + tail
    return {
        "text": _clip(reply.as_text(), 3000),
        "blocks": [block.to_dict() for block in blocks],
        "response_type": "ephemeral",
    }


def _choices(choices: tuple[Choice, ...]) -> list[Any]:
    """The buttons, 25 to an actions block (Slack's limit), at most MAX_CHOICE_BLOCKS blocks; any
    more are named in a line instead."""
    shown = choices[: MAX_BUTTONS * MAX_CHOICE_BLOCKS]
    buttons = [_button(i, choice) for i, choice in enumerate(shown)]
    blocks: list[Any] = [
        ActionsBlock(
            block_id=CHOICE_ACTION if n == 0 else f"{CHOICE_ACTION}_{n}", elements=buttons[at : at + MAX_BUTTONS]
        )
        for n, at in enumerate(range(0, len(buttons), MAX_BUTTONS))
    ]
    if len(choices) > len(shown):
        more = len(choices) - len(shown)
        note = (
            f"…and {more} more, not shown as buttons: {_clip(', '.join(c.label for c in choices[len(shown) :]), 2000)}"
        )
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=note)]))
    return blocks


def entry_text(item: AuditEntry) -> str:
    """One audit row on one line: time, audit id (what replies cite as `audit #N`), who, action,
    account:call, outcome (emoji first) and what the provider confirmed the call did since
    (`❓ unknown → confirmed ended (`completed`)`); the short error under it."""
    when = item.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    text = f"`{when}` #{item.id} {mention(item.user_id)} *{item.action or '?'}* `{item.target}` "
    text += f"{item.emoji} {item.outcome}"
    if item.confirmed:
        text += f" → {item.confirmed}"
    if item.source != "slash":
        text += f" ({item.source})"
    if item.error:
        text += f"\n> {item.error}"
    return _clip(text, SECTION_LIMIT)


def details_button(item: AuditEntry, index: int | str) -> ButtonElement:
    return ButtonElement(text="Details", action_id=f"{AUDIT_DETAILS_ACTION}:{index}", value=str(item.id))


def _listing(listing: AuditListing, head: tuple[str, ...]) -> list[Any]:
    """Each row with its Details button, then Previous / Next (only where there is such a page)."""
    blocks: list[Any] = [ContextBlock(elements=[MarkdownTextObject(text=line)]) for line in head]
    for index, item in enumerate(listing.entries):
        blocks.append(
            SectionBlock(
                block_id=f"audit_row_{item.id}",
                text=MarkdownTextObject(text=entry_text(item)),
                accessory=details_button(item, index),
            )
        )
    pages = []
    if listing.newer:
        pages.append(ButtonElement(text="Previous", action_id=f"{AUDIT_PAGE_ACTION}:newer", value=listing.newer))
    if listing.older:
        pages.append(ButtonElement(text="Next", action_id=f"{AUDIT_PAGE_ACTION}:older", value=listing.older))
    if pages:
        blocks.append(ActionsBlock(block_id=AUDIT_PAGE_ACTION, elements=pages))
    return blocks


def _calls(listing: CallListing) -> list[Any]:
    """Each call (its line, when it has one) and its buttons; then More, when there is more."""
    blocks: list[Any] = []
    for index, entry in enumerate(listing.entries):
        if entry.text:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(entry.text, SECTION_LIMIT))))
        buttons = _call_buttons(index, entry)
        if buttons:
            blocks.append(ActionsBlock(block_id=f"live_call_{index}", elements=buttons))
    if listing.more:
        more = ButtonElement(text="More", action_id=f"{LIVE_MORE_ACTION}:0", value=listing.more)
        blocks.append(ActionsBlock(block_id=LIVE_MORE_ACTION, elements=[more]))
    return blocks


def _call_buttons(index: int, entry: CallEntry) -> list[ButtonElement]:
    target = f"{entry.account}:{entry.call_id}"
    buttons = []
    if entry.hangup:
        buttons.append(
            ButtonElement(text="Hang up", action_id=f"{LIVE_HANGUP_ACTION}:{index}", value=entry.hangup, style="danger")
        )
    if entry.redirect:
        buttons.append(ButtonElement(text="Redirect", action_id=f"{LIVE_REDIRECT_ACTION}:{index}", value=target))
    if entry.flow:
        buttons.append(ButtonElement(text="Flow", action_id=f"{LIVE_FLOW_ACTION}:{index}", value=target))
    return buttons


def _button(index: int, choice: Choice) -> ButtonElement:
    confirm = None
    if choice.confirm is not None:
        dialog = choice.confirm
        # Slack's limits: title 100, text 300, button labels 30 characters.
        confirm = ConfirmObject(
            title=_clip(dialog.title, 100),
            text=_clip(dialog.text, 300),
            confirm=_clip(dialog.confirm, 30),
            deny=_clip(dialog.deny, 30),
            style="danger" if choice.style == "danger" else None,
        )
    return ButtonElement(
        text=_clip(choice.label, BUTTON_TEXT),
        action_id=f"{choice.handler or (DISMISS_ACTION if choice.dismiss else CHOICE_ACTION)}:{index}",
        value=choice.value,
        style=choice.style,
        confirm=confirm,
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
