"""Creating a workspace, and the governance tables inside state.sqlite.

A workspace is only usable once it has its layout and keys (``policy.workspace``),
the governance schema, an empty ``data.duckdb`` and a first audit record: the
audit log must start at the moment the workspace exists, so that every later
change has a predecessor in the hash chain.

Governance tables are prefixed ``gov_`` so they never collide with the ledger's
or the release cache's tables in the same SQLite file. Times are stored as the
fixed-width UTC strings of :func:`pdbg.clock.iso`, so string order is time order.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from pdbg.ledger.audit import AuditLog
from pdbg.ledger.state import ensure_schema, open_state
from pdbg.policy.workspace import Workspace, create_layout, make_private, private_files

SCHEMA = """
CREATE TABLE IF NOT EXISTS gov_users (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('investigator', 'approver', 'admin', 'auditor')),
    token_hash  TEXT NOT NULL,              -- hex SHA-256 of the token; the token itself is never stored
    active      INTEGER NOT NULL DEFAULT 1,
    created     TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    deactivated TEXT
);
CREATE TABLE IF NOT EXISTS gov_cases (
    id           TEXT PRIMARY KEY,
    title        TEXT NOT NULL,
    severity     TEXT,
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    opened       TEXT NOT NULL,
    opened_by    TEXT NOT NULL,
    detected     TEXT,
    acknowledged TEXT,
    contained    TEXT,
    resolved     TEXT,
    closed       TEXT
);
CREATE TABLE IF NOT EXISTS gov_requests (
    id              TEXT PRIMARY KEY,
    user            TEXT NOT NULL,
    case_id         TEXT NOT NULL,
    dataset         TEXT NOT NULL,
    epsilon         REAL NOT NULL,
    hours           REAL NOT NULL,
    reason          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    created         TEXT NOT NULL,
    expires         TEXT NOT NULL,      -- a pending request past this time can no longer be approved
    decided_by      TEXT,
    decided         TEXT,
    decision_reason TEXT,
    grant_id        TEXT
);
CREATE TABLE IF NOT EXISTS gov_grants (
    id          TEXT PRIMARY KEY,
    user        TEXT NOT NULL,
    case_id     TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    epsilon     REAL NOT NULL,
    delta       REAL NOT NULL,
    accounting  TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('approved', 'break_glass')),
    request_id  TEXT,
    approved_by TEXT,
    created     TEXT NOT NULL,
    expires     TEXT NOT NULL,
    revoked     TEXT,
    revoked_by  TEXT
);
CREATE INDEX IF NOT EXISTS gov_grants_by_user ON gov_grants (user, case_id, dataset);
CREATE TABLE IF NOT EXISTS gov_case_members (
    case_id  TEXT NOT NULL,
    user     TEXT NOT NULL,             -- attached to the case: may break glass on it
    added    TEXT NOT NULL,
    added_by TEXT NOT NULL,
    PRIMARY KEY (case_id, user)
);
CREATE TABLE IF NOT EXISTS gov_reviews (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    subject_user TEXT NOT NULL,         -- whose action is reviewed; may never close the review
    case_id      TEXT NOT NULL,
    dataset      TEXT,
    grant_id     TEXT,
    reason       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    created      TEXT NOT NULL,
    closed       TEXT,
    closed_by    TEXT,
    note         TEXT
);
"""

_schema_ready: set[str] = set()


def ensure_governance_schema(ws: Workspace) -> None:
    """Create the governance tables if missing (idempotent; also for workspaces built by other tools)."""
    key = str(ws.state_path)
    if key in _schema_ready and ws.state_path.exists():
        return
    conn = open_state(ws)
    try:
        ensure_schema(conn, SCHEMA)
    finally:
        conn.close()
    _schema_ready.add(key)


@contextmanager
def gov_db(ws: Workspace) -> Iterator[sqlite3.Connection]:
    """A state.sqlite connection with the governance schema present; always closed afterwards."""
    ensure_governance_schema(ws)
    conn = open_state(ws)
    try:
        yield conn
    finally:
        conn.close()


def init_workspace(path: str | os.PathLike, audit_mirror: str | os.PathLike | None = None) -> Workspace:
    """Create a new, empty workspace and record its creation as the first audit record.

    Refuses to touch an existing or non-empty directory (``create_layout`` checks).
    The actor is the OS user: whoever can create the directory owns the data in it.
    """
    from pdbg.governance.principals import os_actor
    from pdbg.ingest.readers import open_writer

    # Every file made here (state.sqlite, data.duckdb, the audit log) is 0600 whatever the umask
    # and whatever the mode of a root directory that already existed (`pdbg init` warns about that).
    with private_files():
        ws = create_layout(path, audit_mirror=audit_mirror)
        ensure_governance_schema(ws)
        # Through the writer path: it first drops any reader instance this process still holds for
        # the same path (a workspace deleted and re-created in one process).
        open_writer(ws.data_path, {"autoinstall_known_extensions": False, "autoload_known_extensions": False},
                    wait_s=0).close()
        AuditLog(ws).append(
            os_actor(),
            "workspace.init",
            workspace_id=ws.workspace_id,
            audit_mirror=str(ws.audit_mirror),
        )
    make_private(ws)
    return ws
