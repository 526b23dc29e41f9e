"""IPython startup file (copied into a temp IPYTHONDIR by tests only): `pdbg.connect` returns a FakeSession.

Why: the notebook and browser tests must run the shipped notebooks unmodified before
(and independently of) a real workspace; this hook exists only in test kernels.
"""

import importlib.util
import os

import pdbg

_spec = importlib.util.spec_from_file_location("pdbg_test_fake_session", os.environ["PDBG_TEST_FAKE_SESSION"])
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)


def _fake_connect(target, *, user, case, token=None):
    return _mod.FakeSession(user=user, case=case)


pdbg.connect = _fake_connect
