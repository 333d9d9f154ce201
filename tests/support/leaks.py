"""Finds a secret in text however it was encoded: as is in any case, percent-, HTML- or
backslash-escaped, or inside any base64 string at any offset. Independent of bot/domain/redact.py,
so that the tests do not trust the code they test."""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import unquote, unquote_plus

_TO_STANDARD = str.maketrans("-_", "+/")


def _unescaped(text: str) -> str:
    """JSON and Python escapes undone (`\\u00e9`, `\\"`, `\\/`)."""
    return text.replace("\\/", "/").encode("latin-1", "backslashreplace").decode("unicode_escape")


def _bytes_unescaped(text: str) -> str:
    """A bytes repr undone (`\\xc3\\xa9` is é)."""
    raw: bytes = codecs.escape_decode(text.encode())[0]  # type: ignore[attr-defined]
    return raw.decode("utf-8", "replace")


_DECODERS: tuple[Callable[[str], str], ...] = (
    unquote,
    unquote_plus,
    lambda text: unquote(unquote(text)),
    html.unescape,
    _unescaped,
    _bytes_unescaped,
    lambda text: _unescaped(_unescaped(text)),
)


def _views(text: str) -> Iterator[str]:
    yield text
    for decode in _DECODERS:
        with warnings.catch_warnings():  # an escape a decoder does not know is kept as it is
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                view = decode(text)
            except (UnicodeError, ValueError):
                continue
        yield view


def _base64_contents(text: str, shortest: int) -> Iterator[bytes]:
    """What every base64-looking run decodes to, from each of its first four characters (so that
    a secret at any byte offset of the blob is found whole). Runs too short to hold `shortest`
    bytes are skipped."""
    for run in re.findall(f"[A-Za-z0-9+/_-]{{{4 * shortest // 3},}}", text):
        standard = run.translate(_TO_STANDARD)
        for offset in range(4):
            chunk = standard[offset:]
            # Unpadded base64 ends in 2 or 3 characters that still decode; a single one does not.
            chunk = chunk[:-1] if len(chunk) % 4 == 1 else chunk + "=" * (-len(chunk) % 4)
            try:
                yield base64.b64decode(chunk)
            except (binascii.Error, ValueError):
                continue


def traces(text: str, secrets: Iterable[str]) -> list[str]:
    """How each secret can still be read in the text (empty: it cannot)."""
    wanted = list(secrets)
    shortest = min((len(secret.encode()) for secret in wanted), default=0)
    found: set[str] = set()
    for view in set(_views(text)):
        lowered = view.lower()
        found |= {f"{secret!r} as text" for secret in wanted if secret.lower() in lowered}
        for content in _base64_contents(view, shortest):
            found |= {f"{secret!r} in base64" for secret in wanted if secret.encode() in content}
    return sorted(found)
