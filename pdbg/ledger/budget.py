"""The budget ledger: atomic reserve -> commit/release over state.sqlite.

Why a ledger of our own: an OpenDP privacy filter dies on its first refusal and lives
in one process; pdbg's budget must survive kernel restarts, be shared by several
notebook kernels, refuse an over-budget query without harm, and be reconcilable with
the audit log. All amounts are integers in ``pdbg.dp.accounting.UNIT``.

Tables (this module owns them)::

    budget_accounts(account_id PK, accounting, epsilon, delta,
                    cap_privacy_units, cap_delta_units, conversion_delta, created)
    budget_reservations(id, account_id, privacy_units, delta_units,
                        state reserved|committed|released, holder, host, pid, pid_start,
                        created, finished, PRIMARY KEY (id, account_id))

A reservation spans several accounts (the grant and the dataset-wide cap), so it has
one row per account; its rows always change state together in one transaction.
Each account also keeps running totals (committed / reserved, privacy / δ) updated in
that same transaction, so a reserve costs the same after 100,000 releases as after one,
and SQLite CHECK constraints refuse any write that would put an account over its cap
(defence in depth behind the explicit check). ``pdbg.ledger.reconcile`` verifies that
the totals equal the sums of the rows.

Protocol used by the session (the crash-safety argument depends on the order)::

    res = ledger.reserve([grant, cap], cost, holder=...)   # BEGIN IMMEDIATE: check + insert
    ... execute, add noise ...        # on failure: ledger.release(res)
    AuditLog(ws).append(..., "query", **res.audit_fields())   # the point of no return
    ledger.commit(res)

A process that dies holding a reservation leaves it ``reserved``; :meth:`Ledger.recover`
commits it if the audit log holds its ``charged`` query record (the answer may have been
shown) and releases it otherwise (nothing was released: the audit append precedes release).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from pdbg import clock
from pdbg.dp.accounting import (
    Accounting,
    Cost,
    capacity,
    from_units,
    units_to_epsilon,
)
from pdbg.errors import BudgetExceeded, PdbgError, PolicyError
from pdbg.ledger.state import StateStore, write_tx

SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_accounts (
    account_id            TEXT PRIMARY KEY,
    accounting            TEXT NOT NULL CHECK (accounting IN ('zcdp', 'pure')),
    epsilon               REAL NOT NULL,
    delta                 REAL NOT NULL,
    cap_privacy_units     INTEGER NOT NULL CHECK (cap_privacy_units >= 0),
    cap_delta_units       INTEGER NOT NULL CHECK (cap_delta_units >= 0),
    conversion_delta      REAL NOT NULL,
    created               TEXT NOT NULL,
    committed_units       INTEGER NOT NULL DEFAULT 0 CHECK (committed_units >= 0),
    reserved_units        INTEGER NOT NULL DEFAULT 0 CHECK (reserved_units >= 0),
    delta_committed_units INTEGER NOT NULL DEFAULT 0 CHECK (delta_committed_units >= 0),
    delta_reserved_units  INTEGER NOT NULL DEFAULT 0 CHECK (delta_reserved_units >= 0),
    CHECK (committed_units + reserved_units <= cap_privacy_units),
    CHECK (delta_committed_units + delta_reserved_units <= cap_delta_units)
);
CREATE TABLE IF NOT EXISTS budget_reservations (
    id            TEXT NOT NULL,
    account_id    TEXT NOT NULL REFERENCES budget_accounts(account_id),
    privacy_units INTEGER NOT NULL CHECK (privacy_units >= 0),
    delta_units   INTEGER NOT NULL CHECK (delta_units >= 0),
    state         TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'released')),
    holder        TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    pid_start     TEXT,
    created       TEXT NOT NULL,
    finished      TEXT,
    PRIMARY KEY (id, account_id)
);
CREATE INDEX IF NOT EXISTS budget_reservations_by_account ON budget_reservations (account_id, state);
CREATE INDEX IF NOT EXISTS budget_reservations_by_state ON budget_reservations (state);
"""

_LIVE = ("reserved", "committed")

# Audit actions that carry a charge (Reservation.audit_fields()): a released answer, and a
# failure after the engine started reading private rows (DESIGN.md invariant 10: an error
# after data access is a release of one bit, so it is charged like one).
CHARGING_ACTIONS = frozenset({"query", "query.failed"})


@dataclass(frozen=True)
class Reservation:
    """A hold on budget in one or more accounts; commit or release it exactly once."""

    id: str
    account_ids: tuple[str, ...]
    cost: Cost
    holder: str

    @property
    def privacy_units(self) -> int:
        return self.cost.privacy_units

    @property
    def delta_units(self) -> int:
        return self.cost.delta_units

    def audit_fields(self) -> dict:
        """The fields the session's ``query`` audit record must carry (see ledger.reconcile)."""
        return {
            "charged": True,
            "reservation": self.id,
            "accounts": list(self.account_ids),
            "cost_units": self.cost.units(),
        }


@dataclass(frozen=True)
class Balance:
    """One account's budget, in display ε/δ and in exact units.

    ``spent_epsilon`` counts committed charges, ``reserved_epsilon`` in-flight ones,
    ``remaining_epsilon`` what neither uses: under zCDP it is the largest ε a single next
    query may ask for, and spent + remaining can exceed granted (composition discount).
    ``delta_cap``/``delta_spent`` are the partition-selection δ; the total guarantee is
    (spent_epsilon, conversion_delta + delta_spent).
    """

    account_id: str
    accounting: Accounting
    granted_epsilon: float
    granted_delta: float
    spent_epsilon: float
    reserved_epsilon: float
    remaining_epsilon: float
    delta_cap: float
    delta_spent: float
    delta_reserved: float
    conversion_delta: float
    cap_units: int
    committed_units: int
    reserved_units: int
    delta_cap_units: int
    delta_committed_units: int
    delta_reserved_units: int

    @property
    def remaining_units(self) -> int:
        return self.cap_units - self.committed_units - self.reserved_units

    @property
    def delta_remaining_units(self) -> int:
        return self.delta_cap_units - self.delta_committed_units - self.delta_reserved_units

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RecoverReport:
    committed: tuple[str, ...]
    released: tuple[str, ...]
    skipped_alive: tuple[str, ...]

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}


class Ledger(StateStore):
    """Budget accounts and reservations in ``WS/state.sqlite``; safe across processes."""

    SCHEMA = SCHEMA

    # -- accounts ------------------------------------------------------------
    def open_account(self, account_id: str, *, accounting: Accounting, epsilon: float, delta: float) -> None:
        """Create an account for a grant or dataset cap. Idempotent for identical terms.

        Opening an existing account with different terms is refused: silently changing a
        budget would rewrite what an approver granted.
        """
        cap = capacity(accounting, epsilon, delta)
        with write_tx(self.conn) as c:
            row = c.execute("SELECT * FROM budget_accounts WHERE account_id = ?", (account_id,)).fetchone()
            if row is not None:
                same = (row["accounting"], row["epsilon"], row["delta"]) == (accounting, float(epsilon), float(delta))
                if not same:
                    raise PolicyError(
                        f"budget account {account_id!r} already exists with different terms",
                        "Budgets are immutable once granted; open a new grant for more budget.",
                    )
                return
            c.execute(
                "INSERT INTO budget_accounts (account_id, accounting, epsilon, delta, cap_privacy_units, "
                "cap_delta_units, conversion_delta, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account_id,
                    accounting,
                    float(epsilon),
                    float(delta),
                    cap.privacy_units,
                    cap.delta_units,
                    cap.conversion_delta,
                    clock.iso(),
                ),
            )

    def retarget(self, account_id: str, *, accounting: Accounting, epsilon: float, delta: float,
                 check_only: bool = False) -> dict | None:
        """Give a dataset cap account new terms (its policy changed); returns the old terms, or None.

        Grants stay immutable (:meth:`open_account`); a dataset's lifetime cap is the policy's
        and must follow it, or a lowered ``dataset_cap`` would go unenforced. What was spent
        stays spent, in the same units (ρ under zcdp does not depend on δ): a cap lowered
        below the spend leaves nothing to spend (the stored cap is then the committed spend,
        as the CHECK constraints require).

        Refused with :class:`PolicyError` (nothing changes): a query in flight on the account
        (its cost was checked against the old cap), and a change of accounting once anything
        was spent (ρ and ε units do not convert without loss). ``check_only`` runs the checks
        and changes nothing, so a caller can refuse before it changes anything else.
        """
        with write_tx(self.conn) as c:
            row = c.execute("SELECT * FROM budget_accounts WHERE account_id = ?", (account_id,)).fetchone()
            if row is None:
                return None
            old = {"accounting": row["accounting"], "epsilon": row["epsilon"], "delta": row["delta"]}
            if {"accounting": accounting, "epsilon": float(epsilon), "delta": float(delta)} == old:
                return None
            if row["reserved_units"] or row["delta_reserved_units"]:
                raise PolicyError(
                    f"budget account {account_id!r} has a query in flight; its cap cannot change now",
                    "Retry in a moment. If no query is running, a crashed one holds the budget: "
                    "any `pdbg.connect` on the workspace recovers it.",
                )
            if accounting != row["accounting"] and (row["committed_units"] or row["delta_committed_units"]):
                raise PolicyError(
                    f"budget account {account_id!r} has spent {row['accounting']} budget; "
                    f"its accounting cannot change to {accounting}",
                    "Keep the dataset's accounting, or register the data as a new dataset under the new policy.",
                )
            if check_only:
                return old
            cap = capacity(accounting, epsilon, delta)
            c.execute(
                "UPDATE budget_accounts SET accounting = ?, epsilon = ?, delta = ?, cap_privacy_units = ?, "
                "cap_delta_units = ?, conversion_delta = ? WHERE account_id = ?",
                (accounting, float(epsilon), float(delta), max(cap.privacy_units, row["committed_units"]),
                 max(cap.delta_units, row["delta_committed_units"]), cap.conversion_delta, account_id),
            )
            return old

    def has_account(self, account_id: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM budget_accounts WHERE account_id = ?", (account_id,)).fetchone()
        return row is not None

    # -- reserve / commit / release -------------------------------------------
    def reserve(self, account_ids: Sequence[str], cost: Cost, *, holder: str) -> Reservation:
        """Hold ``cost`` in every account, or in none (``BudgetExceeded``, nothing charged).

        One ``BEGIN IMMEDIATE`` transaction reads what each account has used and inserts
        the reservation, so concurrent kernels serialize here and can never overspend.
        """
        ids = tuple(dict.fromkeys(account_ids))
        if not ids:
            raise PdbgError("a reservation needs at least one budget account", "This is a pdbg bug; please report it.")
        res = Reservation(id="r-" + uuid.uuid4().hex, account_ids=ids, cost=cost, holder=holder)
        now = clock.iso()
        host, pid, pid_start = _this_process()
        with write_tx(self.conn) as c:
            usage = {r["account_id"]: r for r in self._usage(c, ids)}
            for account_id in ids:
                row = usage.get(account_id)
                if row is None:
                    raise PdbgError(
                        f"no budget account {account_id!r}",
                        "The grant or dataset cap has no budget yet; ask an approver to (re)approve access.",
                    )
                if row["accounting"] != cost.accounting:
                    raise PolicyError(
                        f"budget account {account_id!r} uses {row['accounting']} accounting, "
                        f"the query was costed for {cost.accounting}",
                        "Cost queries with the dataset policy's accounting.",
                    )
                self._check_fits(row, cost)
            c.executemany(
                "INSERT INTO budget_reservations VALUES (?, ?, ?, ?, 'reserved', ?, ?, ?, ?, ?, NULL)",
                [
                    (res.id, a, cost.privacy_units, cost.delta_units, holder, host, pid, pid_start, now)
                    for a in ids
                ],
            )
            try:
                c.executemany(
                    "UPDATE budget_accounts SET reserved_units = reserved_units + ?, "
                    "delta_reserved_units = delta_reserved_units + ? WHERE account_id = ?",
                    [(cost.privacy_units, cost.delta_units, a) for a in ids],
                )
            except sqlite3.IntegrityError:   # the CHECK constraints: defence in depth behind _check_fits
                over = True
            else:
                over = False
            if over:   # raised outside the except block: write_tx rolls back, nothing was reserved
                raise BudgetExceeded(
                    "this query would spend more than a budget account has left; nothing was charged",
                    "Ask for a smaller epsilon, reuse a cached answer, or request more budget.",
                )
        return res

    def commit(self, res: Reservation | str) -> None:
        """Make the charge permanent. Idempotent; refused after a release."""
        self._finish(_rid(res), "committed")

    def release(self, res: Reservation | str) -> str:
        """Give the held budget back. Idempotent; returns the final state.

        Releasing a committed reservation changes nothing and returns ``"committed"``: a
        charge whose answer may have been shown must stand, and this lets callers release
        in a ``finally`` block without tracking whether they committed.
        """
        return self._finish(_rid(res), "released")

    def state_of(self, res: Reservation | str) -> str | None:
        row = self.conn.execute(
            "SELECT state FROM budget_reservations WHERE id = ? LIMIT 1", (_rid(res),)
        ).fetchone()
        return row["state"] if row else None

    def _finish(self, rid: str, target: str) -> str:
        with write_tx(self.conn) as c:
            row = c.execute("SELECT state FROM budget_reservations WHERE id = ? LIMIT 1", (rid,)).fetchone()
            if row is None:
                raise PdbgError(f"unknown budget reservation {rid!r}", "This is a pdbg bug; please report it.")
            state = row["state"]
            if state == target:
                return state
            if state == "committed":  # release after commit: the charge stands
                return state
            if state == "released":  # commit after release: the budget may be re-used already
                raise PdbgError(
                    f"budget reservation {rid!r} was already released and cannot be committed",
                    "Nothing may be shown for this query; run it again to reserve fresh budget.",
                )
            rows = c.execute(
                "SELECT account_id, privacy_units, delta_units FROM budget_reservations WHERE id = ?", (rid,)
            ).fetchall()
            move = (
                "committed_units = committed_units + :p, delta_committed_units = delta_committed_units + :d, "
                if target == "committed"
                else ""
            )
            c.executemany(
                f"UPDATE budget_accounts SET {move}reserved_units = reserved_units - :p, "
                "delta_reserved_units = delta_reserved_units - :d WHERE account_id = :a",
                [{"p": r["privacy_units"], "d": r["delta_units"], "a": r["account_id"]} for r in rows],
            )
            c.execute(
                "UPDATE budget_reservations SET state = ?, finished = ? WHERE id = ? AND state = 'reserved'",
                (target, clock.iso(), rid),
            )
            return target

    # -- reading -------------------------------------------------------------
    def balance(self, account_id: str) -> Balance:
        rows = self._usage(self.conn, (account_id,))
        if not rows:
            raise PdbgError(f"no budget account {account_id!r}", "Check the grant id with `pdbg budget WS`.")
        r = rows[0]
        acc, conv = r["accounting"], r["conversion_delta"]
        cap, com, resv = r["cap_privacy_units"], r["committed_units"], r["reserved_units"]
        return Balance(
            account_id=account_id,
            accounting=acc,
            granted_epsilon=r["epsilon"],
            granted_delta=r["delta"],
            spent_epsilon=units_to_epsilon(acc, com, conv),
            reserved_epsilon=units_to_epsilon(acc, resv, conv),
            remaining_epsilon=units_to_epsilon(acc, max(cap - com - resv, 0), conv),
            delta_cap=from_units(r["cap_delta_units"]),
            delta_spent=from_units(r["delta_committed_units"]),
            delta_reserved=from_units(r["delta_reserved_units"]),
            conversion_delta=conv,
            cap_units=cap,
            committed_units=com,
            reserved_units=resv,
            delta_cap_units=r["cap_delta_units"],
            delta_committed_units=r["delta_committed_units"],
            delta_reserved_units=r["delta_reserved_units"],
        )

    def accounts(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT account_id FROM budget_accounts ORDER BY account_id")]

    def committed_units(self) -> dict[str, tuple[int, int]]:
        """Per account: (privacy units, delta units) of committed charges (for reconcile)."""
        rows = self.conn.execute(
            "SELECT a.account_id, COALESCE(SUM(r.privacy_units), 0) AS p, COALESCE(SUM(r.delta_units), 0) AS d "
            "FROM budget_accounts a LEFT JOIN budget_reservations r "
            "ON r.account_id = a.account_id AND r.state = 'committed' GROUP BY a.account_id"
        )
        return {r["account_id"]: (r["p"], r["d"]) for r in rows}

    def reservations(self, state: str | None = None) -> list[dict]:
        """One dict per reservation: id, state, accounts, units, holder, pid (for reconcile and ops)."""
        q = "SELECT * FROM budget_reservations" + (" WHERE state = ?" if state else "") + " ORDER BY created, id"
        out: dict[str, dict] = {}
        for r in self.conn.execute(q, (state,) if state else ()):
            d = out.setdefault(
                r["id"],
                {
                    "id": r["id"],
                    "state": r["state"],
                    "accounts": [],
                    "privacy_units": r["privacy_units"],
                    "delta_units": r["delta_units"],
                    "holder": r["holder"],
                    "host": r["host"],
                    "pid": r["pid"],
                    "pid_start": r["pid_start"],
                    "created": r["created"],
                },
            )
            d["accounts"].append(r["account_id"])
        return list(out.values())

    # -- crash recovery ------------------------------------------------------
    def recover(self, audit_records: Iterable[dict] | None = None, *, actor: str = "pdbg") -> RecoverReport:
        """Settle reservations whose holder process died.

        A dead holder's reservation is committed when the audit log has its ``query`` (or
        ``query.failed``) record with ``charged: true`` (the answer may have been shown, or a
        failure after data access may have been seen) and released
        otherwise. Holders on other hosts are left alone: their liveness is unknowable here.
        Cheap when nothing is stranded (the audit log is read only then), so sessions can
        call it on start.
        When anything changes, one ``budget.recover`` audit record says what (appended
        before the change, so a failing audit log changes nothing).
        """
        dead, alive = [], []
        for r in self.reservations("reserved"):
            (alive if _holder_alive(r["host"], r["pid"], r["pid_start"]) else dead).append(r["id"])
        if not dead:  # the common case: no audit log read, cheap enough for every session start
            return RecoverReport((), (), tuple(alive))
        if audit_records is None:
            from pdbg.ledger.audit import AuditLog

            audit_records = AuditLog(self.ws).records()
        charged = {
            r.get("reservation")
            for r in audit_records
            if r.get("action") in CHARGING_ACTIONS and r.get("charged") is True and r.get("reservation")
        }
        to_commit = [rid for rid in dead if rid in charged]
        to_release = [rid for rid in dead if rid not in charged]
        from pdbg.ledger.audit import AuditLog

        AuditLog(self.ws).append(actor, "budget.recover", committed=to_commit, released=to_release)
        for rid in to_commit:
            self._finish(rid, "committed")
        for rid in to_release:
            self._finish(rid, "released")
        return RecoverReport(tuple(to_commit), tuple(to_release), tuple(alive))

    # -- internals -----------------------------------------------------------
    @staticmethod
    def _usage(c: sqlite3.Connection, ids: Sequence[str]) -> list[sqlite3.Row]:
        marks = ",".join("?" * len(ids))
        return c.execute(f"SELECT * FROM budget_accounts WHERE account_id IN ({marks})", tuple(ids)).fetchall()

    def row_totals(self) -> dict[str, dict[str, int]]:
        """Per account, the totals recomputed from reservation rows (reconcile compares them)."""
        rows = self.conn.execute(
            """
            SELECT a.account_id,
              a.committed_units AS t_c, a.reserved_units AS t_r,
              a.delta_committed_units AS t_dc, a.delta_reserved_units AS t_dr,
              COALESCE(SUM(CASE WHEN r.state = 'committed' THEN r.privacy_units END), 0) AS c,
              COALESCE(SUM(CASE WHEN r.state = 'reserved'  THEN r.privacy_units END), 0) AS r,
              COALESCE(SUM(CASE WHEN r.state = 'committed' THEN r.delta_units END), 0) AS dc,
              COALESCE(SUM(CASE WHEN r.state = 'reserved'  THEN r.delta_units END), 0) AS dr
            FROM budget_accounts a LEFT JOIN budget_reservations r ON r.account_id = a.account_id
            GROUP BY a.account_id
            """
        )
        return {row["account_id"]: dict(row) for row in rows}

    @staticmethod
    def _check_fits(row: sqlite3.Row, cost: Cost) -> None:
        acc, conv = row["accounting"], row["conversion_delta"]
        used = row["committed_units"] + row["reserved_units"]
        left = row["cap_privacy_units"] - used
        if cost.privacy_units > left:
            requested = _display(acc, cost, conv)
            remaining = units_to_epsilon(acc, max(left, 0), conv)
            raise BudgetExceeded(
                f"budget {row['account_id']!r} has ε={remaining:.6g} left; this query needs ε={requested:.6g} "
                f"(difference ε={requested - remaining:.6g}); nothing was charged",
                requested=requested,
                remaining=remaining,
            )
        dleft = row["cap_delta_units"] - row["delta_committed_units"] - row["delta_reserved_units"]
        if cost.delta_units > dleft:
            requested, remaining = from_units(cost.delta_units), from_units(max(dleft, 0))
            raise BudgetExceeded(
                f"budget {row['account_id']!r} has δ={remaining:.6g} left for partition selection; this query "
                f"needs δ={requested:.6g} (difference δ={requested - remaining:.6g}); nothing was charged",
                "Declare the group key's domain as public in the policy, or request more budget.",
                requested=requested,
                remaining=remaining,
            )


def _display(accounting: str, cost: Cost, conversion_delta: float) -> float:
    """The requested ε as people see it: the query's own ε at the account's conversion δ."""
    return units_to_epsilon(accounting, cost.privacy_units, conversion_delta)


def _rid(res: Reservation | str) -> str:
    return res.id if isinstance(res, Reservation) else str(res)


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), to tell a dead holder from a re-used pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # field 22, counted after the ")" that closes the command name (which may contain spaces)
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def _this_process() -> tuple[str, int, str | None]:
    pid = os.getpid()
    return socket.gethostname(), pid, _proc_start(pid)


def _holder_alive(host: str, pid: int, pid_start: str | None) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell from here; never settle another host's reservation
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if pid_start is not None:
        now_start = _proc_start(pid)
        if now_start is not None and now_start != pid_start:
            return False  # the pid was re-used by a different process
        if now_start is None:
            return False
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    """A killed child that its parent has not reaped yet still answers kill(0): treat it as dead."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True
    state = data[data.rfind(b")") + 2 :].split()[:1]
    return state != [b"Z"]


__all__ = ["Balance", "Ledger", "RecoverReport", "Reservation", "SCHEMA"]
