"""The provider accounts of callbot.toml (or the TEST_/TWILIO_… variables): one pydantic model
per provider, each checked at start-up (docs/configuration.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StrictInt, field_validator, model_validator

from bot.domain.permissions import BULK, CALL_ACTIONS
from bot.domain.policy import Announce, Policy, check_bridge_pattern, check_private_rules, check_url_rule


class AccountBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float = Field(
        default=10.0, gt=0, le=120, description="seconds for one whole provider request, retries included"
    )
    # Safety policy (docs/permissions.md, "Security model"): see bot/domain/policy.py for what each rule means.
    confirm: tuple[str, ...] = ()
    require_reason: tuple[str, ...] = ()
    allowed_urls: tuple[str, ...] | None = None
    # URLs may name private, loopback, link-local… hosts (refused by default: bot/domain/urls.py).
    allow_private_urls: bool = False
    allowed_bridge_numbers: tuple[str, ...] | None = None
    max_actions_per_minute: int = Field(default=30, ge=1, le=10_000)
    max_account_actions_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    # Two-person approval: these actions wait for someone else holding `approve` to click Approve
    # in `approvers_channel` (a channel id, C…), within `approval_expiry_minutes`.
    approval: tuple[str, ...] = ()
    approvers_channel: str | None = Field(default=None, pattern=r"^[CG][A-Z0-9]{2,}$")
    approval_expiry_minutes: int = Field(default=10, ge=1, le=24 * 60)
    # Fetch the call's state before acting on it (bot/service/live.py `check_state`).
    check_state: bool = False
    # Bulk actions (`/call hangup-all`): provider requests in flight at once on this account.
    bulk_concurrency: int = Field(default=10, ge=1, le=100)
    # Requests per call of a bulk action, 429s included, before it counts as failed; and the
    # longest Retry-After (seconds) a bulk action waits out: asked to wait longer, the call fails.
    bulk_max_attempts: int = Field(default=5, ge=1, le=50)
    bulk_max_retry_after: float = Field(default=60.0, gt=0, le=3600)
    # Seconds of reading a call back after an action to confirm what it did; 0: off.
    read_back: float = Field(default=8.0, ge=0, le=60)
    # The incident channel (a channel id, C… or G…) told of every executed call action, one masked
    # line each; `announce`: "always" (the default) or "on_request" (commands typed with `announce`).
    announce_channel: str | None = Field(default=None, pattern=r"^[CG][A-Z0-9]{2,}$")
    announce: Announce | None = None
    # The Slack workspaces (team ids, T…) the account exists in (bot/service/accounts.py
    # `shared_with`). Left out: the one workspace of single-workspace mode (SLACK_BOT_TOKEN's).
    workspaces: tuple[Annotated[str, Field(pattern=r"^T[A-Z0-9]{2,31}$")], ...] | None = Field(
        default=None, min_length=1
    )

    @field_validator("confirm", "require_reason", "approval")
    @classmethod
    def _call_actions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = (*CALL_ACTIONS, BULK)
        for action in value:
            if action not in known:
                raise ValueError(f"{action!r} is not a call action (use: {', '.join(known)})")
        return value

    @field_validator("allowed_urls")
    @classmethod
    def _url_rules(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for rule in value or ():
            check_url_rule(rule)
        return value

    @field_validator("allowed_bridge_numbers")
    @classmethod
    def _bridge_rules(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for rule in value or ():
            check_bridge_pattern(rule)
        return value

    @model_validator(mode="after")
    def _private_rules_need_opt_in(self) -> AccountBase:
        if not self.allow_private_urls:
            try:
                check_private_rules(self.allowed_urls or ())
            except ValueError as error:
                raise ValueError(f"allowed_urls: {error}") from None
        return self

    @model_validator(mode="after")
    def _approvers_channel_needed(self) -> AccountBase:
        # Without a channel an approval request would be posted nowhere and the action never run.
        if self.approval and not self.approvers_channel:
            raise ValueError("approval is set: approvers_channel (a Slack channel id, like C0123ABCD) is required")
        return self

    @model_validator(mode="after")
    def _announce_channel_needed(self) -> AccountBase:
        # `announce` alone would announce nothing, and say nothing about it.
        if self.announce is not None and not self.announce_channel:
            raise ValueError("announce is set: announce_channel (a Slack channel id, like C0123ABCD) is required")
        return self

    @model_validator(mode="after")
    def _one_workspace_per_channel(self) -> AccountBase:
        # A channel id is one workspace's: an account shared with several would post one workspace's
        # approvals and announcements where the other's people are (or fail to post at all).
        shared = self.workspaces is not None and len(self.workspaces) > 1
        for key in ("approvers_channel", "announce_channel"):
            if shared and getattr(self, key):
                raise ValueError(
                    f"{key} is one workspace's channel, but the account is shared with {len(self.workspaces or ())}"
                    " workspaces: declare one account per workspace for approvals and announcements"
                )
        return self

    def policy(self) -> Policy:
        return Policy(
            confirm=frozenset(self.confirm),
            require_reason=frozenset(self.require_reason),
            allowed_urls=self.allowed_urls,
            allow_private_urls=self.allow_private_urls,
            allowed_bridge_numbers=self.allowed_bridge_numbers,
            max_actions_per_minute=self.max_actions_per_minute,
            max_account_actions_per_minute=self.max_account_actions_per_minute,
            approval=frozenset(self.approval),
            approvers_channel=self.approvers_channel,
            approval_expiry=timedelta(minutes=self.approval_expiry_minutes),
            check_state=self.check_state,
            bulk_concurrency=self.bulk_concurrency,
            bulk_max_attempts=self.bulk_max_attempts,
            bulk_max_retry_after=self.bulk_max_retry_after,
            read_back=self.read_back,
            announce_channel=self.announce_channel,
            announce=self.announce or Announce.ALWAYS,
        )

    def secrets(self) -> list[str]:
        return []


class TwilioAccount(AccountBase):
    provider: Literal["twilio"]
    account_sid: Annotated[str, Field(pattern=r"^AC[0-9a-f]{32}$")]
    auth_token: str | None = None
    api_key_sid: Annotated[str, Field(pattern=r"^SK[0-9a-f]{32}$")] | None = None
    api_key_secret: str | None = None
    base_url: HttpUrl = HttpUrl("https://api.twilio.com")
    # Twilio signs its callbacks (X-Twilio-Signature) with the account's auth token, which an
    # account configured with an API key does not otherwise hold (docs/webhooks.md).
    callback_auth_token: Annotated[str, Field(min_length=1)] | None = None
    # Send callbot's own StatusCallback with a redirect or TwiML update. Off by default: Twilio
    # keeps one StatusCallback per call, and callbot's would replace the one the customer's own
    # application set on the call (docs/webhooks.md).
    status_callback: bool = False

    @model_validator(mode="after")
    def _one_credential(self) -> TwilioAccount:
        has_key = bool(self.api_key_sid or self.api_key_secret)
        if has_key and not (self.api_key_sid and self.api_key_secret):
            raise ValueError("api_key_sid and api_key_secret go together: set both")
        if not has_key and not self.auth_token:
            raise ValueError("missing credentials: set auth_token, or api_key_sid and api_key_secret")
        if has_key and self.auth_token:
            raise ValueError("set either auth_token or api_key_sid/api_key_secret, not both")
        if self.status_callback and not self.callback_token:  # else every callback asked for is refused
            raise ValueError(
                "status_callback = true needs callback_auth_token with an API key: Twilio signs with the auth token"
            )
        return self

    @property
    def callback_token(self) -> str | None:
        """What X-Twilio-Signature is keyed with: `callback_auth_token`, else `auth_token`."""
        return self.callback_auth_token or self.auth_token

    def secrets(self) -> list[str]:
        return [s for s in (self.auth_token, self.api_key_secret, self.callback_auth_token) if s]


class BandwidthAccount(AccountBase):
    provider: Literal["bandwidth"]
    account_id: Annotated[str, Field(min_length=1)]
    username: Annotated[str, Field(min_length=1)]
    password: Annotated[str, Field(min_length=1)]
    base_url: HttpUrl = HttpUrl("https://voice.bandwidth.com/api/v2")
    # The callback credentials set on the Bandwidth application: Bandwidth sends them (HTTP Basic)
    # with every callback, and callbot refuses a callback without them (docs/webhooks.md).
    callback_username: Annotated[str, Field(min_length=1)] | None = None
    callback_password: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _callback_pair(self) -> BandwidthAccount:
        if (self.callback_username is None) != (self.callback_password is None):
            raise ValueError("callback_username and callback_password go together: set both")
        return self

    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.callback_password) if s]


class BirdAccount(AccountBase):
    provider: Literal["bird"]
    workspace_id: Annotated[str, Field(min_length=1)]
    channel_id: Annotated[str, Field(min_length=1)]
    access_key: Annotated[str, Field(min_length=1)]
    base_url: HttpUrl = HttpUrl("https://api.bird.com")
    # The signingKey of the webhook subscription: Bird signs each delivery with it
    # (messagebird-signature, docs/webhooks.md).
    webhook_signing_key: Annotated[str, Field(min_length=1)] | None = None

    def secrets(self) -> list[str]:
        return [s for s in (self.access_key, self.webhook_signing_key) if s]


AccountConfig = Annotated[TwilioAccount | BandwidthAccount | BirdAccount, Field(discriminator="provider")]


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: dict[str, AccountConfig] = Field(default_factory=dict)
    # Audit rows older than this many days are purged daily by the server (docs/operating.md, "Retention").
    audit_retention_days: StrictInt | None = Field(default=None, ge=1, le=36_500)
