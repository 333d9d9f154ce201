"""The `/call` command grammar (DESIGN §3): text in, a typed request or an InvalidInput out.

Words are split like a shell; options are `key=value`; bare flags (`dry-run`) stand alone.
Every refusal names the word, says why and how to fix it, with a "did you mean" where one fits.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.actions import (
    REDIRECT_OPTIONS,
    ActionName,
    ApplyFlow,
    CallAction,
    CallTarget,
    Cancel,
    Hangup,
    InlineTwiml,
    check_twiml,
    redirect_from_options,
)
from bot.callflow import CallFlow, parse_callflow
from bot.errors import InvalidInput
from bot.permissions import ALL_ACTIONS, OUTCOMES

_OPTION = re.compile(r"^([A-Za-z][A-Za-z-]*)=(.*)$", re.S)
_USER = re.compile(r"^(?:<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>|@?([UW][A-Z0-9]{2,}))$")
_DURATION = re.compile(r"^(\d{1,6})([mhdw])$")
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})
MAX_TEXT = 8000


@dataclass(frozen=True)
class VerbSpec:
    name: str
    usage: str
    summary: str
    positionals: tuple[str, ...] = ()
    optional_positionals: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    permission: str | None = None


_CALL_FLAGS = ("dry-run",)
VERBS: dict[str, VerbSpec] = {
    spec.name: spec
    for spec in (
        VerbSpec("help", "/call help [topic]", "usage, for what you may do", optional_positionals=("TOPIC",)),
        VerbSpec(
            "hangup",
            '/call hangup CALL [reason="…"] [dry-run]',
            "end a call",
            ("CALL",),
            options=("reason",),
            flags=_CALL_FLAGS,
            permission="hangup",
        ),
        VerbSpec(
            "cancel",
            '/call cancel CALL [reason="…"] [dry-run]',
            "end a queued or ringing call (Twilio)",
            ("CALL",),
            options=("reason",),
            flags=_CALL_FLAGS,
            permission="cancel",
        ),
        VerbSpec(
            "redirect",
            "/call redirect CALL URL [method=GET|POST] [fallback=URL] [fallback-method=GET|POST] "
            "[status-callback=URL] [status-callback-method=GET|POST] [time-limit=SECONDS] [tag=TEXT] "
            '[username=… password=…] [fallback-username=… fallback-password=…] [reason="…"] [dry-run]',
            "send a call to new TwiML/BXML",
            ("CALL", "URL"),
            options=(*REDIRECT_OPTIONS, "reason"),
            flags=_CALL_FLAGS,
            permission="redirect",
        ),
        VerbSpec(
            "twiml",
            '/call twiml CALL "<Response>…</Response>" [reason="…"] [dry-run]',
            "replace a call's instructions with inline TwiML (Twilio)",
            ("CALL", "TWIML"),
            options=("reason",),
            flags=_CALL_FLAGS,
            permission="twiml",
        ),
        VerbSpec(
            "flow",
            "/call flow CALL 'CALLFLOW-JSON' [reason=\"…\"] [dry-run]",
            "replace a Bird call's callFlow (JSON or YAML list of commands)",
            ("CALL", "CALLFLOW"),
            options=("reason",),
            flags=_CALL_FLAGS,
            permission="flow",
        ),
        VerbSpec(
            "audit",
            "/call audit [user=@someone] [account=NAME] [call=ID] [action=NAME] [outcome=NAME] [since=2h|7d|DATE]",
            "recent audited attempts (yours, or everyone's with `audit`)",
            options=("user", "account", "call", "action", "outcome", "since"),
        ),
        VerbSpec(
            "grant",
            "/call grant @someone ACTIONS [on=ACCOUNTS]",
            "let someone run actions (admins)",
            ("USER", "ACTIONS"),
            options=("on",),
            permission="admin",
        ),
        VerbSpec(
            "revoke",
            "/call revoke @someone ACTIONS [on=ACCOUNTS]",
            "take actions back (admins)",
            ("USER", "ACTIONS"),
            options=("on",),
            permission="admin",
        ),
        VerbSpec("perms", "/call perms [@someone]", "who may do what, where", optional_positionals=("USER",)),
    )
}
CALL_VERBS = frozenset(a.value for a in ActionName)
_FLOW_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class CallCommand:
    target: CallTarget
    action: CallAction
    dry_run: bool
    options: frozenset[str]  # the grammar options used, checked against what the provider supports

    @property
    def verb(self) -> str:
        return self.action.name.value


@dataclass(frozen=True)
class HelpCommand:
    topic: str | None = None


@dataclass(frozen=True)
class OpenFormCommand:
    pass


@dataclass(frozen=True)
class AuditQuery:
    user_id: str | None = None
    account: str | None = None
    call_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    limit: int = 20


@dataclass(frozen=True)
class GrantCommand:
    revoke: bool
    user_id: str
    actions: tuple[str, ...]
    accounts: tuple[str, ...]


@dataclass(frozen=True)
class PermsCommand:
    user_id: str | None = None


Command = CallCommand | HelpCommand | OpenFormCommand | AuditQuery | GrantCommand | PermsCommand


def tokenize(text: str) -> list[str]:
    if len(text) > MAX_TEXT:
        raise InvalidInput(None, f"The command is {len(text)} characters long; the limit is {MAX_TEXT}.")
    try:
        return shlex.split(text.translate(_SMART_QUOTES))
    except ValueError:
        raise InvalidInput(
            None, "A quote is not closed.", 'Close every quote, e.g. `reason="customer asked"`.'
        ) from None


def suggest(word: str, candidates: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word.lower(), list(candidates), n=1, cutoff=0.6)
    return f"Did you mean `{close[0]}`?" if close else ""


def parse(text: str) -> Command:
    words = tokenize(text)
    if not words:
        return OpenFormCommand()
    verb_word, rest = words[0], words[1:]
    verb = verb_word.lower()
    spec = VERBS.get(verb)
    if spec is None:
        hint = suggest(verb, list(VERBS)) or "Try `/call help`."
        raise InvalidInput(verb_word, "is not a command.", hint)
    args, options, flags = _split(spec, rest)
    if verb == "help":
        return HelpCommand(args[0].lower() if args else None)
    if verb == "perms":
        return PermsCommand(parse_user(args[0]) if args else None)
    if verb in ("grant", "revoke"):
        return GrantCommand(
            revoke=verb == "revoke",
            user_id=parse_user(args[0]),
            actions=parse_actions(args[1]),
            accounts=_csv(options.get("on", "*"), "on"),
        )
    if verb == "audit":
        return _audit_query(options)
    return _call_command(verb, args, options, flags)


def _split(spec: VerbSpec, words: list[str]) -> tuple[list[str], dict[str, str], set[str]]:
    args: list[str] = []
    options: dict[str, str] = {}
    flags: set[str] = set()
    for word in words:
        option = _OPTION.match(word)
        if option and not word.lower().startswith(("http://", "https://")):
            key, value = option.group(1).lower(), option.group(2)
            if key not in spec.options:
                hint = suggest(key, spec.options) or (
                    f"`{spec.name}` takes: {', '.join(spec.options)}." if spec.options else ""
                )
                raise InvalidInput(f"{key}=", f"is not an option of `{spec.name}`.", hint)
            if key in options:
                raise InvalidInput(f"{key}=", "is given twice.", "Keep one.")
            options[key] = value
        elif word.lower() in spec.flags:
            flags.add(word.lower())
        elif word.lower().lstrip("-") in spec.flags:
            flags.add(word.lower().lstrip("-"))
        else:
            args.append(word)
    max_args = len(spec.positionals) + len(spec.optional_positionals)
    if len(args) < len(spec.positionals):
        missing = spec.positionals[len(args)]
        raise InvalidInput(None, f"`{spec.name}` needs {missing}.", f"Usage: `{spec.usage}`")
    if len(args) > max_args:
        extra = args[max_args]
        hint = suggest(extra, [*spec.flags, *(o + "=" for o in spec.options)])
        raise InvalidInput(extra, "is one word too many.", hint or f"Usage: `{spec.usage}`")
    return args, options, flags


def _call_command(verb: str, args: list[str], options: dict[str, str], flags: set[str]) -> CallCommand:
    target = CallTarget.parse(args[0])
    reason = options.pop("reason", None)
    if reason is not None and not reason.strip():
        raise InvalidInput('reason=""', "is empty.", "Say why, or leave `reason=` out.")
    action: CallAction
    if verb == ActionName.HANGUP:
        action = Hangup(reason)
    elif verb == ActionName.CANCEL:
        action = Cancel(reason)
    elif verb == ActionName.REDIRECT:
        action = redirect_from_options(args[1], options, reason)
    elif verb == ActionName.FLOW:
        action = ApplyFlow(_flow_argument(args[1]), reason)
    else:
        action = InlineTwiml(check_twiml(args[1]), reason)
    return CallCommand(target, action, "dry-run" in flags, frozenset(options))


def _flow_argument(word: str) -> CallFlow:
    if _FLOW_NAME.match(word) and not word.isdigit():
        raise InvalidInput(
            word,
            "looks like the name of a saved flow; saved flows are not available yet.",
            'Pass the callFlow itself, e.g. `\'[{"command":"say","options":{"text":"Hello"}},{"command":"hangup"}]\'`.',
        )
    return parse_callflow(word)


def parse_user(word: str) -> str:
    match = _USER.match(word.strip())
    if not match:
        raise InvalidInput(
            word,
            "is not a Slack user I can identify.",
            "Mention the person (`@alice`, picked from Slack's list) or give their user id (`U012AB3CD`).",
        )
    return match.group(1) or match.group(2)


def parse_actions(word: str) -> tuple[str, ...]:
    actions = _csv(word, "ACTIONS")
    for action in actions:
        if action not in ALL_ACTIONS:
            hint = suggest(action, ALL_ACTIONS) or f"Actions are: {', '.join(ALL_ACTIONS)}."
            raise InvalidInput(action, "is not an action.", hint)
    return actions


def _csv(word: str, label: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(part.strip().lower() for part in word.split(",") if part.strip()))
    if not items:
        raise InvalidInput(label, "is empty.", "Give one or more names, comma-separated.")
    return items


def _audit_query(options: dict[str, str]) -> AuditQuery:
    user = options.get("user")
    action = options.get("action")
    outcome = options.get("outcome")
    if action is not None and action.lower() not in (*ALL_ACTIONS, "revoke", "grant"):
        raise InvalidInput(f"action={action}", "is not an action.", suggest(action, ALL_ACTIONS))
    if outcome is not None and outcome.lower() not in OUTCOMES:
        raise InvalidInput(
            f"outcome={outcome}",
            "is not an outcome.",
            suggest(outcome, OUTCOMES) or f"Use one of: {', '.join(OUTCOMES)}.",
        )
    return AuditQuery(
        user_id=parse_user(user) if user else None,
        account=options.get("account"),
        call_id=options.get("call"),
        action=action.lower() if action else None,
        outcome=outcome.lower() if outcome else None,
        since=parse_since(options["since"]) if "since" in options else None,
    )


def parse_since(word: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    match = _DURATION.match(word.strip().lower())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        delta = {
            "m": timedelta(minutes=1),
            "h": timedelta(hours=1),
            "d": timedelta(days=1),
            "w": timedelta(weeks=1),
        }
        try:
            return now - amount * delta[unit]
        except OverflowError:
            raise InvalidInput(f"since={word}", "reaches too far back.") from None
    try:
        moment = datetime.fromisoformat(word.strip())
    except ValueError:
        raise InvalidInput(
            f"since={word}",
            "is not a duration or a date.",
            "Use e.g. `since=2h`, `since=7d` or `since=2026-11-01`.",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
