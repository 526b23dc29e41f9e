"""Privacy accounting: exact budget units and the zCDP <-> (ε, δ) conversions.

Why integers: a ledger that adds floats drifts (0.1 added ten times is not 1.0), so
after thousands of releases it would either refuse a query that fits or allow one
that does not. Every amount the ledger stores is an integer count of ``UNIT`` (1e-15):
costs are rounded UP and capacities DOWN, so rounding can only make pdbg stricter.
``to_units`` reads a float through its shortest decimal form (``repr``), so a budget
typed as ``0.1`` is exactly 10**14 units and ten such queries fit a grant of 1.0.

Accounting convention (one per dataset, never mixed within a grant; DESIGN.md §2):

* A grant (or a dataset-wide cap) holds (ε_g, δ_g).
* ``zcdp`` accounts: δ_g is split in two halves. Half converts zCDP to (ε, δ) at the end,
  the other half is the δ budget for partition selection. Privacy capacity is
  ρ_cap = epsilon_to_rho(ε_g, δ_g/2); δ capacity is δ_g/2. A query asking for ε_i costs
  ρ_i = epsilon_to_rho(ε_i, δ_g/2) (so one query at ε_g uses the whole grant, exactly)
  plus δ_i for partition selection. Spent is shown as ε = rho_to_epsilon(Σρ_i, δ_g/2) and
  δ_spent = Σδ_i (selection only); the overall guarantee is (ε, δ_g/2 + Σδ_i) ⊆ (ε, δ_g).
  zCDP composes sub-additively: spent + remaining can exceed granted (the zCDP discount).
* ``pure`` accounts: capacity ε_g and δ_g; a query costs ε_i (+ δ_i from selection);
  basic composition, spent = Σε_i, δ_spent = Σδ_i.

The ρ -> ε direction uses OpenDP's ``make_zCDP_to_approxDP`` (tighter than the classic
bound ε = ρ + 2·sqrt(ρ·ln(1/δ))): the closed-form optimum, nudged up by 4e-12, is accepted
when OpenDP's profile certifies δ(ε) <= δ (0.07 ms; OpenDP's own ε search takes 2 ms and
stays the fallback), so the shown ε is never below OpenDP's. ε -> ρ inverts it (closed-form optimum, confirmed by
OpenDP; bisection over integer units as the fallback), so
``rho_to_epsilon(epsilon_to_rho(e, d), d) <= e`` always holds. If OpenDP cannot be used
the classic closed forms take over; they err in the same (conservative) direction:
a larger ε for a given ρ, a smaller ρ for a given ε. Both directions are cached.

OpenDP is imported lazily (core modules only, never ``opendp.prelude``) so that
``import pdbg`` stays fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Literal

from pdbg.errors import PolicyError

Accounting = Literal["zcdp", "pure"]
ACCOUNTINGS: tuple[str, ...] = ("zcdp", "pure")

UNIT = 1e-15
_PER_ONE = 10**15
# SQLite INTEGER is 64-bit signed; keep every single amount far below it so that sums
# of reserved + committed amounts (bounded by the capacity) can never overflow.
MAX_UNITS = 2**62


# ---------------------------------------------------------------------------
# exact units


def to_units(x: float, round: Literal["up", "down"] = "up") -> int:
    """``x`` as an integer number of ``UNIT``; ``up`` for costs, ``down`` for capacities."""
    if round not in ("up", "down"):
        raise ValueError("round must be 'up' or 'down'")
    xf = float(x)
    if not math.isfinite(xf) or xf < 0:
        raise PolicyError(
            "a privacy amount must be a finite number >= 0",
            "Use a non-negative epsilon/delta within the dataset policy's limits.",
        )
    scaled = Decimal(repr(xf)) * _PER_ONE
    n = int(scaled.to_integral_value(rounding=ROUND_CEILING if round == "up" else ROUND_FLOOR))
    if n > MAX_UNITS:
        raise PolicyError(
            "a privacy amount is too large to account for (more than 4611 in epsilon or rho)",
            "Use a smaller epsilon; budgets this large give no meaningful privacy.",
        )
    return n


def from_units(n: int) -> float:
    """Units back to a float (for display and for calibrating mechanisms)."""
    return int(n) / _PER_ONE


# ---------------------------------------------------------------------------
# conversions


def _check_delta(delta: float) -> float:
    d = float(delta)
    if not (0.0 < d < 1.0):
        raise PolicyError(
            "zCDP accounting needs a delta strictly between 0 and 1",
            "Set the grant's delta (for example 1e-6) in the dataset policy.",
        )
    return d


def classic_rho_to_epsilon(rho: float, delta: float) -> float:
    """Bun & Steinke (2016): ε = ρ + 2·sqrt(ρ·ln(1/δ)). Looser than OpenDP's conversion."""
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def classic_epsilon_to_rho(epsilon: float, delta: float) -> float:
    """Exact inverse of :func:`classic_rho_to_epsilon`: (sqrt(L + ε) − sqrt(L))², L = ln(1/δ)."""
    log_term = math.log(1.0 / delta)
    return (math.sqrt(log_term + epsilon) - math.sqrt(log_term)) ** 2


@lru_cache(maxsize=1)
def _opendp_converter():
    """A zCDP Gaussian measurement (scale 1) and its approxDP conversion, built once."""
    import opendp.combinators as dpc
    import opendp.domains as dpd
    import opendp.measurements as dpm
    import opendp.metrics as dpmet
    import opendp.mod as dpmod

    dpmod.enable_features("contrib")
    gauss = dpm.make_gaussian(dpd.atom_domain(T=float, nan=False), dpmet.absolute_distance(T=float), scale=1.0)
    return gauss, dpc.make_zCDP_to_approxDP(gauss)


def _opendp_rho_to_epsilon(rho: float, delta: float) -> float:
    gauss, to_approx = _opendp_converter()
    # A scale-1 Gaussian at sensitivity d has ρ = d²/2. Nudge d up until OpenDP's own ρ is
    # at least the requested one, so float rounding never converts a smaller ρ.
    d_in = math.sqrt(2.0 * rho)
    for _ in range(64):
        if gauss.map(d_in) >= rho:
            break
        d_in = math.nextafter(d_in, math.inf)
    profile = to_approx.map(d_in)
    # OpenDP's profile.epsilon(δ) searches (~2 ms); profile.delta(ε) evaluates (~0.07 ms).
    # Propose the closed-form optimum nudged up by 4e-12 and let OpenDP certify it: if its
    # δ at that ε is within δ, the release is (ε, δ)-DP by OpenDP's own account.
    proposal = _cks_rho_to_epsilon(rho, delta) * (1.0 + 4e-12)
    if math.isfinite(proposal) and proposal > 0 and float(profile.delta(proposal)) <= delta:
        return proposal
    return float(profile.epsilon(delta))


@lru_cache(maxsize=4096)
def rho_to_epsilon(rho: float, delta: float) -> float:
    """The ε at which a ρ-zCDP release is (ε, δ)-DP (OpenDP's conversion; cached)."""
    rho = float(rho)
    if not math.isfinite(rho) or rho < 0:
        raise PolicyError("rho must be a finite number >= 0", "This is a pdbg bug; please report it.")
    delta = _check_delta(delta)
    if rho == 0.0:
        return 0.0
    try:
        return _opendp_rho_to_epsilon(rho, delta)
    except Exception:  # noqa: BLE001 - any OpenDP failure: use the looser bound (same direction)
        return classic_rho_to_epsilon(rho, delta)


@lru_cache(maxsize=1024)
def epsilon_to_rho_units(epsilon: float, delta: float) -> int:
    """The largest ρ, in whole units, whose (ε, δ) conversion is at most ``epsilon`` (to ~1e-10).

    Every returned k is confirmed by OpenDP's conversion, so it round-trips by
    construction: ``rho_to_epsilon(from_units(k), delta) <= epsilon``. It is the largest
    such k up to ~1e-10 relative (exactly the largest when the bisection fallback runs).
    The same ε always gives the same k, so a query at a grant's full ε fits its capacity.
    The classic closed form is a valid lower starting point (it is never larger).
    """
    epsilon = float(epsilon)
    to_units(epsilon)  # validates: finite, >= 0, in range
    delta = _check_delta(delta)
    if epsilon == 0.0:
        return 0

    def fits(k: int) -> bool:
        return rho_to_epsilon(from_units(k), delta) <= epsilon

    # The closed-form optimum of the Canonne-Kamath-Steinke conversion (what OpenDP computes)
    # agrees with OpenDP to ~1e-12 relative. Step back 3e-11 (more than the 4e-12 margin of
    # rho_to_epsilon's certified proposal) and confirm with ONE conversion: a new ε on the
    # query path then costs one conversion, not a bisection. The result is within ~1e-10 of
    # the largest ρ, never above it.
    guess = to_units(_cks_epsilon_to_rho(epsilon, delta), "down")
    quick = guess - (guess >> 35) - 1
    if quick > 0 and fits(quick):
        return quick
    # Otherwise (extreme ε or δ) bisect to the unit from a tight bracket around the guess.
    width = max(64, guess // 10**11)
    lo, hi = max(guess - width, 0), guess + width
    if lo > 0 and not fits(lo):
        lo = to_units(classic_epsilon_to_rho(epsilon, delta), "down")   # the classic bound is never larger
        while lo > 0 and not fits(lo):  # defensive: only if a conversion were non-monotone
            lo //= 2
        hi = max(2 * lo, 1)
    while fits(hi):
        lo, hi = hi, 2 * hi
        if hi > MAX_UNITS:
            raise PolicyError("epsilon is too large to account for", "Use a smaller epsilon.")
    # invariant: fits(lo) (or lo == 0), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _cks_epsilon_to_rho(epsilon: float, delta: float) -> float:
    """max over α > 1 of (ε − c(α)/(α−1))/α, c(α) = ln(1/δ) + (α−1)·ln(1−1/α) − ln α.

    The inverse of the tight zCDP → (ε, δ) conversion (Canonne, Kamath, Steinke 2020,
    Prop. 12), by golden-section search over ln(α−1). Only a starting point: the result
    is always confirmed against OpenDP's own conversion.
    """
    log_inv_delta = math.log(1 / delta)

    def g(t: float) -> float:
        a = 1 + math.exp(t)
        return (epsilon - _cks_c(a, log_inv_delta) / (a - 1)) / a

    return max(0.0, _golden_max(g))


def _cks_rho_to_epsilon(rho: float, delta: float) -> float:
    """min over α > 1 of αρ + c(α)/(α−1): the tight zCDP → (ε, δ) conversion (CKS 2020),
    by golden-section search over ln(α−1). Only a proposal: OpenDP certifies it."""
    log_inv_delta = math.log(1 / delta)

    def neg_f(t: float) -> float:
        a = 1 + math.exp(t)
        return -(a * rho + _cks_c(a, log_inv_delta) / (a - 1))

    return max(0.0, -_golden_max(neg_f))


def _cks_c(a: float, log_inv_delta: float) -> float:
    """c(α) = ln(1/δ) + (α−1)·ln(1−1/α) − ln α of the CKS conversion."""
    return log_inv_delta + (a - 1) * math.log1p(-1 / a) - math.log(a)


def _golden_max(h, lo: float = math.log(1e-6), hi: float = math.log(1e7), steps: int = 120) -> float:
    """The maximum of a unimodal ``h`` over t = ln(α−1) in [lo, hi] (golden-section search)."""
    phi = (math.sqrt(5) - 1) / 2
    x1, x2 = hi - phi * (hi - lo), lo + phi * (hi - lo)
    f1, f2 = h(x1), h(x2)
    for _ in range(steps):
        if f1 < f2:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + phi * (hi - lo)
            f2 = h(x2)
        else:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - phi * (hi - lo)
            f1 = h(x1)
    return max(f1, f2)


def epsilon_to_rho(epsilon: float, delta: float) -> float:
    """The largest ρ whose (ε, δ) conversion is at most ε (a multiple of ``UNIT``)."""
    return from_units(epsilon_to_rho_units(epsilon, delta))


# ---------------------------------------------------------------------------
# costs and capacities


@dataclass(frozen=True)
class Cost:
    """What one release charges.

    ``rho`` is set for zCDP accounting and ``None`` for pure. ``epsilon`` is the pure-DP
    cost, or for zCDP the (ε, δ_g/2) value shown to people. ``delta`` is the δ charged for
    partition selection. ``privacy_units`` (ρ or ε) and ``delta_units`` are what the
    ledger adds up; when not given they are computed from the floats, rounded up.
    """

    rho: float | None
    epsilon: float
    delta: float = 0.0
    privacy_units: int = field(default=-1, compare=True)
    delta_units: int = field(default=-1, compare=True)

    def __post_init__(self) -> None:
        if self.rho is not None:
            to_units(self.rho)
        to_units(self.epsilon)
        to_units(self.delta)
        if self.delta >= 1.0:
            raise PolicyError("delta must be below 1", "Use a delta such as 1e-6.")
        if self.privacy_units < 0:
            object.__setattr__(self, "privacy_units", to_units(self.rho if self.rho is not None else self.epsilon))
        if self.delta_units < 0:
            object.__setattr__(self, "delta_units", to_units(self.delta))
        if self.privacy_units > MAX_UNITS or self.delta_units > MAX_UNITS:
            raise PolicyError("a privacy amount is too large to account for", "Use a smaller epsilon.")

    @property
    def accounting(self) -> Accounting:
        return "zcdp" if self.rho is not None else "pure"

    @property
    def is_zero(self) -> bool:
        return self.privacy_units == 0 and self.delta_units == 0

    @classmethod
    def zero(cls, accounting: Accounting = "zcdp") -> Cost:
        """The cost of a cache hit."""
        return cls(rho=0.0 if accounting == "zcdp" else None, epsilon=0.0, delta=0.0)

    def units(self) -> dict[str, int]:
        """The exact form written to the audit log (``cost_units``)."""
        return {"privacy": self.privacy_units, "delta": self.delta_units}

    def to_dict(self) -> dict:
        return {
            "accounting": self.accounting,
            "rho": self.rho,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "units": self.units(),
        }


def query_cost(
    accounting: Accounting, epsilon: float, *, grant_delta: float, selection_delta: float = 0.0
) -> Cost:
    """The cost of a release asked for at ``epsilon`` on a grant with δ = ``grant_delta``.

    zCDP: ρ_i = epsilon_to_rho(ε_i, δ_g/2), exact in units, so a query at the full grant ε
    fits the capacity exactly. Pure: ε_i itself. ``selection_delta`` is the δ that
    partition selection spends (0 when every group key is public).
    """
    _check_accounting(accounting)
    if accounting == "zcdp":
        k = epsilon_to_rho_units(epsilon, _check_delta(grant_delta) / 2.0)
        return Cost(rho=from_units(k), epsilon=float(epsilon), delta=float(selection_delta), privacy_units=k)
    return Cost(rho=None, epsilon=float(epsilon), delta=float(selection_delta))


@dataclass(frozen=True)
class Capacity:
    """What an account may spend, in units, and the δ reserved for the ρ -> ε conversion."""

    accounting: Accounting
    privacy_units: int
    delta_units: int
    conversion_delta: float


def capacity(accounting: Accounting, epsilon: float, delta: float) -> Capacity:
    """Capacity of a grant or dataset cap of (ε, δ) under the convention above (rounded down)."""
    _check_accounting(accounting)
    if accounting == "zcdp":
        half = _check_delta(delta) / 2.0
        return Capacity("zcdp", epsilon_to_rho_units(epsilon, half), to_units(half, "down"), half)
    if not (0.0 <= float(delta) < 1.0):
        raise PolicyError("delta must be in [0, 1)", "Use a delta such as 1e-6, or 0 with public keys only.")
    return Capacity("pure", to_units(epsilon, "down"), to_units(delta, "down"), 0.0)


def selection_queries_allowed(accounting: Accounting, epsilon: float, delta: float, partition_delta: float) -> int:
    """How many private-key (partition-selection) queries the δ capacity of an account of
    (ε, δ) pays for, at ``partition_delta`` each. Data owners see it when they add a dataset,
    for a grant (δ = ``delta``) and for the dataset's lifetime (δ = ``dataset_delta``, which
    defaults to one grant's δ: then a grant's allowance is also the dataset's)."""
    per_query = to_units(partition_delta)
    return capacity(accounting, epsilon, delta).delta_units // per_query if per_query else 0


def units_to_epsilon(accounting: Accounting, privacy_units: int, conversion_delta: float) -> float:
    """Display ε for an amount of privacy units (ρ converted at the conversion δ for zCDP)."""
    if accounting == "zcdp":
        return rho_to_epsilon(from_units(privacy_units), conversion_delta)
    return from_units(privacy_units)


def _check_accounting(accounting: str) -> None:
    if accounting not in ACCOUNTINGS:
        raise PolicyError(
            f"unknown accounting {accounting!r}",
            "Use accounting: zcdp (default) or pure in the dataset policy.",
        )


__all__ = [
    "ACCOUNTINGS",
    "MAX_UNITS",
    "UNIT",
    "Accounting",
    "Capacity",
    "Cost",
    "capacity",
    "classic_epsilon_to_rho",
    "classic_rho_to_epsilon",
    "epsilon_to_rho",
    "epsilon_to_rho_units",
    "from_units",
    "query_cost",
    "rho_to_epsilon",
    "selection_queries_allowed",
    "to_units",
    "units_to_epsilon",
]
