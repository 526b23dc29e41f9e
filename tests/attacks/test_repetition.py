"""Pitfall: averaging by repetition (REFERENCE.md; SmartNoise's odometer never refused).

Defence: the release cache (DESIGN.md §2). The same query on the same data in the same
case returns the stored noisy answer at zero cost, so asking it again gives the attacker
nothing new; anything that is *not* the same release (another ε, another filter) is a
new release and is charged again.

Proof the test can fail: ``test_averaging_succeeds_without_the_cache`` runs the very same
pipeline step without the cache (``Session._compute``: engine + real noise) and shows
that averaging then recovers the exact count — so if the cache stopped replaying, the
"identical answers" assertions below would break.
"""

from __future__ import annotations

import statistics

import attack_support as S

COUNT = "SELECT COUNT(*) AS n FROM t"
EXACT = 300


def _rows():
    return [S.row(f"u{i}") for i in range(EXACT)]


def test_repeating_a_query_replays_the_same_answer_for_free(session_on):
    s = session_on(_rows(), epsilon=2.0)
    first = s.sql(COUNT, epsilon=0.5)
    spent = s.budget().spent_epsilon
    assert not first.cached and first.cost.epsilon > 0
    answers = []
    for _ in range(50):
        r = s.sql(COUNT, epsilon=0.5)
        assert r.cached and r.cost.epsilon == 0 and r.cost.delta == 0
        answers.append(int(r.df["n"].iloc[0]))
    assert set(answers) == {int(first.df["n"].iloc[0])}            # averaging gains nothing
    assert s.budget().spent_epsilon == spent
    # the cache key is the normalized query: spelling it differently is still the same release
    again = s.sql("select   count(*) as N from T", epsilon=0.5)
    assert again.cached and int(again.df.iloc[0, 0]) == answers[0]


def test_a_different_epsilon_or_a_trivially_different_query_is_charged_again(session_on):
    s = session_on(_rows(), epsilon=2.0)
    s.sql(COUNT, epsilon=0.2)
    b1 = s.budget().spent_epsilon
    r2 = s.sql(COUNT, epsilon=0.3)                                   # another ε: a new release
    assert not r2.cached and r2.cost.epsilon > 0
    b2 = s.budget().spent_epsilon
    assert b2 > b1
    r3 = s.sql("SELECT COUNT(*) AS n FROM t WHERE 1 = 1", epsilon=0.2)   # same meaning, new text
    assert not r3.cached and r3.cost.epsilon > 0 and s.budget().spent_epsilon > b2


def test_averaging_succeeds_without_the_cache(session_on):
    """Defence off: the pipeline step minus the cache and ledger; 200 answers average to the truth."""
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.ingest import datasets

    s = session_on(_rows(), epsilon=2.0)
    cached = [int(s.sql(COUNT, epsilon=0.5).df["n"].iloc[0]) for _ in range(20)]
    from pdbg.sql import plan_query

    policy = datasets.get_policy(s.ws, "t")
    plan = plan_query(COUNT, policy)
    engine = DuckDBEngine(s.ws)
    version = datasets.data_version(s.ws, "t")
    fresh = []
    for _ in range(200):
        payload, _ = s._compute(plan, policy, 0.5, engine, version)
        df = _payload_df(payload)
        fresh.append(int(df["n"].iloc[0]))
    sd = statistics.pstdev(fresh)
    assert sd > 5                                                       # real noise on each answer
    mean = statistics.fmean(fresh)
    assert abs(mean - EXACT) < 5 * sd / 200 ** 0.5                      # the attack works here …
    assert statistics.pstdev(cached) == 0                               # … and gains nothing through the cache


def _payload_df(payload):
    from pdbg.session import _df_from_payload

    return _df_from_payload(payload["table"])
