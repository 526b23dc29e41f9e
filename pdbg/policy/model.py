"""The dataset policy: what may enter, how it is minimized, and how it may be read back.

A policy is the single source of privacy parameters: contribution bounds, metric
bounds, public key domains, ε limits, δ, retention. Investigators can ask for less
(tighter bounds, smaller ε), never more. Validation errors name the field and the fix.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pdbg.errors import PolicyError


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
    interval: str = "1 minute"
    length: int = Field(8, ge=1)
    width: float = Field(100.0, gt=0)


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    class_: ColumnClass = Field(alias="class")
    transform: Transform = Transform.keep
    type: ColumnType = ColumnType.string
    generalize: Generalize | None = None
    bounds: tuple[float, float] | None = None
    scale: Literal["linear", "log"] = "linear"
    domain: tuple[Any, ...] | None = None

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

    columns: dict[str, ColumnType]
    rows: list[dict[str, Any]]
    key: str = Field(description="column joined against the private table")


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_per_query: float = Field(0.1, gt=0)
    max_per_query: float = Field(1.0, gt=0)
    case_default: float = Field(2.0, gt=0, description="ε granted to a case by default")
    dataset_cap: float = Field(20.0, gt=0, description="ε across all grants on this dataset")
    break_glass: float = Field(0.5, gt=0, description="ε granted immediately by break-glass")

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
    privacy_unit: str
    accounting: Literal["zcdp", "pure"] = "zcdp"
    delta: float = Field(1e-6, gt=0, lt=1e-3, description="δ of a grant (half for zCDP conversion, half for partition selection)")
    partition_delta: float = Field(1e-8, gt=0, description="δ charged by one private-key query")
    dataset_delta: float | None = Field(
        None, gt=0, lt=1e-3, description="δ across all grants on this dataset, like epsilon.dataset_cap (default: delta)")
    epsilon: Budget = Budget()
    max_rows_per_unit: int = Field(10, ge=1, description="k: rows one unit may contribute to one group")
    max_groups_per_unit: int = Field(4, ge=1, description="g: groups one unit may contribute to")
    max_time_buckets: int = Field(2000, ge=1)
    retention_days: int = Field(30, ge=1)
    legal_hold: bool = False
    grant_max_hours: float = Field(72, gt=0)
    break_glass_per_30d: int | None = Field(
        None, description="break-glass grants one user may take on this dataset in any 30 days "
                          f"(default {BREAK_GLASS_PER_30D}; 0 turns break-glass off)")
    time_column: str | None = None
    columns: dict[str, Column]
    public_tables: dict[str, PublicTable] = {}

    @field_validator("columns")
    @classmethod
    def _names(cls, cols: dict[str, Column]) -> dict[str, Column]:
        for name in cols:
            if not name.replace("_", "a").isalnum() or not name[0].isalpha() or name != name.lower():
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
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return f"policy {source} is invalid: " + "; ".join(parts)


def parse_policy(data: dict, source: str = "<memory>") -> DatasetPolicy:
    """Validate a policy mapping; errors name the field (e.g. ``columns.email``) and the fix."""
    if not isinstance(data, dict):
        raise PolicyError(f"policy {source} must be a YAML mapping")
    try:
        return DatasetPolicy.model_validate(data)
    except ValidationError as err:
        raise PolicyError(_explain(err, source), "Fix the named field; see examples/requests.policy.yaml.") from None


def load_policy(path: str | Path) -> DatasetPolicy:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist", "Pass the path of a policy YAML file.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PolicyError(f"policy {path} is not valid YAML{where}", "Fix the YAML syntax.") from None
    return parse_policy(data, str(path))
