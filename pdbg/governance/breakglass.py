"""The limits on break-glass: who may break glass on a case, how often, how many at once.

Break-glass trades the approver for speed, so without limits it is a self-service grant:
the review broke glass on cases it had nothing to do with, stacked grants, and renewed one
every four hours. The rules, each decided here and enforced by ``access.break_glass``:

* only a user attached to the case (``members.is_attached``: an added member, or the
  holder of an approved, unrevoked grant on it);
* at most one active break-glass grant per user and dataset, whatever the case;
* at most ``break_glass_per_30d`` (policy; default ``BREAK_GLASS_PER_30D``) break-glass
  grants per user and dataset in any 30 days, revoked ones included (they were used).

:func:`refusal` reads on the caller's connection so that ``access.break_glass`` can decide
again inside its write transaction, where two concurrent attempts are serialized.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pdbg import clock
from pdbg.governance.members import is_attached

WINDOW = timedelta(days=30)


def refusal(conn, user: str, case: str, dataset: str, policy, now: datetime) -> tuple[str, str] | None:
    """``(message, hint)`` saying why ``user`` may not break glass now, or None if they may."""
    limit = policy.break_glass_limit
    if limit == 0:
        return (f"break-glass is turned off for dataset {dataset!r} (break_glass_per_30d: 0)",
                "Request access with `pdbg access request` and ask an approver.")
    if not is_attached(conn, user, case):
        return (f"{user!r} is not a member of case {case!r}; break-glass is for people attached to the case",
                f"Ask the case's opener, an approver or an admin to run "
                f"`pdbg case member add WS {case} {user}`, or request access.")
    active = conn.execute(
        "SELECT id, case_id, expires FROM gov_grants WHERE user = ? AND dataset = ? AND kind = 'break_glass' "
        "AND revoked IS NULL AND expires > ? ORDER BY expires LIMIT 1", (user, dataset, clock.iso(now))).fetchone()
    if active is not None:
        return (f"{user!r} already holds an active break-glass grant {active['id']} on {dataset!r} "
                f"(case {active['case_id']!r}, until {active['expires']})",
                "Use that grant, or request access with `pdbg access request` for more.")
    used = conn.execute(
        "SELECT COUNT(*) AS n, MIN(created) AS oldest FROM gov_grants WHERE user = ? AND dataset = ? "
        "AND kind = 'break_glass' AND created > ?", (user, dataset, clock.iso(now - WINDOW))).fetchone()
    if used["n"] >= limit:
        again = clock.iso(clock.parse_iso(used["oldest"]) + WINDOW)
        return (f"{user!r} broke glass {used['n']} times on {dataset!r} in the last 30 days "
                f"(the policy allows {limit})",
                f"Request access with `pdbg access request`; break-glass is possible again after {again}.")
    return None
