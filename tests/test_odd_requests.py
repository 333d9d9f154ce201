"""Whatever a signed request carries, the answer is never a 500 or a stack trace."""

from __future__ import annotations

import json

import pytest

from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, PAYLOADS, Bot, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot
FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize("name", ["block_actions.json", "view_submission.json", "block_suggestion.json"])
def test_slack_interactivity_samples_are_acknowledged(bot: Bot, name: str) -> None:
    payload = json.loads((PAYLOADS / name).read_text())
    if "response_url" in payload:
        payload["response_url"] = bot.fake_slack.response_url("old-button")
    response = bot.slack.interact(payload)
    assert response.status_code == 200
    if name == "block_actions.json":
        [posted] = bot.fake_slack.wait_responses(1)
        assert "no longer active" in reply_text(posted.json)
    if name == "block_suggestion.json":
        assert response.json() == {"options": []}


@pytest.mark.parametrize(
    "body",
    [
        "payload=not-json",
        "payload=%7B%7D",
        "payload=%5B1%2C2%5D",
        "",
        "command=%2Fcall",
        "text=hangup&command=%2Fcall&user_id=U1",
    ],
)
def test_malformed_signed_bodies_never_500(bot: Bot, body: str) -> None:
    response = bot.slack.post(body, bot.slack.sign(body), "application/x-www-form-urlencoded")
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text


def test_a_command_without_user_or_text_opens_the_form(bot: Bot) -> None:
    body = "command=%2Fcall&team_id=T0001&trigger_id=1.2.3"
    response = bot.slack.post(body, bot.slack.sign(body), "application/x-www-form-urlencoded")
    assert response.status_code == 200
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    assert bot.fake_slack.calls("views.open")[0]["trigger_id"] == "1.2.3"
    assert "may not run any call action yet" in json.dumps(bot.fake_slack.calls("views.update")[0])


def test_get_on_the_events_endpoint_is_not_a_500(bot: Bot) -> None:
    assert bot.slack.http.get("/slack/events").status_code == 405


@pytest.mark.parametrize("command", ["/callx", "/CALL", "/cal", "/call/"])
def test_only_the_call_command_is_call(bot: Bot, command: str) -> None:
    bot.db.grant(ALICE, "hangup", "prod")
    sid = bot.fake_twilio.add_call(call_sid(1))
    body = bot.slack.command_body(f"hangup prod:{sid}", command=command)
    response = bot.slack.post(body, bot.slack.sign(body), FORM)
    assert response.status_code == 200
    assert "callbot answers `/call` only" in reply_text(response.json())
    assert bot.db.audit() == []
    assert bot.fake_twilio.requests == []
