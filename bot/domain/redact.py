"""Removes secrets from anything that leaves the process: audit rows, logs, Slack replies, exports.

Two nets. The configured secrets, found in every form an echo may give them (plain, any case,
base64 alone or inside HTTP Basic's `user:secret`, URL-encoded, JSON-escaped: secret_forms.py).
And the places a secret sits whatever its value: `Authorization:` headers, `Basic`/`Bearer`
credentials, `"password": "…"` and `api_key=…`-style keys, credentials inside URLs, Slack tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bot.domain.secret_forms import MIN_SECRET_LENGTH, SecretForms

MASK = "***"

# A key whose value is secret ends with one of these (`fallbackPassword`, `client_secret`,
# `X-Api-Key`, `auth_token`…): as `key=value`, `"key": "value"`, `key: value` or a structure's key.
_KEY_WORDS = (
    r"password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key"
    r"|authorization|auth|credentials?"
)
_NAME = rf"[\w-]*?(?:{_KEY_WORDS})"
# In running text only the key's last word is looked for: trying a name at every word start is slow.
_KEY = rf"(?:{_KEY_WORDS})"
_SECRET_NAME = re.compile(_NAME, re.IGNORECASE)
# The schemes of an Authorization header (Bird's is `AccessKey`).
_SCHEMES = r"basic|bearer|token|accesskey|apikey"
_SCHEME_WORDS = frozenset(_SCHEMES.split("|"))

_AUTH_HEADER = re.compile(
    r"(?P<key>\b(?:proxy-)?authorization\\?[\"']?"
    # `Authorization: …`, `"authorization": "…"`, `authorization=…`, `(b'authorization', b'…')`
    r"(?:[ \t]*[:=][ \t]*|[ \t]*,[ \t]*(?=b?[\"']))b?\\?[\"']?[ \t]*)"
    rf"(?P<scheme>(?:{_SCHEMES})[ \t]+)?"
    r"(?P<value>[^\s\"'\\,;&})\]…*<`][^\s\"'\\,;&})\]]*)",
    re.IGNORECASE,
)
_SCHEME_CREDENTIAL = re.compile(rf"\b(?P<key>(?:{_SCHEMES})[ \t]+)(?P<value>[A-Za-z0-9+/._~-]+=*)", re.IGNORECASE)
_QUOTED_KEY = re.compile(
    rf"(?P<key>(?P<q>\\?[\"']){_NAME}(?P=q)[ \t]*[:=][ \t]*)"
    r"(?P<value>\\\"(?:(?!\\\").)*\\\"|[bu]?\"(?:[^\"\\]|\\.)*\"|[bu]?'(?:[^'\\]|\\.)*'"
    r"|(?!(?:null|true|false|none)\b)[^\s,;})\]\"'\\]+)",
    re.IGNORECASE,
)
_ASSIGNED = re.compile(
    rf"(?P<key>{_KEY}[ \t]*=[ \t]*)"
    # A value, unless it is a placeholder (`password=…`), already masked, or markup. It ends before
    # the next `&name=` of a query string, and before the quote that closes the JSON or CSV string
    # it is in (an export line stays well-formed).
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s`…*\[<&\"']"
    r"(?:[^\s`&\"\\]|&(?![\w.\[\]-]*=)|\"(?![\s,;:}\]]|$)|\\(?!\"))*)",
    re.IGNORECASE,
)
_COLON_KEY = re.compile(rf"(?P<key>{_KEY}[ \t]*:[ \t]*)(?P<value>[^\s\"'`,;&@]+)", re.IGNORECASE)
# `https:\\user:pw@host` and `https:/user:pw@host` too: providers (WHATWG) read userinfo there.
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b(?:https?|wss?|ftp|[a-z][a-z0-9+.-]*(?=://)):[/\\]*)(?P<userinfo>[^/\s@:]+(?::[^/\s@]*)?)@",
    re.I,
)
_KEY_HINT = re.compile(_KEY_WORDS)
_SCHEME_HINT = re.compile(rf"(?:{_SCHEMES})[ \t]")
_SLACK_TOKEN = re.compile(r"\bx(?:ox[abposre]|app)-[A-Za-z0-9-]+", re.IGNORECASE)


def is_secret_key(name: str) -> bool:
    """Whether a structure's key names a secret (`password`, `fallbackPassword`, `api_key`…)."""
    return _SECRET_NAME.fullmatch(name) is not None


def mask_url_credentials(value: str) -> str:
    """`https://user:pass@host/` → `https://***@host/` (Twilio and Bandwidth accept such URLs)."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", value)


def _credential_like(value: str) -> bool:
    """Whether a word after `Bearer`, `token` or `password:` is a credential rather than prose
    ("the Basic Information page", "token expired"): 6 characters or more, with a digit, a base64
    sign or mixed case."""
    if len(value) < 6 or value.lower() in _SCHEME_WORDS:
        return False
    if any(c.isdigit() or c in "+/=_" for c in value):
        return True
    return any(c.isupper() for c in value[1:]) and any(c.islower() for c in value)


def _auth_header(match: re.Match[str]) -> str:
    if match.group("scheme") is None and not _credential_like(match.group("value")):
        return match.group(0)
    return match.group("key") + (match.group("scheme") or "") + MASK


def _if_credential(match: re.Match[str]) -> str:
    return match.group("key") + MASK if _credential_like(match.group("value")) else match.group(0)


def _quoted_value(match: re.Match[str]) -> str:
    value = match.group("value")
    if value in ('""', "''", '\\"\\"'):  # empty: nothing to hide
        return match.group(0)
    # A bare value (a number) becomes a string quoted like its key: the JSON around it, escaped
    # or not, stays valid.
    quote = next((q for q in ('\\"', '"', "'") if value.startswith(q) and len(value) > len(q)), match.group("q"))
    return match.group("key") + quote + MASK + quote


def mask_key_forms(value: str) -> str:
    """Masks what sits where secrets go, whatever it is (no configured secret needed)."""
    # Each pattern ignores case, which makes it slow: it runs only where a case-sensitive look at
    # the lower-cased text finds its word (most log records have none).
    low = value.lower()
    if "authorization" in low:
        value = _AUTH_HEADER.sub(_auth_header, value)
    if _SCHEME_HINT.search(low):
        value = _SCHEME_CREDENTIAL.sub(_if_credential, value)
    if _KEY_HINT.search(low):
        value = _QUOTED_KEY.sub(_quoted_value, value)
        value = _ASSIGNED.sub(lambda m: m.group("key") + MASK, value)
        value = _COLON_KEY.sub(_if_credential, value)
    if "@" in value:
        value = mask_url_credentials(value)
    if "xox" in low or "xapp" in low:
        value = _SLACK_TOKEN.sub(MASK, value)
    return value


class Redactor:
    """One per secret set: the configured secrets' forms are compiled when they are added."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self._forms = SecretForms(())
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        new = {secret for secret in secrets if secret and len(secret) >= MIN_SECRET_LENGTH} - self._secrets
        if new:
            self._secrets |= new
            self._forms = SecretForms(self._secrets)

    def text(self, value: str) -> str:
        return mask_key_forms(self._forms.mask(value, MASK))

    def value(self, value: Any) -> Any:
        """Redacts a JSON-like structure: secret keys are masked whole, strings are scanned."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: (MASK if is_secret_key(str(k)) and v not in (None, "") else self.value(v)) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value
