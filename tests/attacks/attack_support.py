"""Shared by the attack regressions (tests/attacks/) and the empirical privacy audit
(benchmarks/privacy_audit.py): small real workspaces, and THE test-only hook that
disables contribution bounding.

Why the hook lives here and not under ``pdbg/``: a switch that turns bounding off is
exactly what an investigator must never reach (REFERENCE.md: analysts of the cwida
extension can switch noise off; BigQuery without ``max_groups_contributed`` is not DP).
Production code has no such switch. :func:`unbounded_plan` instead takes a real
:class:`~pdbg.sql.plan.Plan` and swaps its bounded SQL for the SQL the *same planner*
writes under a policy with k and g set to astronomically large values — the noise is
still calibrated by the real plan's k, g and c, so the result is what pdbg would release
if its SQL bounding silently stopped working. Reaching it needs importing this file,
building a Plan by hand and calling :func:`pdbg.dp.release.release` directly: there is
no path from ``Session.sql``, the CLI, the broker or a notebook magic to it.

Loaded by file path (``importlib``) from the audit script, and put on ``sys.path`` by
``tests/attacks/conftest.py`` for the tests.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

# A small dataset shaped like the demo's request log: one privacy unit, a public key
# (service, 8 values so g = 4 < |domain|), a private key (endpoint), bounded metrics (one
# signed, so the low clamp is the larger one), free text and an integer code.
POLICY: dict = {
    "dataset": "t",
    "table": "t",
    "privacy_unit": "user_id",
    "accounting": "zcdp",
    "delta": 1e-6,
    "partition_delta": 1e-8,
    "max_rows_per_unit": 10,
    "max_groups_per_unit": 4,
    "epsilon": {"default_per_query": 0.1, "max_per_query": 1.0, "case_default": 2.0, "dataset_cap": 20.0,
                "break_glass": 0.5},
    "columns": {
        "user_id": {"class": "identifier", "transform": "tokenize"},
        "service": {"class": "dimension", "domain": ["a", "b", "c", "d", "e", "f", "g", "h"]},
        "endpoint": {"class": "dimension"},
        "status": {"class": "dimension", "type": "integer"},
        "latency_ms": {"class": "metric", "type": "float", "bounds": [0, 1000]},
        "bytes_out": {"class": "metric", "type": "integer", "bounds": [0, 1000]},
        "skew_ms": {"class": "metric", "type": "float", "bounds": [-1000, 500]},
        "message": {"class": "free_text", "transform": "redact"},
    },
}

COLUMNS = ("user_id", "service", "endpoint", "status", "latency_ms", "bytes_out", "skew_ms", "message")
# Bounds far beyond any policy: the hook's planner run uses these instead of k and g.
HUGE_K = 10**9
HUGE_G = 10**6


def policy_dict(**overrides) -> dict:
    p = json.loads(json.dumps(POLICY))
    for k, v in overrides.items():
        if k == "epsilon":
            p["epsilon"] = {**p["epsilon"], **v}
        else:
            p[k] = v
    return p


def row(user: str, service: str = "a", endpoint: str = "/x", status: int = 200, latency_ms: float | None = 100.0,
        bytes_out: int | None = 100, skew_ms: float | None = 0.0, message: str = "ok") -> dict:
    return {"user_id": user, "service": service, "endpoint": endpoint, "status": status,
            "latency_ms": latency_ms, "bytes_out": bytes_out, "skew_ms": skew_ms, "message": message}


def make_workspace(root: str | os.PathLike, rows: list[dict], *, policy: dict | None = None):
    """A real workspace at ``root`` with dataset ``t`` holding ``rows`` (ingested through pdbg).

    Returns ``(Workspace, DatasetPolicy)``. The audit mirror goes beside ``root``.
    """
    import yaml

    from pdbg.governance import admin, principals
    from pdbg.governance.init import init_workspace
    from pdbg.ingest import datasets

    root = Path(root)
    os.environ.pop("PDBG_AUDIT_MIRROR", None)
    ws = init_workspace(root, audit_mirror=root.parent / (root.name + ".mirror"))
    ppath = root.parent / (root.name + ".policy.yaml")
    ppath.write_text(yaml.safe_dump(policy or POLICY, sort_keys=False))
    owner = principals.os_actor()
    admin.add_dataset(ws, ppath, owner)
    if rows:
        data = root.parent / (root.name + ".jsonl")
        with open(data, "w") as f:
            for r in rows:
                f.write(json.dumps({c: r.get(c) for c in COLUMNS}) + "\n")
        admin.ingest(ws, "t", [data], owner)
    return ws, datasets.get_policy(ws, "t")


def add_investigator(ws, *, case: str = "INC-1", epsilon: float = 2.0, user: str = "alice"):
    """Users, a case and an approved grant of ``epsilon``; returns ``(user, case)``."""
    from pdbg.governance import access, cases, principals

    owner = principals.os_actor()
    for name, role in ((user, "investigator"), ("bob", "approver")):
        if principals.get_user(ws, name) is None:
            principals.add_user(ws, owner, name, role)
    cases.open_case(ws, "bob", case, "attack test")
    req = access.request(ws, user, case, "t", epsilon, 4, "attack regression")
    access.approve(ws, req.id, "bob")
    return user, case


# ---------------------------------------------------------------------------
# THE test-only hook: contribution bounding disabled


def unbounded_plan(plan, policy):
    """``plan`` with bounding switched off in SQL only (noise still calibrated for k, g, c).

    The replacement SQL is written by the real planner for a copy of ``policy`` whose
    ``max_rows_per_unit`` and ``max_groups_per_unit`` are effectively infinite, so a unit
    contributes all of its rows to all of its groups. Everything else (keys, measures,
    outputs, g, k) stays the real plan's: the release step believes the caps hold.
    """
    from pdbg.sql import plan_query

    loose = policy.model_copy(update={"max_rows_per_unit": HUGE_K, "max_groups_per_unit": HUGE_G})
    other = plan_query(_sql_of(plan), loose)
    if [m.id for m in other.measures] != [m.id for m in plan.measures]:
        raise AssertionError("unbounded plan does not line up with the real plan")
    return dataclasses.replace(plan, bounded_sql=other.bounded_sql, quantile_sql=other.quantile_sql)


def _sql_of(plan) -> str:
    # plan.normalized is the canonical SQL after parameter binding; plan it again.
    return plan.normalized


__all__ = ["POLICY", "add_investigator", "make_workspace", "policy_dict", "row", "unbounded_plan"]
