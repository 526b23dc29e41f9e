"""State threaded through the checks: the parsed statement(s), the policy, and later the flat query."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from pdbg.policy.model import DatasetPolicy


@dataclass
class Ctx:
    sql: str
    policy: DatasetPolicy
    statements: list[exp.Expr]
    tree: Any = None                    # the one SELECT (after single-statement/select-only)
    flat: Any = None                    # pdbg.sql.flatten.FlatQuery once tables are resolved
    extra: dict = field(default_factory=dict)

    @property
    def private_columns(self) -> list[str]:
        return list(self.policy.kept_columns)
