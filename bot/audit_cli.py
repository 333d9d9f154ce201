"""`callbot audit list|export|verify|purge`: the audit log from the shell. The shell is trusted
(it can reach the database anyway): it sees every row and reads through audit_search directly."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bot.config import Settings
from bot.db import audit_search, chain, workspaces
from bot.db.audit_search import AuditFilter
from bot.db.models import AuditRow
from bot.db.session import Database
from bot.domain import grammar
from bot.domain.errors import CallbotError, InvalidInput
from bot.domain.permissions import OUTCOMES
from bot.domain.redact import Redactor
from bot.runtime import home_workspace, prepare_schema
from bot.service import audit_export, audit_retention
from bot.service.audit_confirmed import is_confirmed

log = logging.getLogger("bot.cli")
EXIT_USAGE = 2


def add_audit_commands(sub: Any) -> None:
    audit = sub.add_parser("audit", help="review the audit log: list, export, verify")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    listing = audit_sub.add_parser("list", help="recent audited attempts as a table, newest first")
    _audit_filter_options(listing)
    add_team_option(listing)
    listing.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    listing.set_defaults(func=_audit_list)
    export = audit_sub.add_parser("export", help="every matching row as CSV or JSON Lines, oldest first")
    export.add_argument("--format", default="csv", help="csv (default) or jsonl")
    _audit_filter_options(export)
    add_team_option(export)
    export.add_argument("--output", metavar="FILE", help="write to FILE (default: standard output)")
    export.set_defaults(func=_audit_export)
    verify = audit_sub.add_parser("verify", help="check the audit hash chain: nothing modified, deleted or reordered")
    verify.set_defaults(func=_audit_verify)
    purge = audit_sub.add_parser(
        "purge", help="delete rows older than an age (audited, with a checkpoint so the chain still verifies)"
    )
    purge.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 400d or 52w (at least 1d)")
    purge.set_defaults(func=_audit_purge)


# -- callbot audit ----------------------------------------------------------------------------------
# The shell is trusted (it can reach the database anyway): it sees every row, reads through
# audit_search directly and needs no provider clients.

_AUDIT_FILTERS = {
    "user": "only this Slack user's attempts (U012AB3CD)",
    "account": "only this account (its name, e.g. prod)",
    "call": "only this call id",
    "action": "only this action (hangup, redirect, grant…)",
    "outcome": "only this outcome (succeeded, failed, denied…)",
    "since": "from this moment on: 2h, 7d, 2026-11-01 or 2026-11-01T09:00 (UTC)",
    "until": "before this moment (same forms as --since)",
}


def add_team_option(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--team",
        metavar="T…",
        help="the Slack workspace (team id); optional while callbot serves one, required with several",
    )


async def _scoped(settings: Settings, db: Database, flt: AuditFilter, asked: str | None) -> AuditFilter:
    """The filter within one workspace: `--team`, else the only one callbot knows (read from
    auth.test, as at start, which also assigns rows written before callbot knew workspaces)."""
    home = await home_workspace(settings, db)
    return replace(
        flt, workspace=await workspaces.choose(db, asked, home, organisations=True, oauth=settings.oauth is not None)
    )


def _audit_filter_options(cmd: argparse.ArgumentParser) -> None:
    for option, helptext in _AUDIT_FILTERS.items():
        cmd.add_argument(f"--{option}", help=helptext)


def _audit_filter(args: argparse.Namespace) -> AuditFilter:
    """The filter options, checked like `/call audit` checks them (bad input: exit 2, one line)."""
    action = args.action.strip().lower() if args.action else None
    if action is not None and action not in grammar.AUDIT_ACTIONS:
        raise InvalidInput(
            f"--action {args.action}", "is not an action", grammar.suggest(action, grammar.AUDIT_ACTIONS)
        )
    outcome = args.outcome.strip().lower() if args.outcome else None
    if outcome is not None and outcome not in OUTCOMES:
        hint = grammar.suggest(outcome, OUTCOMES) or f"Use one of: {', '.join(OUTCOMES)}."
        raise InvalidInput(f"--outcome {args.outcome}", "is not an outcome", hint)
    since, until = _moment("since", args.since), _moment("until", args.until)
    if since is not None and until is not None and since >= until:
        raise InvalidInput(f"--since {args.since}", f"is not before --until {args.until}", None)
    return AuditFilter(
        user_id=_user(args.user) if args.user else None,
        account=args.account,
        call_id=args.call,
        action=action,
        outcome=outcome,
        since=since,
        until=until,
    )


def _user(word: str) -> str:
    try:
        return grammar.parse_user(word)
    except InvalidInput as error:
        raise InvalidInput(f"--user {word}", error.why, "Give a Slack user id, e.g. U012AB3CD.") from None


def _moment(option: str, word: str | None) -> datetime | None:
    """grammar.parse_since, for --until too; its hint speaks `/call`, so the shell says its own."""
    if word is None:
        return None
    try:
        return grammar.parse_since(word)
    except InvalidInput as error:
        raise InvalidInput(
            f"--{option} {word}", error.why, "Use e.g. 2h, 7d, 2026-11-01 or 2026-11-01T09:00 (UTC)."
        ) from None


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[int]]) -> int:
    async def go() -> int:
        await prepare_schema(settings.database_url)
        db = Database(settings.database_url)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(go())


def _audit_list(settings: Settings, args: argparse.Namespace) -> int:
    flt = _audit_filter(args)
    if args.limit < 1:
        raise InvalidInput(f"--limit {args.limit}", "is not a positive number", None)
    limit = min(args.limit, 10_000)

    async def work(db: Database) -> int:
        found = await audit_search.page(db, await _scoped(settings, db, flt, args.team), size=limit)
        if not found.rows:
            print("No audited attempts match.")
            return 0
        # Rows are stored masked; masked again in case an older callbot stored them.
        print(Redactor(settings.secrets()).text("\n".join(audit_table(found.rows))))
        if found.has_older:
            print(f"(the newest {limit} shown; more match: raise --limit or narrow the filters)", file=sys.stderr)
        return 0

    return _with_database(settings, work)


_TABLE = (("TIME (UTC)", 19), ("ID", 12), ("USER", 24), ("SOURCE", 8), ("ACTION", 14), ("ACCOUNT:CALL", 48))
_OUTCOME_WIDTH, _ERROR_WIDTH = 32, 60


def audit_table(rows: Sequence[AuditRow]) -> list[str]:
    """Fixed-width lines for a terminal: columns as wide as their longest cell (capped), the
    error last and cut short. Cells are stripped of control characters: an audit row holds text
    typed by anyone, and an escape sequence must not reach the operator's terminal."""
    cells = [
        [
            row.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            str(row.id),
            row.user_id,
            row.source,
            row.action or "?",
            ":".join(part for part in (row.account, row.call_id) if part) or "-",
            _outcome(row),
            row.error_message if row.error_message and row.outcome not in ("succeeded", "dry_run") else "",
        ]
        for row in rows
    ]
    caps = [cap for _, cap in _TABLE] + [_OUTCOME_WIDTH, _ERROR_WIDTH]
    header = [name for name, _ in _TABLE] + ["OUTCOME", "ERROR"]
    lines = [[_cell(text, cap) for text, cap in zip(line, caps, strict=True)] for line in [header, *cells]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[-1]]).rstrip() for line in lines]


def _outcome(row: AuditRow) -> str:
    """The outcome, then the call state the provider confirmed since (`unknown → completed`): in
    callbot's words, so the column reads the same for every provider (exports have its own)."""
    return f"{row.outcome} → {row.confirmed_status}" if is_confirmed(row) else row.outcome


def _cell(text: str, cap: int) -> str:
    clean = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return clean if len(clean) <= cap else clean[: cap - 1] + "…"


def _audit_export(settings: Settings, args: argparse.Namespace) -> int:
    fmt = args.format.strip().lower()
    if fmt not in audit_export.FORMATS:
        raise InvalidInput(f"--format {args.format}", "is not an export format", "Use csv or jsonl.")
    flt = _audit_filter(args)
    redactor = Redactor(settings.secrets())
    if args.output is None:
        return _export_to_stdout(settings, flt, fmt, redactor, args.team)
    target = Path(args.output)
    # Written beside the target and renamed when complete: an auditor never finds half a file.
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    direct = target.exists() and not target.is_file()  # a FIFO or a device: write in place
    try:
        sink = open(target if direct else partial, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as error:
        raise CallbotError(f"cannot write {args.output}: {error.strerror or error}") from None
    try:
        with sink:
            count = _with_database(settings, _exporting(settings, flt, fmt, sink, redactor, args.team))
        if not direct:
            os.replace(partial, target)
    except OSError as error:
        raise CallbotError(f"cannot write {args.output}: {error.strerror or error}") from None
    finally:
        partial.unlink(missing_ok=True)
    print(f"exported {count} {'row' if count == 1 else 'rows'} to {args.output}", file=sys.stderr)
    return 0


def _exporting(
    settings: Settings, flt: AuditFilter, fmt: str, out: TextIO, redactor: Redactor, team: str | None
) -> Callable[[Database], Awaitable[int]]:
    async def work(db: Database) -> int:
        return await audit_export.write(db, await _scoped(settings, db, flt, team), fmt, out, redactor)

    return work


def _export_to_stdout(settings: Settings, flt: AuditFilter, fmt: str, redactor: Redactor, team: str | None) -> int:
    # UTF-8 whatever the locale, and no newline translation (CSV rows end in \r\n by RFC 4180).
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        _with_database(settings, _exporting(settings, flt, fmt, out, redactor, team))
        out.flush()
    except BrokenPipeError:
        # `callbot audit export | head`: the reader has what it wanted. Point stdout at
        # /dev/null so the interpreter's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        out.detach()
    return 0


def _audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        try:
            report = await chain.verify(db)
        except chain.ChainHeadMissing as error:
            raise CallbotError(str(error)) from None
        print(report.summary())
        moved = await workspaces.misplaced(db)
        if moved:
            ids = ", ".join(f"#{n}" for n in moved)
            print(f"FAILED: audit rows shown in another workspace than their hashed team_id names: {ids}")
        return 0 if report.ok and not moved else 1

    return _with_database(settings, work)


def _audit_purge(settings: Settings, args: argparse.Namespace) -> int:
    older_than = audit_retention.parse_age(args.older_than)

    async def work(db: Database) -> int:
        report = await audit_retention.purge(
            db,
            older_than=older_than,
            now=datetime.now(UTC),
            by=f"shell:{getpass.getuser()}",
            source="cli",
            command_text=f"audit purge --older-than {args.older_than}",
            basis="shell (trusted, like callbot grant)",
        )
        print(report.summary())
        return 0

    return _with_database(settings, work)
