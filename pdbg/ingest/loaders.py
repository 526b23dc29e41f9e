"""Input readers: JSON Lines, CSV and Parquet through DuckDB's own readers (admin path).

Why DuckDB readers: they are vectorized and parallel, and the rows never pass through
Python. The file path is a bound parameter.

Column rules, chosen per format:

* **JSON Lines** (``.jsonl``, ``.ndjson``, ``.json``; ``.gz`` allowed): every policy
  column is read as text with an explicit schema and then cast to its declared type by
  the minimizing SELECT; a key absent from a line is NULL — the format's norm for
  optional fields (``error_code`` appears only on errors). Keys not in the policy are
  found from DuckDB's sampled schema and reported as dropped.
* **CSV** (``.csv``, ``.tsv``; ``.gz`` allowed): read all-text (so ``00123`` stays
  ``00123`` and tokens match the JSON form of the same id), header required. A kept
  policy column absent from the header is an error naming the column: a fixed-schema
  file without it is almost certainly the wrong file.
* **Parquet** (``.parquet``, ``.pq``): typed; same missing-column rule as CSV.

Reader errors are reported with the file name and the error class only: DuckDB's
messages may quote file content.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from pdbg.errors import IngestError
from pdbg.policy.model import DatasetPolicy

FORMATS = {
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class Source:
    """A readable relation over one file: SQL text with ``$pdbg_path`` bound."""

    path: Path
    format: str
    sql: str
    params: dict
    columns: list[str]


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst"):
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise IngestError(
            f"{path.name}: unknown file type",
            "Use .jsonl/.ndjson (JSON Lines), .csv or .parquet (optionally .gz compressed).",
        )
    return fmt


def _reader_error(path: Path, fmt: str, exc: Exception) -> IngestError:
    return IngestError(
        f"{path.name}: could not be read as {fmt} ({type(exc).__name__})",
        "Check the file is complete and in the format its extension says; the dataset was left unchanged.",
    )


def open_source(con: duckdb.DuckDBPyConnection, path: str | Path, policy: DatasetPolicy) -> Source:
    """Describe ``path`` and return the relation the minimizing SELECT reads from."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"input file {path.name} does not exist", "Pass existing files to `pdbg ingest`.")
    fmt = detect_format(path)
    params = {"pdbg_path": str(path)}
    if fmt == "json":
        probe = "SELECT * FROM read_json($pdbg_path, format = 'newline_delimited')"
    elif fmt == "csv":
        probe = "SELECT * FROM read_csv($pdbg_path, header = true, all_varchar = true)"
    else:
        probe = "SELECT * FROM read_parquet($pdbg_path)"
    try:
        described = [r[0] for r in con.execute(f"DESCRIBE {probe}", params).fetchall()]
    except duckdb.Error as exc:
        raise _reader_error(path, fmt, exc) from None
    if fmt != "json":
        return Source(path, fmt, probe, params, described)
    # JSON: explicit all-text schema = policy columns (absent keys -> NULL) + sampled extras.
    names = list(policy.columns) + [c for c in described if c not in policy.columns]
    cols = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in names) + "}"
    sql = f"SELECT * FROM read_json($pdbg_path, format = 'newline_delimited', columns = {cols})"
    return Source(path, fmt, sql, params, names)


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"
