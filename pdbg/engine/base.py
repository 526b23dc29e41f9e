"""The backend protocol: execute a bounded plan, return exact per-group aggregates.

Backends never add noise and never see query text that was not parsed, checked
and rewritten by pdbg.sql (DESIGN.md invariant 6). DuckDB is the embedded default;
another engine plugs in by rendering the same plan in its dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pdbg.sql.plan import Plan


@dataclass(frozen=True)
class ExactResult:
    """Exact bounded aggregates. Private: only dp/ may turn them into a release."""

    groups: Any                 # pandas.DataFrame: key columns + measure ids + __units
    quantile_bins: Any | None   # pandas.DataFrame: key columns + __qid, __bin, __n (or None)
    data_version: int

    def __repr__(self) -> str:  # never print private aggregates by accident
        return f"ExactResult(<{len(self.groups)} groups, private>, data_version={self.data_version})"


class Backend(Protocol):
    def data_version(self, dataset: str) -> int: ...

    def execute(self, plan: Plan, salt: str) -> ExactResult: ...
