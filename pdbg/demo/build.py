"""Build a demo workspace: synthetic request log with one injected incident, ready to investigate.

The demo shows the whole path a real deployment takes: a data owner registers
the `requests` policy and ingests minimized data; an investigator asks for budget
for one case; a different person approves it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path

DEMO_CASE = "INC-DEMO"
INVESTIGATOR = "alice"
APPROVER = "bob"
ADMIN = "carol"
AUDITOR = "dave"
DEMO_EPSILON = 1.0
DEFAULT_ROWS = 500_000


@dataclass(frozen=True)
class DemoWorkspace:
    ws: object                 # pdbg.policy.workspace.Workspace
    truth: object              # pdbg.demo.generate.IncidentTruth (what the investigation should find)
    report: object             # pdbg.ingest.load.IngestReport
    case: str
    investigator: str
    window: tuple              # (start, end) of the generated log, naive UTC datetimes


def policy_path() -> Path:
    return Path(str(resources.files("pdbg.demo").joinpath("requests.policy.yaml")))


def build_demo(path: str | os.PathLike, *, n_rows: int = DEFAULT_ROWS, seed: int | None = None,
               progress: bool | None = None) -> DemoWorkspace:
    from pdbg.demo.generate import DEMO_START, generate, write
    from pdbg.governance import access, admin, cases, principals
    from pdbg.governance.init import init_workspace

    ws = init_workspace(path)
    owner = principals.os_actor()
    admin.add_dataset(ws, policy_path(), owner)
    hours = 4
    data = generate(n_rows, seed=seed, start=DEMO_START, hours=hours)
    with tempfile.TemporaryDirectory(prefix="pdbg-demo-") as tmp:
        raw = Path(tmp) / "requests.jsonl"
        write(data.table, raw, fmt="jsonl")
        report = admin.ingest(ws, "requests", [raw], owner, progress=progress)

    tokens = {name: principals.add_user(ws, owner, name, role) for name, role in (
        (ADMIN, "admin"), (INVESTIGATOR, "investigator"), (APPROVER, "approver"), (AUDITOR, "auditor"))}
    _save_demo_tokens(ws, tokens)

    truth = data.truth
    cases.open_case(ws, APPROVER, DEMO_CASE, f"Elevated 5xx on {truth.service} in {truth.region}",
                    severity="SEV2", detected=truth.start + timedelta(minutes=6))
    cases.update_case(ws, APPROVER, DEMO_CASE, acknowledged=truth.start + timedelta(minutes=11))
    req = access.request(ws, INVESTIGATOR, DEMO_CASE, "requests", DEMO_EPSILON, 24,
                         "Locate the service, region and start of the 5xx spike")
    access.approve(ws, req.id, APPROVER)
    return DemoWorkspace(ws=ws, truth=truth, report=report, case=DEMO_CASE, investigator=INVESTIGATOR,
                         window=(_naive(DEMO_START), _naive(DEMO_START) + timedelta(hours=hours)))


def _naive(ts):
    """Naive UTC, as DuckDB TIMESTAMP literals in queries are written."""
    from datetime import timezone

    return ts.astimezone(timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts


def _save_demo_tokens(ws, tokens: dict[str, str]) -> None:
    """Demo users' tokens go to a 0600 file under keys/ (for the broker demo); they are never printed."""
    fd = os.open(ws.keys_dir / "demo-tokens.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(tokens, f)
