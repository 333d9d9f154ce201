"""Account administration: who may do what (`/call grant|revoke`, `/call perms`, `/call roles`,
`/call role create`, the shell's `callbot grant|perms|roles|role create`) and `/call freeze|unfreeze`.

Kept apart from the call pipeline because it is decided differently: these commands change the
grants and freezes that the pipeline's decisions read (`Service._decide`, `Service._check_freeze`),
so they need `admin` on every account named (`decide_management`), not an action grant, and a grant
given may not reach further than the giver's own (same channel, expiring no later). They are
audited like call actions, through the service's audit rows. The shell's entry points are trusted
(whoever runs them can reach the database anyway) but are still audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.db import repo
from bot.db.session import Database
from bot.domain import grammar
from bot.domain.errors import InvalidInput, PermissionDenied
from bot.domain.grammar import FreezeCommand, GrantCommand, PermsCommand, RoleCommand
from bot.domain.outcomes import Outcome
from bot.domain.permissions import (
    ANY_ACCOUNT,
    BUILTIN_ROLES,
    GROUP,
    TEAM_WIDE_ACTIONS,
    Decision,
    Grant,
    Limits,
    decide_management,
    group_mention,
    when,
    with_roles,
)
from bot.domain.replies import Reply, Tone, mention
from bot.service.access import Access
from bot.service.accounts import Accounts
from bot.service.recorder import Recorder
from bot.service.safety import Safety
from bot.service.steps import Clock, Invocation


class Grants:
    """The account-administration half of the service; it uses the service's permission decisions,
    audit rows and clients."""

    def __init__(
        self,
        db: Database,
        accounts: Accounts,
        clock: Clock,
        recorder: Recorder,
        access: Access,
        safety: Safety,
    ) -> None:
        self.db = db
        # Grants, freezes and `needs_approval` name the accounts of the asker's workspace only.
        self.accounts = accounts
        self.now = clock
        self.recorder = recorder
        self.access = access
        self.safety = safety

    # -- entry points (the pipeline's dispatch, the shell) --------------------------------------

    async def change(self, inv: Invocation, command: GrantCommand) -> Reply:
        verb = "revoke" if command.revoke else "grant"
        try:
            self._check_accounts(inv.team, command.accounts)
            _check_team_wide(command)
            expires_at = await self._check_grant(inv.team, command)
        except InvalidInput as error:
            return await self.recorder.refuse(inv, error, action=verb)
        wanted = None if command.revoke else Limits(command.channel, expires_at)
        decision = decide_management(
            await self.access.all_held(inv),
            command.accounts,
            channel=inv.channel_id,
            now=self.now(),
            wanted=wanted,
        )
        if not decision.allowed:
            denial = PermissionDenied(verb, decision.account, _management_detail(command, decision))
            return await self.recorder.refuse(
                inv, denial, action=verb, decision=decision, account=_one(command.accounts)
            )
        return await self._apply_grants(inv, command, decision, expires_at)

    async def freeze(self, inv: Invocation, command: FreezeCommand) -> Reply:
        """`/call freeze|unfreeze on=…`: admins of every account named. History is kept (freezes table)."""
        verb = command.verb
        try:
            self._check_accounts(inv.team, command.accounts)
        except InvalidInput as error:
            return await self.recorder.refuse(inv, error, action=verb)
        decision = decide_management(
            await self.access.all_held(inv), command.accounts, channel=inv.channel_id, now=self.now()
        )
        if not decision.allowed:
            denial = PermissionDenied(verb, decision.account, f"`{verb}` needs `admin` on every account named.")
            return await self.recorder.refuse(
                inv, denial, action=verb, decision=decision, account=_one(command.accounts)
            )
        now = self.now()
        changed: list[str] = []
        unchanged: list[str] = []
        for account in command.accounts:
            if command.lift:
                lifted = await repo.lift_freezes(self.db, inv.team, account, inv.user_id, now, command.reason)
                (changed if lifted else unchanged).append(account)
                continue
            if await repo.active_freeze(self.db, inv.team, account) is not None:
                unchanged.append(account)
                continue
            await repo.add_freeze(self.db, inv.team, account, command.reason or "", inv.user_id, now)
            changed.append(account)
        request = {"accounts": list(command.accounts), "reason": command.reason, "changed": changed}
        row = await self.recorder.record(
            inv,
            outcome=Outcome.SUCCEEDED,
            decision=decision,
            action=verb,
            account=_one(command.accounts),
            request=request,
            completed=True,
        )
        return Reply(Tone.SUCCESS, *_freeze_wording(command, changed, unchanged), audit_id=row.id)

    async def perms(self, inv: Invocation, command: PermsCommand) -> Reply:
        target = command.user_id or inv.user_id
        if target != inv.user_id and not any("admin" in g.actions for g in await self.access.usable(inv)):
            denial = PermissionDenied("perms", None, "Seeing someone else's permissions needs `admin`.")
            return await self.recorder.refuse(inv, denial, action="perms", decision=Decision(False, "admin", None))
        return await self._describe_perms(inv.team, target, command.subject_kind)

    async def roles(self, team: str) -> Reply:
        """`/call roles` and `callbot roles`, redacted already."""
        return self.recorder.redact(await self._roles(team))

    async def define_role(self, inv: Invocation, command: RoleCommand) -> Reply:
        """Roles are team-wide (a grant of one reaches whatever it will contain): admin on `*`."""
        decision = decide_management(
            await self.access.all_held(inv), [ANY_ACCOUNT], channel=inv.channel_id, now=self.now()
        )
        request: dict[str, Any] = {"name": command.name, "actions": list(command.actions)}
        if not decision.allowed:
            denial = PermissionDenied("role create", None, "Defining roles needs `admin` on `*`.")
            return await self.recorder.refuse(inv, denial, action="role", decision=decision, request=request)
        previous = await repo.save_role(self.db, inv.team, command.name, list(command.actions), inv.user_id, self.now())
        request["previous"] = list(previous) if previous is not None else None
        row = await self.recorder.record(
            inv, outcome=Outcome.SUCCEEDED, decision=decision, action="role", request=request, completed=True
        )
        verb = "Created" if previous is None else "Redefined"
        lines = [f"Actions: {_actions_text(command.actions)}."]
        if previous is not None:
            lines.append(f"Before: {_actions_text(previous)}. Every grant of `{command.name}` changes at once.")
        return Reply(Tone.SUCCESS, f"{verb} role `{command.name}`.", tuple(lines), audit_id=row.id)

    async def shell_grant(self, team: str, command: GrantCommand, os_user: str) -> Reply:
        """`callbot grant` from the shell: trusted (it can reach the database anyway), still audited."""

        inv = Invocation("cli", f"shell:{os_user}", _grant_text(command), user_name=os_user, team_id=team)
        try:
            _check_team_wide(command)
            expires_at = await self._check_grant(team, command)
        except InvalidInput as error:
            return self.recorder.redact(
                await self.recorder.refuse(inv, error, action="revoke" if command.revoke else "grant")
            )
        shell = Decision(True, "admin", ANY_ACCOUNT, note="trusted shell")
        return self.recorder.redact(await self._apply_grants(inv, command, shell, expires_at))

    async def shell_role(self, team: str, command: RoleCommand, os_user: str) -> Reply:
        """`callbot role create` from the shell: trusted like `callbot grant`, still audited."""

        text = f"role create {command.name} {','.join(command.actions)}"
        inv = Invocation("cli", f"shell:{os_user}", text, user_name=os_user, team_id=team)
        previous = await repo.save_role(self.db, team, command.name, list(command.actions), inv.user_id, self.now())
        request = {"name": command.name, "actions": list(command.actions), "previous": previous and list(previous)}
        shell = Decision(True, "admin", ANY_ACCOUNT, note="trusted shell")
        row = await self.recorder.record(
            inv, outcome=Outcome.SUCCEEDED, decision=shell, action="role", request=request, completed=True
        )
        verb = "Created" if previous is None else "Redefined"
        return Reply(Tone.SUCCESS, f"{verb} role `{command.name}`: {_actions_text(command.actions)}.", audit_id=row.id)

    async def perms_of(self, team: str, user_id: str | None, kind: str = "user") -> Reply:
        return self.recorder.redact(await self._describe_perms(team, user_id, kind))

    async def custom_role_names(self, team: str) -> tuple[str, ...]:
        return tuple(await repo.custom_roles(self.db, team))

    # -- the work --------------------------------------------------------------------------------

    async def _check_grant(self, team: str, command: GrantCommand) -> datetime | None:
        """Role names must exist; the expiry (from `for=` or `until=`) must be in the future; a
        grant held for approval (`needs_approval=yes`) only on accounts with an approvers_channel."""
        grammar.check_grantable(command.actions, tuple(await repo.custom_roles(self.db, team)))
        if command.needs_approval and not command.revoke:
            accounts = sorted(self.accounts.visible(team)) if ANY_ACCOUNT in command.accounts else command.accounts
            missing = [a for a in accounts if self.safety.policy_of(a).approvers_channel is None]
            if missing:
                raise InvalidInput(
                    "needs_approval=yes",
                    f"cannot be held for approval on account(s) {', '.join(f'`{a}`' for a in missing)}: "
                    "no `approvers_channel` is set there, so nobody could approve.",
                    "Set `approvers_channel` for the account in callbot.toml, or leave `needs_approval=` out.",
                )
        now = self.now()
        if command.duration is not None:
            return now + command.duration
        if command.until is not None and command.until <= now:
            raise InvalidInput(
                f"until={command.until.date()}", f"is not in the future (it is {when(now)} now).", "Give a later date."
            )
        return command.until

    async def _apply_grants(
        self, inv: Invocation, command: GrantCommand, decision: Decision, expires_at: datetime | None = None
    ) -> Reply:
        outcomes: dict[str, list[str]] = {"added": [], "renewed": [], "held": []}
        for action in command.actions:
            for account in command.accounts:
                label = f"{action} on {account}" + (f" in <#{command.channel}>" if command.channel else "")
                if command.revoke:
                    done = await repo.remove_grant(
                        self.db,
                        inv.team,
                        command.user_id,
                        action,
                        account,
                        kind=command.subject_kind,
                        channel=command.channel,
                    )
                    outcomes["added" if done else "held"].append(label)
                    continue
                result = await repo.add_grant(
                    self.db,
                    inv.team,
                    command.user_id,
                    action,
                    account,
                    inv.user_id,
                    kind=command.subject_kind,
                    channel=command.channel,
                    expires_at=expires_at,
                    needs_approval=command.needs_approval,
                )
                outcomes[result].append(label)
        changed = outcomes["added"] + outcomes["renewed"]
        row = await self.recorder.record(
            inv,
            outcome=Outcome.SUCCEEDED,
            decision=decision,
            action="revoke" if command.revoke else "grant",
            account=_one(command.accounts),
            request={
                "user": command.user_id,
                "subject_kind": command.subject_kind,
                "actions": list(command.actions),
                "accounts": list(command.accounts),
                "channel": command.channel,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "needs_approval": command.needs_approval,
                "changed": changed,
            },
            completed=True,
        )
        return Reply(Tone.SUCCESS, *_grant_wording(command, outcomes, expires_at), audit_id=row.id)

    def _check_accounts(self, team: str, accounts: tuple[str, ...]) -> None:
        visible = self.accounts.visible(team)
        for account in accounts:
            if account != ANY_ACCOUNT and account not in visible:
                names = sorted(visible)
                hint = (
                    grammar.suggest(account, names) or f"Use `*` or one of: {', '.join(names) or '(none configured)'}."
                )
                raise InvalidInput(f"on={account}", "is not a configured account.", hint)

    async def _describe_perms(self, team: str, subject: str | None, kind: str = "user") -> Reply:
        now = self.now()
        if subject is None:
            grants = with_roles(await repo.all_grants(self.db, team), await repo.custom_roles(self.db, team))
            every = tuple(f"{_subject(g)} {_grant_line(g, now)}" for g in grants)
            return Reply(Tone.INFO, "Every grant:", every or ("Nobody holds anything yet.",))
        if kind == GROUP:
            custom = await repo.custom_roles(self.db, team)
            grants = [g for g in with_roles(await repo.group_grants(self.db, team), custom) if g.user_id == subject]
            problems: list[str] = []
        else:
            grants, problems = await self.access.held(team, subject)
        who = group_mention(subject) if kind == GROUP else mention(subject)
        active = [_grant_line(g, now) for g in grants if not g.expired(now)]
        expired = [_grant_line(g, now) for g in grants if g.expired(now)]
        lines = [*active, *(["Expired (no longer count):", *expired] if expired else []), *problems]
        if not active:
            title = f"{who} may not do anything {'now' if expired else 'yet'} (deny by default)."
            lines.append("An admin can grant actions or a role: `/call grant @someone operator on=ACCOUNT`.")
            return Reply(Tone.INFO, title, tuple(lines))
        return Reply(Tone.INFO, f"{who} may:", tuple(lines))

    async def _roles(self, team: str) -> Reply:
        custom = await repo.custom_roles(self.db, team)
        lines: list[str] = [f"`{name}` (built in): {_actions_text(actions)}" for name, actions in BUILTIN_ROLES.items()]
        lines += [f"`{name}` (custom): {_actions_text(actions)}" for name, actions in custom.items()]
        lines.append("Grant one like an action: `/call grant @someone operator on=ACCOUNT`.")
        lines.append("Admins on `*` define more: `/call role create NAME ACTIONS` (again to redefine).")
        return Reply(Tone.INFO, "Roles:", tuple(lines))


def _freeze_wording(command: FreezeCommand, changed: list[str], unchanged: list[str]) -> tuple[str, tuple[str, ...]]:
    names = ", ".join(f"`{a}`" for a in changed)
    if command.lift:
        title = f"Unfrozen: {names}." if changed else "Nothing to unfreeze."
        rest = (f"Not frozen: {', '.join(unchanged)}.",) if unchanged else ()
        return title, rest
    title = (
        f"Frozen: {names}. Every call action there is refused until `/call unfreeze`."
        if changed
        else ("Already frozen: nothing changed.")
    )
    rest = (f"Already frozen (unchanged): {', '.join(unchanged)}.",) if unchanged else ()
    return title, (*rest, f"Reason: {command.reason}", "Holders of `break-glass` may still act, with a reason.")


def _grant_wording(
    command: GrantCommand, outcomes: dict[str, list[str]], expires_at: datetime | None
) -> tuple[str, tuple[str, ...]]:
    who = group_mention(command.user_id) if command.subject_kind == GROUP else mention(command.user_id)
    done, renewed, unchanged = outcomes["added"], outcomes["renewed"], outcomes["held"]
    if command.revoke:
        title = f"Revoked from {who}: {', '.join(done)}." if done else f"{who} held none of that."
        return title, ((f"Not held, nothing to revoke: {', '.join(unchanged)}.",) if done and unchanged else ())
    changed = done + renewed
    title = f"Granted to {who}: {', '.join(changed)}." if changed else f"{who} already had all of that."
    lines = [f"Until {when(expires_at)}." if expires_at else "No expiry."] if changed else []
    if changed and command.needs_approval:
        lines.append("What it allows is held for two-person approval (needs_approval).")
    if renewed:
        lines.append(f"Already held, expiry changed: {', '.join(renewed)}.")
    if changed and unchanged:
        lines.append(f"Already held: {', '.join(unchanged)}.")
    return title, tuple(lines)


def _grant_line(grant: Grant, now: datetime) -> str:
    """What, where, until when, and why (which grant), as `/call perms` lists it."""
    where = "all accounts" if grant.account == ANY_ACCOUNT else f"account `{grant.account}`"
    line = f"`{grant.action}`"
    if grant.is_role:
        line += f" ({_actions_text(sorted(grant.actions))})"
    line += f" on {where}"
    if grant.channel:
        line += f", only in <#{grant.channel}>"
    if grant.expires_at:
        line += f", expired {when(grant.expires_at)}" if grant.expired(now) else f", until {when(grant.expires_at)}"
    if grant.needs_approval:
        line += ", needs approval"
    why = f"grant #{grant.id}" + (f", via {group_mention(grant.user_id)}" if grant.subject_kind == GROUP else "")
    return f"{line} ({why})"


def _subject(grant: Grant) -> str:
    return group_mention(grant.user_id) if grant.subject_kind == GROUP else mention(grant.user_id)


def _actions_text(actions: Iterable[str]) -> str:
    names = list(actions)
    return ", ".join(names) if names else "nothing beyond help, their own perms and audit rows"


def _management_detail(command: GrantCommand, decision: Decision) -> str:
    detail = "Changing permissions needs `admin` on every account named" + (
        " (and on `*` to grant everywhere)." if ANY_ACCOUNT in command.accounts else "."
    )
    if decision.note:
        detail += (
            f" Your {decision.note}: a grant you give must be limited at least as much (same `in=` channel, "
            "expiring no later)."
        )
    return detail


def _grant_text(command: GrantCommand) -> str:
    verb = "revoke" if command.revoke else "grant"
    text = f"{verb} {command.user_id} {','.join(command.actions)} --on {','.join(command.accounts)}"
    if command.channel:
        text += f" --in {command.channel}"
    if command.duration:
        text += f" --for {command.duration}"
    if command.until:
        text += f" --until {command.until.isoformat()}"
    if command.needs_approval:
        text += " --needs-approval"
    return text


def _check_team_wide(command: GrantCommand) -> None:
    """`flow:manage` is about the team's saved flows, not one account: it is granted on `*` only."""
    if command.revoke or command.accounts == (ANY_ACCOUNT,):
        return
    for action in command.actions:
        if action in TEAM_WIDE_ACTIONS:
            raise InvalidInput(
                f"on={','.join(command.accounts)}",
                f"`{action}` is team-wide (saved flows are shared by every account), so it is granted on `*` only.",
                f"Grant it on its own, without `on=`: `/call grant {mention(command.user_id)} {action}`.",
            )


def _one(accounts: tuple[str, ...]) -> str | None:
    return accounts[0] if len(accounts) == 1 else None
