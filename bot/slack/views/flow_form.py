"""The callFlow builder's command form, read back: Slack's field values → one command in wire form,
checked by the model in bot/domain/callflow.py, with each problem keyed to the block it belongs
under (`response_action: errors` only works with input block ids); and a stored command → the
form's values, to edit it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from bot.domain.callflow import (
    BoolCheck,
    BridgeFlowCheck,
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
from bot.slack.views.flow_builder import DEFAULT


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
