"""The refusal corpus: every query is refused with its rule and a hint, and nothing needs data."""

from __future__ import annotations

import pytest

from pdbg.errors import QueryRejected
from pdbg.sql import plan_query
from pdbg.sql.rules import ALL_RULE_IDS

from .refusals import REFUSALS


def test_corpus_is_large_enough():
    assert len(REFUSALS) >= 60


@pytest.mark.parametrize("rule,sql", REFUSALS, ids=[f"{i:03d}-{r}" for i, (r, _) in enumerate(REFUSALS)])
def test_refused_with_rule(rule, sql, policy):
    with pytest.raises(QueryRejected) as info:
        plan_query(sql, policy)
    err = info.value
    assert err.rule == rule, f"{sql!r}: got {err.rule}: {err}"
    assert err.rule in ALL_RULE_IDS
    assert err.hint and err.hint != QueryRejected.default_hint or err.rule == "syntax"


def test_min_suggests_quantile(policy):
    with pytest.raises(QueryRejected) as info:
        plan_query("SELECT MIN(latency_ms) FROM requests", policy)
    assert "quantile_cont(x, 0)" in info.value.hint


def test_unknown_column_did_you_mean(policy):
    with pytest.raises(QueryRejected) as info:
        plan_query("SELECT regoin, COUNT(*) FROM requests GROUP BY regoin", policy)
    assert "Did you mean 'region'?" in info.value.message


def test_unknown_parameter(policy):
    with pytest.raises(QueryRejected) as info:
        plan_query("SELECT COUNT(*) FROM requests", policy, params={"x": 1})
    assert info.value.rule == "parameter"
