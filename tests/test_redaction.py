"""The redactor on its own: every form an echo may give a configured secret, the places a secret
sits whatever its value, and the ordinary text it must leave alone (bot/domain/redact.py).
End to end through the providers, the audit table, exports, Slack and the log: tests/test_secrets.py."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from bot.config import Settings
from bot.domain.redact import Redactor
from tests.support.leaks import traces

USER = "AC0123456789abcdef0123456789abcdef"
HEX_TOKEN = "7f3c9a1e5b2d4c6a8e0f1a2b3c4d5e6f"  # like a Twilio auth token: echoed upper-cased by some
NASTY = 'Pa$$ w/rd+"é"~&x9'  # every character an encoding changes
SECRETS = (HEX_TOKEN, NASTY)


def _b64(data: bytes, *, urlsafe: bool = False, padded: bool = True) -> str:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    return text if padded else text.rstrip("=")


def _basic(secret: str) -> bytes:
    return f"{USER}:{secret}".encode()


# How a provider, a proxy or a library may echo a credential back. Each builds the echo from the secret.
ECHOES: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "upper-cased": str.upper,
    "lower-cased": str.lower,
    "Authorization: Basic": lambda s: f"Authorization: Basic {_b64(_basic(s))}",
    "authorization: basic, lower-case": lambda s: f"authorization: basic {_b64(_basic(s))}",
    "basic <b64> alone": lambda s: f"basic {_b64(_basic(s))}",
    "bare base64 of user:secret": lambda s: _b64(_basic(s)),
    "base64 of user:secret, unpadded": lambda s: _b64(_basic(s), padded=False),
    "url-safe base64 of user:secret": lambda s: _b64(_basic(s), urlsafe=True),
    "url-safe base64, unpadded": lambda s: _b64(_basic(s), urlsafe=True, padded=False),
    "base64 of the secret alone": lambda s: _b64(s.encode()),
    "base64 of the secret, unpadded": lambda s: _b64(s.encode(), padded=False),
    "base64 blob, secret at byte 1": lambda s: _b64(b"{" + s.encode() + b"}"),
    "base64 blob, secret at byte 2": lambda s: _b64(b'{"' + s.encode() + b'"}'),
    "base64 blob, secret at byte 3": lambda s: _b64(b'{"k' + s.encode() + b'"}', urlsafe=True),
    "long base64 blob": lambda s: _b64(b'{"headers": {"x": "' + s.encode() + b'"}, "n": 12345}'),
    "percent-encoded (quote)": lambda s: quote(s, safe=""),
    "percent-encoded, lower-case hex": lambda s: quote(s, safe="").lower(),
    "percent-encoded, / kept": lambda s: quote(s),
    "form-encoded (quote_plus)": quote_plus,
    "form-encoded user:secret": lambda s: quote_plus(f"{USER}:{s}"),
    "percent-encoded twice": lambda s: quote(quote(s, safe=""), safe=""),
    "JSON-escaped": lambda s: json.dumps(s)[1:-1],
    "JSON-escaped, non-ASCII kept": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "JSON inside JSON": lambda s: json.dumps(json.dumps({"password": s}))[1:-1],
    "JSON with \\/": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "HTML-escaped": html.escape,
    "Python repr": lambda s: repr(s)[1:-1],
    "bytes repr": lambda s: repr(s.encode())[2:-1],
    "bearer": lambda s: f"bearer {s}",
    "Authorization: Token": lambda s: f"Authorization: Token {s}",
}


@pytest.mark.parametrize("secret", SECRETS, ids=["hex token", "nasty"])
@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES.keys())
def test_every_echoed_form_of_a_configured_secret_is_masked(echo: Callable[[str], str], secret: str) -> None:
    text = f"Twilio said: got {echo(secret)} from you, refused."
    assert traces(text, [secret]), "the echo must carry the secret for the test to mean anything"
    redacted = Redactor(SECRETS).text(text)
    assert traces(redacted, [secret]) == [], redacted
    assert redacted.startswith("Twilio said: got ") and redacted.endswith(" from you, refused.")
    assert "***" in redacted


def test_a_secret_cut_off_by_a_provider_is_masked_too() -> None:
    # Providers clip their messages (Twilio at 500 characters, Bandwidth and Bird at 300 with …).
    redactor = Redactor([HEX_TOKEN])
    assert redactor.text(f"echo: {HEX_TOKEN[:20]}") == "echo: ***"
    assert redactor.text(f"echo: {HEX_TOKEN[:12].upper()}…") == "echo: ***…"
    basic = _b64(_basic(HEX_TOKEN))
    assert redactor.text(f"echo: Basic {basic[:-10]}") == "echo: Basic ***"
    # Too little of it is not a secret: ordinary text that starts like one stays.
    assert redactor.text(f"echo: {HEX_TOKEN[:6]}") == f"echo: {HEX_TOKEN[:6]}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Basic QUM6dG9rZW4=", "Authorization: Basic ***"),
        ("authorization: basic QUM6dG9rZW4=", "authorization: basic ***"),
        ("AUTHORIZATION: Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0", "AUTHORIZATION: Bearer ***"),
        ("Authorization: Token abcdef12", "Authorization: Token ***"),
        ("Authorization: AccessKey bird-key", "Authorization: AccessKey ***"),
        ("Authorization: dXNlcjpwYXNz", "Authorization: ***"),
        ('{"Authorization": "Basic dXNlcjpwYXNz"}', '{"Authorization": "***"}'),
        ("headers=[(b'authorization', b'Basic dXNlcjpwYXNz')]", "headers=[(b'authorization', b'Basic ***')]"),
        ("got basic dXNlcjpwYXNzd29yZA== back", "got basic *** back"),
        ("sent bearer 0a1b2c3d4e5f6a7b then", "sent bearer *** then"),
        ("token ab12cd34ef56 is bad", "token *** is bad"),
        ('{"password": "hunter2", "user": "bob"}', '{"password": "***", "user": "bob"}'),
        ('{"fallbackPassword":"x y z"}', '{"fallbackPassword":"***"}'),
        ('{"api_key": "k1", "secret": "s", "token": "t", "auth_token": "a"}', None),
        ('{\\"password\\": \\"hunter2\\"}', '{\\"password\\": \\"***\\"}'),
        ("{'client_secret': 'abc', 'n': 1}", "{'client_secret': '***', 'n': 1}"),
        ('{"pwd": 123456}', '{"pwd": "***"}'),
        ('{"password": null, "token": ""}', '{"password": null, "token": ""}'),
        ("login?user=bob&password=hunter2&next=/x", "login?user=bob&password=***&next=/x"),
        ("pwd=abc passwd=def api_key=ghi apikey=jkl", "pwd=*** passwd=*** api_key=*** apikey=***"),
        ("access_token=a&client_secret=b&token=c&secret=d", "access_token=***&client_secret=***&token=***&secret=***"),
        ("X-Api-Key: 3f9c2d71aa", "X-Api-Key: ***"),
        ("password: hunter2", "password: ***"),
        ("redirect x password=abc123 tag=1", "redirect x password=*** tag=1"),
        ("https://bob:pw@host/path", "https://***@host/path"),
        ("https://token:abc12345@host/x", "https://***@host/x"),
        ("XOXB-123-456-ABC and xoxp-1-2", "*** and ***"),
    ],
)
def test_secrets_are_masked_where_they_sit_whatever_their_value(text: str, expected: str | None) -> None:
    redacted = Redactor().text(text)
    if expected is None:  # every value masked
        assert redacted == '{"api_key": "***", "secret": "***", "token": "***", "auth_token": "***"}'
    else:
        assert redacted == expected


@pytest.mark.parametrize(
    "text",
    [
        "copy it from your Slack app's Basic Information page",
        "the token expired; ask for a new token",
        "Authorization failed. An admin must check its auth token.",
        "authorization: required",
        "Wrong password: try again",
        "must be a bot token starting with xoxb-",
        "`password=`: is not supported",
        "[username=… password=…] [fallback-password=…]",
        "password=*** already",
        "`page token`: is not one callbot gave for this listing.",
        '{"token_type": "bearer", "tokens": 3}',
        f"hangup prod:CA{'0' * 31}1 by U0ALICE01 to +447700900123",
        "Bearer tokens and Basic auth are both accepted",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor(SECRETS).text(text) == text


def test_structures_mask_secret_keys_whole_and_scan_the_rest() -> None:
    redacted = Redactor([HEX_TOKEN]).value(
        {
            "password": "p",
            "params": {"fallbackPassword": "q", "url": "https://a:b@h/", "note": f"echo {HEX_TOKEN.upper()}"},
            "headers": {"Authorization": "Basic x", "X-Api-Key": "k", "clientSecret": ["a"], "accessKey": "z"},
            "token": None,
            "pwd": "",
            "Status": "completed",
        }
    )
    assert redacted == {
        "password": "***",
        "params": {"fallbackPassword": "***", "url": "https://***@h/", "note": "echo ***"},
        "headers": {"Authorization": "***", "X-Api-Key": "***", "clientSecret": "***", "accessKey": "***"},
        "token": None,
        "pwd": "",
        "Status": "completed",
    }


def test_redacting_twice_changes_nothing_more() -> None:
    redactor = Redactor(SECRETS)
    for echo in ECHOES.values():
        once = redactor.text(f'a {echo(NASTY)} b password=x {{"token": "y"}}')
        assert redactor.text(once) == once


def test_secrets_added_later_are_masked_in_every_form() -> None:
    redactor = Redactor()
    redactor.add([None, "", "abc", HEX_TOKEN])  # nothing, and too short to mask blindly
    assert redactor.text(f"x {_b64(_basic(HEX_TOKEN))} abc") == "x *** abc"


def test_every_configured_secret_is_collected_the_database_password_in_both_forms() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://callbot:p%40ss%2Fw0rd@db.internal/callbot",
            "SLACK_SIGNING_SECRET": "signing-secret-1",
            "SLACK_BOT_TOKEN": "xoxb-1-2-bot",
            "SLACK_APP_TOKEN": "xapp-1-2-app",
            "CALLBOT_METRICS_TOKEN": "metrics-token-1",
            "TWILIO_ACCOUNT_SID": USER,
            "TWILIO_AUTH_TOKEN": HEX_TOKEN,
        }
    )
    secrets = set(settings.secrets())
    assert {"p%40ss%2Fw0rd", "p@ss/w0rd", "signing-secret-1", "xoxb-1-2-bot", "xapp-1-2-app"} <= secrets
    assert {"metrics-token-1", HEX_TOKEN} <= secrets
    redactor = Redactor(secrets)
    echoed = f"FATAL: password authentication failed ({_b64(b'callbot:p@ss/w0rd')}, P@SS/W0RD)"
    assert traces(redactor.text(echoed), ["p@ss/w0rd"]) == []


@pytest.mark.parametrize(
    "text",
    [
        r"redirect tw:CA1 https:\\alice:hunter2xyz@h/",  # providers read userinfo here too
        "redirect tw:CA1 https:/alice:hunter2xyz@h/",
        "{'password': b'hunter2xyz'}",  # a bytes value printed in a dict
    ],
)
def test_credentials_providers_would_read_are_masked_in_odd_spellings(text: str) -> None:
    assert "hunter2xyz" not in Redactor([]).text(text)


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_base64_of_a_secret_is_masked_when_echoed_lower_or_upper_cased(case: Any) -> None:
    secret = "T0ken5ecretValue99"
    blob = case(base64.b64encode(f"ACuser:{secret}".encode()).decode())
    assert blob not in Redactor([secret]).text(f"upstream said: auth {blob} refused")
