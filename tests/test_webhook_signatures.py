"""The providers' callback schemes, checked without HTTP (bot/providers/callbacks.py), and what a
verified callback says (bot/domain/callbacks.py).

Twilio: the vectors of twilio-python's own tests (tests/unit/test_request_validator.py), then
signatures made here by the algorithm written out again, independently of callbot's. Bird: its
documentation's algorithm (docs.bird.com, "Verifying a webhook subscription") written out here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import BandwidthAccount, BirdAccount, TwilioAccount
from bot.domain.callbacks import CallbackEvent, CallbackResult, from_bandwidth, from_bird, from_twilio
from bot.providers.callbacks import (
    Delivery,
    Refused,
    Verified,
    twilio_signature,
    twilio_valid,
    verify_bandwidth,
    verify_bird,
    verify_twilio,
)

# -- Twilio: twilio-python's own test vectors --------------------------------------------------

SDK_TOKEN = "12345"
SDK_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
SDK_PARAMS = {
    "CallSid": ["CA1234567890ABCDE"],
    "Caller": ["+14158675309"],
    "Digits": ["1234"],
    "From": ["+14158675309"],
    "To": ["+18005551212"],
}
SDK_BODY = b'{"property": "value", "boolean": true}'
SDK_BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"


def test_twilio_signature_is_the_sdk_s_known_vector() -> None:
    assert twilio_signature(SDK_TOKEN, SDK_URL, SDK_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_valid(SDK_TOKEN, SDK_URL, SDK_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_twilio_repeated_parameters_are_signed_in_sorted_order_as_the_sdk_does() -> None:
    params = {"Sid": ["CA123"], "SidAccount": ["AC123"], "Digits": ["5678", "1234"]}
    assert twilio_signature(SDK_TOKEN, SDK_URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_twilio_a_repeated_name_and_value_is_signed_once_as_the_sdk_does() -> None:
    # The SDK's test_compute_signature_duplicate_multi_dict: `Digits=1234` twice ("Ensure
    # duplicates are removed") signs as the vector above, its values taken as sorted(set(values)).
    params = {"Sid": ["CA123"], "SidAccount": ["AC123"], "Digits": ["5678", "1234", "1234"]}
    assert twilio_signature(SDK_TOKEN, SDK_URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert twilio_valid(SDK_TOKEN, SDK_URL, params, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        # A port in the URL: the signature of the URL without it is accepted (https and http).
        (SDK_URL.replace(".com", ".com:1234"), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        (SDK_URL.replace(".com", ".com:1234").replace("https", "http"), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        # No port: the signature of the URL with the scheme's standard port is accepted too.
        (SDK_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        (SDK_URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ],
)
def test_twilio_url_is_tried_with_and_without_its_port_as_the_sdk_does(url: str, signature: str) -> None:
    assert twilio_valid(SDK_TOKEN, url, SDK_PARAMS, signature)


def test_twilio_json_body_is_signed_through_the_url_s_body_hash_as_the_sdk_does() -> None:
    assert hashlib.sha256(SDK_BODY).hexdigest() == SDK_BODY_HASH
    url = f"{SDK_URL}&bodySHA256={SDK_BODY_HASH}"
    assert twilio_valid(SDK_TOKEN, url, SDK_BODY, "a9nBmqA0ju/hNViExpshrM61xv4=")
    # The URL's hash pins the body: another body with the same signed URL is refused.
    assert not twilio_valid(SDK_TOKEN, url, SDK_BODY + b" ", "a9nBmqA0ju/hNViExpshrM61xv4=")
    # A body that is not a form without a bodySHA256 cannot be checked: refused.
    assert not twilio_valid(SDK_TOKEN, SDK_URL, SDK_BODY, "a9nBmqA0ju/hNViExpshrM61xv4=")


# -- Twilio: the algorithm written out independently -------------------------------------------


def signed_by_hand(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    """Twilio's documented scheme: the full URL, then each parameter name and value, the
    parameters sorted by name (a repeated name: its distinct values sorted, as the SDK signs
    them), HMAC-SHA1, base64."""
    data = url
    for name, value in sorted(set(pairs)):  # (name, value) tuples sort by name, then by value
        data += name + value
    digest = hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@given(pairs=st.lists(st.tuples(names, values), max_size=8), token=st.text(min_size=1, max_size=40))
def test_twilio_form_signatures_agree_with_the_algorithm_written_out(pairs: list[tuple[str, str]], token: str) -> None:
    url = "https://callbot.example.com/webhooks/twilio/prod?x=1"
    signature = signed_by_hand(token, url, pairs)
    assert twilio_signature(token, url, grouped(pairs)) == signature
    assert twilio_valid(token, url, grouped(pairs), signature)
    # Every pair sent twice: the same signature (each distinct value of a name is signed once).
    assert twilio_valid(token, url, grouped(pairs + pairs), signature)
    assert not twilio_valid(token + "x", url, grouped(pairs), signature)


@given(body=st.binary(max_size=200))
def test_twilio_body_signatures_agree_with_the_algorithm_written_out(body: bytes) -> None:
    url = f"https://callbot.example.com/webhooks/twilio/prod?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = signed_by_hand("tok", url, [])
    assert twilio_valid("tok", url, body, signature)
    assert not twilio_valid("tok", url, body + b"!", signature)


def twilio_delivery(pairs: list[tuple[str, str]], *, token: str = "tw-token", url: str | None = None) -> Delivery:
    from urllib.parse import urlencode

    url = url or "https://callbot.example.com/webhooks/twilio/prod"
    body = urlencode(pairs).encode()
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": signed_by_hand(token, url, pairs),
    }
    return Delivery(url, headers, body)


TWILIO = TwilioAccount(provider="twilio", account_sid="AC" + "0" * 32, auth_token="tw-token")


def test_verify_twilio_gives_the_signed_time_and_names_the_callback_by_its_signature() -> None:
    pairs = [
        ("CallSid", "CA" + "1" * 32),
        ("CallStatus", "completed"),
        ("Timestamp", "Mon, 07 Dec 2026 10:00:00 +0000"),
    ]
    verified = verify_twilio(TWILIO, twilio_delivery(pairs))
    assert isinstance(verified, Verified)
    assert verified.sent_at == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    # Reordered parameters are the same signed callback: the same fingerprint.
    again = verify_twilio(TWILIO, twilio_delivery(list(reversed(pairs))))
    assert isinstance(again, Verified) and again.fingerprint == verified.fingerprint


@pytest.mark.parametrize(
    ("change", "result"),
    [
        (lambda d: Delivery(d.url, {"content-type": d.headers["content-type"]}, d.body), CallbackResult.UNSIGNED),
        (lambda d: Delivery(d.url, d.headers, d.body + b"&CallStatus=busy"), CallbackResult.FORGED),
        (
            lambda d: Delivery("https://elsewhere.example/webhooks/twilio/prod", d.headers, d.body),
            CallbackResult.FORGED,
        ),
        (lambda d: Delivery(None, d.headers, d.body), CallbackResult.UNCONFIGURED),
    ],
    ids=["no-signature", "body-changed", "other-url", "no-public-url"],
)
def test_verify_twilio_refuses(change: object, result: CallbackResult) -> None:
    delivery = change(twilio_delivery([("CallSid", "CA" + "1" * 32)]))  # type: ignore[operator]
    refused = verify_twilio(TWILIO, delivery)
    assert isinstance(refused, Refused) and refused.result is result


@pytest.mark.parametrize(
    "timestamp",
    [None, "", "not a date", "Mon, 07 Dec 2026 10:00:00"],  # the last without a zone: no certain time
    ids=["absent", "blank", "unreadable", "no-zone"],
)
def test_verify_twilio_refuses_a_signed_callback_without_its_timestamp(timestamp: str | None) -> None:
    # Every Twilio call status callback carries Timestamp (Call resource, "StatusCallbackEvent":
    # Timestamp, CallbackSource, SequenceNumber): one signed without it is not a status callback.
    pairs = [("CallSid", "CA" + "1" * 32), ("CallStatus", "completed")]
    pairs += [] if timestamp is None else [("Timestamp", timestamp)]
    refused = verify_twilio(TWILIO, twilio_delivery(pairs))
    assert isinstance(refused, Refused) and refused.result is CallbackResult.STALE
    assert "no readable Timestamp" in refused.reason


def test_verify_twilio_uses_the_callback_auth_token_of_an_api_key_account() -> None:
    keyed = TwilioAccount(
        provider="twilio",
        account_sid="AC" + "0" * 32,
        api_key_sid="SK" + "0" * 32,
        api_key_secret="secret",
        callback_auth_token="cb-token",
    )
    pairs = [("A", "1"), ("Timestamp", "Mon, 07 Dec 2026 10:00:00 +0000")]
    assert isinstance(verify_twilio(keyed, twilio_delivery(pairs, token="cb-token")), Verified)
    without = keyed.model_copy(update={"callback_auth_token": None})
    refused = verify_twilio(without, twilio_delivery(pairs, token="cb-token"))
    assert isinstance(refused, Refused) and refused.result is CallbackResult.UNCONFIGURED


# -- Bandwidth -----------------------------------------------------------------------------------

BANDWIDTH = BandwidthAccount(
    provider="bandwidth",
    account_id="9900000",
    username="api",
    password="api-pass",
    callback_username="bw-cb",
    callback_password="bw-cb-pass",
)


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("headers", "result"),
    [
        ({}, CallbackResult.UNSIGNED),
        ({"authorization": "Bearer x"}, CallbackResult.UNSIGNED),
        (basic("bw-cb", "wrong"), CallbackResult.FORGED),
        (basic("someone", "bw-cb-pass"), CallbackResult.FORGED),
        ({"authorization": "Basic !!!"}, CallbackResult.FORGED),
        ({"authorization": "Basic " + base64.b64encode(b"bw-cb").decode()}, CallbackResult.FORGED),
    ],
)
def test_verify_bandwidth_refuses(headers: dict[str, str], result: CallbackResult) -> None:
    refused = verify_bandwidth(BANDWIDTH, Delivery(None, headers, b"{}"))
    assert isinstance(refused, Refused) and refused.result is result


def test_verify_bandwidth_takes_the_application_s_callback_credentials() -> None:
    body = b'{"eventType": "disconnect", "eventTime": "2026-12-07T10:00:00.123Z"}'
    verified = verify_bandwidth(BANDWIDTH, Delivery(None, basic("bw-cb", "bw-cb-pass"), body))
    assert isinstance(verified, Verified)
    assert verified.sent_at == datetime(2026, 12, 7, 10, 0, 0, 123000, tzinfo=UTC)
    assert verified.fingerprint == hashlib.sha256(body).digest()
    unconfigured = verify_bandwidth(
        BANDWIDTH.model_copy(update={"callback_username": None, "callback_password": None}),
        Delivery(None, basic("bw-cb", "bw-cb-pass"), body),
    )
    assert isinstance(unconfigured, Refused) and unconfigured.result is CallbackResult.UNCONFIGURED


@pytest.mark.parametrize(
    "body",
    [b'{"eventType": "disconnect"}', b'{"eventType": "disconnect", "eventTime": "yesterday"}', b"not json"],
    ids=["absent", "unreadable", "not-json"],
)
def test_verify_bandwidth_refuses_an_event_without_its_event_time(body: bytes) -> None:
    refused = verify_bandwidth(BANDWIDTH, Delivery(None, basic("bw-cb", "bw-cb-pass"), body))
    assert isinstance(refused, Refused) and refused.result is CallbackResult.STALE
    assert "no readable eventTime" in refused.reason


# -- Bird: the documentation's algorithm written out ---------------------------------------------

BIRD = BirdAccount(
    provider="bird",
    workspace_id="ws",
    channel_id="0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    access_key="access",
    webhook_signing_key="bird-signing-key",
)


def bird_signed_by_hand(key: str, timestamp: str, url: str, body: bytes) -> str:
    """docs.bird.com's Python example: SHA-256 of the body as raw bytes, joined with the
    timestamp and URL by newlines, HMAC-SHA256 with the signing key, base64."""
    checksum = hashlib.sha256(body).digest().decode("latin-1")
    payload = "\n".join([timestamp, url, checksum])
    return base64.b64encode(
        hmac.new(key.encode("latin-1"), payload.encode("latin-1"), hashlib.sha256).digest()
    ).decode()


def bird_delivery(body: bytes, *, timestamp: str = "1765100000", key: str = "bird-signing-key") -> Delivery:
    url = "https://callbot.example.com/webhooks/bird/bird"
    headers = {
        "messagebird-signature": bird_signed_by_hand(key, timestamp, url, body),
        "messagebird-request-timestamp": timestamp,
    }
    return Delivery(url, headers, body)


@given(body=st.binary(max_size=300), timestamp=st.integers(min_value=0, max_value=10**11 - 1))
def test_bird_signatures_agree_with_the_documented_algorithm(body: bytes, timestamp: int) -> None:
    verified = verify_bird(BIRD, bird_delivery(body, timestamp=str(timestamp)))
    assert isinstance(verified, Verified)
    assert verified.sent_at == datetime.fromtimestamp(timestamp, UTC)


@pytest.mark.parametrize(
    ("delivery", "result"),
    [
        (Delivery("https://callbot.example.com/webhooks/bird/bird", {}, b"{}"), CallbackResult.UNSIGNED),
        (bird_delivery(b"{}", key="another-key"), CallbackResult.FORGED),
        (Delivery(bird_delivery(b"{}").url, bird_delivery(b"{}").headers, b"{ }"), CallbackResult.FORGED),
        (Delivery(None, bird_delivery(b"{}").headers, b"{}"), CallbackResult.UNCONFIGURED),
        (
            Delivery(bird_delivery(b"{}").url, {**bird_delivery(b"{}").headers, "messagebird-signature": "%%"}, b"{}"),
            CallbackResult.FORGED,
        ),
    ],
    ids=["unsigned", "other-key", "body-changed", "no-public-url", "not-base64"],
)
def test_verify_bird_refuses(delivery: Delivery, result: CallbackResult) -> None:
    refused = verify_bird(BIRD, delivery)
    assert isinstance(refused, Refused) and refused.result is result


@pytest.mark.parametrize("timestamp", ["-1", "1e9", "9" * 30, " 1765100000"])
def test_verify_bird_refuses_a_signed_timestamp_that_is_not_a_time(timestamp: str) -> None:
    refused = verify_bird(BIRD, bird_delivery(b"{}", timestamp=timestamp))
    assert isinstance(refused, Refused) and refused.result is CallbackResult.STALE


# -- what a verified callback says ---------------------------------------------------------------

NOW = datetime(2026, 12, 7, 10, 0, 5, tzinfo=UTC)


def test_twilio_status_callback_reads_as_an_event() -> None:
    params = {
        "CallSid": "CA" + "1" * 32,
        "CallStatus": "completed",
        "Timestamp": "Mon, 07 Dec 2026 10:00:00 +0000",
        "AccountSid": "AC" + "0" * 32,
    }
    assert from_twilio(params, "prod", NOW, account_sid="AC" + "0" * 32) == CallbackEvent(
        "twilio", "prod", "CA" + "1" * 32, "completed", "completed", NOW - timedelta(seconds=5)
    )
    assert from_twilio({**params, "AccountSid": "AC" + "9" * 32}, "prod", NOW, account_sid="AC" + "0" * 32) is None
    unknown = from_twilio({"CallSid": "CA1", "CallStatus": "whatever"}, "prod", NOW, account_sid="AC")
    assert unknown is not None and (unknown.status, unknown.word, unknown.at) == (None, "whatever", NOW)
    assert from_twilio({"CallStatus": "completed"}, "prod", NOW, account_sid="AC") is None


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ({"eventType": "disconnect", "cause": "hangup", "answerTime": "2026-12-07T09:59:00Z"}, "completed"),
        ({"eventType": "disconnect", "cause": "timeout"}, "no-answer"),
        ({"eventType": "disconnect", "cause": "cancel"}, "canceled"),
        ({"eventType": "disconnect", "cause": "something-new"}, "failed"),
        ({"eventType": "disconnect", "cause": "something-new", "answerTime": "2026-12-07T09:59:00Z"}, "completed"),
        ({"eventType": "answer"}, "in-progress"),
        ({"eventType": "initiate"}, "ringing"),
        ({"eventType": "redirect"}, None),
    ],
)
def test_bandwidth_events_read_as_the_client_reads_call_states(event: dict[str, str], status: str | None) -> None:
    body = {**event, "callId": "c-abc", "accountId": "9900000", "eventTime": "2026-12-07T10:00:00.000Z"}
    read = from_bandwidth(body, "bw", NOW, account_id="9900000")
    assert read == CallbackEvent("bandwidth", "bw", "c-abc", status, event["eventType"], NOW - timedelta(seconds=5))
    assert from_bandwidth({**body, "accountId": "1"}, "bw", NOW, account_id="9900000") is None
    assert from_bandwidth([body], "bw", NOW, account_id="9900000") is None


def test_bird_voice_events_read_as_the_client_reads_call_states() -> None:
    call = {"id": "8d3c5b1a-0f2e-4c7d-9a6b-1e2f3a4b5c6d", "channelId": BIRD.channel_id, "status": "ongoing"}
    body = {"service": "channels", "event": "voice.outbound", "payload": {**call, "updatedAt": "2026-12-07T10:00:00Z"}}
    assert from_bird(body, "bird", NOW, channel_id=BIRD.channel_id) == CallbackEvent(
        "bird", "bird", call["id"], "in-progress", "ongoing", NOW - timedelta(seconds=5)
    )
    cancelled = from_bird({**body, "payload": {**call, "status": "cancelled"}}, "bird", NOW, channel_id=BIRD.channel_id)
    assert cancelled is not None and (cancelled.status, cancelled.at) == ("canceled", NOW)
    signed = from_bird({**body, "payload": call}, "bird", NOW, channel_id=BIRD.channel_id, sent_at=NOW - timedelta(1))
    assert signed is not None and signed.at == NOW - timedelta(1)
    assert from_bird({**body, "event": "sms.outbound"}, "bird", NOW, channel_id=BIRD.channel_id) is None
    assert from_bird(body, "bird", NOW, channel_id="another-channel") is None
    assert from_bird({"payload": "x", "event": "voice.inbound"}, "bird", NOW, channel_id=BIRD.channel_id) is None
