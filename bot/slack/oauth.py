"""OAuth mode (docs/distribution.md): the "Add to Slack" page (GET /slack/install), the redirect
Slack sends the installer back to (GET /slack/oauth_redirect), and the app_uninstalled and
tokens_revoked events. Every install, uninstall and revocation is audited.

The pages say what happened and what to do next, in a sentence; no token, code or secret is on
them (the installation's tokens go to the database only).
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.error import BoltError
from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions, AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.config.oauth import BOT_SCOPES, INSTALL_PATH, REDIRECT_PATH, TOKEN_ROTATION_MINUTES
from bot.domain.outcomes import WorkspaceChange
from bot.service.core import Service
from bot.service.installs import WorkspaceEvent
from bot.slack.installs import Installs

log = logging.getLogger(__name__)


class _HideCode(logging.Filter):
    """Bolt's flow logs a refused authorization code; the code stays out of the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "code:" in message:
            record.msg, record.args = re.sub(r"code: \S+", "code: …", message), None
        return True


# What Bolt's OAuth flow logs with (bot/logs.py redacts it like the rest, then this hides the code).
flow_log = logging.getLogger(f"{__name__}.flow")
flow_log.addFilter(_HideCode())

# Why an installation failed, as the installer should read it (Bolt's reason → sentence).
_FAILURES = {
    "access_denied": "The installation was cancelled in Slack. Nothing was installed.",
    "invalid_browser": (
        "This install link was started in another browser, or its cookie is gone. Start again from the install page."
    ),
    "invalid_state": "This install link has expired or was already used. Start again from the install page.",
    "missing_code": "Slack sent no authorization code. Start again from the install page.",
    "invalid_code": (
        "Slack refused the installation: the authorization code is invalid or expired. "
        "Start again from the install page."
    ),
    "storage_error": "callbot could not save the installation, so nothing was installed. The server log says why.",
}
NOT_ALLOWED = "not_allowed"
_NOT_ALLOWED_PAGE = (
    "callbot is not set up for this workspace, so nothing was installed. Whoever runs callbot adds its "
    "team id (T…) to an account's <code>workspaces</code> in callbot.toml, or to SLACK_ALLOWED_TEAMS "
    "(an organisation's id, E…, for an org-wide install)."
)
NOT_INSTALLED = (
    "callbot is not installed on this workspace, or it was uninstalled. A Slack admin can install it from "
    "callbot's install page (/slack/install on callbot's address)."
)


class CallbotOAuthFlow(AsyncOAuthFlow):
    """Bolt's flow, with callbot's install page, the install audited, and a store or network
    failure shown as a failure page instead of an internal error."""

    def __init__(
        self, settings: AsyncOAuthSettings, client: AsyncWebClient, service: Service, callbot: Settings
    ) -> None:
        super().__init__(client=client, logger=flow_log, settings=settings)
        self.service = service
        self.callbot = callbot

    async def build_install_page_html(self, url: str, request: AsyncBoltRequest) -> str:
        return _page(
            "Install callbot",
            "Add callbot to a Slack workspace, or to a whole Enterprise Grid organization.",
            f'<a href="{html.escape(url, quote=True)}">Add to Slack</a>',
        )

    async def run_installation(self, code: str) -> Installation | None:
        try:
            return await super().run_installation(code)
        except Exception as error:  # Slack unreachable: Bolt handles only Slack's own refusals
            log.warning("could not complete an installation: Slack did not answer (%s)", type(error).__name__)
            return None

    async def store_installation(self, request: AsyncBoltRequest, installation: Installation) -> None:
        store = self.settings.installation_store
        org_wide = bool(installation.is_enterprise_install)
        where = {"enterprise_id": installation.enterprise_id, "team_id": None if org_wide else installation.team_id}
        if not self.callbot.installable(installation.team_id, installation.enterprise_id, org_wide=org_wide):
            # Not stored: its requests are answered "not installed", and nothing of it is written.
            log.warning(
                "refused an installation on %s %s: not named by an account's workspaces nor SLACK_ALLOWED_TEAMS",
                "organisation" if org_wide else "workspace",
                installation.enterprise_id if org_wide else installation.team_id,
            )
            raise BoltError(NOT_ALLOWED)
        try:
            earlier = await store.async_find_installation(**where, is_enterprise_install=org_wide)
            await super().store_installation(request, installation)
        except Exception as error:
            log.error("could not save an installation (%s)", type(error).__name__)
            raise BoltError("storage_error") from None
        try:
            await self.service.installs.record(
                WorkspaceEvent(
                    WorkspaceChange.INSTALLED,
                    team_id=installation.team_id,
                    enterprise_id=installation.enterprise_id,
                    user_id=installation.user_id,
                    team_name=installation.team_name or installation.enterprise_name,
                    org_wide=org_wide,
                )
            )
        except Exception as error:
            # Unaudited, a new install is taken back (the page says nothing was installed); a
            # re-install keeps the workspace working with its new token.
            log.error("could not audit an installation (%s)", type(error).__name__)
            if earlier is None:
                try:
                    await store.async_delete_all(**where)
                except Exception:
                    log.exception("could not take back an installation it could not audit")
            raise BoltError("storage_error") from None


def oauth_flow(settings: Settings, installs: Installs, service: Service, client: AsyncWebClient) -> CallbotOAuthFlow:
    """The flow of GET /slack/install and /slack/oauth_redirect; `client` reaches SLACK_API_URL."""
    oauth = settings.oauth
    assert oauth is not None and installs.store is not None and installs.state_store is not None
    options = AsyncCallbackOptions(success=_success, failure=_failure)
    oauth_settings = AsyncOAuthSettings(
        client_id=oauth.client_id,
        client_secret=oauth.client_secret,
        scopes=list(BOT_SCOPES),
        user_scopes=[],
        redirect_uri=oauth.redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        callback_options=options,
        authorization_url=oauth.authorize_url,
        installation_store=installs.store,
        token_rotation_expiration_minutes=TOKEN_ROTATION_MINUTES,
        state_store=installs.state_store,
        state_expiration_seconds=oauth.state_expiry_seconds,
        logger=flow_log,
    )
    return CallbotOAuthFlow(oauth_settings, client, service, settings)


async def _success(args: AsyncSuccessArgs) -> BoltResponse:
    installation = args.installation
    if installation.is_enterprise_install:
        where = f"the {installation.enterprise_name or installation.enterprise_id} organization (org-wide)"
    else:
        where = f"the {installation.team_name or installation.team_id} workspace"
    body = _page(
        "callbot is installed",
        f"callbot is installed on {html.escape(str(where))}.",
        "Type <code>/call help</code> in Slack. Permissions are deny by default: an admin grants them first "
        "(<code>callbot grant U… operator</code>).",
    )
    return BoltResponse(status=200, body=body, headers={"Content-Type": "text/html; charset=utf-8"})


async def _failure(args: AsyncFailureArgs) -> BoltResponse:
    if args.error is not None and str(args.error) == NOT_ALLOWED:
        log.info("an installation failed: not allowed")
        body = _page("callbot was not installed", _NOT_ALLOWED_PAGE, "")
        return BoltResponse(status=403, body=body, headers={"Content-Type": "text/html; charset=utf-8"})
    reason = _FAILURES.get(args.reason) or (
        f"Slack reported <code>{html.escape(args.reason[:64])}</code>. Nothing was installed; "
        "start again from the install page."
    )
    log.info("an installation failed: %s", args.reason[:64])
    body = _page("callbot was not installed", reason, f'<a href="{INSTALL_PATH}">Back to the install page</a>')
    return BoltResponse(
        status=args.suggested_status_code, body=body, headers={"Content-Type": "text/html; charset=utf-8"}
    )


def _page(title: str, text: str, more: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><p>{text}</p><p>{more}</p></body></html>"
    )


def register_install_events(app: AsyncApp, service: Service, installs: Installs) -> None:
    """app_uninstalled and tokens_revoked delete the installation (never an audit row) and are audited."""

    async def on_uninstalled(context: AsyncBoltContext) -> None:
        org_wide = bool(context.is_enterprise_install)
        await installs.forget(context.team_id, context.enterprise_id, org_wide=org_wide)
        await service.installs.record(
            WorkspaceEvent(WorkspaceChange.UNINSTALLED, context.team_id, context.enterprise_id, org_wide=org_wide)
        )

    async def on_tokens_revoked(event: dict[str, Any], context: AsyncBoltContext) -> None:
        given = event.get("tokens")
        tokens: dict[str, Any] = given if isinstance(given, dict) else {}
        bots = [str(b) for b in tokens.get("bot") or []]
        users = [str(u) for u in tokens.get("oauth") or []]
        org_wide = bool(context.is_enterprise_install)
        if bots:  # without its bot token callbot can do nothing there: the whole installation goes
            await installs.forget(context.team_id, context.enterprise_id, org_wide=org_wide)
        else:
            await installs.forget_users(context.team_id, context.enterprise_id, users)
        await service.installs.record(
            WorkspaceEvent(
                WorkspaceChange.TOKENS_REVOKED,
                context.team_id,
                context.enterprise_id,
                org_wide=org_wide,
                detail=f"({len(bots)} bot, {len(users)} user token(s))",
            )
        )

    app.event("app_uninstalled")(on_uninstalled)
    app.event("tokens_revoked")(on_tokens_revoked)
