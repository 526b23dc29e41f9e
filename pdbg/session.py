"""The one orchestrator of a release (DESIGN.md section 4).

authenticate → authorize → parse & check → plan → cache lookup → reserve budget →
execute bounded SQL → noise / partition selection → audit append → commit → return.

(Interface first; the pipeline is filled in by the query-engine work.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CostView:
    """What a release charged, for display: ε at the grant's δ, δ, and ρ (zCDP) when used."""

    epsilon: float
    delta: float
    rho: float | None = None


@dataclass(frozen=True)
class BudgetView:
    """Granted / spent / remaining for one grant (and the dataset-wide cap)."""

    grant_id: str
    dataset: str
    case: str
    accounting: str
    granted_epsilon: float
    spent_epsilon: float
    remaining_epsilon: float
    delta: float
    expires: str
    dataset_cap_remaining_epsilon: float


@dataclass(frozen=True)
class Preview:
    """Cost and expected accuracy of a query; computing it spends nothing and touches no data."""

    sql: str
    epsilon: float
    cost: CostView
    accuracy: dict[str, float]          # output column -> 95% CI half-width (noise only)
    notes: tuple[str, ...] = ()


@dataclass
class Result:
    """A released answer: `.df` has the values plus `<col>_ci_low` / `<col>_ci_high`."""

    sql: str
    df: Any                              # pandas.DataFrame
    cost: CostView
    cached: bool
    release_id: str
    epsilon: float
    notes: tuple[str, ...] = ()
    budget: BudgetView | None = None
    meta: dict = field(default_factory=dict)
