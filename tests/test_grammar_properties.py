"""Property-based: any text gives either a command or a clear InvalidInput, never an exception.
And what the grammar leaves for later: a call's document (callFlow, TwiML) is read only by
`read_document`, which the service calls once the person is authorised."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.actions import ActionName, ApplyFlow, CallTarget, InlineTwiml
from bot.domain.errors import InvalidInput
from bot.domain.grammar import VERBS, CallCommand, Command, DocumentCall, parse, read_document
from bot.slack.text import plain_text

WORDS = st.sampled_from(
    [
        *VERBS,
        "flow",
        "prod:CA0123456789abcdef0123456789abcdef",
        "CA0123456789abcdef0123456789abcdef",
        "https://example.com/x.xml",
        "method=GET",
        "method=",
        "=x",
        "time-limit=600",
        "time-limit=-1",
        "dry-run",
        'reason="a b"',
        "'",
        '"',
        "“",
        "<@U012AB3CD|alice>",
        "&lt;Response&gt;&lt;/Response&gt;",
        "on=prod",
        "since=2h",
        "since=9999999w",
        "outcome=failed",
        "user=@U1",
        "\x00",
        "a\ud800b",
        "[" * 50,
    ]
)
# Any character, NUL and lone surrogates (which a JSON payload can carry) included.
ANY_CHARACTER = st.characters(codec=None, exclude_categories=())


def _check(text: str) -> None:
    try:
        result = parse(text)
    except InvalidInput as error:
        assert error.message.strip()
        assert "Traceback" not in error.message
    else:
        assert isinstance(result, Command.__args__)  # type: ignore[attr-defined]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_clearly(text: str) -> None:
    _check(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(WORDS, max_size=8).map(" ".join))
def test_any_combination_of_command_words(text: str) -> None:
    _check(plain_text(text))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_slack_text_normalisation_never_fails(text: str) -> None:
    _check(plain_text(text))


@settings(max_examples=300, deadline=None)
@given(st.text(ANY_CHARACTER, max_size=60), st.text(ANY_CHARACTER, max_size=60))
def test_any_character_anywhere_parses_or_is_refused_clearly(before: str, after: str) -> None:
    _check(f"{before} hangup prod:CA0123456789abcdef0123456789abcdef {after}")
    _check(f"flow bird:x '{before}' {after}")


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("hangup prod:CA0123456789abcdef0123456789abcdef reason=a\x00b", "a NUL character (U+0000)"),
        ("hangup\x00 prod:CA0123456789abcdef0123456789abcdef", "a NUL character (U+0000)"),
        ('flow bird:x \'[{"command":"say","options":{"text":"\ud800"}}]\'', "half of a surrogate pair (U+D800)"),
    ],
)
def test_text_no_database_can_store_is_refused_as_invalid_input(text: str, what: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(text)
    assert caught.value.message.startswith(f"The command contains {what}, which callbot cannot use.")
    assert "\x00" not in caught.value.message and "\ud800" not in caught.value.message


BOMB = "[" * 2000 + "]" * 2000


def test_a_callflow_is_left_unread_by_parse_and_read_by_read_document() -> None:
    command = parse(f"flow bird:CALL-1 '{BOMB}' reason=why dry-run")
    assert command == DocumentCall(CallTarget("bird", "CALL-1"), ActionName.FLOW, BOMB, "why", True, frozenset())
    with pytest.raises(InvalidInput) as caught:
        read_document(command)
    assert caught.value.why == "is nested more than 10 levels deep; a callFlow never is"
    hangup = read_document(parse('flow bird:CALL-1 \'[{"command":"hangup"}]\''))  # type: ignore[arg-type]
    assert isinstance(hangup, CallCommand) and isinstance(hangup.action, ApplyFlow)
    assert hangup.action.flow.to_wire() == [{"command": "hangup"}]


def test_twiml_is_left_unread_by_parse_and_read_by_read_document() -> None:
    command = parse("twiml prod:CA0123456789abcdef0123456789abcdef '<Response><Hangup/></Response>'")
    assert isinstance(command, DocumentCall) and command.name == ActionName.TWIML
    read = read_document(command)
    assert isinstance(read.action, InlineTwiml) and read.action.twiml == "<Response><Hangup/></Response>"
    malformed = parse("twiml prod:CA0123456789abcdef0123456789abcdef '<Response>'")
    assert isinstance(malformed, DocumentCall)
    with pytest.raises(InvalidInput, match="is not well-formed XML"):
        read_document(malformed)


def test_a_very_long_command_is_refused_not_processed() -> None:
    try:
        parse("hangup " + "x" * 10_000)
    except InvalidInput as error:
        assert "the limit is 8000" in error.message
    else:  # pragma: no cover
        raise AssertionError("expected a refusal")
