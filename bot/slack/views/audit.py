"""Audit rows as modals: the whole row (Details, from a `/call audit` page or the Home tab), or
why it may not be shown."""

from __future__ import annotations

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View

from bot.domain.replies import AuditDetail, Reply
from bot.slack.views.render import EMOJI, SECTION_LIMIT

LOADING = View(
    type="modal",
    title="Audit",
    close="Close",
    blocks=[SectionBlock(text=MarkdownTextObject(text=":hourglass_flowing_sand: Reading the audit row…"))],
)
# Room kept in a truncated text for the note saying so.
_NOTE_ROOM = 160


def details_view(detail: AuditDetail) -> View:
    blocks: list[Block] = []
    facts = [f"*{label}:* {value}" for label, value in detail.facts]
    for chunk in _chunks(facts):
        blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk)))
    truncated = False
    for label, text in detail.texts:
        shown, cut = _code(label, text)
        truncated = truncated or cut
        blocks.append(SectionBlock(text=MarkdownTextObject(text=shown)))
    if truncated:
        note = "Long values are truncated to fit Slack. The whole row: `/call audit export call=…` (or the shell)."
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=note)]))
    return View(type="modal", title=detail.title[:24], close="Close", blocks=blocks[:100])


def refusal_view(reply: Reply) -> View:
    text = f"{EMOJI[reply.tone]} *{reply.title}*\n" + "\n".join(reply.lines)
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=text[:SECTION_LIMIT]))]
    if reply.audit_id:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"audit #{reply.audit_id}")]))
    return View(type="modal", title="Audit", close="Close", blocks=blocks)


def _code(label: str, text: str) -> tuple[str, bool]:
    """`*label*` and the text verbatim, within Slack's 3,000 characters; cut visibly if longer."""
    head, tail = f"*{label}*\n```", "```"
    room = SECTION_LIMIT - len(head) - len(tail)
    text = text.replace("```", "ˋˋˋ")  # a fence inside would end the code block early
    if len(text) <= room:
        return head + text + tail, False
    keep = room - _NOTE_ROOM
    note = f"\n… [truncated: {len(text) - keep:,} more characters of {len(text):,}]"
    return head + text[:keep] + note + tail, True


def _chunks(lines: list[str]) -> list[str]:
    chunks: list[str] = []
    current = ""
    for line in lines:
        line = line if len(line) <= SECTION_LIMIT else line[: SECTION_LIMIT - 1] + "…"
        if current and len(current) + 1 + len(line) > SECTION_LIMIT:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    return [*chunks, current] if current else chunks
