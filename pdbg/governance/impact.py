"""The privacy impact of one case: ε/δ per dataset and person, grants, break-glass, refusals.

Computed from the budget ledger and the audit log; read by the postmortem (embedded or
through the broker) and by approvers. The score is documented in notebooks/postmortem.ipynb.
"""

from __future__ import annotations


def score_band(score: int) -> str:
    return "low" if score < 10 else "moderate" if score < 30 else "high" if score < 60 else "severe"


def privacy_score(fraction_of_cap: float, break_glass: int, raw_access: int) -> int:
    """The documented score (notebooks/postmortem.ipynb): cap fraction in percent plus penalties."""
    return int(round(100 * fraction_of_cap)) + 10 * break_glass + 50 * raw_access


def privacy_impact(ws, case: str) -> dict:
    """ε/δ per dataset and per person, grants, break-glass use, refusals, raw access, and the score."""
    from pdbg.governance import access
    from pdbg.ingest import datasets
    from pdbg.ledger.audit import AuditLog

    report = access.budget_report(ws, case=case)
    records = AuditLog(ws).records(case=case)
    grants = report["grants"]
    by_dataset: dict[str, dict] = {}
    by_person: dict[tuple[str, str], dict] = {}
    for g in grants:
        d = by_dataset.setdefault(g["dataset"], {"dataset": g["dataset"], "epsilon": 0.0, "delta": 0.0, "grants": 0})
        d["epsilon"] += g["spent_epsilon"]
        d["grants"] += 1
        p = by_person.setdefault((g["user"], g["dataset"]),
                                 {"user": g["user"], "dataset": g["dataset"], "epsilon": 0.0, "delta": 0.0, "releases": 0})
        p["epsilon"] += g["spent_epsilon"]
    refused, failed, releases, cached = [], [], 0, 0
    for r in records:
        if r.get("action") in ("query", "query.failed"):   # a failure after data access is a charged release
            if r.get("action") == "query.failed":
                failed.append({"ts": r.get("ts"), "user": r.get("actor"), "rule": r.get("rule")})
            if r.get("cached"):
                cached += 1
                continue
            releases += 1
            delta = float((r.get("cost") or {}).get("delta") or 0.0)
            if r.get("dataset") in by_dataset:
                by_dataset[r["dataset"]]["delta"] += delta
            key = (r.get("actor"), r.get("dataset"))
            if key in by_person:
                by_person[key]["delta"] += delta
                by_person[key]["releases"] += 1
        elif r.get("action") == "query.refused":
            refused.append({"ts": r.get("ts"), "user": r.get("actor"), "rule": r.get("rule") or r.get("error"),
                            "reason": r.get("reason")})
    break_glass = [g for g in grants if g.get("kind") == "break_glass"]
    raw_access = [r for r in records if "raw" in str(r.get("action", ""))]
    fraction = 0.0
    for name, d in by_dataset.items():
        cap = datasets.get_policy(ws, name).epsilon.dataset_cap
        d["cap"] = cap
        d["fraction_of_cap"] = d["epsilon"] / cap if cap else 0.0
        fraction = max(fraction, d["fraction_of_cap"])
    score = privacy_score(fraction, len(break_glass), len(raw_access))
    return {
        "case": case, "datasets": list(by_dataset.values()), "people": list(by_person.values()),
        "grants": grants, "break_glass": break_glass, "refused": refused, "failed": failed,
        "raw_access": raw_access,
        "releases": releases, "cached_replays": cached, "score": score, "band": score_band(score),
    }
