"""CLI verbs: `pdbg access …`, `pdbg review …`, `pdbg budget`.

`--user` names the person acting (requester, approver, admin). In this embedded CLI
it is taken on trust, like everything else a process that can read the workspace
files does; token checks are the broker's job (`pdbg serve`). Separation of duties
(no self-approval, no closing your own break-glass review) is enforced either way.
"""

from __future__ import annotations

import click

USER_NOTE = " Not token-checked in the embedded CLI; the broker (`pdbg serve`) checks tokens."


def _emit(obj: dict, as_json: bool, human: str | None = None) -> None:
    from pdbg.cli.main import emit

    emit(obj, as_json, human)


def _ws(path: str):
    from pdbg.policy.workspace import Workspace

    return Workspace(path)


def _req_line(r: dict) -> str:
    return (f"{r['id']}  {r['status']:<8} {r['user']} → {r['dataset']} for {r['case']}  "
            f"ε={r['epsilon']:g} {r['hours']:g}h  \"{r['reason']}\"")


def _grant_line(g: dict) -> str:
    return (f"{g['id']}  {g['status']:<8} {g['user']} → {g['dataset']} for {g['case']}  ε={g['epsilon']:g} "
            f"δ={g['delta']:g} ({g['kind']}) until {g['expires']}")


def register(cli: click.Group) -> None:
    """Attach this module's commands to the top-level group."""

    @cli.group("access")
    def access_group():
        """Request, approve, deny, break glass, revoke and list access grants."""

    @access_group.command("request")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--user", required=True, help="Investigator requesting access." + USER_NOTE)
    @click.option("--case", "case", required=True, help="Open incident case.")
    @click.option("--dataset", required=True, help="Registered dataset name.")
    @click.option("--epsilon", type=float, required=True, help="ε wanted (at most the dataset cap).")
    @click.option("--hours", type=float, required=True, help="Duration (at most the policy's grant_max_hours).")
    @click.option("--reason", required=True, help="Why the investigation needs this data.")
    @click.option("--json", "as_json", is_flag=True, help="Print the request as one JSON object (with its id).")
    def access_request(workspace, user, case, dataset, epsilon, hours, reason, as_json):
        """Ask for a budget on a dataset for a case; someone else must approve it within 24 h."""
        from pdbg.governance import access

        r = access.request(_ws(workspace), user, case, dataset, epsilon, hours, reason).to_dict()
        _emit(r, as_json, f"requested {r['id']} (pending until {r['expires']})\n"
                          f"  approve: pdbg access approve {workspace} {r['id']} --user APPROVER")

    @access_group.command("approve")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("request_id", metavar="REQUEST")
    @click.option("--user", required=True, help="Approver (role approver or admin; never the requester)." + USER_NOTE)
    @click.option("--json", "as_json", is_flag=True, help="Print the grant as one JSON object.")
    def access_approve(workspace, request_id, user, as_json):
        """Approve a pending request, creating a grant and its budget account."""
        from pdbg.governance import access

        g = access.approve(_ws(workspace), request_id, user).to_dict()
        _emit(g, as_json, "approved: " + _grant_line(g))

    @access_group.command("deny")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("request_id", metavar="REQUEST")
    @click.option("--user", required=True, help="Approver (role approver or admin; never the requester)." + USER_NOTE)
    @click.option("--reason", required=True, help="Why (shown to the requester).")
    @click.option("--json", "as_json", is_flag=True, help="Print the request as one JSON object.")
    def access_deny(workspace, request_id, user, reason, as_json):
        """Deny a pending request with a reason."""
        from pdbg.governance import access

        r = access.deny(_ws(workspace), request_id, user, reason).to_dict()
        _emit(r, as_json, "denied: " + _req_line(r))

    @access_group.command("break-glass")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--user", required=True, help="Investigator breaking glass." + USER_NOTE)
    @click.option("--case", "case", required=True, help="Open incident case.")
    @click.option("--dataset", required=True, help="Registered dataset name.")
    @click.option("--reason", required=True, help="Mandatory: why approval cannot wait.")
    @click.option("--json", "as_json", is_flag=True, help="Print the grant as one JSON object.")
    def access_break_glass(workspace, user, case, dataset, reason, as_json):
        """Immediate small, short grant without approval; high-severity audit and a review item."""
        from pdbg.governance import access

        g = access.break_glass(_ws(workspace), user, case, dataset, reason).to_dict()
        _emit(g, as_json, "BREAK-GLASS: " + _grant_line(g) +
              f"\n  review item {g['review_id']} is open until an approver closes it")

    @access_group.command("revoke")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("grant_id", metavar="GRANT")
    @click.option("--user", required=True, help="Admin or approver revoking." + USER_NOTE)
    @click.option("--json", "as_json", is_flag=True, help="Print the grant as one JSON object.")
    def access_revoke(workspace, grant_id, user, as_json):
        """Revoke a grant; the next query under it is refused."""
        from pdbg.governance import access

        g = access.revoke(_ws(workspace), grant_id, user).to_dict()
        _emit(g, as_json, "revoked: " + _grant_line(g))

    @access_group.command("list")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--pending", is_flag=True, help="Only pending (undecided, unexpired) requests.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def access_list(workspace, pending, as_json):
        """List access requests and grants."""
        from pdbg.governance import access

        ws = _ws(workspace)
        reqs = [r.to_dict() for r in access.list_requests(ws, pending_only=pending)]
        grants = [] if pending else [g.to_dict() for g in access.list_grants(ws)]
        lines = ["requests:"] + (["  " + _req_line(r) for r in reqs] or ["  none"])
        if not pending:
            lines += ["grants:"] + (["  " + _grant_line(g) for g in grants] or ["  none"])
        _emit({"requests": reqs, "grants": grants}, as_json, "\n".join(lines))

    @cli.group("review")
    def review_group():
        """Review items (break-glass use) that an approver must close."""

    @review_group.command("list")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--open", "open_only", is_flag=True, help="Only open items.")
    @click.option("--case", "case", default=None)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def review_list(workspace, open_only, case, as_json):
        """List review items."""
        from pdbg.governance.reviews import list_reviews

        items = [r.to_dict() for r in list_reviews(_ws(workspace), open_only=open_only, case=case)]
        human = "\n".join(f"{r['id']}  {r['status']:<6} {r['kind']} by {r['subject_user']} on {r['case']}"
                          f"/{r['dataset']}  \"{r['reason']}\"" for r in items) or "no review items"
        _emit({"reviews": items}, as_json, human)

    @review_group.command("close")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("review_id", metavar="ID")
    @click.option("--user", required=True, help="Approver closing it (not the person reviewed)." + USER_NOTE)
    @click.option("--note", required=True, help="What was checked and concluded.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def review_close(workspace, review_id, user, note, as_json):
        """Close a review item with a note."""
        from pdbg.governance.reviews import close_review

        r = close_review(_ws(workspace), review_id, user, note).to_dict()
        _emit(r, as_json, f"closed {r['id']} by {r['closed_by']}")

    @cli.command("budget")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--user", default=None, help="Only this user's grants.")
    @click.option("--case", "case", default=None, help="Only this case's grants.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def budget(workspace, user, case, as_json):
        """Granted / spent / remaining ε per grant, and each dataset's global cap."""
        from pdbg.governance.access import budget_report

        rep = budget_report(_ws(workspace), user=user, case=case)
        lines = [f"{'grant':<14} {'user':<12} {'case':<10} {'dataset':<12} {'status':<8} "
                 f"{'granted':>9} {'spent':>9} {'remaining':>9}"]
        for g in rep["grants"]:
            lines.append(f"{g['grant']:<14} {g['user']:<12} {g['case']:<10} {g['dataset']:<12} {g['status']:<8} "
                         f"{g['granted_epsilon']:>9.4g} {g['spent_epsilon']:>9.4g} {g['remaining_epsilon']:>9.4g}")
        for d in rep["datasets"]:
            lines.append(f"dataset cap {d['dataset']}: granted {d['granted_epsilon']:.4g}, "
                         f"spent {d['spent_epsilon']:.4g}, remaining {d['remaining_epsilon']:.4g}")
        _emit(rep, as_json, "\n".join(lines) if rep["grants"] else "no grants")
