"""Logging: secrets are masked when a record is created, so no handler anywhere can see them.

`LOG_LEVEL` and `LOG_FORMAT` (text or json) choose what is written to standard error. Every
logger, ours and third parties' (uvicorn, Bolt, httpx), goes through the one root handler, so in
JSON each line is one object. The request id of the Slack request being served rides in a context
variable and is stamped on every record written while serving it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.domain.errors import ConfigError
from bot.domain.redact import Redactor

_HANDLER_NAME = "callbot"
_redactor: Redactor | None = None
_base_factory = logging.getLogRecordFactory()

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("callbot_request_id", default=None)
# time.monotonic() when the request being served arrived: an attempt refused at once reports its
# duration from there.
request_started: contextvars.ContextVar[float | None] = contextvars.ContextVar("callbot_request_started", default=None)

# Attributes every LogRecord has; anything else on a record was passed with `extra=`. Uvicorn's
# `color_message` is its message again with terminal colour codes.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True)
class LogSettings:
    level: int = logging.INFO
    format: LogFormat = LogFormat.TEXT

    @classmethod
    def from_env(cls, environ: Mapping[str, str], default_level: str = "INFO") -> LogSettings:
        """Read before anything else, so even a configuration error is written in the chosen format."""
        fmt_text = environ.get("LOG_FORMAT", "").strip().lower() or LogFormat.TEXT.value
        fmt = LogFormat(fmt_text) if fmt_text in {f.value for f in LogFormat} else None
        level_text = environ.get("LOG_LEVEL", "").strip().upper() or default_level
        if level_text == "WARN":
            level_text = "WARNING"
        if fmt is None:
            raise ConfigError("environment", "LOG_FORMAT", f"{fmt_text!r} is not a log format; use text or json")
        if level_text not in _LEVELS:
            raise ConfigError(
                "environment", "LOG_LEVEL", f"{level_text!r} is not a log level; use one of {', '.join(_LEVELS)}"
            )
        return cls(logging.getLevelNamesMapping()[level_text], fmt)


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    if _redactor is not None:
        scrub(record, _redactor)
    return record


def scrub(record: logging.LogRecord, redactor: Redactor) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed log call must not hide the record
        message = f"{record.msg!r} {record.args!r}"
    record.msg = redactor.text(message)
    record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        # Tracebacks carry exception messages, which may quote a URL or a header.
        record.exc_text = redactor.text(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redactor.text(record.stack_info)


def install_redaction(redactor: Redactor) -> None:
    """Masks these secrets in every log record created from now on (process-wide)."""
    global _redactor
    _redactor = redactor
    if logging.getLogRecordFactory() is not _redacting_factory:
        logging.setLogRecordFactory(_redacting_factory)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra=` fields and the request id, secrets masked (the record factory runs
    before `extra=` is applied, so these were not scrubbed yet)."""
    fields: dict[str, Any] = {}
    current = request_id.get()
    if current:
        fields["request_id"] = current
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
            fields[key] = value
    return _redactor.value(fields) if _redactor is not None else fields


def _exception_text(record: logging.LogRecord, formatter: logging.Formatter) -> str | None:
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = formatter.formatException(record.exc_info)
        record.exc_text = _redactor.text(text) if _redactor is not None else text
    return record.exc_text or None


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value…` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _extras(record)
        if not fields:
            return line
        head, newline, tail = line.partition("\n")  # fields stay on the first line, before a traceback
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        return f"{head} {pairs}{newline}{tail}"


def _text_value(value: Any) -> str:
    text = "-" if value is None else str(value)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        exception = _exception_text(record, self)
        if exception:
            entry["exception"] = exception
        if record.stack_info:
            entry["stack"] = record.stack_info
        # ASCII only: a U+2028 in a message must not split the line for a reader using splitlines().
        return json.dumps(entry, default=str, ensure_ascii=True)


def configure_logging(settings: LogSettings | None = None) -> None:
    settings = settings or LogSettings()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if settings.format is LogFormat.JSON else TextFormatter())
    root.addHandler(handler)
    root.setLevel(settings.level)
    # Python's warnings, too, are records: a stray warning must not break a JSON log.
    logging.captureWarnings(True)
    quiet = max(settings.level, logging.WARNING)
    for noisy in ("httpx", "httpcore", "aiosqlite", "alembic"):
        logging.getLogger(noisy).setLevel(quiet)


def report_failure(message: str, settings: LogSettings) -> None:
    """A fatal start-up or command error: one plain line for a terminal, one JSON record in JSON
    logs (a log collector would otherwise see a line that does not parse)."""
    text = _redactor.text(message) if _redactor is not None else message
    if settings.format is LogFormat.JSON:
        record = logging.LogRecord("callbot", logging.ERROR, __file__, 0, text, None, None)
        print(JsonFormatter().format(record), file=sys.stderr)
    else:
        print(f"callbot: {text}", file=sys.stderr)


def new_request_id() -> str:
    return secrets.token_hex(8)


@contextmanager
def request_context(rid: str | None = None) -> Iterator[str]:
    """Stamps records written inside (and in tasks started inside) with this request id."""
    rid = rid or new_request_id()
    token = request_id.set(rid)
    started = request_started.set(time.monotonic())
    try:
        yield rid
    finally:
        request_started.reset(started)
        request_id.reset(token)
