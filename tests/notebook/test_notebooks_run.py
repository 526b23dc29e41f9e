"""The shipped notebooks execute top to bottom (fake session now; real demo workspace when buildable)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest

_spec = importlib.util.spec_from_file_location("pdbg_test_kernels", Path(__file__).with_name("kernels.py"))
kernels = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernels)


def run(path: Path, tmp_path: Path, monkeypatch, fake: bool, parameters: dict | None = None):
    import papermill as pm

    for k, v in kernels.isolated_env(tmp_path, fake).items():
        monkeypatch.setenv(k, v)
    out = tmp_path / f"out-{path.name}"
    pm.execute_notebook(str(path), str(out), parameters=parameters or {}, progress_bar=False,
                        kernel_name="python3", cwd=str(tmp_path))
    return nbformat.read(out, as_version=4)


def texts(nb) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", "") if o.get("output_type") == "stream" else json.dumps(o.get("data", {})))
    return "\n".join(parts)


def test_investigate_runs_with_fake_session(tmp_path, monkeypatch):
    nb = run(kernels.NOTEBOOKS / "investigate.ipynb", tmp_path, monkeypatch, fake=True)
    out = texts(nb)
    assert "connected as alice on case INC-DEMO" in out
    assert "Preview" in out and "nothing spent" in out
    assert "95% CI" in out and "image/png" in out
    assert "QueryRejected [unit-output]" in out and "Traceback" not in out
    assert "application/vnd.jupyter.widget-view+json" in out


# -- real demo workspace -------------------------------------------------------------

def _demo_buildable() -> str | None:
    try:
        from pdbg.demo.build import build_demo, policy_path  # noqa: F401
    except ImportError as err:
        return f"pdbg.demo.build is not importable: {err}"
    if not policy_path().exists():
        return "pdbg/demo/requests.policy.yaml is not there yet"
    return None


@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory):
    why = _demo_buildable()
    if why:
        pytest.skip(why)
    from pdbg.demo.build import build_demo

    root = tmp_path_factory.mktemp("demo") / "ws"
    build_demo(root, n_rows=20_000, progress=False)
    return root


def test_investigate_on_demo_workspace(demo_ws, tmp_path, monkeypatch):
    nb = run(kernels.NOTEBOOKS / "investigate.ipynb", tmp_path, monkeypatch, fake=False,
             parameters={"workspace": str(demo_ws)})
    out = texts(nb)
    assert "95% CI" in out and "QueryRejected" in out


def test_postmortem_twice_spends_nothing_the_second_time(demo_ws, tmp_path, monkeypatch):
    from pdbg.demo.build import DEMO_CASE, INVESTIGATOR
    from pdbg.session import Session

    s = Session(demo_ws, user=INVESTIGATOR, case=DEMO_CASE)
    s.sql("SELECT service, COUNT(*) AS errors FROM requests WHERE status >= 500 GROUP BY service", epsilon=0.1)
    before = s.budget().spent_epsilon
    params = {"workspace": str(demo_ws), "case": DEMO_CASE}
    first = run(kernels.NOTEBOOKS / "postmortem.ipynb", tmp_path / "1", monkeypatch, fake=False, parameters=params)
    second = run(kernels.NOTEBOOKS / "postmortem.ipynb", tmp_path / "2", monkeypatch, fake=False, parameters=params)
    assert s.budget().spent_epsilon == before
    strip = lambda nb: [o for c in nb.cells if "replay_case" in c.source for o in c.outputs]  # noqa: E731
    assert strip(first) == strip(second)
    assert "Privacy impact score" in texts(second)


def test_pdbg_check_passes_on_demo(demo_ws):
    from pdbg.cli.main import main

    assert main(["check", str(demo_ws), str(kernels.NOTEBOOKS)]) == 0
