"""The dataset registry, stored inside data.duckdb as ``_pdbg_datasets``.

Why inside data.duckdb and not state.sqlite: the data version must change in the
*same* transaction as the data (an ingest or a retention purge), otherwise a crash
between the two could serve a cached release for data that changed. One DuckDB
transaction covers both.

Re-registration rule (``register``):

* same name, same policy (hash) → no-op, returns the existing entry;
* same name, different policy → :class:`PolicyError` unless ``replace=True``;
  with ``replace=True`` the new policy is accepted when the stored table keeps the
  same name and the same columns and types (a change of bounds, budgets, domains,
  detectors' parameters…), or when the table is still empty (then it is recreated).
  The data version is bumped, so cached releases under the old policy are not reused.
  A schema change on a non-empty table is refused: register a new dataset instead;
* a table name already used by another dataset is refused.

The policy is also written to ``WS/policies/<dataset>.yaml`` (canonical form) for
people to read; :func:`get_policy` verifies it still hashes to the registered digest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import yaml

from pdbg import clock
from pdbg.errors import IngestError, PolicyError
from pdbg.ingest import faults
from pdbg.ingest.readers import POOL, open_writer
from pdbg.policy.model import ColumnType, DatasetPolicy, Transform, load_policy
from pdbg.policy.workspace import Workspace, make_private, private_files

REGISTRY = "_pdbg_datasets"
WRITER_WAIT_S = 15.0   # how long an admin write waits for readers to let go of data.duckdb
_DDL = f"""
CREATE TABLE IF NOT EXISTS {REGISTRY} (
    name VARCHAR PRIMARY KEY,
    table_name VARCHAR NOT NULL,
    policy_json VARCHAR NOT NULL,
    policy_hash VARCHAR NOT NULL,
    data_version BIGINT NOT NULL,
    key_id VARCHAR NOT NULL,
    registered_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
)
"""

SQL_TYPES = {
    ColumnType.string: "VARCHAR",
    ColumnType.integer: "BIGINT",
    ColumnType.float: "DOUBLE",
    ColumnType.timestamp: "TIMESTAMP",
    ColumnType.boolean: "BOOLEAN",
}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    table_name: str
    policy_hash: str
    data_version: int
    key_id: str
    registered_at: str
    updated_at: str
    rows: int | None = None

    @property
    def table(self) -> str:
        return self.table_name

    def to_dict(self) -> dict:
        return asdict(self)


# -- connections ---------------------------------------------------------------------


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def open_admin(ws: Workspace, wait_s: float = WRITER_WAIT_S) -> duckdb.DuckDBPyConnection:
    """Read-write connection to data.duckdb for admin work (register, ingest, purge).

    Creates the file and the registry table when missing. Extensions are never
    installed or auto-loaded, so this works offline. Timestamps are handled in UTC.
    Readers (notebooks, the broker) let go of the file within a query or two once a
    writer waits (see :mod:`pdbg.ingest.readers`); after ``wait_s`` the writer gives up.
    """
    try:
        con = open_writer(ws.data_path, {"autoinstall_known_extensions": False, "autoload_known_extensions": False},
                          wait_s)
    except (duckdb.Error, OSError) as exc:
        # Busy, damaged, read-only and full need different fixes; DuckDB says IOException for all.
        kind = faults.kind_of(exc)
        if kind == "busy" or (kind == "unreadable" and isinstance(exc, duckdb.ConnectionException)):
            raise IngestError(
                f"data.duckdb stayed locked by another process for {wait_s:g} s",
                "Close notebooks or servers that are running long queries on this workspace, then retry.",
            ) from None
        raise faults.ingest_error(exc, "nothing was written") from None
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute(_DDL)
    return con


@contextmanager
def reader_connection(ws: Workspace) -> Iterator[duckdb.DuckDBPyConnection]:
    """Read-only, locked-down connection for registry reads outside admin work."""
    if not ws.data_path.exists():
        raise PolicyError("the workspace has no datasets yet", "Register one with `pdbg dataset add WS POLICY.yaml`.")
    try:
        cm = POOL.cursor(ws.data_path)
        con = cm.__enter__()
    except duckdb.IOException as exc:
        kind = faults.kind_of(exc)
        if kind == "busy":
            raise PolicyError("data.duckdb is busy (an ingest or purge is writing it)", "Retry in a moment.") from None
        raise PolicyError(f"cannot read the dataset registry: data.duckdb {faults.WHAT[kind]}",
                          faults.HINTS[kind]) from None
    except duckdb.Error as exc:   # e.g. this process holds the file open with other settings
        raise PolicyError(f"cannot read the dataset registry ({type(exc).__name__})",
                          "Close any DuckDB connection this process opened on the workspace yourself.") from None
    try:
        yield con
    finally:
        cm.__exit__(None, None, None)


@contextmanager
def admin_connection(ws: Workspace) -> Iterator[duckdb.DuckDBPyConnection]:
    # Files DuckDB creates meanwhile (data.duckdb itself, its .wal) and the policy files written
    # under it are 0600 whatever the umask or the mode of the workspace root.
    with private_files():
        con = open_admin(ws)
        try:
            yield con
        finally:
            con.close()
            make_private(ws)


@contextmanager
def _ws_or_con(ws_or_con: Workspace | duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    if isinstance(ws_or_con, Workspace):
        with reader_connection(ws_or_con) as con:
            yield con
    else:
        yield ws_or_con


# -- schema of the private table -----------------------------------------------------


def output_type(policy: DatasetPolicy, column: str) -> str:
    """DuckDB type of a kept column as stored: tokens are VARCHAR, generalized per kind."""
    col = policy.columns[column]
    if col.transform in (Transform.tokenize, Transform.redact):
        return "VARCHAR"
    if col.transform == Transform.generalize:
        g = col.generalize
        if g.kind in ("ip_prefix", "truncate", "user_agent"):
            return "VARCHAR"
        if g.kind == "timestamp_bucket":
            return "TIMESTAMP"
        if g.kind == "number_bucket":
            return "BIGINT" if col.type == ColumnType.integer and float(g.width).is_integer() else "DOUBLE"
    return SQL_TYPES[col.type]


# A 64-bit integer per privacy unit, stored next to the (token) column at ingest. Every DP
# query groups by the unit first (contribution bounding); grouping 10M rows by a 35-character
# token took 2-4x longer than by an integer. Derived deterministically from the stored unit
# value - the token's own leading 64 HMAC bits, or the leading 64 bits of SHA-256 for units
# kept as they are - so it is stable across ingests, processes and DuckDB versions (DuckDB's
# hash() is not promised to be). Two units that collide are bounded as one: each person still
# contributes at most what one unit may, but the pair shares one unit's protection (2ε for
# the two together). The chance is ~n²/2^65 (3e-8 for a million users).
# Not a policy column: investigator SQL cannot name it (the checker refuses unknown columns).
UNIT_COLUMN = "_pdbg_unit"


def unit_id_sql(policy: DatasetPolicy, expr: str) -> str:
    """SQL for the integer unit id of the stored unit value ``expr``."""
    from pdbg.ingest.tokenize import TOKEN_PREFIX

    if policy.columns[policy.privacy_unit].transform == Transform.tokenize:
        return f"CAST(('0x' || substr({expr}, {len(TOKEN_PREFIX) + 1}, 16)) AS UBIGINT)"
    return f"CAST(('0x' || left(sha256(CAST({expr} AS VARCHAR)), 16)) AS UBIGINT)"


def table_schema(policy: DatasetPolicy) -> list[tuple[str, str]]:
    return [(n, output_type(policy, n)) for n in policy.kept_columns] + [(UNIT_COLUMN, "UBIGINT")]


def has_unit_column(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``table`` stores :data:`UNIT_COLUMN` (tables created before it was added do not)."""
    return (UNIT_COLUMN, "UBIGINT") in _current_schema(con, table)


def _create_table_sql(policy: DatasetPolicy) -> str:
    cols = ", ".join(f"{quote_ident(n)} {t}" for n, t in table_schema(policy))
    return f"CREATE TABLE {quote_ident(policy.table)} ({cols})"


def _validate_for_duckdb(con: duckdb.DuckDBPyConnection, policy: DatasetPolicy) -> None:
    """Checks the policy model cannot do alone (they need DuckDB's parser)."""
    for name, col in policy.columns.items():
        g = col.generalize
        if g is not None and g.kind == "timestamp_bucket":
            try:
                ok = con.execute("SELECT CAST(? AS INTERVAL) > INTERVAL 0 SECOND", [g.interval]).fetchone()[0]
            except duckdb.Error:
                ok = False
            if not ok:
                raise PolicyError(
                    f"columns.{name}.generalize.interval is not a positive interval",
                    "Use a DuckDB interval such as '1 minute', '5 minutes' or '1 hour'.",
                )


# -- registry ------------------------------------------------------------------------


def _row_to_info(row) -> DatasetInfo:
    name, table, phash, version, key_id, reg, upd = row
    return DatasetInfo(name, table, phash, int(version), key_id, _iso(reg), _iso(upd))


def _iso(ts) -> str:
    """Registry timestamps are naive UTC (DuckDB TIMESTAMP); render them like clock.iso()."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_INFO_COLS = "name, table_name, policy_hash, data_version, key_id, registered_at, updated_at"


def _lookup(con: duckdb.DuckDBPyConnection, name: str) -> DatasetInfo | None:
    row = con.execute(f"SELECT {_INFO_COLS} FROM {REGISTRY} WHERE name = ?", [name]).fetchone()
    return _row_to_info(row) if row else None


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    q = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?"
    return con.execute(q, [table]).fetchone()[0] > 0


def _current_schema(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    q = (
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position"
    )
    return [(n, t) for n, t in con.execute(q, [table]).fetchall()]


def policy_path(ws: Workspace, name: str) -> Path:
    return ws.policies_dir / f"{name}.yaml"


def _canonical_yaml(policy: DatasetPolicy) -> str:
    return yaml.safe_dump(policy.model_dump(mode="json", by_alias=True), sort_keys=True, allow_unicode=True)


def register(ws: Workspace, policy: DatasetPolicy, *, replace: bool = False) -> tuple[DatasetInfo, str]:
    """Register ``policy``; returns (info, outcome) with outcome ``created|unchanged|replaced``.

    See the module docstring for the re-registration rule.
    """
    with admin_connection(ws) as con:
        _validate_for_duckdb(con, policy)
        existing = _lookup(con, policy.dataset)
        if existing is not None and existing.policy_hash == policy.digest:
            return existing, "unchanged"
        if existing is not None and not replace:
            raise PolicyError(
                f"dataset {policy.dataset} is already registered with a different policy",
                "Pass --replace to change the policy of an existing dataset "
                "(columns and types must stay the same unless its table is empty).",
            )
        other = con.execute(
            f"SELECT name FROM {REGISTRY} WHERE table_name = ? AND name <> ?", [policy.table, policy.dataset]
        ).fetchone()
        if other:
            raise PolicyError(
                f"table {policy.table} already belongs to dataset {other[0]}",
                "Choose another `table:` name in the policy.",
            )
        now = clock.now().replace(tzinfo=None)
        ppath = policy_path(ws, policy.dataset)
        tmp = ppath.with_suffix(".yaml.tmp")
        try:
            ws.policies_dir.mkdir(parents=True, exist_ok=True)
            tmp.write_text(_canonical_yaml(policy))
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise faults.ingest_error(exc, f"dataset {policy.dataset} was not registered: "
                                           f"policies/{policy.dataset}.yaml could not be written") from None
        con.execute("BEGIN TRANSACTION")
        try:
            if existing is None:
                if _table_exists(con, policy.table):
                    raise PolicyError(
                        f"data.duckdb already has a table named {policy.table}",
                        "Choose another `table:` name in the policy.",
                    )
                con.execute(_create_table_sql(policy))
                con.execute(
                    f"INSERT INTO {REGISTRY} VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
                    [policy.dataset, policy.table, policy.canonical_json(), policy.digest, ws.token_key.key_id, now, now],
                )
                outcome = "created"
            else:
                _replace_table(con, existing, policy)
                con.execute(
                    f"UPDATE {REGISTRY} SET table_name = ?, policy_json = ?, policy_hash = ?, "
                    "data_version = data_version + 1, updated_at = ? WHERE name = ?",
                    [policy.table, policy.canonical_json(), policy.digest, now, policy.dataset],
                )
                outcome = "replaced"
            os.replace(tmp, ppath)
            con.execute("COMMIT")
        except BaseException as exc:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass   # DuckDB already aborted the transaction; nothing was committed
            tmp.unlink(missing_ok=True)
            if isinstance(exc, (duckdb.Error, OSError)):
                raise faults.ingest_error(exc, f"dataset {policy.dataset} was not registered") from None
            raise
        return _lookup(con, policy.dataset), outcome


def _replace_table(con: duckdb.DuckDBPyConnection, existing: DatasetInfo, policy: DatasetPolicy) -> None:
    current = sorted(_current_schema(con, existing.table))
    # A table created before UNIT_COLUMN existed keeps its shape (queries fall back to the token).
    # Column order is no part of the policy (its digest sorts keys, and the canonical YAML written
    # to WS/policies lists columns alphabetically); every insert and query names its columns.
    wanted = table_schema(policy)
    same_shape = existing.table == policy.table and current in (sorted(wanted), sorted(wanted[:-1]))
    if same_shape:
        return
    rows = con.execute(f"SELECT count(*) FROM {quote_ident(existing.table)}").fetchone()[0]
    if rows:
        raise PolicyError(
            f"the new policy of {policy.dataset} changes its table or columns, and the table holds data",
            "Register the new shape as a new dataset, or purge the old data first.",
        )
    con.execute(f"DROP TABLE {quote_ident(existing.table)}")
    con.execute(_create_table_sql(policy))


def _require(con: duckdb.DuckDBPyConnection, name: str) -> tuple[str, str]:
    rows = con.execute(f"SELECT policy_hash, table_name FROM {REGISTRY} WHERE name = ?", [name]).fetchall()
    row = rows[0] if rows else None
    if row is None:
        raise PolicyError(f"dataset {name} is not registered", "Register it with `pdbg dataset add WS POLICY.yaml`.")
    return row


def get_policy(ws: Workspace, name: str, con: duckdb.DuckDBPyConnection | None = None) -> DatasetPolicy:
    """The registered policy, read from WS/policies and checked against the registered hash."""
    if con is None:
        with reader_connection(ws) as c:
            phash, _ = _require(c, name)
    else:
        phash, _ = _require(con, name)
    path = policy_path(ws, name)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise PolicyError(f"policy file of dataset {name} is missing", f"Register the policy again (policies/{name}.yaml).") from None
    # Parsing and validating YAML costs tens of ms per query; a file is re-read whenever
    # its size or mtime changes, and the registered hash is checked either way.
    key = (str(path), st.st_mtime_ns, st.st_size, phash)
    policy = _PARSED.get(key)
    if policy is None:
        policy = load_policy(path)
        if len(_PARSED) > 64:
            _PARSED.clear()
        _PARSED[key] = policy
    if policy.digest != phash:
        raise PolicyError(
            f"policy file of dataset {name} does not match the registered policy hash",
            "Someone edited policies/ by hand; register the intended policy with `pdbg dataset add --replace`.",
        )
    return policy


_PARSED: dict[tuple, DatasetPolicy] = {}


def registered(con: duckdb.DuckDBPyConnection) -> list[DatasetInfo]:
    """Registered datasets read through the caller's connection (no row counts).

    The query path passes its read-only, locked-down connection here: opening the file
    read-write would conflict with every other kernel's and the broker's readers.
    """
    return [_row_to_info(r) for r in con.execute(f"SELECT {_INFO_COLS} FROM {REGISTRY} ORDER BY name").fetchall()]


def list_datasets(ws: Workspace) -> list[DatasetInfo]:
    """Registered datasets with their row counts (admin view; counts are not DP)."""
    if not ws.data_path.exists():
        return []
    with reader_connection(ws) as con:
        rows = con.execute(f"SELECT {_INFO_COLS} FROM {REGISTRY} ORDER BY name").fetchall()
        out = []
        for row in rows:
            info = _row_to_info(row)
            n = con.execute(f"SELECT count(*) FROM {quote_ident(info.table)}").fetchone()[0]
            out.append(DatasetInfo(**{**info.to_dict(), "rows": int(n)}))
        return out


def data_version(ws_or_con: Workspace | duckdb.DuckDBPyConnection, name: str) -> int:
    """The dataset's data version: bumped by every ingest, purge and policy replacement."""
    with _ws_or_con(ws_or_con) as con:
        rows = con.execute(f"SELECT data_version FROM {REGISTRY} WHERE name = ?", [name]).fetchall()
    row = rows[0] if rows else None
    if row is None:
        raise PolicyError(f"dataset {name} is not registered", "Register it with `pdbg dataset add WS POLICY.yaml`.")
    return int(row[0])


def bump_version(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """Increment the data version inside the caller's open transaction; returns the new version."""
    row = con.execute(
        f"UPDATE {REGISTRY} SET data_version = data_version + 1, updated_at = ? WHERE name = ? RETURNING data_version",
        [clock.now().replace(tzinfo=None), name],
    ).fetchone()
    if row is None:
        raise PolicyError(f"dataset {name} is not registered", "Register it with `pdbg dataset add WS POLICY.yaml`.")
    return int(row[0])


def registered_key_id(con: duckdb.DuckDBPyConnection, name: str) -> str:
    return con.execute(f"SELECT key_id FROM {REGISTRY} WHERE name = ?", [name]).fetchone()[0]
