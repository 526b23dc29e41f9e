"""Shared by the CLI tests: run `pdbg ARGS…` in-process and check its exit code."""

from __future__ import annotations

import pytest

from pdbg.cli.main import main


@pytest.fixture
def run(capsys):
    def _run(*argv: str, code: int = 0):
        rc = main(list(argv))
        out, err = capsys.readouterr()
        assert rc == code, (argv, out, err)
        return out, err

    return _run
