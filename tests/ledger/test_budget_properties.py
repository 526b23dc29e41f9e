"""Property tests of the ledger: random reserve/commit/release sequences against a model.

The model is plain integer arithmetic. Whatever the sequence, the ledger must agree with
it exactly, never hold more than a cap, and a refused reservation must change nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pdbg.dp.accounting import Cost
from pdbg.errors import BudgetExceeded, PolicyError
from pdbg.ledger.budget import Ledger
from pdbg.policy.workspace import create_layout

ACCOUNTS = ("grant:a", "grant:b", "dataset:d")


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="pdbg-ledger-"))
        self.ledger = Ledger(create_layout(self.tmp / "ws", audit_mirror=self.tmp / "mirror"))
        self.ledger.conn.execute("PRAGMA synchronous=OFF")  # algebra under test, not durability
        self.cap: dict[str, tuple[int, int]] = {}
        self.committed = {a: [0, 0] for a in ACCOUNTS}
        self.reserved = {a: [0, 0] for a in ACCOUNTS}
        self.pending: dict[str, tuple[tuple[str, ...], int, int]] = {}
        self.finished: dict[str, str] = {}

    def teardown(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize(
        caps=st.lists(
            st.tuples(st.integers(0, 10**6), st.integers(0, 10**3)), min_size=len(ACCOUNTS), max_size=len(ACCOUNTS)
        )
    )
    def open_accounts(self, caps):
        for account, (eps_micro, delta_nano) in zip(ACCOUNTS, caps):
            self.ledger.open_account(account, accounting="pure", epsilon=eps_micro / 10**6, delta=delta_nano / 10**9)
            self.cap[account] = (eps_micro * 10**9, delta_nano * 10**6)

    @rule(
        accounts=st.sets(st.sampled_from(ACCOUNTS), min_size=1),
        eps_micro=st.integers(0, 4 * 10**5),
        delta_nano=st.integers(0, 400),
    )
    def reserve(self, accounts, eps_micro, delta_nano):
        ids = tuple(sorted(accounts))
        cost = Cost(rho=None, epsilon=eps_micro / 10**6, delta=delta_nano / 10**9)
        p, d = cost.privacy_units, cost.delta_units
        assert (p, d) == (eps_micro * 10**9, delta_nano * 10**6)
        fits = all(
            self.committed[a][0] + self.reserved[a][0] + p <= self.cap[a][0]
            and self.committed[a][1] + self.reserved[a][1] + d <= self.cap[a][1]
            for a in ids
        )
        before = {a: self.ledger.balance(a) for a in ACCOUNTS}
        try:
            res = self.ledger.reserve(list(ids), cost, holder="prop")
        except BudgetExceeded as err:
            assert not fits
            assert err.requested is not None and err.remaining is not None
            assert {a: self.ledger.balance(a) for a in ACCOUNTS} == before  # charged nothing
            return
        assert fits
        self.pending[res.id] = (ids, p, d)
        for a in ids:
            self.reserved[a][0] += p
            self.reserved[a][1] += d

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), commit=st.booleans())
    def finish(self, data, commit):
        rid = data.draw(st.sampled_from(sorted(self.pending)))
        ids, p, d = self.pending.pop(rid)
        if commit:
            self.ledger.commit(rid)
        else:
            assert self.ledger.release(rid) == "released"
        self.finished[rid] = "committed" if commit else "released"
        for a in ids:
            self.reserved[a][0] -= p
            self.reserved[a][1] -= d
            if commit:
                self.committed[a][0] += p
                self.committed[a][1] += d

    @precondition(lambda self: self.finished)
    @rule(data=st.data(), commit=st.booleans())
    def finish_again(self, data, commit):
        rid = data.draw(st.sampled_from(sorted(self.finished)))
        state = self.finished[rid]
        if commit and state == "committed":
            self.ledger.commit(rid)
        elif not commit:
            assert self.ledger.release(rid) == state  # idempotent; a committed charge stands

    @precondition(lambda self: self.cap)
    @rule(eps_micro=st.integers(0, 10**6) | st.sampled_from([0, 1]), delta_nano=st.integers(0, 10**3) | st.just(0))
    def retarget_dataset_cap(self, eps_micro, delta_nano):
        """The dataset's policy cap changes: refused while a query is in flight, else spent stays spent."""
        a = "dataset:d"
        before = self.ledger.balance(a)
        try:
            self.ledger.retarget(a, accounting="pure", epsilon=eps_micro / 10**6, delta=delta_nano / 10**9)
        except PolicyError:
            assert any(self.reserved[a])
            assert self.ledger.balance(a) == before
            return
        assert not any(self.reserved[a]) or (before.granted_epsilon, before.granted_delta) == (
            eps_micro / 10**6, delta_nano / 10**9)
        self.cap[a] = (max(eps_micro * 10**9, self.committed[a][0]), max(delta_nano * 10**6, self.committed[a][1]))

    @invariant()
    def matches_the_model_and_never_exceeds_a_cap(self):
        if not self.cap:
            return
        for a in ACCOUNTS:
            b = self.ledger.balance(a)
            assert (b.committed_units, b.delta_committed_units) == tuple(self.committed[a])
            assert (b.reserved_units, b.delta_reserved_units) == tuple(self.reserved[a])
            assert b.remaining_units >= 0 and b.delta_remaining_units >= 0
            assert (b.cap_units, b.delta_cap_units) == self.cap[a]
        for a, t in self.ledger.row_totals().items():
            assert (t["t_c"], t["t_r"], t["t_dc"], t["t_dr"]) == (t["c"], t["r"], t["dc"], t["dr"])


LedgerMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase
