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

from bot.domain.actions import (
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
from bot.domain.callflow import CallFlow, parse_callflow
from bot.domain.errors import InvalidInput
from bot.domain.flows import FlowRef, looks_like_reference, parse_ref
from bot.domain.permissions import ALL_ACTIONS, BUILTIN_ROLES, BULK, FLOW_MANAGE, GROUP, OUTCOMES, USER

_OPTION = re.compile(r"^([A-Za-z][A-Za-z_-]*)=(.*)$", re.S)
_USER = re.compile(r"^(?:<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>|@?([UW][A-Z0-9]{2,}))$")
_GROUP = re.compile(r"^(?:<!subteam\^(S[A-Z0-9]{2,})(?:\|[^>]*)?>|@?(S[A-Z0-9]{2,}))$")
_CHANNEL = re.compile(r"^(?:<#([CG][A-Z0-9]{2,})(?:\|[^>]*)?>|([CG][A-Z0-9]{2,}))$")
_ROLE_NAME = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
_DURATION = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})
MAX_TEXT = 8000
# The most calls one bulk action ends (`max=` and the confirmed count stay within it).
MAX_BATCH = 10_000


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
            "list",
            "/call list ACCOUNT [status=in-progress|ringing|queued] [to=+44…] [from=+44…]",
            "the account's live calls, with Hang up / Redirect / Flow buttons",
            ("ACCOUNT",),
            options=("status", "to", "from"),
            permission="hangup",
            also_permitted=("cancel", "redirect", "twiml", "flow"),
        ),
        VerbSpec(
            "status",
            "/call status CALL",
            "one call's live state, as the provider reports it now",
            ("CALL",),
            permission="hangup",
            also_permitted=("cancel", "redirect", "twiml", "flow"),
        ),
        VerbSpec(
            "hangup-all",
            '/call hangup-all ACCOUNT [status=in-progress|ringing|queued] [to=+44…] [from=+44…] [max=N] [reason="…"]',
            "end every live call that matches (shows the count to confirm, then progress with Cancel)",
            ("ACCOUNT",),
            options=("status", "to", "from", "max", "reason"),
            permission=BULK,
        ),
        VerbSpec(
            "batch",
            "/call batch ID [resume|cancel]",
            "a bulk action's progress; `resume` finishes an interrupted one, `cancel` stops one",
            ("ID",),
            optional_positionals=("SUBCOMMAND",),
            permission=BULK,
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
            "/call audit [export] [user=@someone] [account=NAME] [call=ID] [action=NAME] [outcome=NAME] "
            "[since=2h|7d|DATE] [until=2h|7d|DATE] [format=csv|jsonl]",
            "audited attempts, 10 a page (yours, or everyone's with `audit`); `export` sends them as a file",
            optional_positionals=("export",),
            options=("user", "account", "call", "action", "outcome", "since", "until", "format"),
        ),
        VerbSpec(
            "grant",
            "/call grant @someone|@group ACTIONS|ROLE [on=ACCOUNTS] [in=#channel] [for=8h|until=DATE] "
            "[needs_approval=yes]",
            "let someone (or a user group) run actions (admins)",
            ("USER", "ACTIONS"),
            options=("on", "in", "for", "until", "needs_approval"),
            permission="admin",
        ),
        VerbSpec(
            "revoke",
            "/call revoke @someone|@group ACTIONS|ROLE [on=ACCOUNTS] [in=#channel]",
            "take actions back (admins)",
            ("USER", "ACTIONS"),
            options=("on", "in"),
            permission="admin",
        ),
        VerbSpec(
            "perms",
            "/call perms [@someone|@group]",
            "who may do what, where, until when, and why",
            optional_positionals=("USER",),
        ),
        VerbSpec("roles", "/call roles", "the roles (named sets of actions) and what they allow"),
        VerbSpec(
            "role",
            "/call role create NAME ACTIONS",
            "define or redefine a custom role (admins on `*`)",
            ("SUBCOMMAND", "NAME", "ACTIONS"),
            permission="admin",
        ),
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
EXPORT_FORMATS = ("csv", "jsonl")
AUDIT_HINT = "Usage: `/call audit [export] [user=@someone] [account=NAME] … [format=csv|jsonl]`"
# What `action=` of `/call audit` accepts: the actions, and the other attempts the audit records.
AUDIT_ACTIONS = (
    *ALL_ACTIONS,
    "grant",
    "revoke",
    "perms",
    "role",
    "freeze",
    "unfreeze",
    "flows.save",
    "flows.delete",
    "flows.list",
    "flows.show",
    "audit.export",
    "calls.list",
    "calls.status",
    "hangup-all",
    "batch.cancel",
    "batch.resume",
    "batch.show",
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
class ListCallsCommand:
    """`/call list ACCOUNT [status=…] [to=…] [from=…]`: the account's live calls (read only).
    `status` is checked by the service against the live statuses the providers share."""

    account: str
    status: str | None = None
    to: str | None = None
    from_number: str | None = None


@dataclass(frozen=True)
class CallStatusCommand:
    """`/call status [account:]CALL`: one call's state, fetched from the provider (read only)."""

    target: CallTarget


@dataclass(frozen=True)
class HangupAllCommand:
    """`/call hangup-all ACCOUNT [status=…] [to=…] [from=…] [max=N] [reason=…]`: end every live call
    matching the filter (at most `max`), as a batch (bot/service/bulk/actions.py)."""

    account: str
    status: str | None = None
    to: str | None = None
    from_number: str | None = None
    max: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class BatchCommand:
    """`/call batch ID [resume|cancel]`: `sub` is show, resume or cancel."""

    batch_id: int
    sub: str = "show"


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
    until: datetime | None = None  # exclusive
    # `/call audit export … format=csv|jsonl`: the matching rows as a file instead of a page.
    export: bool = False
    format: str = "csv"


@dataclass(frozen=True)
class GrantCommand:
    revoke: bool
    user_id: str  # the subject: a user id, or a user group id when subject_kind is "group"
    actions: tuple[str, ...]  # actions or role names (custom roles are checked by the service)
    accounts: tuple[str, ...]
    subject_kind: str = USER
    channel: str | None = None
    # At most one of these; the service turns `duration` into a moment with its clock.
    duration: timedelta | None = None
    until: datetime | None = None
    # `needs_approval=yes`: the actions this grant allows are held for two-person approval.
    needs_approval: bool = False


@dataclass(frozen=True)
class PermsCommand:
    user_id: str | None = None
    subject_kind: str = USER


@dataclass(frozen=True)
class RolesCommand:
    pass


@dataclass(frozen=True)
class RoleCommand:
    """`/call role create NAME ACTIONS`: creating an existing custom role redefines it."""

    name: str
    actions: tuple[str, ...]


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
    | RolesCommand
    | RoleCommand
    | FreezeCommand
    | ListCallsCommand
    | CallStatusCommand
    | HangupAllCommand
    | BatchCommand
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
        if not args:
            return PermsCommand()
        kind, subject = parse_subject(args[0])
        return PermsCommand(subject, kind)
    if verb in ("grant", "revoke"):
        return _grant_command(verb, args, options)
    if verb == "roles":
        return RolesCommand()
    if verb == "role":
        return _role_command(args)
    if verb == "audit":
        return _audit_query(args, options)
    if verb in ("freeze", "unfreeze"):
        return _freeze_command(verb, options)
    if verb == "flows":
        return _flows_command(args, options)
    if verb == "list":
        return _list_command(args[0], options)
    if verb == "status":
        return CallStatusCommand(CallTarget.parse(args[0]))
    if verb == "hangup-all":
        return _hangup_all_command(args[0], options)
    if verb == "batch":
        return _batch_command(args)
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


def _list_command(account: str, options: dict[str, str]) -> ListCallsCommand:
    def number(key: str) -> str | None:
        value = options.get(key)
        if value is not None and not value.strip():
            raise InvalidInput(
                f'{key}=""', "is empty.", f"Give a number (`{key}=+447700900123`) or leave `{key}=` out."
            )
        return value.strip() if value is not None else None

    status = options.get("status")
    return ListCallsCommand(
        account.removesuffix(":"), status.strip().lower() if status else None, number("to"), number("from")
    )


def _hangup_all_command(account: str, options: dict[str, str]) -> HangupAllCommand:
    listed = _list_command(account, options)
    limit = None
    if "max" in options:
        raw = options["max"].replace(",", "").replace("_", "").strip()
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_BATCH:
            raise InvalidInput(
                f"max={options['max']}",
                f"is not a number of calls from 1 to {MAX_BATCH:,}.",
                "E.g. `max=500`, or leave it out to end every matching call (after you confirm the count).",
            )
        limit = int(raw)
    reason = options.get("reason")
    if reason is not None and not reason.strip():
        raise InvalidInput('reason=""', "is empty.", "Say why, or leave `reason=` out.")
    return HangupAllCommand(listed.account, listed.status, listed.to, listed.from_number, limit, reason)


def _batch_command(args: list[str]) -> BatchCommand:
    usage = f"Usage: `{VERBS['batch'].usage}`"
    raw = args[0].removeprefix("#")
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(args[0], "is not a batch number.", f"The progress message names it (batch #12). {usage}")
    sub = args[1].lower() if len(args) > 1 else "show"
    if sub not in ("show", "resume", "cancel"):
        hint = suggest(sub, ["resume", "cancel"]) or usage
        raise InvalidInput(args[1], "is not something `batch` does.", hint)
    return BatchCommand(int(raw), sub)


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


def _grant_command(verb: str, args: list[str], options: dict[str, str]) -> GrantCommand:
    kind, subject = parse_subject(args[0])
    if "for" in options and "until" in options:
        raise InvalidInput("until=", "is given with `for=`.", "Keep one: `for=8h` or `until=2026-12-01`.")
    return GrantCommand(
        revoke=verb == "revoke",
        user_id=subject,
        actions=parse_actions(args[1]),
        accounts=_csv(options.get("on", "*"), "on"),
        subject_kind=kind,
        channel=parse_channel(options["in"]) if "in" in options else None,
        duration=parse_duration(options["for"]) if "for" in options else None,
        until=parse_until(options["until"]) if "until" in options else None,
        needs_approval=parse_yes_no(options["needs_approval"], "needs_approval")
        if "needs_approval" in options
        else False,
    )


def parse_yes_no(word: str, key: str) -> bool:
    value = word.strip().lower()
    if value in ("yes", "true", "on", "1"):
        return True
    if value in ("no", "false", "off", "0"):
        return False
    raise InvalidInput(f"{key}={word}", "is neither yes nor no.", f"Use `{key}=yes` or `{key}=no`.")


def _role_command(args: list[str]) -> RoleCommand:
    if args[0].lower() != "create":
        hint = suggest(args[0], ["create"]) or f"Usage: `{VERBS['role'].usage}`"
        raise InvalidInput(args[0], "is not a `role` subcommand (create).", hint)
    name = args[1].lower()
    if name in BUILTIN_ROLES:
        raise InvalidInput(name, "is a built-in role: it cannot be redefined.", "Pick another name; see `/call roles`.")
    if name in ALL_ACTIONS or not _ROLE_NAME.match(name):
        raise InvalidInput(
            name, "cannot name a role.", "Use 2–32 lowercase letters, digits and dashes, not an action's name."
        )
    actions = _csv(args[2], "ACTIONS")
    for action in actions:
        if action not in ALL_ACTIONS:
            hint = suggest(action, ALL_ACTIONS) or f"A role is made of actions: {', '.join(ALL_ACTIONS)}."
            raise InvalidInput(action, "is not an action.", hint)
    return RoleCommand(name, actions)


def parse_subject(word: str) -> tuple[str, str]:
    """A user (`<@U…>`, `U…`) or a user group (`<!subteam^S…>` as Slack sends `@oncall-voice`, or `S…`)."""
    group = _GROUP.match(word.strip())
    if group:
        return GROUP, group.group(1) or group.group(2)
    try:
        return USER, parse_user(word)
    except InvalidInput:
        raise InvalidInput(
            word,
            "is not a Slack user I can identify.",
            "Mention the person or user group (`@alice`, `@oncall-voice`, picked from Slack's list) or give the "
            "id (`U012AB3CD`, `S0123ABC`).",
        ) from None


def parse_channel(word: str) -> str:
    match = _CHANNEL.match(word.strip())
    if not match:
        raise InvalidInput(
            f"in={word}",
            "is not a channel I can identify.",
            "Pick the channel from Slack's list (`in=#ops-voice`, sent as a link) or give its id (`C0123ABCD`).",
        )
    return match.group(1) or match.group(2)


def parse_duration(word: str) -> timedelta:
    match = _DURATION.match(word.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"for={word}", "is not a duration.", "Use e.g. `for=30m`, `for=8h`, `for=2d`, `for=1w`.")
    try:
        return int(match.group(1)) * _UNITS[match.group(2)]
    except OverflowError:
        raise InvalidInput(f"for={word}", "is too long.") from None


def parse_until(word: str) -> datetime:
    """A date (`2026-12-01`: its first moment, UTC) or a date and time (UTC unless a zone is given)."""
    try:
        moment = datetime.fromisoformat(word.strip())
    except ValueError:
        raise InvalidInput(
            f"until={word}", "is not a date.", "Use e.g. `until=2026-12-01` or `until=2026-12-01T18:00`."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
    """Actions and role names. A name that could be a custom role passes: the service, which knows
    the custom roles, refuses it when it is neither (`check_grantable`)."""
    actions = _csv(word, "ACTIONS")
    for action in actions:
        if action not in ALL_ACTIONS and action not in BUILTIN_ROLES and not _ROLE_NAME.match(action):
            raise InvalidInput(action, "is not an action.", unknown_action_hint(action, ()))
    return actions


def check_grantable(names: tuple[str, ...], custom_roles: tuple[str, ...]) -> None:
    for name in names:
        if name not in ALL_ACTIONS and name not in BUILTIN_ROLES and name not in custom_roles:
            raise InvalidInput(name, "is not an action.", unknown_action_hint(name, custom_roles))


def unknown_action_hint(word: str, custom_roles: tuple[str, ...]) -> str:
    roles = (*BUILTIN_ROLES, *custom_roles)
    return suggest(word, (*ALL_ACTIONS, *roles)) or (
        f"Actions are: {', '.join(ALL_ACTIONS)}. Roles are: {', '.join(roles)} (`/call roles`)."
    )


def _csv(word: str, label: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(part.strip().lower() for part in word.split(",") if part.strip()))
    if not items:
        raise InvalidInput(label, "is empty.", "Give one or more names, comma-separated.")
    return items


def _audit_query(args: list[str], options: dict[str, str]) -> AuditQuery:
    export = bool(args)
    if export and args[0].lower() != "export":
        raise InvalidInput(args[0], "is not a word `audit` knows.", suggest(args[0], ["export"]) or AUDIT_HINT)
    fmt = options.get("format", "csv").lower()
    if "format" in options and not export:
        raise InvalidInput("format=", "is only for `/call audit export`.", "Write `/call audit export format=jsonl`.")
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"format={options['format']}", "is not an export format.", "Use `csv` or `jsonl`.")
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
    since = parse_since(options["since"]) if "since" in options else None
    until = parse_since(options["until"], key="until") if "until" in options else None
    if since is not None and until is not None and since >= until:
        raise InvalidInput(
            f"until={options['until']}", f"is not after `since={options['since']}`: nothing could match.", None
        )
    return AuditQuery(
        user_id=parse_user(user) if user else None,
        account=options.get("account"),
        call_id=options.get("call"),
        action=action.lower() if action else None,
        outcome=outcome.lower() if outcome else None,
        since=since,
        until=until,
        export=export,
        format=fmt,
    )


def parse_since(word: str, now: datetime | None = None, key: str = "since") -> datetime:
    """`2h`, `7d`… back from now, or a date / date and time (UTC unless a zone is given).
    `key` names the option in a refusal (`since=` and `until=` take the same forms)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(word.strip().lower())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        try:
            return now - amount * _UNITS[unit]
        except OverflowError:
            raise InvalidInput(f"{key}={word}", "reaches too far back.") from None
    try:
        moment = datetime.fromisoformat(word.strip())
    except ValueError:
        raise InvalidInput(
            f"{key}={word}",
            "is not a duration or a date.",
            f"Use e.g. `{key}=2h`, `{key}=7d` or `{key}=2026-11-01`.",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
