"""The query library: header parsing, typed binding, and the shipped templates' consistency."""

from datetime import datetime
from pathlib import Path

import pytest

from pdbg.errors import QueryRejected
from pdbg.templates import load_library, parse_template

GOOD = """\
-- name: demo_t
-- title: Demo
-- description: A test template
--   continued here is not allowed without key
-- dataset: requests
-- epsilon: 0.25
-- param start: timestamp = 2026-11-20 13:00:00 | window start
-- param n: integer = 5
-- param rate: float = 0.5 | a rate
-- param svc: choice(checkout, search) = search
-- param on: boolean = true
-- param who: string
SELECT COUNT(*) AS n FROM requests
WHERE ts >= $start AND latency_ms > $n AND service = $svc AND x = $rate AND y = $on AND z = $who
"""


def test_header_lines_without_key_are_rejected():
    with pytest.raises(QueryRejected) as exc:
        parse_template(GOOD, "t.sql")
    assert exc.value.rule == "template_header" and "t.sql:4" in exc.value.message


def good():
    return parse_template(GOOD.replace("--   continued here is not allowed without key\n", ""), "demo_t.sql")


def test_parse_header():
    t = good()
    assert (t.name, t.title, t.dataset, t.epsilon) == ("demo_t", "Demo", "requests", 0.25)
    assert [p.name for p in t.params] == ["start", "n", "rate", "svc", "on", "who"]
    start, n, rate, svc, on, who = t.params
    assert start.default == datetime(2026, 11, 20, 13) and start.description == "window start"
    assert n.default == 5 and rate.default == 0.5 and svc.choices == ("checkout", "search") and on.default is True
    assert who.required and who.default is None
    assert t.sql.startswith("SELECT") and t.problems() == []


def test_bind_types_values_and_fills_defaults():
    t = good()
    b = t.bind({"n": "7", "who": "x'; DROP TABLE requests; --", "on": "no", "start": "2026-11-20T14:00:00"})
    assert b["n"] == 7 and b["on"] is False and b["start"] == datetime(2026, 11, 20, 14)
    assert b["who"] == "x'; DROP TABLE requests; --"      # a value, bound by the planner, never pasted
    assert b["svc"] == "search" and b["rate"] == 0.5
    assert "$who" in t.sql and "DROP" not in t.sql


@pytest.mark.parametrize("values,needle", [
    ({"who": "a", "n": "7.5"}, "'n' must be an integer"),
    ({"who": "a", "n": True}, "'n' must be an integer"),
    ({"who": "a", "rate": "nan"}, "'rate' must be a number"),
    ({"who": "a", "svc": "payments"}, "one of checkout, search"),
    ({"who": "a", "start": "yesterday"}, "ISO timestamp"),
    ({"who": "a", "on": "maybe"}, "true or false"),
    ({"who": "a" * 201}, "at most 200"),
    ({}, "needs parameter 'who'"),
    ({"who": "a", "bogus": 1}, "no parameter 'bogus'"),
])
def test_bind_errors(values, needle):
    with pytest.raises(QueryRejected) as exc:
        good().bind(values)
    assert needle in exc.value.message
    assert exc.value.rule == "template_parameter"
    for v in values.values():                      # the offending value is never echoed
        if isinstance(v, str) and len(v) > 3:
            assert v not in exc.value.message


@pytest.mark.parametrize("mutate,needle", [
    (lambda s: s.replace("-- epsilon: 0.25\n", ""), "missing epsilon"),
    (lambda s: s.replace("0.25", "-1"), "positive"),
    (lambda s: s.replace("integer = 5", "intger = 5"), "unknown parameter type"),
    (lambda s: s.replace("integer = 5", "integer = five"), "default of parameter 'n'"),
    (lambda s: s.replace("-- name: demo_t", "-- name: Demo-T"), "lower_snake_case"),
    (lambda s: s.replace("-- title: Demo", "-- colour: blue"), "unknown header line"),
    (lambda s: s.replace("-- param n: integer = 5", "-- param n integer"), "cannot read the parameter"),
    (lambda s: s + "-- param n: integer = 5\n" if False else s.replace("-- param on", "-- param n: integer\n-- param on"), "declared twice"),
])
def test_header_errors(mutate, needle):
    text = mutate(GOOD.replace("--   continued here is not allowed without key\n", ""))
    with pytest.raises(QueryRejected) as exc:
        parse_template(text, "demo_t.sql")
    assert needle in exc.value.message


def test_problems_unused_and_undeclared(tmp_path):
    t = parse_template("-- name: x\n-- description: d\n-- dataset: requests\n-- epsilon: 0.1\n"
                       "-- param a: integer = 1\nSELECT COUNT(*) FROM requests WHERE b = $b AND c = '$notaparam'\n",
                       path=tmp_path / "y.sql")
    probs = t.problems()
    assert any("$b is used" in p for p in probs)
    assert any("a is declared but not used" in p for p in probs)
    assert any("does not match the file name" in p for p in probs)
    assert not any("notaparam" in p for p in probs)


def test_shipped_library():
    lib = load_library([Path(__file__).resolve().parent.parent / "queries"])
    assert len(lib) >= 12
    for name, t in lib.items():
        assert t.problems() == [], name
        assert t.dataset == "requests" and 0 < t.epsilon <= 1.0
        assert t.reviewed, f"{name} has no reviewed: line"
        bound = t.bind()
        assert set(bound) == set(t.placeholders)
    needed = {"errors_by_service", "errors_over_time", "latency_percentiles_by_service", "users_affected",
              "top_error_codes", "traffic_shift_by_region", "slow_endpoints", "status_mix", "bytes_by_service",
              "latency_histogram", "error_rate_by_endpoint", "error_rate_by_region"}
    assert needed <= set(lib)
    # session_id is an identifier: no template may group by it or output it
    assert not any("session_id" in t.sql for t in lib.values())


def test_workspace_and_env_dirs_override(tmp_path, monkeypatch):
    from pdbg import templates

    d = tmp_path / "extra"
    d.mkdir()
    (d / "users_affected.sql").write_text(
        "-- name: users_affected\n-- description: site copy\n-- dataset: requests\n-- epsilon: 0.05\n"
        "SELECT COUNT(DISTINCT user_id) AS u FROM requests\n")
    monkeypatch.setenv(templates.QUERIES_ENV, str(d))
    lib = templates.load_library()
    assert lib["users_affected"].epsilon == 0.05 and "errors_by_service" in lib


def test_shipped_templates_plan_against_the_requests_policy():
    """Every template passes the real DP checker; a hostile string value stays a literal."""
    policy_file = Path(__file__).resolve().parent / "ingest" / "requests.policy.yaml"
    if not policy_file.exists():
        pytest.skip("tests/ingest/requests.policy.yaml is not there")
    from pdbg.policy.model import load_policy
    from pdbg.sql import plan_query

    policy = load_policy(policy_file)
    for name, t in load_library([Path(__file__).resolve().parent.parent / "queries"]).items():
        plan = plan_query(t.sql, policy, params=t.bind())
        for p in t.params:
            if p.type == "string":
                hostile = plan_query(t.sql, policy, params={**t.bind(), p.name: "x' OR '1'='1' --"})
                assert (hostile.keys, hostile.measures, hostile.outputs) == (plan.keys, plan.measures, plan.outputs), name
        if name in ("top_error_codes", "slow_endpoints", "error_rate_by_endpoint"):
            assert plan.needs_selection, name           # private keys go through partition selection
        if name in ("errors_over_time", "service_errors_per_minute"):
            assert plan.keys[0].kind == "time", name
