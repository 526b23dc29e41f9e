"""`pdbg check`: crafted notebooks fail for PII in outputs and raw workspace access; shipped ones pass."""

from pathlib import Path

import nbformat
import pytest

from pdbg.compliance import check, failed, lint_templates, scan_notebook

ROOT = Path(__file__).resolve().parent.parent


def nb(tmp_path, *cells, name="x.ipynb", widgets=None):
    book = nbformat.v4.new_notebook()
    for c in cells:
        if isinstance(c, tuple):
            src, outputs = c
            cell = nbformat.v4.new_code_cell(src)
            cell.outputs = outputs
        elif c.startswith("#md "):
            cell = nbformat.v4.new_markdown_cell(c[4:])
        else:
            cell = nbformat.v4.new_code_cell(c)
        book.cells.append(cell)
    if widgets:
        book.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": widgets}}
    p = tmp_path / name
    nbformat.write(book, p)
    return p


def rules(findings, severity="error"):
    return sorted({f.rule for f in findings if f.severity == severity})


def stream(text):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def test_email_in_output_fails_without_echoing_it(tmp_path):
    p = nb(tmp_path, ("print(x)", [stream("contact jane.doe@example.com\n")]))
    f = scan_notebook(p)
    assert rules(f) == ["pii-in-output/email"] and failed(f)
    assert all("jane.doe" not in x.line() for x in f)
    assert "cell 1 output 1" in f[0].where


def test_pii_in_html_error_markdown_and_widget_state(tmp_path):
    html = nbformat.v4.new_output("display_data", data={"text/html": "<td>bob&#64;corp.example.org</td>",
                                                         "text/plain": "table"})
    err = nbformat.v4.new_output("error", ename="ValueError", evalue="bad 10.1.2.3", traceback=[])
    p = nb(tmp_path, ("show()", [html]), ("boom()", [err]), "#md call me at alice@example.com",
           widgets={"abcd1234ef": {"state": {"value": "<b>carol@example.net</b>"}}})
    f = scan_notebook(p)
    wheres = " ".join(x.where for x in f)
    assert "cell 1 output 1 text/html" in wheres and "cell 2 output 1 error" in wheres
    assert "cell 3" in wheres and "metadata widget" in wheres


def test_png_output_is_not_scanned(tmp_path):
    png = nbformat.v4.new_output("display_data", data={"image/png": "aGVsbG8gYm9iQGV4YW1wbGUuY29t"})
    assert scan_notebook(nb(tmp_path, ("fig", [png]))) == []


@pytest.mark.parametrize("src", [
    "import duckdb\ncon = duckdb.connect('demo-ws/data.duckdb', read_only=True)",
    "import duckdb\ncon = duckdb.connect(f'{workspace}/data.duckdb')",
    "import duckdb, os\np = os.path.join(workspace, 'data.duckdb')\nduckdb.connect(p)",
    "import duckdb\nduckdb.connect(str(ws))",
    "import sqlite3\nsqlite3.connect('demo-ws/state.sqlite')",
    "open('demo-ws/keys/tokenize.key').read()",
    "import pandas as pd\npd.read_parquet(workspace + '/export.parquet')",
    "%sql duckdb:///demo-ws/data.duckdb",
    "!sqlite3 demo-ws/state.sqlite .dump",
    "duckdb.sql(\"ATTACH 'demo-ws/data.duckdb'\")",
])
def test_raw_workspace_access_fails(tmp_path, src):
    f = scan_notebook(nb(tmp_path, src), workspace=tmp_path / "demo-ws")
    assert failed(f), src
    assert any(r.startswith("raw-access/") for r in rules(f))


def test_workspace_path_itself_is_recognised(tmp_path):
    ws = tmp_path / "prod-ws"
    f = scan_notebook(nb(tmp_path, f"import duckdb\nduckdb.connect('{ws}/other.db')"), workspace=ws)
    assert "raw-access/duckdb-connect" in rules(f)


@pytest.mark.parametrize("src", [
    "import duckdb\ncon = duckdb.connect()",
    "import duckdb\ncon = duckdb.connect(':memory:')",
    "import pdbg\ns = pdbg.connect(workspace, user='alice', case='INC-7')",
    "from pdbg import connect\ns = connect(workspace, user='a', case='c')",
    "%load_ext pdbg\n%pdbg connect {workspace} --user alice --case INC-7",
    "%%dpsql --epsilon 0.2\nSELECT COUNT(*) FROM requests",
    "open('notes.txt').read()",
])
def test_ordinary_code_passes(tmp_path, src):
    assert not failed(scan_notebook(nb(tmp_path, src), workspace=tmp_path / "ws"))


def test_unknown_path_connect_is_a_warning(tmp_path):
    f = scan_notebook(nb(tmp_path, "import duckdb\nduckdb.connect(path)"))
    assert not failed(f) and rules(f, "warning") == ["raw-access/duckdb-connect"]


def test_unreadable_notebook(tmp_path):
    p = tmp_path / "bad.ipynb"
    p.write_text("{not json")
    assert rules(scan_notebook(p)) == ["notebook/unreadable"]


def test_shipped_notebooks_pass():
    books = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert {b.name for b in books} >= {"investigate.ipynb", "postmortem.ipynb", "governance.ipynb"}
    findings = check(None, books)
    assert not failed(findings), [f.line() for f in findings]


def test_template_headers_lint_without_workspace():
    assert not failed(lint_templates(None))
