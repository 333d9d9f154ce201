"""OAuth mode (docs/distribution.md): installs through the real redirect, on any number of
workspaces and org-wide; each workspace answered with its own bot token; uninstall, revoked
tokens and token rotation; the install pages' failures; no secret anywhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from bot.db.session import Database
from bot.slack.installs import Installs
from tests.fakes.slack import BOT_TOKEN, CLIENT_SECRET, FakeSlack, Workspace
from tests.processes import callbot
from tests.support.bots import ALICE, SIGNING_SECRET, Bot, BotFactory
from tests.support.leaks import traces
from tests.support.oauth import Browser, command_from, event_from, start_oauth_bot

ALPHA = Workspace("T0ALPHA01", team_name="Alpha", installer="U0ALPHAAD")
BETA = Workspace("T0BETA002", team_name="Beta", installer="U0BETAADM")
GRID = Workspace(None, enterprise_id="E0GRID001", team_name="Grid", org_wide=True, installer="U0GRIDADM")
GRID_TEAM = Workspace("T0GRIDWS1", enterprise_id="E0GRID001", org_wide=True)


@pytest.fixture
def oauth_bot(make_bot: BotFactory, fake_slack: FakeSlack) -> Bot:
    return start_oauth_bot(make_bot, fake_slack)


@pytest.fixture
def browser(oauth_bot: Bot) -> Iterator[Browser]:
    with httpx.Client(timeout=15) as http:
        yield Browser(oauth_bot, http)


def installations(bot: Bot) -> list[tuple[str | None, str | None, bool]]:
    with bot.db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT team_id, enterprise_id, is_enterprise_install FROM slack_bots ORDER BY id")
        ).all()
    return [(row[0], row[1], bool(row[2])) for row in rows]


def token_of(fake_slack: FakeSlack, workspace: Workspace) -> str:
    return next(token for token, owner in fake_slack.tokens.items() if owner is workspace)


def audit_actions(bot: Bot) -> list[tuple[str, str, str | None]]:
    with bot.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT action, source, team_id FROM audit_log ORDER BY id")).all()
    return [(row[0], row[1], row[2]) for row in rows]


def opens_form_with(bot: Bot, workspace: Workspace, fake_slack: FakeSlack) -> str:
    """`/call` alone from the workspace: the action form opens (views.open); the token it used."""
    before = len(fake_slack.tokens_used("views.open"))
    answer = command_from(bot, workspace, "")
    assert answer.status_code == 200, answer.text
    fake_slack.wait_for(lambda reqs: len([r for r in reqs if r.path == "/api/views.open"]) > before)
    return fake_slack.tokens_used("views.open")[before]


def test_two_workspaces_installed_through_the_redirect_each_answered_with_its_own_token(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack
) -> None:
    for workspace in (ALPHA, BETA):
        page = browser.install(workspace, fake_slack)
        assert page.status_code == 200, page.text
        assert f"installed on the {workspace.team_name} workspace" in page.text

    assert installations(oauth_bot) == [(ALPHA.team_id, None, False), (BETA.team_id, None, False)]
    alpha_token, beta_token = token_of(fake_slack, ALPHA), token_of(fake_slack, BETA)
    assert alpha_token != beta_token
    assert opens_form_with(oauth_bot, ALPHA, fake_slack) == alpha_token
    assert opens_form_with(oauth_bot, BETA, fake_slack) == beta_token
    # Each request's auth.test asked about its own workspace's token; no call used another.
    assert set(fake_slack.tokens_used("auth.test")) == {alpha_token, beta_token}
    assert BOT_TOKEN not in {t for r in fake_slack.requests if (t := r.header("authorization") or "")}
    # The installs are audited: who installed, where; the installation's token is nowhere in it.
    assert audit_actions(oauth_bot)[:2] == [
        ("app_installed", "slack", ALPHA.team_id),
        ("app_installed", "slack", BETA.team_id),
    ]


def test_a_workspace_where_callbot_is_not_installed_is_told_so(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack
) -> None:
    browser.install(ALPHA, fake_slack)
    answer = command_from(oauth_bot, BETA, "hangup prod:CA0123456789abcdef0123456789abcdef")
    assert answer.status_code == 200
    told = fake_slack.wait_responses(1)[0].json
    assert "callbot is not installed on this workspace" in told["text"]
    assert "/slack/install" in told["text"]
    # Nothing ran for it: no audit row of the command, no Web API call with any token.
    assert [a for a, _, _ in audit_actions(oauth_bot)] == ["app_installed"]
    assert not fake_slack.calls("views.open")


def test_an_org_wide_install_answers_every_workspace_of_the_enterprise_with_the_org_token(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack
) -> None:
    page = browser.install(GRID, fake_slack)
    assert "installed on the Grid Org organization (org-wide)" in page.text
    assert installations(oauth_bot) == [(None, GRID.enterprise_id, True)]
    # A workspace of the org that was never installed by itself is answered with the org's token.
    assert opens_form_with(oauth_bot, GRID_TEAM, fake_slack) == token_of(fake_slack, GRID)
    # An org-wide install names no workspace: its rows are the enterprise's (`--team E…`).
    assert audit_actions(oauth_bot)[0] == ("app_installed", "slack", "E0GRID001")
    with oauth_bot.db.engine.connect() as conn:
        described = conn.execute(text("SELECT command_text FROM audit_log")).scalar_one()
    assert described == "app_installed (Grid Org) enterprise E0GRID001 org-wide"
    # Removed from the org (the event comes through one of its workspaces): the org install goes.
    event_from(oauth_bot, GRID_TEAM, {"type": "app_uninstalled"})
    _wait(lambda: len(audit_actions(oauth_bot)) == 2)
    assert installations(oauth_bot) == []


@pytest.mark.parametrize("event", ["app_uninstalled", "tokens_revoked"])
def test_uninstall_removes_the_installation_keeps_the_audit_and_is_audited(
    event: str, oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack
) -> None:
    browser.install(ALPHA, fake_slack)
    browser.install(BETA, fake_slack)
    opens_form_with(oauth_bot, ALPHA, fake_slack)
    oauth_bot.db.grant(ALICE, "hangup")
    assert command_from(oauth_bot, ALPHA, "hangup prod:CA0123456789abcdef0123456789abcdef dry-run").status_code == 200
    before = audit_actions(oauth_bot)
    payload = {"type": event} if event == "app_uninstalled" else {"type": event, "tokens": {"bot": ["U0BOT"]}}

    assert event_from(oauth_bot, ALPHA, payload).status_code == 200
    oauth_bot.slack.http.get("/healthz")  # the listener runs after the ack: wait for its row
    _wait(lambda: len(audit_actions(oauth_bot)) == len(before) + 1)

    assert installations(oauth_bot) == [(BETA.team_id, None, False)]
    after = audit_actions(oauth_bot)
    assert after[: len(before)] == before
    assert after[-1] == (event, "slack", ALPHA.team_id)
    # From the uninstalled workspace: refused clearly; the other one still works.
    responses = len(fake_slack.responses())
    command_from(oauth_bot, ALPHA, "")
    assert "not installed" in fake_slack.wait_responses(responses + 1)[-1].json["text"]
    assert opens_form_with(oauth_bot, BETA, fake_slack) == token_of(fake_slack, BETA)


def test_a_revoked_user_token_leaves_the_bot_installed(oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack) -> None:
    browser.install(ALPHA, fake_slack)
    event_from(oauth_bot, ALPHA, {"type": "tokens_revoked", "tokens": {"oauth": [ALPHA.installer]}})
    _wait(lambda: len(audit_actions(oauth_bot)) == 2)
    assert audit_actions(oauth_bot)[-1] == ("tokens_revoked", "slack", ALPHA.team_id)
    assert opens_form_with(oauth_bot, ALPHA, fake_slack) == token_of(fake_slack, ALPHA)


def test_an_expired_rotating_token_is_refreshed_on_the_next_request_and_the_new_one_used(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack
) -> None:
    rotating = Workspace("T0ROTATE1", team_name="Rotating", expires_in=12 * 3600)
    browser.install(rotating, fake_slack)
    first = token_of(fake_slack, rotating)
    (refresh_token,) = fake_slack.refresh_tokens
    assert opens_form_with(oauth_bot, rotating, fake_slack) == first  # 12 hours left: kept
    assert not [c for c in fake_slack.calls("oauth.v2.access") if c.get("grant_type") == "refresh_token"]
    with oauth_bot.db.engine.begin() as conn:
        for table in ("slack_installations", "slack_bots"):
            conn.execute(
                text(f"UPDATE {table} SET bot_token_expires_at = :at"),
                {"at": datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)},
            )

    refreshed = opens_form_with(oauth_bot, rotating, fake_slack)

    assert refreshed != first and fake_slack.tokens[refreshed] is rotating
    assert first not in fake_slack.tokens  # Slack revoked it
    refreshes = [c for c in fake_slack.calls("oauth.v2.access") if c.get("grant_type") == "refresh_token"]
    assert [c["refresh_token"] for c in refreshes] == [refresh_token]
    # Saved: the next request uses the new token without refreshing again.
    assert opens_form_with(oauth_bot, rotating, fake_slack) == refreshed
    assert len([c for c in fake_slack.calls("oauth.v2.access") if c.get("grant_type") == "refresh_token"]) == 1


def test_the_user_group_lookup_uses_the_workspace_s_own_token(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack
) -> None:
    browser.install(ALPHA, fake_slack)
    browser.install(BETA, fake_slack)
    oauth_bot.db.grant("S0ONCALL1", "hangup", kind="group", team=BETA.team_id or "")
    fake_slack.usergroups["S0ONCALL1"] = [ALICE]
    answer = command_from(oauth_bot, BETA, "hangup prod:CA0123456789abcdef0123456789abcdef dry-run")
    assert answer.status_code == 200 and "Dry run" in answer.text, answer.text
    assert fake_slack.tokens_used("usergroups.users.list") == [token_of(fake_slack, BETA)]
    assert ("hangup", "slash", BETA.team_id) in audit_actions(oauth_bot)


@pytest.mark.parametrize(
    ("case", "status", "says"),
    [
        ("bad_state", 401, "expired or was already used"),
        ("no_cookie", 400, "started in another browser"),
        ("missing_code", 401, "no authorization code"),
        ("slack_refuses", 401, "Slack refused the installation"),
        ("cancelled", 200, "cancelled in Slack"),
    ],
)
def test_a_failed_install_shows_a_clear_page(
    case: str, status: int, says: str, oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack
) -> None:
    fake_slack.install(ALPHA)
    _, authorize_url, state = browser.install_page()
    approved = browser.http.get(authorize_url)
    back = httpx.URL(approved.headers["location"])
    cookie = {"Cookie": f"slack-app-oauth-state={state}"}
    if case == "bad_state":
        page = browser.http.get(
            back.copy_set_param("state", "forged"), headers={"Cookie": "slack-app-oauth-state=forged"}
        )
    elif case == "no_cookie":
        page = browser.http.get(back)
    elif case == "missing_code":
        page = browser.http.get(back.copy_remove_param("code"), headers=cookie)
    elif case == "slack_refuses":
        fake_slack.oauth_refusal = "invalid_code"
        page = browser.http.get(back, headers=cookie)
    else:
        page = browser.http.get(back.copy_with(params={"error": "access_denied", "state": state}), headers=cookie)

    assert page.status_code == status, page.text
    assert says in page.text and "was not installed" in page.text
    assert page.headers["content-type"].startswith("text/html")
    assert installations(oauth_bot) == []
    assert CLIENT_SECRET not in page.text and "code-" not in page.text


def test_single_workspace_mode_has_no_install_pages(bot: Bot) -> None:
    for path in ("/slack/install", "/slack/oauth_redirect?code=x&state=y"):
        page = httpx.get(f"{bot.url}{path}")
        assert page.status_code == 404
        assert page.text.startswith("OAuth mode is off")


def _wait(condition: object, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_no_secret_in_logs_audit_or_pages(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rotating = Workspace("T0ROTATE1", team_name="Rotating", expires_in=60)  # refreshed at once
    pages = [browser.install_page()[0].text, browser.install(ALPHA, fake_slack).text]
    pages.append(browser.install(rotating, fake_slack).text)
    oauth_bot.db.grant(ALICE, "hangup")
    for workspace in (ALPHA, rotating):
        opens_form_with(oauth_bot, workspace, fake_slack)
        command_from(oauth_bot, workspace, "hangup prod:CA0123456789abcdef0123456789abcdef dry-run")
    fake_slack.oauth_refusal = "invalid_code"
    pages.append(browser.install(BETA, fake_slack).text)
    event_from(oauth_bot, ALPHA, {"type": "app_uninstalled"})
    _wait(lambda: audit_actions(oauth_bot)[-1][0] == "app_uninstalled")
    assert oauth_bot.slack.http.get("/healthz").status_code == 200

    secrets = [CLIENT_SECRET, SIGNING_SECRET, *fake_slack.issued]
    assert len(fake_slack.issued) >= 4, "two installs, a refresh token, refreshed tokens"
    everything = "\n".join(
        [
            str(oauth_bot.db.audit()),
            *pages,
            *(r.body.decode() for r in fake_slack.responses()),
            caplog.text,
        ]
    )
    assert traces(everything, secrets) == []
    # Nor, at INFO and above (a server's default), the one-time codes Slack sent the installer
    # back with: not in the access log, not in a refusal. (slack_sdk's own DEBUG lines show them.)
    assert "/slack/oauth_redirect?…" in caplog.text
    served = "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("uvicorn", "bot", "slack")) and r.levelno >= logging.INFO
    )
    assert "code-" not in served


def test_the_shell_reads_user_groups_with_the_team_s_installation(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    browser.install(ALPHA, fake_slack)
    browser.install(BETA, fake_slack)
    oauth_bot.db.grant("S0ONCALL1", "hangup", kind="group", team=ALPHA.team_id or "")
    fake_slack.usergroups["S0ONCALL1"] = [ALICE]
    command = ["run", "--as", ALICE, "hangup prod:CA0123456789abcdef0123456789abcdef dry-run"]

    result = callbot([*command[:3], "--team", ALPHA.team_id or "", *command[3:]], oauth_bot.env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake_slack.tokens_used("usergroups.users.list") == [token_of(fake_slack, ALPHA)]
    # Two workspaces and no --team: which one is meant is unknown, and the refusal says so.
    result = callbot(command, oauth_bot.env, tmp_path)
    assert result.returncode == 2
    assert "serves several Slack workspaces (T0ALPHA01, T0BETA002): say which with --team" in result.stderr
    assert len(fake_slack.tokens_used("usergroups.users.list")) == 1


def test_a_rate_limited_call_is_retried_with_the_workspace_s_token(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack
) -> None:
    """callbot's retry handlers (bot/slack/client.py) hold on the per-workspace clients Bolt makes."""
    browser.install(ALPHA, fake_slack)
    fake_slack.failures["views.open"] = ["ratelimited"]
    command_from(oauth_bot, ALPHA, "")
    fake_slack.wait_for(lambda reqs: len([r for r in reqs if r.path == "/api/views.open"]) == 2)
    assert fake_slack.tokens_used("views.open") == [token_of(fake_slack, ALPHA)] * 2


def test_outside_a_request_client_for_finds_the_workspace_s_token(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack
) -> None:
    """The lookup the sweeps and the user-group directory use (bot/slack/installs.py)."""
    rotating = Workspace("T0ROTATE1", team_name="Rotating", expires_in=12 * 3600)
    browser.install(rotating, fake_slack)

    async def tokens(*asked: tuple[str | None, str | None]) -> list[str | None]:
        database = Database(oauth_bot.db.url)
        try:
            installs = Installs(oauth_bot.settings, database)
            found = [await installs.client_for(team, enterprise) for team, enterprise in asked]
            return [client.token if client is not None else None for client in found]
        finally:
            await database.close()

    first = token_of(fake_slack, rotating)
    # The only installed workspace stands in for an unknown one (rows without a workspace yet).
    assert asyncio.run(tokens((rotating.team_id, None), (None, None), (BETA.team_id, None))) == [first, first, None]
    browser.install(GRID, fake_slack)
    grid = token_of(fake_slack, GRID)
    assert asyncio.run(tokens((GRID_TEAM.team_id, GRID.enterprise_id), (None, None))) == [grid, None]
    with oauth_bot.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE slack_installations SET bot_token_expires_at = :at WHERE team_id = :team"),
            {"at": datetime.now(UTC).replace(tzinfo=None), "team": rotating.team_id},
        )
    (refreshed,) = asyncio.run(tokens((rotating.team_id, None)))
    assert refreshed not in (None, first) and fake_slack.tokens[refreshed or ""] is rotating
    assert asyncio.run(tokens((rotating.team_id, None))) == [refreshed]  # saved


def test_install_rows_show_in_the_audit_like_any_other(oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack) -> None:
    browser.install(ALPHA, fake_slack)
    oauth_bot.db.grant(ALICE, "audit", team=ALPHA.team_id or "")
    answer = command_from(oauth_bot, ALPHA, "audit action=app_installed")
    assert answer.status_code == 200
    shown = answer.text
    assert "app_installed" in shown and ALPHA.installer in shown


def test_expired_install_states_do_not_pile_up(oauth_bot: Bot, browser: Browser) -> None:
    """Anyone may open the install page; each visit's state lives CALLBOT_OAUTH_STATE_EXPIRY only."""
    long_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    with oauth_bot.db.engine.begin() as conn:
        for n in range(3):
            conn.execute(
                text("INSERT INTO slack_oauth_states (state, expire_at) VALUES (:s, :at)"),
                {"s": f"old-{n}", "at": long_ago},
            )
    _, _, state = browser.install_page()
    with oauth_bot.db.engine.connect() as conn:
        assert conn.execute(text("SELECT state FROM slack_oauth_states")).scalars().all() == [state]


def test_a_grant_from_the_shell_in_one_installed_workspace_does_not_authorise_the_other(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    browser.install(ALPHA, fake_slack)
    browser.install(BETA, fake_slack)
    # Installed workspaces are the ones the shell's --team knows; with two, it must be given.
    grant = ["grant", ALICE, "hangup", "--on", "prod"]
    refused = callbot(grant, oauth_bot.env, tmp_path)
    assert refused.returncode == 2
    assert "serves several Slack workspaces (T0ALPHA01, T0BETA002): say which with --team" in refused.stderr
    granted = callbot([*grant, "--team", ALPHA.team_id or ""], oauth_bot.env, tmp_path)
    assert granted.returncode == 0, granted.stderr

    hangup = "hangup prod:CA0123456789abcdef0123456789abcdef dry-run"
    assert "Dry run" in command_from(oauth_bot, ALPHA, hangup).text
    # The same user id in the other workspace: a stranger there.
    assert "You are not allowed to `hangup`" in command_from(oauth_bot, BETA, hangup).text
    rows = [(action, team) for action, _, team in audit_actions(oauth_bot) if action == "hangup"]
    assert rows == [("hangup", ALPHA.team_id), ("hangup", BETA.team_id)]


def test_under_an_org_wide_install_a_workspace_is_known_once_it_used_callbot(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    browser.install(GRID, fake_slack)
    # The org's own rows are filed under its id, but no request comes from it: no grant goes there.
    bare = callbot(["grant", ALICE, "hangup", "--on", "prod"], oauth_bot.env, tmp_path)
    assert bare.returncode == 2 and "No Slack workspace is known yet" in bare.stderr
    org = callbot(["grant", ALICE, "hangup", "--on", "prod", "--team", "E0GRID001"], oauth_bot.env, tmp_path)
    assert org.returncode == 2 and "an Enterprise Grid organisation, not a workspace" in org.stderr
    listed = callbot(["audit", "list", "--team", "E0GRID001"], oauth_bot.env, tmp_path)
    assert listed.returncode == 0 and "app_installed" in listed.stdout, listed.stderr
    grant = ["grant", ALICE, "hangup", "--on", "prod", "--team", GRID_TEAM.team_id or ""]
    unknown = callbot(grant, oauth_bot.env, tmp_path)
    assert unknown.returncode == 2 and "--team T0GRIDWS1: not a workspace callbot serves" in unknown.stderr
    opens_form_with(oauth_bot, GRID_TEAM, fake_slack)  # someone there used callbot
    granted = callbot(grant, oauth_bot.env, tmp_path)
    assert granted.returncode == 0, granted.stderr
    assert (
        "Dry run" in command_from(oauth_bot, GRID_TEAM, "hangup prod:CA0123456789abcdef0123456789abcdef dry-run").text
    )


def test_an_install_callbot_cannot_audit_is_taken_back(oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack) -> None:
    with oauth_bot.db.engine.begin() as conn:  # the audit cannot be written: as if the database failed
        conn.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))
    try:
        page = browser.install(ALPHA, fake_slack)
    finally:
        with oauth_bot.db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))
    assert page.status_code == 500 and "installed" in page.text
    assert installations(oauth_bot) == []  # not live without its audit row
    assert command_from(oauth_bot, ALPHA, "help").status_code == 200
    assert "callbot is not installed on this workspace" in fake_slack.wait_responses(1)[0].json["text"]
    assert audit_actions(oauth_bot) == []


def test_a_workspace_callbot_is_not_set_up_for_cannot_install_it(
    oauth_bot: Bot, browser: Browser, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    browser.install(ALPHA, fake_slack)
    stranger = Workspace("T0STRANGE", team_name="Stranger", installer="U0STRANGE")
    page = browser.install(stranger, fake_slack)
    assert page.status_code == 403 and "not set up for this workspace" in page.text
    assert installations(oauth_bot) == [(ALPHA.team_id, None, False)]
    # Its requests are answered as not installed, and nothing of it is written anywhere.
    assert command_from(oauth_bot, stranger, "hangup prod:CA0123456789abcdef0123456789abcdef").status_code == 200
    assert "callbot is not installed on this workspace" in fake_slack.wait_responses(1)[0].json["text"]
    assert [team for _, _, team in audit_actions(oauth_bot)] == [ALPHA.team_id]
    # The shell still knows one workspace only: no --team needed.
    assert callbot(["grant", ALICE, "hangup", "--on", "prod"], oauth_bot.env, tmp_path).returncode == 0
    # An org-wide install needs its organisation listed in SLACK_ALLOWED_TEAMS.
    other_org = Workspace(None, enterprise_id="E0OTHER01", team_name="Other", org_wide=True, installer="U0OTHER01")
    assert browser.install(other_org, fake_slack).status_code == 403
