"""Sensitivities and noise scales for a plan's measures.

Contribution model (``pdbg.sql.plan``): after bounding in SQL a privacy unit touches at
most ``g`` groups and changes one measure in one group by at most ``c`` integer units.
Released as one vector over all groups, a measure therefore has

    L1 = g·c        (sum of |change| over the ≤ g groups)
    L2 = sqrt(g)·c  (Euclidean norm of ≤ g changes of size ≤ c)

and the noise for a budget share is

    zcdp:  σ = L2 / sqrt(2ρ_m)   (discrete Gaussian: ρ = Δ₂²/(2σ²); OpenDP's make_gaussian map)
    pure:  b = L1 / ε_m          (discrete Laplace: ε = Δ₁/b;       OpenDP's make_laplace map)

Tests check both formulas against the maps of the OpenDP measurements that
``pdbg.dp.noise`` actually samples from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pdbg.dp.noise import NoiseKind, noise_kind


@dataclass(frozen=True)
class NoiseSpec:
    """The noise one measure (or selection count) receives: kind, scale, and its sensitivities."""

    kind: NoiseKind
    scale: float
    l1: float
    l2: float


def sensitivities(c: int, g: int) -> tuple[float, float]:
    """(L1, L2) of a per-group measure with per-group bound ``c`` over ≤ ``g`` groups."""
    if c < 0 or g < 1:
        raise ValueError("need c >= 0 and g >= 1")
    return float(g * c), math.sqrt(g) * c


def gaussian_sigma(l2: float, rho: float) -> float:
    if rho <= 0:
        raise ValueError("rho must be > 0")
    return l2 / math.sqrt(2.0 * rho)


def gaussian_rho(l2: float, sigma: float) -> float:
    return l2 * l2 / (2.0 * sigma * sigma)


def laplace_scale(l1: float, epsilon: float) -> float:
    if epsilon <= 0:
        raise ValueError("epsilon must be > 0")
    return l1 / epsilon


def laplace_epsilon(l1: float, b: float) -> float:
    return l1 / b


def noise_for(c: int, g: int, accounting: str, amount: float) -> NoiseSpec:
    """Noise for a measure with bound ``c`` over ``g`` groups given ρ (zcdp) or ε (pure).

    A measure with ``c == 0`` cannot change with any one unit; it still gets the noise of
    c = 1 so that nothing is ever released exactly (defensive; the planner never emits it).
    """
    l1, l2 = sensitivities(max(c, 1), g)
    kind = noise_kind(accounting)
    scale = gaussian_sigma(l2, amount) if kind == "gaussian" else laplace_scale(l1, amount)
    return NoiseSpec(kind, scale, l1, l2)


def amount_for_scale(c: int, g: int, accounting: str, scale: float) -> float:
    """Inverse of :func:`noise_for`: the ρ (zcdp) or ε (pure) that yields ``scale``."""
    l1, l2 = sensitivities(max(c, 1), g)
    return gaussian_rho(l2, scale) if noise_kind(accounting) == "gaussian" else laplace_epsilon(l1, scale)


__all__ = [
    "NoiseSpec",
    "amount_for_scale",
    "gaussian_rho",
    "gaussian_sigma",
    "laplace_epsilon",
    "laplace_scale",
    "noise_for",
    "sensitivities",
]
