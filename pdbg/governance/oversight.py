"""Read-only oversight views for approvers, auditors and postmortems: one interface, local or remote.

`Oversight(ws, actor)` answers from the workspace; `pdbg.server.client.RemoteOversight`
answers the same calls through the broker, so the governance and postmortem notebooks
run unchanged against either. Every view returns plain JSON-able data and is gated by role:
approvers, admins, auditors and the workspace's OS owner see everything; an investigator
sees a case (record, privacy impact, own grants) only while ``case_access`` lets them:
an active or expired grant on it that was not revoked (revocation ends these views too).
Nothing here reads private data.
"""

from __future__ import annotations

from pdbg.errors import AccessDenied
from pdbg.governance import access, cases, principals, reviews
from pdbg.governance.case_access import OVERSEERS, case_access, is_overseer
from pdbg.policy.workspace import Workspace

__all__ = ["OVERSEERS", "Oversight"]


class Oversight:
    def __init__(self, ws: Workspace | str, actor: str | None = None) -> None:
        self.ws = ws if isinstance(ws, Workspace) else Workspace(ws)
        self.actor = actor or principals.os_actor()

    def __repr__(self) -> str:
        return f"Oversight(workspace={str(self.ws.root)!r}, actor={self.actor!r})"

    # -- gates ---------------------------------------------------------------
    def _overseer(self) -> bool:
        return is_overseer(self.ws, self.actor)

    def _require_overseer(self, what: str) -> None:
        if not self._overseer():
            raise AccessDenied(f"{self.actor!r} may not read {what}", "This view is for approvers, admins and auditors.")

    def _require_case(self, case: str) -> None:
        case_access(self.ws, self.actor, case)

    # -- views ---------------------------------------------------------------
    def case(self, case: str) -> dict:
        self._require_case(case)
        return cases.get_case(self.ws, case).to_dict()

    def grants(self, case: str | None = None) -> list[dict]:
        if case is not None and not self._overseer():
            self._require_case(case)
            return [g.to_dict() for g in access.list_grants(self.ws, user=self.actor, case=case)]
        self._require_overseer("all grants")
        return [g.to_dict() for g in access.list_grants(self.ws, case=case)]

    def requests(self, pending_only: bool = False) -> list[dict]:
        self._require_overseer("access requests")
        return [r.to_dict() for r in access.list_requests(self.ws, pending_only=pending_only)]

    def budgets(self, case: str | None = None) -> dict:
        self._require_overseer("budgets")
        return access.budget_report(self.ws, case=case)

    def reviews(self, open_only: bool = True) -> list[dict]:
        self._require_overseer("break-glass reviews")
        return [r.to_dict() for r in reviews.list_reviews(self.ws, open_only=open_only)]

    def verify(self) -> dict:
        from pdbg.ledger import audit

        self._require_overseer("the audit log")
        return audit.verify(self.ws).to_dict()

    def privacy_impact(self, case: str) -> dict:
        from pdbg.governance.impact import privacy_impact

        self._require_case(case)
        return privacy_impact(self.ws, case)
