"""A deterministic stand-in for ``pdbg.session.Session`` used by the notebook-layer tests.

Why a fake: widget and magic behaviour (slider moves only preview, Release spends once,
errors render as one line) must be tested without a workspace, fast and exactly. It
returns the real result types (:mod:`pdbg.session`) so rendering code is exercised
for real. It lives under tests/ only; production code cannot reach it.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

from pdbg.errors import BudgetExceeded, QueryRejected
from pdbg.session import BudgetView, CostView, Preview, Result

SERVICES = ("auth", "catalog", "checkout", "payments", "profile", "search")
REGIONS = ("ap-south", "eu-west", "us-east", "us-west", "sa-east")


def _h(*parts) -> float:
    d = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(d[:4], "big") / 2**32


class FakeSession:
    """Records every call in ``calls``; ``sql`` charges ε unless the same query was released before."""

    def __init__(self, user: str = "alice", case: str = "INC-TEST", granted: float = 1.0) -> None:
        self.user, self.case = user, case
        self.granted = granted
        self.spent = 0.0
        self.calls: list[tuple[str, str, dict]] = []
        self._cache: dict[tuple, Result] = {}
        self._history: list[dict] = []
        self._n = 0

    # -- API -----------------------------------------------------------------
    def budget(self) -> BudgetView:
        self.calls.append(("budget", "", {}))
        return BudgetView(
            grant_id="g-test", dataset="requests", case=self.case, accounting="zcdp",
            granted_epsilon=self.granted, spent_epsilon=round(self.spent, 12),
            remaining_epsilon=round(self.granted - self.spent, 12), delta=1e-6,
            expires="2026-11-21T12:00:00Z", dataset_cap_remaining_epsilon=20.0 - self.spent,
        )

    def history(self) -> list[dict]:
        self.calls.append(("history", "", {}))
        return list(self._history)

    def preview(self, query: str, *, epsilon=None, accuracy=None, params=None) -> Preview:
        self.calls.append(("preview", query, {"epsilon": epsilon, "params": params}))
        eps = self._check(query, epsilon)
        _keys, vals = self._shape(query)
        return Preview(sql=query, epsilon=eps, cost=CostView(eps, 0.0, eps**2 / 2),
                       accuracy={v: round(3.0 / eps, 4) for v in vals})

    def sql(self, query: str, *, epsilon=None, accuracy=None, params=None) -> Result:
        self.calls.append(("sql", query, {"epsilon": epsilon, "accuracy": accuracy, "params": params}))
        try:
            eps = self._check(query, epsilon)
        except QueryRejected as err:
            self._history.append({"ts": self._ts(), "actor": self.user, "action": "query.refused", "sql": query,
                                  "charged": False, "reason": err.message})
            raise
        key = (query, tuple(sorted((params or {}).items())), eps)
        if key in self._cache:
            first = self._cache[key]
            self._history.append({"ts": self._ts(), "actor": self.user, "action": "query", "sql": query,
                                  "epsilon": eps, "cached": True, "release_id": first.release_id})
            return Result(sql=query, df=first.df.copy(), cost=CostView(0.0, 0.0, 0.0), cached=True,
                          release_id=first.release_id, epsilon=eps, budget=self.budget())
        if eps > self.granted - self.spent + 1e-12:
            raise BudgetExceeded(
                f"this query needs ε={eps:g} but only ε={self.granted - self.spent:.3g} remains",
                requested=eps, remaining=self.granted - self.spent)
        self.spent += eps
        self._n += 1
        rid = f"r-{self._n:04d}"
        res = Result(sql=query, df=self._frame(query, params, eps), cost=CostView(eps, 0.0, eps**2 / 2),
                     cached=False, release_id=rid, epsilon=eps, notes=("values clamped to policy bounds",),
                     budget=self.budget())
        self._cache[key] = res
        self._history.append({"ts": self._ts(), "actor": self.user, "action": "query", "sql": query,
                              "epsilon": eps, "cached": False, "charged": True, "release_id": rid})
        return res

    def templates(self):
        from pdbg.templates import load_library

        return load_library()

    # -- internals -------------------------------------------------------------
    def _ts(self) -> str:
        return f"2026-11-20T15:{len(self._history):02d}:00Z"

    def _check(self, query: str, epsilon) -> float:
        q = query.lower()
        if "select *" in q or re.search(r"select\s+user_id\b", q) or "group by user_id" in q:
            raise QueryRejected("user_id is the privacy unit and cannot be selected or grouped by",
                                "Count distinct users with COUNT(DISTINCT user_id).", rule="unit-output")
        if "from requests" not in q:
            raise QueryRejected("the query reads no registered dataset table", "Query one of: requests.",
                                rule="unknown-table")
        eps = 0.1 if epsilon is None else float(epsilon)
        if eps > 1.0:
            raise QueryRejected(f"ε={eps:g} is above the policy's per-query maximum 1",
                                "Use a smaller epsilon.", rule="epsilon-above-policy")
        return eps

    @staticmethod
    def _shape(query: str) -> tuple[list[str], list[str]]:
        select = re.split(r"\bfrom\b", query, maxsplit=1, flags=re.I)[0]
        group = re.search(r"group\s+by\s+(.+?)(?:\border\b|\blimit\b|\bhaving\b|$)", query, flags=re.I | re.S)
        keys = [k.strip() for k in group.group(1).split(",")] if group else []
        names = []
        for item in re.split(r",(?![^()]*\))", re.sub(r"^\s*select\s+", "", select, flags=re.I)):
            m = re.search(r"\bas\s+(\w+)\s*$", item.strip(), flags=re.I)
            names.append(m.group(1) if m else item.strip().split(".")[-1])
        vals = [n for n in names if n not in keys]
        return [k for k in names if k in keys], vals

    def _frame(self, query: str, params, eps: float):
        import pandas as pd

        keys, vals = self._shape(query)
        if not keys:
            groups = [()]
        else:
            k = keys[0]
            if k in ("t", "m", "minute", "bucket"):
                base = datetime(2026, 11, 20, 13, 0)
                dom = [base + timedelta(minutes=5 * i) for i in range(36)]
            else:
                dom = {"service": SERVICES, "region": REGIONS}.get(k, ("a", "b", "c"))
            groups = [(v,) for v in dom]
        rows = []
        for g in groups:
            row = dict(zip(keys[:1], g))
            for v in vals:
                x = round(100 + 900 * _h(query, params, g, v), 1)
                half = round(3.0 / eps, 2)
                row.update({v: x, f"{v}_ci_low": x - half, f"{v}_ci_high": x + half})
            rows.append(row)
        return pd.DataFrame(rows)
