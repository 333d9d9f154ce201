"""The callFlow builder's views: a Slack modal that builds a Bird callFlow command by command, no JSON
typed (its listeners: bot/slack/listeners/flow_builder.py).

Built with slack_sdk models, so Slack's limits are checked as they are built:

- `flow_builder`, the root: one section per command (summary + overflow menu: Edit, Move up, Move
  down, Remove), buttons Add command / Preview / JSON / Save as…, the "On Apply" input (end the call
  too) and the Apply submit button. 20 commands take 20 blocks: far below Slack's 100.
- pushed on top of it, one at a time (so the stack never exceeds root + 1 of Slack's root + 2):
  `flow_command` (a command's form), `flow_json`, `flow_save`, `flow_preview`.
- `flow_resume`: the offer to resume a draft, turned into the builder in place.

`private_metadata` holds only the draft's id (the draft lives in the database), the channel (a view
submission has no response_url) and, in a pushed view, the root view's id, the index being edited
and the number of condition rows. Each command's form is generated from the model in
bot/domain/callflow.py (`option_specs`): number inputs carry the schema's range, enums become static
selects, booleans checkboxes, gather's `say`/`playback` and bridge's `notification`/`amdSettings`
are fields of the same form, and bridge's own callFlow is a JSON field (a third view would break
Slack's stack limit). The form's values are read back in bot/slack/views/flow_form.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    OverflowMenuElement,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.domain.callflow import (
    COMMAND_NAMES,
    MAX_COMMANDS,
    BoolCheck,
    BridgeFlowCheck,
    ChoiceCheck,
    Condition,
    IntCheck,
    MediaCheck,
    NestedCheck,
    NumberCheck,
    UrlCheck,
    command_model,
    option_specs,
    validate_callflow,
)
from bot.domain.errors import InvalidInput
from bot.domain.replies import Reply
from bot.service.core import FlowDraft
from bot.slack.views.action_form import menu_option, plain
from bot.slack.views.render import message

BUILDER = "flow_builder"
COMMAND_FORM = "flow_command"
JSON_FORM = "flow_json"
SAVE_FORM = "flow_save"
PREVIEW = "flow_preview"
RESUME = "flow_resume"
APPLY_BLOCK = "apply"  # the root's only input: refusals of Apply are keyed to it
DEFAULT = "-"  # a static select cannot be emptied once chosen: "Bird's default" is an option
MAX_CONDITIONS = 10
TEXT_LIMIT = 3000  # Slack: plain_text_input max_length, section text
CODE_CHUNK = 2900
HEADLINES = {
    "answer": "answer — pick up the call",
    "hangup": "hangup — end the call",
    "playback": "playback — play audio files",
    "say": "say — speak text",
    "gather": "gather — collect keys or speech",
    "record": "record — record the caller",
    "bridge": "bridge — connect another number",
    "pause": "pause — wait a few seconds",
    "ringing": "ringing — signal ringing",
}
LABELS = {
    "maxNumKeys": "Keys to collect (at most)",
    "endKey": "End key",
    "pauseMilliseconds": "Pause between files (ms)",
    "pauseSeconds": "Pause (seconds)",
    "ringTimeout": "Ring timeout (seconds)",
    "maxDuration": "Maximum duration (seconds)",
    "timeout": "Timeout (seconds)",
    "maxLength": "Maximum length (seconds)",
    "media": "Audio file URLs",
    "from": "From (caller id)",
    "to": "To (number or SIP address)",
    "callFlow": "Then, on the bridged call (callFlow JSON)",
    "speechLocale": "Speech locale",
    "transcribeLocale": "Transcription locale",
    "ifMachineNotifyAfter": "If a machine: notify after",
    "hangupAfterBridge": "Hang up after the bridge",
    "recordStereo": "Record in stereo",
    "recordStart": "Start recording",
    "ringTone": "Ring tone",
}
SECTIONS = {
    "say": "Prompt: say (optional)",
    "playback": "Prompt: playback (optional)",
    "notification": "Notification (optional)",
    "amdSettings": "Answering-machine detection (optional)",
}


# -- small Block Kit helpers ------------------------------------------------------------------------


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text[:TEXT_LIMIT])


def _escape(text: str) -> str:
    """People's words inside mrkdwn: Slack reads &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _meta(**values: Any) -> str:
    return json.dumps({k: v for k, v in values.items() if v is not None}, separators=(",", ":"))


def _view(callback: str, title: str, blocks: Sequence[Block], meta: str, *, submit: str | None = None) -> View:
    return View(
        type="modal",
        callback_id=callback,
        title=plain(title[:24]),
        submit=plain(submit) if submit else None,
        close=plain("Back" if callback in (COMMAND_FORM, JSON_FORM, SAVE_FORM, PREVIEW) else "Close"),
        private_metadata=meta,
        blocks=list(blocks),
    )


# -- the root view ----------------------------------------------------------------------------------


def summary_of(wire: Mapping[str, Any]) -> str:
    """A stored command as one line (`say "Sorry, we…" en-GB`); drafts hold validated commands."""
    try:
        return validate_callflow([wire]).commands[0].summary()
    except InvalidInput:
        return str(wire.get("command") or "?")


def fingerprint(wire: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(wire, sort_keys=True).encode()).hexdigest()[:12]


def builder_view(draft: FlowDraft, channel: str | None, notice: str | None = None) -> View:
    count = len(draft.commands)
    blocks: list[Block] = [
        SectionBlock(text=_md(f"*Bird call* `{draft.label}` · {count}/{MAX_COMMANDS} commands, run in order")),
    ]
    if not count:
        blocks.append(ContextBlock(elements=[_md("No commands yet: *Add command* to start.")]))
    for i, wire in enumerate(draft.commands):
        # Each choice names the command it was drawn for (index + fingerprint): a menu from an
        # older drawing (a double click, a second window) must not act on whatever is there now.
        at = f"{i}:{fingerprint(wire)}"
        moves = [menu_option(f"edit:{at}", "Edit")]
        if i > 0:
            moves.append(menu_option(f"up:{at}", "Move up"))
        if i < count - 1:
            moves.append(menu_option(f"down:{at}", "Move down"))
        moves.append(menu_option(f"remove:{at}", "Remove"))
        blocks.append(
            SectionBlock(
                block_id=f"fb_cmd_{i}",
                text=_md(f"*{i + 1}.* {_escape(summary_of(wire))}"),
                accessory=OverflowMenuElement(action_id="fb_cmd", options=moves),
            )
        )
    tools = [ButtonElement(text="Add command", action_id="fb_add", style="primary")] if count < MAX_COMMANDS else []
    tools += [
        ButtonElement(text="Preview", action_id="fb_preview"),
        ButtonElement(text="JSON", action_id="fb_json"),
        ButtonElement(text="Save as…", action_id="fb_save"),
    ]
    blocks.append(ActionsBlock(block_id="fb_tools", elements=tools))
    if count >= MAX_COMMANDS:
        blocks.append(ContextBlock(elements=[_md(f"{MAX_COMMANDS} commands is Bird's limit: remove one to add.")]))
    if notice:
        blocks.append(ContextBlock(elements=[_md(notice)]))
    end = menu_option("end", "End the call after this flow (adds status: completed)")
    blocks.append(
        InputBlock(
            block_id=APPLY_BLOCK,
            label=plain("On Apply"),
            element=CheckboxesElement(
                action_id="fb_end", options=[end], initial_options=[end] if draft.end_call else None
            ),
            optional=True,
            dispatch_action=True,  # saved to the draft at once, so a redrawn list keeps it
        )
    )
    return _view(BUILDER, "callFlow builder", blocks, _meta(draft=draft.id, channel=channel), submit="Apply")


def notice_view(reply: Reply, callback: str = BUILDER) -> View:
    """A refusal (not allowed, not a Bird call, expired draft) shown inside the modal."""
    return _view(callback, "callFlow builder", message(reply)["blocks"], _meta())


def loading_view() -> View:
    return _view(BUILDER, "callFlow builder", [SectionBlock(text=_md(":hourglass_flowing_sand: Loading…"))], _meta())


def resume_view(draft: FlowDraft, channel: str | None) -> View:
    edited = draft.updated_at.strftime("%H:%M UTC")
    lines = [f"{i}. {_escape(summary_of(w))}" for i, w in enumerate(draft.commands, 1)]
    blocks: list[Block] = [
        SectionBlock(text=_md(f"You have an unfinished callFlow for `{draft.label}`.")),
        SectionBlock(text=_md("\n".join(lines))),
        ActionsBlock(
            block_id="fb_resume",
            elements=[
                ButtonElement(
                    text=f"Resume draft ({_count(len(draft.commands), 'command')}, edited {edited})"[:75],
                    action_id="fb_resume",
                    value=str(draft.id),
                    style="primary",
                ),
                ButtonElement(text="Start over", action_id="fb_restart", value=str(draft.id)),
            ],
        ),
        ContextBlock(elements=[_md("Drafts are kept for 24 hours.")]),
    ]
    meta = _meta(draft=draft.id, channel=channel, account=draft.account, call=draft.call_id)
    return _view(RESUME, "callFlow builder", blocks, meta)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


# -- a command's form, generated from the model ----------------------------------------------------


def _label(wire: str) -> str:
    return LABELS.get(wire) or re.sub(r"(?<!^)([A-Z])", r" \1", wire).capitalize()


def _hint(check: Any) -> str | None:
    if isinstance(check, IntCheck | NumberCheck):
        noun = "Whole number" if isinstance(check, IntCheck) else "Number"
        if check.maximum < 2**31 - 1:
            return f"{noun}, {check.minimum}–{check.maximum}."
        return f"{noun}, at least {check.minimum}."
    if isinstance(check, MediaCheck):
        return f"One http(s) URL per line, at most {check.maximum}."
    if isinstance(check, UrlCheck):
        return "An absolute http(s) URL."
    if isinstance(check, BridgeFlowCheck):
        return 'A JSON list of hangup, playback, say, gather or pause commands, e.g. [{"command":"hangup"}].'
    return None


def _element(check: Any, current: str | None) -> Any:
    if isinstance(check, IntCheck | NumberCheck):
        decimal = isinstance(check, NumberCheck)
        return NumberInputElement(
            action_id="value",
            is_decimal_allowed=decimal,
            min_value=str(check.minimum),
            max_value=str(check.maximum),
            initial_value=current or None,
        )
    if isinstance(check, ChoiceCheck):
        options = [menu_option(DEFAULT, "Bird's default"), *(menu_option(c, c) for c in check.choices)]
        initial = next((o for o in options if o.value == current), None)
        return StaticSelectElement(
            action_id="value", options=options, initial_option=initial, placeholder=plain("Bird's default")
        )
    if isinstance(check, BoolCheck):
        yes = menu_option("on", "Yes")
        return CheckboxesElement(action_id="value", options=[yes], initial_options=[yes] if current else None)
    multiline = isinstance(check, MediaCheck | BridgeFlowCheck)
    return PlainTextInputElement(
        action_id="value", initial_value=current or None, multiline=multiline, max_length=TEXT_LIMIT
    )


def _field_blocks(model: Any, values: Mapping[str, str], prefix: str, top: bool) -> list[Block]:
    blocks: list[Block] = []
    for spec in option_specs(model):
        key = prefix + spec.wire
        if isinstance(spec.check, NestedCheck):
            blocks.append(SectionBlock(text=_md(f"*{SECTIONS.get(spec.wire, spec.wire)}*")))
            blocks += _field_blocks(spec.check.model, values, key + ".", top=False)
            continue
        label = _label(spec.wire) if top else f"{prefix[:-1]} · {_label(spec.wire)}"
        hint = _hint(spec.check)
        blocks.append(
            InputBlock(
                block_id=f"o:{key}",
                label=plain(label),
                element=_element(spec.check, values.get(f"o:{key}")),
                hint=plain(hint) if hint else None,
                optional=not (top and spec.required),
            )
        )
    return blocks


def command_view(meta: Mapping[str, Any], name: str | None, values: Mapping[str, str]) -> View:
    """The command form: the command type (changing it redraws the form), its options, conditions."""
    types = [menu_option(n, HEADLINES.get(n, n)) for n in COMMAND_NAMES]
    blocks: list[Block] = [
        InputBlock(
            block_id="command",
            label=plain("Command"),
            element=StaticSelectElement(
                action_id="fb_type",
                options=types,
                initial_option=next((o for o in types if o.value == name), None),
                placeholder=plain("Pick a command"),
            ),
            dispatch_action=True,
        )
    ]
    if name is None:
        blocks.append(ContextBlock(elements=[_md("Pick a command: its options appear here.")]))
    else:
        model = command_model(name)
        fields = _field_blocks(model, values, "", top=True)
        if not fields:
            blocks.append(ContextBlock(elements=[_md(f"`{name}` takes no options.")]))
        blocks += fields
        blocks.append(SectionBlock(text=_md("*Conditions* — run this command only if all hold (optional)")))
        for k in range(int(meta.get("conds") or 1)):
            for spec in option_specs(Condition):
                blocks.append(
                    InputBlock(
                        block_id=f"c{k}:{spec.wire}",
                        label=plain(f"Condition {k + 1} · {spec.wire}"),
                        element=_element(spec.check, values.get(f"c{k}:{spec.wire}")),
                        optional=True,
                    )
                )
        if int(meta.get("conds") or 1) < MAX_CONDITIONS:
            blocks.append(
                ActionsBlock(
                    block_id="fb_conditions", elements=[ButtonElement(text="Add a condition", action_id="fb_cond")]
                )
            )
    editing = meta.get("index") is not None
    title = f"Edit command {int(meta['index']) + 1}" if editing else "Add a command"
    return _view(COMMAND_FORM, title, blocks, json.dumps(dict(meta)), submit="Save" if editing else "Add")


# -- JSON, preview, save -------------------------------------------------------------------------


def json_view(meta: Mapping[str, Any], commands: Sequence[Mapping[str, Any]]) -> View:
    text = json.dumps(list(commands), indent=1, ensure_ascii=False)
    if len(text) > TEXT_LIMIT:
        text = json.dumps(list(commands), ensure_ascii=False, separators=(",", ":"))
    too_long = len(text) > TEXT_LIMIT
    blocks: list[Block] = [
        InputBlock(
            block_id="json",
            label=plain("callFlow (JSON or YAML)"),
            element=PlainTextInputElement(
                action_id="value",
                multiline=True,
                max_length=TEXT_LIMIT,
                initial_value=None if too_long or not commands else text,
                placeholder=plain('[{"command":"say","options":{"text":"Hello"}}]'),
            ),
            hint=plain("The whole callFlow: a list of at most 20 commands, checked against Bird's schema."),
        )
    ]
    if too_long:
        blocks.append(
            ContextBlock(elements=[_md("The current flow is over 3,000 characters, Slack's limit for a field.")])
        )
    return _view(JSON_FORM, "callFlow as JSON", blocks, json.dumps(dict(meta)), submit="Use this")


def save_view(meta: Mapping[str, Any]) -> View:
    blocks: list[Block] = [
        InputBlock(
            block_id="name",
            label=plain("Name"),
            element=PlainTextInputElement(action_id="value", max_length=64, placeholder=plain("hold-music")),
            hint=plain("Lowercase words and dashes. Saving an existing name adds a new version."),
        ),
        ContextBlock(elements=[_md("Saved flows are shared by the team: `/call flows` lists them.")]),
    ]
    return _view(SAVE_FORM, "Save as…", blocks, json.dumps(dict(meta)), submit="Save")


def preview_view(draft: FlowDraft, body: Any | None, problem: str | None) -> View:
    if problem:
        return _view(PREVIEW, "Preview", [SectionBlock(text=_md(f":warning: {problem}"))], _meta())
    code = json.dumps(body, indent=2, ensure_ascii=False)
    chunks = [code[i : i + CODE_CHUNK] for i in range(0, len(code), CODE_CHUNK)]
    if len(chunks) > 90:  # Slack's 100 blocks: fall back to compact JSON, then cut
        code = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        chunks = [code[i : i + CODE_CHUNK] for i in range(0, len(code), CODE_CHUNK)][:90]
    blocks: list[Block] = [
        SectionBlock(text=_md(f"Apply sends exactly this JSON body to Bird (PATCH the call `{draft.label}`):")),
        *(SectionBlock(text=_md(f"```{chunk}```")) for chunk in chunks),
    ]
    return _view(PREVIEW, "Preview", blocks, _meta())
