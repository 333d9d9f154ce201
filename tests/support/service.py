"""The use cases without HTTP: the real Service, built by the real start-up wiring (bot/runtime.py
`Runtime.start`) on this worker's test database, its provider clients pointed at the fake servers,
its user-group directory at the fake Slack, "now" a FakeClock. No uvicorn, no Bolt, no signing:
a test hands the service an `Invocation`, as the Slack listeners and the shell do, and asserts on
the `Reply`, the audit rows and what the provider fakes received.

For what does not cross the wire: permissions, policy, grammar, idempotency, approval decisions.
Signing, Slack payloads, Block Kit, provider requests and crash recovery stay end to end
(tests/support/bots.py). See docs/development.md, "Which level tests what".
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from bot.config import Settings
from bot.domain.outcomes import Source
from bot.domain.replies import Reply
from bot.runtime import Runtime
from bot.service.core import ApprovalDecision, ApprovalUpdate, Done, Invocation, Service, Started
from tests.support.bots import ALICE, BOB, CAROL, EVERY_ACCOUNT, Fakes, bot_config, deployment_env
from tests.support.clock import FakeClock
from tests.support.database import DbHelper

T = TypeVar("T")
# What the slash-command sample (tests/payloads/slash_command.form) says of where it was typed.
TEAM = "T0001"
OPS = "C2147483705"
NAMES = {ALICE: "alice", BOB: "bob", CAROL: "carol"}
_keys = itertools.count(1)


@dataclass(frozen=True)
class Decided:
    """What an Approve / Deny click led to: the clicker's reply (`decision.reply`), the approved
    action's outcome, and the request's message as the approvers and the requester now see it."""

    decision: ApprovalDecision
    outcome: Reply | None
    update: ApprovalUpdate | None

    @property
    def reply(self) -> Reply:
        return self.decision.reply


@dataclass
class ServiceBot:
    """One Service on its own event loop (kept for the test: the database pool and the provider
    clients belong to it). The methods are synchronous: they run the use case to its end."""

    runtime: Runtime
    runner: asyncio.Runner
    db: DbHelper
    fakes: Fakes
    clock: FakeClock
    closed: bool = False

    @property
    def service(self) -> Service:
        return self.runtime.service

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of the service (`bot.call(bot.service.expire_approvals())`)."""
        return self.runner.run(work)

    def invocation(
        self,
        text: str,
        user: str = ALICE,
        *,
        channel: str | None = OPS,
        source: str = Source.SLASH,
        key: str | None = None,
    ) -> Invocation:
        """What a slash command becomes at the Slack edge (bot/slack/invocations.py): `text` as the
        person typed it (Slack's markup already undone), a new idempotency key unless `key` replays one."""
        return Invocation(
            source=source,
            user_id=user,
            text=text,
            user_name=NAMES.get(user, "someone"),
            team_id=TEAM,
            channel_id=channel,
            idempotency_key=key if key is not None else f"test:{next(_keys)}",
        )

    def begin(self, text: str, user: str = ALICE, **how: Any) -> Done | Started:
        """The first step only: replay, parse, route, decide; a call action is audited pending."""
        return self.call(self.service.begin(self.invocation(text, user, **how)))

    def say(self, text: str, user: str = ALICE, **how: Any) -> Reply:
        """The final reply, as the Slack driver gets it: `begin`, then `finish` for a call action
        that was started (its provider request sent to the fake)."""
        return self.answer(self.begin(text, user, **how))

    def answer(self, step: Done | Started) -> Reply:
        return self.call(self.service.finish(step)) if isinstance(step, Started) else step.reply

    def choose(self, reply: Reply, user: str = ALICE, *, index: int = 0) -> Reply:
        """A click on the reply's button `index` (an account choice, a confirmation's Confirm), as
        bot/slack/listeners/buttons.py hands it to the service: begin_choice, then finish."""
        token, _, account = reply.choices[index].value.partition("|")
        inv = replace(self.invocation("", user, source=Source.BUTTON), idempotency_key=f"choice:{token}")
        return self.answer(self.call(self.service.begin_choice(inv, token, account)))

    def ask_approval(self, text: str, user: str = ALICE) -> tuple[Reply, int]:
        """An action that needs two-person approval: the reply and the request's id, its message
        posted (as the chat layer reports it) so that it can be decided."""
        reply = self.say(text, user)
        assert reply.approval is not None, reply
        approval_id = reply.approval.approval_id
        self.call(self.service.approval_posted(approval_id, "1700000000.000100"))
        return reply, approval_id

    def decide(self, approval_id: int, user: str, *, approve: bool = True) -> Decided:
        """An Approve / Deny click as bot/slack/listeners/approvals.py handles it, without Slack: the
        decision; for an approved action, its outcome once sent, recorded on the request."""
        inv = self.invocation("", user, source=Source.BUTTON)
        decision = self.call(self.service.decide_approval(inv, approval_id, approve=approve))
        if decision.step is None:
            return Decided(decision, None, decision.update)
        outcome = self.answer(decision.step)
        return Decided(decision, outcome, self.call(self.service.approval_finished(approval_id, outcome)))

    def sent(self) -> int:
        """Requests that change a call, received by the provider fakes (reads are not counted)."""
        return len(self.fakes.twilio.updates()) + len(self.fakes.bandwidth.updates()) + len(self.fakes.bird.updates())

    def audit(self) -> list[dict[str, Any]]:
        return self.db.audit()

    def last_audit(self) -> dict[str, Any]:
        return self.db.audit()[-1]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.runner.run(self.runtime.close())
        finally:
            self.runner.close()


def build(
    directory: Path,
    db: DbHelper,
    fakes: Fakes,
    accounts: Mapping[str, str] = EVERY_ACCOUNT,
    *,
    extra: str = "",
    preamble: str = "",
    env: Mapping[str, str] | None = None,
    clock: FakeClock | None = None,
    name: str = "service.toml",
) -> ServiceBot:
    """A ServiceBot configured as `make_bot(accounts, extra=, preamble=, env=)` would be."""
    config = bot_config(directory / name, fakes, accounts, extra=extra, preamble=preamble)
    settings = Settings.from_env({**deployment_env(db.url, config, fakes.slack), **(env or {})})
    clock = clock or FakeClock()
    runner = asyncio.Runner()
    try:
        # As a server starts, but without start-up recovery (crash recovery is end to end).
        runtime = runner.run(Runtime.start(settings, recover=False, clock=clock))
    except BaseException:
        runner.close()
        raise
    return ServiceBot(runtime, runner, db, fakes, clock)


class ServiceFactory:
    """`service_for(accounts, extra=, preamble=, env=, clock=)`: a new service with this
    configuration (the arguments of make_bot, tests/support/bots.py BotFactory); each one built is
    closed when the test ends. `clock`: a FakeClock, a new one at the real now by default."""

    def __init__(self, directory: Path, db: DbHelper, fakes: Fakes) -> None:
        self.directory = directory
        self.db = db
        self.fakes = fakes
        self.built: list[ServiceBot] = []

    def __call__(
        self,
        accounts: Mapping[str, str] = EVERY_ACCOUNT,
        *,
        extra: str = "",
        preamble: str = "",
        env: Mapping[str, str] | None = None,
        clock: FakeClock | None = None,
    ) -> ServiceBot:
        name = f"service-{len(self.built)}.toml"
        bot = build(
            self.directory,
            self.db,
            self.fakes,
            accounts,
            extra=extra,
            preamble=preamble,
            env=env,
            clock=clock,
            name=name,
        )
        self.built.append(bot)
        return bot

    def close_all(self) -> None:
        for bot in self.built:
            bot.close()
        self.built.clear()


class SharedService:
    """The worker's services, one per configuration (the few used last are kept), each built on
    first use and lent to the tests that ask for it (`service`: the default configuration;
    `shared_service_for(...)`: another):
    the database emptied and the fakes reset before each test (by their fixtures), the FakeClock
    put back at the real now. Only tests that leave no in-memory state behind take one: not user
    groups (the membership cache), the App Home quick filters or the bulk throttles; those use
    `service_for`, which builds a service of the test's own."""

    # Services kept at once: each holds database connections (PostgreSQL allows 100 in all, for
    # every worker of every run on the server), and tests of one configuration mostly come together.
    KEEP = 4

    def __init__(self, directory: Path, fakes: Fakes) -> None:
        self.directory = directory
        self.fakes = fakes
        self.bots: dict[tuple[Any, ...], ServiceBot] = {}
        self.built = 0

    def lend(
        self,
        db: DbHelper,
        accounts: Mapping[str, str] = EVERY_ACCOUNT,
        *,
        extra: str = "",
        preamble: str = "",
        env: Mapping[str, str] | None = None,
    ) -> ServiceBot:
        key = (tuple(accounts.items()), extra, preamble, tuple(sorted((env or {}).items())))
        bot = self.bots.pop(key, None)
        if bot is None:
            self.built += 1
            name = f"service-{self.built}.toml"
            bot = build(self.directory, db, self.fakes, accounts, extra=extra, preamble=preamble, env=env, name=name)
        self.bots[key] = bot  # the most recently used last
        while len(self.bots) > self.KEEP:
            self.bots.pop(next(iter(self.bots))).close()
        bot.db = db
        bot.clock.now = FakeClock().now
        return bot

    def close(self) -> None:
        for bot in self.bots.values():
            bot.close()
        self.bots.clear()
