"""Post-processing runs apart from the data (DESIGN.md invariant 11; pdbg/engine/postprocess.py).

The review read raw rows through ``ORDER BY ARRAY(SELECT #2 FROM requests)`` because
post-processing ran on the query's own cursor on ``data.duckdb``. Here the verifier is
bypassed on purpose (no policy passed): even then the sandbox has no dataset table to read,
no file access, and every failure is one fixed ``QueryFailed`` message.
"""

from __future__ import annotations

import pandas as pd
import pytest

from pdbg.engine.postprocess import apply_post_sql
from pdbg.errors import QueryFailed

RELEASED = pd.DataFrame({"service": ["a", "b", "c"], "n": [5, 50, 500]})


def test_having_order_limit_run_on_the_released_frame():
    out = apply_post_sql(RELEASED, "SELECT * FROM released WHERE n > 10 ORDER BY n DESC LIMIT 1")
    assert out.to_dict("list") == {"service": ["c"], "n": [500]}


def test_without_post_sql_the_frame_is_returned_as_is():
    assert apply_post_sql(RELEASED, None) is RELEASED


@pytest.mark.parametrize("sql", [
    "SELECT * FROM released ORDER BY ARRAY(SELECT #2 FROM requests)",
    "SELECT * FROM released WHERE n > (SELECT count(*) FROM t)",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM released WHERE CAST(service AS INTEGER) > 1",
    "SELECT * FROM released WHERE getenv('HOME') IS NOT NULL",
    "ATTACH '/tmp/x.duckdb' AS x",
])
def test_anything_else_fails_with_one_fixed_message(sql, tmp_path):
    with pytest.raises(QueryFailed) as err:
        apply_post_sql(RELEASED, sql)
    assert err.value.rule == "post-processing"
    assert err.value.message == "post-processing (HAVING / ORDER BY / LIMIT) of the released answer failed"
    assert err.value.__context__ is None and err.value.__cause__ is None
    assert "'a'" not in str(err.value) and "passwd" not in str(err.value)


def test_the_sandbox_holds_no_tables_between_calls():
    apply_post_sql(RELEASED, "SELECT * FROM released LIMIT 1")
    with pytest.raises(QueryFailed):
        apply_post_sql(RELEASED.rename(columns={"n": "m"}), "SELECT * FROM released WHERE n > 1")


def test_the_verifier_runs_first_when_a_policy_is_given():
    from pdbg.demo.build import policy_path
    from pdbg.errors import QueryRejected
    from pdbg.policy.model import load_policy

    policy = load_policy(policy_path())

    with pytest.raises(QueryRejected) as err:
        apply_post_sql(RELEASED, "SELECT * FROM released ORDER BY (SELECT 1)", policy)
    assert err.value.rule == "internal-verifier"
