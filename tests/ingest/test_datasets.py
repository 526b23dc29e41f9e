"""Registry: registration rules, policy file integrity, generalizers, admin audit records."""

from __future__ import annotations

import json

import duckdb
import pytest
import yaml

from pdbg.ingest.readers import READER_CONFIG
from pdbg.errors import AuditError, PolicyError
from pdbg.governance import admin
from pdbg.ingest import datasets, load
from pdbg.ingest.transforms import user_agent_family
from pdbg.ledger.audit import AuditLog
from pdbg.policy.model import Generalize, load_policy, parse_policy

from .conftest import POLICY


def test_register_creates_table_with_output_types(registered):
    con = duckdb.connect(str(registered.data_path), read_only=True, config=dict(READER_CONFIG))  # the config pdbg readers share
    types = dict(con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='requests'").fetchall())
    con.close()
    assert types["user_id"] == "VARCHAR" and types["client_ip"] == "VARCHAR"
    assert types["ts"] == "TIMESTAMP" and types["bytes_out"] == "BIGINT" and types["latency_ms"] == "DOUBLE"
    assert "email" not in types


def test_reregister_rules(ws, policy):
    info, outcome = datasets.register(ws, policy)
    assert outcome == "created"
    assert datasets.register(ws, policy)[1] == "unchanged"
    changed = parse_policy({**policy.model_dump(mode="json", by_alias=True), "max_rows_per_unit": 3})
    with pytest.raises(PolicyError) as ei:
        datasets.register(ws, changed)
    assert "--replace" in ei.value.hint
    info2, outcome = datasets.register(ws, changed, replace=True)
    assert outcome == "replaced" and info2.data_version == info.data_version + 1
    assert datasets.get_policy(ws, "requests").max_rows_per_unit == 3


def test_replace_with_new_columns_refused_when_table_has_rows(registered, raw_file, policy):
    load.ingest(registered, "requests", [raw_file])
    d = policy.model_dump(mode="json", by_alias=True)
    d["columns"]["endpoint"]["transform"] = "drop"
    with pytest.raises(PolicyError):
        datasets.register(registered, parse_policy(d), replace=True)


def test_policies_without_dataset_delta_keep_their_digest(policy):
    # dataset_delta came later: left out of the canonical form when unset, so workspaces
    # registered before it (and their audit records and cache keys) keep matching
    assert "dataset_delta" not in policy.canonical_json()
    assert policy.lifetime_delta == policy.delta
    wider = policy.model_copy(update={"dataset_delta": 10 * policy.delta})
    assert '"dataset_delta":' in wider.canonical_json() and wider.digest != policy.digest
    assert wider.lifetime_delta == 10 * policy.delta
    with pytest.raises(PolicyError, match="dataset_delta must be at least delta"):
        parse_policy({**json.loads(policy.canonical_json()), "dataset_delta": policy.delta / 2})


def test_policy_file_tamper_detected(registered):
    p = datasets.policy_path(registered, "requests")
    d = yaml.safe_load(p.read_text())
    d["max_rows_per_unit"] = 1000
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(PolicyError) as ei:
        datasets.get_policy(registered, "requests")
    assert "hash" in ei.value.message


def test_unknown_dataset(ws):
    with pytest.raises(PolicyError):
        datasets.data_version(ws, "nope")
    assert datasets.list_datasets(ws) == []


def test_bad_interval_rejected(ws, policy):
    d = policy.model_dump(mode="json", by_alias=True)
    d["columns"]["ts"] = {"class": "time", "type": "timestamp", "transform": "generalize",
                          "generalize": {"kind": "timestamp_bucket", "interval": "soon'; DROP TABLE x"}}
    with pytest.raises(PolicyError) as ei:
        datasets.register(ws, parse_policy(d))
    assert "columns.ts" in ei.value.message


def test_keep_on_pii_rejected_naming_column(ws, tmp_path):
    d = yaml.safe_load(POLICY.read_text())
    d["columns"]["client_ip"] = {"class": "pii", "transform": "keep"}
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(PolicyError) as ei:
        admin.add_dataset(ws, p, "os:tester")
    assert "client_ip" in ei.value.message


def test_generalizers(ws, tmp_path):
    from .conftest import write_jsonl

    d = yaml.safe_load(POLICY.read_text())
    d["columns"]["ts"] = {"class": "time", "type": "timestamp", "transform": "generalize",
                          "generalize": {"kind": "timestamp_bucket", "interval": "5 minutes"}}
    d["columns"]["endpoint"] = {"class": "dimension", "transform": "generalize",
                                "generalize": {"kind": "truncate", "length": 3}}
    d["columns"]["bytes_out"] = {"class": "metric", "type": "integer", "bounds": [0, 10000],
                                 "transform": "generalize", "generalize": {"kind": "number_bucket", "width": 100}}
    d["columns"]["client_ip"]["generalize"] = {"kind": "ip_prefix", "ipv4_prefix": 20, "ipv6_prefix": 36}
    datasets.register(ws, parse_policy(d))
    f = write_jsonl(tmp_path / "g.jsonl", [
        {"user_id": "u", "ts": "2024-05-01T10:07:33Z", "endpoint": "/login", "bytes_out": 250,
         "client_ip": "10.20.47.40", "message": "m"},
        {"user_id": "u", "ts": "2024-05-01T12:07:33+02:00", "client_ip": "2001:db8:abcd:12::7"},
        {"user_id": "u", "client_ip": "not an ip"},
    ])
    rep = load.ingest(ws, "requests", [f])
    con = duckdb.connect(str(ws.data_path), read_only=True, config=dict(READER_CONFIG))  # the config pdbg readers share
    got = con.execute("SELECT CAST(ts AS VARCHAR), endpoint, bytes_out, client_ip FROM requests").fetchall()
    con.close()
    assert got[0] == ("2024-05-01 10:05:00", "/lo", 200, "10.20.32.0/20")
    assert got[1][0] == "2024-05-01 10:05:00" and got[1][3] == "2001:db8:a000::/36"
    assert got[2][3] is None and rep.unparsed["client_ip"] == 1


@pytest.mark.parametrize("ua,family", [
    ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/120.0 Safari/537.36", "Chrome/Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1 Safari/605.1.15", "Safari/macOS"),
    ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36", "Chrome/Android"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox/Linux"),
    ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/120.0 Safari/537.36 Edg/120.0", "Edge/Windows"),
    ("curl/8.4.0", "curl"), ("python-requests/2.31", "python"), ("Googlebot/2.1", "bot"), ("weird", "other"),
])
def test_user_agent_family_sql_matches_python(ua, family):
    from pdbg.ingest.transforms import user_agent_sql

    con = duckdb.connect()
    assert con.execute(f"SELECT {user_agent_sql('$u')}", {"u": ua}).fetchone()[0] == family == user_agent_family(ua)
    con.close()


def test_admin_audits_add_and_ingest(ws, raw_file):
    admin.add_dataset(ws, POLICY, "os:tester")
    admin.add_dataset(ws, POLICY, "os:tester")  # unchanged: not audited again
    rep = admin.ingest(ws, "requests", [raw_file], "os:tester")
    recs = AuditLog(ws).records()   # each change: intent before its effect, completion after (issue 13)
    assert [r["action"] for r in recs] == ["dataset.add.intent", "dataset.add", "ingest.intent", "ingest"]
    recs = [r for r in recs if not r["action"].endswith(".intent")]
    assert recs[1]["rows_out"] == rep.rows_out and recs[1]["data_version"] == 1
    assert recs[1]["detectors"]["email"] == 2
    assert "alice@example.com" not in ws.audit_path.read_text()


def test_audit_failure_after_commit_raises_audit_error(ws, raw_file, monkeypatch):
    admin.add_dataset(ws, POLICY, "os:tester")

    def fail(self, *a, **k):
        raise AuditError("disk full")

    monkeypatch.setattr(AuditLog, "append", fail)
    with pytest.raises(AuditError):
        admin.ingest(ws, "requests", [raw_file], "os:tester")
    assert datasets.data_version(ws, "requests") == 0  # issue 13: no intent record, no ingest


def test_ip_prefix_full_v6_and_mapped():
    from pdbg.ingest.transforms import ip_prefix_sql

    con = duckdb.connect()
    g = Generalize(kind="ip_prefix", ipv4_prefix=24, ipv6_prefix=64)
    q = f"SELECT {ip_prefix_sql('$ip', g)}"
    assert con.execute(q, {"ip": "::ffff:10.1.2.3"}).fetchone()[0] == "10.1.2.0/24"
    assert con.execute(q, {"ip": "2001:0db8:85a3:0000:0000:8a2e:0370:7334"}).fetchone()[0] == "2001:db8:85a3:0::/64"
    assert con.execute(q, {"ip": "::1"}).fetchone()[0] == "0:0:0:0::/64"
    con.close()


def test_written_back_policy_round_trips(registered, raw_file, tmp_path):
    # The canonical YAML pdbg writes to WS/policies (keys sorted, so columns in another order)
    # is accepted as unchanged, and an edited copy of it replaces the policy of a table with rows.
    load.ingest(registered, "requests", [raw_file])
    written = datasets.policy_path(registered, "requests")
    again = load_policy(written)
    assert list(again.columns) != list(load_policy(POLICY).columns)   # the order really differs
    assert datasets.register(registered, again)[1] == "unchanged"
    edited = tmp_path / "edited.yaml"
    edited.write_text(written.read_text().replace("retention_days: 30", "retention_days: 31"))
    info, outcome = datasets.register(registered, load_policy(edited), replace=True)
    assert outcome == "replaced"
    assert datasets.get_policy(registered, "requests").retention_days == 31
    # and the result written back round-trips too
    assert datasets.register(registered, load_policy(written))[1] == "unchanged"
