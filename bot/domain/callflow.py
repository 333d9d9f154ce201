"""The Bird callFlow, as a validated domain model.

A callFlow is the list of commands Bird's Channels API runs on a live call, sent as
`PATCH /workspaces/{ws}/channels/{ch}/calls/{id}` with `{"callFlow": [...]}`. The source of truth is
the OpenAPI document shared/specs/bird-channels-update-call.openapi.json (`PatchCall`,
`CallFlowCommand` and the schemas it references); every option, enum and range in it is checked here.
Each command is a frozen dataclass whose fields carry their wire name and validator, in schema order,
so validation, `to_wire()` and the error paths all follow the schema's order.

Where the "Update a call" page (shared/specs/bird-update-call.md) disagrees with the schema, the
schema wins:

- Example 1 sends `answer` with `options` {media, loop, timeout}; `Answer` is an object with
  `additionalProperties: false` and no properties, so `answer` (and `ringing`) take no options.
  Those options are `playback`'s (the literal schema lets the example through only because its
  `oneOf`, below, does not tie options to the command: {media, loop, timeout} is exactly `Play`).
- Example 1 also sends `"status": "completed"` (hang up) together with a callFlow; that is the
  `PatchCall` body, not the callFlow, and is left to the provider code.
- The examples' curl line PATCHes `.../calls/{channelId}`; the path's last segment is the call id.
- The page says the commands are those "when initiating an outbound call"; this is the update schema.

Where the schema itself is loose or odd, and what this module does about it:

- The `oneOf` branches of `CallFlowCommand.options` carry `if` keywords (three objects, six `null`)
  but no `then`/`else`, so they constrain nothing, and `null` is not even a valid schema. The options
  object is therefore NOT tied to the command: it must match exactly one option schema, whatever the
  command. Two consequences are enforced here so that Bird's schema never refuses what we send:
  `"options": {}` matches six schemas (refused here; leave `options` out instead), and `gather` or
  `record` options using only `endKey`/`timeout` match both schemas (refused at the top level, with
  a hint to add another option; inside a bridge's callFlow `record` is not a branch, so they pass).
  Conversely, the schema would take `{"command": "say", "options": {"pauseSeconds": 2}}`; we refuse
  it, since the options must be the command's own.
- `Play.media` is `nullable` yet `required`: a non-empty list is required.
- `AmdSettings` gives defaults to fields it also lists as `required`: they are required.
- `CallFlowCommandCondition` requires nothing: a condition here needs `variable`, `operator` and
  `value` (a condition without them means nothing).
- `command` is not `required` by the schema: here it is.
- `say` without `text`, `playback` without `media`, `bridge` without `to` pass the schema when
  `options` is left out (options are optional); they are refused here, as their option schemas
  require those fields.
- `nullable` is honoured only where the schema says so (`options`, `conditions`, `ringTone`), and
  there null means "not given"; `to_wire()` never sends null, `"options": {}` or `"conditions": []`.

Where the schema is silent, callbot chooses:

- Integers without a stated range (loop, timeout, retries, maxLength, maxNumKeys, ...) must be
  ≥ 0 (`maxNumKeys` ≥ 1) and ≤ 2³¹−1, which is surely what Bird stores; a bigger value is a typo.
  Booleans and floats (even 2.0) are refused for integers.
- AMD numbers: `wordCount` ≥ 1, `speechTimeout` 0–10, `beepTimeout` ≥ 0, all finite.
- `media` entries and `notification.url` must be absolute http(s) URLs; a `notification` needs `url`.
- `text`, `voice`, `to` and `from` must not be blank; a condition's `value` may be empty.
- The top-level callFlow needs at least one command; an empty bridge `callFlow` means "none".
- `parse_callflow` reads at most 8,000 characters (a `/call` command's limit), nested at most
  MAX_DEPTH deep, with no NUL or lone surrogate and no YAML alias: each is refused before JSON or
  YAML is asked to read the text (bot/domain/callflow_text.py).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import urlsplit

from bot.domain.errors import InvalidInput
from bot.domain.storable import unstorable_in

MAX_COMMANDS = 20
MAX_MEDIA = 80
MAX_INT = 2**31 - 1
MAX_TEXT_CHARS = 8000
# The deepest a callFlow can be is 8: list > command > bridge options > callFlow > command > gather
# options > playback > media. Two more leave room for YAML read loosely by the pre-scan below.
MAX_DEPTH = 10
EXAMPLE = '[{"command":"hangup"}]'

KEYS = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#")
TTS_LOCALES = (
    "arb", "ar-AE", "bg-BG", "bn-IN", "ca-ES", "cs-CZ", "cy-GB", "cmn-CN", "da-DK", "de-CH", "de-DE", "de-AT",
    "el-GR", "en-AU", "en-GB", "en-IN", "en-NZ", "en-ZA", "en-US", "en-GB-WLS", "es-ES", "es-MX", "es-US", "eu-ES",
    "fi-FI", "fil-PH", "fr-FR", "fr-BE", "fr-CA", "gl-ES", "gu-IN", "he-IL", "hi-IN", "hu-HU", "id-ID", "is-IS",
    "it-IT", "ja-JP", "ko-KR", "lt-LT", "lv-LV", "ms-MY", "nl-BE", "nl-NL", "nb-NO", "pa-IN", "pl-PL", "pt-BR",
    "pt-PT", "ro-RO", "ru-RU", "sk-SK", "sr-RS", "sv-SE", "ta-IN", "te-IN", "tr-TR", "th-TH", "uk-UA", "vi-VN",
    "yue-CN",
)  # fmt: skip
SPEECH_LOCALES = ("de-DE", "en-AU", "en-GB", "en-US", "es-US", "it-IT", "ja-JP", "ko-KR", "pt-BR", "th-TH", "zh-CN")
TRANSCRIBE_LOCALES = (
    "ar-AE", "ar-SA", "zh-CN", "zh-TW", "da-DK", "nl-NL", "en-AU", "en-GB", "en-IN", "en-IE", "en-NZ", "en-AB",
    "en-ZA", "en-US", "en-WL", "fr-FR", "fr-CA", "fa-IR", "de-DE", "de-CH", "he-IL", "hi-IN", "id-ID", "it-IT",
    "ja-JP", "ko-KR", "pt-PT", "pt-BR", "ru-RU", "es-ES", "es-US", "sv-SE", "ta-IN", "te-IN", "th-TH", "tr-TR",
    "vi-VN",
)  # fmt: skip
RING_TONES = (
    "be", "ca", "cn", "cy", "cz", "de", "dk", "dz", "eg", "fi", "fr", "hk", "hu", "il", "in", "jp", "ko", "pk",
    "pl", "ro", "rs", "ru", "sa", "tr", "uk", "us",
)  # fmt: skip
GATHER_INPUTS = ("dtmf", "speech", "dtmf speech")
HANGUP_CAUSES = ("rejected", "busy")
RECORD_STARTS = ("record-from-answer", "record-from-ringing")
AMD_NOTIFY_AFTER = ("beep", "wordCount")
CONDITION_VARIABLES = ("keys", "speech")
CONDITION_OPERATORS = ("eq", "ne", "==", "!=", "contains")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OTHER_KINDS = {"date": "a date", "datetime": "a date and time", "bytes": "binary data", "set": "a set"}
_UNPRINTABLE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


# ---------------------------------------------------------------------------------------------
# Small helpers: how values are named in messages.


def kind_of(value: Any) -> str:
    """What a value is, in words, without ever printing a big or nested value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    # YAML also makes dates, times, sets and binary data.
    return _OTHER_KINDS.get(type(value).__name__, f"a {type(value).__name__}")


def clip(text: str, limit: int) -> str:
    """One line, at most `limit` characters, ending in … when cut."""
    text = _UNPRINTABLE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quoted(text: str) -> str:
    """A user's word inside backticks, safe to show: short, one line, no backticks of its own."""
    return "`" + clip(text, 40).replace("`", "'") + "`"


def _key_path(path: str, key: Any) -> str:
    if isinstance(key, str) and len(key) <= 40 and _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}"
    shown = json.dumps(clip(key, 40)) if isinstance(key, str) else clip(str(key), 40)
    return f"{path}[{shown}]"


def _did_you_mean(value: str, choices: Iterable[str]) -> str | None:
    """A close choice, matched case-insensitively (`en-gb` → `en-GB`, `sya` → `say`)."""
    by_lower = {choice.lower(): choice for choice in choices}
    match = difflib.get_close_matches(value.lower()[:60], list(by_lower), n=1, cutoff=0.6)
    return f"Did you mean `{by_lower[match[0]]}`?" if match else None


def _quote_hint(value: Any) -> str | None:
    """YAML reads `value: 1` as a number; the schema wants the text "1"."""
    if isinstance(value, int | float) and not isinstance(value, bool) and len(repr(value)) <= 20:
        return f'Put it in quotes: "{value}".'
    return None


def _one_of(choices: Sequence[str]) -> str:
    if len(choices) <= 12:
        return "Use one of: " + ", ".join(f"`{c}`" for c in choices) + "."
    return f"Use one of Bird's {len(choices)} values, e.g. " + ", ".join(f"`{c}`" for c in choices[:3]) + "."


# ---------------------------------------------------------------------------------------------
# Field validators: each is called with (value, path) and returns the value to keep, or raises
# InvalidInput. They are small frozen dataclasses rather than closures so that what they accept
# (kind, range, choices, nested model) can be read back: the Slack callFlow builder generates each
# command's form from them instead of repeating the schema.


@dataclass(frozen=True)
class IntCheck:
    kind: ClassVar[str] = "int"
    minimum: int = 0
    maximum: int = MAX_INT

    def __call__(self, value: Any, path: str) -> int:
        # bool is a subclass of int in Python, but `true` is no number of seconds.
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(path, f"must be a whole number, not {kind_of(value)}")
        _in_range(value, path, self.minimum, self.maximum)
        return value


@dataclass(frozen=True)
class NumberCheck:
    kind: ClassVar[str] = "number"
    minimum: int = 0
    maximum: int = MAX_INT

    def __call__(self, value: Any, path: str) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(path, f"must be a number, not {kind_of(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(path, "must be a finite number")
        _in_range(value, path, self.minimum, self.maximum)
        return value


def _int(minimum: int = 0, maximum: int = MAX_INT) -> IntCheck:
    return IntCheck(minimum, maximum)


def _number(minimum: int, maximum: int = MAX_INT) -> NumberCheck:
    return NumberCheck(minimum, maximum)


def _in_range(value: float, path: str, minimum: int, maximum: int) -> None:
    if value < minimum:
        raise InvalidInput(path, f"must be ≥ {minimum}")
    if value > maximum:
        raise InvalidInput(path, f"must be ≤ {maximum}")


@dataclass(frozen=True)
class BoolCheck:
    kind: ClassVar[str] = "bool"

    def __call__(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise InvalidInput(path, f"must be true or false, not {kind_of(value)}")
        return value


@dataclass(frozen=True)
class TextCheck:
    kind: ClassVar[str] = "text"
    blank_ok: bool = False

    def __call__(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise InvalidInput(path, f"must be text, not {kind_of(value)}", _quote_hint(value))
        if not self.blank_ok and not value.strip():
            raise InvalidInput(path, "must not be empty")
        return value


def _text(*, blank_ok: bool = False) -> TextCheck:
    return TextCheck(blank_ok)


@dataclass(frozen=True)
class ChoiceCheck:
    kind: ClassVar[str] = "choice"
    choices: tuple[str, ...]
    noun: str

    def __call__(self, value: Any, path: str) -> str:
        choices = self.choices
        if not isinstance(value, str):
            raise InvalidInput(path, f"must be text, not {kind_of(value)}", _quote_hint(value) or _one_of(choices))
        if value not in choices:
            raise InvalidInput(
                path, f"{_quoted(value)} is not a {self.noun}", _did_you_mean(value, choices) or _one_of(choices)
            )
        return value


def _choice(choices: Sequence[str], noun: str) -> ChoiceCheck:
    return ChoiceCheck(tuple(choices), noun)


@dataclass(frozen=True)
class UrlCheck:
    kind: ClassVar[str] = "url"

    def __call__(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise InvalidInput(path, f"must be a URL, not {kind_of(value)}")
        try:
            parts = urlsplit(value)
            absolute = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            absolute = False
        if not absolute:
            raise InvalidInput(path, "is not an absolute http(s) URL", "Write it like `https://example.com/hold.mp3`.")
        if _UNPRINTABLE.search(value):
            raise InvalidInput(path, "contains spaces or control characters", "Encode spaces in a URL as `%20`.")
        return value


_url = UrlCheck()
_bool = BoolCheck()


@dataclass(frozen=True)
class MediaCheck:
    kind: ClassVar[str] = "media"
    maximum: int = MAX_MEDIA

    def __call__(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise InvalidInput(
                path, f"must be a list of URLs, not {kind_of(value)}", 'Write it like ["https://example.com/a.mp3"].'
            )
        if not value:
            raise InvalidInput(path, "is empty", "Give at least one URL.")
        if len(value) > self.maximum:
            raise InvalidInput(path, f"has {len(value)} files; Bird accepts at most {self.maximum}")
        return tuple(_url(item, f"{path}[{i}]") for i, item in enumerate(value))


_media = MediaCheck()


@dataclass(frozen=True)
class NestedCheck:
    """An object option (gather's `say`/`playback`, bridge's `notification`/`amdSettings`)."""

    kind: ClassVar[str] = "nested"
    model: type[_Model]

    def __call__(self, value: Any, path: str) -> Any:
        return _parse_object(self.model, value, path)


def _nested(cls: type[_Model]) -> NestedCheck:
    return NestedCheck(cls)


@dataclass(frozen=True)
class BridgeFlowCheck:
    """A bridge's own callFlow: the restricted command set of `CallFlowCommandBridgeCall`."""

    kind: ClassVar[str] = "flow"

    def __call__(self, value: Any, path: str) -> tuple[Command, ...] | None:
        # An empty list is valid for the schema and plainly means "nothing after the bridge".
        return _parse_commands(value, path, _IN_BRIDGE) or None


_bridge_flow = BridgeFlowCheck()

Check = (
    IntCheck | NumberCheck | BoolCheck | TextCheck | ChoiceCheck | UrlCheck | MediaCheck | NestedCheck | BridgeFlowCheck
)


def _option(wire: str, check: Check, *, required: bool = False, nullable: bool = False) -> Any:
    """A dataclass field that knows its name on the wire and how to validate it.

    It returns `dataclasses.field(...)`; ruff's RUF009 cannot see that, hence its `noqa`s below."""
    metadata = {"wire": wire, "check": check, "required": required, "nullable": nullable}
    return field(metadata=metadata) if required else field(default=None, metadata=metadata)


# ---------------------------------------------------------------------------------------------
# The model. Field order is schema order: it is the order of checks and of keys on the wire.


class _Model:
    """Base of every object of a callFlow; NAME is the command (or key) it is known by."""

    NAME: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Any]]  # every subclass is a dataclass

    def describe(self) -> str:
        return self.NAME


@dataclass(frozen=True, kw_only=True)
class Condition(_Model):
    NAME: ClassVar[str] = "condition"
    variable: str = _option("variable", _choice(CONDITION_VARIABLES, "condition variable"), required=True)
    operator: str = _option("operator", _choice(CONDITION_OPERATORS, "condition operator"), required=True)
    value: str = _option("value", _text(blank_ok=True), required=True)

    def describe(self) -> str:
        value = clip(self.value, 20)
        shown = value if value and " " not in value else json.dumps(value, ensure_ascii=False)
        return f"{self.variable} {self.operator} {shown}"


@dataclass(frozen=True, kw_only=True)
class Answer(_Model):
    NAME: ClassVar[str] = "answer"


@dataclass(frozen=True, kw_only=True)
class Ringing(_Model):
    NAME: ClassVar[str] = "ringing"


@dataclass(frozen=True, kw_only=True)
class Playback(_Model):
    NAME: ClassVar[str] = "playback"
    media: tuple[str, ...] = _option("media", _media, required=True)
    loop: int | None = _option("loop", _int())
    timeout: int | None = _option("timeout", _int())
    pause_milliseconds: int | None = _option("pauseMilliseconds", _int(maximum=30_000))

    def describe(self) -> str:
        return f"playback {_count(len(self.media), 'file')}"


@dataclass(frozen=True, kw_only=True)
class Say(_Model):
    NAME: ClassVar[str] = "say"
    text: str = _option("text", _text(), required=True)
    locale: str | None = _option("locale", _choice(TTS_LOCALES, "text-to-speech locale"))
    voice: str | None = _option("voice", _text())
    loop: int | None = _option("loop", _int())
    timeout: int | None = _option("timeout", _int())

    def describe(self) -> str:
        extras = [clip(x, 20) for x in (self.locale, self.voice) if x]
        return " ".join([f"say {json.dumps(clip(self.text, 30), ensure_ascii=False)}", *extras])


@dataclass(frozen=True, kw_only=True)
class Gather(_Model):
    NAME: ClassVar[str] = "gather"
    max_num_keys: int | None = _option("maxNumKeys", _int(minimum=1))
    end_key: str | None = _option("endKey", _choice(KEYS, "phone key"))
    timeout: int | None = _option("timeout", _int())
    retries: int | None = _option("retries", _int())
    input: str | None = _option("input", _choice(GATHER_INPUTS, "gather input"))
    speech_locale: str | None = _option("speechLocale", _choice(SPEECH_LOCALES, "speech-recognition locale"))
    playback: Playback | None = _option("playback", _nested(Playback))  # noqa: RUF009
    say: Say | None = _option("say", _nested(Say))  # noqa: RUF009

    def describe(self) -> str:
        head = "gather" + (f" {_count(self.max_num_keys, 'key')}" if self.max_num_keys else "")
        extras = [f"end {self.end_key}" if self.end_key else "", self.input or ""]
        if self.say:
            extras.append(f"prompt {json.dumps(clip(self.say.text, 20), ensure_ascii=False)}")
        elif self.playback:
            extras.append(f"prompt {_count(len(self.playback.media), 'file')}")
        return ", ".join([head, *filter(None, extras)])


@dataclass(frozen=True, kw_only=True)
class Record(_Model):
    NAME: ClassVar[str] = "record"
    end_key: str | None = _option("endKey", _choice(KEYS, "phone key"))
    max_length: int | None = _option("maxLength", _int())
    timeout: int | None = _option("timeout", _int())
    beep: bool | None = _option("beep", _bool)
    transcribe: bool | None = _option("transcribe", _bool)
    transcribe_locale: str | None = _option("transcribeLocale", _choice(TRANSCRIBE_LOCALES, "transcription locale"))

    def describe(self) -> str:
        extras = [
            f"end {self.end_key}" if self.end_key else "",
            f"max {self.max_length}s" if self.max_length is not None else "",
            {True: "beep", False: "no beep", None: ""}[self.beep],
            "transcribe" + (f" {self.transcribe_locale}" if self.transcribe_locale else "") if self.transcribe else "",
        ]
        return ", ".join(["record", *filter(None, extras)])


@dataclass(frozen=True, kw_only=True)
class Hangup(_Model):
    NAME: ClassVar[str] = "hangup"
    cause: str | None = _option("cause", _choice(HANGUP_CAUSES, "hangup cause"))

    def describe(self) -> str:
        return "hangup" + (f" {self.cause}" if self.cause else "")


@dataclass(frozen=True, kw_only=True)
class Pause(_Model):
    NAME: ClassVar[str] = "pause"
    pause_seconds: int | None = _option("pauseSeconds", _int(maximum=30))

    def describe(self) -> str:
        return "pause" + (f" {self.pause_seconds}s" if self.pause_seconds is not None else "")


@dataclass(frozen=True, kw_only=True)
class Notification(_Model):
    NAME: ClassVar[str] = "notification"
    url: str = _option("url", _url, required=True)


@dataclass(frozen=True, kw_only=True)
class AmdSettings(_Model):
    NAME: ClassVar[str] = "amdSettings"
    enabled: bool = _option("enabled", _bool, required=True)
    word_count: float = _option("wordCount", _number(1), required=True)
    speech_timeout: float = _option("speechTimeout", _number(0, 10), required=True)
    speech_locale: str = _option("speechLocale", _choice(SPEECH_LOCALES, "speech-recognition locale"), required=True)
    beep_timeout: float | None = _option("beepTimeout", _number(0))
    if_machine_notify_after: str = _option(
        "ifMachineNotifyAfter", _choice(AMD_NOTIFY_AFTER, "notify-after choice"), required=True
    )


@dataclass(frozen=True, kw_only=True)
class Bridge(_Model):
    NAME: ClassVar[str] = "bridge"
    from_: str | None = _option("from", _text())
    to: str = _option("to", _text(), required=True)
    ring_timeout: int | None = _option("ringTimeout", _int(minimum=3, maximum=120))
    max_duration: int | None = _option("maxDuration", _int(minimum=1))
    ring_tone: str | None = _option("ringTone", _choice(RING_TONES, "ring tone"), nullable=True)
    hangup_after_bridge: bool | None = _option("hangupAfterBridge", _bool)
    record: bool | None = _option("record", _bool)
    record_start: str | None = _option("recordStart", _choice(RECORD_STARTS, "recording start"))
    record_stereo: bool | None = _option("recordStereo", _bool)
    call_flow: tuple[Command, ...] | None = _option("callFlow", _bridge_flow)
    notification: Notification | None = _option("notification", _nested(Notification))  # noqa: RUF009
    amd_settings: AmdSettings | None = _option("amdSettings", _nested(AmdSettings))  # noqa: RUF009

    def describe(self) -> str:
        extras = [f"from {clip(self.from_, 20)}" if self.from_ else "", "record" if self.record else ""]
        if self.call_flow:
            extras.append(f"then {_count(len(self.call_flow), 'command')}")
        return ", ".join([f"bridge to {clip(self.to, 30)}", *filter(None, extras)])


Options = Answer | Ringing | Playback | Say | Gather | Record | Bridge | Hangup | Pause

# In the schema's enum order, which is also the order of `oneOf` and of the "takes" lists.
_ALL: tuple[type[_Model], ...] = (Answer, Hangup, Playback, Say, Gather, Record, Bridge, Pause, Ringing)
_IN_BRIDGE: tuple[type[_Model], ...] = (Hangup, Playback, Say, Gather, Pause)  # CallFlowCommandEnumBridgeCall
_BY_NAME = {cls.NAME: cls for cls in _ALL}
_COMMAND_KEYS = ("command", "options", "conditions")


@dataclass(frozen=True)
class OptionSpec:
    """One field of a command's options (or of a nested object, or of a condition), as declared."""

    wire: str
    check: Check
    required: bool
    nullable: bool


def option_specs(model: type[_Model]) -> tuple[OptionSpec, ...]:
    """The fields of `model` in schema order, for code that builds forms from the model."""
    return tuple(
        OptionSpec(f.metadata["wire"], f.metadata["check"], f.metadata["required"], f.metadata["nullable"])
        for f in fields(model)
    )


COMMAND_NAMES: tuple[str, ...] = tuple(cls.NAME for cls in _ALL)
BRIDGE_COMMAND_NAMES: tuple[str, ...] = tuple(cls.NAME for cls in _IN_BRIDGE)


def command_model(name: str) -> type[_Model]:
    """The options model of a command name (KeyError for an unknown name)."""
    return _BY_NAME[name]


@dataclass(frozen=True)
class Command:
    """One command of a callFlow: its options (whose class names the command) and its conditions."""

    options: Options
    conditions: tuple[Condition, ...] = ()

    @property
    def name(self) -> str:
        return self.options.NAME

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"command": self.name}
        options = _to_wire(self.options)
        if options:  # `{}` matches several `oneOf` branches, so Bird's schema refuses it
            wire["options"] = options
        if self.conditions:
            wire["conditions"] = [_to_wire(c) for c in self.conditions]
        return wire

    def summary(self) -> str:
        line = self.options.describe()
        if self.conditions:
            line += " if " + " and ".join(c.describe() for c in self.conditions)
        return line


@dataclass(frozen=True)
class CallFlow:
    """An ordered, validated list of Bird callFlow commands (1 to 20)."""

    commands: tuple[Command, ...]

    def to_wire(self) -> list[dict[str, Any]]:
        """The `callFlow` array exactly as Bird expects it (no empty `options`, no nulls)."""
        return [c.to_wire() for c in self.commands]

    def summary(self) -> list[str]:
        """One line per command, for people: `say "Sorry, we…" en-GB`, `pause 2s`, `hangup`."""
        return [c.summary() for c in self.commands]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _to_wire(model: _Model) -> dict[str, Any]:
    wire: dict[str, Any] = {}
    for f in fields(model):
        value = getattr(model, f.name)
        if value is None:
            continue
        if isinstance(value, tuple) and value and isinstance(value[0], Command):
            value = [c.to_wire() for c in value]
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, _Model):
            value = _to_wire(value)
        wire[f.metadata["wire"]] = value
    return wire


# ---------------------------------------------------------------------------------------------
# Validation.

M = TypeVar("M", bound=_Model)


def _parse_object(cls: type[M], data: Any, path: str) -> M:
    """Checks unknown keys first (a typo then reads "did you mean", not "x is missing"), then every
    field in schema order."""
    if not isinstance(data, dict):
        raise InvalidInput(path, f"must be an object, not {kind_of(data)}")
    specs = [(f.name, f.metadata) for f in fields(cls)]
    wires = [meta["wire"] for _, meta in specs]
    owner = "a condition" if cls is Condition else f"`{cls.NAME}`"
    for key in data:
        if key not in wires:
            takes = f"{owner[0].upper()}{owner[1:]} takes: {', '.join(wires)}."
            hint = _did_you_mean(key, wires) if isinstance(key, str) else None
            raise InvalidInput(_key_path(path, key), f"is not an option of {owner}", hint or takes)
    values: dict[str, Any] = {}
    for name, meta in specs:
        where = f"{path}.{meta['wire']}"
        value = data.get(meta["wire"])
        if value is None and (meta["nullable"] or meta["wire"] not in data):
            if meta["required"]:
                raise InvalidInput(where, "is missing", f"{owner[0].upper()}{owner[1:]} needs `{meta['wire']}`.")
            continue
        if value is None:
            raise InvalidInput(where, "must not be null", "Leave it out to use Bird's default.")
        values[name] = meta["check"](value, where)
    return cls(**values)


def _fits(cls: type[_Model], keys: Collection[Any]) -> bool:
    """Would an options object with exactly these keys match `cls`'s option schema? Keys shared by
    several option schemas (endKey, timeout, loop) have the same type in each, so keys decide."""
    wires = {f.metadata["wire"] for f in fields(cls)}
    required = {f.metadata["wire"] for f in fields(cls) if f.metadata["required"]}
    return required <= set(keys) <= wires


def _refuse_ambiguous(cls: type[_Model], keys: Collection[Any], path: str, allowed: Sequence[type[_Model]]) -> None:
    """Bird's `oneOf` wants exactly one option schema to match, whatever the command says."""
    rivals = [other for other in allowed if other is not cls and _fits(other, keys)]
    if not rivals:
        return
    if not keys:
        raise InvalidInput(
            path, "is empty, which Bird's schema cannot tell apart from other commands' options", "Leave `options` out."
        )
    names = " and ".join(f"`{r.NAME}`" for r in rivals)
    theirs = {f.metadata["wire"] for r in rivals for f in fields(r)}
    hint = next(f.metadata["wire"] for f in fields(cls) if f.metadata["wire"] not in theirs)
    raise InvalidInput(
        path,
        f"has only options that {names} also takes, which Bird's schema refuses as ambiguous",
        f"Add another `{cls.NAME}` option, e.g. `{hint}`.",
    )


def _command_class(data: dict[Any, Any], path: str, allowed: Sequence[type[_Model]]) -> type[_Model]:
    names = [cls.NAME for cls in allowed]
    commands = ", ".join(names)
    if data.get("command") is None:
        raise InvalidInput(path, "is missing", f"Name one of: {commands}.")
    name = data["command"]
    if not isinstance(name, str):
        raise InvalidInput(path, f"must be a command name, not {kind_of(name)}", f"Use one of: {commands}.")
    cls = _BY_NAME.get(name)
    if cls is None:
        raise InvalidInput(
            path, f"{_quoted(name)} is not a command", _did_you_mean(name, names) or f"Use one of: {commands}."
        )
    if cls not in allowed:  # only a bridge's callFlow allows fewer commands
        raise InvalidInput(path, f"`{name}` cannot be used inside a bridge", f"A bridge's callFlow takes: {commands}.")
    return cls


def _parse_command(data: Any, path: str, allowed: Sequence[type[_Model]]) -> Command:
    if not isinstance(data, dict):
        raise InvalidInput(
            path, f"must be a command object, not {kind_of(data)}", 'Write it like {"command":"hangup"}.'
        )
    cls = _command_class(data, f"{path}.command", allowed)
    for key in data:
        if key not in _COMMAND_KEYS:
            hint = _did_you_mean(key, _COMMAND_KEYS) if isinstance(key, str) else None
            raise InvalidInput(
                _key_path(path, key),
                "is not part of a command",
                hint or "A command has only `command`, `options` and `conditions`.",
            )
    raw = data.get("options")
    if raw is not None and not isinstance(raw, dict):
        raise InvalidInput(f"{path}.options", f"must be an object, not {kind_of(raw)}")
    if raw and not fields(cls):
        raise InvalidInput(f"{path}.options", f"`{cls.NAME}` takes no options", "Leave `options` out.")
    options = _parse_object(cls, raw or {}, f"{path}.options")
    if raw is not None:
        _refuse_ambiguous(cls, list(raw), f"{path}.options", allowed)
    conditions = data.get("conditions")
    if conditions is not None and not isinstance(conditions, list):
        raise InvalidInput(f"{path}.conditions", f"must be a list of conditions, not {kind_of(conditions)}")
    parsed = tuple(_parse_object(Condition, c, f"{path}.conditions[{i}]") for i, c in enumerate(conditions or ()))
    return Command(cast(Options, options), parsed)


def _parse_commands(data: Any, path: str, allowed: Sequence[type[_Model]]) -> tuple[Command, ...]:
    if not isinstance(data, list):
        raise InvalidInput(path, f"must be a list of commands, not {kind_of(data)}", f"Write it like {EXAMPLE}.")
    if len(data) > MAX_COMMANDS:
        raise InvalidInput(path, f"has {len(data)} commands; Bird accepts at most {MAX_COMMANDS}")
    return tuple(_parse_command(item, f"{path}[{i}]", allowed) for i, item in enumerate(data))


def validate_callflow(data: Any) -> CallFlow:
    """Validates already-decoded data; raises InvalidInput whose word is the path, e.g.
    `callFlow[1].options.pauseSeconds` with why `must be ≤ 30`."""
    if isinstance(data, dict) and "command" in data:
        raise InvalidInput("callFlow", "is a single command, not a list of commands", "Wrap it in `[` `]`.")
    commands = _parse_commands(data, "callFlow", _ALL)
    if not commands:
        raise InvalidInput("callFlow", "has no commands", f"Give at least one, e.g. {EXAMPLE}.")
    flow = CallFlow(commands)
    # Walked once valid (so bounded and without cycles): "\u0000" in JSON, say, decodes to what
    # neither Bird nor the audit can take.
    bad = unstorable_in(flow.to_wire())
    if bad is not None:
        raise InvalidInput("callFlow", f"contains {bad}", "Remove it; it cannot be sent or stored.")
    return flow
