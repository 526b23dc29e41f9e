"""Empirical privacy audit: does each release path of pdbg keep the ε it claims?

    .venv/bin/python benchmarks/privacy_audit.py [--n 10000] [--accounting zcdp,pure] [--workers 2]

Claims of privacy are checked by experiment (issue 7). For every mechanism path pdbg
uses — count, count of distinct units, clamped sum, average, quantile, partition
selection (private key) and a grouped query with g > 1 — the audit builds two real
DuckDB workspaces that differ by ONE privacy unit contributing the worst case (many more
than k rows, in more than g groups, with values far outside the policy bounds), plans
the query once with the real planner (:func:`pdbg.sql.plan_query`), runs the real
bounded SQL once per workspace on the real engine (:class:`pdbg.engine.duckdb.DuckDBEngine`),
and then calls the real noise step (:func:`pdbg.dp.release.release`) ``n`` times per
side. The ledger and cache are bypassed on purpose: the audit measures the mechanism,
not the budget (a ledger would refuse after a few queries, the cache would replay).

Why the exact aggregates are computed only once: they are deterministic given the
per-query salt, and the salt only decides *which* ≤ g groups an over-contributing unit
keeps. Conditional on any salt the mechanism must be DP, so one fixed salt per path
(the same on both sides) is a valid — if anything stricter — test.

Statistics. Each path extracts a few numbers from the released frame (the value, CI
ends, the sum over the groups the extra unit touches, how many of its private groups
were released). On the first half of the samples the audit picks the single best event
— a threshold on one statistic, in one direction, with either neighbour in the
numerator — and on the held-out second half it computes a Clopper–Pearson lower bound
on ε at 95 % confidence (two one-sided 97.5 % bounds):

    ε_lb = ln((p1_lb − δ) / p0_ub)

with δ the path's claimed δ: under zCDP a query of ε is (ε, δ_grant/2)-DP, plus the
partition δ when a private key is selected; under pure DP only the partition δ.
A path passes when ε_lb ≤ the claimed ε. The broken variants — the same neighbours
with contribution bounding disabled by the test-only hook in
``tests/attacks/attack_support.py`` (unreachable from pdbg) — must be *caught*
(ε_lb > claimed ε). Exit status 0 only if every honest path passes and every broken
variant is caught.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import secrets
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SUPPORT_PATH = ROOT / "tests" / "attacks" / "attack_support.py"

EPSILON = 1.0                 # the query ε audited (the policy's per-query maximum)
HEAVY = 200                   # rows the extra unit puts in each of its groups (k = 10)
CONFIDENCE = 0.95


def _support():
    spec = importlib.util.spec_from_file_location("pdbg_attack_support", SUPPORT_PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------
# Clopper–Pearson without scipy: regularized incomplete beta + bisection


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b) (modified Lentz; Numerical Recipes §6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = tiny if abs(d) < tiny else d
    d = 1.0 / d
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        de = d * c
        h *= de
        if abs(de - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """Inverse of I_x(a, b) in x, by bisection (monotone in x)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return (lo + hi) / 2


def cp_lower(x: int, n: int, alpha: float) -> float:
    """One-sided (1 − alpha) Clopper–Pearson lower bound on p given x successes in n."""
    return 0.0 if x <= 0 else beta_ppf(alpha, x, n - x + 1)


def cp_upper(x: int, n: int, alpha: float) -> float:
    """One-sided (1 − alpha) Clopper–Pearson upper bound on p."""
    return 1.0 if x >= n else beta_ppf(1.0 - alpha, x + 1, n - x)


def eps_lower_bound(x1: int, x0: int, n1: int, n0: int, delta: float, confidence: float = CONFIDENCE) -> float:
    """ε_lb = ln((p1_lb − δ)/p0_ub) with both bounds one-sided at (1+confidence)/2; ≥ 0."""
    a = (1.0 - confidence) / 2.0
    p1 = cp_lower(x1, n1, a) - delta
    p0 = cp_upper(x0, n0, a)
    if p1 <= 0.0 or p0 <= 0.0:
        return 0.0
    return max(0.0, math.log(p1 / p0))


# ---------------------------------------------------------------------------
# event search on the first half (vectorised; approximate bounds are fine here)


def _wilson(x: np.ndarray, n: int, z: float, upper: bool) -> np.ndarray:
    p = x / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre + half if upper else np.maximum(centre - half, 0.0)


@dataclass(frozen=True)
class Event:
    stat: int
    op: str          # ">=" or "<="
    t: float
    numerator: int   # 1: P(event | D1) / P(event | D0); 0: the reverse
    score: float

    def hits(self, col: np.ndarray) -> int:
        return int(np.sum(col >= self.t)) if self.op == ">=" else int(np.sum(col <= self.t))

    def text(self, names: list[str]) -> str:
        t = int(self.t) if float(self.t).is_integer() else round(float(self.t), 3)
        side = "D1/D0" if self.numerator == 1 else "D0/D1"
        return f"{names[self.stat]} {self.op} {t} ({side})"


def best_event(s0: np.ndarray, s1: np.ndarray, delta: float) -> Event:
    """The event (stat, threshold, direction, numerator) with the largest approximate ε bound."""
    z = 2.24  # ≈ one-sided 98.75 %: keeps the search away from events with a handful of hits
    best = Event(0, ">=", math.inf, 1, -math.inf)
    n0, n1 = len(s0), len(s1)
    for j in range(s0.shape[1]):
        a0 = np.sort(s0[:, j])
        a1 = np.sort(s1[:, j])
        ts = np.unique(np.concatenate([a0, a1]))
        if len(ts) > 4000:
            ts = np.unique(np.quantile(np.concatenate([a0, a1]), np.linspace(0, 1, 4001)))
        ge0 = n0 - np.searchsorted(a0, ts, side="left")
        ge1 = n1 - np.searchsorted(a1, ts, side="left")
        le0 = np.searchsorted(a0, ts, side="right")
        le1 = np.searchsorted(a1, ts, side="right")
        for op, c0, c1 in ((">=", ge0, ge1), ("<=", le0, le1)):
            for num, x_num, n_num, x_den, n_den in ((1, c1, n1, c0, n0), (0, c0, n0, c1, n1)):
                lo = _wilson(x_num.astype(float), n_num, z, upper=False) - delta
                hi = _wilson(x_den.astype(float), n_den, z, upper=True)
                with np.errstate(divide="ignore", invalid="ignore"):
                    sc = np.where((lo > 0) & (hi > 0), np.log(np.maximum(lo, 1e-300) / np.maximum(hi, 1e-300)), -np.inf)
                i = int(np.argmax(sc))
                if sc[i] > best.score:
                    best = Event(j, op, float(ts[i]), num, float(sc[i]))
    return best


# ---------------------------------------------------------------------------
# paths


@dataclass
class Path_:
    name: str
    sql: str
    base: list
    target: list
    stats: list[tuple]                   # (label, kind, column) ; kind: value | sum_diff | present_diff
    broken: bool = False
    prepare: object = None               # optional fn(policy, plan) -> (base, target) adjustments
    fields: dict = field(default_factory=dict)


def _paths(S, accounting: str, policy) -> list[Path_]:
    row = S.row
    base_flat = [row(f"b{i}", latency_ms=float(25 * i % 1000), bytes_out=25 * i % 1000) for i in range(40)]
    heavy_one = [row("target", latency_ms=1e6, bytes_out=10**6) for _ in range(HEAVY)]
    heavy_low = [row("target", skew_ms=-1e6) for _ in range(HEAVY)]
    low_base = [row(f"b{i}", latency_ms=0.0) for i in range(40)]
    # dense low values: the released median sits low, so candidates above it are rare under D0
    # (sized per accounting so that P(q above the data | D0) is a few percent: the event where the
    # exponential mechanism's likelihood ratio approaches its bound)
    n_q = 250 if accounting == "pure" else 500
    quant_base = [row(f"b{i}", latency_ms=float(i % 125)) for i in range(n_q)]
    svc = "abcdefgh"
    grouped_base = [row(f"b{i}", service=svc[i % 8], latency_ms=500.0) for i in range(40)]
    grouped_target = [row("target", service=s, latency_ms=1e6) for s in svc for _ in range(HEAVY)]

    out = [
        Path_("count", "SELECT COUNT(*) AS n FROM t", base_flat, heavy_one, [("n", "value", "n")]),
        Path_("count distinct units", "SELECT COUNT(DISTINCT user_id) AS u FROM t", base_flat, heavy_one,
              [("u", "value", "u")]),
        Path_("clamped sum", "SELECT SUM(latency_ms) AS s FROM t", base_flat, heavy_one, [("s", "value", "s")]),
        Path_("clamped sum, signed (low clamp)", "SELECT SUM(skew_ms) AS s FROM t", base_flat, heavy_low,
              [("s", "value", "s")]),
        Path_("average", "SELECT AVG(latency_ms) AS a FROM t", low_base, heavy_one,
              [("a", "value", "a"), ("a_ci_low", "value", "a_ci_low"), ("a_ci_high", "value", "a_ci_high")]),
        Path_("quantile (median)", "SELECT quantile_cont(latency_ms, 0.5) AS q FROM t", quant_base, heavy_one,
              [("q", "value", "q"), ("q_ci_low", "value", "q_ci_low"), ("q_ci_high", "value", "q_ci_high")]),
        Path_("grouped public key, g=4 of 8", "SELECT service, COUNT(*) AS n, SUM(latency_ms) AS s FROM t GROUP BY service",
              grouped_base, grouped_target, [("Σn over its groups", "sum_diff", "n"), ("Σs over its groups", "sum_diff", "s")]),
        Path_("partition selection (private key)", "SELECT endpoint, COUNT(*) AS n FROM t GROUP BY endpoint",
              [], [], [("#its groups released", "present_diff", "n"), ("Σn over its groups", "sum_diff", "n")],
              prepare="selection"),
        # the deliberately broken variants: same neighbours, bounding disabled by the test-only hook
        Path_("BROKEN count (bounding off)", "SELECT COUNT(*) AS n FROM t", base_flat, heavy_one,
              [("n", "value", "n")], broken=True),
        Path_("BROKEN grouped g=4 of 8 (bounding off)",
              "SELECT service, COUNT(*) AS n, SUM(latency_ms) AS s FROM t GROUP BY service",
              grouped_base, grouped_target, [("Σn over its groups", "sum_diff", "n"), ("Σs over its groups", "sum_diff", "s")],
              broken=True),
    ]
    return out


def _selection_rows(S, plan, policy, eps):
    """g private groups sitting at the selection threshold τ; the extra unit adds itself to g+2 of them."""
    from pdbg.dp import release as rel

    split = rel.split_budget(plan, eps, policy)
    spec = rel.selection_noise(plan.g, split.accounting, split.amount("selection"))
    tau = rel.selection_threshold(spec.kind, spec.scale, plan.g, float(policy.partition_delta))
    n_groups = plan.g + 2
    base = [S.row(f"b{e}-{i}", endpoint=f"/e{e}") for e in range(n_groups) for i in range(int(tau))]
    target = [S.row("target", endpoint=f"/e{e}") for e in range(n_groups) for _ in range(HEAVY)]
    return base, target, tau


# ---------------------------------------------------------------------------
# workers (spawned processes; each re-imports pdbg and draws its own OS randomness)


def _extract(df, stats, diff_keys, key_cols):
    out = []
    keys = list(zip(*(df[c].tolist() for c in key_cols))) if key_cols else []
    hit = [i for i, k in enumerate(keys) if k in diff_keys]
    for _, kind, col in stats:
        if kind == "value":
            out.append(float(df[col].iloc[0]) if len(df) else -math.inf)
        elif kind == "present_diff":
            out.append(float(len(hit)))
        else:  # sum_diff: groups not released count as 0
            vals = df[col].tolist()
            out.append(float(sum(vals[i] for i in hit)))
    return out


def _work(task):
    plan, groups, bins, eps, policy, stats, diff_keys, key_cols, n = task
    from pdbg.dp.release import release

    out = np.empty((n, len(stats)))
    for i in range(n):
        df = release(plan, groups, bins, eps, policy).df
        out[i] = _extract(df, stats, diff_keys, key_cols)
    return out


# ---------------------------------------------------------------------------


@dataclass
class Row:
    path: str
    accounting: str
    eps: float
    delta: float
    n: int
    event: str
    p1: float
    p0: float
    eps_lb: float
    broken: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.eps_lb > self.eps if self.broken else self.eps_lb <= self.eps


def _diff_keys(plan, g0, g1) -> set:
    names = [k.name for k in plan.keys]
    if not names:
        return set()
    mids = [m.id for m in plan.measures]

    def rows(df):
        return {tuple(r[c] for c in names): tuple(r[m] for m in mids) + (r["__units"],)
                for r in df.to_dict("records")}

    r0, r1 = rows(g0), rows(g1)
    return {k for k in set(r0) | set(r1) if r0.get(k) != r1.get(k)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="releases per side (half pick the event, half test it)")
    ap.add_argument("--accounting", default="zcdp,pure", help="comma-separated: zcdp, pure")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--only", default="", help="run only paths whose name contains this text")
    args = ap.parse_args(argv)
    if args.n < 200 or args.n % 2:
        ap.error("--n must be an even number ≥ 200")

    S = _support()
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.sql import plan_query

    t_all = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="pdbg-privacy-audit-"))
    jobs = []      # (meta, [futures for side 0], [futures for side 1])
    chunk = 1000
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=__import__("multiprocessing").get_context("spawn")) as pool:
        for accounting in [a.strip() for a in args.accounting.split(",") if a.strip()]:
            pol = S.policy_dict(accounting=accounting)
            for p in _paths(S, accounting, None):
                if args.only and args.only.lower() not in p.name.lower():
                    continue
                t0 = time.perf_counter()
                slug = f"{accounting}-{len(jobs)}"
                # plan against the policy object of a throwaway workspace (the plan never reads data)
                ws0, policy = S.make_workspace(tmp / f"{slug}-plan", [], policy=pol)
                plan = plan_query(p.sql, policy)
                base, target = p.base, p.target
                if p.prepare == "selection":
                    base, target, tau = _selection_rows(S, plan, policy, EPSILON)
                    p.fields["tau"] = tau
                ws_a, _ = S.make_workspace(tmp / f"{slug}-d0", base, policy=pol)
                ws_b, _ = S.make_workspace(tmp / f"{slug}-d1", base + target, policy=pol)
                run_plan = S.unbounded_plan(plan, policy) if p.broken else plan
                salt = secrets.token_hex(16)
                ex0 = DuckDBEngine(ws_a).execute(run_plan, salt=salt)
                ex1 = DuckDBEngine(ws_b).execute(run_plan, salt=salt)
                dkeys = _diff_keys(plan, ex0.groups, ex1.groups)
                key_cols = [k.name for k in plan.keys]
                delta = (policy.delta / 2 if accounting == "zcdp" else 0.0) + (
                    policy.partition_delta if plan.needs_selection else 0.0)
                # broken variants are caught by orders of magnitude; fewer samples only make catching harder
                n_side = max(2000, args.n // 5) if p.broken else args.n
                sides = []
                for ex in (ex0, ex1):
                    futs = []
                    left = n_side
                    while left > 0:
                        m = min(chunk, left)
                        futs.append(pool.submit(_work, (plan, ex.groups, ex.quantile_bins, EPSILON, policy, p.stats,
                                                        dkeys, key_cols, m)))
                        left -= m
                    sides.append(futs)
                jobs.append(((p, accounting, delta, t0, n_side), sides[0], sides[1]))

        t_built = time.perf_counter()
        n_releases = sum(2 * j[0][4] for j in jobs)
        rows: list[Row] = []
        for (p, accounting, delta, t0, n_side), f0, f1 in jobs:
            s0 = np.concatenate([f.result() for f in f0])
            s1 = np.concatenate([f.result() for f in f1])
            s0 = np.nan_to_num(s0, nan=-math.inf)
            s1 = np.nan_to_num(s1, nan=-math.inf)
            h = n_side // 2
            ev = best_event(s0[:h], s1[:h], delta)
            c0, c1 = s0[h:, ev.stat], s1[h:, ev.stat]
            x1, x0 = ev.hits(c1), ev.hits(c0)
            if ev.numerator == 0:
                x1, x0 = x0, x1
            lb = eps_lower_bound(x1, x0, len(c1), len(c0), delta)
            label = [s[0] for s in p.stats]
            rows.append(Row(p.name, accounting, EPSILON, delta, n_side, ev.text(label) if math.isfinite(ev.score) else "none",
                            x1 / len(c1), x0 / len(c0), lb, p.broken, time.perf_counter() - t0))
            print(f"  done: {accounting:5s} {p.name} (ε_lb {lb:.3f})", file=sys.stderr, flush=True)

    total = time.perf_counter() - t_all
    _print_table(rows, args, total, t_built - t_all, n_releases)
    return 0 if all(r.ok for r in rows) else 1


def _print_table(rows: list[Row], args, total: float, build: float, n_releases: int) -> None:
    head = ("path", "acct", "claimed ε", "δ", "n/side", "best event (chosen on held-out half)", "p_num", "p_den",
            "ε lower bound", "result")
    body = []
    for r in rows:
        verdict = ("CAUGHT" if r.ok else "NOT CAUGHT") if r.broken else ("pass" if r.ok else "FAIL")
        body.append((r.path, r.accounting, f"{r.eps:g}", f"{r.delta:.3g}", str(r.n), r.event, f"{r.p1:.4f}",
                     f"{r.p0:.4f}", f"{r.eps_lb:.3f}", verdict))
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line)
    print("-" * len(line))
    for b in body:
        print("  ".join(c.ljust(w) for c, w in zip(b, widths)))
    honest = [r for r in rows if not r.broken]
    broken = [r for r in rows if r.broken]
    print()
    print(f"honest paths: {sum(r.ok for r in honest)}/{len(honest)} within their claimed ε "
          f"(Clopper–Pearson, {CONFIDENCE:.0%} per path); broken variants caught: {sum(r.ok for r in broken)}/{len(broken)}")
    print(f"timing: {len(rows)} paths, {2 * len(rows)} workspaces built and planned in {build:.1f} s (sampling already "
          f"running); {n_releases} calls of pdbg.dp.release.release; total {total:.1f} s on {args.workers} worker(s) "
          f"({1000 * total * args.workers / max(n_releases, 1):.2f} ms per release per worker, all included)")


if __name__ == "__main__":
    sys.exit(main())
