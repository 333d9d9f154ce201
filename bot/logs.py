"""Logging: secrets are masked when a record is created, so no handler anywhere can see them."""

from __future__ import annotations

import logging
import sys
from typing import Any

from bot.redact import Redactor

_HANDLER_NAME = "callbot"
_redactor: Redactor | None = None
_base_factory = logging.getLogRecordFactory()


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


def configure_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "aiosqlite", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
