"""The samplers: OpenDP only, right scale, cached, no seed, and a hook only tests touch."""

from __future__ import annotations

import inspect
import math
import pkgutil
import re
from pathlib import Path

import pytest

import pdbg
from pdbg.dp import mechanisms, noise

PKG = Path(pdbg.__file__).parent


def _std(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


@pytest.mark.parametrize("kind,scale", [("gaussian", 7.0), ("gaussian", 250.0), ("laplace", 5.0), ("laplace", 300.0)])
def test_empirical_scale_matches_stated_scale(kind, scale):
    draws = noise.add_noise([0] * 20_000, kind, scale)
    expected = scale if kind == "gaussian" else math.sqrt(2.0) * scale  # discrete ≈ continuous at these scales
    if kind == "laplace":  # exact discrete Laplace variance 2q/(1-q)^2
        q = math.exp(-1.0 / scale)
        expected = math.sqrt(2 * q) / (1 - q)
    assert abs(_std(draws) / expected - 1) < 0.03
    assert abs(sum(draws) / len(draws)) < 4 * expected / math.sqrt(len(draws))
    assert all(isinstance(v, int) for v in draws)


def test_noise_is_added_to_large_integers():
    out = noise.add_noise([10**12, -(10**12)], "gaussian", 1.0)
    assert abs(out[0] - 10**12) < 50 and abs(out[1] + 10**12) < 50


def test_long_vectors_drawn_in_parallel_keep_every_element_in_place():
    # vectors of >= 512 integers are split across threads; each element must stay where it was
    vals = [i * 1_000_000 for i in range(3001)]
    out = noise.add_noise(vals, "gaussian", 5.0)
    assert len(out) == len(vals) and all(abs(o - v) < 100 for o, v in zip(out, vals))
    assert sum(o != v for o, v in zip(out, vals)) > 2500          # noise was added, not skipped


def _draw_in_child(q):
    q.put(len(noise.add_noise([0] * 2000, "laplace", 3.0)))


def test_a_forked_child_draws_long_vectors():
    # the parent's pool threads do not exist in a forked child: it must build its own, not hang
    import multiprocessing

    noise.add_noise([0] * 2000, "gaussian", 3.0)       # the parent's pool exists before the fork
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    child = ctx.Process(target=_draw_in_child, args=(q,))
    child.start()
    try:
        child.join(30)
        assert child.exitcode == 0 and q.get(timeout=1) == 2000
    finally:
        if child.is_alive():
            child.kill()


def test_measurements_are_cached_and_maps_match_formulas():
    assert noise.measurement("gaussian", 3.0) is noise.measurement("gaussian", 3.0)
    for c, g, rho in [(1, 1, 0.01), (10, 4, 0.2), (1000, 3, 0.05)]:
        spec = mechanisms.noise_for(c, g, "zcdp", rho)
        assert spec.l2 == pytest.approx(math.sqrt(g) * c)
        m = noise.measurement("gaussian", spec.scale)
        # OpenDP's map at the integer L2 bound (sqrt(g)*c rounded up) is at least rho; at the exact bound equal
        assert m.map(math.ceil(spec.l2)) >= rho * (1 - 1e-9)
        assert mechanisms.gaussian_rho(spec.l2, spec.scale) == pytest.approx(rho)
    for c, g, eps in [(1, 1, 0.1), (10, 4, 1.0)]:
        spec = mechanisms.noise_for(c, g, "pure", eps)
        assert noise.measurement("laplace", spec.scale).map(int(spec.l1)) == pytest.approx(eps)


def test_noisy_argmin_picks_clear_winner_and_validates():
    assert noise.noisy_argmin([10**9, 0, 10**9], "pure", 1.0) == 1
    assert noise.noisy_argmin([10**9, 10**9, 0], "zcdp", 1.0) == 2
    with pytest.raises(ValueError):
        noise.noisy_argmin([], "pure", 1.0)
    with pytest.raises(ValueError):
        noise.add_noise([1], "gaussian", 0.0)


def test_fixture_replaces_the_draw(noise):  # noqa: F811 - the fixture shadows the module name on purpose
    from pdbg.dp import noise as mod

    noise.offset = 3
    assert mod.add_noise([1, 2], "laplace", 10.0) == [4, 5]
    assert noise.calls == [("laplace", 10.0, 2)]


HOOK = "_opendp_sample"


def test_no_production_module_references_the_hook():
    offenders = []
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        if path.relative_to(PKG).as_posix() != "dp/noise.py" and HOOK in text:
            offenders.append(str(path))
        if "DeterministicNoise" in text:
            offenders.append(str(path))
    assert offenders == []


def test_no_seed_parameter_and_no_non_opendp_randomness_in_dp():
    import importlib

    import pdbg.dp as dp_pkg

    for info in pkgutil.iter_modules(dp_pkg.__path__):
        mod = importlib.import_module(f"pdbg.dp.{info.name}")
        for _, fn in inspect.getmembers(mod, inspect.isfunction):
            assert not any("seed" in p.lower() for p in inspect.signature(fn).parameters), fn
        src = Path(mod.__file__).read_text()
        assert not re.search(r"^\s*(import random|from random|.*np\.random|.*numpy\.random)", src, re.M), info.name
