"""Phone numbers as people may see them: in full only where one person reads them (ephemeral
replies, their own modal), masked in anything posted to a channel (`+4477•••••123`).

Pure text functions: no Slack, no provider.
"""

from __future__ import annotations

import re

MASK_CHAR = "•"
# E.164 country codes of one and two digits (ITU-T E.164 assignments); every other code has three.
_ONE_DIGIT = frozenset({"1", "7"})
_TWO_DIGITS = frozenset(
    {
        *("20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47"),
        *("48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65"),
        *("66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98"),
    }
)
_E164 = re.compile(r"^\+[0-9]{6,15}$")
# A number inside free text (a request preview, a callFlow): `+` then 7 to 15 digits; in a
# form-encoded body (Twilio's request preview) the `+` is written `%2B`.
_IN_TEXT = re.compile(r"((?<![0-9A-Za-z])\+|%2[Bb])([0-9]{7,15})(?![0-9])")
KEEP_AFTER_CODE = 2
KEEP_LAST = 3


def country_code(number: str) -> str:
    """The country code of an E.164 number (without `+`)."""
    digits = number.lstrip("+")
    if digits[:1] in _ONE_DIGIT:
        return digits[:1]
    if digits[:2] in _TWO_DIGITS:
        return digits[:2]
    return digits[:3]


def mask(number: str, filler: str | None = None) -> str:
    """`+447700900123` → `+4477•••••123`: the country code and 2 digits, then the last 3.

    Anything that is not an E.164 number (a SIP address, `client:alice`, `anonymous`) keeps only
    its first 3 and last 3 characters, so no identity leaks through an unusual format either.
    `filler`: what replaces the hidden digits (default one bullet per digit).
    """
    number = number.strip()
    if _E164.match(number):
        head = 1 + len(country_code(number)) + KEEP_AFTER_CODE
        hidden = len(number) - head - KEEP_LAST
        if hidden < 1:
            return number[:-KEEP_LAST] + MASK_CHAR * KEEP_LAST if len(number) > KEEP_LAST + 1 else number
        return number[:head] + (filler if filler is not None else MASK_CHAR * hidden) + number[-KEEP_LAST:]
    if not number:
        return number
    if len(number) <= 8:
        return MASK_CHAR * 3
    return number[:3] + (filler if filler is not None else MASK_CHAR * 3) + number[-3:]


def short(number: str) -> str:
    """A number shortened for a narrow menu line: `+4477…123` (not a safeguard: see `mask`)."""
    return mask(number, "…")


def mask_in_text(text: str) -> str:
    """Every E.164-looking number in `text` masked (for messages posted to a channel)."""
    return _IN_TEXT.sub(lambda m: m.group(1) + mask("+" + m.group(2))[1:], text)


def normalise(number: str) -> str:
    """A number as typed in Slack: Slack may send it as a `tel:` link; spaces and dashes dropped."""
    number = number.strip().removeprefix("tel:")
    return re.sub(r"[\s\-().]", "", number) if number.startswith("+") else number
