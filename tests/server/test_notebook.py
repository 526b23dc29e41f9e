"""Magics, widgets and the investigation notebook work unchanged against a broker.

Only the public interface is used: `%pdbg connect URL --token-file F`, `pdbg.connect(URL)`
with ``$PDBG_TOKEN``, `pdbg.oversee(URL)` for the governance and postmortem views, and
the notebooks' own parameters (``PDBG_WORKSPACE`` may be a broker URL).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pdbg.demo.build import INVESTIGATOR

from .helpers import REPO

COUNT = "SELECT service, COUNT(*) AS errors FROM requests WHERE status >= 500 GROUP BY service"


@pytest.fixture
def ip():
    from IPython.testing.globalipapp import get_ipython

    from pdbg.notebook.magics import set_current_session

    shell = get_ipython()
    shell.run_line_magic("load_ext", "pdbg")
    yield shell
    set_current_session(None)


def test_magics_against_the_broker(ip, broker, tokens, fresh_case, capsys, tmp_path):
    import os

    from pdbg.notebook import display as disp
    from pdbg.notebook.magics import current_session
    from pdbg.server.client import RemoteSession

    case = fresh_case()
    token_file = tmp_path / "token"
    token_file.write_text(tokens[INVESTIGATOR] + "\n")
    os.chmod(token_file, 0o600)       # the token never appears in the cell, only the file's name
    ip.run_line_magic("pdbg", f"connect {broker.url} --user {INVESTIGATOR} --case {case} --token-file {token_file}")
    assert isinstance(current_session(), RemoteSession)
    assert "connected as alice" in capsys.readouterr().out
    pv = ip.run_cell_magic("dpsql", "--preview --epsilon 0.2", COUNT)
    assert isinstance(pv, disp.PreviewView) and "nothing spent" in repr(pv)
    view = ip.run_cell_magic("dpsql", "--epsilon 0.2 -o errs", COUNT)
    assert isinstance(view, disp.ResultView) and "95% CI" in view._repr_html_()
    assert {"errors", "errors_ci_low", "errors_ci_high"} <= set(ip.user_ns["errs"].columns)
    again = ip.run_cell_magic("dpsql", "--epsilon 0.2", COUNT)
    assert again.cached and "served from cache" in repr(again)
    ip.run_line_magic("dpsql", "--template errors_by_service --epsilon 0.1")
    ip.run_cell_magic("dpsql", "", "SELECT user_id FROM requests")
    out = capsys.readouterr().out
    assert "QueryRejected [" in out and "Traceback" not in out
    assert "remaining" in repr(ip.run_line_magic("pdbg", "budget")).lower()
    hist = current_session().history()
    assert [h["action"] for h in hist] == ["query", "query", "query", "query.refused"]
    assert tokens[INVESTIGATOR] not in out


def test_widgets_preview_without_spending_and_release_once(broker, tokens, fresh_case, remote):
    from pdbg.notebook import widgets as W

    case = fresh_case()
    s = remote(case)
    panel = W.Investigation(s, template="errors_by_service")
    for eps in (0.05, 0.1, 0.3, 0.2):
        panel.form.epsilon.value = eps
    assert "expected 95% CI" in panel.form.accuracy.value
    assert s.budget().spent_epsilon == 0                      # previews never spend
    result = panel.form.release()
    assert result is not None and not result.cached
    assert s.budget().spent_epsilon > 0
    assert [h["action"] for h in s.history()] == ["query"]
    bar = panel.gauge.children[1].children[0]                 # the gauge refreshed from the broker
    assert bar.value == pytest.approx(s.budget().spent_epsilon)


def _nbval(notebook: str, tmp_path, **env_vars) -> subprocess.CompletedProcess:
    """`pytest --nbval NOTEBOOK` in a subprocess with a private Jupyter/IPython home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PDBG_", "JUPYTER_"))}
    for d in ("ipython", "jupyter-config", "jupyter-data", "jupyter-runtime"):
        (tmp_path / d).mkdir(exist_ok=True)
    env.update(env_vars, IPYTHONDIR=str(tmp_path / "ipython"), JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
               JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
               JUPYTER_PLATFORM_DIRS="1", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
         "--nbval-sanitize-with", "notebooks/nbval.cfg", notebook],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_investigate_and_postmortem_notebooks_under_nbval_against_the_broker(broker, tokens, fresh_case, tmp_path):
    """The investigation runs through the broker, then its postmortem replays it through the
    broker (oversight views + cache replays), spending nothing more."""
    pytest.importorskip("nbval")
    from pdbg.server.client import RemoteSession

    case = fresh_case()
    common = dict(PDBG_WORKSPACE=broker.url, PDBG_TOKEN=tokens[INVESTIGATOR], PDBG_USER=INVESTIGATOR, PDBG_CASE=case)
    proc = _nbval("notebooks/investigate.ipynb", tmp_path, **common)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    with RemoteSession(broker.url, user=INVESTIGATOR, case=case, token=tokens[INVESTIGATOR]) as s:
        assert any(h["action"] == "query" for h in s.history())   # it really ran against this case
        spent = s.budget().spent_epsilon
        proc = _nbval("notebooks/postmortem.ipynb", tmp_path, **common)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert s.budget().spent_epsilon == spent                    # the postmortem replayed for free
    assert tokens[INVESTIGATOR] not in proc.stdout + proc.stderr


def test_governance_notebook_under_nbval_against_the_broker(broker, tokens, tmp_path):
    """An auditor's view through the broker; an investigator's token is refused the same views."""
    pytest.importorskip("nbval")
    from pdbg.demo.build import AUDITOR
    from pdbg.errors import AccessDenied
    from pdbg.server.client import RemoteOversight

    proc = _nbval("notebooks/governance.ipynb", tmp_path, PDBG_WORKSPACE=broker.url, PDBG_TOKEN=tokens[AUDITOR],
                  PDBG_USER=AUDITOR)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    ov = RemoteOversight(broker.url, user=INVESTIGATOR, token=tokens[INVESTIGATOR])
    try:
        with pytest.raises(AccessDenied):
            ov.requests()
        with pytest.raises(AccessDenied):
            ov.verify()
    finally:
        ov.close()
