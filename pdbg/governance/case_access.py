"""The one decision on who may see a case's past releases: history, replay, oversight views.

The review found three different rules in three places: history accepted any grant ever
held, replay refused only when every grant was revoked, oversight opened a case to anyone
who once held a grant. So a revoked investigator kept reading, and an old grant reopened
releases made long after it ended. Every reader now asks :func:`case_access`:

* overseers (approvers, admins, auditors, the workspace's OS owner) see the whole case;
* an investigator sees, per dataset, every release of the case while they hold an active
  grant on it, and with only an expired grant the releases made while that grant was
  active (``[created, expires)``; created is the approval time) — the postmortem of their
  own work stays readable after the grant lapses;
* a revoked grant shows nothing: revocation ends history, replay, oversight views and (as
  ``access.active_grant`` already refuses) queries and cache hits, all at once;
* anyone else gets :class:`AccessDenied` with a hint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pdbg import clock
from pdbg.errors import AccessDenied
from pdbg.governance.access import list_grants
from pdbg.governance.principals import get_user, is_owner
from pdbg.policy.workspace import Workspace

OVERSEERS = ("approver", "admin", "auditor")


@dataclass(frozen=True)
class CaseAccess:
    """What ``user`` may see of ``case``; ``allows`` answers for one release record."""

    user: str
    case: str
    overseer: bool
    active: frozenset[str] = frozenset()                        # datasets with a live grant
    past: tuple[tuple[str, datetime, datetime], ...] = ()       # (dataset, from, until) of expired grants

    def allows(self, when: datetime | str | None, dataset: str | None = None) -> bool:
        """Whether a record made at ``when`` (on ``dataset``; None: any) is visible.

        A record without a time is visible only where every time is (overseer, active grant).
        """
        if self.overseer:
            return True
        if (dataset is None and self.active) or dataset in self.active:
            return True
        if when is None:
            return False
        ts = clock.parse_iso(when) if isinstance(when, str) else when
        return any(start <= ts < end for d, start, end in self.past if dataset is None or d == dataset)


def is_overseer(ws: Workspace, actor: str) -> bool:
    """The OS owner, or an active approver, admin or auditor."""
    if is_owner(actor):
        return True
    user = get_user(ws, actor)
    return bool(user and user.active and user.role in OVERSEERS)


def case_access(ws: Workspace, user: str, case: str, dataset: str | None = None) -> CaseAccess:
    """What ``user`` may see of ``case`` (on ``dataset`` only, when given), or AccessDenied saying why not."""
    if is_overseer(ws, user):
        return CaseAccess(user, case, overseer=True)
    u = get_user(ws, user)
    if u is None or not u.active:
        raise AccessDenied(f"{user!r} is not an active pdbg user", "Ask an admin to add or reactivate the user.")
    if u.role != "investigator":
        raise AccessDenied(f"{user!r} ({u.role}) may not read case {case!r}",
                           "Case records are for the case's investigators, approvers, admins and auditors.")
    on = f" on {dataset!r}" if dataset else ""
    grants = list_grants(ws, user=user, case=case, dataset=dataset)
    if not grants:
        raise AccessDenied(f"{user!r} has held no grant{on} for case {case!r}",
                           "Ask an approver or auditor for this case's records, or request access to the case.")
    live = [g for g in grants if g.revoked is None]
    if not live:
        raise AccessDenied(f"{user!r}'s grants{on} for case {case!r} were revoked",
                           "Revocation ends queries, history and replays of the case; ask an approver or "
                           "auditor for its records.")
    now = clock.now()
    return CaseAccess(user, case, overseer=False,
                      active=frozenset(g.dataset for g in live if g.status(now) == "active"),
                      past=tuple((g.dataset, g.created, g.expires) for g in live if g.status(now) == "expired"))
