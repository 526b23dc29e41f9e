"""CLI verbs of the Jupyter layer and the postmortem helpers (pure parts)."""

import json
from datetime import datetime, timezone

import nbformat

from pdbg.cli.main import main
from pdbg.notebook.postmortem import privacy_score, replay_case, score_band, timings


def test_queries_list_json(capsys):
    assert main(["queries", "list", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    names = {t["name"] for t in obj["templates"]}
    assert len(names) >= 12 and "top_error_codes" in names
    t = next(t for t in obj["templates"] if t["name"] == "slow_endpoints")
    assert {"name": "threshold_ms", "type": "integer", "default": "2000"}.items() <= t["params"][0].items()


def test_check_fails_on_email_and_duckdb(tmp_path, capsys):
    book = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell("print(x)")
    c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="mail a.person@example.com")]
    book.cells += [c, nbformat.v4.new_code_cell("import duckdb\nduckdb.connect('ws/data.duckdb')")]
    p = tmp_path / "leaky.ipynb"
    nbformat.write(book, p)
    assert main(["check", str(p), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["ok"]
    assert {"pii-in-output/email", "raw-access/duckdb-connect"} <= {f["rule"] for f in out["findings"]}
    assert "a.person" not in json.dumps(out)


def test_check_passes_on_shipped_notebooks(capsys):
    from pathlib import Path

    assert main(["check", str(Path(__file__).resolve().parents[2] / "notebooks")]) == 0
    assert "clean" in capsys.readouterr().out


def test_timings():
    utc = timezone.utc
    case = {"opened": datetime(2026, 11, 28, tzinfo=utc), "detected": datetime(2026, 11, 20, 14, 13, tzinfo=utc),
            "acknowledged": datetime(2026, 11, 20, 14, 18, tzinfo=utc), "contained": None,
            "resolved": "2026-11-20T15:30:00Z"}
    rows = {r["metric"]: r for r in timings(case, impact_start="2026-11-20 14:07:00")}
    assert rows["TTD"]["duration"] == "6m 00s" and rows["TTA"]["duration"] == "11m 00s"
    assert rows["TTC"]["duration"] == "not recorded" and rows["TTR"]["duration"] == "1h 23m"
    rows = {r["metric"]: r for r in timings(case)}
    assert rows["TTD"]["duration"] == "not recorded" and rows["TTA"]["duration"] == "5m 00s"


def test_score():
    assert privacy_score(0.05, 0, 0) == 5 and score_band(5) == "low"
    assert privacy_score(0.05, 1, 0) == 15 and score_band(15) == "moderate"
    assert score_band(privacy_score(0.0, 0, 1)) == "high"


def test_replay_spends_nothing(fake):
    q = "SELECT service, COUNT(*) AS errors FROM requests GROUP BY service"
    first = fake.sql(q, epsilon=0.2)
    fake.sql("SELECT region, COUNT(*) AS n FROM requests WHERE service = $s GROUP BY region", epsilon=0.1,
             params={"s": "checkout"})
    fake._history[-1]["params"] = {"s": "checkout"}
    fake.sql("SELECT COUNT(*) AS n FROM requests WHERE ts >= $t", epsilon=0.1, params={"t": "2026-11-20 13:00:00"})
    fake._history[-1]["params"] = {"t": "2026-11-20 13:00:00"}
    rep = replay_case(fake)
    assert rep.spent == 0
    assert [r.cached for _, r in rep.results] == [True, True]
    assert rep.results[0][1].df.equals(first.df)
    assert len(rep.skipped) == 1 and "timestamp" in rep.skipped[0][1]
