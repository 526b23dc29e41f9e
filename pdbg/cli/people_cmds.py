"""CLI verbs: `pdbg user …` and `pdbg case …`.

Who acts: `--user NAME` names a pdbg user; without it the actor is the OS account
running the CLI (`os:<login>`), the workspace's data owner, who bootstraps the first
admin. In this embedded CLI `--user` is taken on trust (anyone who can run it can
read the workspace files anyway); token checks are the broker's job (`pdbg serve`).
"""

from __future__ import annotations

import click

ACTING_HELP = ("pdbg user acting (default: the OS account running pdbg, the data owner). "
               "Not token-checked in the embedded CLI; the broker checks tokens.")


def _emit(obj: dict, as_json: bool, human: str | None = None) -> None:
    from pdbg.cli.main import emit

    emit(obj, as_json, human)


def _ws(path: str):
    from pdbg.policy.workspace import Workspace

    return Workspace(path)


def _actor(user: str | None) -> str:
    from pdbg.governance.principals import os_actor

    return user or os_actor()


def _case_text(c: dict) -> str:
    lines = [f"{c['case']}  {c['title']}  [{c['status']}{', ' + c['severity'] if c['severity'] else ''}]",
             f"  opened        {c['opened']} by {c['opened_by']}"]
    for k in ("detected", "acknowledged", "contained", "resolved", "closed"):
        lines.append(f"  {k:<13} {c[k] or '-'}")
    return "\n".join(lines)


def register(cli: click.Group) -> None:
    """Attach this module's commands to the top-level group."""

    @cli.group("user")
    def user_group():
        """Add, list and deactivate pdbg users (roles: investigator, approver, admin, auditor)."""

    @user_group.command("add")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("name")
    @click.option("--role", required=True, type=click.Choice(["investigator", "approver", "admin", "auditor"]))
    @click.option("--user", "acting", default=None, help="Admin adding the user. " + ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object (includes the token).")
    def user_add(workspace, name, role, acting, as_json):
        """Add a user and print their access token ONCE (only its hash is stored)."""
        from pdbg.governance.principals import add_user

        token = add_user(_ws(workspace), _actor(acting), name, role)
        _emit({"user": name, "role": role, "token": token}, as_json,
              f"added {name} ({role})\ntoken (shown once, store it now): {token}")

    @user_group.command("list")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--user", "acting", default=None, help=ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def user_list(workspace, acting, as_json):
        """List users and roles (never tokens)."""
        from pdbg.governance.principals import check, list_users

        ws = _ws(workspace)
        check(ws, _actor(acting), "user.list")
        users = [u.to_dict() for u in list_users(ws)]
        human = "\n".join(f"{u['user']:<20} {u['role']:<13} {'active' if u['active'] else 'deactivated'}"
                          for u in users) or "no users"
        _emit({"users": users}, as_json, human)

    @user_group.command("deactivate")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("name")
    @click.option("--user", "acting", default=None, help="Admin deactivating. " + ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def user_deactivate(workspace, name, acting, as_json):
        """Deactivate a user: their token and grants stop working immediately."""
        from pdbg.governance.principals import deactivate

        u = deactivate(_ws(workspace), _actor(acting), name)
        _emit(u.to_dict(), as_json, f"deactivated {name}")

    @user_group.command("set-role")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("name")
    @click.option("--role", required=True, type=click.Choice(["investigator", "approver", "admin", "auditor"]))
    @click.option("--user", "acting", default=None, help="Admin changing the role. " + ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def user_set_role(workspace, name, role, acting, as_json):
        """Change a user's role (audited)."""
        from pdbg.governance.principals import set_role

        u = set_role(_ws(workspace), _actor(acting), name, role)
        _emit(u.to_dict(), as_json, f"{name} is now {role}")

    @cli.group("case")
    def case_group():
        """Incidents: open, update milestones (detected/acknowledged/contained/resolved), show."""

    @case_group.command("open")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("case")
    @click.option("--title", required=True, help="What the incident is.")
    @click.option("--severity", type=click.Choice(["SEV1", "SEV2", "SEV3", "SEV4"], case_sensitive=False), default=None)
    @click.option("--detected", default=None, help="ISO-8601 time (UTC if no offset) or `now`.")
    @click.option("--user", "acting", default=None, help=ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def case_open(workspace, case, title, severity, detected, acting, as_json):
        """Open an incident case; access is requested and granted per case."""
        from pdbg.governance.cases import open_case

        c = open_case(_ws(workspace), _actor(acting), case, title, severity=severity, detected=detected).to_dict()
        _emit(c, as_json, _case_text(c))

    @case_group.command("update")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("case")
    @click.option("--detected", default=None, help="ISO-8601 (UTC if no offset) or `now`.")
    @click.option("--acknowledged", default=None, help="ISO-8601 (UTC if no offset) or `now`.")
    @click.option("--contained", default=None, help="ISO-8601 (UTC if no offset) or `now`.")
    @click.option("--resolved", default=None, help="ISO-8601 (UTC if no offset) or `now`.")
    @click.option("--title", default=None)
    @click.option("--severity", type=click.Choice(["SEV1", "SEV2", "SEV3", "SEV4"], case_sensitive=False), default=None)
    @click.option("--close", is_flag=True, help="Close the case: no new access requests or break-glass.")
    @click.option("--user", "acting", default=None, help=ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def case_update(workspace, case, detected, acknowledged, contained, resolved, title, severity, close,
                    acting, as_json):
        """Record milestones (postmortems compute TTD/TTA/TTC from them), retitle, or close."""
        from pdbg.governance.cases import update_case

        c = update_case(_ws(workspace), _actor(acting), case, title=title, severity=severity, close=close,
                        detected=detected, acknowledged=acknowledged, contained=contained,
                        resolved=resolved).to_dict()
        _emit(c, as_json, _case_text(c))

    @case_group.group("member")
    def member_group():
        """People attached to a case: only they may break glass on it."""

    @member_group.command("add")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("case")
    @click.argument("member", metavar="USER")
    @click.option("--user", "acting", default=None, help="The case's opener, an approver or an admin. " + ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def member_add(workspace, case, member, acting, as_json):
        """Attach an investigator to CASE (never yourself); members may break glass on it."""
        from pdbg.governance.members import add_member

        m = add_member(_ws(workspace), _actor(acting), case, member)
        _emit(m, as_json, f"{member} is a member of {case}")

    @member_group.command("remove")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("case")
    @click.argument("member", metavar="USER")
    @click.option("--user", "acting", default=None, help="The case's opener, an approver or an admin. " + ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def member_remove(workspace, case, member, acting, as_json):
        """Detach a member from CASE (their grants stay; revoke them separately)."""
        from pdbg.governance.members import remove_member

        remove_member(_ws(workspace), _actor(acting), case, member)
        _emit({"case": case, "user": member, "removed": True}, as_json, f"{member} is no longer a member of {case}")

    @member_group.command("list")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("case")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def member_list(workspace, case, as_json):
        """Added members and holders of an approved, unrevoked grant on CASE."""
        from pdbg.governance.members import list_members

        ms = list_members(_ws(workspace), case)
        human = "\n".join(f"{m['user']:<20} {m['source']:<7} since {m['added']} ({m['added_by']})" for m in ms)
        _emit({"case": case, "members": ms}, as_json, human or "no members")

    @case_group.command("show")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("case")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def case_show(workspace, case, as_json):
        """Show a case and its milestones (UTC)."""
        from pdbg.governance.cases import get_case

        c = get_case(_ws(workspace), case).to_dict()
        _emit(c, as_json, _case_text(c))

    @case_group.command("list")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def case_list(workspace, as_json):
        """List cases."""
        from pdbg.governance.cases import list_cases

        cases = [c.to_dict() for c in list_cases(_ws(workspace))]
        human = "\n".join(f"{c['case']:<16} {c['status']:<7} {c['title']}" for c in cases) or "no cases"
        _emit({"cases": cases}, as_json, human)
