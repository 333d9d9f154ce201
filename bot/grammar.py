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
from bot.flow_library import FlowRef, looks_like_reference, parse_ref
from bot.permissions import ALL_ACTIONS, FLOW_MANAGE, OUTCOMES

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
    # Other actions that also make the verb usable (help lists the verb for holders of any of them).
    also_permitted: tuple[str, ...] = ()


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
            "/call flow CALL ['CALLFLOW-JSON'|SAVED-FLOW[@VERSION]] [reason=\"…\"] [dry-run]",
            "replace a Bird call's callFlow (alone: the callFlow builder; or JSON/YAML, or a saved flow's name)",
            ("CALL",),
            ("CALLFLOW",),
            options=("reason", "version"),
            flags=_CALL_FLAGS,
            permission="flow",
        ),
        VerbSpec(
            "flows",
            "/call flows [show NAME[@VERSION] | save NAME 'CALLFLOW-JSON' | delete NAME]",
            "the team's saved callFlows: list, show, save a new version, delete",
            optional_positionals=("SUBCOMMAND", "NAME", "CALLFLOW"),
            options=("version",),
            permission="flow",
            also_permitted=(FLOW_MANAGE,),
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
        VerbSpec(
            "freeze",
            '/call freeze on=ACCOUNTS reason="…"',
            "stop every call action on accounts until unfrozen (admins)",
            options=("on", "reason"),
            permission="admin",
        ),
        VerbSpec(
            "unfreeze",
            '/call unfreeze on=ACCOUNTS [reason="…"]',
            "lift a freeze (admins)",
            options=("on", "reason"),
            permission="admin",
        ),
    )
}
CALL_VERBS = frozenset(a.value for a in ActionName)
FLOWS_USAGE = {
    "list": "/call flows",
    "show": "/call flows show NAME[@VERSION]",
    "save": "/call flows save NAME 'CALLFLOW-JSON'",
    "delete": "/call flows delete NAME",
}
# What `action=` of `/call audit` accepts: the actions, and the other attempts the audit records.
AUDIT_ACTIONS = (
    *ALL_ACTIONS,
    "grant",
    "revoke",
    "perms",
    "freeze",
    "unfreeze",
    "flows.save",
    "flows.delete",
    "flows.list",
    "flows.show",
)


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
class SavedFlowCommand:
    """`/call flow CALL NAME[@N]`: apply a saved flow (the service resolves it and asks to confirm)."""

    target: CallTarget
    ref: FlowRef
    dry_run: bool
    reason: str | None = None

    @property
    def verb(self) -> str:
        return ActionName.FLOW.value


@dataclass(frozen=True)
class FlowBuilderCommand:
    """`/call flow CALL` with no callFlow: Slack opens the callFlow builder (a modal) for that call.
    Elsewhere (the CLI, or an account without callFlows) it is refused as `flow` needing CALLFLOW."""

    target: CallTarget

    @property
    def verb(self) -> str:
        return ActionName.FLOW.value


@dataclass(frozen=True)
class FlowsCommand:
    """`/call flows …`: `sub` is list, show, save or delete."""

    sub: str
    ref: FlowRef | None = None
    flow: CallFlow | None = None  # for save

    @property
    def audit_action(self) -> str:
        return f"flows.{self.sub}"


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


@dataclass(frozen=True)
class FreezeCommand:
    """`/call freeze|unfreeze on=ACCOUNTS [reason=…]` (a reason is required to freeze)."""

    lift: bool
    accounts: tuple[str, ...]
    reason: str | None

    @property
    def verb(self) -> str:
        return "unfreeze" if self.lift else "freeze"


Command = (
    CallCommand
    | SavedFlowCommand
    | FlowBuilderCommand
    | FlowsCommand
    | HelpCommand
    | OpenFormCommand
    | AuditQuery
    | GrantCommand
    | PermsCommand
    | FreezeCommand
)


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
    if verb in ("freeze", "unfreeze"):
        return _freeze_command(verb, options)
    if verb == "flows":
        return _flows_command(args, options)
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


def _call_command(
    verb: str, args: list[str], options: dict[str, str], flags: set[str]
) -> CallCommand | SavedFlowCommand | FlowBuilderCommand:
    target = CallTarget.parse(args[0])
    if verb == ActionName.FLOW and len(args) == 1:
        if options or flags:  # the builder takes none of them: they belong with a callFlow
            raise InvalidInput(None, "`flow` needs CALLFLOW.", f"Usage: `{VERBS['flow'].usage}`")
        return FlowBuilderCommand(target)
    reason = options.pop("reason", None)
    if reason is not None and not reason.strip():
        raise InvalidInput('reason=""', "is empty.", "Say why, or leave `reason=` out.")
    version = options.pop("version", None)
    if verb == ActionName.FLOW and looks_like_reference(args[1]):
        return SavedFlowCommand(target, parse_ref(args[1], version), "dry-run" in flags, reason)
    if version is not None:
        raise InvalidInput(
            f"version={version}",
            "goes with the name of a saved flow, not with a callFlow written out.",
            "E.g. `/call flow bird:CALL-ID hold-music@2`.",
        )
    action: CallAction
    if verb == ActionName.HANGUP:
        action = Hangup(reason)
    elif verb == ActionName.CANCEL:
        action = Cancel(reason)
    elif verb == ActionName.REDIRECT:
        action = redirect_from_options(args[1], options, reason)
    elif verb == ActionName.FLOW:
        action = ApplyFlow(parse_callflow(args[1]), reason)
    else:
        action = InlineTwiml(check_twiml(args[1]), reason)
    return CallCommand(target, action, "dry-run" in flags, frozenset(options))


def _freeze_command(verb: str, options: dict[str, str]) -> FreezeCommand:
    usage = f"Usage: `{VERBS[verb].usage}`"
    if "on" not in options:
        raise InvalidInput(None, f"`{verb}` needs `on=ACCOUNT` (comma-separated for several).", usage)
    accounts = _csv(options["on"], "on")
    if "*" in accounts:
        raise InvalidInput("on=*", "names no account.", "Name each account to freeze, e.g. `on=prod,bw`.")
    reason = options.get("reason")
    if reason is not None and not reason.strip():
        raise InvalidInput('reason=""', "is empty.", "Say why.")
    if verb == "freeze" and reason is None:
        raise InvalidInput(None, "`freeze` needs a reason: everyone refused sees it.", usage)
    return FreezeCommand(verb == "unfreeze", accounts, reason)


def _flows_command(args: list[str], options: dict[str, str]) -> FlowsCommand:
    sub = args[0].lower() if args else "list"
    if sub not in FLOWS_USAGE:
        hint = suggest(sub, list(FLOWS_USAGE)) or (
            f"To see a saved flow: `/call flows show {args[0]}`."
            if looks_like_reference(args[0])
            else f"Usage: `{VERBS['flows'].usage}`"
        )
        raise InvalidInput(args[0], "is not a `flows` subcommand (list, show, save, delete).", hint)
    rest = args[1:]
    wanted = ("NAME", "CALLFLOW")[: {"list": 0, "show": 1, "delete": 1, "save": 2}[sub]]
    usage = f"Usage: `{FLOWS_USAGE[sub]}`"
    if len(rest) < len(wanted):
        raise InvalidInput(None, f"`flows {sub}` needs {wanted[len(rest)]}.", usage)
    if len(rest) > len(wanted):
        raise InvalidInput(rest[len(wanted)], "is one word too many.", usage)
    version = options.get("version")
    if version is not None and sub != "show":
        raise InvalidInput(f"version={version}", f"is not an option of `flows {sub}`.", usage)
    if sub == "list":
        return FlowsCommand("list")
    ref = parse_ref(rest[0], version)
    if sub == "show":
        return FlowsCommand("show", ref)
    if ref.version is not None:
        why = (
            "names a version, but saving picks the next version itself."
            if sub == "save"
            else "names a version, but delete removes the name with all its versions."
        )
        raise InvalidInput(rest[0], why, f"Write just the name: `{ref.name}`.")
    if sub == "delete":
        return FlowsCommand("delete", ref)
    return FlowsCommand("save", ref, parse_callflow(rest[1]))


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
    if action is not None and action.lower() not in AUDIT_ACTIONS:
        raise InvalidInput(f"action={action}", "is not an action.", suggest(action, AUDIT_ACTIONS))
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
