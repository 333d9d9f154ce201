"""Call ids in text people did not write for callbot (an alert from a monitoring tool), and call
ids as a channel or a narrow menu shows them (`CA12…ef`).

Pure text functions: the id shapes come from the provider clients (`call_id_pattern`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# At most this many ids are offered from one message: a Slack menu holds 100 options and a
# view's private_metadata 3,000 characters (each id is kept there, up to 47 characters).
MAX_FOUND = 20
# Text read from one message, at most (Slack's own messages are far shorter).
MAX_TEXT = 100_000
# An id is a whole word: not inside a longer run of letters, digits, `_` or `-` (a Bird UUID is
# the tail of a Bandwidth id, `c-XXXXXXXX-<uuid>`, and must not be found there on its own).
_BEFORE = r"(?<![0-9A-Za-z_-])"
_AFTER = r"(?![0-9A-Za-z_-])"


def find_call_ids(texts: Iterable[str], patterns: Iterable[re.Pattern[str]], limit: int = MAX_FOUND) -> list[str]:
    """The distinct call ids in `texts`, in the order they first appear (at most `limit`), of any
    of the `patterns` (each provider's, matched whole)."""
    shapes = sorted({p.pattern for p in patterns}, key=len, reverse=True)
    if not shapes:
        return []
    finder = re.compile(_BEFORE + "(?:" + "|".join(f"(?:{shape})" for shape in shapes) + ")" + _AFTER)
    found: dict[str, None] = {}
    budget = MAX_TEXT
    for text in texts:
        if budget <= 0:
            break
        for match in finder.finditer(text[:budget]):
            found.setdefault(match.group(0))
            if len(found) >= limit:
                return list(found)
        budget -= len(text)
    return list(found)


def short_call_id(call_id: str, head: int = 4, tail: int = 2) -> str:
    """`CA1234…cdef` → `CA12…ef`: enough to tell calls apart at a glance, not the whole id."""
    if len(call_id) <= head + tail + 2:
        return call_id
    return f"{call_id[:head]}…{call_id[-tail:]}"


def distinct_labels(call_ids: Sequence[str]) -> dict[str, str]:
    """Each id's short form; where two would read the same, longer ones for all of those."""
    labels: dict[str, str] = {}
    for head, tail in ((4, 2), (8, 4), (12, 8)):
        labels = {call_id: short_call_id(call_id, head, tail) for call_id in call_ids}
        if len(set(labels.values())) == len(labels):
            return labels
    return {call_id: call_id for call_id in call_ids}
