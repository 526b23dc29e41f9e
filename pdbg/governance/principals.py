"""People, roles, tokens, and the one table that says who may do what.

Decisions follow the actor + action + resource model: :func:`authorize` answers
"may this actor do this action on this resource?" with a :class:`Decision` that
carries the reason, and the reason is what an :class:`AccessDenied` repeats.
Every rule lives in :data:`PERMISSIONS` and :data:`SEPARATION_OF_DUTIES`, so the
whole access model can be read (and reviewed) in one screen.

Actors are either pdbg users (by name) or the **data owner**: the OS account
running the CLI on the workspace directory, written ``os:<login>``. That account
can read every file in the workspace anyway, so pdbg does not pretend to restrict
it: it may bootstrap the first admin, manage users, open cases and run retention.
It can never request, approve or break glass: those need a named pdbg user, so
that separation of duties is between people pdbg knows. In the embedded mode the
``os:`` actor is taken on trust; the broker (``pdbg serve``) must never accept it
from a client.

Tokens are 256-bit random strings shown once at creation; only their SHA-256 is
stored. A salted slow hash buys nothing for a full-entropy random secret (it is
not guessable), and a plain hash keeps authentication cheap per request.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from pdbg import clock
from pdbg.errors import AccessDenied, PdbgError
from pdbg.governance.init import gov_db
from pdbg.ledger.audit import AuditLog
from pdbg.ledger.state import write_tx
from pdbg.policy.workspace import Workspace

ROLES = ("investigator", "approver", "admin", "auditor")
OWNER = "owner"          # pseudo-role of the ``os:<login>`` actor (data owner)
TOKEN_PREFIX = "pdbg_"
NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")

# action -> roles allowed to perform it. Resource-specific rules (self-approval)
# are in SEPARATION_OF_DUTIES; grant checks for queries are in access.active_grant.
PERMISSIONS: dict[str, frozenset[str]] = {
    "user.add": frozenset({"admin", OWNER}),
    "user.deactivate": frozenset({"admin", OWNER}),
    "user.set_role": frozenset({"admin", OWNER}),
    "user.list": frozenset({"admin", "approver", "auditor", OWNER}),
    "case.open": frozenset({"investigator", "approver", "admin", OWNER}),
    "case.update": frozenset({"investigator", "approver", "admin", OWNER}),
    "case.read": frozenset({*ROLES, OWNER}),
    "access.request": frozenset({"investigator"}),
    "access.approve": frozenset({"approver", "admin"}),
    "access.deny": frozenset({"approver", "admin"}),
    "access.break_glass": frozenset({"investigator"}),
    "access.revoke": frozenset({"approver", "admin"}),
    "access.list": frozenset({*ROLES, OWNER}),
    "review.list": frozenset({"approver", "admin", "auditor", OWNER}),
    "review.close": frozenset({"approver", "admin"}),
    "budget.read": frozenset({*ROLES, OWNER}),
    "query.run": frozenset({"investigator"}),
    "dataset.add": frozenset({"admin", OWNER}),
    "data.ingest": frozenset({"admin", OWNER}),
    "retention.purge": frozenset({"admin", OWNER}),
    "audit.read": frozenset({"auditor", "admin", OWNER}),
}

# Actions where the actor must not be the person the resource is about
# (the requester of a request, the user who broke glass). Roles do not exempt anyone.
SEPARATION_OF_DUTIES = frozenset({"access.approve", "access.deny", "review.close"})

# Actions where the actor must also not be whoever created the subject's account or issued
# its token: an admin who mints an investigator holds its credentials at that moment, so
# approving its requests (or closing its break-glass reviews) would be one person in two
# roles. Denying is left out on purpose: a denial never grants anything.
CREATOR_CONFLICT = frozenset({"access.approve", "review.close"})


@dataclass(frozen=True)
class User:
    name: str
    role: str
    active: bool
    created: str
    created_by: str | None

    def to_dict(self) -> dict:
        return {"user": self.name, "role": self.role, "active": self.active,
                "created": self.created, "created_by": self.created_by}


@dataclass(frozen=True)
class Decision:
    """The answer to actor + action + resource, with the reason either way."""

    allowed: bool
    actor: str
    action: str
    resource: str
    reason: str
    user: User | None = None


def os_actor() -> str:
    """The data owner's actor string: ``os:<login>`` of the process running pdbg."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        login = "unknown"
    return f"os:{login}"


def is_owner(actor: str) -> bool:
    return actor.startswith("os:")


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _row_to_user(row) -> User:
    created_by = row["created_by"] if "created_by" in row.keys() else None    # unknown in older workspaces
    return User(row["name"], row["role"], bool(row["active"]), row["created"], created_by)


def get_user(ws: Workspace, name: str) -> User | None:
    with gov_db(ws) as conn:
        row = conn.execute("SELECT * FROM gov_users WHERE name = ?", (name,)).fetchone()
    return _row_to_user(row) if row else None


def issuers(ws: Workspace, name: str) -> frozenset[str]:
    """Who created ``name``'s account or issued its token (empty when unknown).

    Tokens are issued only by :func:`add_user`, so the creator (``created_by``) is the
    issuer; a verb that reissues tokens must record its issuer and add it here. A column
    an older workspace lacks, or an empty value, means unknown: nobody is excluded by it.
    """
    with gov_db(ws) as conn:
        row = conn.execute("SELECT * FROM gov_users WHERE name = ?", (name,)).fetchone()
    if row is None:
        return frozenset()
    return frozenset({row["created_by"]} if "created_by" in row.keys() and row["created_by"] else ())


def list_users(ws: Workspace) -> list[User]:
    with gov_db(ws) as conn:
        rows = conn.execute("SELECT * FROM gov_users ORDER BY name").fetchall()
    return [_row_to_user(r) for r in rows]


def authorize(ws: Workspace, actor: str, action: str, resource: str = "workspace",
              *, subject: str | None = None) -> Decision:
    """Decide whether ``actor`` may do ``action`` on ``resource``; never raises for a refusal.

    ``subject`` is the user the resource belongs to (a request's requester, the
    user who broke glass); for actions in :data:`SEPARATION_OF_DUTIES` it must
    differ from the actor, whatever the actor's role.
    """
    allowed_roles = PERMISSIONS.get(action)
    if allowed_roles is None:
        return Decision(False, actor, action, resource, f"unknown action {action!r}")
    if is_owner(actor):
        if OWNER in allowed_roles:
            return Decision(True, actor, action, resource, "the OS account running pdbg owns the workspace")
        return Decision(False, actor, action, resource,
                        f"{action} needs a named pdbg user with role {' or '.join(sorted(allowed_roles))}; "
                        "pass --user NAME")
    user = get_user(ws, actor)
    if user is None:
        return Decision(False, actor, action, resource, f"no pdbg user named {actor!r}")
    if not user.active:
        return Decision(False, actor, action, resource, f"user {actor!r} is deactivated", user)
    if user.role not in allowed_roles:
        need = " or ".join(sorted(r for r in allowed_roles if r != OWNER))
        return Decision(False, actor, action, resource,
                        f"{action} on {resource} needs role {need}; {actor!r} is {user.role}", user)
    if action in SEPARATION_OF_DUTIES and subject is not None and subject == actor:
        return Decision(False, actor, action, resource,
                        f"{actor!r} may not {action.split('.')[1]} {resource}: it is their own "
                        "(separation of duties applies to every role, admins included)", user)
    if action in CREATOR_CONFLICT and subject is not None and actor in issuers(ws, subject):
        return Decision(False, actor, action, resource,
                        f"{actor!r} may not {action.split('.')[1]} {resource}: they created {subject!r}'s account "
                        "or issued its token (separation of duties applies to every role, admins included)", user)
    return Decision(True, actor, action, resource, f"{actor!r} has role {user.role}", user)


def check(ws: Workspace, actor: str, action: str, resource: str = "workspace",
          *, subject: str | None = None, audit_refusal: bool = False) -> Decision:
    """:func:`authorize`, raising :class:`AccessDenied` with the decision's reason when refused.

    With ``audit_refusal`` a refused attempt is itself recorded (``authz.denied``,
    severity warning): attempts at self-approval are exactly what an auditor wants to see.
    """
    decision = authorize(ws, actor, action, resource, subject=subject)
    if not decision.allowed:
        if audit_refusal:
            AuditLog(ws).append(actor, "authz.denied", severity="warning",
                                attempted=action, resource=resource, reason=decision.reason)
        raise AccessDenied(decision.reason, _hint_for(action))
    return decision


def _hint_for(action: str) -> str:
    if action in ("access.approve", "access.deny", "review.close"):
        return ("Ask a different person with the approver role, who neither made the request nor created "
                "the requester's account, to do this.")
    if action in ("user.add", "user.deactivate", "user.set_role"):
        return "Run this as the workspace's OS owner or pass --user with an admin."
    return "Check the user's role with `pdbg user list WS`."


def require_role(ws: Workspace, name: str, *roles: str) -> User:
    """The active user ``name`` if their role is one of ``roles``; else AccessDenied saying why."""
    user = get_user(ws, name)
    if user is None:
        raise AccessDenied(f"no pdbg user named {name!r}", "Create the user with `pdbg user add WS NAME --role R`.")
    if not user.active:
        raise AccessDenied(f"user {name!r} is deactivated", "Ask an admin to add an active user.")
    if roles and user.role not in roles:
        raise AccessDenied(f"{name!r} has role {user.role}; this needs {' or '.join(roles)}",
                           "Ask an admin for a user with the needed role.")
    return user


def _validate_name(name: str) -> None:
    if not NAME_RE.match(name or ""):
        raise PdbgError(f"user name {name!r} is not allowed",
                        "Use 1-63 characters: lowercase letters, digits, '_', '.', '-', starting with a letter.")


def _validate_role(role: str) -> None:
    if role not in ROLES:
        raise PdbgError(f"unknown role {role!r}", f"Use one of: {', '.join(ROLES)}.")


def add_user(ws: Workspace, actor: str, name: str, role: str) -> str:
    """Create a user and return their token. The token is shown once and stored only as a hash.

    The actor must be an admin or the data owner (``os:<login>``); the owner is how
    the first admin comes into existence.
    """
    _validate_name(name)
    _validate_role(role)
    check(ws, actor, "user.add", f"user {name}", audit_refusal=True)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with gov_db(ws) as conn, write_tx(conn):
        if conn.execute("SELECT 1 FROM gov_users WHERE name = ?", (name,)).fetchone():
            raise PdbgError(f"user {name!r} already exists",
                            "Pick another name; names are never reused so the audit trail stays unambiguous.")
        conn.execute(
            "INSERT INTO gov_users (name, role, token_hash, active, created, created_by) VALUES (?, ?, ?, 1, ?, ?)",
            (name, role, _hash_token(token), clock.iso(), actor),
        )
        AuditLog(ws).append(actor, "user.add", user=name, role=role)
    return token


def authenticate(ws: Workspace, name: str, token: str) -> User:
    """The active user whose stored hash matches ``token``; one generic refusal otherwise.

    The message does not say whether the name or the token was wrong.
    """
    user_row = None
    with gov_db(ws) as conn:
        user_row = conn.execute("SELECT * FROM gov_users WHERE name = ?", (name,)).fetchone()
    stored = user_row["token_hash"] if user_row else "0" * 64
    ok = hmac.compare_digest(_hash_token(token or ""), stored)
    if not ok or user_row is None or not user_row["active"]:
        raise AccessDenied(f"authentication failed for user {name!r}",
                           "Check the user name and token (tokens are shown once by `pdbg user add`).")
    return _row_to_user(user_row)


def deactivate(ws: Workspace, actor: str, name: str) -> User:
    """Deactivate a user: their token stops working and they can no longer act or query.

    Their grants are left in place for the record but :func:`access.active_grant`
    refuses inactive users, so nothing more is released to them.
    """
    check(ws, actor, "user.deactivate", f"user {name}", audit_refusal=True)
    with gov_db(ws) as conn, write_tx(conn):
        row = conn.execute("SELECT * FROM gov_users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise PdbgError(f"no pdbg user named {name!r}", "List users with `pdbg user list WS`.")
        conn.execute("UPDATE gov_users SET active = 0, deactivated = ? WHERE name = ?", (clock.iso(), name))
        AuditLog(ws).append(actor, "user.deactivate", user=name)
    return get_user(ws, name)


def set_role(ws: Workspace, actor: str, name: str, role: str) -> User:
    """Change a user's role (audited). Never grants a way around separation of duties."""
    _validate_role(role)
    check(ws, actor, "user.set_role", f"user {name}", audit_refusal=True)
    with gov_db(ws) as conn, write_tx(conn):
        row = conn.execute("SELECT role FROM gov_users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise PdbgError(f"no pdbg user named {name!r}", "List users with `pdbg user list WS`.")
        conn.execute("UPDATE gov_users SET role = ? WHERE name = ?", (role, name))
        AuditLog(ws).append(actor, "user.set_role", user=name, role=role, previous_role=row["role"])
    return get_user(ws, name)


# -- failed authentications: audited, and throttled per (claimed user, client address) ------------

AUTH_WINDOW_S = 60.0


class FailedAuthLimiter:
    """Counts failed authentications per (claimed user, client address) in fixed windows.

    * **audit** (``auth.failed``, severity warning, with the claimed user name when it is a
      valid user name, never the token): at most ``audit_per_key`` records per key and window,
      then one ``auth.throttled`` record for that key; the next record after the window says
      how many went unrecorded (``unrecorded_before``). Over all keys together at most
      ``audit_total`` records per window, then one ``auth.throttled`` record with
      ``scope: all`` — rotating names or addresses cannot flood the log either.
    * **rate limit**: after ``max_failures`` failures of a key in a window, every request of
      that key is answered 429 (``Retry-After``) until the window ends, whatever its token,
      so the answer says nothing about whether a guessed token was right. Keyed by address
      too, so an attacker elsewhere cannot lock a user out (a lock-out lasts one window at most).

    In-memory and per process (the broker is one process); at most ``max_keys`` keys, the
    oldest forgotten first. Thread-safe. ``clock`` is monotonic seconds (tests pass their own).
    """

    def __init__(self, *, max_failures: int = 10, window_s: float = AUTH_WINDOW_S, audit_per_key: int = 5,
                 audit_total: int = 100, max_keys: int = 10_000, clock=None) -> None:
        import threading
        import time

        self.max_failures, self.window_s = max_failures, window_s
        self.audit_per_key, self.audit_total, self.max_keys = audit_per_key, audit_total, max_keys
        self.clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._keys: dict[tuple, dict] = {}
        self._total = {"start": float("-inf"), "audited": 0, "throttled": False, "unrecorded": 0}

    def _state(self, key: tuple, now: float) -> dict:
        st = self._keys.get(key)
        if st is None or now - st["start"] >= self.window_s:
            carried = (st["unrecorded"] if st else 0)
            st = {"start": now, "failures": 0, "audited": 0, "throttled": False, "unrecorded": 0,
                  "carried": carried}
            self._keys.pop(key, None)
            self._keys[key] = st
            while len(self._keys) > self.max_keys:
                self._keys.pop(next(iter(self._keys)))
        return st

    def retry_after(self, user: str | None, source: str | None) -> float | None:
        """Seconds until ``(user, source)`` may try again, or None when it is not limited."""
        now = self.clock()
        with self._lock:
            st = self._keys.get((user, source))
            if st is None or now - st["start"] >= self.window_s or st["failures"] < self.max_failures:
                return None
            return max(1.0, st["start"] + self.window_s - now)

    def failure(self, user: str | None, source: str | None) -> list[tuple[str, dict]]:
        """Count one failure; return the audit records to write, as (action, fields)."""
        now = self.clock()
        out: list[tuple[str, dict]] = []
        with self._lock:
            st = self._state((user, source), now)
            st["failures"] += 1
            tot = self._total
            if now - tot["start"] >= self.window_s:
                if tot["unrecorded"]:
                    out.append(("auth.throttled", {"scope": "all", "unrecorded": tot["unrecorded"],
                                                   "window_s": self.window_s, "ended": True}))
                tot.update(start=now, audited=0, throttled=False, unrecorded=0)
            if st["audited"] < self.audit_per_key and tot["audited"] < self.audit_total:
                fields = {"user": user, "source": source, "failures_in_window": st["failures"]}
                if st["carried"]:
                    fields["unrecorded_before"], st["carried"] = st["carried"], 0
                out.append(("auth.failed", fields))
                st["audited"] += 1
                tot["audited"] += 1
            elif st["audited"] >= self.audit_per_key:
                st["unrecorded"] += 1
                if not st["throttled"] and tot["audited"] < self.audit_total:
                    st["throttled"] = True
                    tot["audited"] += 1
                    out.append(("auth.throttled", {"scope": "user", "user": user, "source": source,
                                                   "window_s": self.window_s,
                                                   "note": "further failures in this window are counted, not recorded"}))
            else:
                st["unrecorded"] += 1
                tot["unrecorded"] += 1
                if not tot["throttled"]:
                    tot["throttled"] = True
                    out.append(("auth.throttled", {"scope": "all", "window_s": self.window_s,
                                                   "note": "too many failed authentications; counting, not recording"}))
        return out


def claimed_name(name: str | None) -> str | None:
    """The claimed user name as it may be recorded: a valid name that does not look like a token.

    Anything else (empty, malformed, a token pasted into the name header) is recorded as None.
    """
    if not name or not NAME_RE.match(name) or name.startswith(TOKEN_PREFIX):
        return None
    return name


def audit_failed_auth(ws: Workspace, limiter: FailedAuthLimiter, name: str | None, source: str | None,
                      reason: str) -> None:
    """Record one failed authentication through ``limiter`` (which may drop or summarize it).

    ``reason`` is one of a few fixed words (``missing-credentials``, ``malformed-name``,
    ``owner-over-http``, ``unknown-user``, ``inactive-user``, ``wrong-token``); the token
    never reaches this function. A failing audit append is raised (callers decide).
    """
    user = claimed_name(name)
    records = limiter.failure(user, source)
    if not records:
        return
    log = AuditLog(ws)
    for action, fields in records:
        if action == "auth.failed":
            fields = {**fields, "reason": reason}
        log.append("anonymous", action, severity="warning", **fields)


def failure_reason(ws: Workspace, name: str | None, has_token: bool) -> str:
    """Which fixed reason an authentication failed for (for the audit record only, never the client)."""
    if not name or not has_token:
        return "missing-credentials"
    if is_owner(name):
        return "owner-over-http"
    if not NAME_RE.match(name):
        return "malformed-name"
    user = get_user(ws, name)
    if user is None:
        return "unknown-user"
    if not user.active:
        return "inactive-user"
    return "wrong-token"


def read_token(token_file: str | None) -> str | None:
    """The token from ``token_file`` (refused unless only its owner can read it), else $PDBG_TOKEN.

    Never from the command line: argv is visible to every user of the machine (``ps``), and a
    token in a notebook cell is saved with the notebook. Shared by the CLI and ``%pdbg connect``.
    """
    import os
    import stat

    from pdbg.errors import AccessDenied

    if token_file is None:
        return os.environ.get("PDBG_TOKEN") or None
    try:
        st = os.stat(token_file)
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise AccessDenied(f"token file {token_file} is readable by group or others "
                               f"(mode {stat.S_IMODE(st.st_mode):04o})",
                               f"chmod 600 {token_file}, or set PDBG_TOKEN instead")
        with open(token_file, encoding="utf-8") as f:
            token = f.read(4096).strip()
    except OSError as exc:
        raise AccessDenied(f"cannot read token file {token_file} ({exc.strerror or type(exc).__name__})",
                           "Pass a readable file holding only the token, or set PDBG_TOKEN.") from None
    if not token:
        raise AccessDenied(f"token file {token_file} is empty", "Put the token `pdbg user add` printed in it.")
    return token
