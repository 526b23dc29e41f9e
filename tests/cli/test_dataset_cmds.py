"""CLI: dataset add/list and ingest print one parseable JSON object with --json; refusals exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pdbg.cli.main import main
from pdbg.policy.workspace import MIRROR_ENV, create_layout

POLICY = Path(__file__).parent.parent / "ingest" / "requests.policy.yaml"


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    return create_layout(tmp_path / "ws", audit_mirror=tmp_path / "mirror")


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_list_ingest_json(ws, tmp_path, capsys):
    code, out, _ = run(capsys, "dataset", "add", str(ws.root), str(POLICY), "--json")
    assert code == 0 and json.loads(out)["outcome"] == "created"
    from pdbg.policy.model import load_policy

    pol = load_policy(POLICY)
    half = pol.delta / 2 if pol.accounting == "zcdp" else pol.delta     # zCDP keeps half for the conversion
    assert json.loads(out)["selection_queries_allowed"] == int(round(half / pol.partition_delta))
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps({"user_id": "u1", "ts": "2024-01-01T00:00:00Z", "message": "mail a@b.com",
                             "client_ip": "1.2.3.4", "extra": 1}) + "\n")
    code, out, _ = run(capsys, "ingest", str(ws.root), "requests", str(f), "--json")
    rep = json.loads(out)
    assert code == 0 and rep["rows_out"] == 1 and rep["detectors"] == {"email": 1}
    assert rep["unknown_columns"] == ["extra"] and "a@b.com" not in out
    code, out, _ = run(capsys, "dataset", "list", str(ws.root), "--json")
    [d] = json.loads(out)["datasets"]
    assert code == 0 and d["rows"] == 1 and d["data_version"] == 1


def test_lifetime_delta_pays_for_more_private_key_queries(ws, tmp_path, capsys):
    import yaml

    d = yaml.safe_load(POLICY.read_text())
    d["dataset_delta"] = 10 * d.get("delta", 1e-6)
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(d))
    code, out, _ = run(capsys, "dataset", "add", str(ws.root), str(p), "--json")
    rep = json.loads(out)
    from pdbg.dp.accounting import selection_queries_allowed
    from pdbg.policy.model import parse_policy

    pol = parse_policy(d)
    assert code == 0 and rep["selection_queries_allowed"] == selection_queries_allowed(
        pol.accounting, pol.epsilon.dataset_cap, pol.dataset_delta, pol.partition_delta)
    assert rep["selection_queries_allowed"] >= 9 * rep["selection_queries_per_grant"] > 0
    code, out, _ = run(capsys, "dataset", "add", str(ws.root), str(POLICY), "--replace")
    assert code == 0 and "a grant's δ=1e-06 for" in out and "raise dataset_delta" in out


def test_human_report(ws, tmp_path, capsys):
    run(capsys, "dataset", "add", str(ws.root), str(POLICY))
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps({"user_id": "u1", "message": "ip 10.0.0.1"}) + "\n")
    code, out, _ = run(capsys, "ingest", str(ws.root), "requests", str(f))
    assert code == 0 and "ipv4 1" in out and "rows in / out" in out and "10.0.0.1" not in out


def test_refusals_exit_1_with_one_line(ws, tmp_path, capsys):
    code, out, err = run(capsys, "ingest", str(ws.root), "nope", str(POLICY), "--json")
    assert code == 1 and json.loads(out)["error"] in ("PolicyError", "IngestError")
    assert err.startswith("pdbg: refused:") and err.count("\n") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.read_text().replace("client_ip: {class: pii, transform: generalize, "
                                              "generalize: {kind: ip_prefix, ipv4_prefix: 24, ipv6_prefix: 48}}",
                                              "client_ip: {class: pii, transform: keep}"))
    code, out, err = run(capsys, "dataset", "add", str(ws.root), str(bad))
    assert code == 1 and "client_ip" in err
