"""Who may do what, where, until when: pure decisions over a person's grants. Deny by default.

A grant gives a subject (a Slack user, or a Slack user group: every member) an action or a role
on an account (or `*`), optionally only from one channel (`in=`) and until a moment (`for=`,
`until=`). Roles are named sets of actions: built in (`viewer`, `operator`, `supervisor`,
`admin`, see `BUILTIN_ROLES`) or defined by admins (`/call role create`). A grant stores the role
*name*; it is expanded when a decision is made, so redefining a custom role applies at once.

Which grant decides (and is named in the audit row), among those that match the action, account,
channel and time: a grant naming the action (directly or through a role other than admin) before
`admin`; then one on this account before one on `*`; then a user's own grant before a group's;
then a channel-scoped grant before an unscoped one; then the oldest. Expired grants never match
(they stay listed as expired); a channel-scoped grant matches only commands typed in that channel
(never the shell, which has no channel).

`admin` implies every action, including managing grants; an admin's reach is the account of that
grant (`*` for all accounts). Nobody can hand out more than they hold: the admin grant used must
cover every account named, be usable from here, and, when it is itself limited to a channel or a
time, the new grant must be limited at least as much (same channel; expiring no later).

Saved flows (bot/service/flow_library.py) are one library shared by the whole team, not tied to an account:

- `flow:manage` (save, delete) is a team-wide right: it counts only when granted on `*`, and it
  can only be granted on `*` (so only an admin on `*` can hand it out). `admin` on `*` implies it;
  `admin` on one account does not, since a library edit reaches every account.
- Reading the library (list, show) needs `flow` or `flow:manage` (or `admin`) on any account.
- Applying a saved flow to a call is the plain `flow` action on that call's account, checked again
  when the confirmation button is clicked.

`break-glass` lets its holder act on an account frozen by `/call freeze` (with a reason; the audit
row is flagged). It is an emergency override of a deliberate stop, so `admin` does NOT imply it:
it must be granted by name (an admin can grant it, to themselves too, which leaves a `grant` row).
`approve` is reserved for two-person approval (not implemented yet); `supervisor` carries it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bot.domain.outcomes import Outcome

CALL_ACTIONS = ("hangup", "cancel", "redirect", "twiml", "flow")
FLOW_MANAGE = "flow:manage"
BREAK_GLASS = "break-glass"
APPROVE = "approve"
# Ending many calls at once (`/call hangup-all`, `/call batch`): a grant of its own, not implied
# by `hangup`, because one command reaches every live call of an account.
BULK = "bulk"
ALL_ACTIONS = (*CALL_ACTIONS, BULK, FLOW_MANAGE, "audit", APPROVE, BREAK_GLASS, "admin")
# Held only when granted by name: `admin` does not imply these.
NOT_IMPLIED_BY_ADMIN = (BREAK_GLASS,)
# Actions whose grants only mean something on `*` (they are not about one account).
TEAM_WIDE_ACTIONS = (FLOW_MANAGE,)
ANY_ACCOUNT = "*"
OUTCOMES = tuple(outcome.value for outcome in Outcome)
# `viewer` holds nothing beyond what everyone may do (help, their own perms and audit rows): a
# grant of it documents that someone is expected, and lists them in `/call perms`.
BUILTIN_ROLES: dict[str, tuple[str, ...]] = {
    "viewer": (),
    "operator": CALL_ACTIONS,
    "supervisor": (*CALL_ACTIONS, BULK, "audit", APPROVE),
    "admin": ("admin",),
}
USER, GROUP = "user", "group"


@dataclass(frozen=True)
class Grant:
    id: int | None
    user_id: str  # the subject: a Slack user id, or a user group id (`S…`) when subject_kind is "group"
    action: str  # an action or a role name
    account: str
    channel: str | None = None  # only commands typed in this channel
    expires_at: datetime | None = None
    subject_kind: str = USER
    needs_approval: bool = False  # what it allows is held for two-person approval
    # The actions a custom role stands for, filled in when grants are loaded (`with_roles`).
    role_actions: frozenset[str] | None = None

    @property
    def actions(self) -> frozenset[str]:
        if self.role_actions is not None:
            return self.role_actions
        if self.action in BUILTIN_ROLES:
            return frozenset(BUILTIN_ROLES[self.action])
        return frozenset({self.action}) if self.action in ALL_ACTIONS else frozenset()

    @property
    def is_role(self) -> bool:
        return self.action not in ALL_ACTIONS

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def describe(self) -> str:
        where = "all accounts" if self.account == ANY_ACCOUNT else f"account {self.account}"
        base = f"grant #{self.id}: {self.action} on {where}" if self.id else f"{self.action} on {where}"
        if self.channel:
            base += f" in <#{self.channel}>"
        if self.expires_at:
            base += f" until {when(self.expires_at)}"
        if self.subject_kind == GROUP:
            base += f" via {group_mention(self.user_id)}"
        if self.needs_approval:
            base += " (needs approval)"
        return base


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def group_mention(group_id: str) -> str:
    return f"<!subteam^{group_id}>"


def with_roles(grants: Iterable[Grant], custom: Mapping[str, Iterable[str]]) -> list[Grant]:
    """Expand custom role names to their current actions (an unknown role grants nothing)."""
    expanded = []
    for grant in grants:
        if grant.is_role and grant.action not in BUILTIN_ROLES:
            grant = replace(grant, role_actions=frozenset(custom.get(grant.action, ())))
        expanded.append(grant)
    return expanded


@dataclass(frozen=True)
class Decision:
    allowed: bool
    action: str
    account: str | None
    grant: Grant | None = None
    # What else the decision rests on, for the audit row: a policy rule that refused an action the
    # grant allowed, the break-glass grant used during a freeze, or why near-miss grants did not count.
    note: str | None = None

    @property
    def basis(self) -> str:
        base = self.grant.describe() if self.grant else "no matching grant"
        return f"{base}; {self.note}" if self.note else base


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _rank(grant: Grant, action: str, account: str | None) -> tuple[int, ...] | None:
    """Lower is more specific; None when the grant does not speak about this action and account."""
    on_account = account is not None and grant.account == account
    if not (on_account or grant.account == ANY_ACCOUNT):
        return None
    held = grant.actions
    if action in held:
        via_admin = 0
    elif "admin" in held and action not in NOT_IMPLIED_BY_ADMIN:
        via_admin = 1
    else:
        return None
    return (via_admin, 0 if on_account else 1, 0 if grant.subject_kind == USER else 1, 0 if grant.channel else 1)


def decide(
    grants: Iterable[Grant],
    action: str,
    account: str | None,
    *,
    channel: str | None = None,
    now: datetime | None = None,
) -> Decision:
    """Allowed when a valid grant gives this action (or admin) on this account (or `*`), from here.

    The most specific grant wins (module docstring), so the audit row names the grant that really
    applied. `account=None` asks about an action that is not tied to one account (e.g. reading the
    audit). A denial notes the grants that would have matched but for their channel or expiry.
    """
    moment = _now(now)
    ranked: list[tuple[tuple[int, ...], int, Grant]] = []
    misses: list[str] = []
    for grant in grants:
        rank = _rank(grant, action, account)
        if rank is None:
            continue
        if grant.expired(moment):
            misses.append(f"grant #{grant.id} ({grant.action}) expired at {when(grant.expires_at or moment)}")
        elif grant.channel and grant.channel != channel:
            misses.append(f"grant #{grant.id} ({grant.action}) allows it only in <#{grant.channel}>")
        else:
            ranked.append((rank, grant.id or 0, grant))
    if not ranked:
        return Decision(False, action, account, note="; ".join(misses) or None)
    ranked.sort(key=lambda item: item[:2])
    return Decision(True, action, account, ranked[0][2])


def usable(grants: Iterable[Grant], *, channel: str | None, now: datetime | None = None) -> list[Grant]:
    """The grants that count here and now: not expired, and not limited to another channel."""
    moment = _now(now)
    return [g for g in grants if not g.expired(moment) and (g.channel is None or g.channel == channel)]


@dataclass(frozen=True)
class Limits:
    """How far a new grant reaches: the channel it is limited to, and when it ends (None: never)."""

    channel: str | None = None
    expires_at: datetime | None = None


def covers(admin: Grant, wanted: Limits) -> bool:
    """Nobody can grant more than they hold: a limited admin grant hands out grants limited as much."""
    if admin.channel and wanted.channel != admin.channel:
        return False
    return not admin.expires_at or (wanted.expires_at is not None and wanted.expires_at <= admin.expires_at)


def decide_management(
    grants: Iterable[Grant],
    accounts: Iterable[str],
    *,
    channel: str | None = None,
    now: datetime | None = None,
    wanted: Limits | None = None,
) -> Decision:
    """Granting or revoking on these accounts needs a valid `admin` on each of them (or on `*`).

    Nobody can hand out more than they hold: `admin` scoped to one account manages that account
    only, granting on `*` needs `admin` on `*`, and with `wanted` (a new grant's limits) the admin
    grant must cover them (`covers`).
    """
    admins = [g for g in usable(grants, channel=channel, now=now) if "admin" in g.actions]
    if wanted is not None:
        too_narrow = [g for g in admins if not covers(g, wanted)]
        admins = [g for g in admins if covers(g, wanted)]
    else:
        too_narrow = []
    decision = Decision(False, "admin", None)
    for account in accounts:
        if account == ANY_ACCOUNT:
            match = next((g for g in admins if g.account == ANY_ACCOUNT), None)
            decision = Decision(match is not None, "admin", ANY_ACCOUNT, match)
        else:
            decision = decide(admins, "admin", account, channel=channel, now=now)
        if not decision.allowed:
            if too_narrow:
                note = ", ".join(f"#{g.id}" for g in too_narrow)
                return replace(decision, note=f"admin grant {note} is limited (channel or expiry) more than asked")
            return decision
    return decision


def decide_flow_manage(grants: Iterable[Grant]) -> Decision:
    """Saving or deleting a saved flow: `flow:manage` (or `admin`) on `*`."""
    return decide([g for g in grants if g.account == ANY_ACCOUNT], FLOW_MANAGE, ANY_ACCOUNT)


def decide_flow_read(grants: Iterable[Grant]) -> Decision:
    """Listing or showing saved flows: `flow:manage`, `flow` or `admin`, on any account.

    The decision names the grant that allowed it (the most specific first), like `decide`.
    """
    grants = list(grants)
    for action in (FLOW_MANAGE, "flow", "admin"):
        for grant in sorted(grants, key=lambda g: g.account == ANY_ACCOUNT):
            if action in grant.actions and (action != FLOW_MANAGE or grant.account == ANY_ACCOUNT):
                return Decision(True, "flow", grant.account, grant)
    return Decision(False, "flow", None)


def allowed_actions(grants: Iterable[Grant], account: str | None = None) -> set[str]:
    """What these grants allow (pass them through `usable` first to respect channel and expiry)."""
    grants = list(grants)
    if account is None:
        held = set().union(*(g.actions for g in grants)) if grants else set()
        implied = set(ALL_ACTIONS) - set(NOT_IMPLIED_BY_ADMIN) if "admin" in held else set()
        return held | implied
    return {action for action in ALL_ACTIONS if decide(grants, action, account).allowed}


def concerns(grant: Grant, action: str, account: str | None) -> bool:
    """Could this grant (were it valid here and now) allow `action` on `account`?"""
    return _rank(grant, action, account) is not None


def decide_any(
    grants: Iterable[Grant],
    actions: Iterable[str],
    account: str,
    *,
    channel: str | None = None,
    now: datetime | None = None,
) -> Decision:
    """Allowed when any of `actions` is allowed here (seeing live calls needs any call action on
    the account). The decision names the grant of the first action allowed; a denial keeps the
    near-misses of every action, so the refusal says why they did not count."""
    grants = list(grants)
    wanted = list(actions)
    notes: list[str] = []
    for action in wanted:
        decision = decide(grants, action, account, channel=channel, now=now)
        if decision.allowed:
            return decision
        if decision.note:
            notes.append(decision.note)
    return Decision(False, wanted[0], account, note="; ".join(dict.fromkeys(notes)) or None)
