"""Everything a running callbot holds: database, provider clients, the service. One per process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from bot import metrics
from bot.config import Settings
from bot.db import migrate, problems, repo, workspaces
from bot.db.session import Database, is_sqlite
from bot.domain.directory import Directory
from bot.domain.errors import ConfigError
from bot.domain.redact import Redactor
from bot.logs import install_redaction
from bot.observe import AttemptObserver
from bot.providers import create_clients
from bot.providers.base import ProviderClient
from bot.service import audit_retention
from bot.service.audit_retention import PurgeReport
from bot.service.bulk.plans import BatchNotice
from bot.service.core import ApprovalUpdate, Clock, Recovered, Service

if TYPE_CHECKING:
    from bot.slack.installs import Installs

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clients: dict[str, ProviderClient]
    service: Service
    redactor: Redactor
    # Whether the last read of the /metrics database gauges worked: an outage is logged once.
    gauges_readable: bool = True
    # What the start-up sweep closed: the pending sweeper tells the people concerned.
    recovered: list[Recovered] = field(default_factory=list)
    # Which bot token talks to which workspace (bot/slack/installs.py): `client_for`.
    installs: Installs | None = None

    @classmethod
    async def start(cls, settings: Settings, *, recover: bool = True, clock: Clock | None = None) -> Runtime:
        """`clock`: what the service takes as "now" (rate limits, audit times); tests control it."""
        redactor = Redactor(settings.secrets())
        install_redaction(redactor)
        await prepare_schema(settings.database_url)
        clients = create_clients(settings.accounts, settings.public_url)
        db = Database(settings.database_url)
        db.observer = AttemptObserver()
        from bot.slack.installs import Installs

        installs = Installs(settings, db)
        try:
            home = await home_workspace(settings, db)
        except Exception:
            await db.close()
            raise
        policies = {name: account.config.policy() for name, account in settings.accounts.items()}
        service = Service(
            db,
            clients,
            redactor,
            policies=policies,
            clock=clock,
            directory=create_directory(installs, clock),
            batch_stale_after=settings.batch_stale_after,
            workspaces={name: account.config.workspaces for name, account in settings.accounts.items()},
            home=home,
        )
        runtime = cls(settings, db, clients, service, redactor, installs=installs)
        if recover:
            try:
                runtime.recovered = await service.recover_pending(settings.pending_grace)
            except Exception:
                await runtime.close()
                raise
        return runtime

    async def team(self, asked: str | None) -> str:
        """The workspace a shell command is about (`--team`; optional while callbot knows one)."""
        return await workspaces.choose(self.db, asked, self.service.home, oauth=self.settings.oauth is not None)

    async def enterprise_of(self, team: str) -> str | None:
        return await workspaces.enterprise_of(self.db, team)

    async def sweep_pending_forever(self, every: float = 30.0) -> None:
        """In a long-running server, rows of a crashed sibling process are recovered too. Each
        person whose request was left without an answer is told (the start-up sweep's first),
        with what the provider shows happened to the call when it can be read back."""
        recovered, self.recovered = self.recovered, []
        started = True
        while True:
            try:
                recovered = await self.service.resolve_recovered(recovered)
            except Exception:
                log.exception("could not read back the calls of recovered audit rows")
            await self.tell_recovered(recovered)
            if started:
                started = False
                try:
                    # Earlier `unknown` rows nobody confirmed (their read-back failed, or a process
                    # stopped before it ran) are read back once, at start-up.
                    await self.service.confirmations.resolve_recent()
                except Exception:
                    log.exception("could not read back recent unknown outcomes")
            await asyncio.sleep(every)
            try:
                recovered = await self.service.recover_pending(self.settings.pending_grace)
            except Exception:
                log.exception("pending-row sweep failed; will retry")
                recovered = []

    async def tell_recovered(self, recovered: list[Recovered]) -> None:
        if not any(item.response_url for item in recovered):
            return
        from bot.slack.recovered import tell_recovered

        try:
            await tell_recovered(recovered)
        except Exception:
            log.exception("could not post the final messages of recovered audit rows")

    async def sweep_approvals(self, tell: Callable[[ApprovalUpdate], Awaitable[None]]) -> int:
        """Expire approval requests past their deadline (audited by the service); `tell` updates the
        approvers' message and the requester (the chat layer). Returns how many expired."""
        try:
            updates = await self.service.expire_approvals()
        except Exception:
            log.exception("approval expiry sweep failed; will retry")
            return 0
        for update in updates:
            try:
                await tell(update)
            except Exception:
                log.exception("could not announce an expired approval request")
        return len(updates)

    async def sweep_approvals_forever(
        self, tell: Callable[[ApprovalUpdate], Awaitable[None]], every: float = 30.0
    ) -> None:
        while True:
            await asyncio.sleep(every)
            await self.sweep_approvals(tell)

    async def purge_expired_audit(self) -> PurgeReport | None:
        """`audit_retention_days`: purge what is older (audited). None when retention is off or
        nothing is old enough (no audit row then, so an idle server does not fill the log)."""
        days = self.settings.audit_retention_days
        if not days:
            return None
        now = self.service.now()
        if not await audit_retention.has_rows_before(self.db, now - timedelta(days=days)):
            return None
        report = await audit_retention.purge(
            self.db,
            older_than=timedelta(days=days),
            now=now,
            by="callbot",
            source="system",
            command_text=f"audit purge --older-than {days}d",
            basis=f"audit_retention_days = {days} ({self.settings.config_source})",
        )
        log.info("audit retention: %s", report.summary())
        return report

    async def purge_audit_forever(self, every: float = 86_400.0, first_after: float = 60.0) -> None:
        await asyncio.sleep(first_after)
        while True:
            try:
                await self.purge_expired_audit()
            except Exception:
                log.exception("audit retention purge failed; will retry")
            await asyncio.sleep(every)

    async def sweep_batches(self, tell: Callable[[BatchNotice], Awaitable[None]]) -> int:
        """Running batches whose process stopped beating become `interrupted` (resumable); `tell`
        updates each one's progress message. Returns how many were found."""
        try:
            notices = await self.service.bulk.interrupted()
        except Exception:
            log.exception("interrupted-batch sweep failed; will retry")
            return 0
        for notice in notices:
            try:
                await tell(notice)
            except Exception:
                log.exception("could not announce interrupted batch #%s", notice.batch_id)
        return len(notices)

    async def sweep_batches_forever(self, tell: Callable[[BatchNotice], Awaitable[None]], every: float) -> None:
        # At once on start-up, then regularly: a batch of a process that died just before this one
        # started still has a fresh heartbeat at first.
        while True:
            await self.sweep_batches(tell)
            await asyncio.sleep(every)

    def start_background(
        self,
        tell: Callable[[ApprovalUpdate], Awaitable[None]],
        tell_batch: Callable[[BatchNotice], Awaitable[None]],
        *,
        approval_sweep_every: float = 30.0,
        retention_every: tuple[float, float] = (60.0, 86_400.0),
        batch_sweep_every: float = 10.0,
    ) -> list[asyncio.Task[None]]:
        """The periodic work of a long-running server (HTTP or Socket Mode): abandoned pending
        rows, approval expiry, interrupted batches, audit retention. The caller cancels the tasks
        on shutdown."""
        return [
            asyncio.create_task(self.sweep_pending_forever()),
            asyncio.create_task(self.sweep_approvals_forever(tell, approval_sweep_every)),
            asyncio.create_task(self.sweep_batches_forever(tell_batch, batch_sweep_every)),
            asyncio.create_task(self.purge_audit_forever(retention_every[1], retention_every[0])),
        ]

    async def refresh_gauges(self, timeout: float = 2.0) -> None:
        """The database-wide gauges of GET /metrics; a slow or broken database sets
        callbot_database_up to 0 rather than hanging the scrape."""
        try:
            pending, running = await asyncio.wait_for(repo.gauges(self.db), timeout)
        except Exception as error:
            if self.gauges_readable:
                log.warning("metrics: the database gauges cannot be read (%s)", type(error).__name__)
            self.gauges_readable = False
            metrics.DATABASE_UP.set(0)
            return
        self.gauges_readable = True
        metrics.AUDIT_PENDING_ROWS.set(pending)
        metrics.BULK_BATCHES_RUNNING.set(running)
        metrics.DATABASE_UP.set(1)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        await self.db.close()


async def require_assigned(settings: Settings, db: Database) -> None:
    """OAuth mode starts only once every row has its workspace (ConfigError otherwise)."""
    if settings.oauth is None:
        return
    waiting = await workspaces.unassigned(db)
    if waiting:
        # Only a bot token's auth.test says whose they are: OAuth mode would show them nowhere,
        # and their freezes would hold nowhere.
        listed = ", ".join(f"{table} {count}" for table, count in sorted(waiting.items()))
        raise ConfigError(
            "environment",
            "SLACK_CLIENT_ID",
            f"rows written before workspaces have none yet ({listed}): run `callbot migrate` once with "
            "the old SLACK_BOT_TOKEN set (and SLACK_CLIENT_ID unset) to give them its workspace, then "
            "switch to OAuth mode",
        )


async def home_workspace(settings: Settings, db: Database) -> str | None:
    """The workspace of SLACK_BOT_TOKEN (auth.test; rows without a workspace are assigned to it).
    When Slack cannot say, the one workspace recorded earlier, if there is exactly one."""
    from bot.slack.identity import identify

    await require_assigned(settings, db)
    team = await identify(settings, db)
    if team is None and settings.slack_bot_token:
        known = await workspaces.known(db)
        team = known[0].team_id if len(known) == 1 else None
    return team


def create_directory(installs: Installs, clock: Clock | None) -> Directory | None:
    """User-group membership from Slack: with the bot token (the server always has one; the
    shell may not, and then group grants cannot match there), or in OAuth mode with the token of
    the request's workspace."""
    from bot.slack.directory import SlackDirectory
    from bot.slack.installs import WorkspaceDirectory

    now = clock or (lambda: datetime.now(UTC))
    if installs.oauth_mode:
        return WorkspaceDirectory(installs, now)
    # The user-group lookup runs before Slack's 3 s ack: no rate-limit retries.
    client = installs.single_client(before_ack=True)
    return SlackDirectory(client, now) if client is not None else None


async def prepare_schema(database_url: str) -> None:
    """SQLite (embedded) migrates itself; PostgreSQL is migrated by the release phase."""
    if is_sqlite(database_url):
        await asyncio.to_thread(migrate.upgrade, database_url)
        return
    try:
        behind = await asyncio.to_thread(migrate.pending_revisions, database_url)
    except SQLAlchemyError as exc:
        raise problems.describe(exc, database_url) from None
    if behind:
        raise problems.DatabaseProblem(database_url, "the schema is not up to date: run `callbot migrate`")
