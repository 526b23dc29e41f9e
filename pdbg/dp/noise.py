"""The only noise samplers in pdbg: exact integer noise and noisy-max selection from OpenDP.

Why this module exists (DESIGN.md §2, invariant 8):

* Every random draw that protects privacy comes from OpenDP's exact samplers over
  integers (discrete Gaussian for ``zcdp``, discrete Laplace for ``pure``), fed by OS
  randomness. Integer noise on integer (fixed-point) aggregates avoids the
  floating-point attacks on textbook Laplace (Mironov 2012).
* There is no seed and no switch to turn noise off. Tests make releases deterministic
  by monkeypatching :func:`_opendp_sample` (the single draw function) from a pytest
  fixture in ``tests/dp/conftest.py``; production code never references that name
  outside this module (a test checks it).
* Building an OpenDP measurement costs milliseconds, so measurements are cached per
  (operation, scale) and the per-query noise step stays a few milliseconds.
* Vectors of 512 or more integers are drawn in chunks on a small thread pool (same
  measurement, one independent draw per element; OpenDP's calls release the GIL).

Operations (``op``):

``gaussian``   add discrete Gaussian noise N_Z(0, scale²) to each integer (zCDP);
``laplace``    add discrete Laplace noise (scale b) to each integer (pure DP);
``argmin_zcdp`` / ``argmin_pure``  report-noisy-min over integer scores (OpenDP
               ``make_noisy_max(negate=True)`` under zero-concentrated / max divergence).
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Literal, Sequence

NoiseKind = Literal["gaussian", "laplace"]
Op = Literal["gaussian", "laplace", "argmin_zcdp", "argmin_pure"]

_OPS: tuple[str, ...] = ("gaussian", "laplace", "argmin_zcdp", "argmin_pure")
# OpenDP's integer noise and score vectors are 64-bit; Python ints beyond that cannot be noised.
_I64_MAX = 2**63 - 1


def noise_kind(accounting: str) -> NoiseKind:
    """``zcdp`` → discrete Gaussian, ``pure`` → discrete Laplace."""
    if accounting == "zcdp":
        return "gaussian"
    if accounting == "pure":
        return "laplace"
    raise ValueError(f"unknown accounting {accounting!r}")


def _check_scale(scale: float) -> float:
    s = float(scale)
    if not (math.isfinite(s) and s > 0):
        raise ValueError("noise scale must be a finite number > 0")
    return s


@lru_cache(maxsize=256)
def _measurement(op: str, scale: float):
    """Build (once per op and scale) the OpenDP measurement that performs ``op``."""
    import opendp.domains as dpd
    import opendp.measurements as dpm
    import opendp.measures as dpms
    import opendp.metrics as dpmet
    import opendp.mod as dpmod

    dpmod.enable_features("contrib")
    if op == "gaussian":
        domain = dpd.vector_domain(dpd.atom_domain(T="i64"))
        return dpm.make_gaussian(domain, dpmet.l2_distance(T="i64"), scale=scale)
    if op == "laplace":
        domain = dpd.vector_domain(dpd.atom_domain(T="i64"))
        return dpm.make_laplace(domain, dpmet.l1_distance(T="i64"), scale=scale)
    measure = dpms.zero_concentrated_divergence() if op == "argmin_zcdp" else dpms.max_divergence()
    domain = dpd.vector_domain(dpd.atom_domain(T="u64"))
    return dpm.make_noisy_max(domain, dpmet.linf_distance(T="u64"), measure, scale=scale, negate=True)


# Long noise vectors (e.g. the value-CI histograms of a quantile query, 200 bins per group) are
# split across threads: OpenDP's exact samplers take ~10 µs per integer, and its ctypes calls
# release the GIL, so the cores DuckDB used a moment ago draw in parallel. Each element still
# gets one independent draw from the same measurement: the distribution is unchanged.
_CHUNK_MIN = 256
_pool_state: dict[str, object] = {}
_pool_lock = threading.Lock()


def _pool() -> tuple[ThreadPoolExecutor | None, int]:
    """A small per-process thread pool and its size (re-created after fork: a child inherits no threads)."""
    workers = min(4, os.cpu_count() or 1)
    if workers < 2:
        return None, 1
    with _pool_lock:
        if _pool_state.get("pid") != os.getpid():
            _pool_state["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pdbg-noise")
            _pool_state["pid"] = os.getpid()
        return _pool_state["pool"], workers  # type: ignore[return-value]


def _opendp_sample(op: str, scale: float, values: list[int]) -> list[int]:
    """THE draw: run the cached OpenDP measurement for ``op`` on ``values``.

    Returns the noisy vector for ``gaussian``/``laplace`` and ``[index]`` for the argmin
    ops. This is the single function tests replace (monkeypatch) to make noise
    deterministic; nothing in production can replace or bypass it.
    """
    import numpy as np

    # A typed array crosses into OpenDP without a Python-level check per element (values are
    # validated by the callers: 64-bit, and non-negative for the argmin scores).
    arr = np.asarray(values, dtype=np.int64 if op in ("gaussian", "laplace") else np.uint64)
    meas = _measurement(op, scale)
    if op not in ("gaussian", "laplace"):
        return [int(meas(arr))]
    pool, workers = _pool() if len(arr) >= 2 * _CHUNK_MIN else (None, 1)
    if pool is None:
        return [int(v) for v in meas(arr)]
    n_chunks = min(workers, len(arr) // _CHUNK_MIN)
    parts = list(pool.map(meas, np.array_split(arr, n_chunks)))
    out = [int(v) for part in parts for v in part]
    if len(out) != len(arr):
        raise RuntimeError("noise sampler returned a vector of the wrong length")
    return out


def add_noise(values: Sequence[int], kind: NoiseKind, scale: float) -> list[int]:
    """Each integer plus independent discrete Gaussian (σ = scale) or discrete Laplace (b = scale) noise."""
    if kind not in ("gaussian", "laplace"):
        raise ValueError(f"unknown noise kind {kind!r}")
    s = _check_scale(scale)
    vals = [int(v) for v in values]
    if not vals:
        return []
    if any(abs(v) > _I64_MAX // 2 for v in vals):
        raise ValueError("aggregate too large for 64-bit integer noise; use a coarser fixed-point scale")
    out = _opendp_sample(kind, s, vals)
    if len(out) != len(vals):
        raise RuntimeError("noise sampler returned a vector of the wrong length")
    return out


def noisy_argmin(scores: Sequence[int], accounting: str, scale: float) -> int:
    """Index of the lowest score after noise (exponential mechanism via OpenDP's noisy max).

    ``accounting`` picks the output measure: ``pure`` → max divergence (ε = 2Δ/scale for
    Δ-sensitive scores), ``zcdp`` → zero-concentrated divergence (ρ = (2Δ/scale)²/8).
    """
    s = _check_scale(scale)
    vals = [int(v) for v in scores]
    if not vals:
        raise ValueError("noisy_argmin needs at least one score")
    if any(v < 0 or v > _I64_MAX for v in vals):
        raise ValueError("scores must be non-negative 64-bit integers")
    op = "argmin_zcdp" if accounting == "zcdp" else "argmin_pure" if accounting == "pure" else None
    if op is None:
        raise ValueError(f"unknown accounting {accounting!r}")
    (idx,) = _opendp_sample(op, s, vals)
    if not 0 <= idx < len(vals):
        raise RuntimeError("selection returned an index out of range")
    return idx


def measurement(op: Op, scale: float):
    """The cached OpenDP measurement behind ``op`` (used by tests to cross-check privacy maps)."""
    if op not in _OPS:
        raise ValueError(f"unknown op {op!r}")
    return _measurement(op, _check_scale(scale))


__all__ = ["NoiseKind", "add_noise", "measurement", "noise_kind", "noisy_argmin"]
