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
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError

# The account models are re-exported: bot.config is where the rest of callbot reads configuration.
from bot.config.accounts import BandwidthAccount as BandwidthAccount
from bot.config.accounts import BirdAccount as BirdAccount
from bot.config.accounts import ConfigFile
from bot.config.accounts import TwilioAccount as TwilioAccount
from bot.config.oauth import OAuthConfig, oauth_from_env
from bot.domain.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///./callbot.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# A live process keeps a call action's audit row `pending` for at most two provider requests (the
# check_state read, then the action), each within its account's `timeout`, plus database work:
# the pending grace must be longer, by this much at least, or the sweep would close running rows.
PENDING_MARGIN = 30.0


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
    # OAuth mode (bot/config/oauth.py): None serves the one workspace of slack_bot_token.
    oauth: OAuthConfig | None = None

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
        oauth = oauth_from_env(env, public_url)
        for name, config in parsed.accounts.items():
            # Without the key an account is the single workspace's: with OAuth there is no such
            # workspace, and guessing would share the account with every workspace installed.
            if oauth is not None and config.workspaces is None:
                problem = 'is required in OAuth mode: list the Slack workspaces it serves, e.g. ["T0123ABCD"]'
                raise ConfigError(source, f"accounts.{name}.workspaces", problem)
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
            oauth=oauth,
        )

    def installable(self, team_id: str | None, enterprise_id: str | None, *, org_wide: bool) -> bool:
        """Whether an OAuth install there is taken: a workspace an account names, or one (or its
        organisation) in SLACK_ALLOWED_TEAMS; an org-wide install only when its organisation is listed."""
        allowed = self.oauth.allowed if self.oauth is not None else frozenset()
        if enterprise_id and enterprise_id in allowed:
            return True
        if org_wide or not team_id:
            return False
        return team_id in allowed or any(team_id in (a.config.workspaces or ()) for a in self.accounts.values())

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
        values += [self.oauth.client_secret] if self.oauth else []
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
        if self.oauth is None:  # in OAuth mode each workspace's token comes with its installation
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


def load_config(env: Mapping[str, str]) -> tuple[str, ConfigFile]:
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


def _accounts_from_file(path: Path, env: Mapping[str, str]) -> ConfigFile:
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


def _validated(raw: dict[str, Any], source: str) -> ConfigFile:
    accounts = raw.get("accounts")
    for name in accounts if isinstance(accounts, dict) else ():
        if not _ACCOUNT_NAME.match(name):
            raise ConfigError(
                source,
                f"accounts.{name}",
                f"account name {name!r} must be lower-case letters, digits, '-' or '_' (it is typed as NAME: in commands)",
            )
    try:
        parsed = ConfigFile.model_validate(raw)
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


def _accounts_from_variables(env: Mapping[str, str]) -> ConfigFile:
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
