"""Block Kit as Slack checks it: what the fake Slack refuses, with Slack's own error shape.

Slack refuses a view (`views.open`, `views.update`, `views.push`, `views.publish`) with
`invalid_arguments`, a message (`chat.postMessage`, `chat.postEphemeral`, `chat.update`, a
response_url) with `invalid_blocks`, each time with the reasons in `response_metadata.messages`:
`[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]`. A `block_suggestion` answer
Slack cannot read leaves the menu empty ("We couldn't load the options") with nothing said to the
app at all. Each check here returns those reasons, empty when Slack would take the payload.

The limits are the Block Kit reference's (docs.slack.dev/reference/block-kit), for every block,
element and composition object callbot can send, so a test fails where callbot would send Slack
something it refuses, not only where the bot's own code remembered the limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
MENU_OPTIONS = 100  # static_select options, option_groups, a group's options, an options answer
TEXT = 3000  # any text object, and a section's text
FIELD_TEXT = 2000  # a section's fields, an input's label and hint
FIELDS = 10
HEADER = 150
ACTIONS_ELEMENTS = 25
CONTEXT_ELEMENTS = 10
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
URL = 3000
OPTION_TEXT = 75
OPTION_VALUE = 150
PLACEHOLDER = 150
CHOICES = 10  # checkboxes, radio buttons
OVERFLOW = 5
INPUT_MAX_LENGTH = 3000
TITLE = 24  # a modal's title, submit and close
METADATA = 3000  # private_metadata
ID = 255  # block_id, action_id, callback_id, external_id
CONFIRM = {"title": 100, "text": 300, "confirm": 30, "deny": 30}

Problems = list[str]


def _error(what: str, pointer: str) -> str:
    return f"[ERROR] {what} [json-pointer:{pointer}]"


def _too_many(items: Any, limit: int, pointer: str, problems: Problems, *, least: int = 1) -> list[Any]:
    if not isinstance(items, list):
        problems.append(_error("must provide an array", pointer))
        return []
    if len(items) > limit:
        problems.append(_error(f"no more than {limit} items allowed", pointer))
    elif len(items) < least:
        problems.append(_error(f"must provide at least {least} items", pointer))
    return items


def _string(value: Any, limit: int, pointer: str, problems: Problems, *, least: int = 0) -> None:
    if not isinstance(value, str):
        problems.append(_error("must be a string", pointer))
    elif len(value) > limit:
        problems.append(_error(f"must be less than {limit + 1} characters", pointer))
    elif len(value) < least:
        problems.append(_error(f"must be more than {least - 1} characters", pointer))


def _text(obj: Any, limit: int, pointer: str, problems: Problems, *, plain: bool = False) -> None:
    """A text object: plain_text or mrkdwn (`plain`: plain_text only), 1 to `limit` characters."""
    if not isinstance(obj, Mapping):
        problems.append(_error("must provide an object", pointer))
        return
    kinds = ("plain_text",) if plain else ("plain_text", "mrkdwn")
    if obj.get("type") not in kinds:
        problems.append(_error(f"must be one of {', '.join(kinds)}", pointer + "/type"))
    _string(obj.get("text"), limit, pointer + "/text", problems, least=1)


def _optional_text(obj: Mapping[str, Any], key: str, limit: int, pointer: str, problems: Problems) -> None:
    if key in obj and obj[key] is not None:
        _text(obj[key], limit, f"{pointer}/{key}", problems, plain=True)


def _id(obj: Mapping[str, Any], key: str, pointer: str, problems: Problems) -> None:
    if obj.get(key) is not None:
        _string(obj[key], ID, f"{pointer}/{key}", problems, least=1)


def _option(option: Any, pointer: str, problems: Problems, *, plain: bool = True) -> None:
    if not isinstance(option, Mapping):
        problems.append(_error("must provide an object", pointer))
        return
    _text(option.get("text"), OPTION_TEXT, pointer + "/text", problems, plain=plain)
    _string(option.get("value"), OPTION_VALUE, pointer + "/value", problems, least=1)
    _optional_text(option, "description", OPTION_TEXT, pointer, problems)


def options_problems(answer: Any, pointer: str = "") -> Problems:
    """An `options` / `option_groups` list: a select's own, or a block_suggestion answer."""
    problems: Problems = []
    if not isinstance(answer, Mapping):
        return [_error("must provide an object", pointer or "/")]
    if "option_groups" in answer:
        groups = _too_many(answer["option_groups"], MENU_OPTIONS, pointer + "/option_groups", problems)
        for g, group in enumerate(groups):
            at = f"{pointer}/option_groups/{g}"
            if not isinstance(group, Mapping):
                problems.append(_error("must provide an object", at))
                continue
            _text(group.get("label"), OPTION_TEXT, at + "/label", problems, plain=True)
            for o, option in enumerate(_too_many(group.get("options"), MENU_OPTIONS, at + "/options", problems)):
                _option(option, f"{at}/options/{o}", problems)
    elif "options" in answer:
        for o, option in enumerate(_too_many(answer["options"], MENU_OPTIONS, pointer + "/options", problems, least=0)):
            _option(option, f"{pointer}/options/{o}", problems)
    else:
        problems.append(_error("must provide options or option_groups", pointer or "/"))
    return problems


def _confirm(obj: Any, pointer: str, problems: Problems) -> None:
    if not isinstance(obj, Mapping):
        problems.append(_error("must provide an object", pointer))
        return
    for key, limit in CONFIRM.items():
        if key == "text":
            _text(obj.get(key), limit, f"{pointer}/{key}", problems)
        else:
            _text(obj.get(key), limit, f"{pointer}/{key}", problems, plain=True)


def _select_options(element: Mapping[str, Any], pointer: str, problems: Problems) -> None:
    """static_select: options (1–100) or option_groups, and an initial_option that is one of them."""
    if "option_groups" in element:
        groups = element["option_groups"] if isinstance(element["option_groups"], list) else []
        listed = [o for g in groups if isinstance(g, Mapping) for o in (g.get("options") or [])]
        problems += options_problems({"option_groups": element["option_groups"]}, pointer)
    else:
        listed = _too_many(element.get("options"), MENU_OPTIONS, pointer + "/options", problems)
        for o, option in enumerate(listed):
            _option(option, f"{pointer}/options/{o}", problems)
    initial = element.get("initial_option")
    if initial is not None:
        _option(initial, pointer + "/initial_option", problems)
        if isinstance(initial, Mapping) and not any(
            isinstance(o, Mapping) and o.get("value") == initial.get("value") and o.get("text") == initial.get("text")
            for o in listed
        ):
            problems.append(_error("initial_option must match one of the options", pointer + "/initial_option"))


def _choices(element: Mapping[str, Any], pointer: str, problems: Problems, limit: int) -> None:
    listed = _too_many(element.get("options"), limit, pointer + "/options", problems)
    for o, option in enumerate(listed):
        _option(option, f"{pointer}/options/{o}", problems, plain=False)
    for o, option in enumerate(element.get("initial_options") or []):
        if option not in listed:
            problems.append(_error("initial_options must be among the options", f"{pointer}/initial_options/{o}"))


def _element(element: Any, pointer: str, problems: Problems) -> None:
    if not isinstance(element, Mapping):
        problems.append(_error("must provide an object", pointer))
        return
    kind = element.get("type")
    _id(element, "action_id", pointer, problems)
    _optional_text(element, "placeholder", PLACEHOLDER, pointer, problems)
    if element.get("confirm") is not None:
        _confirm(element["confirm"], pointer + "/confirm", problems)
    if kind == "button":
        _text(element.get("text"), BUTTON_TEXT, pointer + "/text", problems, plain=True)
        if element.get("value") is not None:
            _string(element["value"], BUTTON_VALUE, pointer + "/value", problems, least=1)
        if element.get("url") is not None:
            _string(element["url"], URL, pointer + "/url", problems, least=1)
        if element.get("style") not in (None, "primary", "danger"):
            problems.append(_error("must be one of primary, danger", pointer + "/style"))
    elif kind == "static_select":
        _select_options(element, pointer, problems)
    elif kind == "external_select":
        if element.get("initial_option") is not None:
            _option(element["initial_option"], pointer + "/initial_option", problems)
    elif kind == "overflow":
        for o, option in enumerate(_too_many(element.get("options"), OVERFLOW, pointer + "/options", problems)):
            _option(option, f"{pointer}/options/{o}", problems)
    elif kind in ("checkboxes", "radio_buttons"):
        _choices(element, pointer, problems, CHOICES)
    elif kind == "plain_text_input":
        most = element.get("max_length", INPUT_MAX_LENGTH)
        if not isinstance(most, int) or not 1 <= most <= INPUT_MAX_LENGTH:
            problems.append(_error(f"must be between 1 and {INPUT_MAX_LENGTH}", pointer + "/max_length"))
            most = INPUT_MAX_LENGTH
        if element.get("initial_value") is not None:
            _string(element["initial_value"], most, pointer + "/initial_value", problems)
    elif kind == "number_input":
        if not isinstance(element.get("is_decimal_allowed"), bool):
            problems.append(_error("must provide a boolean", pointer + "/is_decimal_allowed"))
    else:
        problems.append(_error(f"unsupported element type {kind!r}", pointer + "/type"))


def _block(block: Any, pointer: str, problems: Problems, *, in_view: bool) -> None:
    if not isinstance(block, Mapping):
        problems.append(_error("must provide an object", pointer))
        return
    kind = block.get("type")
    _id(block, "block_id", pointer, problems)
    if kind == "section":
        if block.get("text") is None and block.get("fields") is None:
            problems.append(_error("must provide text or fields", pointer))
        if block.get("text") is not None:
            _text(block["text"], TEXT, pointer + "/text", problems)
        if block.get("fields") is not None:
            for f, field in enumerate(_too_many(block["fields"], FIELDS, pointer + "/fields", problems)):
                _text(field, FIELD_TEXT, f"{pointer}/fields/{f}", problems)
        if block.get("accessory") is not None:
            _element(block["accessory"], pointer + "/accessory", problems)
    elif kind == "header":
        _text(block.get("text"), HEADER, pointer + "/text", problems, plain=True)
    elif kind == "context":
        for e, element in enumerate(
            _too_many(block.get("elements"), CONTEXT_ELEMENTS, pointer + "/elements", problems)
        ):
            _text(element, TEXT, f"{pointer}/elements/{e}", problems)
    elif kind == "actions":
        for e, element in enumerate(
            _too_many(block.get("elements"), ACTIONS_ELEMENTS, pointer + "/elements", problems)
        ):
            _element(element, f"{pointer}/elements/{e}", problems)
    elif kind == "input":
        if not in_view:
            problems.append(_error("input blocks are for views", pointer))
        _text(block.get("label"), FIELD_TEXT, pointer + "/label", problems, plain=True)
        _optional_text(block, "hint", FIELD_TEXT, pointer, problems)
        _element(block.get("element"), pointer + "/element", problems)
    elif kind != "divider":
        problems.append(_error(f"unsupported block type {kind!r}", pointer + "/type"))


def blocks_problems(blocks: Any, limit: int, pointer: str, *, in_view: bool) -> Problems:
    problems: Problems = []
    listed = _too_many(blocks, limit, pointer, problems, least=0)
    seen: set[str] = set()
    for b, block in enumerate(listed):
        _block(block, f"{pointer}/{b}", problems, in_view=in_view)
        block_id = block.get("block_id") if isinstance(block, Mapping) else None
        if isinstance(block_id, str):
            if block_id in seen:
                problems.append(_error(f"duplicate block_id {block_id!r}", f"{pointer}/{b}/block_id"))
            seen.add(block_id)
    return problems


def view_problems(view: Any, pointer: str = "/view") -> Problems:
    """A modal or a Home tab, as views.open / update / push / publish (or a response_action) send it."""
    if not isinstance(view, Mapping):
        return [_error("must provide an object", pointer)]
    problems: Problems = []
    kind = view.get("type")
    if kind not in ("modal", "home"):
        problems.append(_error("must be one of modal, home", pointer + "/type"))
    blocks = view.get("blocks")
    problems += blocks_problems(blocks, VIEW_BLOCKS, pointer + "/blocks", in_view=True)
    for key in ("callback_id", "external_id"):
        _id(view, key, pointer, problems)
    if view.get("private_metadata") is not None:
        _string(view["private_metadata"], METADATA, pointer + "/private_metadata", problems)
    if kind == "modal":
        _text(view.get("title"), TITLE, pointer + "/title", problems, plain=True)
        for key in ("submit", "close"):
            _optional_text(view, key, TITLE, pointer, problems)
        has_input = isinstance(blocks, list) and any(
            isinstance(b, Mapping) and b.get("type") == "input" for b in blocks
        )
        if has_input and view.get("submit") is None:
            problems.append(_error("a view with input blocks must provide a submit", pointer + "/submit"))
    return problems


def message_problems(message: Any) -> Problems:
    """A message (chat.postMessage, chat.postEphemeral, chat.update, a response_url, an ack)."""
    if not isinstance(message, Mapping):
        return [_error("must provide an object", "/")]
    blocks = message.get("blocks")
    if blocks is None:
        return []
    if isinstance(blocks, str):  # the Web API takes blocks as a JSON string in a form
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return [_error("must provide valid JSON", "/blocks")]
    return blocks_problems(blocks, MESSAGE_BLOCKS, "/blocks", in_view=False)
