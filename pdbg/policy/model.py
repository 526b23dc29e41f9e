"""The dataset policy: what may enter, how it is minimized, and how it may be read back.

A policy is the single source of privacy parameters: contribution bounds, metric
bounds, public key domains, ε limits, δ, retention. Investigators can ask for less
(tighter bounds, smaller ε), never more. Validation errors name the field and the fix.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pdbg.errors import PolicyError

# -- limits ----------------------------------------------------------------------------
# Every number a policy states is finite and below a stated ceiling: a value the rest of
# pdbg cannot handle (an infinite bound, k = 10^30, retention beyond what a date can hold)
# must be refused when the policy is registered, not crash every later query or purge.
METRIC_BOUND_MAX = 1e12
UNIT_SUM_MAX = 1e15
"""k × the widest |bound|: one unit's clamped sum, times the fixed-point scale (10^3), must fit
a signed 64-bit integer (9.2·10^18) where the planner casts per-unit averages back to BIGINT."""
"""|bound| of a metric column (and a number_bucket width): 10^12 times the fixed-point scale
(10^3) and k stays far inside DuckDB's HUGEINT; far beyond any latency, byte count or price."""
MAX_CONTRIBUTIONS = 1_000_000
"""Ceiling of k (max_rows_per_unit) and g (max_groups_per_unit): noise grows linearly with both,
so a larger value makes every answer useless; it also keeps k · bound within integer sums."""
TIME_BUCKETS_MAX = 100_000
"""Ceiling of max_time_buckets: every bucket of a window is a released (noisy) group."""
RETENTION_DAYS_MAX = 36_500
"""100 years. A purge computes now - retention_days; beyond ~740,000 days that is before year 1."""
GRANT_HOURS_MAX = 8_760
"""One year: a grant is for an incident, not standing access."""
EPSILON_MAX = 100.0
"""Ceiling of every epsilon field. ε = 100 already protects nobody; larger is a typo."""
DOMAIN_MAX_VALUES = 10_000
"""Values of one public domain: each is a released group, filled in when empty."""
DOMAIN_MAX_CHARS = 1_000
"""Characters of one domain value (or one public-table value)."""
PUBLIC_TABLE_MAX_ROWS = 10_000
MAX_COLUMNS = 1_000
NAME_MAX_CHARS = 63
POLICY_FILE_MAX_BYTES = 8 * 1024 * 1024
"""A policy file larger than this is refused before it is parsed."""
YAML_MAX_NODES = 200_000
"""YAML nodes a policy may expand to once aliases (``*name``) are followed: small anchors for a
repeated domain are fine, an alias bomb (a billion nodes from a few lines) is refused unexpanded."""

_SCALARS = (str, int, float, bool, datetime.date)   # YAML reads an unquoted 2024-05-01 as a date


def _no_bool(v):
    """A YAML ``yes``/``true`` given for a number would silently become 1: refuse it."""
    if isinstance(v, bool):
        raise ValueError("must be a number, not true/false")
    return v


def _check_scalars(values, what: str, fix: str) -> None:
    for v in values:
        if not isinstance(v, _SCALARS):
            raise ValueError(f"{what} values must be strings, numbers, booleans or dates (no lists, maps or null); "
                             f"{fix}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{what} values must be finite numbers; {fix}")
        if isinstance(v, str) and len(v) > DOMAIN_MAX_CHARS:
            raise ValueError(f"{what} values must be at most {DOMAIN_MAX_CHARS:,} characters long; {fix}")


class ColumnClass(str, Enum):
    identifier = "identifier"
    pii = "pii"
    quasi_identifier = "quasi_identifier"
    dimension = "dimension"
    metric = "metric"
    time = "time"
    free_text = "free_text"


class Transform(str, Enum):
    keep = "keep"
    drop = "drop"
    tokenize = "tokenize"
    redact = "redact"
    generalize = "generalize"


class ColumnType(str, Enum):
    string = "string"
    integer = "integer"
    float = "float"
    timestamp = "timestamp"
    boolean = "boolean"


class Generalize(BaseModel):
    """Parameters of a `generalize` transform; `kind` picks the function."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["ip_prefix", "timestamp_bucket", "truncate", "number_bucket", "user_agent"]
    ipv4_prefix: int = Field(24, ge=0, le=32)
    ipv6_prefix: int = Field(48, ge=0, le=128)
    interval: str = Field("1 minute", max_length=64)
    length: int = Field(8, ge=1, le=DOMAIN_MAX_CHARS)
    width: float = Field(100.0, gt=0, le=METRIC_BOUND_MAX, allow_inf_nan=False)

    _numbers = field_validator("ipv4_prefix", "ipv6_prefix", "length", "width", mode="before")(_no_bool)


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    class_: ColumnClass = Field(alias="class")
    transform: Transform = Transform.keep
    type: ColumnType = ColumnType.string
    generalize: Generalize | None = None
    bounds: tuple[float, float] | None = None
    scale: Literal["linear", "log"] = "linear"
    domain: tuple[Any, ...] | None = None

    @field_validator("bounds", mode="before")
    @classmethod
    def _bounds_numbers(cls, v):
        if isinstance(v, (list, tuple)) and any(isinstance(b, bool) for b in v):
            raise ValueError("bounds must be numbers [lower, upper], not true/false")
        return v

    @field_validator("bounds")
    @classmethod
    def _finite_bounds(cls, v):
        if v is not None:
            if not all(math.isfinite(b) for b in v):
                raise ValueError(f"bounds must be finite numbers within ±{METRIC_BOUND_MAX:g}, e.g. [0, 10000]")
            if max(abs(b) for b in v) > METRIC_BOUND_MAX:
                raise ValueError(f"bounds must lie within ±{METRIC_BOUND_MAX:g}; use the widest value "
                                 "one row can plausibly have")
        return v

    @field_validator("domain", mode="before")
    @classmethod
    def _domain_shape(cls, v):
        # Before tuple conversion: nested lists, maps and oversized domains never get further.
        if v is None:
            return v
        if not isinstance(v, (list, tuple)):
            raise ValueError("domain must be a list of values, e.g. domain: [api, auth, billing]")
        if len(v) > DOMAIN_MAX_VALUES:
            raise ValueError(f"domain lists more than {DOMAIN_MAX_VALUES:,} values; "
                             "leave it out to treat the column as a private key")
        _check_scalars(v, "domain", "list each public value once, e.g. domain: [api, auth, billing]")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Column":
        if self.class_ in (ColumnClass.identifier, ColumnClass.pii) and self.transform == Transform.keep:
            raise ValueError(
                f"a column classed {self.class_.value} may not use transform keep; "
                "use tokenize, redact, generalize or drop"
            )
        if self.transform == Transform.generalize and self.generalize is None:
            raise ValueError("transform generalize needs a `generalize:` block with a kind")
        if self.transform != Transform.generalize and self.generalize is not None:
            raise ValueError("a `generalize:` block needs transform: generalize")
        if self.class_ == ColumnClass.metric:
            if self.bounds is None:
                raise ValueError("a metric column needs `bounds: [lower, upper]` so sums can be clamped")
            if self.type not in (ColumnType.integer, ColumnType.float):
                raise ValueError("a metric column must have type integer or float")
        if self.bounds is not None:
            lo, hi = self.bounds
            if not lo < hi:
                raise ValueError("bounds must be [lower, upper] with lower < upper")
            if self.scale == "log" and lo < 0:
                raise ValueError("scale: log needs a non-negative lower bound")
        if self.domain is not None and len(self.domain) == 0:
            raise ValueError("domain must list at least one value (or be omitted for a private key)")
        if self.transform == Transform.tokenize and self.type != ColumnType.string:
            raise ValueError("a tokenized column has type string")
        return self

    @property
    def kept(self) -> bool:
        return self.transform != Transform.drop

    @property
    def sensitive(self) -> bool:
        """Identifier and PII columns may never be output or grouped by."""
        return self.class_ in (ColumnClass.identifier, ColumnClass.pii)


class PublicTable(BaseModel):
    """A small public dimension table (e.g. service → team) that queries may join."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, ColumnType] = Field(max_length=MAX_COLUMNS)
    rows: list[dict[str, Any]] = Field(max_length=PUBLIC_TABLE_MAX_ROWS)
    key: str = Field(description="column joined against the private table")

    @field_validator("rows", mode="before")
    @classmethod
    def _scalar_rows(cls, v):
        if isinstance(v, list) and len(v) <= PUBLIC_TABLE_MAX_ROWS:
            for row in v:
                if isinstance(row, dict):
                    _check_scalars([x for x in row.values() if x is not None], "public table row",
                                   "give each column one plain value")
        return v


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_per_query: float = Field(0.1, gt=0, le=EPSILON_MAX, allow_inf_nan=False)
    max_per_query: float = Field(1.0, gt=0, le=EPSILON_MAX, allow_inf_nan=False)
    case_default: float = Field(2.0, gt=0, le=EPSILON_MAX, allow_inf_nan=False,
                                description="ε granted to a case by default")
    dataset_cap: float = Field(20.0, gt=0, le=EPSILON_MAX, allow_inf_nan=False,
                               description="ε across all grants on this dataset")
    break_glass: float = Field(0.5, gt=0, le=EPSILON_MAX, allow_inf_nan=False,
                               description="ε granted immediately by break-glass")

    _numbers = field_validator("default_per_query", "max_per_query", "case_default", "dataset_cap",
                               "break_glass", mode="before")(_no_bool)

    @model_validator(mode="after")
    def _ordered(self) -> "Budget":
        if self.default_per_query > self.max_per_query:
            raise ValueError("epsilon.default_per_query must not exceed epsilon.max_per_query")
        if self.max_per_query > self.case_default:
            raise ValueError("epsilon.max_per_query must not exceed epsilon.case_default")
        if self.case_default > self.dataset_cap:
            raise ValueError("epsilon.case_default must not exceed epsilon.dataset_cap")
        if self.break_glass > self.case_default:
            raise ValueError("epsilon.break_glass must not exceed epsilon.case_default")
        return self


_ADDED_LATER = ("dataset_delta", "break_glass_per_30d")

BREAK_GLASS_PER_30D = 3
"""Break-glass grants one user may take on one dataset in any 30 days when the policy is silent:
enough for a bad week of incidents, too few to replace the approval step."""


class DatasetPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    table: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    privacy_unit: str = Field(max_length=NAME_MAX_CHARS)
    accounting: Literal["zcdp", "pure"] = "zcdp"
    delta: float = Field(1e-6, gt=0, lt=1e-3, allow_inf_nan=False, description="δ of a grant (half for zCDP conversion, half for partition selection)")
    partition_delta: float = Field(1e-8, gt=0, lt=1e-3, allow_inf_nan=False, description="δ charged by one private-key query")
    dataset_delta: float | None = Field(
        None, gt=0, lt=1e-3, allow_inf_nan=False, description="δ across all grants on this dataset, like epsilon.dataset_cap (default: delta)")
    epsilon: Budget = Budget()
    max_rows_per_unit: int = Field(10, ge=1, le=MAX_CONTRIBUTIONS,
                                   description="k: rows one unit may contribute to one group")
    max_groups_per_unit: int = Field(4, ge=1, le=MAX_CONTRIBUTIONS,
                                     description="g: groups one unit may contribute to")
    max_time_buckets: int = Field(2000, ge=1, le=TIME_BUCKETS_MAX)
    retention_days: int = Field(30, ge=1, le=RETENTION_DAYS_MAX)
    legal_hold: bool = False
    grant_max_hours: float = Field(72, gt=0, le=GRANT_HOURS_MAX, allow_inf_nan=False)
    break_glass_per_30d: int | None = Field(
        None, description="break-glass grants one user may take on this dataset in any 30 days "
                          f"(default {BREAK_GLASS_PER_30D}; 0 turns break-glass off)")
    time_column: str | None = Field(None, max_length=NAME_MAX_CHARS)
    columns: dict[str, Column] = Field(max_length=MAX_COLUMNS)
    public_tables: dict[str, PublicTable] = Field({}, max_length=100)

    _numbers = field_validator("delta", "partition_delta", "dataset_delta", "max_rows_per_unit",
                               "max_groups_per_unit", "max_time_buckets", "retention_days", "grant_max_hours",
                               mode="before")(_no_bool)

    @field_validator("columns", mode="before")
    @classmethod
    def _names(cls, cols):
        # Before the columns are validated, so a bad name is reported once, briefly.
        if isinstance(cols, dict):
            for name in cols:
                if not isinstance(name, str) or len(name) > NAME_MAX_CHARS:
                    raise ValueError(f"column names must be lower_snake_case strings of at most "
                                     f"{NAME_MAX_CHARS} characters")
                if not name or not name.replace("_", "a").isalnum() or not name[0].isalpha() or name != name.lower():
                    raise ValueError(f"column name {name!r} must be lower_snake_case")
        return cols

    @field_validator("break_glass_per_30d", mode="before")
    @classmethod
    def _break_glass_count(cls, v):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100):
            raise ValueError("must be a whole number from 0 (break-glass off) to 100, e.g. "
                             f"break_glass_per_30d: {BREAK_GLASS_PER_30D}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "DatasetPolicy":
        unit = self.columns.get(self.privacy_unit)
        if unit is None:
            raise ValueError(f"privacy_unit {self.privacy_unit!r} is not one of the columns")
        if unit.transform == Transform.drop:
            raise ValueError(f"privacy_unit {self.privacy_unit!r} cannot be dropped")
        if self.time_column is not None:
            tc = self.columns.get(self.time_column)
            if tc is None or tc.type != ColumnType.timestamp:
                raise ValueError(f"time_column {self.time_column!r} must be a timestamp column")
        widest = max((max(abs(b) for b in c.bounds) for c in self.columns.values() if c.bounds), default=0.0)
        if self.max_rows_per_unit * widest > UNIT_SUM_MAX:
            raise ValueError(f"max_rows_per_unit × the widest metric bound must be at most {UNIT_SUM_MAX:g} "
                             "(one unit's sum must fit 64-bit integers); lower k or narrow the bounds")
        if 2 * self.partition_delta > self.delta:
            raise ValueError("partition_delta must be at most half of delta")
        if self.dataset_delta is not None and self.dataset_delta < self.delta:
            raise ValueError("dataset_delta must be at least delta (one grant's δ)")
        return self

    # -- convenience -------------------------------------------------------

    @property
    def kept_columns(self) -> dict[str, Column]:
        return {n: c for n, c in self.columns.items() if c.kept}

    @property
    def time_col(self) -> str | None:
        if self.time_column:
            return self.time_column
        for n, c in self.kept_columns.items():
            if c.class_ == ColumnClass.time:
                return n
        return None

    @property
    def lifetime_delta(self) -> float:
        """δ of the dataset's lifetime cap account (``dataset_delta``, else one grant's ``delta``)."""
        return self.dataset_delta if self.dataset_delta is not None else self.delta

    @property
    def break_glass_limit(self) -> int:
        """Break-glass grants per user on this dataset in any 30 days (``break_glass_per_30d``)."""
        return BREAK_GLASS_PER_30D if self.break_glass_per_30d is None else self.break_glass_per_30d

    def canonical_json(self) -> str:
        d = self.model_dump(mode="json", by_alias=True)
        # Fields added after policies were first registered are left out at their default, so a
        # policy that does not use them keeps the digest it was registered (and audited) with.
        for name in _ADDED_LATER:
            if d.get(name) is None:
                d.pop(name, None)
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical policy: recorded with the dataset and in every release."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _explain(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors()[:5]:
        # Locations are field names, but a column name comes from the file: keep it short.
        loc = ".".join(_short(str(x)) for x in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    more = err.error_count() - len(parts)
    tail = f"; and {more} more" if more > 0 else ""
    return f"policy {source} is invalid: " + "; ".join(parts) + tail


def _short(s: str, n: int = 64) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def parse_policy(data: dict, source: str = "<memory>") -> DatasetPolicy:
    """Validate a policy mapping; errors name the field (e.g. ``columns.email``) and the fix."""
    if not isinstance(data, dict):
        raise PolicyError(f"policy {source} must be a YAML mapping")
    try:
        return DatasetPolicy.model_validate(data)
    except ValidationError as err:
        raise PolicyError(_explain(err, source), "Fix the named field; see examples/requests.policy.yaml.") from None


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _AliasBudget(Exception):
    pass


def _expanded_size(root) -> int:
    """Nodes the document expands to with every alias followed, counted without expanding.

    A shared node (the target of aliases) is counted once per reference, memoized, so an
    alias bomb is measured in time linear in its text. A node that contains itself is refused.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise _AliasBudget("recursive")
        open_.add(key)
        if isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(c) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            n = 1
        open_.discard(key)
        sizes[key] = n
        if n > YAML_MAX_NODES:
            raise _AliasBudget("too large")
        return n

    return size(root)


def _load_yaml(text: str):
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_policy(path: str | os.PathLike) -> DatasetPolicy:
    path = Path(path)
    fix = "Pass the path of a policy YAML file."
    try:
        if not os.access(path, os.R_OK) and path.exists():
            raise PermissionError(13, "Permission denied")
        size = path.stat().st_size
        if not path.is_file():
            raise PolicyError(f"policy {path.name} is not a regular file", fix)
        if size > POLICY_FILE_MAX_BYTES:
            raise PolicyError(f"policy {path.name} is larger than {POLICY_FILE_MAX_BYTES:,} bytes",
                              "A policy lists columns and small public domains; move large lists out of it.")
        with path.open("rb") as f:
            raw = f.read(POLICY_FILE_MAX_BYTES + 1)
        text = raw.decode("utf-8")
        data = _load_yaml(text)
    except FileNotFoundError:
        raise PolicyError(f"policy file {path.name} does not exist", fix) from None
    except PermissionError:
        raise PolicyError(f"policy file {path.name} cannot be read (permission denied)",
                          "Make the file readable by the account running pdbg.") from None
    except UnicodeDecodeError:
        raise PolicyError(f"policy {path.name} is not UTF-8 text", "Save the policy as UTF-8 YAML.") from None
    except OSError as exc:
        raise PolicyError(f"policy file {path.name} could not be read ({_os_reason(exc)})", fix) from None
    except _AliasBudget as exc:
        what = "refers to itself through a YAML alias" if str(exc) == "recursive" else \
            f"expands to more than {YAML_MAX_NODES:,} YAML nodes through aliases (*name)"
        raise PolicyError(f"policy {path.name} {what}",
                          "Write the values out instead of nesting aliases; a policy is small.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PolicyError(f"policy {path.name} is not valid YAML{where}", "Fix the YAML syntax.") from None
    except RecursionError:
        raise PolicyError(f"policy {path.name} is nested too deeply", "A policy is a flat mapping of columns.") from None
    return parse_policy(data, path.name)   # the name only: messages may reach a broker client


def _os_reason(exc: OSError) -> str:
    """A short, path-free reason for an OSError (``strerror`` never holds the file name)."""
    return exc.strerror or type(exc).__name__
