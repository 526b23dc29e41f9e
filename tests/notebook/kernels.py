"""Helpers shared by notebook-execution tests: temp Jupyter/IPython dirs, optional fake kernels."""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NOTEBOOKS = ROOT / "notebooks"


def isolated_env(tmp: Path, fake: bool) -> dict[str, str]:
    """Environment for a kernel/server with its own config dirs (never the user's)."""
    env = {
        "IPYTHONDIR": str(tmp / "ipython"),
        "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "MPLBACKEND": "Agg",
    }
    for k in ("IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        Path(env[k]).mkdir(parents=True, exist_ok=True)
    if fake:
        startup = tmp / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "fake_kernel_startup.py", startup / "00-pdbg-fake-session.py")
        env["PDBG_TEST_FAKE_SESSION"] = str(HERE / "fake_session.py")
    return env
