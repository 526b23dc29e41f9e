"""Postmortem helpers: incident timings, replay of the case's analyses, privacy impact.

Why here and not in the notebook: the postmortem notebook is executed by papermill in
CI and by ``pdbg postmortem``; logic in cells is untestable and drifts. The notebook
only calls these functions and renders their results.

Privacy impact score (documented in the notebook too), 0 = no privacy loss:

    score = round(100 × max over datasets d of (ε spent on d by this case / ε cap of d))
            + 10 × (break-glass grants in the case)
            + 50 × (raw-access events in the case)

ε spent is the ledger's composed total per grant (at the grant's δ), summed over the
case's grants on the dataset; the cap is the policy's ``epsilon.dataset_cap`` (the loss
the data owner accepts across all incidents). Refused queries charge nothing and reveal
nothing, so they are listed but not scored. Bands: <10 low, <30 moderate, <60 high,
otherwise severe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MILESTONES = (("TTD", "detected", "time to detect"), ("TTA", "acknowledged", "time to acknowledge"),
              ("TTC", "contained", "time to contain"), ("TTR", "resolved", "time to resolve"))
_ISO_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")


def _get(obj: Any, name: str):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _dt(x) -> datetime | None:
    """A timezone-aware UTC datetime (naive values are taken as UTC, as pdbg stores them)."""
    from datetime import timezone

    if x is None:
        return None
    d = x if isinstance(x, datetime) else datetime.fromisoformat(str(x).replace("Z", "+00:00"))
    return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d.astimezone(timezone.utc)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"


def timings(case, impact_start: datetime | str | None = None) -> list[dict]:
    """TTD/TTA/TTC/TTR from the case record.

    TTD is detection minus impact start (the postmortem parameter ``impact_start``, or the
    case's own field if it has one); without an impact start it is "not recorded".
    TTA/TTC/TTR are measured from impact start when known, else from detection, so the
    four numbers always share one origin per row set and never use the case's ``opened``
    time (when someone typed the case in, not when users were hurt).
    """
    start = _dt(impact_start or _get(case, "impact_start") or _get(case, "started"))
    detected = _dt(_get(case, "detected"))
    origin_ttd = start
    rows = []
    for short, attr, label in MILESTONES:
        at = _dt(_get(case, attr))
        origin = origin_ttd if short == "TTD" else (start or detected)
        secs = (at - origin).total_seconds() if (at and origin) else None
        rows.append({"metric": short, "meaning": label, "at": at.isoformat(sep=" ") if at else None,
                     "seconds": secs, "duration": fmt_duration(secs)})
    return rows


# -- replay -----------------------------------------------------------------------

@dataclass
class Replay:
    """The case's analyses re-run from the release cache."""

    results: list = field(default_factory=list)       # (record, Result)
    skipped: list = field(default_factory=list)       # (record, reason)
    spent_before: float = 0.0
    spent_after: float = 0.0

    @property
    def spent(self) -> float:
        return round(self.spent_after - self.spent_before, 12)


def _replayable_params(rec: dict) -> tuple[bool, dict | None, str]:
    params = rec.get("params") or None
    if "$" in (rec.get("sql") or "") and params is None:
        return False, None, "parameters are not in the history record"
    for v in (params or {}).values():
        if isinstance(v, str) and _ISO_LIKE.match(v):
            return False, None, "a timestamp parameter lost its type in the audit record"
    return True, params, ""


def replay_case(session) -> Replay:
    """Re-run every distinct release of the case; each must be served from the cache (cost 0).

    Uses ``session.replay(release_id)`` (cache-only) when the session offers it. Otherwise
    re-issues the same query with the same ε and parameters, which hits the release cache
    by construction; anything that could miss (parameters whose type was lost) is skipped,
    never re-spent. Every replayed answer is checked against the digest its audit record
    bound (``pdbg.ledger.cache.check_release``, inside ``replay`` and the cache-hit path);
    a mismatch raises ReleaseTampered naming the release id.
    """
    from pdbg.errors import PdbgError
    from pdbg.ledger.cache import ReleaseTampered

    out = Replay()
    before = _spent(session)
    seen: set[str] = set()
    for rec in session.history():
        if rec.get("action") != "query" or rec.get("cached") or not rec.get("release_id"):
            continue
        if rec["release_id"] in seen:
            continue
        seen.add(rec["release_id"])
        try:
            if hasattr(session, "replay"):
                res = session.replay(rec["release_id"])
            else:
                ok, params, why = _replayable_params(rec)
                if not ok:
                    out.skipped.append((rec, why))
                    continue
                res = session.sql(rec["sql"], epsilon=rec.get("epsilon"), params=params)
        except ReleaseTampered:
            raise          # an altered answer is never skipped quietly: the postmortem stops, naming the release
        except PdbgError as err:
            out.skipped.append((rec, f"{type(err).__name__}: {err.message}"))
            continue
        out.results.append((rec, res))
    after = _spent(session)
    if before is not None and after is not None:
        out.spent_before, out.spent_after = before, after
    return out


def _spent(session) -> float | None:
    """ε spent under the session's active grant; None when it holds none.

    A postmortem usually runs after the grant expired: then ``budget()`` is refused, and
    nothing can be spent either (every release needs an active grant), so the replay is
    free by construction and the history and replays still show the grant's releases.
    """
    from pdbg.errors import AccessDenied

    try:
        budgets = session.budget()
    except AccessDenied:
        return None
    return sum(b.spent_epsilon for b in (budgets if isinstance(budgets, list) else [budgets]))


# -- privacy impact ----------------------------------------------------------------

from pdbg.governance.impact import privacy_impact, privacy_score, score_band  # noqa: E402,F401  (re-exported)


def impact_markdown(impact: dict) -> str:
    """The privacy-impact section as Markdown (rendered in the notebook and in exports)."""
    lines = [f"**Privacy impact score: {impact['score']} ({impact['band']})** — "
             "100 × largest share of a dataset's ε cap spent by this case, +10 per break-glass grant, "
             "+50 per raw-access event.", ""]
    lines += ["| dataset | ε spent | δ spent | ε cap | share of cap | grants |", "|---|---|---|---|---|---|"]
    for d in impact["datasets"]:
        lines.append(f"| {d['dataset']} | {d['epsilon']:.4g} | {d['delta']:.3g} | {d.get('cap', 0):g} | "
                     f"{100 * d.get('fraction_of_cap', 0):.1f}% | {d['grants']} |")
    lines += ["", "| person | dataset | ε spent | δ spent | releases |", "|---|---|---|---|---|"]
    for p in impact["people"]:
        lines.append(f"| {p['user']} | {p['dataset']} | {p['epsilon']:.4g} | {p['delta']:.3g} | {p['releases']} |")
    lines += ["", "| grant | user | dataset | kind | status | granted ε | spent ε |", "|---|---|---|---|---|---|---|"]
    for g in impact["grants"]:
        lines.append(f"| {g['grant']} | {g['user']} | {g['dataset']} | {g['kind']} | {g['status']} | "
                     f"{g['granted_epsilon']:g} | {g['spent_epsilon']:.4g} |")
    lines += ["", f"- Releases that spent budget: {impact['releases']}; answers replayed from the cache: "
                  f"{impact['cached_replays']}",
              f"- Break-glass grants: {len(impact['break_glass']) or 'none'}",
              f"- Refused queries (nothing charged): {len(impact['refused']) or 'none'}",
              f"- Raw-access events: {len(impact['raw_access']) or 'none'}"]
    return "\n".join(lines)


__all__ = ["MILESTONES", "Replay", "fmt_duration", "impact_markdown", "privacy_impact", "privacy_score",
           "replay_case", "score_band", "timings"]
