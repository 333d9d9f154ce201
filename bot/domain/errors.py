"""The errors callbot raises, each with a message written for the person who typed the command.

Every error carries the audit `outcome` it leads to, so the pipeline records it without guessing.
"""

from __future__ import annotations


class CallbotError(Exception):
    """Base class: `str(error)` is safe to show in Slack (no secrets, no stack trace)."""

    outcome = "failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(CallbotError):
    """The command or form cannot be understood: names the word, says why and how to fix it."""

    outcome = "invalid"

    def __init__(self, word: str | None, why: str, fix: str | None = None) -> None:
        self.word = word
        self.why = why
        self.fix = fix
        why = why if why.endswith((".", "?", "!")) else why + "."
        parts = [f"`{word}`: {why}" if word else why]
        if fix:
            parts.append(fix)
        super().__init__(" ".join(parts))


class AmbiguousAccount(InvalidInput):
    """A call id whose shape fits several configured accounts: the person must pick one."""

    def __init__(self, call_id: str, accounts: tuple[str, ...]) -> None:
        self.call_id = call_id
        self.accounts = accounts
        super().__init__(
            call_id,
            f"could belong to several accounts ({', '.join(accounts)}).",
            f"Pick one below, or name it: `{accounts[0]}:{call_id}`.",
        )


class PermissionDenied(CallbotError):
    outcome = "denied"

    def __init__(self, action: str, account: str | None, detail: str | None = None) -> None:
        self.action = action
        self.account = account
        where = f" on account `{account}`" if account else ""
        message = f"You are not allowed to `{action}`{where}."
        message += (
            f" {detail}"
            if detail
            else " Ask an admin: `/call grant @you " + action + (f" on={account}`." if account else "`.")
        )
        super().__init__(message)


NO_WORKSPACE = "This request names no Slack workspace, so callbot cannot tell whose it is."


class WorkspaceUnknown(CallbotError):
    """A request or shell command whose Slack workspace callbot cannot tell (no team id, or from
    the shell several known workspaces and no `--team`)."""

    outcome = "invalid"


class ForeignWorkspace(CallbotError):
    """A button or form of one workspace naming a row of another (an approval, a batch, a pending
    choice, an audit row, a draft): refused as if the row did not exist, and audited."""

    outcome = "denied"

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"This {what} belongs to another Slack workspace: nothing was done.")


class ConfigError(CallbotError):
    """A configuration problem found at start-up: names the file, the key and what is wrong."""

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


class ProviderError(CallbotError):
    """A provider answered with an error, or did not answer.

    `applied` says whether the provider may have acted: False means it certainly did not
    (outcome `failed`), None means nobody can tell (outcome `unknown`).
    """

    title = "The provider refused the request"

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        provider_message: str | None = None,
        request_id: str | None = None,
        applied: bool | None = False,
        retry_after: float | None = None,
    ) -> None:
        self.provider = provider
        self.http_status = http_status
        self.code = code
        self.provider_message = provider_message
        self.request_id = request_id
        self.applied = applied
        self.retry_after = retry_after
        super().__init__(message)

    @property
    def outcome(self) -> str:  # type: ignore[override]
        return "failed" if self.applied is False else "unknown"


class CallNotFound(ProviderError):
    title = "Unknown call"


class CallNotModifiable(ProviderError):
    title = "The call cannot be changed now"


class CallNotInProgress(CallNotModifiable):
    """Refused because the call is not in progress (Twilio 21220): the provider's answer does not
    say whether it ended or is not answered yet, so the service reads the call to tell which."""


class ProviderAuthFailed(ProviderError):
    title = "The provider rejected our credentials"


class ProviderRateLimited(ProviderError):
    title = "Rate limited by the provider"


class ProviderUnavailable(ProviderError):
    title = "The provider is unavailable"


class ProviderOutcomeUnknown(ProviderError):
    title = "No clear answer from the provider"

    def __init__(self, provider: str, message: str, **kwargs: object) -> None:
        kwargs["applied"] = None
        super().__init__(provider, message, **kwargs)  # type: ignore[arg-type]


class PolicyDenied(CallbotError):
    """An account's safety policy (callbot.toml) refuses the action: `rule` names the setting
    (allowed_urls, allowed_bridge_numbers, require_reason, freeze…) so people and auditors see why."""

    outcome = "denied"

    def __init__(self, rule: str, message: str, word: str | None = None) -> None:
        self.rule = rule
        self.word = word
        super().__init__(message)


class RateLimited(CallbotError):
    """Too many actions in the last minute (max_actions_per_minute): refused, with the wait."""

    outcome = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message)
