"""Turn a plan's exact per-group aggregates into a DP release with confidence intervals.

One ε per query (not per column — SmartNoise charges AVG twice). The query's privacy
amount A (ρ = epsilon_to_rho(ε, δ_grant/2) under ``zcdp``, ε itself under ``pure``) is
split explicitly, in exact integer units (``pdbg.dp.accounting``), over the query's
*components*, each with weight 1:

* every measure of the plan (a count, a fixed-point sum, a sum of squares, …),
* every (quantile column, alpha) selection,
* one noisy histogram per quantile column (for the quantiles' value CIs),
* partition selection, when some group key is private.

Sequential composition (ρ adds up under zCDP, ε under pure DP) makes the whole release
A-private; partition selection adds ``policy.partition_delta`` to δ (approximate zCDP /
(ε, δ)-DP: values of a group that exists only in one neighbour are released only when
that group passes selection, the δ event). Units are split by largest remainder so the
shares sum to the query's amount exactly.

Everything after noise is post-processing: derived outputs (avg = mid + S/N, variance
and stddev from N, S, S2), clamping to the output bounds, counts shown as max(0, ·),
CIs computed from public scales (and, for quantiles, from released noisy counts only).
Released groups are sorted by key, never left in data order; a public or time group with
no rows appears with a noisy value computed from an exact 0.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pdbg.dp import accuracy as acc
from pdbg.dp import quantile as qmod
from pdbg.dp.mechanisms import NoiseSpec, amount_for_scale, noise_for
from pdbg.dp.noise import add_noise, noise_kind
from pdbg.dp.partition import select_partitions, selection_noise, selection_threshold
from pdbg.errors import QueryRejected

ComponentKind = Literal["measure", "quantile", "histogram", "selection"]
UNITS_COL = "__units"


# ---------------------------------------------------------------------------
# budget split


@dataclass(frozen=True)
class Component:
    """One budget-consuming part of a release (``ref``: measure id or quantile id)."""

    name: str
    kind: ComponentKind
    ref: str = ""
    alpha: float | None = None
    weight: int = 1


@dataclass(frozen=True)
class BudgetSplit:
    """The query's cost and the exact share (in units) of each component."""

    accounting: str
    epsilon: float
    cost: Any                              # pdbg.dp.accounting.Cost
    components: tuple[Component, ...]
    units: tuple[int, ...]

    def amount(self, name: str) -> float:
        """ρ (zcdp) or ε (pure) of one component."""
        from pdbg.dp.accounting import from_units

        for comp, u in zip(self.components, self.units):
            if comp.name == name:
                return from_units(u)
        raise KeyError(name)

    def fraction(self, name: str) -> float:
        total_w = sum(c.weight for c in self.components)
        return next(c.weight for c in self.components if c.name == name) / total_w


def components(plan) -> tuple[Component, ...]:
    """The budget-consuming parts of ``plan`` in a fixed order."""
    out = [Component(f"measure:{m.id}", "measure", m.id) for m in plan.measures]
    for q in plan.quantiles:
        out.extend(Component(f"quantile:{q.id}:{a!r}", "quantile", q.id, float(a)) for a in q.alphas)
        out.append(Component(f"histogram:{q.id}", "histogram", q.id))
    if plan.needs_selection:
        out.append(Component("selection", "selection"))
    return tuple(out)


def cost_of(plan, epsilon: float, policy):
    """What releasing ``plan`` at ``epsilon`` costs (no data touched)."""
    from pdbg.dp.accounting import query_cost

    sel_delta = float(policy.partition_delta) if plan.needs_selection else 0.0
    return query_cost(policy.accounting, float(epsilon), grant_delta=float(policy.delta), selection_delta=sel_delta)


def split_budget(plan, epsilon: float, policy) -> BudgetSplit:
    """Split the query's privacy units over its components (largest remainder, exact)."""
    cost = cost_of(plan, epsilon, policy)
    comps = components(plan)
    if not comps:
        raise QueryRejected("the query releases nothing", "Select at least one aggregate.", rule="no-aggregate")
    total = cost.privacy_units
    weights = [c.weight for c in comps]
    wsum = sum(weights)
    base = [total * w // wsum for w in weights]
    rem = total - sum(base)
    order = sorted(range(len(comps)), key=lambda i: (-((total * weights[i]) % wsum), i))
    for i in order[:rem]:
        base[i] += 1
    if any(u <= 0 for u in base):
        raise QueryRejected(
            "epsilon is too small to split over this query's aggregates",
            "Use a larger epsilon or fewer aggregates.", rule="epsilon",
        )
    return BudgetSplit(policy.accounting, float(epsilon), cost, comps, tuple(base))


# ---------------------------------------------------------------------------
# noise parameters and accuracy (no data)


def _measures(plan) -> dict:
    return {m.id: m for m in plan.measures}


def _quantile_specs(plan) -> dict:
    return {q.id: q for q in plan.quantiles}


def measure_noise(plan, split: BudgetSplit, measure_id: str) -> NoiseSpec:
    m = _measures(plan)[measure_id]
    return noise_for(m.c, plan.g, split.accounting, split.amount(f"measure:{m.id}"))


def quantile_scale(plan, split: BudgetSplit, qid: str, alpha: float) -> float:
    q = _quantile_specs(plan)[qid]
    return qmod.selection_scale(q.k, alpha, plan.g, split.accounting, split.amount(f"quantile:{qid}:{float(alpha)!r}"))


@dataclass(frozen=True)
class OutputAccuracy:
    """Noise-only accuracy of one output at level 1−alpha, known before any data is read."""

    name: str
    kind: str
    half_width: float | None     # in output units (rows of rank for quantiles); None if data-dependent
    unit: str
    text: str


def accuracy_report(plan, epsilon: float, policy, alpha: float = acc.DEFAULT_ALPHA) -> dict[str, OutputAccuracy]:
    split = split_budget(plan, epsilon, policy)
    ms = _measures(plan)
    out: dict[str, OutputAccuracy] = {}
    pct = f"{100 * (1 - alpha):g}%"
    for o in plan.outputs:
        if o.kind == "key":
            continue
        if o.kind in ("count", "count_units", "sum"):
            m = ms[o.measures[0]]
            spec = measure_noise(plan, split, m.id)
            hw = acc.half_width(spec.kind, spec.scale, alpha) / m.scale
            out[o.name] = OutputAccuracy(o.name, o.kind, hw, "value", f"±{hw:g} at {pct} (noise only)")
        elif o.kind == "quantile":
            q = _quantile_specs(plan)[o.quantile]
            s = quantile_scale(plan, split, q.id, o.alpha)
            r = qmod.rank_error(s, o.alpha, len(q.candidates), alpha)
            out[o.name] = OutputAccuracy(
                o.name, o.kind, r, "rows of rank",
                f"rank within ±{r:.0f} rows of the target at {pct} (plus candidate spacing); "
                "value CI from a noisy histogram",
            )
        else:
            out[o.name] = OutputAccuracy(
                o.name, o.kind, None, "value",
                f"CI depends on the group's row count; each release states it ({pct})",
            )
    return out


def preview(plan, epsilon: float, policy, alpha: float = acc.DEFAULT_ALPHA) -> dict[str, float]:
    """Output → expected CI half-width at 1−alpha (noise only). Touches no data, spends nothing.

    Counts and sums: value units. Quantiles: rank error in rows. Averages, variances and
    standard deviations are omitted: their half-width depends on the (private) group size.
    """
    return {k: v.half_width for k, v in accuracy_report(plan, epsilon, policy, alpha).items() if v.half_width is not None}


def epsilon_for_accuracy(plan, output: str, half_width: float, policy, alpha: float = acc.DEFAULT_ALPHA) -> float:
    """The smallest ε (up to 1e-9 relative) at which ``output``'s half-width is ≤ ``half_width``.

    Counts/sums: value units ("count within ±20 at 95%"). Quantiles: rank error in rows.
    """
    from pdbg.dp.accounting import rho_to_epsilon

    o = next((x for x in plan.outputs if x.name == output), None)
    if o is None or o.kind not in ("count", "count_units", "sum", "quantile"):
        raise QueryRejected(
            f"accuracy targets apply to counts, sums and quantiles; {output!r} is not one",
            "Pass epsilon= instead.", rule="accuracy",
        )
    accounting = policy.accounting
    comps = components(plan)
    wsum = sum(c.weight for c in comps)
    if o.kind == "quantile":
        q = _quantile_specs(plan)[o.quantile]
        _, den = qmod.alpha_fraction(o.alpha)
        scale = half_width * den / math.log(len(q.candidates) / alpha)
        amount = qmod.selection_cost(q.k, o.alpha, plan.g, accounting, scale)
        name = f"quantile:{q.id}:{float(o.alpha)!r}"
    else:
        m = _measures(plan)[o.measures[0]]
        scale = acc.scale_for_half_width(noise_kind(accounting), math.floor(half_width * m.scale), alpha)
        amount = amount_for_scale(m.c, plan.g, accounting, scale)
        name = f"measure:{m.id}"
    weight = next(c.weight for c in comps if c.name == name)
    total = amount * wsum / weight
    eps = rho_to_epsilon(total, float(policy.delta) / 2.0) if accounting == "zcdp" else total
    # Unit rounding may leave the component a hair short; nudge ε up until the target holds.
    for _ in range(200):
        if preview(plan, eps, policy, alpha)[output] <= half_width:
            return eps
        eps *= 1.0 + 1e-9
    raise QueryRejected("could not meet the requested accuracy", "Ask for a looser accuracy.", rule="accuracy")


# ---------------------------------------------------------------------------
# release


@dataclass
class ReleasedFrame:
    """The noisy answer before ``post_sql``: values, ``<col>_ci_low``/``<col>_ci_high``, cost."""

    df: Any                                   # pandas.DataFrame
    cost: Any                                 # pdbg.dp.accounting.Cost
    notes: tuple[str, ...] = ()
    accuracy: dict[str, OutputAccuracy] = field(default_factory=dict)
    split: BudgetSplit | None = None


def _norm(v: Any) -> Any:
    """A hashable, comparable Python value for a key (numpy/pandas scalars → Python)."""
    import numpy as np
    import pandas as pd

    if isinstance(v, (pd.Timestamp, np.datetime64)):
        ts = pd.Timestamp(v)
        return ts if ts.nanosecond else ts.to_pydatetime()
    item = getattr(v, "item", None)
    if isinstance(v, np.generic) and item is not None:
        return item()
    return v


def _as_int(v: Any) -> int:
    if v is None:
        return 0
    try:
        if isinstance(v, float) and math.isnan(v):
            return 0
    except TypeError:
        pass
    try:
        import pandas as pd

        if pd.isna(v):
            return 0
    except (TypeError, ValueError):
        pass
    return int(v)


def _groups(plan, exact_df, split: BudgetSplit, policy, notes: list[str]) -> tuple[list[tuple], dict]:
    """Released group keys (sorted later) and the exact row of each (or None)."""
    names = [k.name for k in plan.keys]
    rows: dict[tuple, dict] = {}
    if exact_df is not None and len(exact_df):
        for rec in exact_df.to_dict("records"):
            rows[tuple(_norm(rec[n]) for n in names)] = rec
    domains = {k.name: set(_norm(v) for v in k.domain) for k in plan.keys if k.kind != "private" and k.domain is not None}
    for k in plan.keys:
        if k.kind != "private" and k.domain is None:
            raise QueryRejected(f"key {k.name!r} is public but has no domain", "This is a planner bug; report it.",
                                rule="public-key-domain")
    if not plan.needs_selection:
        keys = list(itertools.product(*[[_norm(v) for v in k.domain] for k in plan.keys]))
        return keys, {key: rows.get(key) for key in keys}
    # private keys: candidates are the groups the engine saw, restricted to public domains
    cands = [key for key in rows if all(key[i] in domains[n] for i, n in enumerate(names) if n in domains)]
    units = [_as_int(rows[key].get(UNITS_COL)) for key in cands]
    sel = select_partitions(units, g=plan.g, accounting=split.accounting, amount=split.amount("selection"),
                            delta=float(policy.partition_delta))
    private = ", ".join(k.name for k in plan.keys if k.kind == "private")
    notes.append(
        f"groups of private key(s) {private} appear only if their noisy count of distinct units exceeded "
        f"{sel.threshold} (partition selection, δ={policy.partition_delta:g}); smaller groups are omitted"
    )
    keys = [key for key, keep in zip(cands, sel.mask) if keep]
    return keys, {key: rows[key] for key in keys}


def _sort_keys(plan, keys: list[tuple]) -> list[tuple]:
    """Released groups in key order, NULLs last (DuckDB's default ORDER BY), never in data order.

    Queries without HAVING/ORDER BY/LIMIT are returned in exactly this order (no post-processing).
    A plain stable sort: a pandas sort cost ~1.5 ms per release for a handful of groups.
    """
    if not plan.keys or not keys:
        return keys
    try:
        return sorted(keys, key=lambda key: tuple((True, 0) if _is_null(v) else (False, v) for v in key))
    except TypeError:  # mixed types in a key column: sort by (type name, text)
        return sorted(keys, key=lambda key: tuple((_is_null(v), type(v).__name__, str(v)) for v in key))


def _is_null(v) -> bool:
    """SQL NULL as it reaches Python from DuckDB/pandas: None, NaN, NaT or pandas.NA."""
    if v is None:
        return True
    try:
        return bool(v != v)          # NaN, NaT; pandas.NA raises TypeError on bool()
    except TypeError:
        return True


def _bounds(o, default: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float]:
    return (float(o.bounds[0]), float(o.bounds[1])) if o.bounds is not None else default


def _clip(x: float, b: tuple[float, float]) -> float:
    return min(max(x, b[0]), b[1])


def _ratio_range(s_lo: float, s_hi: float, n_lo: float, n_hi: float) -> tuple[float, float]:
    vals = [s_lo / n_lo, s_lo / n_hi, s_hi / n_lo, s_hi / n_hi]
    return min(vals), max(vals)


class _Noisy:
    """Noisy measure vectors over the released groups, with per-alpha half-widths."""

    def __init__(self, plan, split: BudgetSplit, exact: dict[str, list[int]]):
        self.plan, self.split = plan, split
        self.ms = _measures(plan)
        self.spec = {mid: measure_noise(plan, split, mid) for mid in exact}
        self.values = {mid: add_noise(vec, self.spec[mid].kind, self.spec[mid].scale) for mid, vec in exact.items()}

    def h(self, mid: str, alpha: float) -> float:
        """Half-width in true (unscaled) units."""
        spec = self.spec[mid]
        return acc.half_width(spec.kind, spec.scale, alpha) / self.ms[mid].scale

    def v(self, mid: str, i: int) -> float:
        return self.values[mid][i] / self.ms[mid].scale


def _derive(o, nz: _Noisy, n_groups: int, alpha: float) -> tuple[list, list, list]:
    """Values and CI bounds of one non-key, non-quantile output over all groups."""
    vals, lows, highs = [], [], []
    b = _bounds(o)
    if o.kind in ("count", "count_units", "sum"):
        mid = o.measures[0]
        h = nz.h(mid, alpha)
        for i in range(n_groups):
            v = nz.v(mid, i)
            lo, hi = v - h, v + h
            if o.kind != "sum":
                v, lo, hi = max(0, int(round(v))), max(0, int(math.floor(lo))), max(0, int(math.ceil(hi)))
            else:
                v, lo, hi = _clip(v, b), _clip(lo, b), _clip(hi, b)
            vals.append(v), lows.append(lo), highs.append(hi)
        return vals, lows, highs
    n_id, s_id = o.measures[0], o.measures[1]
    parts = 2 if o.kind == "avg" else 3
    a_each = alpha / parts                   # Bonferroni: all parts inside their CIs w.p. ≥ 1−alpha
    hn, hs = nz.h(n_id, a_each), nz.h(s_id, a_each)
    hs2 = nz.h(o.measures[2], a_each) if parts == 3 else 0.0
    for i in range(n_groups):
        n, s = nz.v(n_id, i), nz.v(s_id, i)
        nc = max(n, 1.0)
        n_lo, n_hi = max(n - hn, 0.0), n + hn
        if o.kind == "avg":
            v = _clip(o.mid + s / nc, b)
            if n_lo < 1.0:
                lo, hi = b
            else:
                r_lo, r_hi = _ratio_range(s - hs, s + hs, n_lo, n_hi)
                lo, hi = _clip(o.mid + r_lo, b), _clip(o.mid + r_hi, b)
        else:
            s2 = nz.v(o.measures[2], i)
            var_b = (max(b[0], 0.0), b[1]) if o.kind == "variance" else (0.0, b[1] ** 2 if math.isfinite(b[1]) else math.inf)
            var = _clip(max(0.0, max(s2, 0.0) / nc - (s / nc) ** 2), var_b)
            if n_lo < 1.0:
                lo, hi = var_b
            else:
                m_lo, m_hi = _ratio_range(s - hs, s + hs, n_lo, n_hi)
                sq_lo = 0.0 if m_lo <= 0.0 <= m_hi else min(m_lo * m_lo, m_hi * m_hi)
                sq_hi = max(m_lo * m_lo, m_hi * m_hi)
                a_lo, a_hi = max(s2 - hs2, 0.0) / n_hi, max(s2 + hs2, 0.0) / n_lo
                lo, hi = _clip(max(a_lo - sq_hi, 0.0), var_b), _clip(max(a_hi - sq_lo, 0.0), var_b)
            if o.kind == "stddev":
                v, lo, hi = math.sqrt(var), math.sqrt(lo), math.sqrt(hi)
                v, lo, hi = _clip(v, b), _clip(lo, b), _clip(hi, b)
            else:
                v = var
        vals.append(v), lows.append(min(lo, v)), highs.append(max(hi, v))
    return vals, lows, highs


def _bins_by_group(plan, quantile_df, keys: list[tuple]) -> dict[tuple[str, tuple], list[int]]:
    """(qid, key) → B+1 exact bin counts (zeros for groups without rows)."""
    names = [k.name for k in plan.keys]
    nb = {q.id: len(q.candidates) + 1 for q in plan.quantiles}
    out = {(q.id, key): [0] * nb[q.id] for q in plan.quantiles for key in keys}
    if quantile_df is None or not len(quantile_df):
        return out
    # Column lists, not per-row dicts: a 6-group × 3-quantile query has thousands of bin rows.
    key_cols = [quantile_df[n].tolist() for n in names]
    qids = [str(q) for q in quantile_df["__qid"].tolist()]
    bins, counts = quantile_df["__bin"].tolist(), quantile_df["__n"].tolist()
    keys_seen: dict[tuple, tuple] = {}
    for i, qid in enumerate(qids):
        raw = tuple(col[i] for col in key_cols)
        key = keys_seen.get(raw)
        if key is None:
            key = keys_seen.setdefault(raw, tuple(_norm(v) for v in raw))
        slot = out.get((qid, key))
        if slot is None:
            continue  # group not released (not selected, or outside a public domain)
        b, n = bins[i], counts[i]
        b = b if type(b) is int else _as_int(b)
        if 0 <= b < len(slot):
            slot[b] += n if type(n) is int else _as_int(n)
    return out


def release(plan, exact_df, quantile_df, epsilon: float, policy, alpha: float = acc.DEFAULT_ALPHA) -> ReleasedFrame:
    """Noise, partition selection, derived outputs and CIs for one query at ``epsilon``.

    ``exact_df``: one row per group (key columns, one integer column per measure id,
    ``__units``); ``quantile_df``: key columns, ``__qid``, ``__bin``, ``__n`` (or None).
    The caller applies ``plan.post_sql`` to ``.df`` afterwards and drops hidden outputs.
    """
    import pandas as pd

    split = split_budget(plan, epsilon, policy)
    notes: list[str] = []
    keys, rows = _groups(plan, exact_df, split, policy, notes)
    keys = _sort_keys(plan, keys)
    n = len(keys)

    exact = {m.id: [_as_int(rows[k].get(m.id)) if rows[k] is not None else 0 for k in keys] for m in plan.measures}
    nz = _Noisy(plan, split, exact)

    cols: dict[str, list] = {}
    for i, k in enumerate(plan.keys):
        cols[k.name] = [key[i] for key in keys]

    qspecs = _quantile_specs(plan)
    bins = _bins_by_group(plan, quantile_df, keys) if plan.quantiles else {}
    hist_noisy: dict[str, tuple[NoiseSpec, dict[tuple, list[int]]]] = {}
    for q in plan.quantiles:
        spec = qmod.histogram_noise(q.k, plan.g, split.accounting, split.amount(f"histogram:{q.id}"))
        flat = [c for key in keys for c in bins[(q.id, key)]]
        noisy = add_noise(flat, spec.kind, spec.scale)
        width = len(q.candidates) + 1
        hist_noisy[q.id] = (spec, {key: noisy[j * width:(j + 1) * width] for j, key in enumerate(keys)})

    report = accuracy_report(plan, epsilon, policy, alpha)
    for o in plan.outputs:
        if o.kind == "key":
            continue
        if o.kind == "quantile":
            q = qspecs[o.quantile]
            scale = quantile_scale(plan, split, q.id, o.alpha)
            spec, noisy_bins = hist_noisy[q.id]
            bounds = _bounds(o, (float(q.candidates[0]), float(q.candidates[-1])))
            vals, lows, highs = [], [], []
            for key in keys:
                idx = qmod.select(bins[(q.id, key)], o.alpha, split.accounting, scale)
                v = float(q.candidates[idx])
                lo, hi = qmod.value_ci(noisy_bins[key], q.candidates, o.alpha, spec, alpha, bounds)
                vals.append(v), lows.append(min(lo, v)), highs.append(max(hi, v))
            notes.append(f"{o.name}: {report[o.name].text}")
        else:
            vals, lows, highs = _derive(o, nz, n, alpha)
        cols[o.name], cols[f"{o.name}_ci_low"], cols[f"{o.name}_ci_high"] = vals, lows, highs

    df = pd.DataFrame(cols)
    for o in plan.outputs:
        if o.kind in ("count", "count_units"):
            for c in (o.name, f"{o.name}_ci_low", f"{o.name}_ci_high"):
                df[c] = df[c].astype("int64")
    if any(o.kind in ("count", "count_units") for o in plan.outputs):
        notes.append("negative noisy counts are shown as 0 (post-processing; CIs are cut at 0 likewise)")
    return ReleasedFrame(df=df, cost=split.cost, notes=tuple(notes), accuracy=report, split=split)


__all__ = [
    "BudgetSplit",
    "Component",
    "OutputAccuracy",
    "ReleasedFrame",
    "accuracy_report",
    "components",
    "cost_of",
    "epsilon_for_accuracy",
    "preview",
    "release",
    "selection_noise",
    "selection_threshold",
    "split_budget",
]
