"""`callbot` on the command line (DESIGN §4). Calls the same service as Slack."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from bot import __version__
from bot.config import Settings
from bot.db import audit_search, chain, migrate, problems
from bot.db.audit_search import AuditFilter
from bot.db.models import AuditRow
from bot.db.session import Database
from bot.domain import grammar
from bot.domain.errors import CallbotError, ConfigError, InvalidInput
from bot.domain.grammar import GrantCommand, RoleCommand
from bot.domain.redact import Redactor
from bot.domain.replies import Reply
from bot.logs import LogSettings, configure_logging, install_redaction, report_failure, request_context
from bot.runtime import Runtime, prepare_schema
from bot.service import audit_export, audit_retention
from bot.service.bulk.actions import BatchNotice
from bot.service.core import ApprovalUpdate, Invocation

log = logging.getLogger("bot.cli")
EXIT_USAGE = 2
EXIT_FAILURE = 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    log_settings = LogSettings()
    database_url: str | None = None
    try:
        # A server logs what it does; a one-off command prints its answer and logs only problems.
        serving = args.command == "serve"
        log_settings = LogSettings.from_env(os.environ, default_level="INFO" if serving else "WARNING")
        configure_logging(log_settings)
        settings = Settings.from_env()
        database_url = settings.database_url
        install_redaction(Redactor(settings.secrets()))
        # A one-off command is one request; a server gives each HTTP request its own (bot/web.py).
        with nullcontext() if serving else request_context():
            return int(args.func(settings, args) or 0)
    except problems.DatabaseProblem as error:
        report_failure(error.message, log_settings)
        return EXIT_FAILURE
    except CallbotError as error:
        report_failure(error.message, log_settings)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except SQLAlchemyError as error:
        # Unreachable, refused, missing: one line naming the database, no traceback.
        log.debug("database failure", exc_info=True)
        report_failure(problems.describe(error, database_url or "").message, log_settings)
        return EXIT_FAILURE
    except Exception as error:
        log.debug("unexpected failure", exc_info=True)
        report_failure(
            f"unexpected error ({type(error).__name__}: {error}); LOG_LEVEL=DEBUG shows the traceback",
            log_settings,
        )
        return EXIT_FAILURE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callbot", description="Control live phone calls from Slack, safely.")
    parser.add_argument("--version", action="version", version=f"callbot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the bot (HTTP on $PORT, or Socket Mode with --socket)")
    serve.add_argument("--port", type=int, help="HTTP port (default $PORT or 3000)")
    serve.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    serve.add_argument("--socket", action="store_true", help="Socket Mode (needs SLACK_APP_TOKEN), no public URL")
    serve.set_defaults(func=_serve)

    sub.add_parser("migrate", help="upgrade the database schema to the newest version").set_defaults(func=_migrate)

    for name, helptext in (("grant", "let a Slack user run actions"), ("revoke", "take actions back")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("user", help="Slack user id (U012AB3CD) or user group id (S0123ABC)")
        cmd.add_argument("actions", help="comma-separated actions or roles: operator, hangup,redirect, admin…")
        cmd.add_argument("--on", default="*", help="comma-separated account names, or * (default)")
        cmd.add_argument("--in", dest="channel", help="only from this Slack channel (its id, C0123ABCD)")
        if name == "grant":
            until = cmd.add_mutually_exclusive_group()
            until.add_argument("--for", dest="duration", help="temporary: 30m, 8h, 2d, 1w")
            until.add_argument("--until", help="temporary: a date (UTC), e.g. 2026-12-01")
            cmd.add_argument(
                "--needs-approval",
                action="store_true",
                help="hold what this grant allows for two-person approval (the account needs approvers_channel)",
            )
        cmd.set_defaults(func=_grant, revoke=name == "revoke")

    perms = sub.add_parser("perms", help="who may do what, where, until when (one user or group, or everyone)")
    perms.add_argument("user", nargs="?")
    perms.set_defaults(func=_perms)

    sub.add_parser("roles", help="the built-in and custom roles and their actions").set_defaults(func=_roles)
    role = sub.add_parser("role", help="define roles: role create NAME ACTIONS")
    role_sub = role.add_subparsers(dest="role_command", metavar="SUBCOMMAND", required=True)
    create = role_sub.add_parser("create", help="create or redefine a custom role")
    create.add_argument("name")
    create.add_argument("actions", help="comma-separated actions, e.g. hangup,audit")
    create.set_defaults(func=_role_create)

    run = sub.add_parser("run", help='run a /call command as a Slack user, e.g. run --as U012AB3CD "hangup prod:CA…"')
    run.add_argument("--as", dest="as_user", required=True, help="the Slack user id to act as (permission-checked)")
    run.add_argument("text", help="the command, as typed after /call")
    run.set_defaults(func=_run)

    sub.add_parser("accounts", help="the configured provider accounts (no secrets)").set_defaults(func=_accounts)

    audit = sub.add_parser("audit", help="review the audit log: list, export, verify")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    listing = audit_sub.add_parser("list", help="recent audited attempts as a table, newest first")
    _audit_filter_options(listing)
    listing.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    listing.set_defaults(func=_audit_list)
    export = audit_sub.add_parser("export", help="every matching row as CSV or JSON Lines, oldest first")
    export.add_argument("--format", default="csv", help="csv (default) or jsonl")
    _audit_filter_options(export)
    export.add_argument("--output", metavar="FILE", help="write to FILE (default: standard output)")
    export.set_defaults(func=_audit_export)
    verify = audit_sub.add_parser("verify", help="check the audit hash chain: nothing modified, deleted or reordered")
    verify.set_defaults(func=_audit_verify)
    purge = audit_sub.add_parser(
        "purge", help="delete rows older than an age (audited, with a checkpoint so the chain still verifies)"
    )
    purge.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 400d or 52w (at least 1d)")
    purge.set_defaults(func=_audit_purge)
    return parser


def _with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[Reply]]) -> int:
    async def go() -> Reply:
        runtime = await Runtime.start(settings, recover=False)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    reply = asyncio.run(go())
    print(reply.as_text())
    return 0 if reply.ok else 1


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    if args.socket:
        if not settings.slack_app_token or not settings.slack_app_token.startswith("xapp-"):
            raise ConfigError("environment", "SLACK_APP_TOKEN", "Socket Mode needs an app-level token (xapp-…)")
        settings.require_bot_token()
        return _serve_socket(settings)
    settings.require_http_serving()
    # Fail fast, in one line, before uvicorn prints its own start-up noise.
    asyncio.run(prepare_schema(settings.database_url))
    from bot.providers import create_clients

    async def check_clients() -> None:
        for client in create_clients(settings.accounts).values():
            await client.aclose()

    asyncio.run(check_clients())
    import uvicorn

    from bot.web import create_web_app

    port = args.port or settings.port
    log.info(
        "callbot %s listening on %s:%d (accounts: %s)",
        __version__,
        args.host,
        port,
        ", ".join(settings.accounts) or "none",
    )
    uvicorn.run(create_web_app(settings), host=args.host, port=port, log_config=None, proxy_headers=True)
    return 0


def _serve_socket(settings: Settings) -> int:
    app_token = settings.slack_app_token or ""  # checked by the caller
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.errors import SlackApiError

    from bot.slack.app import create_bolt_app
    from bot.slack.approvals import apply_update
    from bot.slack.batches import announce_interrupted

    async def go() -> None:
        runtime = await Runtime.start(settings)
        try:
            app = create_bolt_app(settings, runtime.service)
            try:
                # The Socket Mode client retries a refused token forever: ask once, fail in one line.
                await app.client.apps_connections_open(app_token=app_token)
            except SlackApiError as error:
                reason = error.response.get("error", "unknown error")
                raise ConfigError(
                    "environment", "SLACK_APP_TOKEN", f"Slack refused the Socket Mode connection ({reason})"
                ) from None
            handler = AsyncSocketModeHandler(app, app_token)
            log.info("callbot %s connected over Socket Mode", __version__)

            async def tell(update: ApprovalUpdate) -> None:
                await apply_update(app.client, update)

            async def tell_batch(notice: BatchNotice) -> None:
                await announce_interrupted(app.client, notice)

            background = runtime.start_background(tell, tell_batch)
            try:
                await handler.start_async()
            finally:
                for task in background:
                    task.cancel()
        finally:
            await runtime.close()

    asyncio.run(go())
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    migrate.upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


def _grant(settings: Settings, args: argparse.Namespace) -> int:
    kind, subject = grammar.parse_subject(args.user)
    duration = getattr(args, "duration", None)
    until = getattr(args, "until", None)
    command = GrantCommand(
        revoke=args.revoke,
        user_id=subject,
        actions=grammar.parse_actions(args.actions),
        accounts=tuple(a.strip() for a in args.on.split(",") if a.strip()) or ("*",),
        subject_kind=kind,
        channel=grammar.parse_channel(args.channel) if args.channel else None,
        duration=grammar.parse_duration(duration) if duration else None,
        until=grammar.parse_until(until) if until else None,
        needs_approval=bool(getattr(args, "needs_approval", False)),
    )

    async def work(rt: Runtime) -> Reply:
        # An unknown action or role is a usage error (stderr, exit 2), as before roles existed.
        grammar.check_grantable(command.actions, await rt.service.grants.custom_role_names())
        return await rt.service.grants.shell_grant(command, getpass.getuser())

    return _with_runtime(settings, work)


def _perms(settings: Settings, args: argparse.Namespace) -> int:
    kind, subject = grammar.parse_subject(args.user) if args.user else ("user", None)
    return _with_runtime(settings, lambda rt: rt.service.grants.perms_of(subject, kind))


def _roles(settings: Settings, args: argparse.Namespace) -> int:
    return _with_runtime(settings, lambda rt: rt.service.grants.roles())


def _role_create(settings: Settings, args: argparse.Namespace) -> int:
    command = grammar.parse(f"role create {args.name} {args.actions}")
    assert isinstance(command, RoleCommand)
    return _with_runtime(settings, lambda rt: rt.service.grants.shell_role(command, getpass.getuser()))


def _run(settings: Settings, args: argparse.Namespace) -> int:
    inv = Invocation(
        source="cli",
        user_id=grammar.parse_user(args.as_user),
        user_name=f"shell:{getpass.getuser()}",
        text=args.text,
    )
    return _with_runtime(settings, lambda rt: rt.service.handle(inv))


def _accounts(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.accounts:
        print(f"No provider accounts configured (source: {settings.config_source}).")
        return 0
    print(f"Accounts from {settings.config_source}:")
    for name, account in sorted(settings.accounts.items()):
        config = account.config
        ident = (
            getattr(config, "account_sid", None)
            or getattr(config, "account_id", None)
            or getattr(config, "workspace_id", "")
        )
        print(f"  {name:<16} {account.provider:<10} {ident}  {config.base_url}")
    return 0


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
    if outcome is not None and outcome not in grammar.OUTCOMES:
        hint = grammar.suggest(outcome, grammar.OUTCOMES) or f"Use one of: {', '.join(grammar.OUTCOMES)}."
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
        found = await audit_search.page(db, flt, size=limit)
        if not found.rows:
            print("No audited attempts match.")
            return 0
        print("\n".join(audit_table(found.rows)))
        if found.has_older:
            print(f"(the newest {limit} shown; more match: raise --limit or narrow the filters)", file=sys.stderr)
        return 0

    return _with_database(settings, work)


_TABLE = (("TIME (UTC)", 19), ("ID", 12), ("USER", 24), ("SOURCE", 8), ("ACTION", 14), ("ACCOUNT:CALL", 48))
_OUTCOME_WIDTH, _ERROR_WIDTH = 16, 60


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
            row.outcome,
            row.error_message if row.error_message and row.outcome not in ("succeeded", "dry_run") else "",
        ]
        for row in rows
    ]
    caps = [cap for _, cap in _TABLE] + [_OUTCOME_WIDTH, _ERROR_WIDTH]
    header = [name for name, _ in _TABLE] + ["OUTCOME", "ERROR"]
    lines = [[_cell(text, cap) for text, cap in zip(line, caps, strict=True)] for line in [header, *cells]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[-1]]).rstrip() for line in lines]


def _cell(text: str, cap: int) -> str:
    clean = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return clean if len(clean) <= cap else clean[: cap - 1] + "…"


def _audit_export(settings: Settings, args: argparse.Namespace) -> int:
    fmt = args.format.strip().lower()
    if fmt not in audit_export.FORMATS:
        raise InvalidInput(f"--format {args.format}", "is not an export format", "Use csv or jsonl.")
    flt = _audit_filter(args)
    if args.output is None:
        return _export_to_stdout(settings, flt, fmt)
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
            count = _with_database(settings, lambda db: audit_export.write(db, flt, fmt, sink))
        if not direct:
            os.replace(partial, target)
    except OSError as error:
        raise CallbotError(f"cannot write {args.output}: {error.strerror or error}") from None
    finally:
        partial.unlink(missing_ok=True)
    print(f"exported {count} {'row' if count == 1 else 'rows'} to {args.output}", file=sys.stderr)
    return 0


def _export_to_stdout(settings: Settings, flt: AuditFilter, fmt: str) -> int:
    # UTF-8 whatever the locale, and no newline translation (CSV rows end in \r\n by RFC 4180).
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        _with_database(settings, lambda db: audit_export.write(db, flt, fmt, out))
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
        return 0 if report.ok else 1

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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
