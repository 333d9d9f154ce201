"""The action form opened by a shortcut: where it came from (kept in its private_metadata), and
the call menu of "Act on this call", offering the call ids found in the message.

The ids are shown shortened (`CA12…ef`), as the live-calls menu shows them; the option's value is
the whole id, which the submission uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import Option, PlainTextObject, StaticSelectElement

from bot.domain.callids import MAX_FOUND
from bot.domain.outcomes import Source
from bot.service.core import FormAccount, FoundCall

# The call field's action id when it is the message's menu (the type-ahead's is `call_picker`).
CALL_CHOICE = "call_choice"
NONE_FOUND = ":mag: No call id found in that message: pick the account and search its live calls."


@dataclass(frozen=True)
class FormOrigin:
    """Where the form was opened, kept through every update of the form and its confirmation:
    the audit source of its submission (a shortcut), the call ids found in the message ("Act on
    this call"; None when not opened on a message) and that message's thread, where the outcome
    is told."""

    source: str | None = None
    calls: tuple[str, ...] | None = None
    thread: tuple[str, str] | None = None  # (channel, thread ts)
    more: bool = False  # the message had more call ids than `calls` (MAX_FOUND)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if self.source:
            meta["source"] = self.source
        if self.calls is not None:
            meta["calls"] = list(self.calls)
        if self.thread:
            meta["thread"] = list(self.thread)
        if self.more:
            meta["more"] = True
        return meta

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> FormOrigin:
        """Read back from a view's metadata; anything not of the shape written is left out."""
        source, calls, thread = meta.get("source"), meta.get("calls"), meta.get("thread")
        return cls(
            source if source in (Source.SHORTCUT, Source.MESSAGE_SHORTCUT) else None,
            tuple(calls[:MAX_FOUND]) if isinstance(calls, list) and all(isinstance(c, str) for c in calls) else None,
            (thread[0], thread[1])
            if isinstance(thread, list) and len(thread) == 2 and all(isinstance(t, str) and t for t in thread)
            else None,
            meta.get("more") is True,
        )


def found_call_options(
    accounts: Sequence[FormAccount], chosen: str | None, found: Sequence[FoundCall] | None, more: bool = False
) -> tuple[list[Option], str | None]:
    """The call menu's options from the message (the ids of the chosen account, or of any account
    the person may act on), and a note on what was found (`more`: the message had more than
    MAX_FOUND ids). No options: the usual type-ahead."""
    if found is None:
        return [], None
    if not found:
        return [], NONE_FOUND
    names = {a.name for a in accounts}
    fitting = [
        (call, [name for name in call.accounts if name in names])
        for call in found
        if (chosen in call.accounts if chosen else names.intersection(call.accounts))
    ]
    if not fitting:
        shown = ", ".join(f"`{call.label}`" for call in found[:5])
        where = f"account `{chosen}`" if chosen else "any account you may act on"
        return [], f":mag: The call ids in that message ({shown}) do not fit {where}: search the live calls instead."
    options = [
        Option(value=call.call_id, label=(call.label if chosen else f"{call.label} · {', '.join(on)}")[:75])
        for call, on in fitting
    ]
    count = f"{len(fitting)} call id{'s' if len(fitting) != 1 else ''}"
    if more:
        return options, (
            f":mag: {count} of the first {MAX_FOUND} found in that message; it has more: to act on another, "
            "pick the account and search its live calls (shortened here; the whole id is used)."
        )
    return options, f":mag: {count} found in that message (shortened here; the whole id is used)."


def call_choice(options: Sequence[Option], current: str | None) -> StaticSelectElement:
    """The message's call ids to pick from; the only one is picked already."""
    selected = current if any(o.value == current for o in options) else None
    if selected is None and len(options) == 1:
        selected = options[0].value
    return StaticSelectElement(
        action_id=CALL_CHOICE,
        options=list(options),
        initial_option=next((o for o in options if o.value == selected), None),
        placeholder=PlainTextObject(text="Pick a call from the message", emoji=True),
    )


def inferred_account(accounts: Sequence[FormAccount], found: Sequence[FoundCall] | None) -> str | None:
    """The account the message's ids point to, when their shapes fit exactly one of the person's
    accounts (else the person picks it)."""
    names = {a.name for a in accounts}
    fits = {name for call in found or () for name in call.accounts if name in names}
    return fits.pop() if len(fits) == 1 else None
