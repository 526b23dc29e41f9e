"""Policy validation: every numeric field finite and within a stated limit, scalar domains of
bounded size, YAML without alias bombs, and the canonical form pdbg writes back round-trips."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path

import pytest
import yaml

from pdbg.errors import PolicyError
from pdbg.policy import model
from pdbg.policy.model import load_policy, parse_policy

POLICY = Path(__file__).parents[1] / "ingest" / "requests.policy.yaml"


def base() -> dict:
    return yaml.safe_load(POLICY.read_text())


def refused(data: dict, *fields: str) -> PolicyError:
    with pytest.raises(PolicyError) as ei:
        parse_policy(data, "p.yaml")
    msg = ei.value.message
    for f in fields:
        assert f in msg, msg
    assert "\n" not in msg and len(msg) < 600
    assert ei.value.hint
    return ei.value


def with_(path: str, value) -> dict:
    d = base()
    cur = d
    *head, last = path.split(".")
    for p in head:
        cur = cur.setdefault(p, {})
    cur[last] = value
    return d


def test_base_policy_is_valid():
    parse_policy(base())


@pytest.mark.parametrize("bounds", [[0, float("inf")], [float("-inf"), 0], [0, 1e308], [-1e13, 0],
                                    [0, float("nan")]])
def test_metric_bounds_finite_and_limited(bounds):
    d = base()
    d["columns"]["latency_ms"]["bounds"] = bounds
    err = refused(d, "columns.latency_ms.bounds")
    assert f"{model.METRIC_BOUND_MAX:g}" in err.message or "finite" in err.message


def test_metric_bound_at_limit_is_accepted():
    d = base()
    d["columns"]["bytes_out"]["bounds"] = [-model.METRIC_BOUND_MAX, model.METRIC_BOUND_MAX]
    parse_policy(d)


@pytest.mark.parametrize("field,value", [
    ("max_rows_per_unit", 10**30), ("max_rows_per_unit", 1_000_001),
    ("max_groups_per_unit", 10**7), ("max_time_buckets", 10**9),
    ("retention_days", 740_001), ("retention_days", 36_501),
    ("grant_max_hours", 1e300), ("grant_max_hours", float("inf")), ("grant_max_hours", 8761),
    ("delta", float("nan")), ("partition_delta", float("inf")), ("dataset_delta", float("nan")),
])
def test_numeric_fields_have_upper_limits(field, value):
    refused(with_(field, value), field)


@pytest.mark.parametrize("field", ["default_per_query", "max_per_query", "case_default", "dataset_cap",
                                   "break_glass"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e300, 101])
def test_epsilon_fields_finite_and_limited(field, value):
    refused(with_(f"epsilon.{field}", value), f"epsilon.{field}")


def test_limits_at_the_edge_are_accepted():
    d = base()
    d.update(max_rows_per_unit=model.MAX_CONTRIBUTIONS, max_groups_per_unit=model.MAX_CONTRIBUTIONS,  # bounds 1e7
             retention_days=model.RETENTION_DAYS_MAX, grant_max_hours=model.GRANT_HOURS_MAX,
             max_time_buckets=model.TIME_BUCKETS_MAX)
    d["epsilon"] = {"max_per_query": 100, "case_default": 100, "dataset_cap": model.EPSILON_MAX,
                    "break_glass": 100, "default_per_query": 1}
    parse_policy(d)


@pytest.mark.parametrize("domain", [[["a", "b"]], [{"a": 1}], ["ok", [1]], [None]])
def test_domain_values_are_scalars(domain):
    d = base()
    d["columns"]["service"]["domain"] = domain
    refused(d, "columns.service.domain")


def test_domain_size_and_string_length_bounded():
    d = base()
    d["columns"]["service"]["domain"] = [f"s{i}" for i in range(model.DOMAIN_MAX_VALUES + 1)]
    err = refused(d, "columns.service.domain")
    assert f"{model.DOMAIN_MAX_VALUES:,}" in err.message
    d["columns"]["service"]["domain"] = ["x" * (model.DOMAIN_MAX_CHARS + 1)]
    err = refused(d, "columns.service.domain")
    assert "x" * 50 not in err.message                      # the value is not echoed
    d["columns"]["service"]["domain"] = [f"s{i}" for i in range(model.DOMAIN_MAX_VALUES)]
    parse_policy(d)


def test_domain_float_must_be_finite():
    d = base()
    d["columns"]["status"]["domain"] = [200, float("nan")]
    refused(d, "columns.status.domain")


def test_generalize_parameters_bounded():
    d = base()
    d["columns"]["latency_ms"] = {"class": "metric", "type": "float", "bounds": [0, 10],
                                  "transform": "generalize",
                                  "generalize": {"kind": "number_bucket", "width": float("inf")}}
    refused(d, "columns.latency_ms.generalize.width")
    d["columns"]["latency_ms"]["generalize"] = {"kind": "truncate", "length": 10**12}
    refused(d, "columns.latency_ms.generalize.length")


def test_huge_column_name_not_echoed():
    d = base()
    d["columns"]["A" * 10_000] = {"class": "dimension"}
    err = refused(d, "columns")
    assert len(err.message) < 600


BOMB = """
dataset: requests
table: requests
privacy_unit: user_id
columns:
  user_id: {class: identifier, transform: tokenize}
  service:
    class: dimension
    domain:
    - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    - &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    - &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    - &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    - &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    - &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    - &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    - &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    - &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _in_thread(fn, timeout):
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported below
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"still running after {timeout} s"
    return out


def test_yaml_alias_bomb_refused_quickly(tmp_path):
    p = tmp_path / "bomb.yaml"
    p.write_text(BOMB)
    t0 = time.perf_counter()
    out = _in_thread(lambda: load_policy(p), timeout=5)
    assert isinstance(out.get("error"), PolicyError), out
    assert "alias" in out["error"].message
    assert time.perf_counter() - t0 < 5


def test_recursive_yaml_alias_refused(tmp_path):
    p = tmp_path / "rec.yaml"
    p.write_text("dataset: requests\ntable: requests\nprivacy_unit: user_id\ncolumns:\n"
                 "  user_id: {class: identifier, transform: tokenize}\n"
                 "  service: {class: dimension, domain: &x [1, *x]}\n")
    out = _in_thread(lambda: load_policy(p), timeout=5)
    assert isinstance(out.get("error"), PolicyError), out


def test_small_yaml_aliases_still_allowed(tmp_path):
    text = POLICY.read_text().replace(
        "service: {class: dimension, domain: [api, auth, billing, search]}",
        "service: {class: dimension, domain: &svc [api, auth, billing, search]}\n"
        "  upstream: {class: dimension, domain: *svc}")
    assert "*svc" in text
    p = tmp_path / "alias.yaml"
    p.write_text(text)
    pol = load_policy(p)
    assert pol.columns["upstream"].domain == pol.columns["service"].domain


def test_oversized_policy_file_refused(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text(POLICY.read_text() + "#" * (model.POLICY_FILE_MAX_BYTES + 1) + "\n")
    with pytest.raises(PolicyError, match="bytes"):
        load_policy(p)


def test_policy_file_not_utf8_or_a_directory(tmp_path):
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"dataset: \xff\xfe\n")
    with pytest.raises(PolicyError):
        load_policy(p)
    with pytest.raises(PolicyError):
        load_policy(tmp_path)


def test_existing_digests_unchanged():
    # Validation got stricter; the canonical form (and so every registered digest) did not change.
    pol = load_policy(POLICY)
    assert pol.digest == parse_policy(copy.deepcopy(base())).digest
    for name in ("dataset_delta", "break_glass_per_30d"):
        assert name not in pol.canonical_json()


@pytest.mark.parametrize("field", ["max_rows_per_unit", "retention_days", "grant_max_hours", "delta",
                                   "epsilon.max_per_query"])
def test_booleans_are_not_numbers(field):
    refused(with_(field, True), field, "true/false")


def test_bool_bounds_refused():
    d = base()
    d["columns"]["latency_ms"]["bounds"] = [False, True]
    refused(d, "columns.latency_ms.bounds")


def test_messages_name_the_file_not_its_path(tmp_path):
    bad = tmp_path / "deep" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text("dataset: [unclosed\n")
    for p in (bad, tmp_path / "missing.yaml"):
        with pytest.raises(PolicyError) as ei:
            load_policy(p)
        assert str(tmp_path) not in ei.value.message and p.name in ei.value.message
    bad.write_text(POLICY.read_text().replace("max_rows_per_unit: 10", "max_rows_per_unit: 0"))
    with pytest.raises(PolicyError) as ei:
        load_policy(bad)
    assert str(tmp_path) not in ei.value.message and "bad.yaml" in ei.value.message


def test_k_times_bound_fits_integer_sums():
    d = base()
    d["columns"]["bytes_out"]["bounds"] = [0, model.METRIC_BOUND_MAX]
    d["max_rows_per_unit"] = model.MAX_CONTRIBUTIONS
    refused(d, "max_rows_per_unit", "bound")
    d["max_rows_per_unit"] = int(model.UNIT_SUM_MAX / model.METRIC_BOUND_MAX)
    parse_policy(d)
