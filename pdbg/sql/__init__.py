"""sql layer: parse and check investigator SQL, plan it, and rewrite it to bounded SQL.

The only package that imports sqlglot. Public API: :func:`plan_query` and the plan dataclasses.
"""

from pdbg.sql.plan import KeySpec, Measure, OutputSpec, Plan, QuantileSpec
from pdbg.sql.planner import plan_query

__all__ = ["plan_query", "Plan", "KeySpec", "Measure", "QuantileSpec", "OutputSpec"]
