"""`pdbg check`: lint policies and query templates, and scan notebooks for leaks and raw access.

Why: a notebook is where private data most easily escapes — a pasted e-mail in an
output cell, or a "quick look" with ``duckdb.connect("WS/data.duckdb")`` that bypasses
the DP pipeline (the embedded mode cannot stop it; see DESIGN.md's threat model). This
check runs as a pre-commit hook and in CI and fails on either. Findings say *where*
(notebook, cell, output) and *which rule*, never the matched value.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

# Names of workspace files that only pdbg itself may open.
WS_FILE_MARKERS = ("data.duckdb", "state.sqlite", "tokenize.key", "signing.key", "demo-tokens.json", "keys/")
_WS_NAMES = {"workspace", "ws", "WS", "ws_path", "workspace_path", "WORKSPACE"}
_CONNECT = {("duckdb", "connect"), ("sqlite3", "connect"), ("duckdb", "read_parquet"), ("duckdb", "sql"),
            ("duckdb", "query"), ("duckdb", "read_csv")}
_READERS = {"open", "read_parquet", "read_table", "read_bytes", "read_text", "read_sql", "ParquetFile",
            "read_csv", "read_json"}
_SKIP_MIME = ("image/", "application/vnd.jupyter.widget-view+json", "application/pdf")


@dataclass(frozen=True)
class Finding:
    """One problem. ``severity`` error fails the check; warning is reported only."""

    where: str          # file (and cell / output)
    rule: str           # stable id, e.g. pii-in-output/email, raw-access/duckdb-connect
    message: str
    severity: str = "error"

    def line(self) -> str:
        return f"{self.where}: {self.severity}: [{self.rule}] {self.message}"

    def to_dict(self) -> dict:
        return asdict(self)


# -- notebook outputs: PII ------------------------------------------------------

def _output_texts(output: dict) -> Iterable[tuple[str, str]]:
    """(label, text) for every textual part of one output."""
    kind = output.get("output_type")
    if kind == "stream":
        yield f"stream {output.get('name', '')}".strip(), _join(output.get("text", ""))
    elif kind in ("execute_result", "display_data"):
        for mime, data in (output.get("data") or {}).items():
            if mime.startswith(_SKIP_MIME):
                continue
            yield mime, data if isinstance(data, str) else (_join(data) if isinstance(data, list) else json.dumps(data))
    elif kind == "error":
        yield "error", " ".join([output.get("ename", ""), output.get("evalue", "")] + list(output.get("traceback", [])))


def _join(x: Any) -> str:
    return "".join(x) if isinstance(x, list) else str(x)


def _widget_texts(metadata: dict) -> Iterable[tuple[str, str]]:
    """Strings saved in widget state (an HTML result widget holds released tables)."""
    state = ((metadata.get("widgets") or {}).get("application/vnd.jupyter.widget-state+json") or {}).get("state") or {}
    for model_id, model in state.items():
        st = (model or {}).get("state") or {}
        for key, val in st.items():
            if isinstance(val, str) and not (len(val) > 200 and " " not in val):   # skip base64 blobs
                yield f"widget {model_id[:8]} {key}", val


def _scan(texts: Iterable[tuple[str, str]], where: str) -> list[Finding]:
    from pdbg.ingest.detectors import scan_text       # lazy: ingest is heavier than the check needs

    out = []
    for label, text in texts:
        counts: dict[str, int] = {}
        for f in scan_text(_strip_html(text) if "html" in label or label.startswith("widget") else text):
            counts[f.detector] = counts.get(f.detector, 0) + 1
        for det, n in sorted(counts.items()):
            out.append(Finding(f"{where} {label}", f"pii-in-output/{det}",
                               f"{n} match(es) of the {det} detector; clear the output and re-run with DP queries"))
    return out


def _strip_html(text: str) -> str:
    import html as _html

    return _html.unescape(re.sub(r"<[^>]+>", " ", text))


# -- notebook code: raw access ----------------------------------------------------

def _python_source(cell_source: str) -> str | None:
    """Cell source with IPython syntax (magics, !shell) turned into Python, or None if unparsable."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(cell_source)
    except Exception:  # noqa: BLE001 - a broken cell is reported as unparsable, not a crash
        return None


def _mentions_ws(text: str, ws_hints: tuple[str, ...]) -> bool:
    return any(m in text for m in WS_FILE_MARKERS + ws_hints)


class _CodeScanner(ast.NodeVisitor):
    def __init__(self, where: str, ws_hints: tuple[str, ...], tainted: set[str]) -> None:
        self.where, self.ws_hints, self.tainted = where, ws_hints, tainted
        self.findings: list[Finding] = []
        self.source = ""

    def _refs_ws(self, node: ast.AST) -> bool:
        seg = ast.get_source_segment(self.source, node) or ""
        if _mentions_ws(seg, self.ws_hints):
            return True
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        return bool(names & (self.tainted | _WS_NAMES))

    def visit_Assign(self, node: ast.Assign) -> None:
        if self._refs_ws(node.value):
            for t in node.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        self.tainted.add(n.id)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and any(m in node.value for m in WS_FILE_MARKERS):
            self.findings.append(Finding(self.where, "raw-access/workspace-file",
                                         "code names a workspace file that only pdbg may open; use pdbg.connect / %%dpsql"))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        mod = name = None
        if isinstance(func, ast.Attribute):
            name = func.attr
            if isinstance(func.value, ast.Name):
                mod = func.value.id
        elif isinstance(func, ast.Name):
            name = func.id
        args = list(node.args) + [k.value for k in node.keywords]
        refs = any(self._refs_ws(a) for a in args) or (
            isinstance(func, ast.Attribute) and self._refs_ws(func.value) and name in _READERS)
        if (mod, name) in _CONNECT:
            if refs:
                self.findings.append(Finding(self.where, f"raw-access/{mod}-{name.replace('_', '-')}",
                                             f"{mod}.{name}() on the workspace bypasses DP, budget and audit; "
                                             "use pdbg.connect(...).sql() or %%dpsql"))
            elif args and not all(isinstance(a, ast.Constant) and a.value in (":memory:", "") for a in args):
                self.findings.append(Finding(self.where, f"raw-access/{mod}-{name.replace('_', '-')}",
                                             f"{mod}.{name}() on a path pdbg cannot resolve; make sure it is not a "
                                             "workspace file", severity="warning"))
        elif name in _READERS and refs and mod not in ("pdbg",):
            self.findings.append(Finding(self.where, "raw-access/open-workspace-file",
                                         f"{name}() reads workspace files directly; only pdbg may open them"))
        self.generic_visit(node)


def scan_notebook(path: str | Path, workspace: str | Path | None = None) -> list[Finding]:
    """Findings for one .ipynb: PII in any output or widget state, raw workspace access in code."""
    import nbformat

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - any unreadable notebook is a finding, not a crash
        return [Finding(str(path), "notebook/unreadable", "not a readable Jupyter notebook")]
    hints: tuple[str, ...] = ()
    if workspace is not None:
        ws = Path(workspace).resolve()
        hints = (str(ws),) if len(str(ws)) > 1 else ()
    findings: list[Finding] = []
    tainted: set[str] = set()
    for i, cell in enumerate(nb.cells, start=1):
        where = f"{path.name} cell {i}"
        if cell.cell_type == "code":
            src = _python_source(cell.source)
            if src is None:
                findings.append(Finding(where, "notebook/unparsable-code", "cannot parse the cell; checked as text only",
                                        severity="warning"))
                if _mentions_ws(cell.source, hints):
                    findings.append(Finding(where, "raw-access/workspace-file", "cell names a workspace file"))
            else:
                try:
                    tree = ast.parse(src)
                except SyntaxError:
                    tree = None
                    if _mentions_ws(src, hints):
                        findings.append(Finding(where, "raw-access/workspace-file", "cell names a workspace file"))
                if tree is not None:
                    sc = _CodeScanner(where, hints, tainted)
                    sc.source = src
                    sc.visit(tree)
                    findings += sc.findings
            for j, out in enumerate(cell.get("outputs", []), start=1):
                findings += _scan(_output_texts(out), f"{where} output {j}")
        elif cell.cell_type == "markdown":
            findings += _scan([("markdown", cell.source)], where)
    findings += _scan(_widget_texts(nb.metadata), f"{path.name} metadata")
    return findings


# -- policies and templates -------------------------------------------------------

def lint_policies(ws) -> list[Finding]:
    """Registered policies load and validate; risky but legal settings become warnings."""
    from pdbg.errors import PdbgError
    from pdbg.ingest import datasets

    out: list[Finding] = []
    try:
        infos = datasets.list_datasets(ws)
    except PdbgError as err:
        return [Finding("workspace", "policy/registry", err.message)]
    for info in infos:
        where = f"policy {info.name}"
        try:
            p = datasets.get_policy(ws, info.name)
        except PdbgError as err:
            out.append(Finding(where, "policy/invalid", err.message))
            continue
        if p.epsilon.max_per_query > 1.0:
            out.append(Finding(where, "policy/large-epsilon", f"max ε per query {p.epsilon.max_per_query:g} > 1",
                               severity="warning"))
        if p.epsilon.dataset_cap > 10:
            out.append(Finding(where, "policy/large-cap", f"dataset ε cap {p.epsilon.dataset_cap:g} > 10",
                               severity="warning"))
        if p.delta > 1e-5:
            out.append(Finding(where, "policy/large-delta", f"δ {p.delta:g} > 1e-5", severity="warning"))
        for name, col in p.kept_columns.items():
            if col.sensitive and col.domain:
                out.append(Finding(where, "policy/sensitive-domain",
                                   f"column {name} is {col.class_.value} but lists a public domain"))
    return out


_HOSTILE = "x' OR '1'='1' --"


def lint_templates(ws=None, library: dict | None = None) -> list[Finding]:
    """Every template parses, passes the DP checker against its dataset's policy, and binds safely.

    "Binds safely": planning with a hostile string value gives the same plan shape (keys,
    measures, outputs) as with the default, i.e. the value stayed a literal.
    """
    from pdbg.errors import PdbgError
    from pdbg.templates import load_library

    out: list[Finding] = []
    try:
        lib = load_library(workspace=getattr(ws, "root", ws)) if library is None else library
    except PdbgError as err:
        return [Finding("queries", "template/header", err.message)]
    policies: dict[str, Any] = {}
    if ws is not None:
        from pdbg.ingest import datasets

        for info in datasets.list_datasets(ws):
            try:
                policies[info.name] = datasets.get_policy(ws, info.name)
            except PdbgError:
                pass
    for name, t in lib.items():
        where = f"template {name}"
        for problem in t.problems():
            out.append(Finding(where, "template/header", problem))
        try:
            bound = t.bind()
        except PdbgError as err:
            out.append(Finding(where, "template/defaults", err.message))
            continue
        if ws is None:
            continue
        policy = policies.get(t.dataset)
        if policy is None:
            out.append(Finding(where, "template/dataset", f"dataset {t.dataset!r} is not registered in the workspace",
                               severity="warning"))
            continue
        from pdbg.sql import plan_query

        try:
            plan = plan_query(t.sql, policy, params=bound)
        except PdbgError as err:
            rule = getattr(err, "rule", "rejected")
            out.append(Finding(where, f"template/rejected/{rule}", err.message))
            continue
        if t.epsilon > policy.epsilon.max_per_query:
            out.append(Finding(where, "template/epsilon", f"default ε {t.epsilon:g} exceeds the policy's "
                               f"per-query maximum {policy.epsilon.max_per_query:g}"))
        for p in t.params:
            if p.type != "string":
                continue
            try:
                hostile = plan_query(t.sql, policy, params={**bound, p.name: _HOSTILE})
            except PdbgError:
                continue                            # refused is safe too
            shape = lambda pl: (pl.keys, pl.measures, pl.outputs, pl.g)  # noqa: E731
            if shape(hostile) != shape(plan):
                out.append(Finding(where, "template/unsafe-binding",
                                   f"a value for ${p.name} changed the query's structure"))
    return out


def check(ws=None, notebooks: Iterable[str | Path] = ()) -> list[Finding]:
    """Everything `pdbg check WS [NOTEBOOK…]` reports."""
    findings: list[Finding] = []
    if ws is not None:
        findings += lint_policies(ws)
    findings += lint_templates(ws)
    root = getattr(ws, "root", ws)
    for nb in notebooks:
        findings += scan_notebook(nb, root)
    return findings


def failed(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)
