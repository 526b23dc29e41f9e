"""Notebook face: `%%dpsql` magics, widgets, rich display, charts.

Depends on the session API only (``pdbg.connect`` / :mod:`pdbg.session` result types),
so everything here also works against a broker (``RemoteSession``) or a test fake.
Imports are lazy so ``import pdbg`` stays fast.
"""

from __future__ import annotations


def current_session():
    """The session opened by `%pdbg connect` in this kernel (None before)."""
    from pdbg.notebook.magics import current_session as _cur

    return _cur()


def investigate(session=None, template: str | None = None):
    """Budget gauge + query form + history for the current (or given) session."""
    from pdbg.notebook.widgets import investigate as _inv

    return _inv(session, template=template)


def plot(result, **kw):
    """Chart a result with 95% CI error bars (see :func:`pdbg.notebook.charts.plot`)."""
    from pdbg.notebook.charts import plot as _plot

    return _plot(result, **kw)
