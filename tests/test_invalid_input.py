"""Bad input: a clear answer naming the word, an `invalid` audit row, nothing sent."""

from __future__ import annotations

import pytest

from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, Bot, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot

SID = call_sid(1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hangpu prod:" + SID, "`hangpu`: is not a command. Did you mean `hangup`?"),
        (
            f"redirect prod:{SID} https://example.com/x methd=GET",
            "`methd=`: is not an option of `redirect`. Did you mean `method`?",
        ),
        (f"redirect prod:{SID} https://example.com/x tag=vip", "`tag=`: is not supported by twilio for `redirect`"),
        (f"redirect prod:{SID} https://example.com/x username=u password=p", "`password=`: is not supported by twilio"),
        (f"redirect prod:{SID} ftp://example.com/x", "is not an absolute http(s) URL"),
        (
            f"redirect prod:{SID} https://example.com/x method=PUT",
            "`method=PUT`: is not an allowed method. Use GET or POST.",
        ),
        (
            f"redirect prod:{SID} https://example.com/x time-limit=0",
            "`time-limit=0`: must be a whole number of seconds",
        ),
        (f"redirect prod:{SID} https://example.com/x time-limit=ten", "`time-limit=ten`"),
        (f"redirect prod:{SID}", "`redirect` needs URL."),
        (f"twiml prod:{SID} '&lt;Response&gt;&lt;Say&gt;hi&lt;/Response&gt;'", "is not well-formed XML"),
        (f"twiml prod:{SID} '&lt;Say&gt;hi&lt;/Say&gt;'", "the root element is <Say>, it must be <Response>"),
        (f'hangup prod:{SID} reason="unclosed', "A quote is not closed."),
        (f"hangup prod:{SID} dryrun", "`dryrun`: is one word too many. Did you mean `dry-run`?"),
        (f"hangup prod:{SID} reason=a reason=b", "`reason=`: is given twice."),
        (f"hangup prd:{SID}", "`prd:`: is not a configured account. Did you mean `prod`?"),
        (
            "hangup prod:CA123",
            "`CA123`: is not a twilio call id. twilio call ids look like `CA0123456789abcdef0123456789abcdef`.",
        ),
        ("hangup 12345", "`12345`: does not look like a call id of any configured provider."),
        ("hangup", "`hangup` needs CALL."),
        ("flow prod:" + SID, "`flow` needs CALLFLOW."),
        (
            "flow prod:" + SID + """ '[{"command":"hangup"}]'""",
            "callFlows are Bird's; on Twilio use `twiml` or `redirect`.",
        ),
        ("cancel prod:" + SID + ' reason=""', "is empty"),
        ("audit since=yesterday", "`since=yesterday`: is not a duration or a date."),
        ("audit outcome=sucess", "is not an outcome. Use one of: denied, invalid, dry_run, pending, succeeded"),
        ("grant alice hangup", "`alice`: is not a Slack user I can identify."),
        ("grant <@U0BOB0002> hangpu", "`hangpu`: is not an action. Did you mean `hangup`?"),
    ],
)
def test_invalid_input_is_explained_audited_and_nothing_is_sent(bot: Bot, text: str, expected: str) -> None:
    for action in ("hangup", "cancel", "redirect", "twiml", "admin"):
        bot.db.grant(ALICE, action, "*")
    response = bot.slack.command(text)
    assert response.status_code == 200
    shown = reply_text(response.json())
    assert expected in shown
    assert "Traceback" not in shown
    assert bot.fake_twilio.requests == []
    [row] = bot.db.audit()
    assert row["outcome"] == "invalid"
    assert expected in row["error_message"]


def test_twiml_over_twilio_limit_is_refused(bot: Bot) -> None:
    bot.db.grant(ALICE, "twiml", "prod")
    long_twiml = "&lt;Response&gt;&lt;Say&gt;" + "x" * 4000 + "&lt;/Say&gt;&lt;/Response&gt;"
    shown = reply_text(bot.slack.command(f"twiml prod:{SID} '{long_twiml}'").json())
    assert "Twilio accepts at most 4000" in shown
    assert bot.fake_twilio.requests == []


def test_invalid_input_is_refused_even_before_permission_is_known(bot: Bot) -> None:
    shown = reply_text(bot.slack.command("hnagup prod:" + SID).json())
    assert "Did you mean `hangup`" in shown
    assert bot.db.audit()[0]["action"] is None


def test_denied_comes_before_provider_option_checks(bot: Bot) -> None:
    shown = reply_text(bot.slack.command(f"redirect prod:{SID} https://example.com/x tag=vip").json())
    assert "not allowed to `redirect`" in shown
