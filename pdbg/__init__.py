"""pdbg: privacy-safe production debugging.

Public API: :func:`connect`, :mod:`pdbg.errors`, ``__version__``. Heavy modules
(OpenDP, pandas, DuckDB) are imported lazily so ``import pdbg`` stays fast.
"""

from __future__ import annotations

import os

from pdbg import errors
from pdbg.errors import (
    AccessDenied,
    AuditError,
    BudgetExceeded,
    PdbgError,
    PolicyError,
    QueryFailed,
    QueryRejected,
)

__version__ = "0.1.0"


def _is_url(target) -> bool:
    return isinstance(target, str) and target.startswith(("http://", "https://"))


def connect(target: str | os.PathLike, *, user: str, case: str, token: str | None = None):
    """Open an investigation session on a workspace path (str or os.PathLike) or a broker URL
    (http://host:port). A ``token`` given for a workspace path is checked: a wrong one is refused."""
    if _is_url(target):
        from pdbg.server.client import RemoteSession

        return RemoteSession(target, user=user, case=case, token=token)
    from pdbg.session import Session

    return Session(os.fspath(target), user=user, case=case, token=token)


def oversee(target: str | os.PathLike, *, user: str | None = None, token: str | None = None):
    """Read-only oversight views (requests, grants, budgets, reviews, audit status, a case's
    privacy impact) on a workspace path or a broker URL; same methods either way."""
    if _is_url(target):
        from pdbg.server.client import RemoteOversight

        return RemoteOversight(target, user=user or "", token=token)
    from pdbg.governance.oversight import Oversight

    if token is not None and user:
        from pdbg.governance.principals import authenticate
        from pdbg.policy.workspace import Workspace

        ws = Workspace(os.fspath(target))
        authenticate(ws, user, token)
        return Oversight(ws, user)
    return Oversight(os.fspath(target), user)


def load_ipython_extension(ipython) -> None:  # pragma: no cover - exercised by notebook tests
    """`%load_ext pdbg` registers `%pdbg` and `%%dpsql`."""
    from pdbg.notebook.magics import load_ipython_extension as _load

    _load(ipython)


__all__ = [
    "connect",
    "oversee",
    "errors",
    "PdbgError",
    "QueryRejected",
    "QueryFailed",
    "BudgetExceeded",
    "AccessDenied",
    "PolicyError",
    "AuditError",
    "__version__",
]
