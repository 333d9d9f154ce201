"""The Bird callFlow model (bot/domain/callflow.py): every command and option, every refusal with its exact
path and reason, and properties checked against Bird's own OpenAPI schema
(shared/specs/bird-channels-update-call.openapi.json, read the way the fake Bird reads it)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.callflow import (
    AMD_NOTIFY_AFTER,
    CONDITION_OPERATORS,
    CONDITION_VARIABLES,
    GATHER_INPUTS,
    HANGUP_CAUSES,
    KEYS,
    MAX_COMMANDS,
    MAX_DEPTH,
    MAX_INT,
    MAX_MEDIA,
    RECORD_STARTS,
    RING_TONES,
    SPEECH_LOCALES,
    TRANSCRIBE_LOCALES,
    TTS_LOCALES,
    CallFlow,
    validate_callflow,
)
from bot.domain.callflow_text import check_nesting, parse_callflow
from bot.domain.errors import InvalidInput

# A copy of ../shared/specs/bird-channels-update-call.openapi.json, so a checkout tests on its own.
SPEC = Path(__file__).resolve().parent / "specs" / "bird-channels-update-call.openapi.json"
needs_spec = pytest.mark.skipif(not SPEC.exists(), reason=f"Bird's OpenAPI document is not at {SPEC}")
PROPERTY = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
URL = "https://example.com/hold.mp3"
AMD = {"enabled": True, "wordCount": 5, "speechTimeout": 3, "speechLocale": "en-US", "ifMachineNotifyAfter": "beep"}


def schema_errors(flow: Any) -> list[str]:
    """Bird's verdict on `{"callFlow": flow}`: [] when its schema accepts the body."""
    from tests.fakes.bird import schema_errors as bird_schema_errors  # needs shared/specs

    return bird_schema_errors({"callFlow": flow})


def refusal(data: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validate_callflow(data)
    return caught.value


def walk(node: Any) -> list[Any]:
    """Every value inside a wire document, containers included."""
    found = [node]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        found.extend(walk(child))
    return found


# ---------------------------------------------------------------------------------------------
# The spec page's examples.

PAGE_EXAMPLE_2 = [
    {"command": "ringing"},
    {"command": "pause", "options": {"pauseSeconds": 2}},
    {"command": "answer"},
    {
        "command": "say",
        "options": {
            "text": "Sorry, we don't have available agents now. Please call later. GoodBye.",
            "locale": "en-GB",
            "voice": "male",
        },
    },
    {"command": "hangup"},
]


def test_page_example_2_is_accepted_and_sent_unchanged() -> None:
    flow = validate_callflow(PAGE_EXAMPLE_2)
    assert flow.to_wire() == PAGE_EXAMPLE_2
    assert flow.summary() == [
        "ringing",
        "pause 2s",
        "answer",
        'say "Sorry, we don\'t have availabl…" en-GB male',
        "hangup",
    ]


def test_page_example_1_puts_options_on_answer_which_its_schema_forbids() -> None:
    error = refusal([{"command": "answer", "options": {"media": ["string"], "loop": 0, "timeout": 0}}])
    assert (error.word, error.why, error.fix) == (
        "callFlow[0].options",
        "`answer` takes no options",
        "Leave `options` out.",
    )


def test_page_example_1_corrected() -> None:
    # Those options are playback's; "string" is no URL, so a real one stands in.
    data = [{"command": "answer"}, {"command": "playback", "options": {"media": [URL], "loop": 0, "timeout": 0}}]
    flow = validate_callflow(data)
    assert flow.to_wire() == data
    assert flow.summary() == ["answer", "playback 1 file"]


@needs_spec
def test_page_examples_against_the_schema() -> None:
    assert schema_errors(PAGE_EXAMPLE_2) == []
    # Read literally, the schema takes example 1: its `oneOf` does not tie options to the command,
    # and {media, loop, timeout} is exactly `Play`. `Answer` itself allows no property at all.
    assert schema_errors([{"command": "answer", "options": {"media": ["string"], "loop": 0, "timeout": 0}}]) == []
    assert schema_errors([{"command": "answer", "options": {"media": ["string"], "loop": 0, "timeout": 0, "x": 1}}])


# ---------------------------------------------------------------------------------------------
# Every command, with its options: (command as given, summary line).

VALID_COMMANDS: list[tuple[dict[str, Any], str]] = [
    ({"command": "answer"}, "answer"),
    ({"command": "answer", "options": None}, "answer"),
    ({"command": "ringing"}, "ringing"),
    ({"command": "playback", "options": {"media": [URL, "http://cdn.example.org/b.wav"]}}, "playback 2 files"),
    (
        {"command": "playback", "options": {"media": [URL], "loop": 3, "timeout": 0, "pauseMilliseconds": 30000}},
        "playback 1 file",
    ),
    ({"command": "say", "options": {"text": "Hello"}}, 'say "Hello"'),
    (
        {"command": "say", "options": {"text": "Sorry, we are closed today.", "locale": "en-GB"}},
        'say "Sorry, we are closed today." en-GB',
    ),
    (
        {
            "command": "say",
            "options": {"text": "x " * 40, "locale": "cy-GB", "voice": "female", "loop": 2, "timeout": 5},
        },
        'say "x x x x x x x x x x x x x x x…" cy-GB female',
    ),
    ({"command": "gather", "options": {"maxNumKeys": 4, "endKey": "#"}}, "gather 4 keys, end #"),
    ({"command": "gather", "options": {"maxNumKeys": 1}}, "gather 1 key"),
    (
        {
            "command": "gather",
            "options": {
                "maxNumKeys": 2,
                "endKey": "*",
                "timeout": 10,
                "retries": 2,
                "input": "dtmf speech",
                "speechLocale": "zh-CN",
                "playback": {"media": [URL], "loop": 1},
                "say": {"text": "Press 1 for sales", "locale": "en-US"},
            },
        },
        'gather 2 keys, end *, dtmf speech, prompt "Press 1 for sales"',
    ),
    (
        {"command": "gather", "options": {"input": "speech", "playback": {"media": [URL]}}},
        "gather, speech, prompt 1 file",
    ),
    ({"command": "record", "options": {"beep": True}}, "record, beep"),
    (
        {
            "command": "record",
            "options": {
                "endKey": "9",
                "maxLength": 60,
                "timeout": 5,
                "beep": False,
                "transcribe": True,
                "transcribeLocale": "en-AB",
            },
        },
        "record, end 9, max 60s, no beep, transcribe en-AB",
    ),
    ({"command": "bridge", "options": {"to": "+31201234567"}}, "bridge to +31201234567"),
    (
        {
            "command": "bridge",
            "options": {
                "from": "+31207654321",
                "to": "+31201234567",
                "ringTimeout": 3,
                "maxDuration": 28800,
                "ringTone": "uk",
                "hangupAfterBridge": True,
                "record": True,
                "recordStart": "record-from-ringing",
                "recordStereo": False,
                "callFlow": [
                    {"command": "say", "options": {"text": "Connecting"}},
                    {"command": "gather", "options": {"endKey": "#"}},  # fine inside a bridge: no `record` branch
                    {"command": "pause", "options": {"pauseSeconds": 1}},
                    {"command": "playback", "options": {"media": [URL]}},
                    {"command": "hangup", "conditions": [{"variable": "keys", "operator": "eq", "value": "#"}]},
                ],
                "notification": {"url": "https://hooks.example.com/bird"},
                "amdSettings": {**AMD, "wordCount": 2.5, "speechTimeout": 10, "beepTimeout": 30},
            },
        },
        "bridge to +31201234567, from +31207654321, record, then 5 commands",
    ),
    ({"command": "hangup"}, "hangup"),
    ({"command": "hangup", "options": {"cause": "busy"}}, "hangup busy"),
    ({"command": "hangup", "options": {"cause": "rejected"}}, "hangup rejected"),
    ({"command": "pause"}, "pause"),
    ({"command": "pause", "options": {"pauseSeconds": 0}}, "pause 0s"),
    ({"command": "pause", "options": {"pauseSeconds": 30}}, "pause 30s"),
    (
        {"command": "hangup", "conditions": [{"variable": "keys", "operator": "==", "value": "1"}]},
        "hangup if keys == 1",
    ),
    (
        {
            "command": "say",
            "options": {"text": "Bye"},
            "conditions": [
                {"variable": "speech", "operator": "contains", "value": "no thanks"},
                {"variable": "keys", "operator": "!=", "value": ""},
            ],
        },
        'say "Bye" if speech contains "no thanks" and keys != ""',
    ),
]


@pytest.mark.parametrize(("command", "line"), VALID_COMMANDS, ids=lambda v: v if isinstance(v, str) else None)
def test_each_command_is_accepted(command: dict[str, Any], line: str) -> None:
    flow = validate_callflow([command])
    expected = {k: v for k, v in command.items() if v is not None}
    assert flow.to_wire() == [expected]
    assert flow.summary() == [line]
    assert validate_callflow(flow.to_wire()) == flow


@needs_spec
def test_each_command_is_what_bird_accepts() -> None:
    flow = validate_callflow([command for command, _ in VALID_COMMANDS[:MAX_COMMANDS]])
    assert schema_errors(flow.to_wire()) == []


def test_every_enum_value_of_the_schema_is_accepted() -> None:
    say = [{"command": "say", "options": {"text": "Hi", "locale": locale}} for locale in TTS_LOCALES]
    gather = [{"command": "gather", "options": {"endKey": k, "input": i}} for k in KEYS for i in GATHER_INPUTS]
    gather += [{"command": "gather", "options": {"speechLocale": locale}} for locale in SPEECH_LOCALES]
    record = [{"command": "record", "options": {"transcribeLocale": locale}} for locale in TRANSCRIBE_LOCALES]
    hangup = [{"command": "hangup", "options": {"cause": cause}} for cause in HANGUP_CAUSES]
    bridge = [
        {"command": "bridge", "options": {"to": "+1", "ringTone": tone, "recordStart": start}}
        for tone in RING_TONES
        for start in RECORD_STARTS
    ]
    bridge += [
        {
            "command": "bridge",
            "options": {"to": "+1", "amdSettings": {**AMD, "speechLocale": loc, "ifMachineNotifyAfter": after}},
        }
        for loc in SPEECH_LOCALES
        for after in AMD_NOTIFY_AFTER
    ]
    conditions = [
        {"command": "hangup", "conditions": [{"variable": v, "operator": o, "value": "1"}]}
        for v in CONDITION_VARIABLES
        for o in CONDITION_OPERATORS
    ]
    commands = say + gather + record + hangup + bridge + conditions
    for start in range(0, len(commands), MAX_COMMANDS):
        chunk = commands[start : start + MAX_COMMANDS]
        assert validate_callflow(chunk).to_wire() == chunk


def test_the_wire_never_carries_empty_options_empty_conditions_or_nulls() -> None:
    data = [
        {"command": "answer", "options": None, "conditions": None},
        {"command": "hangup", "conditions": []},
        {"command": "bridge", "options": {"to": "+1", "ringTone": None, "callFlow": []}},
    ]
    assert validate_callflow(data).to_wire() == [
        {"command": "answer"},
        {"command": "hangup"},
        {"command": "bridge", "options": {"to": "+1"}},
    ]


def test_keys_go_on_the_wire_in_schema_order_whatever_the_input_order() -> None:
    data = [
        {
            "conditions": [{"value": "1", "operator": "eq", "variable": "keys"}],
            "options": {"timeout": 1, "loop": 2, "voice": "male", "locale": "en-US", "text": "Hi"},
            "command": "say",
        },
        {"options": {"to": "+2", "from": "+1"}, "command": "bridge"},
    ]
    wire = validate_callflow(data).to_wire()
    assert list(wire[0]) == ["command", "options", "conditions"]
    assert list(wire[0]["options"]) == ["text", "locale", "voice", "loop", "timeout"]
    assert list(wire[0]["conditions"][0]) == ["variable", "operator", "value"]
    assert list(wire[1]["options"]) == ["from", "to"]


def test_limits_are_inclusive() -> None:
    assert len(validate_callflow([{"command": "hangup"}] * MAX_COMMANDS).to_wire()) == MAX_COMMANDS
    playback = validate_callflow([{"command": "playback", "options": {"media": [URL] * MAX_MEDIA}}]).to_wire()
    assert len(playback[0]["options"]["media"]) == MAX_MEDIA
    nested = [{"command": "pause"}] * MAX_COMMANDS
    bridge = validate_callflow([{"command": "bridge", "options": {"to": "+1", "callFlow": nested, "ringTimeout": 120}}])
    assert bridge.to_wire()[0]["options"]["ringTimeout"] == 120
    assert len(bridge.to_wire()[0]["options"]["callFlow"]) == MAX_COMMANDS
    say = validate_callflow([{"command": "say", "options": {"text": "x", "loop": MAX_INT}}]).to_wire()
    assert say[0]["options"]["loop"] == MAX_INT


# ---------------------------------------------------------------------------------------------
# Refusals: the exact path, reason and fix.

SAY = {"command": "say", "options": {"text": "Hello"}}

REFUSALS: list[tuple[Any, str, str, str | None]] = [
    # The list itself.
    ("hangup", "callFlow", "must be a list of commands, not text", 'Write it like [{"command":"hangup"}].'),
    ({"command": "hangup"}, "callFlow", "is a single command, not a list of commands", "Wrap it in `[` `]`."),
    ([], "callFlow", "has no commands", 'Give at least one, e.g. [{"command":"hangup"}].'),
    ([{"command": "hangup"}] * 21, "callFlow", "has 21 commands; Bird accepts at most 20", None),
    # A command.
    (["hangup"], "callFlow[0]", "must be a command object, not text", 'Write it like {"command":"hangup"}.'),
    ([None], "callFlow[0]", "must be a command object, not null", 'Write it like {"command":"hangup"}.'),
    ([{}], "callFlow[0].command", "is missing", None),
    ([{"command": None}], "callFlow[0].command", "is missing", None),
    ([{"command": 3}], "callFlow[0].command", "must be a command name, not a whole number", None),
    ([SAY, {"command": "sya"}], "callFlow[1].command", "`sya` is not a command", "Did you mean `say`?"),
    ([{"command": "Hangup"}], "callFlow[0].command", "`Hangup` is not a command", "Did you mean `hangup`?"),
    ([{"command": "dance"}], "callFlow[0].command", "`dance` is not a command", None),
    (
        [{"command": "hangup", "option": {}}],
        "callFlow[0].option",
        "is not part of a command",
        "Did you mean `options`?",
    ),
    (
        [{"command": "hangup", "id": "x"}],
        "callFlow[0].id",
        "is not part of a command",
        "A command has only `command`, `options` and `conditions`.",
    ),
    ([{"command": "hangup", "a b": 1}], 'callFlow[0]["a b"]', "is not part of a command", None),
    # Options in general.
    ([{"command": "hangup", "options": "busy"}], "callFlow[0].options", "must be an object, not text", None),
    ([{"command": "hangup", "options": []}], "callFlow[0].options", "must be an object, not a list", None),
    ([{"command": "answer", "options": {"loop": 1}}], "callFlow[0].options", "`answer` takes no options", None),
    ([{"command": "ringing", "options": {"x": 1}}], "callFlow[0].options", "`ringing` takes no options", None),
    (
        [{"command": "answer", "options": {}}],
        "callFlow[0].options",
        "is empty, which Bird's schema cannot tell apart from other commands' options",
        "Leave `options` out.",
    ),
    (
        [{"command": "hangup", "options": {}}],
        "callFlow[0].options",
        "is empty, which Bird's schema cannot tell apart from other commands' options",
        "Leave `options` out.",
    ),
    (
        [{"command": "gather", "options": {"endKey": "#", "timeout": 5}}],
        "callFlow[0].options",
        "has only options that `record` also takes, which Bird's schema refuses as ambiguous",
        "Add another `gather` option, e.g. `maxNumKeys`.",
    ),
    (
        [{"command": "record", "options": {"timeout": 5}}],
        "callFlow[0].options",
        "has only options that `gather` also takes, which Bird's schema refuses as ambiguous",
        "Add another `record` option, e.g. `maxLength`.",
    ),
    (
        [SAY, SAY, {"command": "say", "options": {"text": "Hi", "colour": "red"}}],
        "callFlow[2].options.colour",
        "is not an option of `say`",
        "`say` takes: text, locale, voice, loop, timeout.",
    ),
    (
        [{"command": "say", "options": {"txt": "Hi"}}],
        "callFlow[0].options.txt",
        "is not an option of `say`",
        "Did you mean `text`?",
    ),
    (
        [{"command": "say", "options": {"pauseSeconds": 2}}],
        "callFlow[0].options.pauseSeconds",
        "is not an option of `say`",
        "`say` takes: text, locale, voice, loop, timeout.",
    ),
    ([{"command": "say", "options": {"text": None}}], "callFlow[0].options.text", "must not be null", None),
    (
        [{"command": "say", "options": {"text": "Hi", "loop": None}}],
        "callFlow[0].options.loop",
        "must not be null",
        None,
    ),
    # Required options.
    ([{"command": "say"}], "callFlow[0].options.text", "is missing", "`say` needs `text`."),
    ([{"command": "playback"}], "callFlow[0].options.media", "is missing", "`playback` needs `media`."),
    (
        [{"command": "bridge", "options": {"from": "+1"}}],
        "callFlow[0].options.to",
        "is missing",
        "`bridge` needs `to`.",
    ),
    # Types and ranges.
    ([{"command": "pause", "options": {"pauseSeconds": 31}}], "callFlow[0].options.pauseSeconds", "must be ≤ 30", None),
    ([{"command": "pause", "options": {"pauseSeconds": -1}}], "callFlow[0].options.pauseSeconds", "must be ≥ 0", None),
    (
        [{"command": "pause", "options": {"pauseSeconds": True}}],
        "callFlow[0].options.pauseSeconds",
        "must be a whole number, not true/false",
        None,
    ),
    (
        [{"command": "pause", "options": {"pauseSeconds": 2.0}}],
        "callFlow[0].options.pauseSeconds",
        "must be a whole number, not 2.0",
        None,
    ),
    (
        [{"command": "pause", "options": {"pauseSeconds": "2"}}],
        "callFlow[0].options.pauseSeconds",
        "must be a whole number, not text",
        None,
    ),
    (
        [{"command": "say", "options": {"text": "x", "loop": 10**100}}],
        "callFlow[0].options.loop",
        "must be ≤ 2147483647",
        None,
    ),
    ([{"command": "say", "options": {"text": "x", "timeout": -5}}], "callFlow[0].options.timeout", "must be ≥ 0", None),
    ([{"command": "say", "options": {"text": "  "}}], "callFlow[0].options.text", "must not be empty", None),
    (
        [{"command": "say", "options": {"text": 7}}],
        "callFlow[0].options.text",
        "must be text, not a whole number",
        'Put it in quotes: "7".',
    ),
    (
        [{"command": "say", "options": {"text": "x", "voice": ""}}],
        "callFlow[0].options.voice",
        "must not be empty",
        None,
    ),
    (
        [{"command": "say", "options": {"text": "x", "locale": "en-gb"}}],
        "callFlow[0].options.locale",
        "`en-gb` is not a text-to-speech locale",
        "Did you mean `en-GB`?",
    ),
    (
        [{"command": "say", "options": {"text": "x", "locale": "klingon"}}],
        "callFlow[0].options.locale",
        "`klingon` is not a text-to-speech locale",
        "Use one of Bird's 61 values, e.g. `arb`, `ar-AE`, `bg-BG`.",
    ),
    (
        [{"command": "playback", "options": {"media": URL}}],
        "callFlow[0].options.media",
        "must be a list of URLs, not text",
        'Write it like ["https://example.com/a.mp3"].',
    ),
    (
        [{"command": "playback", "options": {"media": []}}],
        "callFlow[0].options.media",
        "is empty",
        "Give at least one URL.",
    ),
    (
        [{"command": "playback", "options": {"media": [URL] * 81}}],
        "callFlow[0].options.media",
        "has 81 files; Bird accepts at most 80",
        None,
    ),
    (
        [{"command": "playback", "options": {"media": [URL, "hold.mp3"]}}],
        "callFlow[0].options.media[1]",
        "is not an absolute http(s) URL",
        "Write it like `https://example.com/hold.mp3`.",
    ),
    (
        [{"command": "playback", "options": {"media": ["ftp://example.com/a.mp3"]}}],
        "callFlow[0].options.media[0]",
        "is not an absolute http(s) URL",
        None,
    ),
    (
        [{"command": "playback", "options": {"media": ["https://example.com/a b.mp3"]}}],
        "callFlow[0].options.media[0]",
        "contains spaces or control characters",
        "Encode spaces in a URL as `%20`.",
    ),
    (
        [{"command": "playback", "options": {"media": ["http://[::1/a.mp3"]}}],
        "callFlow[0].options.media[0]",
        "is not an absolute http(s) URL",
        None,
    ),
    (
        [{"command": "playback", "options": {"media": [URL], "pauseMilliseconds": 30001}}],
        "callFlow[0].options.pauseMilliseconds",
        "must be ≤ 30000",
        None,
    ),
    ([{"command": "gather", "options": {"maxNumKeys": 0}}], "callFlow[0].options.maxNumKeys", "must be ≥ 1", None),
    (
        [{"command": "gather", "options": {"maxNumKeys": 1, "endKey": 5}}],
        "callFlow[0].options.endKey",
        "must be text, not a whole number",
        'Put it in quotes: "5".',
    ),
    (
        [{"command": "gather", "options": {"maxNumKeys": 1, "endKey": "A"}}],
        "callFlow[0].options.endKey",
        "`A` is not a phone key",
        "Use one of: `0`, `1`, `2`, `3`, `4`, `5`, `6`, `7`, `8`, `9`, `*`, `#`.",
    ),
    (
        [{"command": "gather", "options": {"input": "voice"}}],
        "callFlow[0].options.input",
        "`voice` is not a gather input",
        "Use one of: `dtmf`, `speech`, `dtmf speech`.",
    ),
    (
        [{"command": "gather", "options": {"speechLocale": "cmn-CN"}}],
        "callFlow[0].options.speechLocale",
        "`cmn-CN` is not a speech-recognition locale",
        None,
    ),
    (
        [{"command": "gather", "options": {"retries": 1, "say": {"text": "Hi", "volume": 3}}}],
        "callFlow[0].options.say.volume",
        "is not an option of `say`",
        "`say` takes: text, locale, voice, loop, timeout.",
    ),
    (
        [{"command": "gather", "options": {"say": {}}}],
        "callFlow[0].options.say.text",
        "is missing",
        "`say` needs `text`.",
    ),
    (
        [{"command": "gather", "options": {"playback": {"media": ["x"]}}}],
        "callFlow[0].options.playback.media[0]",
        "is not an absolute http(s) URL",
        None,
    ),
    (
        [{"command": "gather", "options": {"playback": [URL]}}],
        "callFlow[0].options.playback",
        "must be an object, not a list",
        None,
    ),
    (
        [{"command": "record", "options": {"beep": "yes"}}],
        "callFlow[0].options.beep",
        "must be true or false, not text",
        None,
    ),
    (
        [{"command": "record", "options": {"beep": 1}}],
        "callFlow[0].options.beep",
        "must be true or false, not a whole number",
        None,
    ),
    (
        [{"command": "record", "options": {"transcribeLocale": "en-XX"}}],
        "callFlow[0].options.transcribeLocale",
        "`en-XX` is not a transcription locale",
        None,
    ),
    (
        [{"command": "hangup", "options": {"cause": "normal"}}],
        "callFlow[0].options.cause",
        "`normal` is not a hangup cause",
        "Use one of: `rejected`, `busy`.",
    ),
    # Bridge.
    ([{"command": "bridge", "options": {"to": ""}}], "callFlow[0].options.to", "must not be empty", None),
    (
        [{"command": "bridge", "options": {"to": 31201234567}}],
        "callFlow[0].options.to",
        "must be text, not a whole number",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "ringTimeout": 2}}],
        "callFlow[0].options.ringTimeout",
        "must be ≥ 3",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "ringTimeout": 121}}],
        "callFlow[0].options.ringTimeout",
        "must be ≤ 120",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "maxDuration": 0}}],
        "callFlow[0].options.maxDuration",
        "must be ≥ 1",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "ringTone": "nl"}}],
        "callFlow[0].options.ringTone",
        "`nl` is not a ring tone",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "recordStart": "record-from-start"}}],
        "callFlow[0].options.recordStart",
        "`record-from-start` is not a recording start",
        "Did you mean `record-from-answer`?",
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "recordStereo": None}}],
        "callFlow[0].options.recordStereo",
        "must not be null",
        "Leave it out to use Bird's default.",
    ),
    (
        [SAY, SAY, SAY, {"command": "bridge", "options": {"to": "+1", "callFlow": [{"command": "sya"}]}}],
        "callFlow[3].options.callFlow[0].command",
        "`sya` is not a command",
        "Did you mean `say`?",
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "callFlow": [SAY, {"command": "record"}]}}],
        "callFlow[0].options.callFlow[1].command",
        "`record` cannot be used inside a bridge",
        "A bridge's callFlow takes: hangup, playback, say, gather, pause.",
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "callFlow": [{"command": "bridge", "options": {"to": "+2"}}]}}],
        "callFlow[0].options.callFlow[0].command",
        "`bridge` cannot be used inside a bridge",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "callFlow": [{"command": "pause"}] * 21}}],
        "callFlow[0].options.callFlow",
        "has 21 commands; Bird accepts at most 20",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "callFlow": {"command": "pause"}}}],
        "callFlow[0].options.callFlow",
        "must be a list of commands, not an object",
        None,
    ),
    (
        [
            {
                "command": "bridge",
                "options": {"to": "+1", "callFlow": [{"command": "pause", "options": {"pauseSeconds": 40}}]},
            }
        ],
        "callFlow[0].options.callFlow[0].options.pauseSeconds",
        "must be ≤ 30",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "callFlow": [{"command": "hangup", "options": {}}]}}],
        "callFlow[0].options.callFlow[0].options",
        "is empty, which Bird's schema cannot tell apart from other commands' options",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "notification": {}}}],
        "callFlow[0].options.notification.url",
        "is missing",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "notification": {"url": "/hook"}}}],
        "callFlow[0].options.notification.url",
        "is not an absolute http(s) URL",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "notification": {"url": URL, "method": "POST"}}}],
        "callFlow[0].options.notification.method",
        "is not an option of `notification`",
        "`notification` takes: url.",
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "amdSettings": {"enabled": True}}}],
        "callFlow[0].options.amdSettings.wordCount",
        "is missing",
        "`amdSettings` needs `wordCount`.",
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "amdSettings": {**AMD, "speechTimeout": 10.5}}}],
        "callFlow[0].options.amdSettings.speechTimeout",
        "must be ≤ 10",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "amdSettings": {**AMD, "wordCount": 0}}}],
        "callFlow[0].options.amdSettings.wordCount",
        "must be ≥ 1",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "amdSettings": {**AMD, "beepTimeout": math.inf}}}],
        "callFlow[0].options.amdSettings.beepTimeout",
        "must be a finite number",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "amdSettings": {**AMD, "wordCount": math.nan}}}],
        "callFlow[0].options.amdSettings.wordCount",
        "must be a finite number",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "amdSettings": {**AMD, "enabled": "true"}}}],
        "callFlow[0].options.amdSettings.enabled",
        "must be true or false, not text",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "amdSettings": {**AMD, "speechTimeout": False}}}],
        "callFlow[0].options.amdSettings.speechTimeout",
        "must be a number, not true/false",
        None,
    ),
    (
        [{"command": "bridge", "options": {"to": "+1", "amdSettings": {**AMD, "ifMachineNotifyAfter": "wordcount"}}}],
        "callFlow[0].options.amdSettings.ifMachineNotifyAfter",
        "`wordcount` is not a notify-after choice",
        "Did you mean `wordCount`?",
    ),
    # Conditions.
    (
        [{"command": "hangup", "conditions": {}}],
        "callFlow[0].conditions",
        "must be a list of conditions, not an object",
        None,
    ),
    ([{"command": "hangup", "conditions": ["keys"]}], "callFlow[0].conditions[0]", "must be an object, not text", None),
    (
        [{"command": "hangup", "conditions": [{"variable": "digits", "operator": "eq", "value": "1"}]}],
        "callFlow[0].conditions[0].variable",
        "`digits` is not a condition variable",
        "Use one of: `keys`, `speech`.",
    ),
    (
        [{"command": "hangup", "conditions": [{"variable": "keys", "operator": "=", "value": "1"}]}],
        "callFlow[0].conditions[0].operator",
        "`=` is not a condition operator",
        "Did you mean `==`?",
    ),
    (
        [{"command": "hangup", "conditions": [{"variable": "keys", "operator": "eq", "value": 1}]}],
        "callFlow[0].conditions[0].value",
        "must be text, not a whole number",
        'Put it in quotes: "1".',
    ),
    (
        [{"command": "hangup", "conditions": [{"variable": "keys", "operator": "eq"}]}],
        "callFlow[0].conditions[0].value",
        "is missing",
        "A condition needs `value`.",
    ),
    (
        [{"command": "hangup", "conditions": [{"variable": "keys", "operator": "eq", "value": "1", "not": True}]}],
        "callFlow[0].conditions[0].not",
        "is not an option of a condition",
        "A condition takes: variable, operator, value.",
    ),
]


@pytest.mark.parametrize(("data", "word", "why", "fix"), REFUSALS, ids=[r[1] + ": " + r[2] for r in REFUSALS])
def test_refusals_name_the_path_and_the_reason(data: Any, word: str, why: str, fix: str | None) -> None:
    error = refusal(data)
    assert (error.word, error.why) == (word, why)
    if fix is not None:
        assert error.fix == fix
    assert error.message.startswith(f"`{word}`: {why}")


def test_the_first_problem_is_reported_commands_in_order_then_fields_in_schema_order() -> None:
    data: list[dict[str, Any]] = [
        {"command": "say", "options": {"timeout": -1, "loop": -1, "text": ""}},
        {"command": "sya"},
    ]
    assert refusal(data).word == "callFlow[0].options.text"
    data[0]["options"] = {"timeout": -1, "loop": -1, "text": "ok"}
    assert refusal(data).word == "callFlow[0].options.loop"
    # An unknown key is reported before a missing one: a typo reads "did you mean", not "is missing".
    assert refusal([{"command": "say", "options": {"txt": "Hi", "loop": -1}}]).word == "callFlow[0].options.txt"
    # The command's name comes before its other keys and its options.
    assert refusal([{"extra": 1, "options": {"x": 1}, "command": "sya"}]).word == "callFlow[0].command"


def test_messages_stay_short_whatever_the_input() -> None:
    huge = "x" * 100_000
    for data in (
        [{"command": huge}],
        [{"command": "say", "options": {huge: 1}}],
        [{"command": "say", "options": {"text": "x", "locale": huge}}],
        [{"command": "hangup", "conditions": [{"variable": "keys", "operator": "eq", "value": "1", huge: "`\n"}]}],
        [{"command": "say", "options": {"text": [[[[["deep"]]]]]}}],
    ):
        error = refusal(data)
        assert len(error.message) < 300, error.message
        assert "\n" not in error.message


def test_very_deep_nesting_is_refused_not_recursed() -> None:
    deep: Any = "x"
    for _ in range(100_000):
        deep = [deep]
    assert refusal(deep).word == "callFlow[0]"
    assert refusal([{"command": "say", "options": {"text": deep}}]).why == "must be text, not a list"
    looped: list[Any] = []
    looped.append(looped)
    assert refusal(looped).why == "must be a command object, not a list"


# ---------------------------------------------------------------------------------------------
# Text: JSON or YAML.


def test_json_text() -> None:
    flow = parse_callflow('[{"command":"say","options":{"text":"Hello"}},{"command":"hangup"}]')
    assert flow.summary() == ['say "Hello"', "hangup"]


def test_yaml_text() -> None:
    text = """
- command: gather
  options: {maxNumKeys: 1, endKey: "#", say: {text: Press 1 to talk to us}}
- command: bridge
  options:
    to: "+31201234567"
    ringTone: null
  conditions:
    - {variable: keys, operator: "==", value: "1"}
- command: hangup
  options: {cause: busy}
"""
    flow = parse_callflow(text)
    assert flow.summary() == [
        'gather 1 key, end #, prompt "Press 1 to talk to…"',
        "bridge to +31201234567 if keys == 1",
        "hangup busy",
    ]
    assert flow.to_wire()[1] == {
        "command": "bridge",
        "options": {"to": "+31201234567"},
        "conditions": [{"variable": "keys", "operator": "==", "value": "1"}],
    }


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('[{"command":"hangup"}', "is not valid JSON or YAML (line 1, column 22: Expecting ',' delimiter)"),
        ('[{"command": "hangup"}]]', "is not valid JSON or YAML (line 1, column 24: Extra data)"),
        # libyaml's word, or PyYAML's own where it has no libyaml: the position is the same.
        ("- command: say\n  options: {text: [}", "is not valid JSON or YAML (line 2, column 20: "),
        ("[" * 8001, "is 8001 characters long; the limit is 8000"),
        ("[" * 5000, "is nested more than 10 levels deep; a callFlow never is"),
        ("   ", "is empty"),
        ('[{"command":"say","options":{"text":"x","loop":' + "9" * 5000 + "}}]", None),
        ("- {command: say, options: {text: x, loop: " + "9" * 5000 + "}}", None),
        ("!!python/object/apply:os.system ['true']", None),
        ("when: 2024-13-45", None),
    ],
)
def test_text_that_is_no_json_or_yaml(text: str, why: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_callflow(text)
    error = caught.value
    assert error.word == "callFlow"
    if why is not None:
        assert error.why.startswith(why)
    assert error.why.startswith(("is not valid JSON or YAML (", "is empty", "is 8001", "is nested more than"))
    assert len(error.message) < 250


def test_a_syntax_error_says_how_to_quote() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_callflow("[{command: hangup]")
    assert caught.value.fix == 'Quote it whole, e.g. \'[{"command":"hangup"}]\'.'


# ---------------------------------------------------------------------------------------------
# Bounded reading (issue 14): what would make JSON or YAML slow is refused before they read it.

TOO_DEEP = f"is nested more than {MAX_DEPTH} levels deep; a callFlow never is"
# The deepest a callFlow goes: list > command > bridge options > callFlow > command > gather
# options > playback > media (8 levels), with a condition beside it.
DEEPEST = [
    {
        "command": "bridge",
        "options": {
            "to": "+31201234567",
            "callFlow": [
                {
                    "command": "gather",
                    "options": {"maxNumKeys": 1, "playback": {"media": [URL]}},
                    "conditions": [{"variable": "keys", "operator": "eq", "value": "1"}],
                }
            ],
        },
    }
]


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(DEEPEST),
        json.dumps(DEEPEST, indent=2),
        yaml.safe_dump(DEEPEST),
        yaml.safe_dump(DEEPEST, default_flow_style=True),
        yaml.safe_dump(DEEPEST, indent=4, width=20),
    ],
)
def test_the_deepest_callflow_is_read_in_json_and_yaml(text: str) -> None:
    assert depth(DEEPEST) == 8
    check_nesting(text)
    assert parse_callflow(text).to_wire() == DEEPEST


@pytest.mark.parametrize(
    "text",
    [
        "[" * 2000 + "]" * 2000,  # the measured attack: PyYAML read it for 1.3 s
        "[" * 11 + "]" * 11,
        '{"a":' * 11 + "1" + "}" * 11,
        json.dumps([[[[[[[[[[["deep"]]]]]]]]]]], indent=1),
        "- " * 3000 + "x",  # YAML block sequences
        "".join(" " * n + f"k{n}:\n" for n in range(12)) + " " * 12 + "x",  # YAML mappings, by indentation
        "a: " + "{b: " * 20 + "c" + "}" * 20,
        "- command: say\n  options:\n    text: [[[[[[[[[[x]]]]]]]]]]",
        '[{"command":"say","options":{"text":"[[[[[[[[[[[[["}}, ' + "[" * 10 + "]" * 10 + "]",
    ],
)
def test_nesting_deeper_than_any_callflow_is_refused_before_json_or_yaml_reads_it(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_nesting(text)
    assert (caught.value.word, caught.value.why) == ("callFlow", TOO_DEEP)
    with pytest.raises(InvalidInput) as parsed:
        parse_callflow(text)
    assert parsed.value.why == TOO_DEEP


@pytest.mark.parametrize(
    "text",
    [
        # Text that looks nested but is not: brackets in strings, comments, YAML plain and block text.
        json.dumps([{"command": "say", "options": {"text": "[[[[[[[[[[[[ {{{{{{{{{{{{ Press # now"}}] * 20),
        "- command: say  # [[[[[[[[[[[[[[\n  options: {text: 'it''s [[[[[[[[[[[[ fine'}\n",
        "- command: say\n  options:\n    text: press [1] or [[[[[[[[[[[[[[2\n",
        "- command: say\n  options:\n    text: |\n      [[[[[[[[[[[[[[\n      - - - - - - - - - - - -\n- command: hangup\n",
    ],
)
def test_brackets_that_nest_nothing_are_not_counted(text: str) -> None:
    check_nesting(text)
    assert parse_callflow(text).commands


def test_yaml_nesting_the_pre_scan_cannot_see_is_refused_by_the_yaml_reader() -> None:
    # `[a: [b: …]]`: each single-pair mapping is a level with no bracket of its own. The pre-scan
    # counts 6; the YAML reader, which checks every level, stops at the 11th.
    text = "[a: " * 6 + "x" + "]" * 6
    check_nesting(text)
    with pytest.raises(InvalidInput) as caught:
        parse_callflow(text)
    assert caught.value.why == TOO_DEEP


tricky_text = st.text(st.sampled_from([*"[]{}\"'#:,-|>\\ \nab", "\u00e9"]), max_size=12)
json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=30,
)


@PROPERTY
@given(json_documents, st.sampled_from([None, 1, 2]))
def test_the_pre_scan_is_exact_for_json(value: Any, indent: int | None) -> None:
    text = json.dumps(value, indent=indent)
    try:
        check_nesting(text)
    except InvalidInput:
        assert depth(value) > MAX_DEPTH
    else:
        assert depth(value) <= MAX_DEPTH


@pytest.mark.parametrize(
    "text",
    [
        "- &a {command: hangup}\n- *a",
        "- &a [x, x, x, x, x, x, x, x, x, x]\n- &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n- [*b, *b, *b, *b]",
        "&a [*a]",
    ],
)
def test_yaml_aliases_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_callflow(text)
    assert caught.value.why == "uses a YAML alias (`*name`)"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('[{"command":"say","options":{"text":"a\x00b"}}]', "contains a NUL character (U+0000)"),
        ('[{"command":"say","options":{"text":"a\\u0000b"}}]', "contains a NUL character (U+0000)"),
        ('- {command: say, options: {text: "a\\0b"}}', "contains a NUL character (U+0000)"),
        ('[{"command":"say","options":{"text":"a\\ud800b"}}]', "contains half of a surrogate pair (U+D800)"),
        ('[{"command":"say","options":{"text":"a\ud800b"}}]', "contains half of a surrogate pair (U+D800)"),
    ],
)
def test_text_no_database_can_store_is_refused(text: str, why: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_callflow(text)
    assert (caught.value.word, caught.value.why) == ("callFlow", why)
    assert "\x00" not in caught.value.message


def test_a_surrogate_pair_written_as_json_escapes_is_one_character() -> None:
    flow = parse_callflow('[{"command":"say","options":{"text":"\\ud83d\\ude00"}}]')
    assert flow.to_wire() == [{"command": "say", "options": {"text": "\U0001f600"}}]


@pytest.mark.parametrize(
    ("text", "word", "why"),
    [
        ("hangup", "callFlow", "must be a list of commands, not text"),
        ("42", "callFlow", "must be a list of commands, not a whole number"),
        ("null", "callFlow", "must be a list of commands, not null"),
        ("[NaN]", "callFlow[0]", "must be a command object, not nan"),
        ("[1e999]", "callFlow[0]", "must be a command object, not inf"),
        ("- 2024-01-02", "callFlow[0]", "must be a command object, not a date"),
        ("[{command: hangup, options: {cause: !!set {busy}}}]", "callFlow[0].options.cause", "must be text, not a set"),
        ("[{command: hangup, 1: x}]", "callFlow[0][1]", "is not part of a command"),
        ("[!!binary aGk=]", "callFlow[0]", "must be a command object, not binary data"),
        (
            '[{"command":"pause","options":{"pauseSeconds":2.5}}]',
            "callFlow[0].options.pauseSeconds",
            "must be a whole number, not 2.5",
        ),
        (
            "[{command: gather, options: {maxNumKeys: 1, endKey: 1}}]",
            "callFlow[0].options.endKey",
            "must be text, not a whole number",
        ),
    ],
)
def test_text_that_parses_but_is_no_callflow(text: str, word: str, why: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_callflow(text)
    assert (caught.value.word, caught.value.why) == (word, why)


def test_parse_refuses_non_text() -> None:
    with pytest.raises(InvalidInput):
        parse_callflow(b"[]")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Where the schema, read literally, refuses or accepts more than the command says.


@needs_spec
@pytest.mark.parametrize(
    "data",
    [
        [{"command": "hangup", "options": {}}],
        [{"command": "answer", "options": {}}],
        [{"command": "gather", "options": {"endKey": "#"}}],
        [{"command": "gather", "options": {"timeout": 3, "endKey": "1"}}],
        [{"command": "record", "options": {"timeout": 3}}],
        [{"command": "bridge", "options": {"to": "+1", "callFlow": [{"command": "pause", "options": {}}]}}],
    ],
)
def test_what_bird_schema_refuses_as_ambiguous_is_refused(data: Any) -> None:
    assert schema_errors(data)
    assert str(refusal(data).word).endswith(".options")


@needs_spec
def test_gather_with_only_end_key_is_unambiguous_inside_a_bridge() -> None:
    data = [
        {"command": "bridge", "options": {"to": "+1", "callFlow": [{"command": "gather", "options": {"endKey": "#"}}]}}
    ]
    assert schema_errors(data) == []
    assert validate_callflow(data).to_wire() == data


@needs_spec
def test_options_of_another_command_pass_the_schema_but_not_here() -> None:
    data = [{"command": "say", "options": {"pauseSeconds": 2}}]
    assert schema_errors(data) == []
    assert refusal(data).word == "callFlow[0].options.pauseSeconds"


# ---------------------------------------------------------------------------------------------
# Properties. Strategies mirror the model: every command, option, nested bridge flow, condition.

urls = st.builds(
    "{}://{}.example/{}".format,
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._~%/-]{0,20}", fullmatch=True),
)
# Text a person can store and send: no NUL, no lone surrogate.
storable_text = st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"])
words = st.text(storable_text, min_size=1, max_size=40).filter(lambda s: bool(s.strip()))
counts = st.one_of(st.integers(0, 100), st.integers(0, MAX_INT))
amd_numbers = st.one_of(st.integers(0, 1000), st.floats(0, 1000, allow_nan=False, allow_infinity=False))

condition = st.fixed_dictionaries(
    {
        "variable": st.sampled_from(CONDITION_VARIABLES),
        "operator": st.sampled_from(CONDITION_OPERATORS),
        "value": st.text(storable_text, max_size=12),
    }
)
play = st.fixed_dictionaries(
    {"media": st.lists(urls, min_size=1, max_size=MAX_MEDIA)},
    optional={"loop": counts, "timeout": counts, "pauseMilliseconds": st.integers(0, 30000)},
)
say = st.fixed_dictionaries(
    {"text": words},
    optional={"locale": st.sampled_from(TTS_LOCALES), "voice": words, "loop": counts, "timeout": counts},
)
gather = st.fixed_dictionaries(
    {},
    optional={
        "maxNumKeys": st.integers(1, 40),
        "endKey": st.sampled_from(KEYS),
        "timeout": counts,
        "retries": counts,
        "input": st.sampled_from(GATHER_INPUTS),
        "speechLocale": st.sampled_from(SPEECH_LOCALES),
        "playback": play,
        "say": say,
    },
)
record = st.fixed_dictionaries(
    {},
    optional={
        "endKey": st.sampled_from(KEYS),
        "maxLength": counts,
        "timeout": counts,
        "beep": st.booleans(),
        "transcribe": st.booleans(),
        "transcribeLocale": st.sampled_from(TRANSCRIBE_LOCALES),
    },
)
hangup = st.fixed_dictionaries({}, optional={"cause": st.sampled_from(HANGUP_CAUSES)})
pause = st.fixed_dictionaries({}, optional={"pauseSeconds": st.integers(0, 30)})
amd = st.fixed_dictionaries(
    {
        "enabled": st.booleans(),
        "wordCount": st.one_of(st.integers(1, 100), st.floats(1, 100)),
        "speechTimeout": st.one_of(st.integers(0, 10), st.floats(0, 10)),
        "speechLocale": st.sampled_from(SPEECH_LOCALES),
        "ifMachineNotifyAfter": st.sampled_from(AMD_NOTIFY_AFTER),
    },
    optional={"beepTimeout": amd_numbers},
)


def command(
    name: str, options: st.SearchStrategy[dict[str, Any]] | None, *, required: bool = False
) -> st.SearchStrategy:
    """`options` may be left out, null or given (never `{}`); `conditions` likewise, or `[]`."""
    conditions = st.one_of(st.none(), st.lists(condition, max_size=3))
    optional: dict[str, st.SearchStrategy[Any]] = {"conditions": conditions}
    fixed: dict[str, st.SearchStrategy[Any]] = {"command": st.just(name)}
    if options is not None:
        given = options.filter(bool)
        if required:
            fixed["options"] = given
        else:
            optional["options"] = st.one_of(st.none(), given)
    return st.fixed_dictionaries(fixed, optional=optional)


def _unambiguous(options: dict[str, Any]) -> bool:
    # At the top level, gather and record options made only of endKey/timeout fit both schemas.
    return not set(options) <= {"endKey", "timeout"}


in_bridge = st.one_of(
    command("hangup", hangup),
    command("playback", play, required=True),
    command("say", say, required=True),
    command("gather", gather),
    command("pause", pause),
)
bridge = st.fixed_dictionaries(
    {"to": words},
    optional={
        "from": words,
        "ringTimeout": st.integers(3, 120),
        "maxDuration": st.integers(1, MAX_INT),
        "ringTone": st.one_of(st.none(), st.sampled_from(RING_TONES)),
        "hangupAfterBridge": st.booleans(),
        "record": st.booleans(),
        "recordStart": st.sampled_from(RECORD_STARTS),
        "recordStereo": st.booleans(),
        "callFlow": st.lists(in_bridge, max_size=MAX_COMMANDS),
        "notification": st.fixed_dictionaries({"url": urls}),
        "amdSettings": amd,
    },
)
top_level = st.one_of(
    command("answer", None),
    command("ringing", None),
    command("hangup", hangup),
    command("playback", play, required=True),
    command("say", say, required=True),
    command("gather", gather.filter(_unambiguous)),
    command("record", record.filter(_unambiguous)),
    command("bridge", bridge, required=True),
    command("pause", pause),
)
valid_flows = st.lists(top_level, min_size=1, max_size=MAX_COMMANDS)


def assert_clean_wire(flow: CallFlow) -> list[dict[str, Any]]:
    wire = flow.to_wire()
    assert json.loads(json.dumps(wire, allow_nan=False)) == wire
    for value in walk(wire):
        assert value is not None
        assert value != {} and value != []
    return wire


@needs_spec
@PROPERTY
@given(valid_flows)
def test_valid_flows_are_accepted_and_sent_as_bird_accepts_them(data: list[dict[str, Any]]) -> None:
    flow = validate_callflow(data)
    wire = assert_clean_wire(flow)
    assert schema_errors(wire) == []
    assert validate_callflow(wire) == flow
    lines = flow.summary()
    assert len(lines) == len(data)
    assert all(line and "\n" not in line and len(line) <= 160 for line in lines)


# Values that sit on or just past an edge of the schema, plus arbitrary JSON.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
edges = st.sampled_from(
    [
        -1, 0, 1, 2, 3, 10, 11, 20, 21, 30, 31, 120, 121, 30000, 30001, MAX_INT, MAX_INT + 1, 2.0, 2.5, True, False,
        None, "", " ", "x", "#", "A", "busy", "en-US", "en-us", "keys", "==", URL, "ftp://x/y", [], {}, [URL], {"x": 1},
    ]
)  # fmt: skip
known_keys = st.sampled_from(
    [
        "command", "options", "conditions", "media", "loop", "timeout", "pauseMilliseconds", "text", "locale", "voice",
        "maxNumKeys", "endKey", "retries", "input", "speechLocale", "playback", "say", "maxLength", "beep", "transcribe",
        "transcribeLocale", "cause", "pauseSeconds", "to", "from", "ringTimeout", "callFlow", "url", "amdSettings",
        "variable", "operator", "value", "enabled", "wordCount", "speechTimeout", "beepTimeout", "colour",
    ]
)  # fmt: skip
new_values = st.one_of(edges, json_values, st.builds(dict, st.just({"command": "hangup"})))


def locations(node: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a document."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in list(items):
        found.append((node, key))
        locations(child, found)
    return found


@st.composite
def mutated_flows(draw: st.DrawFn) -> Any:
    root = {"callFlow": copy.deepcopy(draw(valid_flows))}
    for _ in range(draw(st.integers(1, 3))):
        parent, key = draw(st.sampled_from(locations(root, [])))
        target = parent[key]
        how = draw(st.sampled_from(["replace", "delete", "add key", "grow"]))
        if how == "delete" and parent is not root:
            del parent[key]
        elif how == "add key" and isinstance(target, dict):
            target[draw(st.one_of(known_keys, st.text(max_size=6)))] = draw(new_values)
        elif how == "grow" and isinstance(target, list) and target:
            target.extend(copy.deepcopy(target) * draw(st.integers(1, 90)))
        else:
            parent[key] = draw(new_values)
    return root["callFlow"]


def check_against_schema(data: Any) -> None:
    """If Bird's schema refuses the flow, so do we (with a callFlow path); whatever we accept, Bird accepts."""
    refused_by_bird = bool(schema_errors(data))
    try:
        flow = validate_callflow(data)
    except InvalidInput as error:
        assert error.word is not None and error.word.startswith("callFlow")
        assert error.why and len(error.message) < 400
        return
    assert not refused_by_bird, f"accepted what Bird's schema refuses: {schema_errors(data)}"
    assert schema_errors(assert_clean_wire(flow)) == []


@needs_spec
@PROPERTY
@given(mutated_flows())
def test_mutated_flows_bird_refuses_are_refused(data: Any) -> None:
    check_against_schema(data)


@needs_spec
@PROPERTY
@given(
    st.one_of(
        json_values,
        st.lists(json_values, max_size=4),
        st.lists(st.dictionaries(known_keys, new_values, max_size=4), max_size=4),
        st.lists(
            st.fixed_dictionaries({"command": st.text(max_size=8) | known_keys}, optional={"options": json_values})
        ),
    )
)
def test_arbitrary_json_bird_refuses_is_refused(data: Any) -> None:
    check_against_schema(data)


TOKENS = st.sampled_from(
    [
        "[", "]", "{", "}", ":", ",", " ", "\n", "  ", "- ", '"', "'", "\\", "\t", "#", "&a ", "*a", "!!set ", "!!binary ",
        "!!python/object:os.system ", "? ", "---", "...", "%YAML 1.1\n", "<<: ", "null", "true", "NaN", ".inf", "1e999",
        "9" * 40, "2024-13-45", '"command"', "command", "options", '"say"', "say", "text", "hello", "pauseSeconds", "31",
    ]
)  # fmt: skip


def _dumps(data: Any) -> str:
    return json.dumps(data) if isinstance(data, list) else yaml.safe_dump(data)


texts = st.one_of(
    st.text(max_size=200),
    st.lists(TOKENS, max_size=40).map("".join),
    st.builds(_dumps, mutated_flows()),
    st.builds(lambda flow: yaml.safe_dump(flow), valid_flows),
    st.builds(lambda text, cut: text[:cut], st.builds(json.dumps, valid_flows), st.integers(0, 400)),
)


@PROPERTY
@given(texts)
def test_any_text_gives_a_callflow_or_invalid_input(text: str) -> None:
    try:
        flow = parse_callflow(text)
    except InvalidInput as error:
        assert error.word is not None and error.word.startswith("callFlow")
        assert error.why and len(error.message) < 400
    else:
        assert isinstance(flow, CallFlow)
        assert 1 <= len(flow.commands) <= MAX_COMMANDS
        assert_clean_wire(flow)
