"""Every Twilio action through a signed slash command, asserting the exact wire request."""

from __future__ import annotations

import base64

import pytest

from tests.fakes.twilio import ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, call_sid
from tests.support.bots import ALICE, TWILIO_ONLY, Bot, BotFactory, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot

BASIC = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()


def call_path(sid: str) -> str:
    return f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json"


def test_hangup_sends_status_completed_and_audits_before_and_after(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(1))
    bot.db.grant(ALICE, "hangup", "prod")

    ack, outcome = bot.slack.run(f"hangup prod:{sid}")

    assert f"Hanging up prod:{sid}" in reply_text(ack)
    assert ack["response_type"] == "ephemeral"
    [request] = bot.fake_twilio.updates()
    assert request.method == "POST"
    assert request.path == call_path(sid)
    assert request.header("authorization") == BASIC
    assert request.header("content-type") == "application/x-www-form-urlencoded"
    assert request.header("user-agent").startswith("callbot/")
    assert request.form_pairs == [("Status", "completed")]

    assert f"Hung up prod:{sid}" in reply_text(outcome)
    assert "`completed`" in reply_text(outcome)
    assert outcome["response_type"] == "ephemeral"
    assert outcome["replace_original"] is False

    [row] = bot.db.audit()
    assert row["outcome"] == "succeeded"
    assert (row["source"], row["user_id"], row["user_name"]) == ("slash", ALICE, "alice")
    assert (row["team_id"], row["channel_id"]) == ("T0001", "C2147483705")
    assert (row["action"], row["account"], row["provider"], row["call_id"]) == ("hangup", "prod", "twilio", sid)
    assert row["command_text"] == f"/call hangup prod:{sid}"
    assert row["decision"] == "allowed" and row["grant_id"] is not None
    assert "hangup on account prod" in row["decision_basis"]
    assert row["provider_status"] == 200
    assert row["provider_request_id"].startswith("RQ")
    assert row["latency_ms"] is not None and row["latency_ms"] >= 0
    assert row["idempotency_key"].startswith("slack:")
    assert row["request"]["body"] == {"Status": "completed"}
    assert row["result"]["status"] == "completed"
    assert row["completed_at"] is not None


def test_account_is_inferred_from_a_twilio_call_sid(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(2))
    bot.db.grant(ALICE, "hangup", "prod")
    _, outcome = bot.slack.run(f"hangup {sid}")
    assert bot.fake_twilio.updates()[0].path == call_path(sid)
    assert f"Hung up prod:{sid}" in reply_text(outcome)


@pytest.mark.parametrize("typed", ["prod:{sid}", "{sid}"], ids=["named", "inferred"])
def test_an_upper_case_call_sid_is_accepted_and_sent_as_typed(bot: Bot, typed: str) -> None:
    # Twilio's spec: CallSid is ^CA[0-9a-fA-F]{32}$.
    sid = bot.fake_twilio.add_call("CA" + "0123456789ABCDEF" * 2)
    bot.db.grant(ALICE, "hangup", "prod")
    _, outcome = bot.slack.run(f"hangup {typed.format(sid=sid)}")
    [request] = bot.fake_twilio.updates()
    assert request.path == call_path(sid)
    assert f"Hung up prod:{sid}" in reply_text(outcome)
    assert bot.db.audit()[0]["call_id"] == sid


def test_cancel_sends_status_canceled_for_a_ringing_call(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(3), "ringing")
    bot.db.grant(ALICE, "cancel", "prod")
    _, outcome = bot.slack.run(f'cancel {sid} reason="wrong number"')
    assert bot.fake_twilio.updates()[0].form_pairs == [("Status", "canceled")]
    assert f"Canceled prod:{sid}" in reply_text(outcome)
    assert "Reason: wrong number" in reply_text(outcome)
    assert bot.db.audit()[0]["outcome"] == "succeeded"


def test_cancel_on_an_answered_call_says_it_is_still_up_and_suggests_hangup(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(4), "in-progress")
    bot.db.grant(ALICE, "cancel", "prod")
    _, outcome = bot.slack.run(f"cancel prod:{sid}")
    text = reply_text(outcome)
    assert "still in progress" in text
    assert f"/call hangup prod:{sid}" in text


def test_redirect_sends_every_twilio_parameter_in_order(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(5))
    bot.db.grant(ALICE, "redirect", "prod")
    _, outcome = bot.slack.run(
        f"redirect prod:{sid} https://example.com/hold.xml method=get fallback=https://example.com/fb.xml "
        "fallback-method=POST status-callback=https://example.com/status status-callback-method=GET time-limit=600"
    )
    assert bot.fake_twilio.updates()[0].form_pairs == [
        ("Url", "https://example.com/hold.xml"),
        ("Method", "GET"),
        ("FallbackUrl", "https://example.com/fb.xml"),
        ("FallbackMethod", "POST"),
        ("StatusCallback", "https://example.com/status"),
        ("StatusCallbackMethod", "GET"),
        ("TimeLimit", "600"),
    ]
    assert f"Redirected prod:{sid} to https://example.com/hold.xml" in reply_text(outcome)
    assert "`in-progress`" in reply_text(outcome)


def test_redirect_accepts_links_as_slack_escapes_them(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(6))
    bot.db.grant(ALICE, "redirect", "prod")
    bot.slack.run(f"redirect prod:{sid} <https://example.com/hold.xml?a=1&amp;b=2> fallback=<https://example.com/f|f>")
    assert bot.fake_twilio.updates()[0].form_pairs == [
        ("Url", "https://example.com/hold.xml?a=1&b=2"),
        ("FallbackUrl", "https://example.com/f"),
    ]


def test_inline_twiml_arrives_exactly_as_typed(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(7))
    bot.db.grant(ALICE, "twiml", "prod")
    # Slack escapes <, > and & in command text (the person typed `&amp;`, as XML wants).
    _, outcome = bot.slack.run(
        f"twiml {sid} “&lt;Response&gt;&lt;Say voice='alice'&gt;Goodbye &amp;amp; thanks&lt;/Say&gt;&lt;Hangup/&gt;&lt;/Response&gt;”"
    )
    assert bot.fake_twilio.updates()[0].form_pairs == [
        ("Twiml", "<Response><Say voice='alice'>Goodbye &amp; thanks</Say><Hangup/></Response>")
    ]
    assert "running the inline TwiML" in reply_text(outcome)


@pytest.mark.parametrize(
    ("text", "expected_body"),
    [
        ("hangup prod:{sid} dry-run", "Status=completed"),
        ("cancel prod:{sid} dry-run", "Status=canceled"),
        (
            "redirect prod:{sid} https://example.com/a.xml method=GET dry-run",
            "Url=https%3A%2F%2Fexample.com%2Fa.xml&Method=GET",
        ),
        (
            'twiml prod:{sid} "<Response><Hangup/></Response>" dry-run',
            "Twiml=%3CResponse%3E%3CHangup%2F%3E%3C%2FResponse%3E",
        ),
    ],
)
def test_dry_run_shows_the_exact_request_and_sends_nothing(bot: Bot, text: str, expected_body: str) -> None:
    sid = bot.fake_twilio.add_call(call_sid(8))
    for action in ("hangup", "cancel", "redirect", "twiml"):
        bot.db.grant(ALICE, action, "prod")
    response = bot.slack.command(text.format(sid=sid).replace("<", "&lt;").replace(">", "&gt;"))
    assert response.status_code == 200
    shown = reply_text(response.json())
    assert "Dry run" in shown and "Nothing was sent" in shown
    assert f"POST {bot.fake_twilio.url}{call_path(sid)}" in shown
    assert "Authorization: Basic ***" in shown
    assert "Content-Type: application/x-www-form-urlencoded" in shown
    assert expected_body in shown
    assert AUTH_TOKEN not in response.text
    assert bot.fake_twilio.updates() == []
    [row] = bot.db.audit()
    assert row["outcome"] == "dry_run"
    assert row["completed_at"] is not None


def test_api_key_credentials_authenticate_with_the_key_and_keep_the_account_in_the_path(
    make_bot: BotFactory,
) -> None:
    config = make_bot.config(TWILIO_ONLY, name="k.toml")
    text = config.read_text().replace(
        'auth_token = "${TEST_TWILIO_AUTH_TOKEN}"', f'api_key_sid = "{API_KEY_SID}"\napi_key_secret = "${{KEY_SECRET}}"'
    )
    config.write_text(text)
    bot = make_bot(env={"CALLBOT_CONFIG": str(config), "KEY_SECRET": API_KEY_SECRET})
    fake_twilio, db = bot.fake_twilio, bot.db
    sid = fake_twilio.add_call(call_sid(9))
    db.grant(ALICE, "hangup", "prod")
    _, outcome = bot.slack.run(f"hangup prod:{sid}")
    [request] = fake_twilio.updates()
    assert request.path == call_path(sid)
    expected = "Basic " + base64.b64encode(f"{API_KEY_SID}:{API_KEY_SECRET}".encode()).decode()
    assert request.header("authorization") == expected
    assert "Hung up" in reply_text(outcome)
