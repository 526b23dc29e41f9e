"""The packaged `requests` policy: valid, matches the generator, and identical to the example."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from pdbg.demo import generate as G
from pdbg.policy.model import ColumnClass, Transform, load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "pdbg" / "demo" / "requests.policy.yaml"
EXAMPLE = ROOT / "examples" / "requests.policy.yaml"


@pytest.fixture(scope="module")
def policy():
    return load_policy(PACKAGED)


def test_example_is_identical_to_packaged():
    assert EXAMPLE.read_bytes() == PACKAGED.read_bytes()


def test_parses_and_names_the_contract(policy):
    assert parse_policy(yaml.safe_load(PACKAGED.read_text())) == policy
    assert (policy.dataset, policy.table, policy.privacy_unit) == ("requests", "requests", "user_id")
    assert policy.time_col == "ts"
    assert policy.accounting == "zcdp"
    cols = policy.columns
    assert cols["user_id"].transform == Transform.tokenize and cols["user_id"].class_ == ColumnClass.identifier
    assert cols["session_id"].transform == Transform.tokenize
    assert cols["client_ip"].class_ == ColumnClass.pii and cols["client_ip"].generalize.kind == "ip_prefix"
    assert cols["user_agent"].class_ == ColumnClass.quasi_identifier
    assert cols["user_agent"].generalize.kind == "user_agent" and cols["user_agent"].domain is None
    assert cols["message"].transform == Transform.redact
    assert cols["error_code"].domain is None                     # private key -> partition selection
    assert cols["latency_ms"].bounds == (0, 30000) and cols["latency_ms"].scale == "log"
    assert cols["bytes_out"].bounds == (0, 2_000_000)


def test_policy_columns_are_the_generator_columns_minus_the_extras(policy):
    extras = {"email", "debug_headers"}
    assert set(policy.columns) == set(G.SCHEMA.names) - extras
    assert not extras & set(policy.columns)                     # shows allowlisting: they get dropped


def test_public_domains_equal_generator_values(policy):
    assert policy.columns["service"].domain == G.SERVICES
    assert policy.columns["region"].domain == G.REGIONS
    assert policy.columns["status"].domain == G.STATUS_CODES
    assert set(policy.columns["endpoint"].domain) == {e[0] for s in G.SERVICES for e in G.ENDPOINTS[s]}


def test_every_emitted_dimension_value_is_in_its_domain(policy):
    d = G.generate(40_000, seed=9)
    c = duckdb.connect()
    c.register("r", d.table)
    for col in ("service", "region", "endpoint", "status"):
        values = {v for (v,) in c.execute(f"SELECT DISTINCT {col} FROM r").fetchall()}
        assert values <= set(policy.columns[col].domain), col
        if col != "status":
            assert values == set(policy.columns[col].domain), col   # all are actually used


def test_retention_keeps_the_demo_rows(policy):
    # demo rows are from 2026-11-20; the project date is 2026-11-28
    assert policy.retention_days >= 30
    assert 1 <= policy.max_rows_per_unit <= 10 and 1 <= policy.max_groups_per_unit <= 10
    assert policy.epsilon.case_default <= 1.0          # the demo investigation must fit in epsilon 1
