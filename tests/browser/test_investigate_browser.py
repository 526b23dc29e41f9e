"""Real browser check: JupyterLab + headless Debian Chromium runs investigate.ipynb end to end.

Why: widgets only prove themselves in a browser (comm messages, front-end rendering,
the Release click). The test starts JupyterLab on 127.0.0.1 with throwaway
Jupyter/IPython dirs, opens the notebook, runs all cells, checks the gauge, the form
and the chart render, presses Release, and saves a screenshot under test-output/.

Session: a real demo workspace when ``pdbg demo`` can build one, else the test-only
fake session (installed through a kernel startup file in the temp IPYTHONDIR).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = ROOT / "test-output"

_spec = importlib.util.spec_from_file_location("pdbg_test_kernels", HERE.parent / "notebook" / "kernels.py")
kernels = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernels)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:      # noqa: S310 - 127.0.0.1 only
        return json.loads(r.read().decode())


def _lab_settings(settings_dir: Path) -> None:
    """No news/update toast; render every cell (no virtual windowing) so widgets are in the DOM."""
    ext = settings_dir / "@jupyterlab"
    (ext / "apputils-extension").mkdir(parents=True)
    (ext / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    (ext / "notebook-extension").mkdir(parents=True)
    (ext / "notebook-extension" / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))


def _workspace(tmp: Path) -> tuple[str | None, bool]:
    """(workspace path, fake?) — a real demo workspace when buildable."""
    try:
        from pdbg.demo.build import build_demo, policy_path
    except ImportError:
        return None, True
    if not policy_path().exists():
        return None, True
    ws = tmp / "demo-ws"
    build_demo(ws, n_rows=20_000, progress=False)
    return str(ws), False


@pytest.fixture
def lab(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    ws, fake = _workspace(tmp_path)
    env = dict(os.environ)
    env.update(kernels.isolated_env(tmp_path, fake=fake))
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp_path / "lab-settings")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "lab-workspaces")
    _lab_settings(tmp_path / "lab-settings")
    if ws:
        env["PDBG_WORKSPACE"] = ws
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(kernels.NOTEBOOKS / "investigate.ipynb", root / "investigate.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser", "--ip", "127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=", "--ServerApp.open_browser=False"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("JupyterLab did not start: " + (tmp_path / "lab.log").read_text()[-2000:])
        yield {"base": base, "token": token, "fake": fake, "log": tmp_path / "lab.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait_idle_kernel(base: str, token: str, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        sessions = _get(f"{base}/api/sessions?token={token}")
        if sessions and all(s["kernel"]["execution_state"] == "idle" for s in sessions):
            return
        time.sleep(0.25)
    raise AssertionError("no idle kernel for the notebook")


def test_investigate_notebook_in_chromium(lab):
    from playwright.sync_api import sync_playwright

    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(f"{lab['base']}/lab/tree/investigate.ipynb?token={lab['token']}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
            _wait_idle_kernel(lab["base"], lab["token"])
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            panel = page.locator(".pdbg-investigation")
            panel.wait_for(state="visible", timeout=90_000)
            page.locator(".pdbg-gauge").first.wait_for(state="visible", timeout=30_000)
            assert page.locator(".pdbg-epsilon").count() == 1
            page.wait_for_function(
                "() => [...document.querySelectorAll('.pdbg-accuracy')].some(e => e.textContent.includes('expected 95% CI'))",
                timeout=30_000)
            # Charts from the magics rendered as PNGs with error bars before the panel
            assert page.locator(".jp-OutputArea-output img").count() >= 2
            # Nothing in the notebook produced a traceback
            assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] .ansi-red-fg").count() == 0

            page.locator(".pdbg-release").click()
            page.locator(".pdbg-result table").wait_for(state="visible", timeout=60_000)
            page.locator(".pdbg-chart").wait_for(state="visible", timeout=30_000)
            result_text = page.locator(".pdbg-result").inner_text()
            assert "users_affected" in result_text and "released" in result_text
            assert "released" in page.locator(".pdbg-history").inner_text()

            panel.scroll_into_view_if_needed()
            panel.screenshot(path=str(OUT / "investigate-widgets.png"))
            page.screenshot(path=str(OUT / "investigate-page.png"))
        finally:
            browser.close()
    assert (OUT / "investigate-widgets.png").stat().st_size > 10_000
