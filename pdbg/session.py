"""The one orchestrator of a release (DESIGN.md section 4).

authenticate → authorize → parse & check → plan → cache lookup → reserve budget →
execute bounded SQL → noise / partition selection → audit append → commit → return.

Order matters for the invariants: the budget is reserved before any data is read, the
audit record is appended before the charge is committed (a crash in between is settled
by ``Ledger.recover`` from that record), and an answer is cached only after its charge
is committed. A refusal at any step releases the reservation and is itself audited.
"""

from __future__ import annotations

import math
import threading

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CostView:
    """What a release charged, for display: ε at the grant's δ, δ, and ρ (zCDP) when used."""

    epsilon: float
    delta: float
    rho: float | None = None


@dataclass(frozen=True)
class BudgetView:
    """Granted / spent / remaining for one grant (and the dataset-wide cap)."""

    grant_id: str
    dataset: str
    case: str
    accounting: str
    granted_epsilon: float
    spent_epsilon: float
    remaining_epsilon: float
    delta: float
    expires: str
    dataset_cap_remaining_epsilon: float


@dataclass(frozen=True)
class Preview:
    """Cost and expected accuracy of a query; computing it spends nothing and touches no data."""

    sql: str
    epsilon: float
    cost: CostView
    accuracy: dict[str, float]          # output column -> 95% CI half-width (noise only)
    notes: tuple[str, ...] = ()


@dataclass
class Result:
    """A released answer: `.df` has the values plus `<col>_ci_low` / `<col>_ci_high`."""

    sql: str
    df: Any                              # pandas.DataFrame
    cost: CostView
    cached: bool
    release_id: str
    epsilon: float
    notes: tuple[str, ...] = ()
    budget: BudgetView | None = None
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------
# the pipeline


def _digest(*parts: str) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()


class Session:
    """An investigator's embedded session on one workspace, for one case.

    Every release goes through :meth:`sql`, which is the only code path that turns
    private data into an answer. Errors are typed (:mod:`pdbg.errors`) and
    audited; a refused query charges nothing and the session keeps working.
    """

    def __init__(self, workspace, *, user: str, case: str, token: str | None = None,
                 query_timeout_s: float | None = None) -> None:
        from pdbg.governance import principals
        from pdbg.policy.workspace import Workspace

        self.ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        self.user = user
        self.case = case
        # The broker sets its own engine time limit (`pdbg serve --query-timeout`); None keeps the engine's default.
        self.query_timeout_s = query_timeout_s
        # Embedded mode: the token is checked when given; the broker always requires it.
        if token is not None:
            principals.authenticate(self.ws, user, token)
        principals.require_role(self.ws, user, "investigator")
        # Settle reservations left by crashed kernels (committed if their audit record exists),
        # and state changes (ingest, purge, grants…) a dead process left between intent and
        # completion: one listdir when there are none (pdbg.governance.recovery).
        from pdbg.governance.recovery import recover_pending
        from pdbg.ledger.budget import Ledger

        recover_pending(self.ws, user)
        with Ledger(self.ws) as ledger:
            ledger.recover(actor=user)

    def __repr__(self) -> str:
        return f"Session(workspace={str(self.ws.root)!r}, user={self.user!r}, case={self.case!r})"

    # -- public API -------------------------------------------------------
    def sql(self, query: str, *, epsilon: float | None = None, accuracy: float | None = None,
            params: dict | None = None) -> Result:
        """Release a DP answer to ``query``, charging ``epsilon`` (or what ``accuracy`` needs)."""
        from pdbg.errors import PdbgError

        try:
            return self._release(query, epsilon=epsilon, accuracy=accuracy, params=params)
        except PdbgError as err:
            from pdbg.errors import AuditError, QueryFailed

            if not isinstance(err, (AuditError, QueryFailed)):   # a failure after data access is audited already
                self._audit_refusal(query, err)
            raise

    def preview(self, query: str, *, epsilon: float | None = None, accuracy: float | None = None,
                params: dict | None = None) -> Preview:
        """Cost and expected accuracy; spends nothing, touches no data, writes no audit record."""
        from pdbg.dp import release as dp_release

        policy, plan, _ = self._plan(query, params)
        eps = self._resolve_epsilon(plan, policy, epsilon, accuracy)
        cost = dp_release.cost_of(plan, eps, policy)
        acc = dp_release.preview(plan, eps, policy)
        return Preview(sql=query, epsilon=eps, cost=_cost_view(cost, policy), accuracy=dict(acc), notes=plan.notes)

    def budget(self, dataset: str | None = None) -> BudgetView:
        """Granted / spent / remaining of this user's grant for this case (and the dataset cap)."""
        from pdbg.governance import access
        from pdbg.ledger.budget import Ledger

        dataset = dataset or self._only_dataset()
        grant = access.active_grant(self.ws, self.user, self.case, dataset)
        with Ledger(self.ws) as ledger:
            return _budget_view(ledger, grant)

    def history(self) -> list[dict]:
        """This case's release records from the audit log (text, ε, cached), oldest first.

        What shows is decided by ``pdbg.governance.case_access``: with an active grant every
        release of the case on its dataset; with only an expired (unrevoked) grant the releases
        made while it was active, so one's own postmortem stays readable; after revocation nothing.
        """
        from pdbg.governance.case_access import case_access
        from pdbg.ledger.audit import AuditLog

        view = case_access(self.ws, self.user, self.case)
        out = []
        for r in AuditLog(self.ws).records(case=self.case):
            if r.get("action") in _HISTORY_ACTIONS and view.allows(r.get("ts"), r.get("dataset")):
                out.append({k: r.get(k) for k in ("seq", "ts", "actor", "action", "sql", "params", "epsilon",
                                                   "cached", "charged", "release_id", "reason")})
        return out

    # -- pipeline steps ---------------------------------------------------
    def _engine(self):
        from pdbg.engine.duckdb import DuckDBEngine

        return DuckDBEngine(self.ws) if self.query_timeout_s is None else DuckDBEngine(self.ws, self.query_timeout_s)

    def _registry(self):
        """Registered datasets, read through the locked read-only connection (never read-write:
        several kernels, the broker and an admin's ingest share the file)."""
        from pdbg.ingest import datasets

        with self._engine().connect() as con:
            return datasets.registered(con)

    def _only_dataset(self) -> str:
        names = [d.name for d in self._registry()]
        if len(names) != 1:
            from pdbg.errors import PolicyError

            raise PolicyError("several datasets are registered; name one", "Pass dataset=… explicitly.")
        return names[0]

    def _plan(self, query: str, params: dict | None, con=None):
        """(policy, plan, data_version) for a query; reads the registry once, read-only."""
        from pdbg.errors import QueryRejected
        from pdbg.ingest import datasets
        from pdbg.sql import plan_query
        from pdbg.sql.tables import referenced_tables

        tables = _tables_of(query, referenced_tables)
        if con is None:
            with self._engine().connect() as own:
                return self._plan(query, params, own)
        infos = datasets.registered(con)
        matches = [d for d in infos if d.table_name.lower() in tables]
        if len(matches) != 1:
            known = ", ".join(sorted(d.table_name for d in infos)) or "none registered"
            raise QueryRejected(
                "the query must read exactly one private dataset table" if matches else
                "the query reads no registered dataset table",
                f"Query one of: {known}.",
                rule="unknown-table" if not matches else "private-join",
            )
        info = matches[0]
        policy = datasets.get_policy(self.ws, info.name, con=con)
        unit_column = self._unit_column(con, info)
        return policy, _cached_plan(query, policy, params, plan_query, unit_column), info.data_version

    def _unit_column(self, con, info) -> str | None:
        """The table's stored integer unit id, if it has one (tables from before it do not)."""
        from pdbg.ingest import datasets

        key = (str(self.ws.data_path), info.table_name, info.data_version)
        hit = _UNIT_COLUMNS.get(key)
        if hit is None:
            hit = _remember(_UNIT_COLUMNS, key, (datasets.UNIT_COLUMN if datasets.has_unit_column(con, info.table_name)
                                                 else ""))
        return hit or None

    def _resolve_epsilon(self, plan, policy, epsilon: float | None, accuracy: float | None) -> float:
        from pdbg.dp import release as dp_release
        from pdbg.errors import QueryRejected

        limits = policy.epsilon
        if epsilon is not None and accuracy is not None:
            raise QueryRejected("give either epsilon or accuracy, not both", "Drop one of them.", rule="epsilon-or-accuracy")
        if accuracy is not None:
            if not (isinstance(accuracy, (int, float)) and math.isfinite(accuracy) and accuracy > 0):
                raise QueryRejected("accuracy must be a positive CI half-width", "E.g. accuracy=20.", rule="accuracy")
            try:
                needed = [dp_release.epsilon_for_accuracy(plan, o.name, accuracy, policy)
                          for o in plan.outputs if o.kind in ("count", "count_units", "sum") and not o.hidden]
            except ValueError as exc:   # e.g. a half-width below one integer unit
                raise QueryRejected(f"accuracy ±{accuracy:g} cannot be met: {exc}",
                                    "Ask for a looser accuracy.", rule="accuracy") from None
            if not needed:
                raise QueryRejected(
                    "accuracy= applies to counts and sums; this query has none",
                    "Pass epsilon= instead.", rule="accuracy")
            epsilon = max(needed)
            if epsilon > limits.max_per_query:
                raise QueryRejected(
                    f"±{accuracy:g} at 95% would need ε={epsilon:.3g}, above the policy's per-query maximum {limits.max_per_query:g}",
                    "Ask for a looser accuracy, narrow the query, or accept the default ε.",
                    rule="epsilon-above-policy",
                )
            return epsilon
        if epsilon is None:
            return limits.default_per_query
        if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
            raise QueryRejected("epsilon must be a positive number", "E.g. epsilon=0.1.", rule="epsilon")
        if epsilon > limits.max_per_query:
            raise QueryRejected(
                f"ε={epsilon:g} is above the policy's per-query maximum {limits.max_per_query:g}",
                "Use a smaller epsilon; the policy is set by the data owner.",
                rule="epsilon-above-policy",
            )
        return float(epsilon)

    def _release(self, query: str, *, epsilon, accuracy, params) -> Result:
        from pdbg.dp import release as dp_release
        from pdbg.governance import access
        from pdbg.ledger.audit import AuditLog
        from pdbg.ledger.budget import Ledger
        from pdbg.ledger.audit.group import append_grouped
        from pdbg.ledger.cache import ReleaseCache, cache_key, payload_digest

        engine = self._engine()
        # One read-only connection for registry, execution and post-processing (each open costs ms).
        with engine.connect() as con:
            policy, plan, version = self._plan(query, params, con)
            grant = access.active_grant(self.ws, self.user, self.case, policy.dataset)   # authorize
            eps = self._resolve_epsilon(plan, policy, epsilon, accuracy)
            cost = dp_release.cost_of(plan, eps, policy)
            key = cache_key(plan.normalized, params or {}, policy.digest, cost, version, self.case, policy.dataset)
            audit = AuditLog(self.ws)
            base = dict(case=self.case, dataset=policy.dataset, grant=grant.id, sql=query, params=_jsonable(params),
                        plan_digest=_digest(plan.normalized, policy.digest), data_version=version, epsilon=eps)

            if plan.post_sql:   # checked now, before any row is read: a mismatch is a free refusal
                from pdbg.sql.verify import verify_executed

                verify_executed(plan.post_sql, policy, kind="post")

            with Ledger(self.ws) as ledger, ReleaseCache(self.ws) as cache:
                # Cache hit: no write lock (a plain read), the entry checked against the digest its
                # record bound, and the hit's own record group-committed with concurrent hits:
                # durable before the answer is shown, one fsync round per batch.
                hit = cache.get(key, count_hit=False)
                if hit is not None:
                    digest = self._check_release(hit)
                    append_grouped(self.ws, self.user, "query", **base, cached=True, charged=False,
                                   release_id=hit["release_id"], result_digest=digest)
                    return _result_from_entry(hit, query, eps, cached=True, cost=_zero_cost(cost),
                                              budget=_budget_view(ledger, grant))

                reservation = ledger.reserve([grant.account_id, grant.dataset_account_id], cost,
                                             holder=f"{self.user}/{self.case}")
                touched = threading.Event()   # set by the engine right before it reads private rows
                failure = before_data = None
                try:
                    payload, shown = self._compute(plan, policy, eps, engine, version, con, touched)
                    payload |= {"sql": query, "params": base["params"]}
                except BaseException as exc:  # noqa: BLE001 - every outcome is settled below
                    if touched.is_set():
                        failure = _failure_of(exc)   # type-based only: nothing from the exception is kept
                    else:
                        before_data = exc
                if before_data is not None:   # decided before any private row was read: a free refusal
                    ledger.release(reservation)
                    raise before_data
                if failure is not None:
                    self._charge_failure(audit, ledger, reservation, base, cost, failure)
                try:
                    # Audit before commit: a crash in between leaves a reserved charge that recover()
                    # commits because its record exists; an AuditError releases it (fail closed).
                    # The record binds the answer: the digest of the exact payload the cache stores.
                    audit.append(self.user, "query", **base, cached=False, release_id=payload["release_id"],
                                 result_digest=payload_digest(payload), **reservation.audit_fields(),
                                 cost=_cost_doc(cost))
                except BaseException:
                    ledger.release(reservation)
                    del payload, shown
                    raise
                ledger.commit(reservation)
                # First writer wins: two kernels racing on one key both show the stored answer.
                entry, _ = cache.put(key, case=self.case, dataset=policy.dataset, data_version=version,
                                     payload=payload, cost=_cost_doc(cost))
                result = _result_from_entry(entry, query, eps, cached=False, cost=_cost_view(cost, policy),
                                            budget=_budget_view(ledger, grant),
                                            df=shown if entry["release_id"] == payload["release_id"] else None)
                return result

    def _charge_failure(self, audit, ledger, reservation, base: dict, cost, failure: "_Failure"):
        """A failure after data access is a release: audit it with its charge, commit, raise a clean error.

        Raised here, outside any ``except`` block, so the error has no context exception and
        its traceback holds only frames without data. If the audit log cannot be written the
        reservation is released and AuditError raised, exactly as for an answer (the outcome
        then does not depend on the data).
        """
        from pdbg.errors import QueryFailed

        try:
            audit.append(self.user, "query.failed", **base, cached=False, rule=failure.rule, reason=failure.message,
                         **reservation.audit_fields(), cost=_cost_doc(cost))
        except BaseException:
            ledger.release(reservation)
            raise
        ledger.commit(reservation)
        if failure.interrupt is not None:
            raise failure.interrupt()
        raise QueryFailed(failure.message, failure.hint, rule=failure.rule)

    def _compute(self, plan, policy, eps: float, engine, version: int, con=None, touched=None):
        """Execute the bounded plan, add noise, post-process; returns (cache payload, the DataFrame to show).

        The DataFrame is read back from the payload here, before anything is audited or committed:
        a table that cannot be shown (a key beyond int64, say) then fails as a charged
        ``QueryFailed`` instead of after its success record, and fresh and cached answers stay
        the same reading of the same text.
        """
        import secrets
        import uuid

        from pdbg.dp import release as dp_release
        from pdbg.engine.postprocess import apply_post_sql

        exact = engine.execute(plan, salt=secrets.token_hex(16), con=con, policy=policy, expect_version=version,
                               touched=touched)
        _check_exact_keys(plan, exact.groups)
        released = dp_release.release(plan, exact.groups, exact.quantile_bins, eps, policy)
        del exact
        df = apply_post_sql(released.df, plan.post_sql, policy)
        df = df[[c for c in df.columns if not str(c).startswith("__")]]
        table = _df_to_payload(df)
        return ({"release_id": uuid.uuid4().hex, "table": table, "epsilon": eps,
                 "notes": list(plan.notes) + list(getattr(released, "notes", ()))}, _df_from_payload(table))

    def replay(self, release_id: str) -> Result:
        """Show a release this case already made, from the cache, at zero cost.

        For postmortems that re-run a case after its grant expired: replaying reveals
        nothing new and spends nothing. Visibility is ``pdbg.governance.case_access``'s:
        a release made while one of the user's grants was active (or any, while one is);
        a revoked grant shows nothing; a release from another case is not found.
        """
        from pdbg.errors import AccessDenied, PdbgError
        from pdbg.governance.case_access import case_access
        from pdbg.ledger.audit import AuditLog
        from pdbg.ledger.cache import ReleaseCache

        case_access(self.ws, self.user, self.case)          # refuse before saying whether the release exists
        with ReleaseCache(self.ws) as cache:
            entry = next((e for e in cache.list_case(self.case) if e.get("release_id") == release_id), None)
        if entry is None:
            raise PdbgError(f"no release {release_id!r} in case {self.case!r}",
                            "List this case's releases with history().")
        if not case_access(self.ws, self.user, self.case, entry.dataset).allows(entry.created, entry.dataset):
            raise AccessDenied(f"release {release_id} was made outside {self.user!r}'s grants on case {self.case!r}",
                               "Ask an approver or auditor for this case's records, or request access again.")
        digest = self._check_release(entry)
        AuditLog(self.ws).append(self.user, "query.replay", case=self.case, dataset=entry.dataset,
                                 release_id=release_id, cached=True, charged=False, result_digest=digest)
        return _result_from_entry(entry, entry.get("sql", ""), entry.get("epsilon", 0.0), cached=True,
                                  cost=CostView(0.0, 0.0, None), budget=None)

    def _check_release(self, entry) -> str:
        """The entry's digest if it is the answer its ``query`` record bound; otherwise a
        high-severity ``release.mismatch`` record and ReleaseTampered (naming the release id only)."""
        from pdbg.errors import AuditError
        from pdbg.ledger.audit import AuditLog
        from pdbg.ledger.cache import ReleaseTampered, check_release

        try:
            return check_release(self.ws, entry)
        except ReleaseTampered as err:
            try:
                AuditLog(self.ws).append(self.user, "release.mismatch", severity="high", case=self.case,
                                         release_id=str(entry.get("release_id")), reason=err.message)
            except AuditError:
                pass   # refused either way
            raise

    def templates(self) -> dict:
        """The reviewed query library (``queries/`` plus the workspace's own), by name."""
        from pdbg.templates import load_library

        return load_library(workspace=self.ws.root)

    def _audit_refusal(self, query: str, err) -> None:
        from pdbg.ledger.audit import AuditLog

        AuditLog(self.ws).append(self.user, "query.refused", case=self.case, sql=query, charged=False,
                                 error=type(err).__name__, rule=getattr(err, "rule", None), reason=err.message)


# What an investigator's history shows: answers (fresh or cached), charged failures, refusals.
_HISTORY_ACTIONS = ("query", "query.failed", "query.refused")


@dataclass(frozen=True)
class _Failure:
    """What the investigator may learn of a failure after data access: a rule and a fixed message."""

    rule: str
    message: str
    hint: str
    interrupt: type | None = None    # KeyboardInterrupt / SystemExit: raised again (a fresh one) once charged


_CHARGED = "The charge stands: the query had read private rows."


def _failure_of(exc: BaseException) -> _Failure:
    """Classify by type only; never look at the message, which may quote a value."""
    from pdbg.engine.duckdb import QueryTimeout
    from pdbg.errors import EngineError, QueryFailed

    if isinstance(exc, QueryTimeout):
        return _Failure("timeout", "the query ran longer than its time limit and was stopped",
                        "Narrow the time window or the filters. " + _CHARGED)
    if isinstance(exc, QueryFailed):
        return _Failure(exc.rule, exc.message, exc.hint)     # messages of QueryFailed are fixed texts
    if isinstance(exc, EngineError):
        return _Failure("engine-error", "the engine failed while reading the data",
                        "Simplify the query or retry. " + _CHARGED)
    if not isinstance(exc, Exception):
        return _Failure("interrupted", "the query was interrupted while reading the data", _CHARGED,
                        interrupt=type(exc) if isinstance(exc, (KeyboardInterrupt, SystemExit)) else KeyboardInterrupt)
    return _Failure("internal", "the release failed after reading the data (internal error)",
                    "Report the query to the pdbg maintainers. " + _CHARGED)


def _scalar_key_values() -> tuple:
    import datetime
    import decimal

    return (str, int, float, bool, decimal.Decimal, datetime.date, datetime.datetime)


# the Python values of the key types the engine's binder check lets through (DATE arrives as
# datetime.date, DECIMAL as Decimal): nothing it admits may fail here, after the data was read
_SCALAR_KEY_VALUES = _scalar_key_values()


def _check_exact_keys(plan, groups) -> None:
    """Group keys must be plain scalars before any noise is drawn (DuckDB's binder was asked
    before execution; this is the same check on what came back)."""
    import pandas as pd

    from pdbg.errors import QueryFailed

    for k in plan.keys:
        if k.name not in groups.columns:
            continue
        col = groups[k.name]
        kind = col.dtype.kind
        ok = kind in "biufM" or isinstance(col.dtype, pd.StringDtype) or (
            kind == "O" and all(v is None or isinstance(v, _SCALAR_KEY_VALUES) for v in col.tolist()))
        if not ok:
            raise QueryFailed("a group key came back with a type that cannot be released",
                              "Group by a column, a CASE of literals or a time bucket. " + _CHARGED,
                              rule="key-type")


# Planning is a pure function of (SQL, parameters, policy): parsing and checking cost ~5 ms,
# so a notebook re-running a query (another ε, a new data version) reuses its plan. Plans are
# frozen dataclasses; refusals are not cached (they are re-checked, and audited, every time).
_PLANS: dict[tuple, object] = {}
_TABLES: dict[str, frozenset] = {}
_UNIT_COLUMNS: dict[tuple, str] = {}
_PLAN_CACHE_SIZE = 256
_CACHE_LOCK = threading.Lock()


def _params_key(params: dict | None) -> tuple | None:
    try:
        return tuple(sorted((str(k), type(v).__name__, repr(v)) for k, v in (params or {}).items()))
    except Exception:  # noqa: BLE001 - an odd parameter type: just don't cache
        return None


def _remember(cache: dict, key, value):
    with _CACHE_LOCK:   # the broker plans in many threads
        while len(cache) >= _PLAN_CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = value
    return value


def _tables_of(query: str, referenced_tables) -> frozenset:
    hit = _TABLES.get(query)
    return hit if hit is not None else _remember(_TABLES, query, frozenset(referenced_tables(query)))


def _cached_plan(query: str, policy, params: dict | None, plan_query, unit_column: str | None):
    pk = _params_key(params)
    if pk is None:
        return plan_query(query, policy, params=params, unit_column=unit_column)
    key = (query, pk, policy.digest, unit_column)
    hit = _PLANS.get(key)
    return hit if hit is not None else _remember(
        _PLANS, key, plan_query(query, policy, params=params, unit_column=unit_column))


def _cost_doc(cost) -> dict:
    return {"epsilon": cost.epsilon, "delta": cost.delta, "rho": cost.rho}


def _zero_cost(cost) -> CostView:
    return CostView(0.0, 0.0, None if cost.rho is None else 0.0)


def _result_from_entry(entry, sql: str, eps: float, *, cached: bool, cost: CostView, budget, df=None) -> Result:
    return Result(sql=sql, df=_df_from_payload(entry["table"]) if df is None else df, cost=cost, cached=cached,
                  release_id=entry["release_id"], epsilon=eps, notes=tuple(entry.get("notes", ())), budget=budget)


def _jsonable(params: dict | None) -> dict:
    return {str(k): (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in (params or {}).items()}


def _cost_view(cost, policy) -> CostView:
    return CostView(epsilon=float(cost.epsilon), delta=float(cost.delta),
                    rho=None if cost.rho is None else float(cost.rho))


def _budget_view(ledger, grant) -> BudgetView:
    g = ledger.balance(grant.account_id)
    d = ledger.balance(grant.dataset_account_id)
    return BudgetView(grant_id=grant.id, dataset=grant.dataset, case=grant.case, accounting=g.accounting,
                      granted_epsilon=g.granted_epsilon, spent_epsilon=g.spent_epsilon,
                      remaining_epsilon=g.remaining_epsilon, delta=grant.delta, expires=str(grant.expires),
                      dataset_cap_remaining_epsilon=d.remaining_epsilon)


def _df_to_payload(df) -> str:
    return df.to_json(orient="table", index=False, date_format="iso", date_unit="us")


_PAYLOAD_DTYPES = {"integer": "int64", "number": "float64", "boolean": "bool", "string": "str"}


def _df_from_payload(payload: str):
    """The stored release table as a DataFrame (``to_json(orient="table")`` read back).

    Fresh and cached answers both go through here, so they are identical. pandas'
    ``read_json`` takes ~4 ms on a six-row table (schema handling); the common column
    types are rebuilt directly, anything else falls back to ``read_json``. The result
    equals ``read_json(..., precise_float=True)`` (tests/session/test_payload.py).
    """
    import io
    import json

    import pandas as pd

    doc = json.loads(payload)
    fields = doc["schema"]["fields"]
    data = doc["data"]
    if len({str(f["name"]) for f in fields}) != len(fields):
        return pd.read_json(io.StringIO(payload), orient="table", precise_float=True)
    cols = {}
    for f in fields:
        name, kind, ext = f["name"], f.get("type"), f.get("extDtype")
        values = [row.get(name) for row in data]
        if kind == "datetime" and ext is None and "tz" not in f:
            cols[name] = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601").astype("datetime64[ns]")
            continue
        dtype = ext if ext in ("str", "Int64", "boolean", "Float64") else (None if ext else _PAYLOAD_DTYPES.get(kind))
        if dtype is None or (dtype in ("int64", "bool") and any(v is None for v in values)):
            return pd.read_json(io.StringIO(payload), orient="table", precise_float=True)
        if dtype == "float64":
            values = [float("nan") if v is None else v for v in values]
        cols[name] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(cols, columns=[f["name"] for f in fields])
