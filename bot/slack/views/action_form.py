"""The action modal as Block Kit views (slack_sdk models, so Slack's limits are checked on build).

Block ids are the names the errors use: `account`, `call_id`, `action`, `url`, `twiml`, `callflow`,
`reason`, and each provider option by its command-line name (`method`, `time-limit`, …), so an
error about `time-limit=` lands under the time-limit field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    ExternalDataSelectElement,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.domain.flows import LibraryEntry
from bot.domain.grammar import CallCommand
from bot.domain.replies import plural
from bot.service.core import FormAccount, FoundCall
from bot.slack.views.menus import choice, is_type_ahead, menu
from bot.slack.views.message_calls import FormOrigin, call_choice, found_call_options

ACTION_MODAL = "call_action"
BUILD_FLOW = "fb_build"  # the button that turns this modal into the callFlow builder
CONFIRM_MODAL = "call_confirm"
VALUE = "value"  # the action_id of every plain input
# The call field: a type-ahead over the account's live calls (Slack asks `app.options` for them).
CALL_PICKER = "call_picker"
# The account menu and the saved-flow menu: static menus, or type-ahead menus above 100 choices
# (bot/slack/views/menus.py), whose options requests come with these action ids.
ACCOUNT_MENU = "account"
FLOW_MENU = "saved_flow"
DESTRUCTIVE = ("hangup", "cancel")
ACTION_LABELS = {
    "hangup": "Hang up",
    "cancel": "Cancel (queued or ringing)",
    "redirect": "Redirect to a URL",
    "twiml": "Replace with inline TwiML",
    "flow": "Replace the callFlow",
}


@dataclass(frozen=True)
class Field:
    label: str
    kind: str  # url | method | int | text | secret
    hint: str


# Every provider option the grammar knows, as a form field; block id = option name.
OPTION_FIELDS: dict[str, Field] = {
    "method": Field("Method", "method", "How the provider fetches the URL (default POST)."),
    "fallback": Field("Fallback URL", "url", "Fetched when the URL fails or returns bad instructions."),
    "fallback-method": Field("Fallback method", "method", "How the fallback URL is fetched (default POST)."),
    "status-callback": Field("Status callback URL", "url", "Twilio calls it when the call ends."),
    "status-callback-method": Field("Status callback method", "method", "Default POST."),
    "time-limit": Field("Time limit (seconds)", "int", "Twilio ends the call after this many seconds."),
    "tag": Field("Tag", "text", "Bandwidth sends it with every later callback; leave empty to keep it."),
    "username": Field("Username for the URL", "text", "Bandwidth: HTTP Basic auth, with the password."),
    "password": Field("Password for the URL", "secret", "Never shown again nor stored in the audit."),
    "fallback-username": Field("Username for the fallback URL", "text", "With the fallback password."),
    "fallback-password": Field("Password for the fallback URL", "secret", "Never stored in the audit."),
}


@dataclass(frozen=True)
class FormState:
    """What the person has filled in so far (read back from Slack's view state)."""

    account: str | None = None
    action: str | None = None
    values: Mapping[str, str] = None  # type: ignore[assignment]

    def get(self, block_id: str) -> str | None:
        return (self.values or {}).get(block_id)


def plain(text: str) -> PlainTextObject:
    return PlainTextObject(text=text, emoji=True)


def menu_option(value: str, label: str) -> Option:
    return choice(value, label)


def account_options(accounts: Sequence[FormAccount]) -> list[Option]:
    return [menu_option(a.name, f"{a.name} ({a.provider_name})") for a in accounts]


def flow_options(flows: Sequence[LibraryEntry]) -> list[Option]:
    """A saved flow as its menu shows it: `hold-music · v2 · 3 commands` (the name whole: ≤ 64)."""
    return [menu_option(f.name, f"{f.name} · v{f.version} · {plural(f.commands, 'command')}") for f in flows]


def _select(action_id: str, options: Sequence[Option], selected: str | None, placeholder: str) -> StaticSelectElement:
    initial = next((o for o in options if o.value == selected), None)
    return StaticSelectElement(
        action_id=action_id, options=list(options), initial_option=initial, placeholder=plain(placeholder)
    )


def _input(block_id: str, label: str, element: Any, *, hint: str | None = None, optional: bool = False) -> InputBlock:
    return InputBlock(
        block_id=block_id, label=plain(label), element=element, hint=plain(hint) if hint else None, optional=optional
    )


def _plain(initial: str | None, placeholder: str = "", *, multiline: bool = False, max_length: int = 3000) -> Any:
    return PlainTextInputElement(
        action_id=VALUE,
        initial_value=initial or None,
        placeholder=plain(placeholder) if placeholder else None,
        multiline=multiline,
        max_length=max_length,
    )


def action_view(
    accounts: Sequence[FormAccount],
    state: FormState,
    channel_id: str | None,
    *,
    origin: FormOrigin | None = None,
    found: Sequence[FoundCall] | None = None,
    flows: Sequence[LibraryEntry] = (),
) -> View:
    """The form: account, call, action, then exactly the options that provider has for that action.
    `found`: the call ids of the message it was opened on, offered as the call's menu. `flows`: the
    saved flows, offered when the action is `flow`. Above 100 accounts or saved flows, their menu
    is a type-ahead. It always has its Run button: Slack refuses a modal with input blocks and no
    submit button, and the person then sees the modal stay on "Loading…"."""
    origin = origin or FormOrigin()
    if not accounts:
        metadata = json.dumps({"channel": channel_id, **origin.metadata()})
        return View(
            type="modal",
            callback_id=ACTION_MODAL,
            title=plain("Call action"),
            close=plain("Close"),
            private_metadata=metadata,
            blocks=[
                SectionBlock(
                    text=MarkdownTextObject(
                        text="You may not run any call action yet. Ask an admin: `/call grant @you hangup on=ACCOUNT`."
                    )
                )
            ],
        )
    chosen = next((a for a in accounts if a.name == state.account), accounts[0] if len(accounts) == 1 else None)
    # The account goes in the metadata too: the call menu's options request reads it from there
    # when the account was preselected (a single account) rather than picked.
    metadata = json.dumps({"channel": channel_id, "account": chosen.name if chosen else None, **origin.metadata()})
    offered, note = found_call_options(accounts, chosen.name if chosen else None, found, origin.more)
    blocks: list[Block] = [ContextBlock(elements=[MarkdownTextObject(text=note)])] if note else []
    choices = account_options(accounts)
    blocks += [
        InputBlock(
            block_id="account",
            label=plain("Account"),
            element=menu(ACCOUNT_MENU, choices, chosen.name if chosen else None, "Pick an account"),
            hint=plain(f"{len(accounts)} accounts: type part of a name to find one.")
            if is_type_ahead(choices)
            else None,
            dispatch_action=True,
        ),
        _input(
            "call_id",
            "Call",
            _call_picker(state.get("call_id")),
            hint=(
                f"Type to search the live calls of `{chosen.name}` (id or number), or type a whole "
                f"{chosen.provider_name} call id, like {chosen.call_id_example}"
                if chosen
                else "Pick the account first"
            )[:150],
        )
        if not offered
        else _input("call_id", "Call", call_choice(offered, state.get("call_id")), hint="From the message"),
    ]
    action = None
    if chosen:
        action = state.action if state.action in chosen.actions else None
        blocks.append(
            InputBlock(
                block_id="action",
                label=plain("Action"),
                element=_select(
                    "action",
                    [menu_option(a, ACTION_LABELS.get(a, a)) for a in chosen.actions],
                    action,
                    "What to do with the call",
                ),
                dispatch_action=True,
            )
        )
    if chosen and action:
        blocks += _flow_fields(chosen, state, flows) if action == "flow" else _action_fields(chosen, action, state)
    return View(
        type="modal",
        callback_id=ACTION_MODAL,
        title=plain("Call action"),
        submit=plain("Run"),
        close=plain("Cancel"),
        private_metadata=metadata,
        blocks=blocks,
    )


def _call_picker(call_id: str | None) -> ExternalDataSelectElement:
    """A type-ahead over the live calls (min_query_length 0: opening it lists them all)."""
    initial = menu_option(call_id, call_id) if call_id else None
    return ExternalDataSelectElement(
        action_id=CALL_PICKER,
        placeholder=plain("Search the live calls, or type a call id"),
        initial_option=initial,
        min_query_length=0,
    )


def _action_fields(account: FormAccount, action: str, state: FormState) -> list[Block]:
    blocks: list[Block] = []
    if action == "redirect":
        blocks.append(
            _input(
                "url",
                "URL with the new instructions",
                _plain(state.get("url"), "https://example.com/hold.xml", max_length=2000),
                hint="TwiML for Twilio, BXML for Bandwidth.",
            )
        )
    elif action == "twiml":
        blocks.append(
            _input(
                "twiml",
                "TwiML",
                _plain(state.get("twiml"), "<Response><Say>Goodbye</Say><Hangup/></Response>", multiline=True),
                hint="A <Response> document, at most 4,000 characters.",
            )
        )
    for option in account.options.get(action, ()):
        field = OPTION_FIELDS.get(option)
        if field is not None:
            blocks.append(_option_block(option, field, state.get(option)))
    return blocks + _closing_fields(account, state)


def _flow_fields(account: FormAccount, state: FormState, flows: Sequence[LibraryEntry]) -> list[Block]:
    """A saved flow to apply (Run shows it and asks to confirm, as `/call flow CALL NAME` does), or
    the callFlow builder, which takes over this modal (bot/slack/listeners/flow_builder.py) with
    its own Apply."""
    build = [
        ActionsBlock(
            block_id=BUILD_FLOW,
            elements=[ButtonElement(text="Build the callFlow", action_id=BUILD_FLOW, style="primary")],
        ),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Or build one: opens the callFlow builder for this {account.provider_name} call "
                    f"(account `{account.name}`): commands one by one, a preview, Save as…."
                )
            ]
        ),
    ]
    if not flows:
        note = "No saved flow yet: build the callFlow, then *Save as…* to keep it for next time."
        return [*build[:1], ContextBlock(elements=[MarkdownTextObject(text=note)])]
    choices = flow_options(flows)
    hint = "Run shows it before anything is sent."
    if is_type_ahead(choices):
        hint = f"{len(flows)} saved flows: type part of a name to find one. {hint}"
    picker = _input(
        FLOW_MENU, "Saved flow", menu(FLOW_MENU, choices, state.get(FLOW_MENU), "Pick a saved flow"), hint=hint
    )
    return [picker, *_closing_fields(account, state), *build]


def _closing_fields(account: FormAccount, state: FormState) -> list[Block]:
    """Reason, dry run and the account's line: the end of every action's fields."""
    blocks: list[Block] = []
    blocks.append(
        _input(
            "reason",
            "Reason",
            _plain(state.get("reason"), "Why (kept in the audit)", max_length=500),
            optional=True,
        )
    )
    blocks.append(
        _input(
            "dry_run",
            "Dry run",
            CheckboxesElement(
                action_id=VALUE,
                options=[menu_option("dry-run", "Only show the request; send nothing")],
                initial_options=[menu_option("dry-run", "Only show the request; send nothing")]
                if state.get("dry_run")
                else None,
            ),
            optional=True,
        )
    )
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"{account.provider_name} account `{account.name}`")]))
    return blocks


def _option_block(option: str, field: Field, current: str | None) -> InputBlock:
    element: Any
    if field.kind == "method":
        element = _select(VALUE, [menu_option("GET", "GET"), menu_option("POST", "POST")], current, "POST (default)")
    elif field.kind == "int":
        element = NumberInputElement(action_id=VALUE, is_decimal_allowed=False, min_value=1, initial_value=current)
    elif field.kind == "url":
        element = _plain(current, "https://…", max_length=2000)
    elif field.kind == "secret":
        element = _plain(None, "", max_length=1024)  # never echoed back into a view
    else:
        element = _plain(current, "", max_length=1024)
    return _input(option, field.label, element, hint=field.hint, optional=True)


def confirm_view(summary: str, detail: str, metadata: Mapping[str, Any], submit: str) -> View:
    """The destructive-action check: names the call and the account before anything is sent."""
    return View(
        type="modal",
        callback_id=CONFIRM_MODAL,
        title=plain("Confirm"),
        submit=plain(submit[:24]),
        close=plain("Cancel"),
        private_metadata=json.dumps(metadata),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=f":warning: *{summary}*")),
            SectionBlock(text=MarkdownTextObject(text=detail)),
        ],
    )


def confirmation(command: CallCommand, channel: str | None, origin: FormOrigin | None = None) -> View:
    """The confirm view of a hang-up or cancel submitted from the form; its metadata carries the
    form's values, so the confirmed submission is rebuilt from them."""
    action = command.action
    target = command.target.display()
    verb = "Hang up" if action.name.value == "hangup" else "Cancel"
    detail = (
        "This ends the call for everyone on it."
        if action.name.value == "hangup"
        else "This ends the call if it is still queued or ringing."
    )
    if action.reason:
        detail += f"\nReason: {action.reason}"
    values = {"call_id": command.target.call_id, "reason": action.reason}
    meta = {
        "channel": channel,
        "account": command.target.account,
        "action": action.name.value,
        "values": values,
        **(origin or FormOrigin()).metadata(),
    }
    return confirm_view(f"{verb} {target}?", detail, meta, verb)


def loading_view() -> View:
    return View(
        type="modal",
        callback_id=ACTION_MODAL,
        title=plain("Call action"),
        close=plain("Cancel"),
        blocks=[SectionBlock(text=MarkdownTextObject(text=":hourglass_flowing_sand: Loading your accounts…"))],
    )


def unavailable_view(why: str) -> View:
    """In place of a form that could not be shown (Slack refused it, or callbot failed), so the
    person is never left on "Loading…"."""
    text = (
        f":warning: callbot could not show the form ({why}). Nothing was done.\n"
        "Type the command instead, e.g. `/call hangup ACCOUNT:CALL-ID`; `/call help` lists them."
    )
    return View(
        type="modal",
        callback_id=ACTION_MODAL,
        title=plain("Call action"),
        close=plain("Close"),
        blocks=[SectionBlock(text=MarkdownTextObject(text=text))],
    )


def read_state(view: Mapping[str, Any]) -> FormState:
    """Slack's view.state.values → the plain values, whatever element each field uses."""
    values: dict[str, str] = {}
    raw = ((view.get("state") or {}).get("values")) or {}
    for block_id, actions in raw.items():
        if not isinstance(actions, dict):
            continue
        for element in actions.values():
            if not isinstance(element, dict):
                continue
            value = _element_value(element)
            if value is not None:
                values[str(block_id)] = value
    return FormState(account=values.get("account"), action=values.get("action"), values=values)


def _element_value(element: Mapping[str, Any]) -> str | None:
    kind = element.get("type")
    if kind in ("static_select", "external_select"):
        selected = element.get("selected_option") or {}
        return str(selected.get("value")) if selected.get("value") else None
    if kind == "checkboxes":
        chosen = element.get("selected_options") or []
        return ",".join(str(o.get("value")) for o in chosen if isinstance(o, dict)) or None
    value = element.get("value")
    return str(value) if value not in (None, "") else None
