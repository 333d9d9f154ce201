"""Removes secrets from anything that leaves the process: audit rows, logs, Slack replies.

Two nets: the exact secret values the configuration holds (whatever shape they have), and
patterns for secrets a user may type (`password=…`, credentials inside URLs, Slack tokens).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

# Values shorter than this are too likely to match ordinary text to be replaced blindly.
_MIN_SECRET_LENGTH = 4

_TYPED_SECRET = re.compile(
    r"(?P<key>\b(?:[\w-]*password|[\w-]*secret|[\w-]*token|access[_-]?key)\s*=\s*)"
    # A value, unless it is a placeholder (`password=…`), already masked, or markup.
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s`…*\[<][^\s`]*)",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/\s@:]+(?::[^/\s@]*)?)@", re.I)
_SLACK_TOKEN = re.compile(r"\bx(?:ox[abposr]|app)-[A-Za-z0-9-]+")
_BASIC_AUTH = re.compile(r"\b(Basic|Bearer|AccessKey)\s+[A-Za-z0-9+/=._~-]+")

# Keys whose values are secret wherever they appear in a structured record.
SECRET_KEYS = frozenset(
    {
        "password",
        "fallback_password",
        "fallback-password",
        "fallbackpassword",
        "auth_token",
        "api_key_secret",
        "access_key",
        "token",
        "secret",
        "authorization",
    }
)


def mask_url_credentials(value: str) -> str:
    """`https://user:pass@host/` → `https://***@host/` (Twilio and Bandwidth accept such URLs)."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", value)


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        for secret in secrets:
            if secret and len(secret) >= _MIN_SECRET_LENGTH:
                self._secrets.add(secret)
        # Longest first, so a secret that contains another is masked whole.
        self._ordered = sorted(self._secrets, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._ordered:
            if secret in value:
                value = value.replace(secret, MASK)
        value = _TYPED_SECRET.sub(lambda m: m.group("key") + MASK, value)
        value = mask_url_credentials(value)
        value = _SLACK_TOKEN.sub(MASK, value)
        return _BASIC_AUTH.sub(lambda m: f"{m.group(1)} {MASK}", value)

    def value(self, value: Any) -> Any:
        """Redacts a JSON-like structure: secret keys are masked whole, strings are scanned."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: (MASK if str(k).lower() in SECRET_KEYS and v not in (None, "") else self.value(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value
