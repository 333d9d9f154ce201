"""No secret ever leaves: not in audit rows, Slack replies, or logs."""

from __future__ import annotations

import logging

import pytest

from bot.domain.redact import Redactor
from tests.fakes.server import Answer
from tests.fakes.slack import BOT_TOKEN
from tests.fakes.twilio import AUTH_TOKEN, call_sid
from tests.support.bots import ALICE, SIGNING_SECRET, Bot

TYPED_PASSWORD = "hunter2-typed-secret"


def test_secrets_are_absent_everywhere_after_successes_and_failures(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for action in ("hangup", "redirect", "twiml", "admin"):
        bot.db.grant(ALICE, action, "*")
    sid = bot.fake_twilio.add_call(call_sid(1))
    # A password in the URL is refused (bot/domain/urls.py); the refusal must not repeat it.
    bot.slack.command(f"redirect prod:{sid} https://user:{TYPED_PASSWORD}@example.com/x.xml")
    bot.slack.command(f"redirect prod:{sid} https://example.com/x password={TYPED_PASSWORD}")
    bot.slack.command(f"hangup prod:{sid} dry-run")
    bot.fake_twilio.script(Answer(500, f"token {AUTH_TOKEN} leaked by a broken proxy".encode()))
    bot.slack.run(f"hangup prod:{sid}")
    bot.fake_twilio.script(Answer.json(400, {"code": 21205, "message": f"bad {AUTH_TOKEN}", "status": 400}))
    bot.slack.run(f"hangup prod:{sid}")
    bot.slack.command("audit")

    everything = "\n".join(
        [
            str(bot.db.audit()),
            *(r.body.decode() for r in bot.fake_slack.requests if r.path.startswith("/response/")),
            caplog.text,
        ]
    )
    assert bot.db.audit(), "the scenario must have produced audit rows"
    for secret in (AUTH_TOKEN, SIGNING_SECRET, BOT_TOKEN, TYPED_PASSWORD):
        assert secret not in everything
    assert "***" in str(bot.db.audit())


def test_acks_carry_no_secret(bot: Bot) -> None:
    bot.db.grant(ALICE, "redirect", "prod")
    response = bot.slack.command(f"redirect prod:{call_sid(2)} https://u:{TYPED_PASSWORD}@example.com/x dry-run")
    assert response.status_code == 200
    assert TYPED_PASSWORD not in response.text and AUTH_TOKEN not in response.text
    assert "`https://***@example.com/x` has a user name or password before `@`" in response.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redirect x password=abc123 tag=1", "redirect x password=*** tag=1"),
        ('fallback-password="two words" x', "fallback-password=*** x"),
        ("https://bob:pw@host/path", "https://***@host/path"),
        ("Authorization: Basic QUM6dG9rZW4=", "Authorization: Basic ***"),
        ("token xoxb-123-456-abc here", "token *** here"),
        ("the configured value sekrit-value-1 appears", "the configured value *** appears"),
        ("`password=`: is not supported", "`password=`: is not supported"),
        ("[username=… password=…] [fallback-password=…]", "[username=… password=…] [fallback-password=…]"),
        ("password=*** already", "password=*** already"),
    ],
)
def test_redactor_masks_typed_and_configured_secrets(text: str, expected: str) -> None:
    assert Redactor(["sekrit-value-1"]).text(text) == expected


def test_redactor_masks_secret_keys_in_structures() -> None:
    redacted = Redactor().value({"password": "p", "params": {"fallback_password": "q", "url": "https://a:b@h/"}})
    assert redacted == {"password": "***", "params": {"fallback_password": "***", "url": "https://***@h/"}}
