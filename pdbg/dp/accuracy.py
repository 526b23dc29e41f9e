"""Confidence intervals from noise scales, and the inverse (accuracy → scale).

Every released integer is ``exact + Z`` with Z discrete Gaussian (σ) or discrete
Laplace (b). The CI of a released value v at level 1−α is ``[v − h, v + h]`` where
``h = half_width(kind, scale, alpha)`` is the smallest integer with P(|Z| > h) ≤ α.
It depends on the scale only (public), never on the data, so stating it leaks nothing.
Clamping bias (values cut to policy bounds, rows/groups dropped by contribution caps)
is *not* in the CI; the planner states it separately in ``Plan.notes``.

How h is computed (documented because coverage tests rely on it):

* discrete Laplace (q = e^{−1/b}): the exact tail P(|Z| > h) = 2q^{h+1}/(1+q), solved for the
  smallest h (closed form, then checked). Equals ⌈t⌉ − 1 for OpenDP's
  ``discrete_laplacian_scale_to_accuracy`` t (a test checks), without its overflow at tiny b.
* discrete Gaussian, σ ≤ 1000: OpenDP's ``discrete_gaussian_scale_to_accuracy`` (exact,
  but its run time grows linearly with σ), again h = ⌈t⌉ − 1.
* discrete Gaussian, σ > 1000: the bound P(Z ≥ t) ≤ Φ̄((t−1)/σ) (the pmf e^{−z²/2σ²} is
  decreasing on z ≥ 0, so Σ_{z≥t} ≤ ∫_{t−1}^∞, and the normaliser Σ_z e^{−z²/2σ²} ≥ √(2π)σ
  by Poisson summation), hence h = ⌈σ·z_{1−α/2}⌉ gives P(|Z| > h) ≤ α. Off by at most 1
  from the exact value at these scales.

The inverse, :func:`scale_for_half_width`, is the largest scale whose ``half_width`` is at
most the requested one (bisection over the same function, so the round trip is exact).
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

from pdbg.dp.noise import NoiseKind

DEFAULT_ALPHA = 0.05
_OPENDP_GAUSSIAN_MAX_SCALE = 1000.0


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not (0.0 < a < 1.0):
        raise ValueError("alpha must be in (0, 1), e.g. 0.05 for 95% intervals")
    return a


def _accuracy_module():
    import opendp.accuracy as dpacc
    import opendp.mod as dpmod

    dpmod.enable_features("contrib")
    return dpacc


def z_two_sided(alpha: float) -> float:
    """z with P(|N(0,1)| > z) = alpha."""
    return NormalDist().inv_cdf(1.0 - _check_alpha(alpha) / 2.0)


def _laplace_half_width(b: float, alpha: float) -> int:
    """Exact: P(|Z| > h) = 2q^{h+1}/(1+q), q = e^{-1/b}; smallest h ≥ 0 meeting alpha."""
    q = math.exp(-1.0 / b)
    if q == 0.0:
        return 0

    def tail(h: int) -> float:
        return 2.0 * q ** (h + 1) / (1.0 + q)

    h = max(0, math.ceil(math.log(alpha * (1.0 + q) / 2.0) / math.log(q)) - 1)
    while tail(h) > alpha:
        h += 1
    while h > 0 and tail(h - 1) <= alpha:
        h -= 1
    return h


@lru_cache(maxsize=8192)
def half_width(kind: NoiseKind, scale: float, alpha: float = DEFAULT_ALPHA) -> int:
    """Smallest integer h with P(|Z| > h) ≤ alpha for integer noise of this kind and scale."""
    alpha = _check_alpha(alpha)
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError("scale must be a finite number > 0")
    if kind == "laplace":
        return _laplace_half_width(scale, alpha)
    if kind == "gaussian":
        if scale <= _OPENDP_GAUSSIAN_MAX_SCALE:
            t = float(_accuracy_module().discrete_gaussian_scale_to_accuracy(scale, alpha))
            return max(0, math.ceil(t) - 1)
        return math.ceil(scale * z_two_sided(alpha))
    raise ValueError(f"unknown noise kind {kind!r}")


@lru_cache(maxsize=4096)
def scale_for_half_width(kind: NoiseKind, h: float, alpha: float = DEFAULT_ALPHA) -> float:
    """Largest scale whose :func:`half_width` is ≤ ``h`` ("within ±h at 1−alpha" → scale).

    ``h`` is in integer measure units; a fractional h is floored (integer noise).
    """
    alpha = _check_alpha(alpha)
    hi_int = math.floor(float(h))
    if hi_int < 1:
        raise ValueError("a half-width below 1 cannot be met with integer noise; ask for ±1 or more")
    lo, hi = 1e-3, 1.0
    while half_width(kind, hi, alpha) <= hi_int:
        lo, hi = hi, hi * 2.0
    if half_width(kind, lo, alpha) > hi_int:  # pragma: no cover - h >= 1 is always met at tiny scales
        raise ValueError("half-width too small")
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if mid in (lo, hi):
            break
        if half_width(kind, mid, alpha) <= hi_int:
            lo = mid
        else:
            hi = mid
    return lo


def interval(value: float, h: float) -> tuple[float, float]:
    """``[value − h, value + h]``."""
    return value - h, value + h


__all__ = ["DEFAULT_ALPHA", "half_width", "interval", "scale_for_half_width", "z_two_sided"]
