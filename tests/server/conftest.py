"""A real broker for the server tests: `pdbg serve` in a subprocess on a free loopback port.

The demo workspace (20k rows) is built once per test session; the broker's stderr
is captured to a file so tests can prove that no token ever reaches its log.
Tests that spend budget open their own case with its own grant (``fresh_case``),
so they never depend on each other's order.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import httpx
import pytest

from pdbg.demo.build import APPROVER, INVESTIGATOR

from .helpers import start_broker

_case_ids = itertools.count(1)
REPO = Path(__file__).resolve().parents[2]


def _build_demo(path: Path):
    import pdbg.demo.build as build

    if not build.policy_path().exists():  # the shipped demo policy is not in every checkout yet
        build.policy_path = lambda: REPO / "tests" / "ingest" / "requests.policy.yaml"
    return build.build_demo(path, n_rows=20_000, seed=11, progress=False)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    os.environ.pop("PDBG_AUDIT_MIRROR", None)
    os.environ.pop("PDBG_TOKEN", None)
    root = tmp_path_factory.mktemp("server-demo")
    return _build_demo(root / "ws")


@pytest.fixture(scope="session")
def tokens(demo) -> dict[str, str]:
    return json.loads((demo.ws.keys_dir / "demo-tokens.json").read_text())


@pytest.fixture(scope="session")
def broker(demo, tokens, tmp_path_factory):
    b = start_broker(demo.ws.root, tmp_path_factory.mktemp("broker") / "server.log", "--query-timeout", "20")
    yield b
    b.stop()
    leaked = [name for name, tok in tokens.items() if tok in b.log()]
    assert not leaked, f"tokens of {leaked} appear in the broker's log"


@pytest.fixture
def http(broker, tokens):
    """Raw HTTP against the broker: ``http("alice")`` sends alice's real token as alice;
    ``token=`` / ``as_user=`` forge the other half."""
    clients = []

    def make(user: str | None = None, token: str | None = None, as_user: str | None = None) -> httpx.Client:
        headers = {}
        if user or token:
            headers["Authorization"] = f"Bearer {token or tokens[user]}"
            headers["X-Pdbg-User"] = as_user or user
        c = httpx.Client(base_url=broker.url, headers=headers, timeout=60)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def fresh_case(demo, open_granted_case):
    """A new case with its own approved grant of ε=epsilon for the investigator."""
    def make(epsilon: float = 1.0) -> str:
        return open_granted_case(demo.ws, f"S-{next(_case_ids)}", investigator=INVESTIGATOR,
                                 approver=APPROVER, epsilon=epsilon, title="server test")

    return make


@pytest.fixture
def remote(broker, tokens):
    """``remote(case)``: a RemoteSession for the investigator."""
    import pdbg

    opened = []

    def make(case: str, user: str = INVESTIGATOR):
        s = pdbg.connect(broker.url, user=user, case=case, token=tokens[user])
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


