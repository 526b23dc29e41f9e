"""One way to refuse a query: ``reject(rule, message, hint)``.

Messages may echo the investigator's own identifiers (they wrote them) but never a
value read from data; the planner never reads data, so no message can contain one.
"""

from __future__ import annotations

import difflib
from typing import NoReturn

from pdbg.errors import QueryRejected


def reject(rule: str, message: str, hint: str) -> NoReturn:
    raise QueryRejected(message, hint, rule=rule)


def did_you_mean(name: str, candidates: list[str]) -> str:
    """' Did you mean x?' for a near miss, else '' (sqlglot-style suggestion)."""
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=1, cutoff=0.6)
    if not close:
        return ""
    original = next(c for c in candidates if c.lower() == close[0])
    return f" Did you mean {original!r}?"
