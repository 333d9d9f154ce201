"""Only requests signed with the signing secret, and fresh, reach the bot."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier

from bot.http_body import BODY_LIMIT
from bot.slack.edge import check_signature
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, SIGNING_SECRET, Bot, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot
FORM = "application/x-www-form-urlencoded"


def _prepare(bot: Bot) -> str:
    bot.db.grant(ALICE, "hangup", "prod")
    sid = bot.fake_twilio.add_call(call_sid(1))
    return bot.slack.command_body(f"hangup prod:{sid}")


def test_forged_signature_is_refused_with_401_and_nothing_happens(bot: Bot) -> None:
    body = _prepare(bot)
    headers = bot.slack.sign(body)
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    response = bot.slack.post(body, headers, "application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert bot.db.audit() == []
    assert bot.fake_twilio.requests == []


def test_body_changed_after_signing_is_refused(bot: Bot) -> None:
    body = _prepare(bot)
    headers = bot.slack.sign(body)
    response = bot.slack.post(body.replace("hangup", "cancel"), headers, "application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert bot.db.audit() == []


def test_stale_timestamp_is_refused(bot: Bot) -> None:
    body = _prepare(bot)
    headers = bot.slack.sign(body, timestamp=int(time.time()) - 6 * 60)
    response = bot.slack.post(body, headers, "application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert bot.db.audit() == []
    assert bot.fake_twilio.requests == []


def test_missing_signature_headers_are_refused(bot: Bot) -> None:
    body = _prepare(bot)
    response = bot.slack.post(body, {}, "application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert bot.db.audit() == []


def test_healthz_answers_ok(bot: Bot) -> None:
    response = bot.slack.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def _sign_bytes(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """Slack's v0 signature over raw bytes (the driver's signs text)."""
    ts = timestamp or str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@pytest.mark.parametrize("timestamp", ["abc", "12.5", "-60", "1e9", "+1700000000", "١٧٠٠٠٠٠٠٠٠", "9" * 40])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(
    bot: Bot, timestamp: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = _prepare(bot)
    headers = bot.slack.sign(body)
    headers["X-Slack-Request-Timestamp"] = timestamp
    response = bot.slack.http.post(
        "/slack/events",
        content=body.encode(),
        headers={**_encoded(headers), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401
    assert bot.db.audit() == []
    _assert_no_traceback(caplog)


@pytest.mark.parametrize("signature", ["v0=" + "0" * 63, "v0=" + "G" * 64, "v1=" + "0" * 64, "v0=", "0" * 67, "v0=ü"])
def test_a_malformed_signature_is_refused(bot: Bot, signature: str, caplog: pytest.LogCaptureFixture) -> None:
    body = _prepare(bot)
    headers = {**bot.slack.sign(body), "X-Slack-Signature": signature}
    response = bot.slack.http.post(
        "/slack/events",
        content=body.encode(),
        headers={**_encoded(headers), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401
    assert bot.db.audit() == []
    _assert_no_traceback(caplog)


def test_a_timestamp_from_the_future_is_refused(bot: Bot) -> None:
    body = _prepare(bot)
    response = bot.slack.post(body, bot.slack.sign(body, timestamp=int(time.time()) + 6 * 60), FORM)
    assert response.status_code == 401
    assert bot.fake_twilio.requests == []


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\x00payload=%7B",
        b"payload=\xc3\x28",
        b"payload=not-json",
        b"payload=%5B1%2C2%5D",
        b"payload=%7B%22type%22%3A%22block_actions%22%2C%22user%22%3A7%7D",
        b'{"type": "event_callback", "event": []}',
        b"command=%2Fcall&text=hangup",
    ],
)
def test_unsigned_bodies_are_refused_before_they_are_read(
    bot: Bot, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    response = bot.slack.http.post("/slack/events", content=body, headers={"Content-Type": FORM})
    assert response.status_code == 401
    assert bot.db.audit() == []
    _assert_no_traceback(caplog)
    # One line says why, without the body.
    [line] = [r.getMessage() for r in caplog.records if r.name == "bot.web"]
    assert "HTTP 401" in line
    assert "payload" not in line


def test_a_signed_body_that_is_not_utf8_is_a_clean_400(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    body = b"payload=\xc3\x28"
    response = bot.slack.http.post("/slack/events", content=body, headers={**_sign_bytes(body), "Content-Type": FORM})
    assert response.status_code == 400
    assert response.text == "The request body is not UTF-8.\n"
    _assert_no_traceback(caplog)


def test_a_body_over_the_limit_is_refused_from_its_content_length(bot: Bot) -> None:
    body = _prepare(bot) + "&pad=" + "a" * BODY_LIMIT
    response = bot.slack.post(body, bot.slack.sign(body), FORM)
    assert response.status_code == 413
    assert response.text == "The request body is over the 1024 KiB callbot accepts.\n"
    assert bot.db.audit() == []


def test_a_streamed_body_over_the_limit_is_refused_while_it_is_read(bot: Bot) -> None:
    def chunks() -> Iterator[bytes]:
        # No Content-Length (chunked): the app finds out while reading, and stops there (uvicorn
        # then discards the rest as it arrives).
        for _ in range(64):
            yield b"a" * 64 * 1024

    response = bot.slack.http.post("/slack/events", content=chunks(), headers={"Content-Type": FORM})
    assert response.status_code == 413
    assert bot.db.audit() == []


def test_a_signed_body_just_under_the_limit_is_served(bot: Bot) -> None:
    body = _prepare(bot)
    body += "&pad=" + "a" * (BODY_LIMIT - len(body) - len("&pad="))
    assert len(body) == BODY_LIMIT
    response = bot.slack.post(body, bot.slack.sign(body), FORM)
    assert response.status_code == 200
    [outcome] = bot.fake_slack.wait_responses(1)
    assert "Hung up" in reply_text(outcome.json)


NOW = 1_700_000_000


@given(
    body=st.text(st.characters(blacklist_categories=("Cs",))),
    age=st.integers(-5 * 60, 5 * 60),
    changed=st.booleans(),
)
def test_the_edge_takes_exactly_what_slack_sdk_signs(body: str, age: int, changed: bool) -> None:
    # slack_sdk's signer is the reference: the edge's check over bytes must agree with it.
    timestamp = str(NOW - age)
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body)
    headers = {"x-slack-request-timestamp": timestamp, "x-slack-signature": signature}
    sent = (body + "x" if changed else body).encode()
    refused = check_signature(SIGNING_SECRET, headers, sent, NOW)
    assert (refused is not None) == changed
    if refused:
        assert (refused.status, refused.reason) == (401, "The request's signature is not valid.")


def _encoded(headers: dict[str, str]) -> dict[str, bytes]:
    # httpx refuses non-ASCII str header values; bytes go as they are, as any client may send them.
    return {name: value.encode() for name, value in headers.items()}


def _assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]
