"""The shapes a known secret takes when something echoes it back, and where they are in a text.

A provider's error page, a proxy or a library may repeat what we sent: the credential as is,
upper-cased, JSON- or URL-encoded, or inside the base64 of an HTTP Basic `user:secret`. Every such
form of every configured secret is compiled once per secret set (`SecretForms`), so finding them
costs a few regex scans per text, whatever the number of secrets.

Base64 is found wherever it sits in a longer blob: the bytes before the secret shift it by 0, 1 or
2 bytes modulo 3, and for each shift the characters made only of the secret's own bits are the
same whatever surrounds it. Those "cores" (both alphabets) are searched for, and a hit masks the
whole base64 run around it, so no neighbouring character keeps a few of the secret's bits.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

# Values shorter than this are too likely to match ordinary text to be replaced blindly.
MIN_SECRET_LENGTH = 4
# A base64 core shorter than this could be part of an ordinary word (a 5-byte secret gives 6).
_MIN_CORE = 6
# A text cut short (providers clip their messages) may end with the start of a secret: this many
# characters of one at the very end, or before an ellipsis, are masked. Fewer would catch prose
# such as "starting with xoxb-".
_MIN_PARTIAL = 8
_BASE64_RUN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-")
_URLSAFE = str.maketrans("+/", "-_")
_CUT_MARKS = ("…", "...")


def literal_forms(secret: str) -> set[str]:
    """The secret as text may carry it: plain, JSON-escaped (also inside JSON again, and with
    `\\/`), Python repr, HTML, CSV-quoted and URL-encoded (quote, quote_plus, every byte, twice).
    Matched case-insensitively: percent escapes and hex secrets come back in either case."""
    escaped = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    escaped |= {form.replace("/", "\\/") for form in escaped}
    escaped |= {json.dumps(form)[1:-1] for form in escaped}
    forms = {secret, *escaped, repr(secret)[1:-1], repr(secret.encode())[2:-1]}
    forms |= {html.escape(secret), html.escape(secret, quote=False), secret.replace('"', '""')}
    every_byte = "".join(chr(b) if chr(b).isalnum() and b < 128 else f"%{b:02X}" for b in secret.encode())
    forms |= {quote(secret, safe=""), quote(secret), quote_plus(secret), quote_plus(secret, safe="/"), every_byte}
    forms.add(quote(quote(secret, safe=""), safe=""))
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def base64_cores(secret: str) -> set[str]:
    """For each of the three byte alignments, the base64 characters made only of the secret's
    bits, in the standard and the URL-safe alphabet."""
    data = secret.encode()
    cores: set[str] = set()
    for lead in range(3):
        encoded = base64.b64encode(bytes(lead) + data).decode()
        # Character i holds bits [6i, 6i+6); the secret holds bits [8·lead, 8·(lead+len)).
        first, end = -(-8 * lead // 6), 8 * (lead + len(data)) // 6
        core = encoded[first:end]
        if len(core) >= _MIN_CORE:
            cores |= {core, core.translate(_URLSAFE)}
    return cores


def _alternation(forms: Iterable[str], flags: int = 0) -> re.Pattern[str] | None:
    # Longest first: where two forms start at one place, the longer one is masked whole.
    ordered = sorted(set(forms), key=lambda form: (-len(form), form))
    return re.compile("|".join(re.escape(form) for form in ordered), flags) if ordered else None


class SecretForms:
    """Finds every echoed form of a fixed set of secrets; built once per set."""

    def __init__(self, secrets: Iterable[str]) -> None:
        literals: set[str] = set()
        cores: set[str] = set()
        for secret in secrets:
            literals |= literal_forms(secret)
            # A provider or proxy that lower- or upper-cases what it echoes (`basic <b64>` logged
            # lower-cased) still gives it away: a lower-cased blob is decodable by trying cases.
            found = base64_cores(secret)
            cores |= found | {core.lower() for core in found} | {core.upper() for core in found}
        # Searched in the lower-cased text: an IGNORECASE alternation is ten times slower.
        self._literals = _alternation(form.lower() for form in literals)
        self._literals_any_case = _alternation(literals, re.IGNORECASE)
        self._cores = _alternation(cores)
        # For a text cut inside a secret: the beginnings of the forms, by how they are matched.
        self._cut_literals = _Beginnings(form.lower() for form in literals)
        self._cut_cores = _Beginnings(cores)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where the text holds a secret, merged and in order."""
        found: list[tuple[int, int]] = []
        lowered = _folded(text)
        if self._literals is not None and self._literals_any_case is not None:
            literals = self._literals if lowered is not None else self._literals_any_case
            found += [match.span() for match in literals.finditer(lowered or text)]
        if self._cores is not None:
            found += [_base64_run(text, *match.span()) for match in self._cores.finditer(text)]
        found += self._cut_off(text, lowered or text)
        return _merged(found)

    def mask(self, text: str, mask: str) -> str:
        spans = self.spans(text)
        if not spans:
            return text
        parts: list[str] = []
        last = 0
        for start, end in spans:
            parts += [text[last:start], mask]
            last = end
        parts.append(text[last:])
        return "".join(parts)

    def _cut_off(self, text: str, lowered: str) -> list[tuple[int, int]]:
        """A secret's beginning where the text stops: at its end or before an ellipsis."""
        stops = {len(text)}
        for mark in _CUT_MARKS:
            at = text.find(mark)
            while at != -1:
                stops.add(at)
                at = text.find(mark, at + 1)
        found: list[tuple[int, int]] = []
        for stop in stops:
            literal = self._cut_literals.start(lowered, stop)
            if literal is not None:
                found.append((literal, stop))
            core = self._cut_cores.start(text, stop)
            if core is not None:
                found.append(_base64_run(text, core, stop))
        return found


class _Beginnings:
    """Finds a text that stops inside one of these forms, at least _MIN_PARTIAL characters in."""

    def __init__(self, forms: Iterable[str]) -> None:
        self._by_prefix: dict[str, list[str]] = {}
        for form in forms:
            if len(form) > _MIN_PARTIAL:
                self._by_prefix.setdefault(form[:_MIN_PARTIAL], []).append(form)
        self._longest = max((len(f) for group in self._by_prefix.values() for f in group), default=0)
        prefixes = _alternation(self._by_prefix)
        # A lookahead, so that overlapping candidates are all tried.
        self._pattern = re.compile(f"(?=({prefixes.pattern}))") if prefixes is not None else None

    def start(self, source: str, stop: int) -> int | None:
        """Where the cut-off form begins, if `source[:stop]` ends inside one."""
        if self._pattern is None or stop < _MIN_PARTIAL:
            return None
        for match in self._pattern.finditer(source, max(0, stop - self._longest + 1), stop):
            rest = source[match.start() : stop]
            if any(len(form) > len(rest) and form.startswith(rest) for form in self._by_prefix[match.group(1)]):
                return match.start()
        return None


def _folded(text: str) -> str | None:
    """The text lower-cased, if that keeps every character where it was (a few letters, such as
    "İ", lower-case to two characters)."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else None


def _base64_run(text: str, start: int, end: int) -> tuple[int, int]:
    """The whole base64 string around a core, its padding included."""
    while start > 0 and text[start - 1] in _BASE64_RUN:
        start -= 1
    while end < len(text) and text[end] in _BASE64_RUN:
        end += 1
    while end < len(text) and text[end] == "=":
        end += 1
    return start, end


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
