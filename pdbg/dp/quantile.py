"""DP quantiles per group from per-bin counts: exponential mechanism + a sound value CI.

Input (``QuantileSpec``): per group, counts of rows in B+1 bins around B public candidates
c_0 < … < c_{B−1} (bin 0: v < c_0; bin i: c_{i−1} ≤ v < c_i; bin B: v ≥ c_{B−1}); at most
k rows per unit and group reach the counts. Write L_i = #(v < c_i) = Σ_{b≤i} bins[b] and
n = Σ bins.

**Point estimate (one selection per alpha).** With α = num/den (OpenDP 0.16's rule:
the exact fraction if its denominator is < 10 000, else round(α·10⁴)/10⁴) the score of
candidate i is

    score_i = |den·L_i − num·n|   = den·|(1−α)·#below − α·#at-or-above|

which equals OpenDP's ``make_quantile_score_candidates`` output whenever no value equals
a candidate (OpenDP subtracts #(v = c_i) from n; bins cannot see ties, a test checks
equality on tie-free data). Lower is better; OpenDP's ``make_noisy_max(negate=True)``
picks the index.

*Sensitivity.* One unit adds/removes r ≤ k rows of a group, j ≤ r of them below c_i:
den·L_i − num·n changes by den·j − num·r, so |Δscore_i| ≤ Δ = k·max(num, den − num)
(OpenDP's map of the score transformation at d_in = k gives the same). The scores are not
monotone, so noisy max costs ε = 2Δ/s (pure) or ρ = (2Δ/s)²/8 = Δ²/(2s²) (zCDP) per group
at scale s. A unit touches ≤ g groups, each an independent selection, so a query share
(ε_q or ρ_q) gives

    pure: s = 2·g·Δ/ε_q        zcdp: s = Δ·sqrt(g/(2ρ_q))

*Rank error.* For noisy max with Gumbel or exponential noise of scale s, any candidate
whose score exceeds the best one by t is chosen with probability ≤ e^{−t/s}; with m
candidates, P(score_chosen > score_best + t) ≤ m·e^{−t/s}. So with probability 1−β the
released candidate's rank L is within ``r = s·ln(m/β)/den`` rows of the target α·n, up to
the grid: plus the distance of the best candidate (the candidate spacing is public).

**Value CI (one extra noisy histogram per quantile column, shared by its alphas).** A
CI cannot be read off the exact bins (that would leak), and the exponential mechanism
alone gives a rank statement, not a value interval. So pdbg releases the B+1 bin counts
with integer noise (per group L1 ≤ k, L2 ≤ k; over g groups L1 = g·k, L2 = √g·k) at
their own budget share and derives the CI by post-processing only:

    D̃_i = den·L̃_i − num·ñ  (= den·L_i − num·n + E_i, E_i a fixed linear form in the noise)

If |E_i| < t_i for all i (probability ≥ 1−β by a union bound over the 2B one-sided
tails), then D̃_i + t_i < 0 ⇒ L_i < α·n ⇒ c_i ≤ q_α, and D̃_i − t_i > 0 ⇒ L_i > α·n ⇒
c_i > q_α, for the true quantile q_α (any q with #(v<q) ≤ α·n ≤ #(v≤q)). Hence
``[max{c_i : D̃_i + t_i < 0}, min{c_i : D̃_i − t_i > 0}]`` (policy bounds when empty)
covers q_α with probability ≥ 1−β. The interval is finally widened to contain the
released point (a superset keeps the coverage). The margins t_i are Chernoff bounds:
zCDP — the discrete Gaussian is σ²-subgaussian (Canonne–Kamath–Steinke 2020), so
t_i = σ·sqrt(2·V_i·ln(2B/β)) with V_i = (i+1)(den−num)² + (B−i)num²; pure — the exact
discrete-Laplace moment generating function, minimised over a grid of λ (every λ
gives a valid bound). Margins depend only on public numbers and are cached.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Sequence

from pdbg.dp.mechanisms import NoiseSpec, noise_for
from pdbg.dp.noise import NoiseKind, noisy_argmin

_ALPHA_DEN = 10_000


def alpha_fraction(alpha: float) -> tuple[int, int]:
    """α as (num, den) exactly as OpenDP 0.16 discretises it for quantile scores."""
    a = float(alpha)
    if not (0.0 <= a <= 1.0):
        raise ValueError("alpha must be within [0, 1]")
    exact = Fraction(a)
    if exact.denominator < _ALPHA_DEN:
        return exact.numerator, exact.denominator
    return round(a * _ALPHA_DEN), _ALPHA_DEN


def score_sensitivity(k: int, alpha: float) -> int:
    """Δ: the most one unit (≤ k rows in a group) changes any candidate's score in that group."""
    num, den = alpha_fraction(alpha)
    return k * max(num, den - num)


def cumulative_below(bins: Sequence[int]) -> list[int]:
    """L_i = #(v < c_i) for i = 0..B−1 from the B+1 bin counts."""
    out, acc = [], 0
    for b in list(bins)[:-1]:
        acc += int(b)
        out.append(acc)
    return out


def signed_scores(bins: Sequence[int], alpha: float) -> list[int]:
    """den·L_i − num·n per candidate (negative: candidate below the α-quantile)."""
    num, den = alpha_fraction(alpha)
    n = sum(int(b) for b in bins)
    return [den * li - num * n for li in cumulative_below(bins)]


def scores(bins: Sequence[int], alpha: float) -> list[int]:
    """OpenDP-style quantile scores |den·L_i − num·n| (lower is better)."""
    return [abs(s) for s in signed_scores(bins, alpha)]


def selection_scale(k: int, alpha: float, g: int, accounting: str, amount: float) -> float:
    """Noisy-max scale for one alpha over ≤ g groups at share ``amount`` (ε or ρ)."""
    if amount <= 0:
        raise ValueError("budget share must be > 0")
    delta = max(score_sensitivity(k, alpha), 1)
    if accounting == "pure":
        return 2.0 * g * delta / amount
    if accounting == "zcdp":
        return delta * math.sqrt(g / (2.0 * amount))
    raise ValueError(f"unknown accounting {accounting!r}")


def selection_cost(k: int, alpha: float, g: int, accounting: str, scale: float) -> float:
    """Inverse of :func:`selection_scale` (ε for pure, ρ for zcdp)."""
    delta = max(score_sensitivity(k, alpha), 1)
    if accounting == "pure":
        return 2.0 * g * delta / scale
    return g * delta * delta / (2.0 * scale * scale)


def rank_error(scale: float, alpha: float, m: int, beta: float = 0.05) -> float:
    """Rows: with prob. ≥ 1−β the released candidate's rank is within this of the best candidate's."""
    _, den = alpha_fraction(alpha)
    return scale * math.log(max(m, 1) / beta) / den


def select(bins: Sequence[int], alpha: float, accounting: str, scale: float) -> int:
    """Index of the candidate released for ``alpha`` (exponential mechanism via OpenDP)."""
    return noisy_argmin(scores(bins, alpha), accounting, scale)


def histogram_noise(k: int, g: int, accounting: str, amount: float) -> NoiseSpec:
    """Noise on the per-bin counts used for the value CI (c = k per group)."""
    return noise_for(k, g, accounting, amount)


def _laplace_margins(b: float, a: int, c: int, n_cand: int, log_term: float):
    import numpy as np

    q = math.exp(-1.0 / b)
    wmax = max(a, c, 1)
    u = 1.0 - np.geomspace(1e-9, 1.0 - 1e-6, 4000)  # fractions of the MGF's radius 1/(b·wmax)
    lam = u / (b * wmax)

    def log_mgf(x):
        return 2.0 * math.log1p(-q) - np.log1p(-q * np.exp(x)) - np.log1p(-q * np.exp(-x))

    ka, kc = log_mgf(lam * a), log_mgf(lam * c)
    out = []
    for i in range(n_cand):
        bound = ((i + 1) * ka + (n_cand - i) * kc + log_term) / lam
        out.append(float(np.min(bound)))
    return out


@lru_cache(maxsize=512)
def ci_margins(kind: NoiseKind, scale: float, n_cand: int, alpha: float, beta: float) -> tuple[float, ...]:
    """t_i (in den units) with P(|E_i| ≥ t_i) ≤ β/B for each of the B candidates."""
    num, den = alpha_fraction(alpha)
    a, c = den - num, num
    log_term = math.log(2.0 * n_cand / beta)
    if kind == "gaussian":
        return tuple(
            scale * math.sqrt(2.0 * ((i + 1) * a * a + (n_cand - i) * c * c) * log_term) for i in range(n_cand)
        )
    if kind == "laplace":
        return tuple(_laplace_margins(scale, a, c, n_cand, log_term))
    raise ValueError(f"unknown noise kind {kind!r}")


def value_ci(
    noisy_bins: Sequence[int],
    candidates: Sequence[float],
    alpha: float,
    noise: NoiseSpec,
    beta: float,
    bounds: tuple[float, float],
) -> tuple[float, float]:
    """(low, high) covering the true α-quantile w.p. ≥ 1−β, from noisy bins only."""
    d = signed_scores(noisy_bins, alpha)
    t = ci_margins(noise.kind, noise.scale, len(candidates), float(alpha), float(beta))
    low, high = bounds
    for i, c in enumerate(candidates):
        if d[i] + t[i] < 0:
            low = max(low, c)
    for i in range(len(candidates) - 1, -1, -1):
        if d[i] - t[i] > 0:
            high = min(high, candidates[i])
    if low > high:  # only possible outside the 1−β event; keep a well-formed interval
        low, high = high, low
    return float(low), float(high)


__all__ = [
    "alpha_fraction",
    "ci_margins",
    "cumulative_below",
    "histogram_noise",
    "rank_error",
    "score_sensitivity",
    "scores",
    "select",
    "selection_cost",
    "selection_scale",
    "signed_scores",
    "value_ci",
]
