"""Property-based: any text gives either a command or a clear InvalidInput, never an exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.errors import InvalidInput
from bot.domain.grammar import VERBS, Command, parse
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
    ]
)


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


def test_a_very_long_command_is_refused_not_processed() -> None:
    try:
        parse("hangup " + "x" * 10_000)
    except InvalidInput as error:
        assert "the limit is 8000" in error.message
    else:  # pragma: no cover
        raise AssertionError("expected a refusal")
