"""Roles, user groups, channel scope and expiry at the service level: the use cases called with an
Invocation (tests/support/service.py), no HTTP; user groups read from the fake Slack by the real
directory. The signed end-to-end cases are in tests/test_roles_and_scope.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.permissions import GROUP
from bot.domain.replies import Reply, Tone
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, BOB, CAROL
from tests.support.clock import FakeClock
from tests.support.service import OPS, ServiceBot, ServiceFactory

DAVE = "U0DAVE004"
ELSEWHERE = "C0RANDOM1"
ONCALL = "S0ONCALL1"
GROUP_MENTION = f"<!subteam^{ONCALL}>"  # @oncall-voice once the Slack edge has read the markup
ALLOWED = "Dry run: hangup"
DENIED = "not allowed to `hangup` on account `prod`"
CALL_ACTIONS = ("hangup", "cancel", "redirect", "twiml")


def hangup(service: ServiceBot, user: str, channel: str | None = OPS) -> str:
    """A dry run: the whole permission check, no provider request."""
    return service.say(f"hangup prod:{call_sid(1)} dry-run", user, channel=channel).as_text()


@pytest.fixture
def roles(service: ServiceBot) -> ServiceBot:
    # On a whole second, as the end-to-end tests of these rules start.
    service.clock.now = service.clock.now.replace(microsecond=0)
    return service


@pytest.fixture
def groups(service_for: ServiceFactory) -> ServiceBot:
    """A service of its own: the directory caches what it read of the user groups."""
    return service_for(clock=FakeClock(datetime.now(UTC).replace(microsecond=0)))


def audited_rows_seen(reply: Reply) -> list[tuple[str | None, str]]:
    """The (action, account:call) of each row of an `/call audit` page."""
    assert reply.listing is not None, reply
    return [(entry.action, entry.target) for entry in reply.listing.entries]


# -- built-in and custom roles (moved from tests/test_roles_and_scope.py) -------------------------


def test_each_built_in_role(roles: ServiceBot) -> None:
    roles.db.grant(CAROL, "admin")
    for user, role in ((ALICE, "viewer"), (BOB, "operator"), (DAVE, "supervisor")):
        assert "Granted" in roles.say(f"grant <@{user}> {role} on=prod", CAROL).as_text()

    # viewer: help, their perms and their own audit rows; no call action, nobody else's rows.
    assert DENIED in hangup(roles, ALICE)
    assert "`viewer` (nothing beyond" in roles.say("perms", ALICE).as_text()
    assert "reading others' needs `audit`" in roles.say(f"audit user=<@{BOB}>", ALICE).as_text()

    # operator: acts, named by the role's grant in the audit row; still cannot read others' rows.
    assert ALLOWED in hangup(roles, BOB)
    row = roles.last_audit()
    assert (row["outcome"], row["decision"]) == ("dry_run", "allowed")
    assert row["decision_basis"].startswith(f"grant #{row['grant_id']}: operator on account prod")
    assert "reading others' needs `audit`" in roles.say(f"audit user=<@{ALICE}>", BOB).as_text()
    assert "not allowed to `grant`" in roles.say(f"grant <@{ALICE}> hangup on=prod", BOB).as_text()

    # supervisor: acts and reads others' rows on its account; cannot grant.
    assert ALLOWED in hangup(roles, DAVE)
    seen = roles.say(f"audit user=<@{BOB}>", DAVE)
    assert "Not allowed" not in seen.as_text()
    assert any(action == "hangup" and target.startswith("prod:") for action, target in audited_rows_seen(seen))
    assert "not allowed to `grant`" in roles.say(f"grant <@{ALICE}> hangup on=prod", DAVE).as_text()

    # admin (the role is the action): everything, including granting.
    assert "Granted" in roles.say(f"grant <@{ALICE}> admin on=prod", CAROL).as_text()
    assert ALLOWED in hangup(roles, ALICE)
    assert "Granted" in roles.say(f"grant <@{DAVE}> cancel on=prod", ALICE).as_text()


def test_roles_lists_built_in_and_custom_roles(roles: ServiceBot) -> None:
    roles.db.grant(CAROL, "admin")
    assert "Created role `incident`" in roles.say("role create incident hangup,audit", CAROL).as_text()
    listing = roles.say("roles", BOB).as_text()
    assert "`operator` (built in): hangup, cancel, redirect, twiml, flow" in listing
    assert "`supervisor` (built in): hangup, cancel, redirect, twiml, flow, bulk, audit, approve" in listing
    assert "`incident` (custom): hangup, audit" in listing


def test_custom_role_create_grant_and_redefine_applies_at_once(roles: ServiceBot) -> None:
    roles.db.grant(CAROL, "admin")
    roles.say("role create incident hangup", CAROL)
    assert "Granted to" in roles.say(f"grant <@{BOB}> incident on=prod", CAROL).as_text()
    assert ALLOWED in hangup(roles, BOB)
    assert "not allowed to `cancel`" in roles.say(f"cancel prod:{call_sid(2)} dry-run", BOB).as_text()

    redefined = roles.say("role create incident hangup,cancel", CAROL).as_text()
    assert "Redefined role `incident`" in redefined and "Before: hangup" in redefined
    assert "Dry run: cancel" in roles.say(f"cancel prod:{call_sid(2)} dry-run", BOB).as_text()
    role_row = [r for r in roles.audit() if r["action"] == "role"][-1]
    assert role_row["request"] == {"name": "incident", "actions": ["hangup", "cancel"], "previous": ["hangup"]}


def test_role_definition_is_checked_and_audited(roles: ServiceBot) -> None:
    roles.db.grant(CAROL, "admin")
    roles.db.grant(BOB, "admin", "prod")
    assert "built-in role: it cannot be redefined" in roles.say("role create operator hangup", CAROL).as_text()
    assert "`hangpu`: is not an action. Did you mean `hangup`?" in roles.say("role create x1 hangpu", CAROL).as_text()
    refused = roles.say("role create incident hangup", BOB).as_text()
    assert "Defining roles needs `admin` on `*`" in refused
    assert (roles.last_audit()["action"], roles.last_audit()["outcome"]) == ("role", "denied")
    roles.say("role create incident hangup", CAROL)
    assert "Did you mean `incident`?" in roles.say(f"grant <@{ALICE}> incidnet", CAROL).as_text()


# -- user groups (moved) --------------------------------------------------------------------------


def test_unreadable_group_denies_with_the_reason_and_is_audited(groups: ServiceBot) -> None:
    groups.db.grant(ONCALL, "operator", "prod", kind=GROUP)
    groups.fakes.slack.usergroups_failing = True
    text = hangup(groups, BOB)
    assert DENIED in text and f"could not read the members of <!subteam^{ONCALL}>" in text
    row = groups.last_audit()
    assert row["decision"] == "denied" and f"could not read the members of <!subteam^{ONCALL}>" in row["decision_basis"]
    # A person with their own grant is not held up by the unreadable group.
    groups.db.grant(ALICE, "hangup", "prod")
    assert ALLOWED in hangup(groups, ALICE)


def test_group_perms_and_user_perms_name_the_group(groups: ServiceBot) -> None:
    groups.db.grant(CAROL, "admin")
    groups.fakes.slack.usergroups[ONCALL] = [BOB]
    grant_id = groups.db.grant(ONCALL, "operator", "prod", kind=GROUP)
    mine = groups.say("perms", BOB).as_text()
    assert f"on account `prod` (grant #{grant_id}, via <!subteam^{ONCALL}>)" in mine
    group = groups.say(f"perms {GROUP_MENTION}", CAROL).as_text()
    assert f"<!subteam^{ONCALL}> may:" in group and "`operator`" in group
    assert "Revoked from" in groups.say(f"revoke {GROUP_MENTION} operator on=prod", CAROL).as_text()
    assert DENIED in hangup(groups, BOB)


# -- expiry and limits (moved) --------------------------------------------------------------------


def test_until_in_the_past_is_refused(roles: ServiceBot) -> None:
    roles.db.grant(CAROL, "admin")
    assert "is not in the future" in roles.say(f"grant <@{BOB}> hangup until=2001-01-01", CAROL).as_text()
    assert "Keep one" in roles.say(f"grant <@{BOB}> hangup for=1h until=2999-01-01", CAROL).as_text()
    assert roles.last_audit()["outcome"] == "invalid"


def test_a_limited_admin_hands_out_only_grants_limited_as_much(roles: ServiceBot) -> None:
    roles.db.grant(DAVE, "admin", "prod", channel=OPS, expires_at=roles.clock.now + timedelta(hours=2))
    unlimited = roles.say(f"grant <@{BOB}> hangup on=prod", DAVE).as_text()
    assert "not allowed to `grant`" in unlimited and "limited at least as much" in unlimited
    assert "not allowed" in roles.say(f"grant <@{BOB}> hangup on=prod in=<#{OPS}> for=3h", DAVE).as_text()
    assert "Granted" in roles.say(f"grant <@{BOB}> hangup on=prod in=<#{OPS}> for=1h", DAVE).as_text()
    # From another channel, or once expired, the admin grant does not count at all.
    elsewhere = roles.say(f"grant <@{ALICE}> hangup on=prod in=<#{OPS}> for=1h", DAVE, channel=ELSEWHERE)
    assert "not allowed" in elsewhere.as_text()
    roles.clock.advance(hours=2)
    assert "not allowed" in roles.say(f"grant <@{ALICE}> hangup on=prod in=<#{OPS}> for=1m", DAVE).as_text()
    assert [r["outcome"] for r in roles.audit()] == ["denied", "denied", "succeeded", "denied", "denied"]


# -- table-driven: roles × actions, scope × channel, expiry × time ---------------------------------


@pytest.mark.parametrize(
    ("role", "may"),
    [
        ("viewer", ()),
        ("operator", CALL_ACTIONS),
        ("supervisor", CALL_ACTIONS),
        ("admin", CALL_ACTIONS),
        ("incident", ("hangup", "cancel")),  # a custom role
    ],
)
@pytest.mark.parametrize("on", ["prod", "*", "bw"])
def test_each_role_allows_its_actions_on_its_accounts(
    roles: ServiceBot, role: str, may: tuple[str, ...], on: str
) -> None:
    roles.db.grant(CAROL, "admin")
    roles.say("role create incident hangup,cancel", CAROL)
    assert "Granted" in roles.say(f"grant <@{BOB}> {role} on={on}", CAROL).title
    commands = {
        "hangup": f"hangup prod:{call_sid(1)} dry-run",
        "cancel": f"cancel prod:{call_sid(1)} dry-run",
        "redirect": f"redirect prod:{call_sid(1)} https://example.com/a.xml dry-run",
        "twiml": f'twiml prod:{call_sid(1)} "<Response><Hangup/></Response>" dry-run',
    }
    outcomes = {action: roles.say(text, BOB).tone for action, text in commands.items()}
    expected = {action: Tone.DRY_RUN if action in may and on != "bw" else Tone.DENIED for action in commands}
    assert outcomes == expected
    for row in roles.audit()[-len(commands) :]:
        if row["outcome"] == "dry_run":
            assert f": {role} on " in row["decision_basis"]
    assert roles.sent() == 0


@pytest.mark.parametrize(
    ("scope", "channel", "allowed"),
    [
        (None, OPS, True),
        (None, ELSEWHERE, True),
        (None, None, True),  # the shell: no channel
        (OPS, OPS, True),
        (OPS, ELSEWHERE, False),
        (OPS, None, False),
    ],
)
def test_a_channel_scoped_grant_counts_only_in_its_channel(
    roles: ServiceBot, scope: str | None, channel: str | None, allowed: bool
) -> None:
    roles.db.grant(BOB, "operator", "prod", channel=scope)
    text = hangup(roles, BOB, channel)
    row = roles.last_audit()
    assert row["channel_id"] == channel
    if allowed:
        assert ALLOWED in text and row["decision"] == "allowed"
    else:
        assert DENIED in text and f"allows it only in <#{OPS}>" in text
        assert row["decision"] == "denied" and f"only in <#{OPS}>" in row["decision_basis"]


@pytest.mark.parametrize(
    ("later", "allowed"),
    [
        (timedelta(0), True),
        (timedelta(hours=7, minutes=59, seconds=59), True),
        (timedelta(hours=8), False),
        (timedelta(days=30), False),
    ],
)
def test_an_expiring_grant_counts_until_its_end(roles: ServiceBot, later: timedelta, allowed: bool) -> None:
    roles.db.grant(CAROL, "admin")
    assert "Until" in roles.say(f"grant <@{BOB}> operator on=prod for=8h", CAROL).as_text()
    roles.clock.advance(later.total_seconds())
    text = hangup(roles, BOB)
    if allowed:
        assert ALLOWED in text
    else:
        assert DENIED in text and "expired at" in text
        assert "expired at" in roles.last_audit()["decision_basis"]


@pytest.mark.parametrize(
    ("members", "allowed"),
    [([BOB], True), ([ALICE, BOB, CAROL], True), ([ALICE], False), ([], False)],
)
def test_a_group_grant_follows_the_membership_slack_reports(
    groups: ServiceBot, members: list[str], allowed: bool
) -> None:
    groups.fakes.slack.usergroups[ONCALL] = members
    groups.db.grant(ONCALL, "operator", "prod", kind=GROUP)
    text = hangup(groups, BOB)
    assert (ALLOWED in text) is allowed and (DENIED in text) is not allowed
    row = groups.last_audit()
    if allowed:
        assert f"via <!subteam^{ONCALL}>" in row["decision_basis"]
    else:
        assert row["decision_basis"] == "no matching grant"
    assert groups.fakes.slack.calls("usergroups.users.list")[-1]["usergroup"] == ONCALL
