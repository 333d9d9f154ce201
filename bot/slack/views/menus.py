"""Menus that scale: a static menu while Slack can hold its options, a type-ahead beyond.

Slack refuses a `static_select` of more than 100 options (the whole view with it: the modal never
leaves "Loading…"), and shows at most 100 options of an answer to a type-ahead's options request.
So a menu of up to MENU_LIMIT choices is a `static_select`; above it, an `external_select` whose
options request (Bolt's `app.options`, by the menu's action id) is answered by `narrowed`: the
choices matching what was typed, at most MENU_LIMIT, and when more match, under a heading telling
the person to type more. Both kinds send the same `view.state` shape (`selected_option`), so a
submission reads either the same way (bot/slack/views/action_form.py `read_state`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import ExternalDataSelectElement, Option, OptionGroup, PlainTextObject, StaticSelectElement

MENU_LIMIT = 100  # Slack: options in a static_select, and in an answer to an options request
OPTION_TEXT = 75  # Slack: an option's text, and an option group's label


def clip(text: str, limit: int) -> str:
    """`text` within `limit` characters, visibly cut (…) when it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def choice(value: str, label: str) -> Option:
    return Option(value=value, label=clip(label, OPTION_TEXT))


def menu(
    action_id: str, options: Sequence[Option], selected: str | None, placeholder: str
) -> StaticSelectElement | ExternalDataSelectElement:
    """A static menu of `options`, or above MENU_LIMIT of them a type-ahead (min_query_length 0:
    opening it lists the first ones), with `selected` picked in either."""
    initial = next((o for o in options if o.value == selected), None)
    text = PlainTextObject(text=placeholder, emoji=True)
    if len(options) <= MENU_LIMIT:
        return StaticSelectElement(action_id=action_id, options=list(options), initial_option=initial, placeholder=text)
    return ExternalDataSelectElement(action_id=action_id, initial_option=initial, placeholder=text, min_query_length=0)


def is_type_ahead(options: Sequence[Option]) -> bool:
    return len(options) > MENU_LIMIT


def narrowed(options: Sequence[Option], typed: str, noun: str) -> dict[str, Any]:
    """The answer to a type-ahead's options request (keyword arguments of Bolt's `ack`): the
    options whose text or value has every word typed, those starting with it first; at most
    MENU_LIMIT, and when more match, in one group whose heading says how many and to type more."""
    words = typed.casefold().split()
    whole = " ".join(words)

    def rank(option: Option) -> int:
        value, label = option.value.casefold(), str(option.label or "").casefold()
        if whole and whole in (value, label):
            return 0
        return 1 if whole and (value.startswith(whole) or label.startswith(whole)) else 2

    matching = [o for o in options if all(w in f"{o.value} {o.label}".casefold() for w in words)]
    matching.sort(key=rank)  # stable: otherwise in the menu's own order
    if len(matching) <= MENU_LIMIT:
        return {"options": [o.to_dict() for o in matching]}
    heading = f"{MENU_LIMIT} of {len(matching)} {noun}: type to narrow"
    group = OptionGroup(label=clip(heading, OPTION_TEXT), options=matching[:MENU_LIMIT])
    return {"option_groups": [group.to_dict()]}


def capped(options: Sequence[Option], more: bool, heading: str) -> dict[str, Any]:
    """An options answer already cut to MENU_LIMIT by its source (`more`: there may be more than
    shown), with `heading` over them then."""
    shown = list(options)[:MENU_LIMIT]
    if not more:
        return {"options": [o.to_dict() for o in shown]}
    return {"option_groups": [OptionGroup(label=clip(heading, OPTION_TEXT), options=shown).to_dict()]}
