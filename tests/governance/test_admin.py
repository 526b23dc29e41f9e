"""A dataset's lifetime budget cap follows its policy: a lowered ``dataset_cap`` is enforced at once."""

from __future__ import annotations

import pytest
import yaml

from pdbg.dp.accounting import query_cost
from pdbg.errors import BudgetExceeded, PolicyError
from pdbg.governance import access, admin
from pdbg.ingest import datasets
from pdbg.ledger.budget import Ledger

from .conftest import policy_dict


def _spend(gov, epsilon: float) -> str:
    """alice gets a grant on ``events`` (approved by bob) and a query charges ``epsilon`` to it."""
    grant = access.approve(gov.ws, access.request(gov.ws, "alice", "INC-1", "events", 2.0, 8, "why").id, "bob")
    policy = datasets.get_policy(gov.ws, "events")
    cost = query_cost(policy.accounting, epsilon, grant_delta=policy.delta, selection_delta=0.0)
    with Ledger(gov.ws) as led:
        led.commit(led.reserve([f"grant:{grant.id}", "dataset:events"], cost, holder="alice/INC-1"))
    return grant.id


def _policy_file(tmp_path, **over):
    path = tmp_path / "events.policy.yaml"
    path.write_text(yaml.safe_dump(policy_dict("events", **over)))
    return path


def _epsilon(cap: float) -> dict:
    return {"default_per_query": 0.1, "max_per_query": 0.5, "case_default": min(2.0, cap),
            "dataset_cap": cap, "break_glass": min(0.5, cap)}


def test_lowered_cap_is_enforced_and_audited(gov, tmp_path):
    _spend(gov, 1.5)
    info, outcome = admin.add_dataset(gov.ws, _policy_file(tmp_path, epsilon=_epsilon(1.0)), "root", replace=True)
    assert outcome == "replaced"
    with Ledger(gov.ws) as led:
        b = led.balance("dataset:events")
        assert b.granted_epsilon == 1.0 and b.remaining_units == 0 and b.spent_epsilon == pytest.approx(1.5)
    rec = [r for r in gov.records() if r["action"] == "budget.cap"]
    assert len(rec) == 1 and rec[0]["actor"] == "root" and rec[0]["epsilon"] == 1.0
    assert rec[0]["previous"]["epsilon"] == 5.0
    # a new grant within the new policy is approved, but the dataset has nothing left to spend
    grant = access.approve(gov.ws, access.request(gov.ws, "dave", "INC-2", "events", 1.0, 8, "why").id, "carol")
    cost = query_cost("zcdp", 0.1, grant_delta=1e-6, selection_delta=0.0)
    with Ledger(gov.ws) as led, pytest.raises(BudgetExceeded):
        led.reserve([f"grant:{grant.id}", "dataset:events"], cost, holder="dave/INC-2")
    # raising it again gives back exactly the room above what was spent
    admin.add_dataset(gov.ws, _policy_file(tmp_path, epsilon=_epsilon(5.0)), "root", replace=True)
    with Ledger(gov.ws) as led:
        assert led.balance("dataset:events").granted_epsilon == 5.0
        led.reserve([f"grant:{grant.id}", "dataset:events"], cost, holder="dave/INC-2")


def test_accounting_change_after_spending_is_refused_before_anything_changes(gov, tmp_path):
    _spend(gov, 0.5)
    before = datasets.get_policy(gov.ws, "events")
    n_records = len(gov.records())
    with pytest.raises(PolicyError, match="accounting cannot change"):
        admin.add_dataset(gov.ws, _policy_file(tmp_path, accounting="pure"), "root", replace=True)
    assert datasets.get_policy(gov.ws, "events") == before            # the policy was not replaced
    assert len(gov.records()) == n_records
    with Ledger(gov.ws) as led:
        assert led.balance("dataset:events").accounting == "zcdp"


def test_grant_approval_corrects_a_cap_account_left_behind(gov, tmp_path):
    # a workspace whose policy changed before caps followed it: the next approval fixes the account
    _spend(gov, 0.5)
    datasets.register(gov.ws, datasets.get_policy(gov.ws, "events").model_copy(
        update={"epsilon": datasets.get_policy(gov.ws, "events").epsilon.model_copy(update={"dataset_cap": 3.0})}),
        replace=True)
    with Ledger(gov.ws) as led:
        assert led.balance("dataset:events").granted_epsilon == 5.0   # registering alone does not touch the ledger
    access.approve(gov.ws, access.request(gov.ws, "dave", "INC-2", "events", 1.0, 8, "why").id, "carol")
    with Ledger(gov.ws) as led:
        assert led.balance("dataset:events").granted_epsilon == 3.0
    [rec] = [r for r in gov.records() if r["action"] == "budget.cap"]      # the repair is on the record
    assert rec["actor"] == "pdbg" and rec["previous"]["epsilon"] == 5.0 and rec["epsilon"] == 3.0


def test_dataset_delta_sets_the_lifetime_delta_cap_and_follows_changes(gov, tmp_path):
    _spend(gov, 0.5)
    with Ledger(gov.ws) as led:
        assert led.balance("dataset:events").granted_delta == 1e-6          # default: one grant's δ
    admin.add_dataset(gov.ws, _policy_file(tmp_path, dataset_delta=1e-5), "root", replace=True)
    with Ledger(gov.ws) as led:
        b = led.balance("dataset:events")
        assert b.granted_delta == 1e-5 and b.delta_cap == pytest.approx(5e-6)   # zCDP: half for selection
    grant = access.approve(gov.ws, access.request(gov.ws, "dave", "INC-2", "events", 1.0, 8, "why").id, "carol")
    with Ledger(gov.ws) as led:
        assert led.balance(f"grant:{grant.id}").granted_delta == 1e-6          # a grant keeps the policy's delta
