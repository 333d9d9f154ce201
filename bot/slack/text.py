"""Undoes Slack's markup in slash-command text so the grammar sees what the person typed."""

from __future__ import annotations

import re

_MARKUP = re.compile(r"<([^<>]*)>")


def _unmark(match: re.Match[str]) -> str:
    inner = match.group(1)
    if inner.startswith("@"):
        return f"<@{inner[1:].split('|', 1)[0]}>"
    if inner.startswith(("#", "!")):
        return f"<{inner.split('|', 1)[0]}>"
    # A link: Slack sends <url> or <url|label>; the URL is what was meant.
    return inner.split("|", 1)[0]


def plain_text(text: str) -> str:
    """Slack wraps links, users and channels in <…> and escapes &, < and > typed by the person.

    Markup is resolved first, while literal angle brackets are still escaped, so TwiML such as
    `<Response>` (sent as `&lt;Response&gt;`) survives intact.
    """
    text = _MARKUP.sub(_unmark, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
