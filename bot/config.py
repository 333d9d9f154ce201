"""Configuration: the environment plus one optional TOML file of provider accounts (DESIGN §2).

Everything is checked at start-up so a bad value fails fast with the file, the key and the
problem, instead of surfacing as a confusing error in the middle of an incident.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StrictInt, ValidationError, field_validator, model_validator

from bot.domain.errors import ConfigError
from bot.domain.permissions import BULK, CALL_ACTIONS
from bot.domain.policy import Announce, Policy, check_bridge_pattern, check_private_rules, check_url_rule

DEFAULT_DATABASE_URL = "sqlite:///./callbot.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# A live process keeps a call action's audit row `pending` for at most two provider requests (the
# check_state read, then the action), each within its account's `timeout`, plus database work:
# the pending grace must be longer, by this much at least, or the sweep would close running rows.
PENDING_MARGIN = 30.0


class _Account(BaseModel):
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
    def _private_rules_need_opt_in(self) -> _Account:
        if not self.allow_private_urls:
            try:
                check_private_rules(self.allowed_urls or ())
            except ValueError as error:
                raise ValueError(f"allowed_urls: {error}") from None
        return self

    @model_validator(mode="after")
    def _approvers_channel_needed(self) -> _Account:
        # Without a channel an approval request would be posted nowhere and the action never run.
        if self.approval and not self.approvers_channel:
            raise ValueError("approval is set: approvers_channel (a Slack channel id, like C0123ABCD) is required")
        return self

    @model_validator(mode="after")
    def _announce_channel_needed(self) -> _Account:
        # `announce` alone would announce nothing, and say nothing about it.
        if self.announce is not None and not self.announce_channel:
            raise ValueError("announce is set: announce_channel (a Slack channel id, like C0123ABCD) is required")
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


class TwilioAccount(_Account):
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


class BandwidthAccount(_Account):
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


class BirdAccount(_Account):
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


class _ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: dict[str, AccountConfig] = Field(default_factory=dict)
    # Audit rows older than this many days are purged daily by the server (docs/operating.md, "Retention").
    audit_retention_days: StrictInt | None = Field(default=None, ge=1, le=36_500)


@dataclass(frozen=True)
class Account:
    """A named provider account, as commands refer to it (`prod:CA…`)."""

    name: str
    config: TwilioAccount | BandwidthAccount | BirdAccount

    @property
    def provider(self) -> str:
        return self.config.provider


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    slack_signing_secret: str | None = None
    slack_bot_token: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    port: int = 3000
    accounts: Mapping[str, Account] = field(default_factory=dict)
    config_source: str | None = None
    # A `pending` audit row older than this belongs to a process that died mid-request.
    pending_grace_seconds: float | None = None
    # A running batch whose heartbeat (every second) is older than this belongs to a dead process.
    batch_stale_seconds: float = 30.0
    audit_retention_days: int | None = None
    # When set, GET /metrics wants `Authorization: Bearer <this>` (the port is public for Slack).
    metrics_token: str | None = None
    # CALLBOT_PUBLIC_URL, without a trailing slash: the URL providers call callbot at, from which
    # the signed callback URLs are rebuilt (a proxy's Host header is never trusted for that).
    public_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        port_text = env.get("PORT", "3000")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError("environment", "PORT", f"{port_text!r} is not a TCP port number")
        source, parsed = load_config(env)
        public_url = _public_url(env.get("CALLBOT_PUBLIC_URL") or None)
        for name, config in parsed.accounts.items():
            if isinstance(config, TwilioAccount) and config.status_callback and public_url is None:
                problem = "is true, but CALLBOT_PUBLIC_URL is not set: Twilio would not know where to call callbot"
                raise ConfigError(source, f"accounts.{name}.status_callback", problem)
        longest = max((account.timeout for account in parsed.accounts.values()), default=10.0)
        grace = _seconds(env, "CALLBOT_PENDING_GRACE", minimum=shortest_pending_grace(longest))
        stale = _seconds(env, "CALLBOT_BATCH_STALE_AFTER", minimum=2.0)
        return cls(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_app_token=env.get("SLACK_APP_TOKEN") or None,
            slack_api_url=env.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL,
            port=int(port_text),
            accounts={name: Account(name, config) for name, config in parsed.accounts.items()},
            audit_retention_days=parsed.audit_retention_days,
            config_source=source,
            pending_grace_seconds=grace,
            batch_stale_seconds=30.0 if stale is None else stale,
            metrics_token=env.get("CALLBOT_METRICS_TOKEN") or None,
            public_url=public_url,
        )

    @property
    def batch_stale_after(self) -> timedelta:
        return timedelta(seconds=self.batch_stale_seconds)

    @property
    def pending_grace(self) -> float:
        longest = max((a.config.timeout for a in self.accounts.values()), default=10.0)
        if self.pending_grace_seconds is not None:
            # Checked by from_env; a Settings built by hand gets the same floor.
            return max(self.pending_grace_seconds, shortest_pending_grace(longest))
        return max(120.0, 3 * longest + PENDING_MARGIN)

    def secrets(self) -> list[str]:
        values = [self.slack_signing_secret, self.slack_bot_token, self.slack_app_token, self.metrics_token]
        values += [s for account in self.accounts.values() for s in account.config.secrets()]
        # The database driver gets the password percent-decoded; an error may quote either form.
        password = _url_password(self.database_url)
        values += [password, unquote(password)] if password else []
        return [v for v in values if v]

    def require_http_serving(self) -> None:
        if not self.slack_signing_secret:
            raise ConfigError(
                "environment",
                "SLACK_SIGNING_SECRET",
                "not set; copy it from your Slack app's Basic Information page",
            )
        self.require_bot_token()

    def require_bot_token(self) -> None:
        if not self.slack_bot_token:
            raise ConfigError(
                "environment", "SLACK_BOT_TOKEN", "not set; copy the xoxb-… token from OAuth & Permissions"
            )
        if not self.slack_bot_token.startswith("xoxb-"):
            raise ConfigError("environment", "SLACK_BOT_TOKEN", "must be a bot token starting with xoxb-")


def shortest_pending_grace(longest_timeout: float) -> float:
    """The shortest CALLBOT_PENDING_GRACE that never closes a row whose request is still running."""
    return 2 * longest_timeout + PENDING_MARGIN


def _seconds(env: Mapping[str, str], name: str, *, minimum: float) -> float | None:
    """An optional environment variable holding a number of seconds, at least `minimum`."""
    text = env.get(name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError("environment", name, "must be a number of seconds") from None
    if not value >= minimum:  # NaN too
        if name == "CALLBOT_PENDING_GRACE":
            raise ConfigError(
                "environment",
                name,
                f"must be at least {minimum:g} seconds: twice the longest account timeout plus "
                f"{PENDING_MARGIN:g} s. A shorter grace would mark requests still running as abandoned.",
            )
        raise ConfigError(
            "environment", name, "must not be negative" if minimum == 0 else f"must be at least {minimum:g}"
        )
    return value


def _public_url(text: str | None) -> str | None:
    """CALLBOT_PUBLIC_URL: an http(s) base URL, maybe with a path, nothing after it."""
    if text is None:
        return None
    problem = "must be the http(s) URL providers reach callbot at, like https://callbot.example.com"
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigError("environment", "CALLBOT_PUBLIC_URL", problem) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("environment", "CALLBOT_PUBLIC_URL", problem)
    if parts.username is not None or parts.query or parts.fragment or text.strip().endswith(("?", "#")):
        raise ConfigError(
            "environment", "CALLBOT_PUBLIC_URL", "takes no user, query or fragment: only scheme, host, port and path"
        )
    return text.strip().rstrip("/")


def _url_password(url: str) -> str | None:
    match = re.match(r"^[a-z0-9+]+://[^:/@]+:([^@]+)@", url)
    return match.group(1) if match else None


def load_config(env: Mapping[str, str]) -> tuple[str, _ConfigFile]:
    """CALLBOT_CONFIG (or ./callbot.toml), else the accounts from the plain variables."""
    path_text = env.get("CALLBOT_CONFIG")
    if path_text:
        path = Path(path_text)
        if not path.is_file():
            raise ConfigError(path_text, None, "file not found (set by CALLBOT_CONFIG)")
    else:
        path = Path("callbot.toml")
        if not path.is_file():
            return "environment", _accounts_from_variables(env)
    return str(path), _accounts_from_file(path, env)


def _accounts_from_file(path: Path, env: Mapping[str, str]) -> _ConfigFile:
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, None, f"cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(source, None, "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, None, f"is not valid TOML: {exc}") from None
    expanded = _expand(raw, env, source, ())
    return _validated(expanded, source)


def _expand(value: Any, env: Mapping[str, str], source: str, path: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, env, source, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, source, (*path, str(i))) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env or env[name] == "":
                raise ConfigError(source, ".".join(path), f"environment variable {name} is not set")
            return env[name]

        return _ENV_REF.sub(substitute, value)
    return value


def _validated(raw: dict[str, Any], source: str) -> _ConfigFile:
    accounts = raw.get("accounts")
    for name in accounts if isinstance(accounts, dict) else ():
        if not _ACCOUNT_NAME.match(name):
            raise ConfigError(
                source,
                f"accounts.{name}",
                f"account name {name!r} must be lower-case letters, digits, '-' or '_' (it is typed as NAME: in commands)",
            )
    try:
        parsed = _ConfigFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in _key_path(first["loc"]))
        raise ConfigError(source, key or None, _explain(first)) from None
    return parsed


def _key_path(loc: Sequence[Any]) -> list[Any]:
    """pydantic's location minus what is not a key in the file: the provider tag it adds after the
    account name (accounts.NAME.<tag>.key) and validator names."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "accounts" and parts[2] in ("twilio", "bandwidth", "bird"):
        del parts[2]
    return [p for p in parts if not str(p).startswith("function-")]


def _explain(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known setting (check the spelling; see docs/configuration.md)"
    if kind == "union_tag_invalid":
        return "provider must be one of: twilio, bandwidth, bird"
    if kind == "union_tag_not_found":
        return "provider is required (twilio, bandwidth or bird)"
    if kind == "string_pattern_mismatch":
        return f"has the wrong shape (expected {error['ctx']['pattern']})"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _accounts_from_variables(env: Mapping[str, str]) -> _ConfigFile:
    groups = {
        "twilio": {"account_sid": "TWILIO_ACCOUNT_SID", "auth_token": "TWILIO_AUTH_TOKEN"},
        "bandwidth": {
            "account_id": "BANDWIDTH_ACCOUNT_ID",
            "username": "BANDWIDTH_USERNAME",
            "password": "BANDWIDTH_PASSWORD",
        },
        "bird": {
            "workspace_id": "BIRD_WORKSPACE_ID",
            "channel_id": "BIRD_CHANNEL_ID",
            "access_key": "BIRD_ACCESS_KEY",
        },
    }
    raw: dict[str, Any] = {}
    for provider, keys in groups.items():
        present = {key: env[var] for key, var in keys.items() if env.get(var)}
        if not present:
            continue
        missing = [var for key, var in keys.items() if key not in present]
        if missing:
            set_names = ", ".join(keys[key] for key in present)
            raise ConfigError("environment", missing[0], f"is not set, but {set_names} is")
        raw[provider] = {"provider": provider, **present}
    try:
        return _validated({"accounts": raw}, "environment")
    except ConfigError as error:
        # Name the variable people set, not the file-style key it became.
        provider, _, key = (error.key or "").removeprefix("accounts.").partition(".")
        variable = groups.get(provider, {}).get(key)
        if variable is None:
            raise
        raise ConfigError("environment", variable, error.problem) from None
