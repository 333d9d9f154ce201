"""Reading a callFlow written as text (JSON, or YAML), within bounds that fail fast.

JSON and YAML readers are quick on what a callFlow looks like, but not on what an attacker can write
within the size limit: PyYAML takes about a second on 2,000 nested `[` (its scanner is quadratic in
flow nesting) and expands aliases ("billion laughs"). So a linear pre-scan refuses deep nesting
first, and YAML is read with aliases refused and depth capped. The model itself, and the checks of
what the text says, are bot/domain/callflow.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from bot.domain.callflow import EXAMPLE, MAX_DEPTH, MAX_TEXT_CHARS, CallFlow, clip, kind_of, validate_callflow
from bot.domain.errors import InvalidInput
from bot.domain.storable import unstorable


def parse_callflow(text: str) -> CallFlow:
    """A callFlow written as JSON (or YAML) text."""
    if not isinstance(text, str):
        raise InvalidInput("callFlow", f"must be text, not {kind_of(text)}")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput("callFlow", f"is {len(text)} characters long; the limit is {MAX_TEXT_CHARS}")
    if not text.strip():
        raise InvalidInput("callFlow", "is empty", f"Give a list of commands, e.g. '{EXAMPLE}'.")
    bad = unstorable(text)
    if bad is not None:
        raise InvalidInput("callFlow", f"contains {bad}", "Remove it; it cannot be sent or stored.")
    check_nesting(text)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as json_error:  # ValueError: also numbers of over 4300 digits
        data = _parse_yaml(text, json_error)
    return validate_callflow(data)


def _too_deep() -> InvalidInput:
    return InvalidInput(
        "callFlow",
        f"is nested more than {MAX_DEPTH} levels deep; a callFlow never is",
        f"Write a list of commands, e.g. '{EXAMPLE}'.",
    )


_LINE_BREAKS = "\r\n\x85\u2028\u2029"  # YAML's (PyYAML's) line breaks
# What the pre-scan stops at; everything else is plain text it passes over in one regex step.
_SCAN = re.compile(f"[\"'#\\[\\]{{}}{_LINE_BREAKS}]")
# The rest of a quoted string, on the same line (a JSON string never spans lines).
_QUOTED_REST = {
    '"': re.compile(f'(?:[^"\\\\{_LINE_BREAKS}]|\\\\[^{_LINE_BREAKS}])*"'),
    "'": re.compile(f"(?:[^'{_LINE_BREAKS}]|'')*'"),
}
_REST_OF_LINE = re.compile(f"[^{_LINE_BREAKS}]*")
_INDENT = re.compile("[ ]*")
# YAML's block indicators: `- ` (a sequence entry), `? ` and `: ` (an explicit key and its value).
_INDICATOR = re.compile(f"[-?:](?:[ ]+|(?=[{_LINE_BREAKS}])|$)")
# A line that opens a YAML block scalar (`key: |`, `- >-`): the lines indented under it are text.
_BLOCK_SCALAR = re.compile("(?:^|[-?:][ ]+)[|>][-+1-9]{0,2}[ \t]*(?:#.*)?$")
_SPACE = frozenset(" \t" + _LINE_BREAKS)


@dataclass
class _Scan:
    """Where the pre-scan is. `in_step`: it follows YAML's reading (quoted strings, comments,
    plain text), so it may pass over them. Once unsure (a string over several lines, a tag), it
    passes over nothing more and counts every `[`/`{` as opening and none as closing."""

    text: str
    flow: int = 0  # open `[` and `{`
    block: list[int] = field(default_factory=list)  # the columns of YAML's open block levels
    content: int = 0  # where the current YAML line's first node starts (-1: the line is text)
    comment: int | None = None  # where a comment starts on the current line
    opens: bool = False  # the last YAML line ends with `key:` or `-`: a more indented line nests
    quoted: int = -1  # where the last quoted string ended
    token: int = -1  # where the last bracket YAML reads as one ended
    in_step: bool = True

    def check(self) -> None:
        if self.flow + len(self.block) > MAX_DEPTH:
            raise _too_deep()


def check_nesting(text: str) -> None:
    """Refuses text nested deeper than MAX_DEPTH, in one linear pass, before any parser sees it.

    Exact for JSON: it counts brackets outside strings. For YAML it also counts block nesting
    (indentation, `- `) and follows quoted strings, comments and plain text the way YAML reads
    them; where YAML gets subtle (a string over several lines, tags) it counts every opening
    bracket and no closing one. It does not model all of YAML: the YAML reader checks the exact
    depth too (`_check_yaml_events`), in C and stopping at once."""
    scan = _Scan(text)
    pos = _line(scan, 0)
    while (found := _SCAN.search(text, pos)) is not None:
        i, char = found.start(), found.group()
        pos = i + 1
        if not scan.in_step:
            if char in "[{":
                scan.flow += 1
                scan.check()
        elif char in "\"'":
            pos = scan.quoted = _past_quote(scan, i, char)
        elif char == "#":
            pos = _past_comment(scan, i)
        elif char in "[{":
            # In YAML's block context, `[` inside plain text is text: `say: press [1]`.
            if scan.flow > 0 or _node_start(scan, i):
                scan.flow += 1
                scan.check()
                scan.token = i + 1
        elif char in "]}":
            if scan.flow > 0 or _node_start(scan, i):
                scan.flow = max(0, scan.flow - 1)
                scan.token = i + 1
        elif scan.flow == 0:  # a line break outside brackets: YAML's indentation counts
            pos = _line(scan, _line_end(scan, i))
        else:
            scan.comment = None


def _node_start(scan: _Scan, i: int) -> bool:
    """Whether a YAML node (a quoted string, a bracket) can start at `i`, as YAML reads it."""
    text = scan.text
    if i == scan.content and scan.flow == 0:
        return True  # the first thing on a line (after `- `)
    j = i - 1
    while j >= 0 and text[j] in _SPACE:
        j -= 1
    if j < 0 or j + 1 in (scan.quoted, scan.token):
        return True  # the text's start, or right after a string or bracket: a new token
    before = text[j]
    if j == i - 1:  # right after another character: `["a"`, `{"a":"b"`; `it's` is plain text
        return scan.flow > 0 and before in "[{,:"
    if before == ":" or (scan.flow > 0 and before in "[{,"):
        return True
    if text[: j + 1].rsplit(maxsplit=1)[-1][:1] in "!&":  # after a tag or an anchor: too subtle
        scan.in_step = False
    return False


def _past_quote(scan: _Scan, i: int, quote: str) -> int:
    """Past the string starting at `i` when one does (as JSON and YAML read it), else past `i`."""
    if not _node_start(scan, i):
        return i + 1
    rest = _QUOTED_REST[quote].match(scan.text, i + 1)
    if rest is None:  # a string over several lines (YAML allows it), or not closed
        scan.in_step = False
        return i + 1
    return rest.end()


def _past_comment(scan: _Scan, i: int) -> int:
    """Past a YAML comment (`#` after a space or at a line's start: to the line's end), else past `i`."""
    text = scan.text
    if i == 0 or text[i - 1] in _SPACE:
        scan.comment = i
        return _REST_OF_LINE.match(text, i).end()  # type: ignore[union-attr]
    if text[i - 1] in "[]{},:":  # YAML may take `[#` as a comment too
        scan.in_step = False
    return i + 1  # `a#b` is plain text


def _line_end(scan: _Scan, i: int) -> int:
    """At the line break `i` (outside brackets): what the line's end says of the next lines.
    Returns where the next line starts (past a block scalar's text)."""
    text = scan.text
    if scan.content < 0:  # a continued line: still text
        return i + 1
    line = text[scan.content : i if scan.comment is None else scan.comment].rstrip(" \t")
    scan.comment = None
    scan.opens = line == "" or line.endswith(":")
    if line.rsplit(maxsplit=1)[-1:] and line.rsplit(maxsplit=1)[-1][:1] in "!&":  # `key: !!map`, `- &a`
        scan.in_step = False
    if _BLOCK_SCALAR.search(line):  # its text: the lines indented more than its level
        return _past_indented(text, i, scan.block[-1] if scan.block else -1) + 1
    return i + 1


def _line(scan: _Scan, pos: int) -> int:
    """A YAML line from its start: its indentation and leading `- ` (each one level deeper).
    Returns where the scan goes on."""
    text, block = scan.text, scan.block
    start = _INDENT.match(text, pos).end()  # type: ignore[union-attr]
    indent = start - pos
    if start >= len(text) or text[start] in _LINE_BREAKS:
        return start  # a blank line
    if block and indent > block[-1] and not scan.opens:
        # More indented than its level without a `key:` above: the text of the line before
        # continued (or a mistake the parser stops at). No node starts on it.
        scan.content = -1
        return start
    while block and block[-1] > indent:
        block.pop()
    levels = [indent]  # the block collection the line is in, and one more per `- `
    while (indicator := _INDICATOR.match(text, start)) is not None:
        start = indicator.end()
        levels.append(start - pos)
    if start < len(text) and text[start] in "[{":
        levels.pop()  # the line's node is a flow collection, counted by its brackets
    for level in levels:
        if not block or level > block[-1]:
            block.append(level)
    scan.content = start
    scan.check()
    return start


def _past_indented(text: str, end: int, column: int) -> int:
    """From a line's end (its line break), to the end of the following lines that are blank or
    indented more than `column`."""
    while end < len(text):
        start = _INDENT.match(text, end + 1).end()  # type: ignore[union-attr]
        line_end = _REST_OF_LINE.match(text, start).end()  # type: ignore[union-attr]
        if start != line_end and start - (end + 1) <= column:
            break
        end = line_end
    return end


# libyaml's loader when PyYAML has it (its wheels do): about nine times faster than the pure one.
_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPENS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSES = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _parse_yaml(text: str, json_error: Exception) -> Any:
    try:
        _check_yaml_events(text)
        return yaml.load(text, Loader=_YamlLoader)
    except InvalidInput:
        raise
    # PyYAML raises more than YAMLError on odd input: ValueError (a huge int, a bad date),
    # RecursionError, TypeError... Any of them means "not a callFlow we can read".
    except Exception as yaml_error:
        looks_like_json = text.lstrip()[:1] in ("[", "{")
        where = _error_position(json_error if looks_like_json else yaml_error)
        raise InvalidInput(
            "callFlow", f"is not valid JSON or YAML ({where})", f"Quote it whole, e.g. '{EXAMPLE}'."
        ) from None


def _check_yaml_events(text: str) -> None:
    """The exact depth, and no alias (`*name`): a callFlow needs none, and an alias lets a short
    text stand for a huge structure ("billion laughs") that anything walking it would expand."""
    depth = 0
    for event in yaml.parse(text, Loader=_YamlLoader):
        if isinstance(event, yaml.AliasEvent):
            raise InvalidInput(
                "callFlow", "uses a YAML alias (`*name`)", "A callFlow needs none: write each value out in full."
            )
        if isinstance(event, _OPENS):
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep()
        elif isinstance(event, _CLOSES):
            depth -= 1


def _error_position(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"line {error.lineno}, column {error.colno}: {clip(error.msg, 60)}"
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {clip(error.problem or 'unexpected text', 60)}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return clip(str(error), 60) or type(error).__name__
