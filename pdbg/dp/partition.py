"""DP partition selection: which groups of a private key may appear in an answer.

A group whose key is private may reveal, by its mere presence, that some unit exists
(DESIGN.md §2). So a candidate group (one the engine saw) is released only if its noisy
count of distinct units (``__units``, each unit counted in ≤ g groups after bounding)
exceeds a threshold τ:

    released  ⇔  __units + Z > τ,   Z integer noise at the selection's share of the budget

Privacy argument (Korolova et al. 2009; Rogers 2023 as implemented by OpenDP's
``make_laplace_threshold`` / ``make_gaussian_threshold``). Adding or removing one unit
changes the unit counts of ≤ g groups by 1 each (L1 = g, L2 = √g):

* groups present in both neighbours: their noisy counts are the Laplace / Gaussian
  mechanism on a vector with that sensitivity → ε = g/b (pure) or ρ = g/(2σ²) (zCDP);
* groups present only in the larger neighbour have count exactly 1 there; one of them
  is released with probability P(1 + Z > τ) = P(Z ≥ τ). A union bound over ≤ g of them
  gives the δ of the mechanism: δ = g · P(Z ≥ τ) ≤ ``policy.partition_delta``.

The threshold is the smallest integer meeting that δ (analytic, cached; no search):

* discrete Laplace (q = e^{−1/b}): P(Z ≥ τ) = q^τ / (1 + q)  → τ = ⌈b·(ln(g/δ) − ln(1+q))⌉
* discrete Gaussian: P(Z ≥ τ) ≤ Φ̄((τ−1)/σ) (see ``pdbg.dp.accuracy``) → τ = 1 + ⌈σ·Φ̄⁻¹(δ/g)⌉

A test checks τ against OpenDP's own threshold measurements: same ε/ρ, and OpenDP's δ
at our τ is at most the policy's δ. The noisy unit counts are not released; only the
selection decision is used (values of selected groups get their own noise). Released
groups are later sorted by key, so their order never reflects data order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Sequence

from pdbg.dp.mechanisms import NoiseSpec, noise_for
from pdbg.dp.noise import NoiseKind, add_noise


@dataclass(frozen=True)
class Selection:
    """Outcome of partition selection over candidate groups (mask aligned with the input)."""

    mask: tuple[bool, ...]
    threshold: int
    noise: NoiseSpec


def _tail(kind: NoiseKind, scale: float, tau: int) -> float:
    """An upper bound on P(Z ≥ τ) for τ ≥ 1 (exact for discrete Laplace)."""
    if kind == "laplace":
        q = math.exp(-1.0 / scale)
        return q**tau / (1.0 + q)
    return 0.5 * math.erfc((tau - 1) / scale / math.sqrt(2.0))


def selection_delta(kind: NoiseKind, scale: float, g: int, threshold: int) -> float:
    """δ of releasing groups whose noisy unit count exceeds ``threshold`` (union bound over g)."""
    return g * _tail(kind, scale, threshold)


@lru_cache(maxsize=1024)
def selection_threshold(kind: NoiseKind, scale: float, g: int, delta: float) -> int:
    """Smallest integer τ ≥ 1 with ``selection_delta(kind, scale, g, τ) ≤ delta``."""
    if not (0.0 < delta < 1.0) or g < 1 or not scale > 0:
        raise ValueError("need 0 < delta < 1, g >= 1 and scale > 0")
    if kind == "laplace":
        q = math.exp(-1.0 / scale)
        tau = math.ceil(scale * (math.log(g / delta) - math.log1p(q)))
    elif kind == "gaussian":
        tau = 1 + math.ceil(scale * NormalDist().inv_cdf(1.0 - delta / g))
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    tau = max(tau, 1)
    while selection_delta(kind, scale, g, tau) > delta:  # float safety: never under-shoot
        tau += 1
    while tau > 1 and selection_delta(kind, scale, g, tau - 1) <= delta:
        tau -= 1
    return tau


def selection_noise(g: int, accounting: str, amount: float) -> NoiseSpec:
    """Noise on the distinct-unit counts: each unit adds 1 to ≤ g groups (c = 1)."""
    return noise_for(1, g, accounting, amount)


def select_partitions(units: Sequence[int], *, g: int, accounting: str, amount: float, delta: float) -> Selection:
    """Noisy threshold test for each candidate group's distinct-unit count.

    ``amount`` is the selection's ρ (zcdp) or ε (pure) share; ``delta`` is
    ``policy.partition_delta``. Returns a mask over ``units`` (same order).
    """
    spec = selection_noise(g, accounting, amount)
    tau = selection_threshold(spec.kind, spec.scale, g, float(delta))
    noisy = add_noise([max(0, int(u)) for u in units], spec.kind, spec.scale)
    return Selection(tuple(v > tau for v in noisy), tau, spec)


__all__ = ["Selection", "select_partitions", "selection_delta", "selection_noise", "selection_threshold"]
