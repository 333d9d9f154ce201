"""Roles, user groups, channel scope and expiry, end to end through signed Slack requests and the
fakes (Slack's `usergroups.users.list` included), with a controllable clock instead of sleeps."""

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


# -- built-in roles -------------------------------------------------------------------------------


def test_each_built_in_role(rbot: RoleBot) -> None:
    rbot.db.grant(CAROL, "admin")
    for user, role in ((ALICE, "viewer"), (BOB, "operator"), (DAVE, "supervisor")):
        assert "Granted" in rbot.say(f"grant <@{user}> {role} on=prod", CAROL)

    # viewer: help, their perms and their own audit rows; no call action, nobody else's rows.
    assert DENIED in rbot.hangup(ALICE)
    assert "`viewer` (nothing beyond" in rbot.say("perms", ALICE)
    assert "reading others' needs `audit`" in rbot.say(f"audit user=<@{BOB}>", ALICE)

    # operator: acts, named by the role's grant in the audit row; still cannot read others' rows.
    assert ALLOWED in rbot.hangup(BOB)
    row = rbot.last_audit()
    assert (row["outcome"], row["decision"]) == ("dry_run", "allowed")
    assert row["decision_basis"].startswith(f"grant #{row['grant_id']}: operator on account prod")
    assert "reading others' needs `audit`" in rbot.say(f"audit user=<@{ALICE}>", BOB)
    assert "not allowed to `grant`" in rbot.say(f"grant <@{ALICE}> hangup on=prod", BOB)

    # supervisor: acts and reads others' rows on its account; cannot grant.
    assert ALLOWED in rbot.hangup(DAVE)
    seen = rbot.say(f"audit user=<@{BOB}>", DAVE)
    assert "Not allowed" not in seen and "*hangup* `prod:" in seen
    assert "not allowed to `grant`" in rbot.say(f"grant <@{ALICE}> hangup on=prod", DAVE)

    # admin (the role is the action): everything, including granting.
    assert "Granted" in rbot.say(f"grant <@{ALICE}> admin on=prod", CAROL)
    assert ALLOWED in rbot.hangup(ALICE)
    assert "Granted" in rbot.say(f"grant <@{DAVE}> cancel on=prod", ALICE)


def test_operator_acts_for_real(rbot: RoleBot) -> None:
    rbot.db.grant(BOB, "operator", "prod")
    sid = rbot.twilio.add_call(call_sid(7))
    _, outcome = rbot.slack.run(f"hangup prod:{sid}", user=BOB)
    assert "Hung up" in reply_text(outcome)
    assert rbot.last_audit()["outcome"] == "succeeded"


def test_roles_lists_built_in_and_custom_roles(rbot: RoleBot) -> None:
    rbot.db.grant(CAROL, "admin")
    assert "Created role `incident`" in rbot.say("role create incident hangup,audit", CAROL)
    listing = rbot.say("roles", BOB)
    assert "`operator` (built in): hangup, cancel, redirect, twiml, flow" in listing
    assert "`supervisor` (built in): hangup, cancel, redirect, twiml, flow, bulk, audit, approve" in listing
    assert "`incident` (custom): hangup, audit" in listing


# -- custom roles -----------------------------------------------------------------------------------


def test_custom_role_create_grant_and_redefine_applies_at_once(rbot: RoleBot) -> None:
    rbot.db.grant(CAROL, "admin")
    rbot.say("role create incident hangup", CAROL)
    assert "Granted to" in rbot.say(f"grant <@{BOB}> incident on=prod", CAROL)
    assert ALLOWED in rbot.hangup(BOB)
    assert "not allowed to `cancel`" in rbot.say(f"cancel prod:{call_sid(2)} dry-run", BOB)

    redefined = rbot.say("role create incident hangup,cancel", CAROL)
    assert "Redefined role `incident`" in redefined and "Before: hangup" in redefined
    assert "Dry run: cancel" in rbot.say(f"cancel prod:{call_sid(2)} dry-run", BOB)
    role_row = [r for r in rbot.db.audit() if r["action"] == "role"][-1]
    assert role_row["request"] == {"name": "incident", "actions": ["hangup", "cancel"], "previous": ["hangup"]}


def test_role_definition_is_checked_and_audited(rbot: RoleBot) -> None:
    rbot.db.grant(CAROL, "admin")
    rbot.db.grant(BOB, "admin", "prod")
    assert "built-in role: it cannot be redefined" in rbot.say("role create operator hangup", CAROL)
    assert "`hangpu`: is not an action. Did you mean `hangup`?" in rbot.say("role create x1 hangpu", CAROL)
    refused = rbot.say("role create incident hangup", BOB)
    assert "Defining roles needs `admin` on `*`" in refused
    assert (rbot.last_audit()["action"], rbot.last_audit()["outcome"]) == ("role", "denied")
    rbot.say("role create incident hangup", CAROL)
    assert "Did you mean `incident`?" in rbot.say(f"grant <@{ALICE}> incidnet", CAROL)


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


def test_unreadable_group_denies_with_the_reason_and_is_audited(rbot: RoleBot) -> None:
    rbot.db.grant(ONCALL, "operator", "prod", kind=GROUP)
    rbot.fake_slack.usergroups_failing = True
    text = rbot.hangup(BOB)
    assert DENIED in text and f"could not read the members of <!subteam^{ONCALL}>" in text
    row = rbot.last_audit()
    assert row["decision"] == "denied" and f"could not read the members of <!subteam^{ONCALL}>" in row["decision_basis"]
    # A person with their own grant is not held up by the unreadable group.
    rbot.db.grant(ALICE, "hangup", "prod")
    assert ALLOWED in rbot.hangup(ALICE)


def test_group_perms_and_user_perms_name_the_group(rbot: RoleBot) -> None:
    rbot.db.grant(CAROL, "admin")
    rbot.fake_slack.usergroups[ONCALL] = [BOB]
    grant_id = rbot.db.grant(ONCALL, "operator", "prod", kind=GROUP)
    mine = rbot.say("perms", BOB)
    assert f"on account `prod` (grant #{grant_id}, via <!subteam^{ONCALL}>)" in mine
    group = rbot.say(f"perms {ONCALL_MARKUP}", CAROL)
    assert f"<!subteam^{ONCALL}> may:" in group and "`operator`" in group
    assert "Revoked from" in rbot.say(f"revoke {ONCALL_MARKUP} operator on=prod", CAROL)
    assert DENIED in rbot.hangup(BOB)


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


def test_until_in_the_past_is_refused(rbot: RoleBot) -> None:
    rbot.db.grant(CAROL, "admin")
    assert "is not in the future" in rbot.say(f"grant <@{BOB}> hangup until=2001-01-01", CAROL)
    assert "Keep one" in rbot.say(f"grant <@{BOB}> hangup for=1h until=2999-01-01", CAROL)
    assert rbot.last_audit()["outcome"] == "invalid"


# -- nobody grants more than they hold ----------------------------------------------------------------


def test_a_limited_admin_hands_out_only_grants_limited_as_much(rbot: RoleBot) -> None:
    rbot.db.grant(DAVE, "admin", "prod", channel=OPS, expires_at=rbot.clock.now + timedelta(hours=2))
    unlimited = rbot.say(f"grant <@{BOB}> hangup on=prod", DAVE)
    assert "not allowed to `grant`" in unlimited and "limited at least as much" in unlimited
    assert "not allowed" in rbot.say(f"grant <@{BOB}> hangup on=prod in=<#{OPS}> for=3h", DAVE)
    assert "Granted" in rbot.say(f"grant <@{BOB}> hangup on=prod in=<#{OPS}> for=1h", DAVE)
    # From another channel, or once expired, the admin grant does not count at all.
    assert "not allowed" in rbot.say(f"grant <@{ALICE}> hangup on=prod in=<#{OPS}> for=1h", DAVE, ELSEWHERE)
    rbot.clock.advance(hours=2)
    assert "not allowed" in rbot.say(f"grant <@{ALICE}> hangup on=prod in=<#{OPS}> for=1m", DAVE)
    assert [r["outcome"] for r in rbot.db.audit()] == ["denied", "denied", "succeeded", "denied", "denied"]


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
            conn.execute(text(insert), {"u": BOB})
        migrate.downgrade(url, "0005")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT user_id FROM grants")).scalars().all() == [BOB]
    finally:
        engine.dispose()
