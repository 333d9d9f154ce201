"""Roles, user groups, channel scope and expiry, end to end through signed Slack requests and the
fakes (Slack's `usergroups.users.list` included), with a controllable clock instead of sleeps: one
case of each that crosses the wire. The rules case by case (each role, custom roles, unreadable
groups, scope, expiry, limited admins) are tested on the service itself in tests/test_service_roles.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.domain.permissions import GROUP, Grant, Limits, covers, decide
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio, call_sid
from tests.processes import callbot
from tests.support.bots import ALICE, BOB, CAROL, BotFactory, SlackDriver, reply_text
from tests.support.clock import FakeClock
from tests.support.database import DbHelper

DAVE = "U0DAVE004"
OPS = "C2147483705"  # the channel of the slash-command sample (#ops-voice)
ELSEWHERE = "C0RANDOM1"
ONCALL = "S0ONCALL1"
ONCALL_MARKUP = f"<!subteam^{ONCALL}|@oncall-voice>"  # what Slack sends for @oncall-voice


@dataclass
class RoleBot:
    slack: SlackDriver
    fake_slack: FakeSlack
    twilio: FakeTwilio
    db: DbHelper
    clock: FakeClock

    def say(self, text: str, user: str = ALICE, channel: str = OPS) -> str:
        response = self.slack.command(text, user, channel_id=channel)
        assert response.status_code == 200, response.text
        return reply_text(response.json())

    def hangup(self, user: str, channel: str = OPS, n: int = 1) -> str:
        """A dry run: the whole permission check, no provider request."""
        return self.say(f"hangup prod:{call_sid(n)} dry-run", user, channel)

    def last_audit(self) -> dict[str, Any]:
        return self.db.audit()[-1]


@pytest.fixture
def rbot(make_bot: BotFactory) -> RoleBot:
    # On a whole second, as these tests have always started.
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    bot = make_bot(clock=clock)
    return RoleBot(bot.slack, bot.fake_slack, bot.fake_twilio, bot.db, clock)


ALLOWED = "Dry run: hangup"
DENIED = "not allowed to `hangup` on account `prod`"


# -- roles --------------------------------------------------------------------------------------------


def test_operator_acts_for_real(rbot: RoleBot) -> None:
    rbot.db.grant(BOB, "operator", "prod")
    sid = rbot.twilio.add_call(call_sid(7))
    _, outcome = rbot.slack.run(f"hangup prod:{sid}", user=BOB)
    assert "Hung up" in reply_text(outcome)
    assert rbot.last_audit()["outcome"] == "succeeded"


# -- user groups --------------------------------------------------------------------------------


def test_group_grant_follows_membership_read_from_slack(rbot: RoleBot) -> None:
    rbot.db.grant(CAROL, "admin")
    rbot.fake_slack.usergroups[ONCALL] = [BOB]
    granted = rbot.say(f"grant {ONCALL_MARKUP} operator on=prod", CAROL)
    assert f"Granted to <!subteam^{ONCALL}>: operator on prod." in granted
    assert rbot.db.grants()[-1] == (ONCALL, "operator", "prod")

    assert ALLOWED in rbot.hangup(BOB)
    assert f"via <!subteam^{ONCALL}>" in rbot.last_audit()["decision_basis"]
    reads = len(rbot.fake_slack.calls("usergroups.users.list"))
    assert rbot.fake_slack.calls("usergroups.users.list")[-1]["usergroup"] == ONCALL

    # Not a member: denied; the list read less than 10 s ago is not read again, however often
    # someone outside the group tries.
    assert DENIED in rbot.hangup(ALICE)
    assert rbot.last_audit()["decision"] == "denied"
    rbot.fake_slack.usergroups[ONCALL] = [BOB, ALICE]  # added to the group meanwhile
    rbot.clock.advance(seconds=9)
    assert DENIED in rbot.hangup(ALICE)
    assert len(rbot.fake_slack.calls("usergroups.users.list")) == reads

    # Ten seconds on, a miss re-reads the group, so the new member gets access.
    rbot.clock.advance(seconds=1)
    assert ALLOWED in rbot.hangup(ALICE)
    assert len(rbot.fake_slack.calls("usergroups.users.list")) == reads + 1

    # Removed from the group: a hit in the cache still counts until the cached list is older than
    # its time to live (3 minutes); then the group is read again and Bob is refused.
    rbot.fake_slack.usergroups[ONCALL] = [ALICE]
    rbot.clock.advance(seconds=60)
    assert ALLOWED in rbot.hangup(BOB)
    rbot.clock.advance(seconds=121)
    assert DENIED in rbot.hangup(BOB)
    row = rbot.last_audit()
    assert (row["decision"], row["decision_basis"]) == ("denied", "no matching grant")


# -- channel scope --------------------------------------------------------------------------------


def test_channel_scoped_grant_works_only_from_that_channel(rbot: RoleBot) -> None:
    rbot.db.grant(CAROL, "admin")
    granted = rbot.say(f"grant <@{BOB}> operator on=prod in=<#{OPS}|ops-voice>", CAROL)
    assert f"operator on prod in <#{OPS}>" in granted
    assert ALLOWED in rbot.hangup(BOB, OPS)

    refused = rbot.hangup(BOB, ELSEWHERE)
    assert DENIED in refused and f"allows it only in <#{OPS}>" in refused
    row = rbot.last_audit()
    assert (row["decision"], row["channel_id"]) == ("denied", ELSEWHERE)
    assert f"only in <#{OPS}>" in row["decision_basis"]
    assert "`in=#ops`: is not a channel I can identify." in rbot.say(f"grant <@{BOB}> hangup in=#ops", CAROL)


# -- expiry ---------------------------------------------------------------------------------------------


def test_expiring_grant_works_before_and_is_refused_and_listed_after(rbot: RoleBot) -> None:
    rbot.db.grant(CAROL, "admin")
    granted = rbot.say(f"grant <@{BOB}> operator on=prod for=8h", CAROL)
    until = (rbot.clock.now + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M UTC")
    assert f"Until {until}." in granted
    assert f"until {until}" in rbot.say("perms", BOB)

    rbot.clock.advance(hours=7, minutes=59)
    assert ALLOWED in rbot.hangup(BOB)
    rbot.clock.advance(minutes=1)
    refused = rbot.hangup(BOB)
    assert DENIED in refused and f"expired at {until}" in refused
    assert f"expired at {until}" in rbot.last_audit()["decision_basis"]

    listing = rbot.say("perms", BOB)
    assert "may not do anything now" in listing
    assert "Expired (no longer count):" in listing and f"expired {until}" in listing
    # Renewing the same grant sets a new expiry on it.
    renewed = rbot.say(f"grant <@{BOB}> operator on=prod until=2999-01-01", CAROL)
    assert "Already held, expiry changed: operator on prod." in renewed
    assert ALLOWED in rbot.hangup(BOB)


# -- the decision itself ------------------------------------------------------------------------------


def test_decision_prefers_the_most_specific_grant() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    group = Grant(1, ONCALL, "operator", "prod", subject_kind=GROUP)
    own = Grant(2, BOB, "operator", "prod")
    scoped = Grant(3, BOB, "operator", "prod", channel=OPS)
    everywhere = Grant(4, BOB, "hangup", "*")
    assert decide([group, own], "hangup", "prod", now=now).grant == own
    assert decide([group, own, scoped], "hangup", "prod", channel=OPS, now=now).grant == scoped
    assert decide([group, everywhere], "hangup", "prod", now=now).grant == group  # the account first
    old = Grant(5, BOB, "hangup", "prod", expires_at=now)
    assert not decide([old], "hangup", "prod", now=now).allowed
    assert covers(Grant(6, BOB, "admin", "*"), Limits())
    assert not covers(Grant(7, BOB, "admin", "*", expires_at=now), Limits(expires_at=now + timedelta(seconds=1)))
    assert covers(Grant(8, BOB, "admin", "*", channel=OPS), Limits(channel=OPS))


# -- the command line -----------------------------------------------------------------------------------


def test_cli_grant_with_channel_and_expiry_and_roles(env: dict[str, str], tmp_path: Path, db: DbHelper) -> None:
    made = callbot(["role", "create", "incident", "hangup,audit"], env, tmp_path)
    assert made.returncode == 0 and "Created role `incident`" in made.stdout, made.stderr
    roles = callbot(["roles"], env, tmp_path)
    assert "`operator` (built in)" in roles.stdout and "`incident` (custom): hangup, audit" in roles.stdout

    timed = callbot(["grant", BOB, "operator", "--on", "prod", "--in", OPS, "--for", "8h"], env, tmp_path)
    assert timed.returncode == 0 and f"operator on prod in <#{OPS}>" in timed.stdout, timed.stderr
    dated = callbot(["grant", BOB, "incident", "--until", "2999-12-01"], env, tmp_path)
    assert dated.returncode == 0 and "Until 2999-12-01 00:00 UTC." in dated.stdout, dated.stderr
    group = callbot(["grant", ONCALL, "viewer"], env, tmp_path)
    assert group.returncode == 0 and f"<!subteam^{ONCALL}>" in group.stdout

    perms = callbot(["perms", BOB], env, tmp_path)
    assert f"on account `prod`, only in <#{OPS}>, until " in perms.stdout
    assert "`incident` (audit, hangup) on all accounts, until 2999-12-01 00:00 UTC" in perms.stdout

    request = next(r for r in db.audit() if r["action"] == "grant")["request"]
    assert request["channel"] == OPS and request["expires_at"]
    both = callbot(["grant", BOB, "hangup", "--for", "1h", "--until", "2999-01-01"], env, tmp_path)
    assert both.returncode == 2
    unknown = callbot(["grant", BOB, "incidnet"], env, tmp_path)
    assert unknown.returncode == 2 and "Did you mean `incident`?" in unknown.stderr


def test_migration_0006_keeps_plain_grants_and_drops_narrower_ones_on_downgrade(tmp_path: Path) -> None:
    """Downgrading must not widen access: group, channel-scoped and expiring grants go; plain ones stay."""
    from sqlalchemy import create_engine, text

    from bot.db import migrate
    from bot.db.session import parse_database_url

    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url, "0005")
    engine = create_engine(parse_database_url(url, sync=True))
    insert = "INSERT INTO grants (user_id, action, account, granted_by, created_at) VALUES (:u, 'admin', '*', 't', '2026-01-01')"
    try:
        with engine.begin() as conn:
            conn.execute(text(insert), {"u": ALICE})
        migrate.upgrade(url, "head")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT subject_kind, channel, expires_at FROM grants")).one() == (
                "user",
                None,
                None,
            )
            conn.execute(text("UPDATE grants SET channel = 'C1' WHERE user_id = :u"), {"u": ALICE})
            # At head a grant names its workspace (revision 0015).
            conn.execute(
                text(insert.replace("(user_id,", "(team_id, user_id,").replace("VALUES (:u,", "VALUES ('T0001', :u,")),
                {"u": BOB},
            )
        migrate.downgrade(url, "0005")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT user_id FROM grants")).scalars().all() == [BOB]
    finally:
        engine.dispose()
