"""`callbot` on the command line (DESIGN §4). Calls the same service as Slack."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace
from functools import partial

from sqlalchemy.exc import SQLAlchemyError

from bot import __version__
from bot.audit_cli import add_audit_commands, add_team_option
from bot.config import Settings
from bot.db import migrate, problems
from bot.db.session import Database
from bot.domain import grammar
from bot.domain.errors import CallbotError, ConfigError
from bot.domain.grammar import GrantCommand, RoleCommand
from bot.domain.redact import Redactor
from bot.domain.replies import Reply
from bot.logs import LogSettings, configure_logging, install_redaction, report_failure, request_context
from bot.runtime import Runtime, home_workspace, prepare_schema, require_assigned
from bot.service.core import Invocation

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
        add_team_option(cmd)
        cmd.set_defaults(func=_grant, revoke=name == "revoke")

    perms = sub.add_parser("perms", help="who may do what, where, until when (one user or group, or everyone)")
    perms.add_argument("user", nargs="?")
    add_team_option(perms)
    perms.set_defaults(func=_perms)

    roles = sub.add_parser("roles", help="the built-in and custom roles and their actions")
    add_team_option(roles)
    roles.set_defaults(func=_roles)
    role = sub.add_parser("role", help="define roles: role create NAME ACTIONS")
    role_sub = role.add_subparsers(dest="role_command", metavar="SUBCOMMAND", required=True)
    create = role_sub.add_parser("create", help="create or redefine a custom role")
    create.add_argument("name")
    create.add_argument("actions", help="comma-separated actions, e.g. hangup,audit")
    add_team_option(create)
    create.set_defaults(func=_role_create)

    run = sub.add_parser("run", help='run a /call command as a Slack user, e.g. run --as U012AB3CD "hangup prod:CA…"')
    run.add_argument("--as", dest="as_user", required=True, help="the Slack user id to act as (permission-checked)")
    run.add_argument("text", help="the command, as typed after /call")
    add_team_option(run)
    run.set_defaults(func=_run)

    sub.add_parser("accounts", help="the configured provider accounts (no secrets)").set_defaults(func=_accounts)

    add_audit_commands(sub)
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
        if settings.oauth is not None:
            raise ConfigError(
                "environment",
                "SLACK_CLIENT_ID",
                "Socket Mode serves one workspace: run `callbot serve` over HTTP for OAuth installs, or unset "
                "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET and set SLACK_BOT_TOKEN for Socket Mode",
            )
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
    if settings.oauth is not None:
        asyncio.run(_require_assigned(settings))
    import uvicorn

    from bot.web import create_web_app

    port = args.port or settings.port
    log.info(
        "callbot %s listening on %s:%d (accounts: %s; Slack: %s)",
        __version__,
        args.host,
        port,
        ", ".join(settings.accounts) or "none",
        "OAuth mode, install at /slack/install" if settings.oauth else "one workspace",
    )
    uvicorn.run(create_web_app(settings), host=args.host, port=port, log_config=None, proxy_headers=True)
    return 0


def _serve_socket(settings: Settings) -> int:
    app_token = settings.slack_app_token or ""  # checked by the caller
    from slack_sdk.errors import SlackApiError

    from bot.slack.app import create_bolt_app, socket_mode_handler
    from bot.slack.notify import tell_interrupted, tell_update

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
            handler = socket_mode_handler(app, app_token)
            log.info("callbot %s connected over Socket Mode", __version__)

            installs = runtime.installs
            assert installs is not None
            background = runtime.start_background(partial(tell_update, installs), partial(tell_interrupted, installs))
            try:
                await handler.start_async()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
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
    if settings.slack_bot_token:
        # Rows written before callbot knew workspaces go to the bot token's (auth.test), once.
        team = asyncio.run(_identify(settings))
        said = f"Slack workspace: {team}" if team else "Slack workspace: unknown (auth.test failed; see the log)"
        print(said, file=sys.stderr)
    return 0


async def _require_assigned(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        await require_assigned(settings, db)
    finally:
        await db.close()


async def _identify(settings: Settings) -> str | None:
    db = Database(settings.database_url)
    try:
        return await home_workspace(settings, db)
    finally:
        await db.close()


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
        team = await rt.team(args.team)
        # An unknown action or role is a usage error (stderr, exit 2), as before roles existed.
        grammar.check_grantable(command.actions, await rt.service.grants.custom_role_names(team))
        return await rt.service.grants.shell_grant(team, command, getpass.getuser())

    return _with_runtime(settings, work)


def _perms(settings: Settings, args: argparse.Namespace) -> int:
    kind, subject = grammar.parse_subject(args.user) if args.user else ("user", None)

    async def work(rt: Runtime) -> Reply:
        return await rt.service.grants.perms_of(await rt.team(args.team), subject, kind)

    return _with_runtime(settings, work)


def _roles(settings: Settings, args: argparse.Namespace) -> int:
    async def work(rt: Runtime) -> Reply:
        return await rt.service.grants.roles(await rt.team(args.team))

    return _with_runtime(settings, work)


def _role_create(settings: Settings, args: argparse.Namespace) -> int:
    command = grammar.parse(f"role create {args.name} {args.actions}")
    assert isinstance(command, RoleCommand)

    async def work(rt: Runtime) -> Reply:
        return await rt.service.grants.shell_role(await rt.team(args.team), command, getpass.getuser())

    return _with_runtime(settings, work)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    inv = Invocation(
        source="cli",
        user_id=grammar.parse_user(args.as_user),
        user_name=f"shell:{getpass.getuser()}",
        text=args.text,
    )

    async def work(rt: Runtime) -> Reply:
        team = await rt.team(args.team)
        enterprise = await rt.enterprise_of(team)
        from bot.slack.installs import current_workspace

        # Group grants are read from that workspace's user groups (OAuth mode: its installation's token).
        current_workspace.set((team, enterprise))
        return await rt.service.handle(replace(inv, team_id=team, enterprise_id=enterprise))

    return _with_runtime(settings, work)


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
        shared = f"  workspaces: {', '.join(config.workspaces)}" if config.workspaces else ""
        print(f"  {name:<16} {account.provider:<10} {ident}  {config.base_url}{shared}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
