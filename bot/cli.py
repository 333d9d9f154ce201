"""`callbot` on the command line (DESIGN §4). Calls the same service as Slack."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence

from bot import __version__, grammar
from bot.config import Settings
from bot.db import migrate
from bot.errors import CallbotError, ConfigError
from bot.grammar import AuditQuery, GrantCommand
from bot.logs import configure_logging, install_redaction
from bot.redact import Redactor
from bot.replies import Reply
from bot.runtime import Runtime, prepare_schema
from bot.service import Invocation

log = logging.getLogger("bot.cli")
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        settings = Settings.from_env()
        install_redaction(Redactor(settings.secrets()))
        configure_logging()
        return int(args.func(settings, args) or 0)
    except CallbotError as error:
        print(f"callbot: {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


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
        cmd.add_argument("user", help="Slack user id, e.g. U012AB3CD")
        cmd.add_argument("actions", help="comma-separated: hangup,cancel,redirect,twiml,flow,audit,admin")
        cmd.add_argument("--on", default="*", help="comma-separated account names, or * (default)")
        cmd.set_defaults(func=_grant, revoke=name == "revoke")

    perms = sub.add_parser("perms", help="who may do what (one user, or everyone)")
    perms.add_argument("user", nargs="?")
    perms.set_defaults(func=_perms)

    run = sub.add_parser("run", help='run a /call command as a Slack user, e.g. run --as U012AB3CD "hangup prod:CA…"')
    run.add_argument("--as", dest="as_user", required=True, help="the Slack user id to act as (permission-checked)")
    run.add_argument("text", help="the command, as typed after /call")
    run.set_defaults(func=_run)

    sub.add_parser("accounts", help="the configured provider accounts (no secrets)").set_defaults(func=_accounts)

    audit = sub.add_parser("audit", help="review the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    listing = audit_sub.add_parser("list", help="recent audited attempts, newest first")
    for option in ("user", "account", "call", "action", "outcome", "since"):
        listing.add_argument(f"--{option}")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=_audit_list)
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
            print(
                "callbot: environment: SLACK_APP_TOKEN: Socket Mode needs an app-level token (xapp-…)",
                file=sys.stderr,
            )
            return EXIT_USAGE
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
            await handler.start_async()
        finally:
            await runtime.close()

    asyncio.run(go())
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    migrate.upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


def _grant(settings: Settings, args: argparse.Namespace) -> int:
    command = GrantCommand(
        revoke=args.revoke,
        user_id=grammar.parse_user(args.user),
        actions=grammar.parse_actions(args.actions),
        accounts=tuple(a.strip() for a in args.on.split(",") if a.strip()) or ("*",),
    )
    return _with_runtime(settings, lambda rt: rt.service.shell_grant(command, getpass.getuser()))


def _perms(settings: Settings, args: argparse.Namespace) -> int:
    user = grammar.parse_user(args.user) if args.user else None
    return _with_runtime(settings, lambda rt: rt.service.perms_of(user))


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


def _audit_list(settings: Settings, args: argparse.Namespace) -> int:
    query = AuditQuery(
        user_id=grammar.parse_user(args.user) if args.user else None,
        account=args.account,
        call_id=args.call,
        action=args.action,
        outcome=args.outcome,
        since=grammar.parse_since(args.since) if args.since else None,
        limit=max(1, min(args.limit, 10_000)),
    )
    return _with_runtime(settings, lambda rt: rt.service.shell_audit(query))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
