"""`ingest`: minimize input files into a dataset's table, atomically, and report counts.

Why one transaction over all files: an ingest is a unit for the data version (cached
releases are keyed by it) and for the audit record. A bad row in the third file, a
crash, or any exception before COMMIT leaves the table *and* its version exactly as
they were; DuckDB's MVCC means readers never see a half-load.

Per file: the minimizing SELECT (pdbg.ingest.transforms) is materialized once into a
temporary staging table, the kept columns are appended to the dataset table, and the
bookkeeping columns are summed for the report. The staging table exists so the
detector chain runs once per value, not once for the rows and again for the counts.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pdbg.errors import IngestError, PdbgError
from pdbg.ingest import datasets, faults, loaders, tokenize, transforms
from pdbg.policy.model import DatasetPolicy
from pdbg.policy.workspace import Workspace

#: Inputs at least this large show a progress bar when stderr is a terminal.
PROGRESS_MIN_BYTES = 32 * 1024 * 1024
_STAGE = "__pdbg_stage"


@dataclass
class IngestReport:
    """What an ingest did, in counts and names only: never a value from the data."""

    dataset: str
    table: str
    files: list[str]
    rows_in: int = 0
    rows_out: int = 0
    rows_without_unit: int = 0
    detectors: dict[str, int] = field(default_factory=dict)  # detector -> hits over all redacted columns
    detectors_by_column: dict[str, dict[str, int]] = field(default_factory=dict)
    dropped_columns: dict[str, int] = field(default_factory=dict)  # column -> non-null values dropped
    unknown_columns: list[str] = field(default_factory=list)  # not in the policy (allowlist)
    unparsed: dict[str, int] = field(default_factory=dict)  # generalized column -> values stored as NULL
    tokenized_columns: list[str] = field(default_factory=list)
    redacted_columns: list[str] = field(default_factory=list)
    key_id: str = ""
    policy_hash: str = ""
    data_version: int = 0
    duration_s: float = 0.0

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "table": self.table,
            "files": list(self.files),
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_without_unit": self.rows_without_unit,
            "detectors": dict(sorted(self.detectors.items())),
            "detectors_by_column": {c: dict(sorted(d.items())) for c, d in sorted(self.detectors_by_column.items())},
            "dropped_columns": dict(sorted(self.dropped_columns.items())),
            "unknown_columns": sorted(self.unknown_columns),
            "unparsed": dict(sorted(self.unparsed.items())),
            "tokenized_columns": list(self.tokenized_columns),
            "redacted_columns": list(self.redacted_columns),
            "key_id": self.key_id,
            "policy_hash": self.policy_hash,
            "data_version": self.data_version,
            "duration_s": round(self.duration_s, 3),
        }


def ingest(
    ws: Workspace,
    dataset: str,
    files: Sequence[str | Path],
    progress: bool | None = None,
    *,
    _after_insert=None,
) -> IngestReport:
    """Minimize ``files`` into ``dataset`` in one transaction and bump its data version.

    ``progress``: True shows a progress bar, False never, None when stderr is a terminal
    and the input is large. ``_after_insert`` is a test hook called inside the
    transaction after all rows were inserted (to prove that a late failure rolls back).
    Raises IngestError (dataset unchanged) or PolicyError.
    """
    paths = check_inputs(files)
    t0 = time.perf_counter()
    with datasets.admin_connection(ws) as con:
        policy = datasets.get_policy(ws, dataset, con)
        key = ws.token_key
        if datasets.registered_key_id(con, dataset) != key.key_id:
            raise IngestError(
                f"dataset {dataset} was registered under another tokenization key id",
                "Tokens would not join with existing rows; restore the workspace key or register a new dataset.",
            )
        report = IngestReport(
            dataset=dataset,
            table=policy.table,
            files=[p.name for p in paths],
            tokenized_columns=[n for n, c in policy.kept_columns.items() if c.transform.value == "tokenize"],
            redacted_columns=[n for n, c in policy.kept_columns.items() if c.transform.value == "redact"],
            key_id=key.key_id,
            policy_hash=policy.digest,
        )
        show = _want_progress(progress, paths)
        bar = _Progress(con, paths) if show else nullcontext()
        con.execute("BEGIN TRANSACTION")
        try:
            with bar as b:
                for p in paths:
                    _ingest_file(con, ws, policy, p, report)
                    if b is not None:
                        b.file_done(p)
            if report.rows_out == 0:   # unreachable while every file must add rows; kept as the rule
                raise IngestError(f"ingest into {dataset} would add no rows", "Nothing was changed.")
            if _after_insert is not None:
                _after_insert(con)
            report.data_version = datasets.bump_version(con, dataset)
            con.execute("COMMIT")
        except BaseException as exc:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass  # the transaction was already aborted by DuckDB; nothing was committed
            if isinstance(exc, _CastFailed):
                # Diagnose outside the aborted transaction: which column, by count only.
                raise _diagnose(con, exc.policy, exc.src, exc.m, exc.path) from None
            if isinstance(exc, PdbgError) or not isinstance(exc, (duckdb.Error, OSError)):
                raise
            raise faults.ingest_error(exc, f"ingest into {dataset} failed") from None
    report.duration_s = time.perf_counter() - t0
    return report


def check_inputs(files: Sequence[str | os.PathLike]) -> list[Path]:
    """Refuse input paths that cannot be ingested, before anything is opened for writing.

    Cheap and read-only (``stat`` only: a FIFO or a device is never opened, so this cannot
    block): missing, not a regular file (directory, FIFO, socket, device), empty, unknown
    format. The admin layer may call it before it records an intent. Returns the paths.
    """
    if isinstance(files, (str, bytes, os.PathLike)):   # one path, not a sequence of characters
        files = [files]
    if not files:
        raise IngestError("no input files given", "Pass one or more .jsonl, .csv or .parquet files.")
    paths = [Path(os.fsdecode(f)) for f in files]
    for p in paths:
        name = p.name or "input"
        try:
            st = p.stat()
        except FileNotFoundError:
            raise IngestError(f"input file {name} does not exist", "Pass existing files to `pdbg ingest`.") from None
        except OSError as exc:
            raise faults.ingest_error(exc, f"input file {name} cannot be examined", input_file=True) from None
        if stat.S_ISDIR(st.st_mode):
            raise IngestError(f"input {name} is a directory, not a file",
                              f"Pass the files inside it, e.g. `pdbg ingest WS DATASET {name}/*.jsonl`.")
        if not stat.S_ISREG(st.st_mode):
            kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else
                    "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                    "a socket" if stat.S_ISSOCK(st.st_mode) else "a special file")
            raise IngestError(f"input {name} is {kind}, not a regular file",
                              "Write the data to a regular file first, then ingest that file.")
        if not os.access(p, os.R_OK):
            raise IngestError(f"input file {name} cannot be read (permission denied)",
                              "Make the file readable by the account running pdbg; nothing was changed.")
        if st.st_size == 0:
            raise IngestError(f"input file {name} is empty",
                              "Pass a file with rows (a failed or truncated export?); nothing was changed.")
        loaders.detect_format(p)
    return paths


def _want_progress(progress: bool | None, paths: list[Path]) -> bool:
    if progress is not None:
        return progress
    return sys.stderr.isatty() and sum(p.stat().st_size for p in paths) >= PROGRESS_MIN_BYTES


def _ingest_file(
    con: duckdb.DuckDBPyConnection, ws: Workspace, policy: DatasetPolicy, path: Path, report: IngestReport
) -> None:
    src = loaders.open_source(con, path, policy)
    m = transforms.build(policy, src.sql, src.columns, src.params, source_name=path.name)
    params = dict(m.params)
    if m.needs_key:
        params.update(tokenize.padded_keys(ws.token_key))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_STAGE} AS {m.sql}", params)
    except duckdb.ConversionException:
        raise _CastFailed(policy, src, m, path) from None
    except duckdb.Error as exc:
        raise IngestError(
            f"{path.name}: could not be minimized ({type(exc).__name__})",
            "Check the file matches the policy's columns and types; the dataset was left unchanged.",
        ) from None
    cols = ", ".join(datasets.quote_ident(c) for c in m.columns)
    unit = datasets.quote_ident(policy.privacy_unit)
    has_unit = f"{unit} IS NOT NULL"
    into, select = cols, cols
    if datasets.has_unit_column(con, policy.table):
        into += f", {datasets.quote_ident(datasets.UNIT_COLUMN)}"
        select += f", {datasets.unit_id_sql(policy, unit)}"
    con.execute(
        f"INSERT INTO {datasets.quote_ident(policy.table)} ({into}) SELECT {select} FROM {_STAGE} WHERE {has_unit}"
    )
    sums = ["count(*)", f"count_if({has_unit})"]
    keys: list[tuple[str, object]] = []
    for (col, det), hits in m.detector_hits.items():
        orig = datasets.quote_ident(m.originals[col])
        sums.append(f"coalesce(sum({hits}) FILTER (WHERE {has_unit} AND {orig} IS NOT NULL), 0)")
        keys.append(("det", (col, det)))
    for col, alias in m.dropped.items():
        sums.append(f"count_if({datasets.quote_ident(alias)})")
        keys.append(("drop", col))
    for col, alias in m.unparsed.items():
        sums.append(f"count_if({datasets.quote_ident(alias)})")
        keys.append(("unparsed", col))
    row = con.execute(f"SELECT {', '.join(sums)} FROM {_STAGE}").fetchone()
    con.execute(f"DROP TABLE {_STAGE}")
    n_in, n_out = int(row[0] or 0), int(row[1] or 0)
    if n_in == 0:
        raise IngestError(f"{path.name} has no rows (only a header, or blank lines)",
                          "Pass a file with rows, or leave this one out; nothing was changed.")
    if n_out == 0:
        raise IngestError(
            f"{path.name}: none of its rows has a privacy unit ({policy.privacy_unit} is null or empty everywhere)",
            f"Check that the file fills {policy.privacy_unit}, the policy's privacy_unit; nothing was changed.")
    report.rows_in += n_in
    report.rows_out += n_out
    report.rows_without_unit += n_in - n_out
    det = Counter(report.detectors)
    for (kind, k), v in zip(keys, row[2:]):
        v = int(v)
        if kind == "det":
            col, d = k
            if v:
                det[d] += v
                by = report.detectors_by_column.setdefault(col, {})
                by[d] = by.get(d, 0) + v
        elif kind == "drop":
            report.dropped_columns[k] = report.dropped_columns.get(k, 0) + v
        else:
            report.unparsed[k] = report.unparsed.get(k, 0) + v
    report.detectors = dict(det)
    for u in m.unknown:
        if u not in report.unknown_columns:
            report.unknown_columns.append(u)


class _CastFailed(Exception):
    """Internal: a conversion failed inside the transaction; diagnosed after the rollback."""

    def __init__(self, policy, src, m, path) -> None:
        super().__init__("conversion failed")
        self.policy, self.src, self.m, self.path = policy, src, m, path


def _diagnose(con, policy: DatasetPolicy, src: loaders.Source, m: transforms.Minimization, path: Path) -> IngestError:
    """Which column failed to convert, by count only (DuckDB's own message quotes the value)."""
    for col, pred in m.casts.items():
        try:
            n = con.execute(f"SELECT count(*) FROM ({src.sql}) AS src WHERE {pred}", src.params).fetchone()[0]
        except duckdb.Error:
            n = None  # the source type cannot be cast at all (e.g. a number where a timestamp is declared)
        if n is None or n:
            what = f"{n} value(s)" if n else "its values"
            return IngestError(
                f"{path.name}: column {col}: {what} cannot be read as {policy.columns[col].type.value}",
                f"Fix the file or the declared `type:` of {col} in the policy; the dataset was left unchanged.",
            )
    return IngestError(
        f"{path.name}: a value could not be converted to its declared type",
        "Check the column types in the policy; the dataset was left unchanged.",
    )


class _Progress:
    """A rich progress bar fed by DuckDB's own query progress, polled from a thread."""

    def __init__(self, con: duckdb.DuckDBPyConnection, paths: list[Path]) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self._con = con
        self._sizes = {p: max(1, p.stat().st_size) for p in paths}
        self._total = sum(self._sizes.values())
        self._done = 0
        self._bar = Progress(
            TextColumn("ingest"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), transient=True,
        )
        self._task = self._bar.add_task("ingest", total=self._total)
        self._current: Path | None = paths[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> "_Progress":
        self._bar.start()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._bar.stop()

    def file_done(self, p: Path) -> None:
        order = list(self._sizes)
        i = order.index(p)
        self._current = order[i + 1] if i + 1 < len(order) else None
        self._done += self._sizes[p]
        self._bar.update(self._task, completed=self._done)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            try:
                pct = self._con.query_progress()
            except Exception:  # progress is cosmetic; never let it fail an ingest
                continue
            if pct is not None and pct >= 0 and self._current is not None:
                part = self._sizes.get(self._current, 0) * min(pct, 100.0) / 100.0
                self._bar.update(self._task, completed=min(self._total, self._done + part))
