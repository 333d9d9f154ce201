"""Whatever a signed request carries, the answer is never a 500 or a stack trace."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest

from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, PAYLOADS, Bot, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot
FORM = "application/x-www-form-urlencoded"
RESPONSE_URL = "http://127.0.0.1:9/response/none"


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
    body = urlencode({"command": "/call", "team_id": "T0001", "trigger_id": "1.2.3", "response_url": RESPONSE_URL})
    response = bot.slack.post(body, bot.slack.sign(body), "application/x-www-form-urlencoded")
    assert response.status_code == 200
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    assert bot.fake_slack.calls("views.open")[0]["trigger_id"] == "1.2.3"
    assert "may not run any call action yet" in json.dumps(bot.fake_slack.calls("views.update")[0])


def test_get_on_the_events_endpoint_is_not_a_500(bot: Bot) -> None:
    assert bot.slack.http.get("/slack/events").status_code == 405


def _payload(document: object) -> str:
    return urlencode({"payload": json.dumps(document)})


USER = {"id": "U2147483697"}


@pytest.mark.parametrize(
    ("body", "content_type", "why"),
    [
        ("payload=not-json", FORM, "the payload is not JSON"),
        ("payload=%5B1%2C2%5D", FORM, "the payload is not a JSON object"),
        ("payload=%7B%7D", FORM, "the payload has no type"),
        (_payload({"type": ["block_actions"]}), FORM, "the payload has no type"),
        (_payload({"type": "dialog_submission", "user": USER}), FORM, "callbot does not handle this type"),
        (
            _payload({"type": "block_actions", "user": USER, "actions": "x"}),
            FORM,
            "block_actions.actions is not a list",
        ),
        (_payload({"type": "block_actions", "user": USER, "actions": []}), FORM, "block_actions.actions is empty"),
        (
            _payload({"type": "block_actions", "user": "U1", "actions": [{"action_id": "a"}]}),
            FORM,
            "block_actions.user is not an object",
        ),
        (
            _payload(
                {
                    "type": "view_submission",
                    "user": USER,
                    "view": {"id": "V1", "hash": "h", "type": "modal", "callback_id": 7},
                }
            ),
            FORM,
            "view_submission.view.callback_id is not of type string",
        ),
        (
            _payload({"type": "view_closed", "user": USER, "view": {"callback_id": "c"}}),
            FORM,
            "view_closed.view.type is missing",
        ),
        (
            _payload({"type": "block_suggestion", "user": USER, "action_id": "a", "team": []}),
            FORM,
            "block_suggestion.team is not an object",
        ),
        (
            _payload({"type": "block_suggestion", "user": USER, "action_id": "a", "response_urls": None}),
            FORM,
            "block_suggestion.response_urls is not a list",
        ),
        ("", FORM, "the body is not a slash command, an interactivity payload or an event"),
        ("text=hangup&user_id=U1", FORM, "the body is not a slash command"),
        ("command=", FORM, "the slash command has no name"),
        ("command=%2Fcall", FORM, "command.response_url is missing"),
        ("command=%2Fcall&response_url=hooks", FORM, "command.response_url is not an http(s) address"),
        (
            # PostgreSQL could not store it in the audit: no Slack id is this long.
            urlencode({"command": "/call", "response_url": RESPONSE_URL, "user_id": "U" * 33}),
            FORM,
            "command.user_id is longer than 32 characters",
        ),
        ("{", "application/json", "the body is not JSON"),
        ("[1]", "application/json", "the body is not a JSON object"),
        ('{"type": "event_callback", "event": []}', "application/json", "event_callback.event is not an object"),
        (
            '{"type": "event_callback", "event": {"type": "app_home_opened"}}',
            "application/json",
            "event_callback.event.user is missing",
        ),
    ],
)
def test_signed_malformed_bodies_are_a_clean_400(
    bot: Bot, body: str, content_type: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = bot.slack.post(body, bot.slack.sign(body), content_type)
    assert response.status_code == 400
    assert response.text.startswith(f"callbot cannot read this request: {why}")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    assert bot.db.audit() == []


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


def test_a_command_that_mentions_payload_is_a_command(bot: Bot) -> None:
    # Bolt's own parsing takes any form with "payload" anywhere in it for an interactivity post,
    # finds no payload field and reads nothing: a 404 for the channel below.
    bot.db.grant(ALICE, "hangup", "prod")
    sid = bot.fake_twilio.add_call(call_sid(1))
    body = bot.slack.command_body(f"hangup prod:{sid}", channel_name="payload-team")
    response = bot.slack.post(body, bot.slack.sign(body), FORM)
    assert response.status_code == 200
    [outcome] = bot.fake_slack.wait_responses(1)
    assert f"Hung up prod:{sid}" in reply_text(outcome.json)
