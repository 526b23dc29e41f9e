"""Pitfall: analyst-settable seeds (REFERENCE.md: the cwida DuckDB extension lets analysts fix the seed).

Defences: no API, keyword, SQL statement or function can seed or switch off pdbg's noise.
``setseed``/``random`` and friends are refused by the planner (``volatile-function``);
``SET``/``PRAGMA`` are not SELECTs; ``Session``/``connect``/``sql`` take no seed; noise
comes from OpenDP's samplers fed by OS randomness, so two fresh releases of the same
query (in different cases, so the cache does not replay) differ, and so do releases in
forked worker processes.

Proof the test can fail: ``defence="off"`` installs a deterministic sampler through the
test hook (monkeypatching ``pdbg.dp.noise._opendp_sample``, the only way to do it):
two fresh releases are then identical — exactly what the assertion for "on" rules out.
"""

from __future__ import annotations

import inspect
import os

import pytest

import attack_support as S
from pdbg.errors import QueryRejected

SQL = "SELECT service, COUNT(*) AS n FROM t GROUP BY service"


@pytest.mark.parametrize("sql", [
    "SELECT setseed(0.5)",
    "SELECT setseed(0.5), COUNT(*) AS n FROM t",
    "SELECT COUNT(*) AS n FROM t WHERE setseed(0.1) IS NULL",
    "SET seed = 1",
    "PRAGMA threads=1",
    "SELECT COUNT(*) AS n FROM t WHERE random() < 2",
    "SELECT COUNT(*) AS n FROM t USING SAMPLE 50%",
    "SELECT COUNT(*) AS n FROM t; SELECT setseed(0.1)",
])
def test_sql_cannot_seed_or_add_randomness(make_ws, sql):
    from pdbg.sql import plan_query

    _, policy = make_ws([])
    with pytest.raises(QueryRejected):
        plan_query(sql, policy)


def test_no_api_takes_a_seed():
    import pdbg
    from pdbg.session import Session

    for fn in (pdbg.connect, Session.__init__, Session.sql, Session.preview):
        params = {p.lower() for p in inspect.signature(fn).parameters}
        assert not params & {"seed", "random_state", "rng", "noise", "deterministic", "noise_scale"}, fn
    with pytest.raises(TypeError):
        Session.sql(None, SQL, epsilon=0.1, seed=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("defence", ["on", "off"])
def test_two_fresh_releases_differ(make_ws, monkeypatch, defence):
    from pdbg.session import Session

    if defence == "off":
        import pdbg.dp.noise as noise_mod

        monkeypatch.setattr(noise_mod, "_opendp_sample",
                            lambda op, scale, values: list(values) if op in ("gaussian", "laplace") else [0])
    ws, _ = make_ws([S.row(f"u{i}", service="abcdefgh"[i % 8]) for i in range(200)])
    answers = []
    for case in ("INC-1", "INC-2"):
        user, case = S.add_investigator(ws, case=case)
        r = Session(ws, user=user, case=case).sql(SQL, epsilon=0.5)
        assert not r.cached
        answers.append(list(r.df["n"]))
    if defence == "on":
        assert answers[0] != answers[1]
    else:
        assert answers[0] == answers[1]


def test_forked_processes_draw_independent_noise():
    """A broker that forks workers after drawing noise must not replay the parent's RNG stream."""
    from pdbg.dp.noise import add_noise

    add_noise([0] * 4, "gaussian", 1000.0)                  # parent has used its sampler
    draws = []
    for _ in range(2):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(r)
            os.write(w, repr(add_noise([0] * 8, "gaussian", 1000.0)).encode())
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        with os.fdopen(r) as f:
            draws.append(f.read())
    draws.append(repr(add_noise([0] * 8, "gaussian", 1000.0)))
    assert len(set(draws)) == 3
