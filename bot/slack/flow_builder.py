"""The callFlow builder: a Slack modal that builds a Bird callFlow command by command, no JSON typed.

Views (slack_sdk models, so Slack's limits are checked as they are built):

- `flow_builder`, the root: one section per command (summary + overflow menu: Edit, Move up, Move
  down, Remove), buttons Add command / Preview / JSON / Save as…, the "On Apply" input (end the call
  too) and the Apply submit button. 20 commands take 20 blocks: far below Slack's 100.
- pushed on top of it, one at a time (so the stack never exceeds root + 1 of Slack's root + 2):
  `flow_command` (a command's form), `flow_json`, `flow_save`, `flow_preview`.
- `flow_resume`: the offer to resume a draft, turned into the builder in place.

The draft lives in the database (`flow_drafts`); `private_metadata` holds only its id, the channel
(a view submission has no response_url) and, in a pushed view, the root view's id, the index being
edited and the number of condition rows. Each command's form is generated from the model in
bot/domain/callflow.py (`option_specs`): number inputs carry the schema's range, enums become static
selects, booleans checkboxes, gather's `say`/`playback` and bridge's `notification`/`amdSettings`
are fields of the same form, and bridge's own callFlow is a JSON field (a third view would break
Slack's stack limit). Every value is validated by the model; errors land under the field's block.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
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
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.actions import ApplyFlow, CallTarget
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
    parse_callflow,
    validate_callflow,
)
from bot.domain.errors import InvalidInput
from bot.domain.grammar import CallCommand
from bot.domain.replies import Reply, Tone
from bot.service.core import BuilderOpening, FlowDraft, Invocation, Service
from bot.slack.forms import command_line
from bot.slack.modal_io import INTERNAL_ERROR, deliver, modal_invocation, run_from_modal, view_metadata
from bot.slack.render import message
from bot.slack.views import BUILD_FLOW, menu_option, plain, read_state

log = logging.getLogger(__name__)

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


STALE = "The list had changed since that menu was drawn, so nothing was done. Here it is as it is now."


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


def values_of(wire: Mapping[str, Any]) -> dict[str, str]:
    """A stored command → the form's block values (to edit it). An explicit `false` shows as unticked,
    which the form sends as "Bird's default": the one thing only the JSON editor can say."""
    values = _option_values(command_model(str(wire["command"])), wire.get("options") or {}, "")
    for k, condition in enumerate(wire.get("conditions") or ()):
        for key, value in condition.items():
            values[f"c{k}:{key}"] = str(value)
    return values


def _option_values(model: Any, options: Mapping[str, Any], prefix: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for spec in option_specs(model):
        value = options.get(spec.wire)
        key = prefix + spec.wire
        if value is None:
            continue
        if isinstance(spec.check, NestedCheck):
            values.update(_option_values(spec.check.model, value, key + "."))
        elif isinstance(spec.check, BoolCheck):
            if value:
                values[f"o:{key}"] = "on"
        elif isinstance(spec.check, MediaCheck):
            values[f"o:{key}"] = "\n".join(value)
        elif isinstance(spec.check, BridgeFlowCheck):
            values[f"o:{key}"] = json.dumps(value, ensure_ascii=False)
        else:
            values[f"o:{key}"] = str(value)
    return values


class FormProblems(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def command_from_values(name: str | None, values: Mapping[str, str], slots: int) -> dict[str, Any]:
    """The form's values → one command in wire form, validated by the model (FormProblems keyed by
    block id otherwise)."""
    if not name:
        raise FormProblems({"command": "Pick a command."})
    errors: dict[str, str] = {}
    options = _options_from(command_model(name), values, "", errors)
    conditions, used = [], []
    for k in range(slots):
        got = {s.wire: values.get(f"c{k}:{s.wire}") for s in option_specs(Condition)}
        got = {key: v for key, v in got.items() if v is not None and v != DEFAULT}
        if got:
            got.setdefault("value", "")  # the value may be empty; variable and operator may not
            conditions.append(got)
            used.append(k)
    if errors:
        raise FormProblems(errors)
    wire: dict[str, Any] = {"command": name}
    if options:
        wire["options"] = options
    if conditions:
        wire["conditions"] = conditions
    try:
        return validate_callflow([wire]).commands[0].to_wire()
    except InvalidInput as error:
        block, message_ = _block_for(error, _option_blocks(command_model(name), ""), used)
        raise FormProblems({block: message_}) from None


def _options_from(model: Any, values: Mapping[str, str], prefix: str, errors: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for spec in option_specs(model):
        key = prefix + spec.wire
        check = spec.check
        if isinstance(check, NestedCheck):
            nested = _options_from(check.model, values, key + ".", errors)
            if nested:
                # An object given at all must say true or false where the schema requires it.
                for sub in option_specs(check.model):
                    if isinstance(sub.check, BoolCheck) and sub.required:
                        nested.setdefault(sub.wire, False)
                options[spec.wire] = nested
            continue
        raw = values.get(f"o:{key}")
        if raw is None or raw == DEFAULT or (not raw.strip() and not isinstance(check, BoolCheck)):
            continue
        try:
            options[spec.wire] = _typed(check, raw)
        except ValueError as error:
            errors[f"o:{key}"] = str(error)
    return options


def _typed(check: Any, raw: str) -> Any:
    """A form string → the JSON value the model checks (ValueError: the person's mistake)."""
    if isinstance(check, BoolCheck):
        return True
    if isinstance(check, IntCheck):
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError("Give a whole number.") from None
    if isinstance(check, NumberCheck):
        try:
            number = float(raw.strip())
        except ValueError:
            raise ValueError("Give a number.") from None
        return int(number) if number.is_integer() and "." not in raw else number
    if isinstance(check, MediaCheck):
        return [line.strip() for line in raw.splitlines() if line.strip()]
    if isinstance(check, BridgeFlowCheck):
        try:
            return json.loads(raw)
        except ValueError as error:
            raise ValueError(f"This is not valid JSON ({error}).") from None
    if isinstance(check, UrlCheck):
        return raw.strip()
    return raw


_INDEX = re.compile(r"\[\d+\]")


def _option_blocks(model: Any, prefix: str) -> list[str]:
    """The form's option block ids, in form order."""
    blocks: list[str] = []
    for spec in option_specs(model):
        if isinstance(spec.check, NestedCheck):
            blocks += _option_blocks(spec.check.model, f"{prefix}{spec.wire}.")
        else:
            blocks.append(f"o:{prefix}{spec.wire}")
    return blocks


def _block_for(error: InvalidInput, blocks: list[str], used: list[int]) -> tuple[str, str]:
    """`callFlow[0].options.say.text` → block `o:say.text`; `callFlow[0].conditions[1].value` → the
    block of the second condition row actually filled in. Deeper paths (a media entry, the bridge's
    callFlow) stay in the message, so the person knows which item is wrong."""
    path = re.sub(r"^callFlow\[0\]\.?", "", error.word or "")
    why = error.why if error.why.endswith((".", "?", "!")) else error.why + "."
    text = f"{why} {error.fix}" if error.fix else why
    condition = re.match(r"conditions\[(\d+)\](?:\.(\w+))?", path)
    if condition and int(condition.group(1)) < len(used):
        return f"c{used[int(condition.group(1))]}:{condition.group(2) or 'variable'}", text
    if path.startswith("options."):
        parts = path.removeprefix("options.").split(".")
        for n in range(len(parts), 0, -1):
            key = ".".join(_INDEX.sub("", p) for p in parts[:n])
            block = f"o:{key}"
            if block in blocks:
                rest = path.removeprefix("options.")
                shown = f"`{rest}`: {text}" if rest != key else text
                return block, shown
    # `callFlow[0].options` itself (options Bird's schema finds ambiguous): under the first option.
    return (blocks[0] if blocks else "command"), text


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


# -- listeners --------------------------------------------------------------------------------------

EXPIRED = Reply(
    Tone.INFO,
    "This callFlow draft has expired or was already applied.",
    ("Run `/call flow ACCOUNT:CALL-ID` again to start a new one.",),
)


def _user(body: Mapping[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "unknown")


def _draft_id(meta: Mapping[str, Any]) -> int:
    try:
        return int(meta.get("draft") or 0)
    except (TypeError, ValueError):
        return 0


async def open_builder(
    client: AsyncWebClient,
    service: Service,
    inv: Invocation,
    target: CallTarget,
    *,
    trigger_id: str | None = None,
    view_id: str | None = None,
) -> None:
    """From `/call flow CALL` (a trigger: `views.open` first) or the action modal's button (its view
    is turned into the builder). Refusals are shown in the modal; the service audits them."""
    try:
        if trigger_id is not None:
            opened = await client.views_open(trigger_id=trigger_id, view=loading_view())
            view_id = (opened.get("view") or {}).get("id")
        opening = await service.open_builder(inv, target)
        view = await _first_view(service, inv, opening)
        await client.views_update(view_id=view_id, view=view)
    except Exception:
        log.exception("could not open the callFlow builder for %s", inv.user_id)


async def _first_view(service: Service, inv: Invocation, opening: BuilderOpening | Reply) -> View:
    if isinstance(opening, Reply):
        return notice_view(opening)
    if opening.earlier is not None and opening.earlier.commands:
        return resume_view(opening.earlier, inv.channel_id)
    draft = await service.start_draft(inv.user_id, opening.account, opening.call_id)
    return builder_view(draft, inv.channel_id)


def register_flow_builder(app: AsyncApp, service: Service) -> None:
    """Registered before the app's catch-all listeners (Bolt runs the first listener that matches)."""

    async def load(body: Mapping[str, Any]) -> tuple[dict[str, Any], FlowDraft | None]:
        meta = view_metadata(body.get("view") or {})
        return meta, await service.draft(_draft_id(meta), _user(body))

    async def redraw_root(
        client: AsyncWebClient, root: str | None, draft: FlowDraft, meta: Mapping[str, Any], notice: str | None = None
    ) -> None:
        await client.views_update(view_id=root, view=builder_view(draft, meta.get("channel"), notice))

    @app.action(BUILD_FLOW)
    async def on_build(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """The action modal's "Build the callFlow": the modal becomes the builder (no push, so the
        command form is the only view ever pushed)."""
        await ack()
        view = body.get("view") or {}
        state = read_state(view)
        user = body.get("user") or {}
        channel = view_metadata(view).get("channel")
        inv = Invocation("modal", str(user.get("id") or "unknown"), "", user.get("username"), channel_id=channel)
        call_id = (state.get("call_id") or "").strip()
        if not state.account or not call_id:
            reply = Reply(Tone.INVALID, "Give the account and the call's id first.", ("Then click the button again.",))
            await _safe(client.views_push(trigger_id=body.get("trigger_id"), view=notice_view(reply, PREVIEW)))
            return
        await open_builder(client, service, inv, CallTarget(state.account, call_id), view_id=view.get("id"))

    @app.action("fb_resume")
    @app.action("fb_restart")
    async def on_resume(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        try:
            meta, draft = await load(body)
            view = body.get("view") or {}
            if action.get("action_id") == "fb_restart" or draft is None:
                draft = await service.start_draft(_user(body), str(meta.get("account")), str(meta.get("call")))
            await client.views_update(view_id=view.get("id"), view=builder_view(draft, meta.get("channel")))
        except Exception:
            log.exception("could not resume a callFlow draft")

    @app.action("fb_end")
    async def on_end_call(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        try:
            _, draft = await load(body)
            if draft is not None:
                ended = read_state(body.get("view") or {}).get(APPLY_BLOCK) is not None
                await service.update_draft(draft, end_call=ended)
        except Exception:
            log.exception("could not save the end-the-call choice")

    @app.action("fb_cmd")
    async def on_command_menu(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        try:
            meta, draft = await load(body)
            view = body.get("view") or {}
            if draft is None:
                await client.views_update(view_id=view.get("id"), view=notice_view(EXPIRED))
                return
            verb, _, at = str((action.get("selected_option") or {}).get("value") or "").partition(":")
            number, _, drawn = at.partition(":")
            i = int(number) if number.isdigit() else -1
            commands = list(draft.commands)
            if not 0 <= i < len(commands) or fingerprint(commands[i]) != drawn:
                await redraw_root(client, view.get("id"), draft, meta, notice=STALE)
                return
            if verb == "edit":
                wire = commands[i]
                form_meta = {
                    **meta,
                    "root": view.get("id"),
                    "index": i,
                    "fp": drawn,
                    "conds": max(1, len(wire.get("conditions") or ())),
                }
                await client.views_push(
                    trigger_id=body.get("trigger_id"), view=command_view(form_meta, wire["command"], values_of(wire))
                )
                return
            if verb == "remove":
                del commands[i]
            elif verb == "up" and i > 0:
                commands[i - 1], commands[i] = commands[i], commands[i - 1]
            elif verb == "down" and i < len(commands) - 1:
                commands[i + 1], commands[i] = commands[i], commands[i + 1]
            draft = await service.update_draft(draft, commands=commands)
            await redraw_root(client, view.get("id"), draft, meta)
        except Exception:
            log.exception("could not change the callFlow draft")

    @app.action("fb_add")
    @app.action("fb_json")
    @app.action("fb_save")
    @app.action("fb_preview")
    async def on_tool(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        try:
            which = action.get("action_id")
            view = body.get("view") or {}
            meta = {**view_metadata(view), "root": view.get("id")}
            trigger = body.get("trigger_id")
            if which == "fb_add":  # no database needed: push at once, within the trigger's 3 s
                await client.views_push(trigger_id=trigger, view=command_view({**meta, "conds": 1}, None, {}))
                return
            draft = await service.draft(_draft_id(meta), _user(body))
            if draft is None:
                await client.views_push(trigger_id=trigger, view=notice_view(EXPIRED, PREVIEW))
            elif which == "fb_json":
                await client.views_push(trigger_id=trigger, view=json_view(meta, draft.commands))
            elif which == "fb_save":
                await client.views_push(trigger_id=trigger, view=save_view(meta))
            else:
                await client.views_push(trigger_id=trigger, view=_preview(service, draft))
        except Exception:
            log.exception("could not open a callFlow builder view")

    @app.action("fb_type")
    @app.action("fb_cond")
    async def on_form_change(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Picking the command type, or asking for one more condition row, redraws the form with what
        was typed so far."""
        await ack()
        try:
            view = body.get("view") or {}
            meta = view_metadata(view)
            state = read_state(view)
            if action.get("action_id") == "fb_cond":
                meta["conds"] = min(MAX_CONDITIONS, int(meta.get("conds") or 1) + 1)
            name = (state.values or {}).get("command")
            await client.views_update(
                view_id=view.get("id"), hash=view.get("hash"), view=command_view(meta, name, state.values or {})
            )
        except Exception:
            log.exception("could not redraw the command form")

    @app.view(COMMAND_FORM)
    async def on_command_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        try:
            meta, draft = await load(body)
            values = read_state(view).values or {}
            if draft is None:
                await ack(response_action="errors", errors={"command": EXPIRED.title})
                return
            commands = list(draft.commands)
            index = meta.get("index")
            if index is None and len(commands) >= MAX_COMMANDS:
                limit = f"The callFlow already has {MAX_COMMANDS} commands, Bird's limit: remove one first."
                await ack(response_action="errors", errors={"command": limit})
                return
            try:
                wire = command_from_values(values.get("command"), values, int(meta.get("conds") or 1))
            except FormProblems as problems:
                await ack(response_action="errors", errors=problems.errors)
                return
            if index is not None and (
                not 0 <= int(index) < len(commands) or fingerprint(commands[int(index)]) != meta.get("fp")
            ):
                changed = "This command changed or moved since the form opened (another window?): close and edit again."
                await ack(response_action="errors", errors={"command": changed})
                return
            await ack()
            if index is not None:
                commands[int(index)] = wire
            else:
                commands.append(wire)
            draft = await service.update_draft(draft, commands=commands)
            await redraw_root(client, meta.get("root"), draft, meta)
        except Exception:
            log.exception("could not save a command to the callFlow draft")
            await _safe(ack(response_action="errors", errors={"command": INTERNAL_ERROR.title}))

    @app.view(JSON_FORM)
    async def on_json_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        try:
            meta, draft = await load(body)
            if draft is None:
                await ack(response_action="errors", errors={"json": EXPIRED.title})
                return
            try:
                flow = parse_callflow(read_state(body.get("view") or {}).get("json") or "")
            except InvalidInput as error:  # the message names the path: callFlow[2].options.pauseSeconds
                await ack(response_action="errors", errors={"json": error.message[:2000]})
                return
            await ack()
            draft = await service.update_draft(draft, commands=flow.to_wire())
            await redraw_root(client, meta.get("root"), draft, meta)
        except Exception:
            log.exception("could not take a callFlow written as JSON")
            await _safe(ack(response_action="errors", errors={"json": INTERNAL_ERROR.title}))

    @app.view(SAVE_FORM)
    async def on_save_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        try:
            meta, draft = await load(body)
            if draft is None:
                await ack(response_action="errors", errors={"name": EXPIRED.title})
                return
            try:
                flow = validate_callflow(list(draft.commands))
            except InvalidInput as error:
                await ack(response_action="errors", errors={"name": f"Nothing to save yet: {error.message}"[:2000]})
                return
            name = (read_state(view).get("name") or "").strip()
            inv = modal_invocation(body, view, meta.get("channel"))
            inv = replace(inv, text=f"flows save {name} <callFlow>")
            reply = await service.save_flow(inv, name, flow)
            if reply.tone in (Tone.INVALID, Tone.DENIED):
                await ack(response_action="errors", errors={"name": " ".join(reply.lines)[:2000] or reply.title})
                return
            await ack()
            await redraw_root(client, meta.get("root"), draft, meta, notice=f":floppy_disk: {reply.title}")
            await deliver(client, inv, reply)
        except Exception:
            log.exception("could not save a callFlow from the builder")
            await _safe(ack(response_action="errors", errors={"name": INTERNAL_ERROR.title}))

    @app.view(BUILDER)
    async def on_apply(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        meta = view_metadata(view)
        inv = modal_invocation(body, view, meta.get("channel"))
        try:
            await _apply(ack, client, service, inv, meta, view)
        except Exception:
            log.exception("could not apply a callFlow from the builder")
            await _safe(ack(response_action="errors", errors={APPLY_BLOCK: INTERNAL_ERROR.title}))


def _preview(service: Service, draft: FlowDraft) -> View:
    try:
        flow = validate_callflow(list(draft.commands))
    except InvalidInput as error:
        problem = "Add a command first." if not draft.commands else error.message
        return preview_view(draft, None, problem)
    body = service.flow_request_body(draft.account, draft.call_id, flow, end_call=draft.end_call)
    return preview_view(draft, body, None)


async def _apply(
    ack: AsyncAck, client: AsyncWebClient, service: Service, inv: Invocation, meta: Mapping[str, Any], view: Any
) -> None:
    """Apply: permission checked again (a grant may have gone while the modal was open), audited
    with the full callFlow; refusals stay in the modal under "On Apply", the outcome is delivered
    like the action modal's (ephemeral in the channel, else a DM)."""
    draft = await service.draft(_draft_id(meta), inv.user_id)
    if draft is None:
        await ack(response_action="errors", errors={APPLY_BLOCK: f"{EXPIRED.title} {EXPIRED.lines[0]}"})
        return
    end_call = read_state(view).get(APPLY_BLOCK) is not None
    if end_call != draft.end_call:
        draft = await service.update_draft(draft, end_call=end_call)
    try:
        flow = validate_callflow(list(draft.commands))
    except InvalidInput as error:
        text = "Add at least one command first." if not draft.commands else error.message
        # Audited before answering, like every attempt.
        await _safe(service.record_invalid(replace(inv, text=f"flow {draft.label} <callFlow>"), error, "flow"))
        await ack(response_action="errors", errors={APPLY_BLOCK: text[:2000]})
        return
    action = ApplyFlow(flow, end_call=end_call)
    command = CallCommand(CallTarget(draft.account, draft.call_id), action, False, frozenset())
    inv = replace(inv, text=command_line(command) + (" (then end the call)" if end_call else ""))

    async def discard() -> None:
        await service.discard_draft(draft.id)  # applied: reopening the builder starts afresh

    await run_from_modal(
        service, client, ack, inv, command, block_for=lambda _reply: APPLY_BLOCK, after_success=discard
    )


async def _safe(work: Any) -> None:
    try:
        await work
    except Exception:
        log.exception("a Slack call of the callFlow builder failed")
