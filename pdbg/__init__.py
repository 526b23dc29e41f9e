"""pdbg: privacy-safe production debugging.

Public API: :func:`connect`, :mod:`pdbg.errors`, ``__version__``. Heavy modules
(OpenDP, pandas, DuckDB) are imported lazily so ``import pdbg`` stays fast.
"""

from __future__ import annotations

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


def connect(target: str, *, user: str, case: str, token: str | None = None):
    """Open an investigation session on a workspace path or a broker URL (http://host:port)."""
    if target.startswith(("http://", "https://")):
        from pdbg.server.client import RemoteSession

        return RemoteSession(target, user=user, case=case, token=token)
    from pdbg.session import Session

    return Session(target, user=user, case=case)


def oversee(target: str, *, user: str | None = None, token: str | None = None):
    """Read-only oversight views (requests, grants, budgets, reviews, audit status, a case's
    privacy impact) on a workspace path or a broker URL; same methods either way."""
    if target.startswith(("http://", "https://")):
        from pdbg.server.client import RemoteOversight

        return RemoteOversight(target, user=user or "", token=token)
    from pdbg.governance.oversight import Oversight

    return Oversight(target, user)


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
